"""Late money is never dropped, and a callback's word never moves money."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.gateway_models import ProviderEvent
from config import Settings
from simulator.dialects import kzqr_callback
from tests import test_gateway as gateway
from tests.conftest import new_player
from tests.histories_helpers import keep
from tests.test_gateway import _at_provider, _create, _credits, _deposit, _finish
from workflows.deposit import DepositWorkflow
from workflows.late_payment import late_payment_workflow_id

api_server = gateway.api_server  # the API on the port the simulator calls back
sim = gateway.sim  # the simulator's admin API, reset after each test


async def test_a_success_after_expiry_opens_a_case_and_credits_once(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """KZQR reports the QR paid after the order expired, and repeats the callback twice."""
    await sim.put(
        "/admin/providers/kzqr/behaviour",
        json={
            "late_success_after_expiry": True,
            "late_success_delay_ms": 300,
            "callback_same_event_repeat": 2,
        },
    )
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "qr"))
    await _at_provider(sim, "kzqr", deposit["id"])
    expired = await _finish(api, temporal_client, deposit, skip_time=True)
    assert expired["status"] == "expired"

    case = await _case_when(operator_api, deposit["id"], lambda c: c["resolution"] != "open")
    assert (case["provider"], case["policy"], case["resolution"]) == ("kzqr", "credit", "credited")
    assert case["deposit_status"] == "expired"
    await temporal_client.get_workflow_handle(
        late_payment_workflow_id(deposit["id"], "kzqr")
    ).result()
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    async with sessions() as session:
        severity = await session.scalar(
            text("SELECT severity FROM alerts WHERE dedupe_key = :k"),
            {"k": f"late_payment:{deposit['id']}:kzqr"},
        )
    assert severity == "critical"
    await keep(
        temporal_client, late_payment_workflow_id(deposit["id"], "kzqr"), "late_payment_credited"
    )


async def test_a_signal_claiming_payment_credits_nothing_until_the_provider_confirms(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Whoever can signal the workflow cannot credit an unpaid deposit: it asks the provider."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "qr"))
    await _at_provider(sim, "kzqr", deposit["id"])
    handle = temporal_client.get_workflow_handle(deposit["workflow_id"])
    for currency in ("KZT", "USD"):
        await handle.signal(
            DepositWorkflow.provider_event,
            ProviderEvent(
                provider="kzqr",
                reference=deposit["id"],
                status="succeeded",
                amount_minor=deposit["amount"],
                currency=currency,
            ),
        )
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == "expired"
    assert await _credits(sessions, deposit["id"]) == 0


async def test_the_same_signed_callback_twice_is_taken_once(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sim.put("/admin/providers/kzqr/behaviour", json={"callback_lost": True})
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "qr"))
    await _at_provider(sim, "kzqr", deposit["id"])
    await sim.post(f"/pay/kzqr/{deposit['id']}/confirm")
    event = {
        "reference": deposit["id"],
        "status": "succeeded",
        "amount": deposit["amount"],
        "currency": "KZT",
        "provider_payment_id": "pay_x",
        "event_id": "evt_once",
        "sent_at": "now",
    }
    body, headers = kzqr_callback(settings.webhook_secret("kzqr"), event)
    first = await api.post("/v1/webhooks/kzqr", content=body, headers=headers)
    again = await api.post("/v1/webhooks/kzqr", content=body, headers=headers)
    assert first.json()["outcome"] == "signalled", first.text
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1


async def test_a_repeated_success_for_the_credited_deposit_opens_no_case(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The very payment the deposit was credited for, reported again after the workflow ended:
    not late, no refund asked, nothing changes."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "qr"))
    await _at_provider(sim, "kzqr", deposit["id"])
    await sim.post(f"/pay/kzqr/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == "succeeded"
    event = {
        "reference": deposit["id"],
        "status": "succeeded",
        "amount": deposit["amount"],
        "currency": "KZT",
        "provider_payment_id": "pay_again",
        "event_id": f"evt_again_{deposit['id']}",
        "sent_at": "now",
    }
    body, headers = kzqr_callback(settings.webhook_secret("kzqr"), event)
    again = await api.post("/v1/webhooks/kzqr", content=body, headers=headers)
    assert again.json()["outcome"] == "already_final", again.text
    listed = (await operator_api.get("/v1/ops/late-payments")).json()["data"]
    assert [c for c in listed if c["deposit_id"] == deposit["id"]] == []
    assert await _credits(sessions, deposit["id"]) == 1


async def _statement_line(sim: httpx.AsyncClient, amount: int, reference: str) -> None:
    booked = await sim.post(
        "/admin/providers/kazbank/statement-lines",
        json={"amount": amount, "purpose": f"Payment for order {reference.upper()} thanks"},
    )
    assert booked.status_code == 201, booked.text


async def test_a_late_transfer_short_then_topped_up_is_a_case_then_credited_once(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """After the bank transfer expired, the player sends part of it, then the rest: the short
    part opens a case for an operator (another amount); the top-up makes it whole and the
    policy credits it, once."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "bank_transfer", amount=1_000_000))
    await _at_provider(sim, "kazbank", deposit["id"])
    assert (await _finish(api, temporal_client, deposit, skip_time=True))["status"] == "expired"

    await _statement_line(sim, 600_000, deposit["id"])
    short = await _case_when(operator_api, deposit["id"], lambda c: c["policy"] == "manual")
    assert (short["amount_minor"], short["resolution"]) == (600_000, "open")
    assert await _credits(sessions, deposit["id"]) == 0

    await _statement_line(sim, 400_000, deposit["id"])
    whole = await _case_when(operator_api, deposit["id"], lambda c: c["resolution"] == "credited")
    assert whole["amount_minor"] == 1_000_000
    assert await _credits(sessions, deposit["id"]) == 1
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "succeeded"


