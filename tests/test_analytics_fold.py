"""The worker folds the analytics rollups on the primary (workflows/analytics.py): the
workflow moves the pending deltas and keeps the closed days' percentiles, a second run finds
nothing to do, and the schedule that runs it every minute is created once and kept to its
definition at each worker start."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.analytics import AnalyticsActivities
from config import Settings
from db import rollups
from tests.analytics_helpers import _deposit, _player, _withdrawal
from tests.conftest import BIN, _result
from tests.histories_helpers import keep
from tests.test_analytics_rollups import _assert_rollups_exact
from worker import workflow_runner
from workflows.analytics import (
    FOLD_EVERY,
    FOLD_SCHEDULE_ID,
    RollupFoldResult,
    RollupFoldWorkflow,
    ensure_fold_schedule,
)


async def _payments(sessions: async_sessionmaker[AsyncSession], day: date) -> None:
    """Two deposits and a paid withdrawal on `day` (UTC noon: that day in Almaty)."""
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    player = _player()
    rows: list[Any] = []
    for n, seconds in enumerate((4.0, 9.0)):
        rows += _deposit(
            player,
            at=at + timedelta(minutes=n),
            amount=1_000,
            status="succeeded",
            done_after=seconds,
        )
    rows += _withdrawal(player, at=at, amount=500, status="paid", done_after=120)
    async with sessions.begin() as session:
        session.add(player)
        await session.flush()
        session.add_all(rows)


async def _pending_and_kept(
    sessions: async_sessionmaker[AsyncSession], day: date
) -> tuple[int, list[tuple[str, int, float]]]:
    async with sessions() as session:
        pending = await session.scalar(
            text("SELECT count(*) FROM completion_daily_deltas WHERE day = :d"), {"d": day}
        )
        kept = (
            await session.execute(
                text(
                    "SELECT kind, n, median FROM completion_day_percentiles "
                    "WHERE day = :d AND currency = 'KZT' ORDER BY kind"
                ),
                {"d": day},
            )
        ).all()
    return int(pending or 0), [(k, int(n), float(m)) for k, n, m in kept]


async def test_the_fold_workflow_folds_and_keeps_closed_days_and_is_idempotent(
    temporal_client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    day = date(2004, 9, 14)  # closed, and no other test's
    await _payments(sessions, day)
    assert await _pending_and_kept(sessions, day) == (3, [])

    async def run() -> RollupFoldResult:
        handle = await temporal_client.start_workflow(
            RollupFoldWorkflow.run,
            id=f"test-fold-{uuid.uuid4().hex[:8]}",
            task_queue=settings.temporal_task_queue,
        )
        await _result(handle)
        result: RollupFoldResult = await handle.result()
        await keep(temporal_client, handle.id, "analytics_rollup_fold")
        return result

    first = await run()
    assert first.deltas >= 3  # this test's, and whatever other tests left pending
    # Folded, and the day's exact percentiles kept: the median of 4 s and 9 s is 6.5 s.
    assert await _pending_and_kept(sessions, day) == (
        0,
        [("deposit", 2, 6.5), ("withdrawal", 1, 120.0)],
    )
    await _assert_rollups_exact(sessions)
    # Nothing left to fold from this test: a second run changes nothing of its day.
    await run()
    assert await _pending_and_kept(sessions, day) == (
        0,
        [("deposit", 2, 6.5), ("withdrawal", 1, 120.0)],
    )


async def test_the_fold_schedule_is_kept_and_runs_the_fold(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """On a Temporal dev server (the time-skipping one has no Schedule API): created once,
    brought to its definition again at the next worker start, and triggered it folds."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=pydantic_data_converter
    )
    try:
        queue = f"analytics-dev-{uuid.uuid4().hex[:6]}"
        activities = AnalyticsActivities(sessions=sessions)
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RollupFoldWorkflow],
            activities=[activities.fold_rollups],
            workflow_runner=workflow_runner(),
        ):
            day = date(2004, 9, 21)
            await _payments(sessions, day)  # before the schedule: whichever run folds them
            first = await ensure_fold_schedule(env.client, task_queue=queue)
            again = await ensure_fold_schedule(env.client, task_queue=queue)
            assert first == again == FOLD_SCHEDULE_ID
            schedule = env.client.get_schedule_handle(FOLD_SCHEDULE_ID)
            described = await schedule.describe()
            action = described.schedule.action
            assert isinstance(action, ScheduleActionStartWorkflow)
            assert action.workflow == "RollupFoldWorkflow"
            assert [i.every for i in described.schedule.spec.intervals] == [FOLD_EVERY]
            await schedule.trigger()
            await _first_run(env.client, schedule)
            pending, kept = await _pending_and_kept(sessions, day)
            assert (pending, [kind for kind, _, _ in kept]) == (0, ["deposit", "withdrawal"])
            await schedule.delete()
    finally:
        await env.shutdown()


async def _first_run(client: Client, schedule: ScheduleHandle) -> RollupFoldResult:
    """The triggered schedule starts its workflow soon, not at once (no event to await here)."""
    for _ in range(200):
        recent = (await schedule.describe()).info.recent_actions
        if recent:
            started = recent[-1].action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            handle = client.get_workflow_handle(started.workflow_id, result_type=RollupFoldResult)
            result: RollupFoldResult = await handle.result()
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule never started its workflow")


async def test_a_day_closed_since_the_last_fold_is_kept_by_the_next_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """At midnight the day before closes with no new delta: the fold keeps it (played here by
    forgetting the latest kept day, which the fold then finds after the last day kept)."""
    await _payments(sessions, date(2004, 10, 5))
    async with sessions() as session:
        await rollups.fold(session)
    forget = (
        "DELETE FROM completion_day_percentiles WHERE (kind, currency, day) IN ("
        "SELECT kind, currency, max(day) FROM completion_day_percentiles GROUP BY 1, 2) "
        "RETURNING kind, currency, day, n, in_time, with_deadline, median, p95"
    )
    async with sessions.begin() as session:
        forgotten = sorted((await session.execute(text(forget))).all())
    assert forgotten
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM completion_daily_deltas")) == 0
        await rollups.fold(session)
    async with sessions() as session:
        kept = sorted(
            (
                await session.execute(
                    text(
                        "SELECT kind, currency, day, n, in_time, with_deadline, median, p95 "
                        "FROM completion_day_percentiles WHERE (kind, currency, day) IN ("
                        "SELECT kind, currency, max(day) FROM completion_day_percentiles "
                        "GROUP BY 1, 2)"
                    )
                )
            ).all()
        )
    assert kept == forgotten
    await _assert_rollups_exact(sessions)
