"""One scenario per path of the released workflows. Each checks its outcome and keeps its
history (tests/histories_helpers.keep) when `python -m tests.record_histories` runs them; the
replay test replays every kept history, so a change that breaks replay fails CI."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db.models import Deposit
from tests import test_gateway as gateway
from tests.conftest import VISA_DECLINED, VISA_OK, card_deposit, deposit_and_wait, new_player
from tests.histories_helpers import keep
from tests.test_gateway import THREE_DS_CARD, _at_provider, _create, _deposit, _finish
from tests.test_withdrawals import (
    closed_iban,
    create,
    finished,
    fund,
    iban_withdrawal,
    wager,
)
from workflows.monitoring import MonitoringInput, MonitoringWorkflow

# The gateway tests' fixtures: the API on the port the simulator calls back, the simulator's
# admin API (every provider's behaviour reset after each test).
api_server = gateway.api_server
sim = gateway.sim

# -- deposits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "status", "name"),
    [(VISA_OK, "succeeded", "card_succeeded"), (VISA_DECLINED, "failed", "card_declined")],
)
async def test_card(
    api: httpx.AsyncClient, temporal_client: Client, number: str, status: str, name: str
) -> None:
    player = await new_player(api)
    done = await deposit_and_wait(api, temporal_client, card_deposit(player, number=number))
    assert done["status"] == status
    await keep(temporal_client, done["workflow_id"], f"deposit_{name}")


async def test_card_3ds(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player, number=THREE_DS_CARD))
    await _at_provider(sim, "halyk", deposit["id"])
    await sim.post(f"/pay/halyk/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == "succeeded"
    await keep(temporal_client, deposit["workflow_id"], "deposit_card_3ds_succeeded")


_METHODS: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
    ("qr", "kaspi_qr", {}, "confirm", {}),
    ("bank_transfer", "kazbank", {}, "transfer", {"amount": 250_000}),
    ("ewallet", "freedom_wallet", {"wallet_account": "tw-7701"}, "confirm", {}),
    ("mobile_banking", "kaspi_pay", {"phone": "+77011234567"}, "confirm", {}),
    ("aggregator", "ioka", {"return_url": "https://casino.example/back"}, "confirm", {}),
]


@pytest.mark.parametrize(("method", "provider", "details", "action", "params"), _METHODS)
@pytest.mark.parametrize("paid", [True, False], ids=["paid", "expired"])
async def test_asynchronous_method(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    method: str,
    provider: str,
    details: dict[str, Any],
    action: str,
    params: dict[str, Any],
    paid: bool,
) -> None:
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, method, **details))
    await _at_provider(sim, provider, deposit["id"])
    if paid:
        await sim.post(f"/pay/{provider}/{deposit['id']}/{action}", params=params)
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == ("succeeded" if paid else "expired"), done
    outcome = "paid" if paid else "expired"
    await keep(temporal_client, deposit["workflow_id"], f"deposit_{method}_{outcome}")


async def test_failover_after_the_first_acquirer_settles_it_never_saw_the_charge(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    await sim.put("/admin/providers/halyk/behaviour", json={"fail_next": 3})
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player))
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert (done["status"], done["provider"]) == ("succeeded", "freedom")
    await keep(temporal_client, deposit["workflow_id"], "deposit_card_failover")


async def test_ambiguous_timeout_settled_by_inquiry(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    await sim.put(
        "/admin/providers/halyk/behaviour", json={"timeout_next": 1, "timeout_seconds": 3}
    )
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player))
    done = await _finish(api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "halyk")
    await keep(temporal_client, deposit["workflow_id"], "deposit_card_timeout_settled")


async def test_success_found_by_polling_when_the_callback_is_lost(
    api: httpx.AsyncClient, temporal_client: Client, sim: httpx.AsyncClient
) -> None:
    await sim.put("/admin/providers/kaspi_qr/behaviour", json={"callback_lost": True})
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "qr"))
    await _at_provider(sim, "kaspi_qr", deposit["id"])
    await sim.post(f"/pay/kaspi_qr/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == "succeeded"
    await keep(temporal_client, deposit["workflow_id"], "deposit_qr_paid_callback_lost")


# -- withdrawals ------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["approve", "reject", "cancel"])
async def test_withdrawal_review(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    decision: str,
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 60_000_00))
    actor = api if decision == "cancel" else operator_api
    body = {"reason": "checked"} if decision != "cancel" else None
    answer = await actor.post(f"/v1/withdrawals/{created['id']}/{decision}", json=body)
    assert answer.status_code == 200, answer.text
    done = await finished(api, temporal_client, created)
    expected = {"approve": "paid", "reject": "rejected", "cancel": "cancelled"}[decision]
    assert done["status"] == expected
    await keep(temporal_client, created["workflow_id"], f"withdrawal_{decision}")


async def _payout_token(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, deposit_id: str
) -> str:
    """The deposit's card as vaulted at the provider that pays out to cards (Freedom Pay pays
    only to a card it holds)."""
    async with sessions() as session:
        deposit = await session.get_one(Deposit, deposit_id)
    assert deposit.card is not None
    return str(deposit.card["tokens"][settings.payout_providers["card"]])


async def test_withdrawal_auto_approved_and_paid(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    player = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player, 200_000_00))
    await wager(sessions, player, 200_000_00)
    token = await _payout_token(sessions, settings, deposit["id"])
    body = {"player_id": player, "amount": 150_000_00, "currency": "KZT", "method": "card"}
    created = await create(api, {**body, "destination": {"card_token": token}})
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid"
    await keep(temporal_client, created["workflow_id"], "withdrawal_auto_paid")


async def test_withdrawal_payout_failed(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 30_000_00, closed_iban()))
    await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    done = await finished(api, temporal_client, created)
    assert done["status"] == "failed"
    await keep(temporal_client, created["workflow_id"], "withdrawal_payout_failed")


async def test_withdrawal_escalated(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 10_000_00))
    await temporal_env.sleep(timedelta(hours=5))
    await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    done = await finished(api, temporal_client, created)
    assert (done["status"], done["escalated_at"] is not None) == ("paid", True)
    await keep(temporal_client, created["workflow_id"], "withdrawal_escalated")


# -- monitoring --------------------------------------------------------------------------------


async def test_monitoring_runs_then_continues_as_new(
    temporal_client: Client, settings: Any
) -> None:
    workflow_id = f"monitoring-path-{uuid.uuid4().hex[:6]}"
    handle = await temporal_client.start_workflow(
        MonitoringWorkflow.run,
        MonitoringInput(interval_seconds=1, runs_per_history=2),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
    )
    first = temporal_client.get_workflow_handle(workflow_id, run_id=handle.first_execution_run_id)
    # Awaited through its history, not result(): the time-skipping client's result() unlocks
    # time skipping and, ending in continue-as-new, left it unbalanced for later tests.
    async for event in first.fetch_history_events(wait_new_event=True):
        if event.HasField("workflow_execution_continued_as_new_event_attributes"):
            break
    history = await first.fetch_history()
    assert history.events
    latest = temporal_client.get_workflow_handle(workflow_id)
    await latest.terminate("recorded")
    assert (await latest.describe()).status == WorkflowExecutionStatus.TERMINATED
    await keep(temporal_client, workflow_id, "monitoring", run_id=handle.first_execution_run_id)
