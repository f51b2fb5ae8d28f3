"""What a hostile user or a broken step does to a workflow: it ends, or it is flagged stuck
with its reason, never retrying silently forever; a decision once taken stands."""

import asyncio
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db.models import Deposit
from tests.approval_helpers import signed
from tests.conftest import card_deposit, deposit_and_wait, new_player
from tests.test_withdrawals import create, finished, fund, iban_withdrawal
from workflows.deposit import DepositWorkflow
from workflows.deposit_models import DepositWorkflowInput
from workflows.steps import REASON_MAX, EventBuffer, reason
from workflows.withdrawal import ReviewInput, WithdrawalWorkflow


def test_reasons_are_printable_and_fit_their_column() -> None:
    many_rules = ",".join(f"rule_number_{i}" for i in range(40))
    assert len(reason("risk", many_rules)) == REASON_MAX
    assert reason("risk", many_rules).endswith("…")
    assert "\x00" not in reason("approved", "ok\x00\x1b[31m")
    assert reason("expired", "player_did_not_finish") == "expired:player_did_not_finish"


def test_the_callback_buffer_is_bounded_and_deduplicated() -> None:
    from activities.gateway_models import ProviderEvent

    buffer = EventBuffer()
    same = ProviderEvent(provider="kaspi_qr", reference="d", status="succeeded", amount_minor=1)
    assert buffer.add(same)
    assert not buffer.add(same.model_copy())  # the same event resent
    for i in range(100):
        buffer.add(same.model_copy(update={"provider_payment_id": f"p{i}"}))
    assert len(buffer._events) == EventBuffer.LIMIT


async def test_control_characters_in_a_review_reason_are_refused_with_4xx(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A NUL is refused by the API's JSON guard (400) before any handler; another control
    character by the review's own validation (422); neither records a review."""
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 60_000_00))
    nul = await operator_api.post(
        f"/v1/withdrawals/{created['id']}/approve", json={"reason": "ok\x00"}
    )
    assert (nul.status_code, nul.json()["code"]) == (400, "invalid_json"), nul.text
    bell = await operator_api.post(
        f"/v1/withdrawals/{created['id']}/approve", json={"reason": "ok\x07"}
    )
    assert bell.status_code == 422, bell.text
    shown = (await api.get(f"/v1/withdrawals/{created['id']}")).json()
    assert shown["reviews"] == []


async def test_a_nul_byte_reaching_the_workflow_is_recorded_clean_and_the_payout_ends(
    api: httpx.AsyncClient,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Past the API (a signal straight to Temporal), the reason is still cleaned: the review is
    recorded, the withdrawal is paid and its workflow ends."""
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 60_000_00))
    handle = temporal_client.get_workflow_handle(created["workflow_id"])
    review = ReviewInput(actor_id="op-1", actor_name="Op\x00", reason="fine\x00" + "x" * 600)
    review = await signed(  # with a valid token, as only the API can sign it
        review, settings=settings, env=temporal_env, workflow_id=handle.id, decision="approve"
    )
    await handle.execute_update(WithdrawalWorkflow.approve, review)
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid"
    [recorded] = done["reviews"]
    assert "\x00" not in recorded["reason"]
    assert len(recorded["reason"]) <= 500


async def test_cancel_and_approve_racing_leave_one_decision(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Whichever lands first stands; the other is answered 409 and writes nothing."""
    for _ in range(3):
        player = await new_player(api)
        await fund(sessions, player, 100_000_00, wagered=True)
        created = await create(api, iban_withdrawal(player, 60_000_00))
        cancel, approve = await asyncio.gather(
            api.post(f"/v1/withdrawals/{created['id']}/cancel"),
            operator_api.post(f"/v1/withdrawals/{created['id']}/approve"),
        )
        done = await finished(api, temporal_client, created)
        codes = {cancel.status_code, approve.status_code}
        assert 200 in codes, (cancel.text, approve.text)
        if done["status"] == "cancelled":
            assert approve.status_code == 409, approve.text
            assert done["status_reason"] == "cancelled_by_player"
        else:
            assert done["status"] == "paid", done
            assert cancel.status_code == 409, cancel.text
            assert done["status_reason"] is None or "approved_by" not in done["status_reason"]


async def test_an_approve_after_a_cancel_is_refused_by_the_workflow(
    api: httpx.AsyncClient,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 60_000_00))
    handle = temporal_client.get_workflow_handle(created["workflow_id"])
    actor = ReviewInput(actor_id="p", actor_name="player")
    cancel = await signed(
        actor, settings=settings, env=temporal_env, workflow_id=handle.id, decision="cancel"
    )
    await handle.execute_update(WithdrawalWorkflow.cancel, cancel)
    approve = await signed(
        ReviewInput(actor_id="op", actor_name="op"),
        settings=settings,
        env=temporal_env,
        workflow_id=handle.id,
        decision="approve",
    )
    try:
        await handle.execute_update(WithdrawalWorkflow.approve, approve)
        raise AssertionError("an approve after the cancel was accepted")
    except (WorkflowUpdateFailedError, RPCError):  # the test server answers an RPC error
        pass
    done = await finished(api, temporal_client, created)
    assert (done["status"], done["status_reason"]) == ("cancelled", "cancelled_by_player")


