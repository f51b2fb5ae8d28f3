"""Payouts of winnings (issue 17): financial monitoring of large and split payouts, and the
3-calendar-day payout deadline with its alerts under the time-skipping test server."""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db import withdrawals as withdrawal_store
from db.models import PaymentEvent
from domain.compliance.deadlines import payout_deadline
from providers.registry import provider_http_client
from stack.search_attributes import ensure_search_attributes
from tests.conftest import BIN, _result, make_iin, player_body
from tests.histories_helpers import keep
from tests.test_withdrawals import fund, iban_withdrawal
from worker import build_worker

KZT = 100  # minor units per tenge


async def _player(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    created = await api.post("/v1/players", json=player_body(**overrides))
    assert created.status_code == 201, created.text
    player: dict[str, Any] = created.json()
    return player


async def _started(client: Client, workflow_id: str) -> WorkflowExecutionDescription:
    for _ in range(100):
        try:
            return await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.1)  # another workflow's step: nothing to await here
    raise AssertionError(f"{workflow_id} was not started")


async def _skipping(client: Client, workflow_id: str) -> Any:
    service = client.test_service
    await service.unlock_time_skipping(UnlockTimeSkippingRequest())
    try:
        handle = client.get_workflow_handle(workflow_id)
        await _result(handle)
        return await handle.result()
    finally:
        await service.lock_time_skipping(LockTimeSkippingRequest())


