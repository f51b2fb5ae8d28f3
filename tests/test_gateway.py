"""The payment gateway end to end: every deposit method through the API and the default routing's
providers (Halyk ePay, Freedom Pay and CloudPayments for cards, KazBank, the Freedom Pay wallet,
Kaspi Pay, Kaspi QR, ioka), simulated over HTTP, each speaking its own API and calling back (or
not: Kaspi is only polled) the API served on a real port; the workflows on the time-skipping
Temporal server (so hours-long expiries and poll waits take no time) and PostgreSQL."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client

from config import Settings
from db import gateway as gateway_store
from providers.connectors import ioka
from providers.connectors.halyk_epay import credentials, invoice_id, secret_hash, tenge_text
from providers.connectors.kaspi import device_token
from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from simulator.connectors.freedom_pay import remember_order
from simulator.connectors.freedom_pay_wallet import encode_callback as freedom_wallet_callback
from simulator.connectors.ioka import encode_callback as ioka_callback
from simulator.dialects import kazbank_callback
from tests.conftest import VISA_OK, _result, card_deposit, new_player
from tests.histories_helpers import keep

THREE_DS_CARD = "4000000000003220"
UNIONPAY_OK = "6200000000000005"


@pytest.fixture(scope="module", autouse=True)
async def api_server(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The API on the port the simulator calls back (Settings.public_api_url)."""
    port = int(settings.api_url.rsplit(":", 1)[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event for "listening"
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield
    server.should_exit = True
    await task


@pytest.fixture(scope="module", autouse=True)
async def ioka_shop_webhook(settings: Settings, simulator_url: str) -> AsyncIterator[None]:
    """ioka sends webhooks where the shop registered them (once per shop, for the orders made
    after, not per order), as the operator does: here, to the API this module serves. Removed
    at the end, so other modules' tests get none unless they register their own."""
    key = {"API-KEY": settings.provider_secret("ioka")}
    async with httpx.AsyncClient(base_url=simulator_url, headers=key, timeout=30) as ioka_api:
        hook = await ioka_api.post(
            "/providers/ioka/v2/webhooks",
            json={
                "url": f"{settings.api_url}/v1/webhooks/ioka",
                "events": ["PAYMENT_CAPTURED", "PAYMENT_DECLINED", "PAYMENT_CANCELLED"],
            },
        )
        assert hook.status_code == 201, hook.text
        yield
        removed = await ioka_api.delete(f"/providers/ioka/v2/webhooks/{hook.json()['id']}")
        assert removed.status_code == 204, removed.text


@pytest.fixture
async def sim(
    simulator_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """Admin access to the simulator; every provider's behaviour and every circuit reset after."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=30) as client:
        yield client
        await client.post("/admin/reset")
    async with sessions.begin() as session:
        await gateway_store.reset_circuits(session)


async def _create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(
        "/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def _deposit(player_id: str, method: str, amount: int = 250_000, **details: Any) -> dict[str, Any]:
    return {
        "player_id": player_id,
        "amount": amount,
        "currency": "KZT",
        "method": method,
        "details": details,
    }


async def _at_provider(sim: httpx.AsyncClient, provider: str, reference: str) -> dict[str, Any]:
    """Wait until the workflow opened the payment at the provider (the simulator tells)."""
    response = await sim.get(
        f"/admin/providers/{provider}/payments/{reference}", params={"wait": 20}
    )
    log: dict[str, Any] = response.json()
    assert log.get("payment") or log.get("charge"), log
    return log


async def _until_status(api: httpx.AsyncClient, deposit_id: str, status: str) -> dict[str, Any]:
    """The API's view once the workflow recorded `status` (a database write: no event to await)."""
    deadline = time.monotonic() + 20
    while True:
        shown: dict[str, Any] = (await api.get(f"/v1/deposits/{deposit_id}")).json()
        if shown["status"] == status or time.monotonic() > deadline:
            assert shown["status"] == status, shown
            return shown
        await asyncio.sleep(0.05)


async def _finish(
    api: httpx.AsyncClient, client: Client, deposit: dict[str, Any], *, skip_time: bool = False
) -> dict[str, Any]:
    """Await the workflow; with `skip_time` the test server's clock jumps over idle waits
    (expiries, status polls). Without it everything runs in real time, as callbacks do."""
    handle = client.get_workflow_handle(deposit["workflow_id"])
    if skip_time:
        service = client.test_service
        await service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            await _result(handle)
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest())
    else:
        await _result(handle)
    shown: dict[str, Any] = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    return shown


async def _alert(sessions: async_sessionmaker[AsyncSession], dedupe_key: str) -> Any:
    """The alert once the webhook has raised it (a database write: no event to await)."""
    deadline = time.monotonic() + 20
    while True:
        async with sessions() as session:
            row = (
                await session.execute(
                    text("SELECT kind, severity, details FROM alerts WHERE dedupe_key = :k"),
                    {"k": dedupe_key},
                )
            ).first()
        if row is not None or time.monotonic() > deadline:
            assert row is not None, f"no alert {dedupe_key}"
            return row
        await asyncio.sleep(0.05)


async def _credits(sessions: async_sessionmaker[AsyncSession], deposit_id: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM ledger_transactions "
                "WHERE payment_id = :id AND kind = 'deposit_credit'"
            ),
            {"id": deposit_id},
        )
    return int(count or 0)


def _statuses(deposit: dict[str, Any]) -> list[str]:
    return [e["status"] for e in deposit["events"]]


async def _balance(api: httpx.AsyncClient, player_id: str) -> int:
    player = (await api.get(f"/v1/players/{player_id}")).json()
    available: int = player["balance"]["available"]
    return available


async def _delivered(sim: httpx.AsyncClient, reference: str, count: int) -> list[str]:
    """The statuses of the callbacks the simulator delivered for `reference`, once there are
    `count` (deliveries run in the simulator: no event to await here)."""
    deadline = time.monotonic() + 20
    while True:
        sent = (await sim.get("/admin/callbacks", params={"reference": reference})).json()
        if len(sent) >= count or time.monotonic() > deadline:
            return [c["status"] for c in sent]
        await asyncio.sleep(0.05)


# -- QR ----------------------------------------------------------------------------------------


async def _kaspi_payment(
    sim: httpx.AsyncClient, settings: Settings, provider: str, reference: str
) -> dict[str, Any]:
    """The payment as Kaspi's own API shows it (the lookup by our reference, ExternalId)."""
    response = await sim.get(
        f"/providers/{provider}/payment/status",
        params={
            "ExternalId": reference,
            "DeviceToken": device_token(settings.connector(provider), provider),
        },
        headers={"Api-Key": settings.provider_secret(provider)},
    )
    answer: dict[str, Any] = response.json()
    assert answer["StatusCode"] == 0, answer
    data: dict[str, Any] = answer["Data"]
    return data


async def _kaspi_app(
    sim: httpx.AsyncClient, settings: Settings, provider: str, step: str, payment_id: int
) -> str:
    """What the customer does in the Kaspi app (Kaspi's test emulator): scan or confirm."""
    response = await sim.post(
        f"/providers/{provider}/test/payment/{step}",
        json={"QrPaymentId": payment_id},
        headers={"Api-Key": settings.provider_secret(provider)},
    )
    answer: dict[str, Any] = response.json()
    assert answer["StatusCode"] == 0, answer
    status: str = answer["Data"]["Status"]
    return status


async def test_qr_payload_and_png_then_paid_and_found_by_polling(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """Kaspi QR: the player scans Kaspi's QrToken; Kaspi sends no callback, the workflow's
    status polls find the payment Processed."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "qr"))
    await _at_provider(sim, "kaspi_qr", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")

    at_kaspi = await _kaspi_payment(sim, settings, "kaspi_qr", deposit["id"])
    assert at_kaspi["Status"] == "QrTokenCreated"
    action = shown["next_action"]
    assert action["type"] == "qr"
    assert action["payload"] == at_kaspi["QrToken"]  # what the Kaspi app scans
    assert action["expires_at"] is not None
    assert shown["provider"] == "kaspi_qr"
    png = await api.get(f"/v1/deposits/{deposit['id']}/qr.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")

    kaspi_id = at_kaspi["QrPaymentId"]
    assert await _kaspi_app(sim, settings, "kaspi_qr", "scan", kaspi_id) == "Wait"
    assert await _kaspi_app(sim, settings, "kaspi_qr", "confirm", kaspi_id) == "Processed"
    done = await _finish(api, temporal_client, deposit, skip_time=True)  # the next poll finds it

    assert done["status"] == "succeeded"
    assert done["next_action"] is None
    assert _statuses(done) == ["pending", "requires_action", "processing", "succeeded"]
    assert ("inquiry", "inquiry_succeeded") in [(a["step"], a["outcome"]) for a in done["attempts"]]
    assert (await sim.get("/admin/callbacks", params={"reference": deposit["id"]})).json() == []
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _balance(api, player_id) == 250_000


async def test_qr_expires_unscanned_and_is_cancelled_at_the_provider(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "qr"))
    await _at_provider(sim, "kaspi_qr", deposit["id"])

    done = await _finish(
        api, temporal_client, deposit, skip_time=True
    )  # 15 minutes pass in no time

    assert done["status"] == "expired"
    assert done["status_reason"] == "expired:player_did_not_finish"
    assert _statuses(done) == ["pending", "requires_action", "expired"]
    log = await _at_provider(sim, "kaspi_qr", deposit["id"])
    assert log["payment"]["status"] == "cancelled"
    late = await sim.post(f"/pay/kaspi_qr/{deposit['id']}/confirm")
    assert late.status_code == 409  # a late scan is refused: nothing to pay any more
    assert await _credits(sessions, deposit["id"]) == 0


# -- bank transfer -----------------------------------------------------------------------------


async def test_bank_transfer_instructions_then_matching_transfer(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "bank_transfer", amount=1_000_000))
    await _at_provider(sim, "kazbank", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")

    instructions = shown["next_action"]
    assert instructions["type"] == "bank_transfer_instructions"
    assert instructions["reference"] == deposit["id"]
    assert instructions["amount"] == 1_000_000
    assert instructions["iban"].startswith("KZ")

    paid = await sim.post(f"/pay/kazbank/{deposit['id']}/transfer", params={"amount": 1_000_000})
    assert paid.json()["status"] == "succeeded"
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1


async def test_bank_transfer_of_another_amount_does_not_pay_and_instructions_expire(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "bank_transfer", amount=1_000_000))
    await _at_provider(sim, "kazbank", deposit["id"])
    await sim.post(f"/pay/kazbank/{deposit['id']}/transfer", params={"amount": 999_900})

    started = time.monotonic()
    handle = temporal_client.get_workflow_handle(deposit["workflow_id"])
    done = await _finish(api, temporal_client, deposit, skip_time=True)  # 72 hours pass in no time

    assert time.monotonic() - started < 60
    assert done["status"] == "expired"
    assert await _credits(sessions, deposit["id"]) == 0
    # The money did arrive at the bank: the operators hear of it (from the signed callback).
    alert = await _alert(sessions, f"amount_mismatch:{deposit['id']}")
    assert (alert.kind, alert.severity) == ("amount_mismatch", "critical")
    assert alert.details["reported_amount_minor"] == 999_900
    assert alert.details["expected_amount_minor"] == 1_000_000
    history = await handle.fetch_history()
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    assert timers, "the workflow waited on timers (polls with backoff up to the expiry)"


async def test_bank_transfer_unpaid_expires_after_days(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "bank_transfer"))
    await _at_provider(sim, "kazbank", deposit["id"])

    done = await _finish(api, temporal_client, deposit, skip_time=True)

    assert done["status"] == "expired"
    first, last = done["events"][0]["at"], done["events"][-1]["at"]
    assert first < last
    log = await _at_provider(sim, "kazbank", deposit["id"])
    assert log["payment"]["status"] == "cancelled"


# -- e-wallet ----------------------------------------------------------------------------------


async def test_ewallet_confirmed_in_the_wallet(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Freedom Pay's wallet: the player is sent to the wallet's page (pg_redirect_url) and
    confirms there; Freedom Pay's signed result callback wakes the workflow."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "ewallet", wallet_account="+77017654321"))
    await _at_provider(sim, "freedom_wallet", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "redirect"
    assert shown["next_action"]["url"].endswith(f"/pay/freedom_wallet/{deposit['id']}")
    page = await sim.get(f"/pay/freedom_wallet/{deposit['id']}")
    assert "Confirm in wallet" in page.text

    await sim.post(f"/pay/freedom_wallet/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)  # real time: the callback wakes it

    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _delivered(sim, deposit["id"], 1) == ["succeeded"]


async def test_ewallet_declined_for_insufficient_funds(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "ewallet", wallet_account="insufficient"))
    await _at_provider(sim, "freedom_wallet", deposit["id"])
    await sim.post(f"/pay/freedom_wallet/{deposit['id']}/confirm")

    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:insufficient_funds"
    assert await _credits(sessions, deposit["id"]) == 0


# -- mobile banking ----------------------------------------------------------------------------


async def test_mobile_banking_push_to_players_phone_confirmed_in_app(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """Kaspi Pay: a payment request pushed to the player's phone; no callback, polled."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking"))
    await _at_provider(sim, "kaspi_pay", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "app_confirm"
    assert shown["next_action"]["phone"] == "+7701***4567"  # the player's phone, masked
    at_kaspi = await _kaspi_payment(sim, settings, "kaspi_pay", deposit["id"])
    assert at_kaspi["Status"] == "RemotePaymentCreated"

    await sim.post(f"/pay/kaspi_pay/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit, skip_time=True)  # the next poll finds it
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1


async def test_mobile_banking_declined_in_app(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    """Kaspi reports a refusal as Status Error, with no reason."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking", phone="+77019998877"))
    await _at_provider(sim, "kaspi_pay", deposit["id"])
    await sim.post(f"/pay/kaspi_pay/{deposit['id']}/decline")

    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:kaspi_error"
    assert _statuses(done) == ["pending", "requires_action", "failed"]


async def test_mobile_banking_phone_without_account_fails_at_once(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    """A phone with no Kaspi account: the payment request is refused at once (Status Error)."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking", phone="+77010000000"))
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:kaspi_error"
    assert [(a["outcome"], a["unified_code"]) for a in done["attempts"]] == [
        ("declined", "declined")
    ]
    log = await _at_provider(sim, "kaspi_pay", deposit["id"])
    assert log["payment"]["status"] == "declined"


# -- aggregator --------------------------------------------------------------------------------


async def test_aggregator_hosted_page_player_picks_a_method(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
) -> None:
    """ioka: the player is sent to the order's hosted checkout_url; ioka's webhook completes it."""
    player_id = await new_player(api)
    deposit = await _create(
        api, _deposit(player_id, "aggregator", return_url="https://casino.example/back")
    )
    await _at_provider(sim, "ioka", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    orders = await sim.get(
        "/providers/ioka/v2/orders",
        params={"external_id": deposit["id"]},
        headers={"API-KEY": settings.provider_secret("ioka")},
    )
    [order] = orders.json()
    assert (order["status"], order["back_url"]) == ("UNPAID", "https://casino.example/back")
    assert shown["next_action"]["type"] == "redirect"
    assert shown["next_action"]["url"] == order["checkout_url"]

    paid = await sim.post(f"/pay/ioka/{deposit['id']}/confirm", params={"method": "qr"})
    assert paid.json()["paid_with"] == "qr"
    done = await _finish(api, temporal_client, deposit)  # real time: the webhook wakes it
    assert done["status"] == "succeeded"
    assert done["provider"] == "ioka"
    assert await _delivered(sim, deposit["id"], 1) == ["succeeded"]


# -- card: 3-D Secure, routing, failover, ambiguous timeout -----------------------------------


async def test_card_3ds_requires_action_then_callback(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id, number=THREE_DS_CARD))
    await _at_provider(sim, "halyk", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "redirect"
    assert shown["next_action"]["url"].endswith(f"/pay/halyk/{deposit['id']}")

    await sim.post(f"/pay/halyk/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert _statuses(done) == ["pending", "processing", "requires_action", "succeeded"]
    assert await _credits(sessions, deposit["id"]) == 1


async def test_card_3ds_failed_challenge_is_declined(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id, number=THREE_DS_CARD))
    await _at_provider(sim, "halyk", deposit["id"])
    await sim.post(f"/pay/halyk/{deposit['id']}/decline")
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:authentication_failed"


async def test_unionpay_is_routed_by_scheme_rule_to_the_second_acquirer(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id, number=UNIONPAY_OK))
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert done["provider"] == "freedom"
    assert done["card"]["scheme"] == "unionpay"


async def test_provider_outage_fails_over_to_the_next_acquirer(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))  # tokenized at both acquirers
    await sim.put("/admin/providers/halyk/behaviour", json={"outage": True})
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert done["provider"] == "freedom"
    # Halyk's token endpoint answers 503: no payment token, nothing was sent to pay.
    tries = [(a["provider"], a["attempt"], a["outcome"], a["error_code"]) for a in done["attempts"]]
    assert tries == [
        ("halyk", 1, "error", "token_unavailable"),
        ("halyk", 2, "error", "token_unavailable"),
        ("halyk", 3, "error", "token_unavailable"),
        ("freedom", 1, "succeeded", None),
    ]
    assert await _credits(sessions, deposit["id"]) == 1
    halyk = (await sim.get(f"/admin/providers/halyk/charges/{deposit['id']}")).json()
    assert halyk["charge"] is None


async def test_ambiguous_timeout_charged_at_first_provider_is_found_not_charged_again(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    # Halyk authorizes, then answers after our 1 s timeout: the inquiry finds it (and takes it).
    await sim.put(
        "/admin/providers/halyk/behaviour",
        json={"timeout_next": 1, "timeout_seconds": 3},
    )
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert done["provider"] == "halyk"
    assert [a["outcome"] for a in done["attempts"]] == ["timeout", "inquiry_succeeded"]
    halyk = (await sim.get(f"/admin/providers/halyk/charges/{deposit['id']}")).json()
    freedom = (await sim.get(f"/admin/providers/freedom/charges/{deposit['id']}")).json()
    assert halyk["calls"] == 1
    assert freedom["calls"] == 0  # never charged elsewhere
    assert await _credits(sessions, deposit["id"]) == 1


async def test_cancel_answered_404_with_a_request_in_flight_never_charges_twice(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Halyk cannot cancel an invoice it never saw (it cancels by its own transaction id, and
    check-status answers 102 "not found"), while the first charge request is still in the
    network (held 5 s). The workflow waits out Halyk's processing window (3 s in tests) and
    asks again: the request has landed, so the deposit succeeds there (the held payment taken
    with the charge operation), and freedom is never asked."""
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    await sim.put("/admin/providers/halyk/behaviour", json={"late_next": 3, "timeout_seconds": 5})
    done = await _finish(api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "halyk"), done
    charges = (await sim.get("/admin/charges", params={"reference": deposit["id"]})).json()
    moved = [c for c in charges if c["money_moved"]]
    assert [c["provider"] for c in moved] == ["halyk"], charges
    freedom = (await sim.get(f"/admin/providers/freedom/charges/{deposit['id']}")).json()
    assert freedom["calls"] == 0
    assert await _credits(sessions, deposit["id"]) == 1
    await keep(temporal_client, deposit["workflow_id"], "deposit_card_cancel_404_in_flight")


async def _halyk_api(
    sim: httpx.AsyncClient, settings: Settings, invoice: dict[str, str] | None = None
) -> dict[str, str]:
    """Authorization for Halyk ePay's own API: the client's token, or with `invoice` (invoiceID,
    amount, currency, secret_hash) a payment's token, good for that invoice only."""
    creds = credentials("halyk", settings.provider_secret("halyk"), settings.connector("halyk"))
    issued = await sim.post(
        "/providers/halyk/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "scope": "payment",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "terminal": creds.terminal,
            **(invoice or {}),
        },
    )
    assert issued.status_code == 200, issued.text
    return {"Authorization": f"Bearer {issued.json()['access_token']}"}


async def test_timeout_never_seen_fails_over_after_the_window_and_a_late_request_is_only_held(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """Every Halyk request is stuck in the network for 8 s: each of the 3 tries times out and
    the inquiry finds nothing. Halyk cancels by its transaction id only, so a reference it never
    saw cannot be closed: the workflow waits out Halyk's processing window (3 s in tests), asks
    again, finds nothing, and only then fails over to freedom. A stuck request that lands at
    Halyk after that is only an authorization (AUTH, held): Halyk takes money only with the
    charge operation, which nobody sends for it; the player pays once, at freedom."""
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    await sim.put("/admin/providers/halyk/behaviour", json={"late_next": 3, "timeout_seconds": 8})
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert done["provider"] == "freedom"
    steps = [(a["provider"], a["step"], a["outcome"]) for a in done["attempts"]]
    assert steps == [
        ("halyk", "charge", "timeout"),
        ("halyk", "charge", "timeout"),
        ("halyk", "charge", "timeout"),
        ("freedom", "charge", "succeeded"),
    ]
    history = await temporal_client.get_workflow_handle(deposit["workflow_id"]).fetch_history()
    waits = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in history.events
        if e.HasField("timer_started_event_attributes")
    ]
    halyk = settings.provider_rule("halyk")
    assert halyk is not None
    assert halyk.processing_window_seconds in waits, waits  # waited out before failing over
    assert await _credits(sessions, deposit["id"]) == 1

    # One of the stuck requests finally reaches Halyk (as the connector sends it: a payment
    # token for the invoice, then cards/auth with the card Halyk saved).
    card = await _stored_card(sessions, deposit["id"])
    invoice = invoice_id(deposit["id"])
    amount = tenge_text(deposit["amount"])
    payment_token = await _halyk_api(
        sim,
        settings,
        {
            "invoiceID": invoice,
            "amount": amount,
            "currency": "KZT",
            "secret_hash": secret_hash(settings.webhook_secret("halyk"), invoice),
        },
    )
    late = await sim.post(
        "/providers/halyk/payments/cards/auth",
        json={
            "amount": deposit["amount"] // 100,
            "currency": "KZT",
            "invoiceId": invoice,
            "description": deposit["id"],
            "paymentType": "cardId",
            "cardId": {"id": card["tokens"]["halyk"]},
        },
        headers=payment_token,
    )
    assert late.status_code == 200, late.text
    assert late.json()["status"] == "AUTH"  # held on the card, not taken
    status = await sim.get(
        f"/providers/halyk/check-status/payment/transaction/{invoice}",
        headers=await _halyk_api(sim, settings),
    )
    assert status.json()["transaction"]["statusName"] == "AUTH", status.text
    freedom = (await sim.get(f"/admin/providers/freedom/charges/{deposit['id']}")).json()
    assert freedom["charge"]["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _balance(api, player_id) == deposit["amount"]


async def _stored_card(
    sessions: async_sessionmaker[AsyncSession], deposit_id: str
) -> dict[str, Any]:
    from db.models import Deposit

    async with sessions() as session:
        card = (await session.get_one(Deposit, deposit_id)).card
    assert card is not None
    return card


async def test_circuit_opens_after_failures_and_routing_skips_the_provider(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
) -> None:
    player_id = await new_player(api)
    await sim.put("/admin/providers/halyk/behaviour", json={"fail_next": 6})
    for _ in range(2):  # 6 failed charge calls (503): past the threshold of 5 in a row
        first = await _finish(api, temporal_client, await _create(api, card_deposit(player_id)))
        assert first["provider"] == "freedom"

    done = await _finish(api, temporal_client, await _create(api, card_deposit(player_id)))
    assert done["status"] == "succeeded"
    assert [
        (a["step"], a["provider"], a["outcome"], a["unified_code"]) for a in done["attempts"]
    ] == [
        ("route", "halyk", "skipped", "circuit_open"),
        ("charge", "freedom", "succeeded", None),
    ]

    health = await operator_api.get("/v1/ops/providers")
    assert health.status_code == 200, health.text
    by_name = {p["provider"]: p for p in health.json()["data"]}
    assert by_name["halyk"]["circuit"]["state"] == "open"
    assert by_name["halyk"]["circuit"]["consecutive_failures"] >= 5
    assert by_name["freedom"]["circuit"]["state"] == "closed"
    assert by_name["freedom"]["success_rate"] > 0
    assert by_name["freedom"]["latency_p95_ms"] is not None
    assert {p["method"] for p in by_name.values()} >= {"card", "qr", "bank_transfer"}


async def test_ops_providers_needs_the_operator_role(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/ops/providers")
    assert response.status_code == 403


# -- callbacks: duplicate, out of order, lost; forged and replayed ------------------------------


async def test_duplicate_and_out_of_order_callbacks_are_harmless(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """ioka's webhook sent twice, then a stale one (the order still UNPAID) after them."""
    await sim.put(
        "/admin/providers/ioka/behaviour",
        json={"callback_duplicate": True, "callback_out_of_order": True, "callback_delay_ms": 200},
    )
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    await sim.post(f"/pay/ioka/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)

    assert await _delivered(sim, deposit["id"], 3) == ["succeeded", "succeeded", "processing"]
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _balance(api, player_id) == 250_000


async def test_full_outage_of_the_only_qr_provider_fails_cleanly(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Kaspi answers 503 with StatusCode -999 (service unavailable): nothing was processed."""
    await sim.put("/admin/providers/kaspi_qr/behaviour", json={"outage": True})
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "qr"))
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_error:kaspi_qr:unavailable"
    assert [(a["outcome"], a["unified_code"]) for a in done["attempts"]] == [
        ("error", "provider_unavailable")
    ] * 3
    assert await _credits(sessions, deposit["id"]) == 0


async def test_lost_callback_is_covered_by_polling_the_provider(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """ioka's webhook never arrives: the workflow's status polls find the order PAID."""
    await sim.put("/admin/providers/ioka/behaviour", json={"callback_lost": True})
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    await sim.post(f"/pay/ioka/{deposit['id']}/confirm")

    done = await _finish(api, temporal_client, deposit, skip_time=True)

    assert done["status"] == "succeeded"
    assert ("inquiry", "inquiry_succeeded") in [(a["step"], a["outcome"]) for a in done["attempts"]]
    assert (await sim.get("/admin/callbacks", params={"reference": deposit["id"]})).json() == []
    assert await _credits(sessions, deposit["id"]) == 1


def _signed(
    secret: str, payload: dict[str, Any], *, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The platform's common callback format (`providers.signing`), which no provider of the
    default routing writes."""
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if at is None else at
    return body, {
        "content-type": "application/json",
        SIGNATURE_HEADER: sign(secret, stamp, body),
        TIMESTAMP_HEADER: str(stamp),
    }


def _event(reference: str, amount: int) -> dict[str, Any]:
    """A payment's success as the simulator's callback encoders take it."""
    return {
        "reference": reference,
        "status": "succeeded",
        "amount": amount,
        "currency": "KZT",
        "provider_payment_id": "pay_x",
        "event_id": f"evt_{reference}",
        "sent_at": datetime.now(UTC).isoformat(),
    }


async def test_forged_and_replayed_webhooks_are_refused_and_change_nothing(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Unsigned, forged, another provider's key, replayed (old timestamp, or a new timestamp on
    the old signature) and tampered webhooks at ioka (`X-Signature`: hex HMAC-SHA256 over
    `{X-Timestamp}.{body}`); the other providers' schemes are tested below."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    await _until_status(api, deposit["id"], "requires_action")
    event = _event(deposit["id"], 250_000)
    url = "/v1/webhooks/ioka"
    secret = settings.webhook_secret("ioka")

    unsigned = await api.post(url, content=ioka_callback(secret, event)[0])
    body, headers = ioka_callback("not-the-secret", event)
    forged = await api.post(url, content=body, headers=headers)
    body, headers = ioka_callback(settings.webhook_secret("kazbank"), event)  # another key
    other_key = await api.post(url, content=body, headers=headers)
    body, headers = ioka_callback(secret, event)
    then = int(time.time()) - 400  # captured 400 s ago (the tolerance is 300 s)
    old = {
        **headers,
        ioka.SIGNATURE_HEADER: ioka.sign(secret, then, body),
        ioka.TIMESTAMP_HEADER: str(then),
    }
    replayed = await api.post(url, content=body, headers=old)
    restamped = await api.post(
        url, content=body, headers={**old, ioka.TIMESTAMP_HEADER: str(int(time.time()))}
    )
    body, headers = ioka_callback(secret, event)
    tampered = await api.post(url, content=body.replace(b"250000", b"950000"), headers=headers)

    for response, code in [
        (unsigned, "signature_missing"),
        (forged, "invalid_signature"),
        (other_key, "invalid_signature"),
        (replayed, "stale_timestamp"),
        (restamped, "invalid_signature"),
        (tampered, "invalid_signature"),
    ]:
        assert (response.status_code, response.json()["code"]) == (401, code), response.text
    unknown = await api.post("/v1/webhooks/nobank", content=body, headers=headers)
    assert unknown.status_code == 404

    still = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert still["status"] == "requires_action"
    assert await _credits(sessions, deposit["id"]) == 0

    # The real player pays; ioka's own signed webhook completes the deposit.
    await sim.post(f"/pay/ioka/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    late = await api.post(url, content=body, headers=headers)  # a verified callback after the end
    assert late.status_code == 200
    assert late.json()["outcome"] == "already_final"


def _freedom_wallet_callback(
    settings: Settings,
) -> Callable[[str, dict[str, Any]], tuple[bytes, dict[str, str]]]:
    """Freedom Pay's result form, signed for the script of our result URL (the simulator learns
    it from the order's pg_result_url: told here, in this process)."""

    def encode(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        result_url = f"{settings.api_url}/v1/webhooks/freedom_wallet"
        remember_order(event["reference"], None, result_url)
        return freedom_wallet_callback(secret, event)

    return encode


@pytest.mark.parametrize(
    ("provider", "method", "details", "written"),
    [
        ("kazbank", "bank_transfer", {}, b'"5000.10"'),
        ("freedom_wallet", "ewallet", {"wallet_account": "+77011234567"}, b"pg_amount=5000.10"),
        ("ioka", "aggregator", {}, b'"amount": 500010'),
    ],
)
async def test_callbacks_are_taken_only_as_each_provider_signs_them_and_confirmed_by_inquiry(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    provider: str,
    method: str,
    details: dict[str, str],
    written: bytes,
) -> None:
    """The providers of the default routing that call back each sign (and write) their callback
    their own way: KazBank (HMAC over a millisecond timestamp and the JSON body, the amount
    "5000.10"), the Freedom Pay wallet (a form with pg_sig, pg_amount=5000.10), ioka (hex HMAC
    over `{X-Timestamp}.{body}`, the integer 500010). The platform's common format is refused,
    so is one signed with another key; theirs completes the deposit of 500010 exactly, once
    the provider's own answer confirms it (the payment is made at the simulator with its
    callbacks lost, then the test signs one). Kaspi sends none; cards are tested elsewhere."""
    await sim.put(f"/admin/providers/{provider}/behaviour", json={"callback_lost": True})
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, method, amount=500_010, **details))
    await _at_provider(sim, provider, deposit["id"])
    await _until_status(api, deposit["id"], "requires_action")
    secret = settings.webhook_secret(provider)
    url = f"/v1/webhooks/{provider}"
    paid = {"reference": deposit["id"], "status": "succeeded", "amount": 500_010, "currency": "KZT"}

    body, headers = _signed(secret, paid)  # the common format, with the right key
    common = await api.post(url, content=body, headers=headers)
    # No signature where the provider puts it; Freedom Pay's is in the form, and JSON is none.
    refused = "invalid_signature" if provider == "freedom_wallet" else "signature_missing"
    assert (common.status_code, common.json()["code"]) == (401, refused), common.text
    encode = {
        "kazbank": kazbank_callback,
        "freedom_wallet": _freedom_wallet_callback(settings),
        "ioka": ioka_callback,
    }[provider]
    event = _event(deposit["id"], 500_010)
    body, headers = encode("not-the-secret", event)
    forged = await api.post(url, content=body, headers=headers)
    assert (forged.status_code, forged.json()["code"]) == (401, "invalid_signature")
    assert written in body
    still = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert still["status"] == "requires_action"

    if provider == "kazbank":
        await sim.post(f"/pay/{provider}/{deposit['id']}/transfer", params={"amount": 500_010})
    else:
        await sim.post(f"/pay/{provider}/{deposit['id']}/confirm")
    body, headers = encode(secret, event)
    accepted = await api.post(url, content=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    if provider == "freedom_wallet":  # answered as Freedom Pay expects: its signed XML
        assert "<pg_status>ok</pg_status>" in accepted.text
    else:
        assert accepted.json() == {"received": True, "outcome": "signalled"}, accepted.text
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _balance(api, player_id) == 500_010


async def test_methods_validate_their_details(api: httpx.AsyncClient) -> None:
    player_id = await new_player(api)
    cases = [
        (_deposit(player_id, "ewallet"), "invalid_details"),
        (_deposit(player_id, "mobile_banking", phone="+79991234567"), "invalid_details"),
        (_deposit(player_id, "qr", extra="x"), "invalid_details"),
        (_deposit(player_id, "ewallet", 2_000_000_00, wallet_account="a"), "method_unavailable"),
    ]
    for body, code in cases:
        response = await api.post(
            "/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert (response.status_code, response.json()["code"]) == (422, code), response.text


async def test_card_is_vaulted_at_every_eligible_acquirer_without_the_number(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], temporal_client: Client
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    await _finish(api, temporal_client, deposit)
    async with sessions() as session:
        card = await session.scalar(
            text("SELECT card FROM deposits WHERE id = :id"), {"id": deposit["id"]}
        )
    assert set(card["tokens"]) == {"halyk", "freedom", "cloudpayments"}
    assert VISA_OK not in json.dumps(card)