async def test_an_outcome_that_cannot_be_settled_is_flagged_stuck_with_its_reason(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The provider holds a success for another amount under the deposit's reference: nothing
    is credited, the deposit stays with that provider, `/v1/ops/stuck` lists it at once with
    the step and why, and a critical alert is open."""
    player = await new_player(api)
    paid = await deposit_and_wait(api, temporal_client, card_deposit(player, 500_000))
    assert paid["status"] == "succeeded"
    async with sessions.begin() as session:
        row = await session.get_one(Deposit, paid["id"])
        assert row.card is not None
        twin = DepositWorkflowInput(
            deposit_id=row.id,
            player_id=player,
            amount_minor=400_000,  # another amount than the provider charged
            currency="KZT",
            card={
                "bin": row.card["bin"],
                "scheme": row.card["scheme"],
                "tokens": row.card["tokens"],
            },
        )
        await session.execute(
            text("UPDATE deposits SET status = 'processing' WHERE id = :id"), {"id": row.id}
        )
    handle = await temporal_client.start_workflow(
        DepositWorkflow.run,
        twin,
        id=f"twin-{uuid.uuid4().hex[:8]}",
        task_queue=(await _task_queue(temporal_client, paid["workflow_id"])),
    )
    flagged = await _until_flagged(sessions, paid["id"])
    assert flagged.startswith("outcome_unknown_at:"), flagged
    assert "amount_mismatch" in flagged
    stuck = await operator_api.get("/v1/ops/stuck", params={"older_than": "1d"})
    [listed] = [p for p in stuck.json()["data"] if p["id"] == paid["id"]]
    assert listed["stuck_reason"] == flagged
    assert listed["waiting_on"].startswith("stuck at outcome_unknown_at:")
    async with sessions() as session:
        severity = await session.scalar(
            text("SELECT severity FROM alerts WHERE dedupe_key LIKE :key"),
            {"key": f"payment_stuck:deposit:{paid['id']}:%"},
        )
    assert severity == "critical"
    await handle.terminate("test done")


async def _task_queue(client: Client, workflow_id: str) -> str:
    described = await client.get_workflow_handle(workflow_id).describe()
    return described.task_queue


async def _until_flagged(sessions: async_sessionmaker[AsyncSession], deposit_id: str) -> str:
    """The stuck reason once the workflow wrote it (a database write: no event to await)."""
    for _ in range(400):
        async with sessions() as session:
            found = await session.scalar(
                text("SELECT stuck_reason FROM deposits WHERE id = :id"), {"id": deposit_id}
            )
        if found:
            return str(found)
        await asyncio.sleep(0.05)
    raise AssertionError("the deposit was never flagged stuck")
