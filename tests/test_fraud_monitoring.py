"""Monitoring of withdrawals (stuck queues, payout failures) and its periodic run in Temporal."""

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db import monitoring
from db import withdrawals as withdrawal_store
from db.fraud_models import Alert
from domain.fraud.config import DEFAULT_RULES_PATH, load_rule_set
from tests.test_fraud_store import player
from workflows.monitoring import MONITORING_WORKFLOW_ID, MonitoringWorkflow, start_monitoring

RULES = load_rule_set(DEFAULT_RULES_PATH)


def uid() -> str:
    return uuid.uuid4().hex[:12]


async def withdrawal(
    session: AsyncSession,
    player_id: str,
    *,
    status: str,
    updated_at: datetime,
    provider: str = "halyk",
) -> str:
    withdrawal_id = f"wd_{uid()}"
    await withdrawal_store.create_withdrawal(
        session,
        withdrawal_id=withdrawal_id,
        player_id=player_id,
        amount_minor=10_000_00,
        currency="KZT",
        method="bank_transfer",
        destination={"iban": "KZ.."},
        destination_fingerprint=uid(),
        provider=provider,
        approvals_needed=1,
        workflow_id=f"withdrawal-{withdrawal_id}",
        created_at=updated_at,
    )
    await session.execute(
        text("UPDATE withdrawals SET status = :s, updated_at = :t WHERE id = :id"),
        {"s": status, "t": updated_at, "id": withdrawal_id},
    )
    return withdrawal_id


async def test_withdrawals_stuck_and_failing_payouts_raise_alerts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # An hour of its own far ahead, so the hourly alert keys are this test's alone.
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=random.randint(400, 40_000))
    failing, healthy, few = (f"payout-{uid()}" for _ in range(3))
    async with sessions.begin() as session:
        me = await player(session)
        await withdrawal(session, me, status="in_review", updated_at=now - timedelta(hours=5))
        await withdrawal(session, me, status="processing", updated_at=now - timedelta(hours=1))
        # Fresh ones are not stuck: an hour in review, minutes in processing.
        await withdrawal(session, me, status="in_review", updated_at=now - timedelta(hours=1))
        for n in range(6):  # 2 of 6 failed: 33% > 20%
            status = "failed" if n < 2 else "paid"
            await withdrawal(
                session, me, status=status, updated_at=now - timedelta(minutes=3), provider=failing
            )
        for n in range(10):  # 1 of 10: under the ceiling
            status = "failed" if n < 1 else "paid"
            await withdrawal(
                session, me, status=status, updated_at=now - timedelta(minutes=3), provider=healthy
            )
        # Too few to judge: 2 of 2 failed.
        for _ in range(2):
            await withdrawal(
                session,
                me,
                status="failed",
                updated_at=now - timedelta(minutes=3),
                provider=few,
            )
    thresholds = monitoring.MonitorThresholds()
    async with sessions.begin() as session:
        raised = await monitoring.run_checks(session, now=now, thresholds=thresholds, rules=RULES)
    bucket = f"{now:%Y%m%d%H}"
    assert f"payments_stuck:withdrawal:in_review:{bucket}" in raised
    assert f"payments_stuck:withdrawal:processing:{bucket}" in raised
    assert f"payout_failure_high:{failing}:{bucket}" in raised
    assert not [
        key for key in raised if key.startswith("payout_failure_high:") and failing not in key
    ]
    async with sessions() as session:
        alert = await session.scalar(
            select(Alert).where(Alert.dedupe_key == f"payout_failure_high:{failing}:{bucket}")
        )
    assert alert is not None
    assert (alert.severity, alert.subject) == ("critical", failing)
    assert alert.details == {"failure_pct": 33, "finished": 6, "failed": 2}
    async with sessions.begin() as session:
        again = await monitoring.run_checks(session, now=now, thresholds=thresholds, rules=RULES)
    assert again == []  # each alert once per key and hour


async def test_payouts_do_not_count_against_a_providers_approval_rate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Payout attempts answer `paid`, not `succeeded`: they are judged by the payout check."""
    from db.models import PaymentAttempt

    provider = f"prov-{uid()}"
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        for _ in range(12):
            session.add(
                PaymentAttempt(
                    payment_id=f"wd_{uid()}",
                    step="payout",
                    attempt_no=1,
                    provider=provider,
                    outcome="paid",
                    latency_ms=100,
                    created_at=now - timedelta(minutes=1),
                )
            )
    async with sessions.begin() as session:
        raised = await monitoring.run_checks(
            session, now=now, thresholds=monitoring.MonitorThresholds(), rules=RULES
        )
    assert not [key for key in raised if provider in key]


async def test_the_worker_runs_the_checks_periodically(
    temporal_env: WorkflowEnvironment,
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """`start_monitoring` (what the worker calls on start) runs the checks every interval on a
    durable timer; starting it again keeps the running one."""
    start = await temporal_env.get_current_time()
    failing = f"payout-{uid()}"
    async with sessions.begin() as session:
        me = await player(session)
        for _ in range(5):  # finished 15 min after the start: the third run's window sees them
            await withdrawal(
                session,
                me,
                status="failed",
                updated_at=start + timedelta(minutes=15),
                provider=failing,
            )
    await start_monitoring(
        temporal_client, task_queue=settings.temporal_task_queue, interval_seconds=600
    )
    handle = temporal_client.get_workflow_handle(MONITORING_WORKFLOW_ID)
    first = await handle.describe()
    await start_monitoring(
        temporal_client, task_queue=settings.temporal_task_queue, interval_seconds=600
    )
    assert (await handle.describe()).run_id == first.run_id
    try:
        await temporal_env.sleep(timedelta(minutes=25))
        runs = 0
        for _ in range(100):
            runs = await handle.query(MonitoringWorkflow.runs)
            if runs >= 3:
                break
            await asyncio.sleep(0.1)
        assert runs >= 3
        async with sessions() as session:
            keys = list(
                await session.scalars(
                    select(Alert.dedupe_key).where(
                        Alert.dedupe_key.like(f"payout_failure_high:{failing}:%")
                    )
                )
            )
        assert len(keys) == 1, keys
    finally:
        await handle.terminate("test over")
