"""The payment gateway end to end: every deposit method through the API, the simulator's
providers over HTTP sending signed callbacks to the API served on a real port, the workflows on
the time-skipping Temporal server (so hours-long expiries take no time) and PostgreSQL."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
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
from providers.signing import (
    PAYHUB_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    sign_payhub,
)
from simulator.dialects import (
    bankapp_callback,
    kazbank_callback,
    kzqr_callback,
    payhub_callback,
    tengewallet_callback,
)
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


# -- QR ----------------------------------------------------------------------------------------


async def test_qr_payload_and_png_then_paid_by_callback(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "qr"))
    await _at_provider(sim, "kzqr", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")

    action = shown["next_action"]
    assert action["type"] == "qr"
    assert action["payload"].endswith(f"/pay/kzqr/{deposit['id']}")
    assert shown["provider"] == "kzqr"
    png = await api.get(f"/v1/deposits/{deposit['id']}/qr.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")

    scanned = await sim.post(f"/pay/kzqr/{deposit['id']}/confirm")
    assert scanned.json()["status"] == "succeeded"
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert done["next_action"] is None
    assert _statuses(done) == ["pending", "requires_action", "processing", "succeeded"]
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
    await _at_provider(sim, "kzqr", deposit["id"])

    done = await _finish(
        api, temporal_client, deposit, skip_time=True
    )  # 15 minutes pass in no time

    assert done["status"] == "expired"
    assert done["status_reason"] == "expired:player_did_not_finish"
    assert _statuses(done) == ["pending", "requires_action", "expired"]
    log = await _at_provider(sim, "kzqr", deposit["id"])
    assert log["payment"]["status"] == "cancelled"
    late = await sim.post(f"/pay/kzqr/{deposit['id']}/confirm")
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
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "ewallet", wallet_account="tw-7701"))
    await _at_provider(sim, "tengewallet", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "redirect"
    page = await sim.get(f"/pay/tengewallet/{deposit['id']}")
    assert "Confirm in wallet" in page.text

    await sim.post(f"/pay/tengewallet/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1


async def test_ewallet_declined_for_insufficient_funds(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "ewallet", wallet_account="insufficient"))
    await _at_provider(sim, "tengewallet", deposit["id"])
    await sim.post(f"/pay/tengewallet/{deposit['id']}/confirm")

    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:insufficient_funds"
    assert await _credits(sessions, deposit["id"]) == 0


# -- mobile banking ----------------------------------------------------------------------------


async def test_mobile_banking_push_to_players_phone_confirmed_in_app(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking"))
    await _at_provider(sim, "bankapp", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "app_confirm"
    assert shown["next_action"]["phone"] == "+7701***4567"  # the player's phone, masked

    await sim.post(f"/pay/bankapp/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"


async def test_mobile_banking_declined_in_app(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking", phone="+77019998877"))
    await _at_provider(sim, "bankapp", deposit["id"])
    await sim.post(f"/pay/bankapp/{deposit['id']}/decline")

    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:declined_by_payer"
    assert _statuses(done) == ["pending", "requires_action", "failed"]


async def test_mobile_banking_phone_without_account_fails_at_once(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking", phone="+77010000000"))
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_declined:not_a_customer"
    assert [(a["outcome"], a["unified_code"]) for a in done["attempts"]] == [
        ("declined", "payer_not_found")
    ]


# -- aggregator --------------------------------------------------------------------------------


async def test_aggregator_hosted_page_player_picks_a_method(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(
        api, _deposit(player_id, "aggregator", return_url="https://casino.example/back")
    )
    await _at_provider(sim, "payhub", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "redirect"
    assert shown["next_action"]["url"].endswith(f"/pay/payhub/{deposit['id']}")

    paid = await sim.post(f"/pay/payhub/{deposit['id']}/confirm", params={"method": "qr"})
    assert paid.json()["paid_with"] == "qr"
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert done["provider"] == "payhub"


# -- card: 3-D Secure, routing, failover, ambiguous timeout -----------------------------------


async def test_card_3ds_requires_action_then_callback(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id, number=THREE_DS_CARD))
    await _at_provider(sim, "kazcard", deposit["id"])
    shown = await _until_status(api, deposit["id"], "requires_action")
    assert shown["next_action"]["type"] == "redirect"
    assert shown["next_action"]["url"].endswith(f"/pay/kazcard/{deposit['id']}")

    await sim.post(f"/pay/kazcard/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert _statuses(done) == ["pending", "processing", "requires_action", "succeeded"]
    assert await _credits(sessions, deposit["id"]) == 1


async def test_card_3ds_failed_challenge_is_declined(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id, number=THREE_DS_CARD))
    await _at_provider(sim, "kazcard", deposit["id"])
    await sim.post(f"/pay/kazcard/{deposit['id']}/decline")
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
    assert done["provider"] == "altyncard"
    assert done["card"]["scheme"] == "unionpay"


async def test_provider_outage_fails_over_to_the_next_acquirer(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))  # tokenized at both acquirers
    await sim.put("/admin/providers/kazcard/behaviour", json={"outage": True})
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert done["provider"] == "altyncard"
    tries = [
        (a["provider"], a["attempt"], a["outcome"], a["unified_code"]) for a in done["attempts"]
    ]
    assert tries == [
        ("kazcard", 1, "error", "provider_unavailable"),
        ("kazcard", 2, "error", "provider_unavailable"),
        ("kazcard", 3, "error", "provider_unavailable"),
        ("altyncard", 1, "succeeded", None),
    ]
    assert await _credits(sessions, deposit["id"]) == 1
    kazcard = (await sim.get(f"/admin/providers/kazcard/charges/{deposit['id']}")).json()
    assert kazcard["charge"] is None


async def test_ambiguous_timeout_charged_at_first_provider_is_found_not_charged_again(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    # kazcard charges, then answers after our 1 s timeout; then its API fails (5xx) for a while.
    await sim.put(
        "/admin/providers/kazcard/behaviour",
        json={"timeout_next": 1, "timeout_seconds": 3},
    )
    done = await _finish(api, temporal_client, deposit)

    assert done["status"] == "succeeded"
    assert done["provider"] == "kazcard"
    assert [a["outcome"] for a in done["attempts"]] == ["timeout", "inquiry_succeeded"]
    kazcard = (await sim.get(f"/admin/providers/kazcard/charges/{deposit['id']}")).json()
    altyncard = (await sim.get(f"/admin/providers/altyncard/charges/{deposit['id']}")).json()
    assert kazcard["calls"] == 1
    assert altyncard["calls"] == 0  # never charged elsewhere
    assert await _credits(sessions, deposit["id"]) == 1


async def test_cancel_answered_404_with_a_request_in_flight_never_charges_twice(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """kazcard cannot cancel an order it never saw (404, nothing recorded), as real acquirers
    do, while the first charge request is still in the network (held 5 s). The workflow waits
    out kazcard's processing window (3 s in tests) and asks again: the request has landed, so
    the deposit succeeds there, and altyncard is never asked."""
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    await sim.put(
        "/admin/providers/kazcard/behaviour",
        json={"late_next": 3, "timeout_seconds": 5, "unknown_cancel": "not_found"},
    )
    done = await _finish(api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "kazcard"), done
    charges = (await sim.get("/admin/charges", params={"reference": deposit["id"]})).json()
    moved = [c for c in charges if c["money_moved"]]
    assert [c["provider"] for c in moved] == ["kazcard"], charges
    altyncard = (await sim.get(f"/admin/providers/altyncard/charges/{deposit['id']}")).json()
    assert altyncard["calls"] == 0
    assert await _credits(sessions, deposit["id"]) == 1
    await keep(temporal_client, deposit["workflow_id"], "deposit_card_cancel_404_in_flight")


async def test_timeout_never_seen_closes_the_reference_before_failing_over(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    player_id = await new_player(api)
    deposit = await _create(api, card_deposit(player_id))
    # Every kazcard request is stuck in the network for 8 s: each of the 3 tries times out, the
    # inquiry finds nothing. kazcard confirms the cancel of the reference it never saw (it keeps
    # a tombstone), so the reference is closed there before altyncard charges.
    await sim.put(
        "/admin/providers/kazcard/behaviour",
        json={"late_next": 3, "timeout_seconds": 8, "unknown_cancel": "tombstone"},
    )
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert done["provider"] == "altyncard"
    steps = [(a["provider"], a["outcome"]) for a in done["attempts"]]
    assert ("kazcard", "cancel_cancelled") in steps, steps
    assert await _credits(sessions, deposit["id"]) == 1

    # One of the stuck requests finally reaches kazcard: it is refused, the card is not charged.
    card = await _stored_card(sessions, deposit["id"])
    late = await sim.post(
        "/providers/kazcard/charges",
        json={
            "reference": deposit["id"],
            "token": card["tokens"]["kazcard"],
            "amount": deposit["amount"],
            "currency": "KZT",
        },
        headers={"Authorization": f"Bearer {settings.provider_secret('kazcard')}"},
    )
    assert late.json()["status"] == "cancelled"
    kazcard = (await sim.get(f"/admin/providers/kazcard/charges/{deposit['id']}")).json()
    assert kazcard["charge"]["status"] == "cancelled"


async def test_altyncard_speaks_its_own_gateway_api(
    sim: httpx.AsyncClient, settings: Settings
) -> None:
    """AltynCard answers only on `/gateway/...` with `X-Altyn-Key` and {fault: {code, text}}."""
    key = {"X-Altyn-Key": settings.provider_secret("altyncard")}
    common = await sim.post(
        "/providers/altyncard/tokens",
        json={"number": VISA_OK, "exp_month": 1, "exp_year": 2030, "cvc": "123"},
        headers={"Authorization": f"Bearer {settings.provider_secret('altyncard')}"},
    )
    assert common.status_code == 404
    card = {"pan": THREE_DS_CARD, "expiry": "01/2030", "securityCode": "123"}
    wrong_key = await sim.post(
        "/providers/altyncard/gateway/tokens", json=card, headers={"X-Altyn-Key": "nope"}
    )
    assert (wrong_key.status_code, wrong_key.json()["fault"]["code"]) == (401, "UNAUTHORIZED")
    bad_pan = await sim.post(
        "/providers/altyncard/gateway/tokens", json={**card, "pan": "4000000000000001"}, headers=key
    )
    assert (bad_pan.status_code, bad_pan.json()["fault"]["code"]) == (422, "INVALID_PAN")
    token = (await sim.post("/providers/altyncard/gateway/tokens", json=card, headers=key)).json()
    assert token["brand"] == "VISA"
    reference = f"dep_altyn_{uuid.uuid4().hex[:8]}"
    order = {
        "merchantReference": reference,
        "cardToken": token["cardToken"],
        "amount": {"minor": 500_010, "currency": "KZT"},
    }
    paid = await sim.post("/providers/altyncard/gateway/payments", json=order, headers=key)
    assert paid.json()["state"] == "CHALLENGE_REQUIRED", paid.text
    assert paid.json()["amount"] == {"minor": 500_010, "currency": "KZT"}
    fractional = {**order, "amount": {"minor": 5000.1, "currency": "KZT"}}
    refused = await sim.post("/providers/altyncard/gateway/payments", json=fractional, headers=key)
    assert (refused.status_code, refused.json()["fault"]["code"]) == (400, "INVALID_REQUEST")
    path = f"/providers/altyncard/gateway/payments/{reference}"
    voided = await sim.post(f"{path}/void", headers=key)
    assert (voided.json()["state"], voided.json()["refusalReason"]) == (
        "VOIDED",
        "CHALLENGE_TIMEOUT",
    )
    assert (await sim.get(path, headers=key)).json()["state"] == "VOIDED"
    missing = await sim.get(f"{path}_nope", headers=key)
    assert (missing.status_code, missing.json()["fault"]["code"]) == (404, "PAYMENT_NOT_FOUND")


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
    await sim.put("/admin/providers/kazcard/behaviour", json={"fail_next": 6})
    for _ in range(2):  # 6 failed charge calls (503): past the threshold of 5 in a row
        first = await _finish(api, temporal_client, await _create(api, card_deposit(player_id)))
        assert first["provider"] == "altyncard"

    done = await _finish(api, temporal_client, await _create(api, card_deposit(player_id)))
    assert done["status"] == "succeeded"
    assert [
        (a["step"], a["provider"], a["outcome"], a["unified_code"]) for a in done["attempts"]
    ] == [
        ("route", "kazcard", "skipped", "circuit_open"),
        ("charge", "altyncard", "succeeded", None),
    ]

    health = await operator_api.get("/v1/ops/providers")
    assert health.status_code == 200, health.text
    by_name = {p["provider"]: p for p in health.json()["data"]}
    assert by_name["kazcard"]["circuit"]["state"] == "open"
    assert by_name["kazcard"]["circuit"]["consecutive_failures"] >= 5
    assert by_name["altyncard"]["circuit"]["state"] == "closed"
    assert by_name["altyncard"]["success_rate"] > 0
    assert by_name["altyncard"]["latency_p95_ms"] is not None
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
    await sim.put(
        "/admin/providers/kzqr/behaviour",
        json={"callback_duplicate": True, "callback_out_of_order": True, "callback_delay_ms": 200},
    )
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "qr"))
    await _at_provider(sim, "kzqr", deposit["id"])
    await sim.post(f"/pay/kzqr/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)

    deadline = time.monotonic() + 20
    delivered: list[dict[str, Any]] = []
    while len(delivered) < 3 and time.monotonic() < deadline:  # deliveries run in the simulator
        delivered = (await sim.get("/admin/callbacks", params={"reference": deposit["id"]})).json()
        await asyncio.sleep(0.05)
    assert [c["status"] for c in delivered] == ["succeeded", "succeeded", "processing"]
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _balance(api, player_id) == 250_000


async def test_full_outage_of_the_only_qr_provider_fails_cleanly(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sim.put("/admin/providers/kzqr/behaviour", json={"outage": True})
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "qr"))
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "failed"
    assert done["status_reason"] == "provider_error:kzqr:service_unavailable"
    assert [a["outcome"] for a in done["attempts"]] == ["error", "error", "error"]
    assert await _credits(sessions, deposit["id"]) == 0


async def test_lost_callback_is_covered_by_polling_the_provider(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sim.put("/admin/providers/bankapp/behaviour", json={"callback_lost": True})
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "mobile_banking"))
    await _at_provider(sim, "bankapp", deposit["id"])
    await sim.post(f"/pay/bankapp/{deposit['id']}/confirm")

    done = await _finish(api, temporal_client, deposit, skip_time=True)

    assert done["status"] == "succeeded"
    assert ("inquiry", "inquiry_succeeded") in [(a["step"], a["outcome"]) for a in done["attempts"]]
    assert (await sim.get("/admin/callbacks", params={"reference": deposit["id"]})).json() == []
    assert await _credits(sessions, deposit["id"]) == 1


def _signed(
    secret: str, payload: dict[str, Any], *, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if at is None else at
    return body, {
        "content-type": "application/json",
        SIGNATURE_HEADER: sign(secret, stamp, body),
        TIMESTAMP_HEADER: str(stamp),
    }


async def test_forged_and_replayed_webhooks_are_refused_and_change_nothing(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Unsigned, forged, another provider's key, replayed and tampered callbacks, at `payhub`
    (`X-PayHub-Signature: ts=..;sig=..`); the other dialects are tested below."""
    player_id = await new_player(api)
    deposit = await _create(api, _deposit(player_id, "aggregator"))
    await _at_provider(sim, "payhub", deposit["id"])
    await _until_status(api, deposit["id"], "requires_action")
    paid = {"reference": deposit["id"], "status": "succeeded", "amount": 250_000, "currency": "KZT"}
    event = {
        **paid,
        "provider_payment_id": "pay_x",
        "event_id": f"evt_{deposit['id']}",
        "sent_at": "now",
    }
    url = "/v1/webhooks/payhub"
    secret = settings.webhook_secret("payhub")

    unsigned = await api.post(url, content=payhub_callback(secret, event)[0])
    body, headers = payhub_callback("not-the-secret", event)
    forged = await api.post(url, content=body, headers=headers)
    body, headers = payhub_callback(settings.webhook_secret("bankapp"), event)  # another key
    other_key = await api.post(url, content=body, headers=headers)
    body, headers = payhub_callback(secret, event)
    stale = {**headers, PAYHUB_SIGNATURE_HEADER: sign_payhub(secret, int(time.time()) - 400, body)}
    replayed = await api.post(url, content=body, headers=stale)
    body, headers = payhub_callback(secret, event)
    tampered = await api.post(url, content=body.replace(b"250000", b"950000"), headers=headers)

    for response, code in [
        (unsigned, "signature_missing"),
        (forged, "invalid_signature"),
        (other_key, "invalid_signature"),
        (replayed, "stale_timestamp"),
        (tampered, "invalid_signature"),
    ]:
        assert (response.status_code, response.json()["code"]) == (401, code), response.text
    unknown = await api.post("/v1/webhooks/nobank", content=body, headers=headers)
    assert unknown.status_code == 404

    still = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert still["status"] == "requires_action"
    assert await _credits(sessions, deposit["id"]) == 0

    # The real player pays; the provider's own signed callback completes the deposit.
    await sim.post(f"/pay/payhub/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    late = await api.post(url, content=body, headers=headers)  # a verified callback after the end
    assert late.status_code == 200
    assert late.json()["outcome"] == "already_final"


@pytest.mark.parametrize(
    ("provider", "method", "details"),
    [
        ("kazbank", "bank_transfer", {}),
        ("tengewallet", "ewallet", {"wallet_account": "tw-1"}),
        ("bankapp", "mobile_banking", {}),
        ("kzqr", "qr", {}),
        ("payhub", "aggregator", {}),
    ],
)
async def test_dialect_providers_callbacks_are_verified_their_own_way(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    provider: str,
    method: str,
    details: dict[str, str],
) -> None:
    """KazBank, TengeWallet, BankApp, KZQR and PayHub sign (and write) callbacks their own way: the
    common format is refused; theirs, with the amount as "5000.10" (BankApp, PayHub: the integer
    500010), completes the deposit of 500010 exactly, once the provider's own answer confirms
    it (the payment is made at the simulator with its callbacks lost, then the test signs one)."""
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
    assert (common.status_code, common.json()["code"]) == (401, "signature_missing")
    encode = {
        "kazbank": kazbank_callback,
        "tengewallet": tengewallet_callback,
        "bankapp": bankapp_callback,
        "kzqr": kzqr_callback,
        "payhub": payhub_callback,
    }[provider]
    event = {
        **paid,
        "provider_payment_id": "pay_x",
        "event_id": f"evt_{deposit['id']}",
        "sent_at": "now",
    }
    body, headers = encode("not-the-secret", event)
    forged = await api.post(url, content=body, headers=headers)
    assert (forged.status_code, forged.json()["code"]) == (401, "invalid_signature")
    assert (b"500010" if provider in ("bankapp", "payhub") else b"5000.10") in body

    if provider == "kazbank":
        await sim.post(f"/pay/{provider}/{deposit['id']}/transfer", params={"amount": 500_010})
    else:
        await sim.post(f"/pay/{provider}/{deposit['id']}/confirm")
    body, headers = encode(secret, event)
    accepted = await api.post(url, content=body, headers=headers)
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
    assert set(card["tokens"]) == {"kazcard", "altyncard"}
    assert VISA_OK not in json.dumps(card)