async def test_a_live_transfer_of_another_amount_is_flagged_then_becomes_a_case(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Paid over the amount while the order is open: not credited, flagged stuck at once with
    what arrived; when the order's time is up, the money is a late-payment case."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "bank_transfer", amount=1_000_000))
    await _at_provider(sim, "kazbank", deposit["id"])
    await _statement_line(sim, 1_100_000, deposit["id"])
    for _ in range(400):  # written by the workflow after its next poll: no event to await
        stuck = (await operator_api.get("/v1/ops/stuck", params={"older_than": "1d"})).json()
        mine = [p for p in stuck["data"] if p["id"] == deposit["id"]]
        if mine:
            break
        await asyncio.sleep(0.05)
    assert mine, "the over-paid deposit was never flagged"
    assert mine[0]["stuck_reason"].startswith("amount_mismatch_at:kazbank")
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert (done["status"], done["status_reason"]) == ("expired", "expired:amount_mismatch")
    case = await _case_when(operator_api, deposit["id"], lambda c: c["policy"] == "manual")
    assert case["amount_minor"] == 1_100_000
    assert await _credits(sessions, deposit["id"]) == 0


async def _case_when(
    operator_api: httpx.AsyncClient, deposit_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The deposit's late-payment case once `ready` (written by a workflow: no event)."""
    for _ in range(400):
        listed = (await operator_api.get("/v1/ops/late-payments")).json()["data"]
        mine = [c for c in listed if c["deposit_id"] == deposit_id and ready(c)]
        if mine:
            case: dict[str, Any] = mine[0]
            return case
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such late-payment case for {deposit_id}")


async def test_a_signed_callback_with_a_nul_byte_is_refused_with_400(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """Signed does not mean well-formed: a NUL in the reference never reaches the database."""
    event = {
        "reference": "dep_\x00x",
        "status": "succeeded",
        "amount": 1,
        "currency": "KZT",
        "provider_payment_id": "pay_x",
        "event_id": "evt_nul",
        "sent_at": "now",
    }
    body, headers = kzqr_callback(settings.webhook_secret("kzqr"), event)
    answer = await api.post("/v1/webhooks/kzqr", content=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_callback"), answer.text
