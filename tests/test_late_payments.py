"""Late money is never dropped, and a callback's word never moves money."""

import asyncio
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


async def _case(operator_api: httpx.AsyncClient, deposit_id: str) -> dict[str, Any]:
    """The deposit's late-payment case once resolved (written by a workflow: no event)."""
    for _ in range(400):
        listed = (await operator_api.get("/v1/ops/late-payments")).json()["data"]
        mine = [c for c in listed if c["deposit_id"] == deposit_id]
        if mine and mine[0]["resolution"] != "open":
            case: dict[str, Any] = mine[0]
            return case
        await asyncio.sleep(0.05)
    raise AssertionError(f"no resolved late-payment case for {deposit_id}")


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

    case = await _case(operator_api, deposit["id"])
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