async def paid_out(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    client: Client,
    player_id: str,
    amount: int,
) -> tuple[str, list[str]]:
    """A withdrawal approved and paid; its id and the reports its screening made."""
    created = await api.post(
        "/v1/withdrawals",
        json=iban_withdrawal(player_id, amount),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert created.status_code == 202, created.text
    withdrawal = created.json()
    approved = await operator_api.post(f"/v1/withdrawals/{withdrawal['id']}/approve")
    assert approved.status_code in (200, 409), approved.text
    await _result(client.get_workflow_handle(withdrawal["workflow_id"]))
    shown = (await api.get(f"/v1/withdrawals/{withdrawal['id']}")).json()
    assert shown["status"] == "paid", shown
    # Awaited without skipping time: the series is judged on the payouts' own times.
    handle = client.get_workflow_handle(f"compliance-payout-{withdrawal['id']}")
    await _result(handle)
    screened = await handle.result()
    return withdrawal["id"], list(screened["report_ids"])


async def test_a_large_payout_and_a_split_series_land_in_the_report_queue(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # 1,200,000 KZT in one payout.
    big = await _player(api)
    await fund(sessions, big["id"], 2_000_000 * KZT, wagered=True)
    big_id, reports = await paid_out(api, operator_api, temporal_client, big["id"], 1_200_000 * KZT)
    [threshold_id] = reports
    report = (await operator_api.get(f"/v1/compliance/reports/{threshold_id}")).json()
    assert (report["kind"], report["status"], report["total"]) == (
        "threshold",
        "pending",
        1_200_000 * KZT,
    )
    assert [p["payment_id"] for p in report["payments"]] == [big_id]
    assert report["person_id"] == big["person_id"]
    assert report["threshold"] == 1_000_000 * KZT

    # 3 x 400,000 KZT within a week, across two linked accounts of one person.
    iin = make_iin()
    first = await _player(api, iin=iin)
    second = await _player(api, iin=iin, link_to=first["id"])
    for account in (first, second):
        await fund(sessions, account["id"], 1_000_000 * KZT, wagered=True)
    pieces = []
    for account in (first, second, first):
        payment_id, made = await paid_out(
            api, operator_api, temporal_client, account["id"], 400_000 * KZT
        )
        pieces.append((payment_id, made))
    assert [made for _, made in pieces[:2]] == [[], []]  # 400,000 and 800,000: not yet
    [split_id] = pieces[2][1]
    await keep(temporal_client, f"compliance-payout-{pieces[2][0]}", "compliance_payout_split")
    split = (await operator_api.get(f"/v1/compliance/reports/{split_id}")).json()
    assert split["kind"] == "split"
    assert split["total"] == 1_200_000 * KZT
    assert sorted(p["payment_id"] for p in split["payments"]) == sorted(p for p, _ in pieces)
    assert {p["player_id"] for p in split["payments"]} == {first["id"], second["id"]}
    assert split["first_paid_at"] <= split["last_paid_at"]

    # Two payouts of 400,000 KZT of another person: under the threshold, no report.
    small = await _player(api)
    await fund(sessions, small["id"], 1_000_000 * KZT, wagered=True)
    for _ in range(2):
        assert (await paid_out(api, operator_api, temporal_client, small["id"], 400_000 * KZT))[
            1
        ] == []

    queue = await operator_api.get("/v1/compliance/reports", params={"status": "pending"})
    assert queue.status_code == 200
    ids = [r["id"] for r in queue.json()["data"]]
    assert threshold_id in ids
    assert split_id in ids
    only_split = await operator_api.get(
        "/v1/compliance/reports", params={"kind": "split", "person_id": first["person_id"]}
    )
    assert [r["id"] for r in only_split.json()["data"]] == [split_id]
    paged = await operator_api.get("/v1/compliance/reports", params={"limit": 1})
    assert paged.json()["next_cursor"]
    second_page = await operator_api.get(
        "/v1/compliance/reports", params={"limit": 1, "cursor": paged.json()["next_cursor"]}
    )
    assert second_page.json()["data"][0]["id"] != paged.json()["data"][0]["id"]
    assert (await api.get("/v1/compliance/reports")).status_code == 403  # operators only

    # Exported as CSV (one line per payout) and JSON.
    exported = await operator_api.get(
        "/v1/compliance/reports/export", params={"format": "csv", "kind": "split"}
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("report_id,kind,status,person_id,iin,")
    assert sum(1 for line in lines if line.startswith(split_id)) == 3
    as_json = await operator_api.get("/v1/compliance/reports/export", params={"format": "json"})
    assert {r["id"] for r in as_json.json()["data"]} >= {threshold_id, split_id}

    # Marked submitted, with the date and who did it; the first submission stands.
    filed_at = "2026-01-15T09:30:00+00:00"
    submitted = await operator_api.post(
        f"/v1/compliance/reports/{split_id}/submit",
        json={"submitted_at": filed_at, "reference": "AFM-2026-0001"},
    )
    assert submitted.status_code == 200, submitted.text
    done = submitted.json()
    assert done["status"] == "submitted"
    assert datetime.fromisoformat(done["submitted_at"]) == datetime.fromisoformat(filed_at)
    assert done["submitted_by_name"] == "test operator"
    assert done["submission_reference"] == "AFM-2026-0001"
    again = await operator_api.post(f"/v1/compliance/reports/{split_id}/submit")
    assert again.json()["submitted_at"] == done["submitted_at"]
    pending = await operator_api.get("/v1/compliance/reports", params={"status": "pending"})
    assert split_id not in {r["id"] for r in pending.json()["data"]}
    missing = await operator_api.post("/v1/compliance/reports/fmr_nope/submit")
    assert missing.status_code == 404
    alerts = await operator_api.get(
        "/v1/ops/alerts", params={"kind": "financial_monitoring_report"}
    )
    assert split_id in {a["details"]["report_id"] for a in alerts.json()["data"]}


async def _withdrawal_row(
    sessions: async_sessionmaker[AsyncSession],
    player_id: str,
    *,
    created_at: datetime,
    status: str = "in_review",
) -> str:
    """A withdrawal as its workflow would have left it (no workflow of its own here)."""
    withdrawal_id = f"wd_{uuid.uuid4().hex[:20]}"
    async with sessions.begin() as session:
        await withdrawal_store.create_withdrawal(
            session,
            withdrawal_id=withdrawal_id,
            player_id=player_id,
            amount_minor=10_000 * KZT,
            currency="KZT",
            method="bank_transfer",
            destination={"iban": "KZ.."},
            destination_fingerprint=uuid.uuid4().hex,
            provider="kazbank",
            approvals_needed=1,
            workflow_id=f"withdrawal-{withdrawal_id}",
            created_at=created_at,
        )
        await session.execute(
            text("UPDATE withdrawals SET status = :s WHERE id = :id"),
            {"s": status, "id": withdrawal_id},
        )
    return withdrawal_id


async def _row(sessions: async_sessionmaker[AsyncSession], withdrawal_id: str) -> Any:
    async with sessions() as session:
        return (
            await session.execute(
                text(
                    "SELECT payout_deadline, deadline_warned_at, deadline_escalated_at "
                    "FROM withdrawals WHERE id = :id"
                ),
                {"id": withdrawal_id},
            )
        ).one()


async def _alert_kinds(sessions: async_sessionmaker[AsyncSession], withdrawal_id: str) -> set[str]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT kind, severity FROM alerts WHERE details->>'payment_id' = :id"),
            {"id": withdrawal_id},
        )
        return {f"{row.kind}:{row.severity}" for row in rows}


@pytest.fixture
async def own_clock(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[WorkflowEnvironment, Settings]]:
    """A time-skipping server of this test's own, with a worker: days skipped here fire only
    this test's timers, not those of every workflow the session's other tests left waiting."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        await ensure_search_attributes(env.client, env.client.namespace)
        mine = settings.model_copy(update={"temporal_task_queue": f"clock-{uuid.uuid4().hex[:8]}"})
        async with (
            provider_http_client(mine) as http,
            build_worker(env.client, mine, sessions=sessions, http=http),
        ):
            yield env, mine
    finally:
        await env.shutdown()


async def test_a_payout_not_made_in_3_days_is_warned_a_day_before_and_escalated(
    api: httpx.AsyncClient,
    own_clock: tuple[WorkflowEnvironment, Settings],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    temporal_env, settings = own_clock
    temporal_client = temporal_env.client
    player = await _player(api)
    now = await temporal_env.get_current_time()  # the test server's clock (it skips ahead)
    late = await _withdrawal_row(sessions, player["id"], created_at=now)
    deadline = (await _row(sessions, late)).payout_deadline
    assert deadline == payout_deadline(now)  # the trigger and the reference formula agree
    assert timedelta(days=3) < deadline - now <= timedelta(days=4)

    handle = await temporal_client.start_workflow(
        "PayoutDeadlineWorkflow",
        {"withdrawal_id": late},
        id=f"payout-deadline-{late}",
        task_queue=settings.temporal_task_queue,
    )
    result = await _skipping(temporal_client, handle.id)
    assert result["outcome"] == "escalated"
    await keep(temporal_client, handle.id, "payout_deadline_escalated")
    row = await _row(sessions, late)
    assert abs(row.deadline_warned_at - (deadline - timedelta(hours=24))) < timedelta(minutes=1)
    assert abs(row.deadline_escalated_at - deadline) < timedelta(minutes=1)
    assert await _alert_kinds(sessions, late) == {
        "payout_deadline_near:high",
        "payout_deadline_missed:critical",
    }

    # Paid half a day in, the run ends at its first check: no alert.
    on_time = await _withdrawal_row(
        sessions, player["id"], created_at=await temporal_env.get_current_time()
    )
    await temporal_client.start_workflow(
        "PayoutDeadlineWorkflow",
        {"withdrawal_id": on_time},
        id=f"payout-deadline-{on_time}",
        task_queue=settings.temporal_task_queue,
    )
    await temporal_env.sleep(timedelta(hours=12))
    async with sessions.begin() as session:
        await session.execute(
            text("UPDATE withdrawals SET status = 'paid' WHERE id = :id"), {"id": on_time}
        )
    closed = await _skipping(temporal_client, f"payout-deadline-{on_time}")
    assert (closed["outcome"], closed["status"]) == ("closed", "paid")
    await keep(temporal_client, f"payout-deadline-{on_time}", "payout_deadline_closed")
    assert (await _row(sessions, on_time)).deadline_warned_at is None
    assert await _alert_kinds(sessions, on_time) == set()


async def test_every_withdrawal_shows_its_deadline_and_the_queue_is_sorted_by_it(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await _player(api)
    await fund(sessions, player["id"], 100_000 * KZT, wagered=True)
    created = await api.post(
        "/v1/withdrawals",
        json=iban_withdrawal(player["id"], 10_000 * KZT),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    withdrawal = created.json()
    requested = datetime.fromisoformat(withdrawal["created_at"])
    assert datetime.fromisoformat(withdrawal["payout_deadline"]) == payout_deadline(requested)
    assert withdrawal["deadline_state"] == "on_time"
    # Its deadline workflow was started with it (by the withdrawal's workflow, just after).
    started = await _started(temporal_client, f"payout-deadline-{withdrawal['id']}")
    assert started.workflow_type == "PayoutDeadlineWorkflow"

    other = await _player(api)
    now = datetime.now(UTC)
    rows = [
        await _withdrawal_row(sessions, other["id"], created_at=now - timedelta(days=days))
        for days in (1, 4, 3)
    ]
    queue = await operator_api.get(
        "/v1/withdrawals",
        params={"status": "in_review", "order": "deadline", "player_id": other["id"], "limit": 2},
    )
    assert queue.status_code == 200, queue.text
    page = queue.json()
    assert [w["id"] for w in page["data"]] == [rows[1], rows[2]]  # the nearest deadline first
    assert [w["deadline_state"] for w in page["data"]] == ["overdue", "due_soon"]
    rest = await operator_api.get(
        "/v1/withdrawals",
        params={
            "status": "in_review",
            "order": "deadline",
            "player_id": other["id"],
            "cursor": page["next_cursor"],
        },
    )
    assert [w["id"] for w in rest.json()["data"]] == [rows[0]]
    assert rest.json()["next_cursor"] is None
    bad = await operator_api.get("/v1/withdrawals", params={"order": "deadline", "cursor": "x"})
    assert bad.status_code == 400


async def test_the_analytics_show_the_share_of_payouts_paid_in_time(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await _player(api)
    # A day of its own, far back, that no other test writes to.
    day = datetime(2019, 1, 1, 6, tzinfo=UTC) + timedelta(days=random.randrange(300))
    in_time = await _withdrawal_row(sessions, player["id"], created_at=day, status="paid")
    late = await _withdrawal_row(sessions, player["id"], created_at=day, status="paid")
    async with sessions.begin() as session:
        for withdrawal_id, after in ((in_time, timedelta(days=1)), (late, timedelta(days=5))):
            session.add(
                PaymentEvent(payment_id=withdrawal_id, status="paid", occurred_at=day + after)
            )
    summary = await operator_api.get(
        "/v1/analytics/summary",
        params={"from": day.isoformat(), "to": (day + timedelta(hours=1)).isoformat()},
    )
    assert summary.status_code == 200, summary.text
    withdrawals = summary.json()["totals"]["withdrawals"]
    assert (withdrawals["paid"], withdrawals["paid_in_time"]) == (2, 1)
    assert withdrawals["paid_in_time_rate"] == 0.5
    shown = (await api.get(f"/v1/withdrawals/{late}")).json()
    assert shown["deadline_state"] == "paid_late"
