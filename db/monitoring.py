"""Monitoring beyond single payments: alerts, and the checks that raise them.

`run_checks` looks at the recent past and raises an alert (once per key and period) when
- a provider's approval rate in the window falls under a floor (`provider_approval_low`),
- a provider's p95 latency in the window rises over a ceiling (`provider_latency_high`),
- payments pile up in a non-terminal status for too long (`payments_stuck`): deposits, and
  withdrawals waiting for an operator (`in_review`) or for their payout (`pending`, `approved`,
  `processing`) past their own, longer, thresholds,
- a payout provider fails too many of the withdrawals it finished in the window
  (`payout_failure_high`),
- a player's recent payments, taken together, cross a velocity rule of the current rule set
  after the fact (`player_pattern`), e.g. deposits that were each fine when they were judged.

The worker runs it periodically (`workflows/monitoring.py`, `PAY_MONITORING_INTERVAL_SECONDS`);
`python -m db.monitoring` or `POST /v1/ops/alerts/check` run it once.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.fraud_models import Alert
from domain.fraud.config import RuleSet


@dataclass(frozen=True)
class MonitorThresholds:
    window_minutes: int = 15
    min_attempts: int = 10  # fewer attempts say nothing about a provider's health
    min_approval_pct: int = 70
    max_p95_latency_ms: int = 3000
    stuck_minutes: int = 10
    stuck_count: int = 5
    # Withdrawals: a review is escalated after 4 h by its workflow; the queue as a whole is
    # watched here. Payouts retry for up to 30 min before an inquiry decides.
    review_stuck_minutes: int = 240
    payout_stuck_minutes: int = 45
    withdrawal_stuck_count: int = 1
    min_payouts: int = 5  # fewer finished payouts say nothing about a payout provider
    max_payout_failure_pct: int = 20


async def raise_alert(
    session: AsyncSession,
    *,
    dedupe_key: str,
    kind: str,
    severity: str,
    subject: str,
    message: str,
    details: dict[str, Any],
) -> bool:
    """Insert the alert unless one with this key exists; True when it is new."""
    result = await session.execute(
        insert(Alert)
        .values(
            dedupe_key=dedupe_key,
            kind=kind,
            severity=severity,
            subject=subject,
            message=message,
            details=details,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Alert.id)
    )
    return result.scalar_one_or_none() is not None


async def list_alerts(
    session: AsyncSession,
    *,
    status: str | None,
    kind: str | None,
    limit: int,
    before_id: int | None = None,
) -> list[Alert]:
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Alert.status == status)
    if kind is not None:
        query = query.where(Alert.kind == kind)
    if before_id is not None:
        query = query.where(Alert.id < before_id)
    return list((await session.scalars(query)).all())


async def handle_alert(
    session: AsyncSession, *, alert_id: int, handled_by: str, note: str | None, now: datetime
) -> Alert | None:
    """Mark the alert handled; handling it again keeps the first handler (harmless)."""
    await session.execute(
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == "open")
        .values(status="handled", handled_at=now, handled_by=handled_by, note=note)
    )
    return await session.get(Alert, alert_id, populate_existing=True)


_PROVIDER_STATS = text(
    """
    SELECT provider,
           count(*) AS attempts,
           count(*) FILTER (WHERE outcome IN ('succeeded', 'inquiry_succeeded')) AS approved,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
    FROM payment_attempts
    WHERE created_at >= :since AND created_at <= :now AND step NOT LIKE 'payout%'
    GROUP BY provider
    """
)
_STUCK = text(
    """
    SELECT status, count(*) AS stuck, min(updated_at) AS oldest
    FROM deposits
    WHERE status IN ('pending', 'requires_action', 'processing') AND updated_at < :before
    GROUP BY status
    """
)
_WITHDRAWALS_STUCK = text(
    """
    SELECT status, count(*) AS stuck, min(updated_at) AS oldest
    FROM withdrawals
    WHERE (status = 'in_review' AND updated_at < :review_before)
       OR (status IN ('pending', 'approved', 'processing') AND updated_at < :payout_before)
    GROUP BY status
    """
)
_PAYOUT_STATS = text(
    """
    SELECT provider, count(*) AS finished, count(*) FILTER (WHERE status = 'failed') AS failed
    FROM withdrawals
    WHERE status IN ('paid', 'failed') AND updated_at >= :since AND updated_at <= :now
    GROUP BY provider
    """
)
_PLAYER_24H = text(
    """
    SELECT f.player_id, count(*) AS payments,
           coalesce(sum(f.amount_minor) FILTER (WHERE f.decision <> 'decline'), 0) AS total
    FROM fraud_decisions f
    WHERE f.kind = 'deposit' AND f.created_at >= :since AND f.created_at <= :now
      AND f.player_id IN (SELECT DISTINCT player_id FROM fraud_decisions
                          WHERE kind = 'deposit' AND created_at >= :recent)
    GROUP BY f.player_id
    HAVING count(*) > :max_count OR
           coalesce(sum(f.amount_minor) FILTER (WHERE f.decision <> 'decline'), 0) > :max_sum
    """
)


async def run_checks(
    session: AsyncSession, *, now: datetime, thresholds: MonitorThresholds, rules: RuleSet
) -> list[str]:
    """Raise what the checks find; returns the keys of the alerts that are new."""
    raised: list[str] = []
    window = timedelta(minutes=thresholds.window_minutes)
    bucket = f"{now:%Y%m%d%H}"

    async def alert(
        key: str, kind: str, severity: str, subject: str, msg: str, **details: Any
    ) -> None:
        if await raise_alert(
            session,
            dedupe_key=key,
            kind=kind,
            severity=severity,
            subject=subject,
            message=msg,
            details=details,
        ):
            raised.append(key)

    for row in (await session.execute(_PROVIDER_STATS, {"since": now - window, "now": now})).all():
        provider, attempts, approved, p95 = row
        if attempts >= thresholds.min_attempts:
            pct = 100 * approved // attempts
            if pct < thresholds.min_approval_pct:
                await alert(
                    f"provider_approval_low:{provider}:{bucket}",
                    "provider_approval_low",
                    "critical",
                    provider,
                    f"{provider}: {pct}% of {attempts} attempts approved in the last "
                    f"{thresholds.window_minutes} min (floor {thresholds.min_approval_pct}%)",
                    approval_pct=pct,
                    attempts=attempts,
                )
            if p95 is not None and p95 > thresholds.max_p95_latency_ms:
                await alert(
                    f"provider_latency_high:{provider}:{bucket}",
                    "provider_latency_high",
                    "warning",
                    provider,
                    f"{provider}: p95 latency {int(p95)} ms in the last "
                    f"{thresholds.window_minutes} min (ceiling {thresholds.max_p95_latency_ms} ms)",
                    p95_ms=int(p95),
                    attempts=attempts,
                )

    before = now - timedelta(minutes=thresholds.stuck_minutes)
    for status, stuck, oldest in (await session.execute(_STUCK, {"before": before})).all():
        if stuck >= thresholds.stuck_count:
            await alert(
                f"payments_stuck:deposit:{status}:{bucket}",
                "payments_stuck",
                "critical",
                f"deposit:{status}",
                f"{stuck} deposits in {status} for over {thresholds.stuck_minutes} min",
                status=status,
                count=stuck,
                oldest=oldest.isoformat(),
            )

    stuck_withdrawals = await session.execute(
        _WITHDRAWALS_STUCK,
        {
            "review_before": now - timedelta(minutes=thresholds.review_stuck_minutes),
            "payout_before": now - timedelta(minutes=thresholds.payout_stuck_minutes),
        },
    )
    for status, stuck, oldest in stuck_withdrawals.all():
        if stuck >= thresholds.withdrawal_stuck_count:
            minutes = (
                thresholds.review_stuck_minutes
                if status == "in_review"
                else thresholds.payout_stuck_minutes
            )
            await alert(
                f"payments_stuck:withdrawal:{status}:{bucket}",
                "payments_stuck",
                "warning" if status == "in_review" else "critical",
                f"withdrawal:{status}",
                f"{stuck} withdrawals in {status} for over {minutes} min",
                status=status,
                count=stuck,
                oldest=oldest.isoformat(),
            )

    payouts = await session.execute(_PAYOUT_STATS, {"since": now - window, "now": now})
    for provider, finished, failed in payouts.all():
        if finished >= thresholds.min_payouts:
            pct = 100 * failed // finished
            if pct > thresholds.max_payout_failure_pct:
                await alert(
                    f"payout_failure_high:{provider}:{bucket}",
                    "payout_failure_high",
                    "critical",
                    provider,
                    f"{provider}: {failed} of {finished} payouts failed in the last "
                    f"{thresholds.window_minutes} min (ceiling "
                    f"{thresholds.max_payout_failure_pct}%)",
                    failure_pct=pct,
                    finished=finished,
                    failed=failed,
                )

    velocity = rules.deposit.rules
    count_rule, sum_rule = velocity.get("velocity_count_24h"), velocity.get("velocity_sum_24h")
    if count_rule is not None or sum_rule is not None:
        max_count = count_rule.int("max") if count_rule else 2**62
        max_sum = sum_rule.int("max") if sum_rule else 2**62
        params = {
            "since": now - timedelta(hours=24),
            "recent": now - window,
            "now": now,
            "max_count": max_count,
            "max_sum": max_sum,
        }
        day = f"{now:%Y%m%d}"
        for player_id, payments, summed in (await session.execute(_PLAYER_24H, params)).all():
            total = int(summed)
            codes = []
            if payments > max_count:
                codes.append("velocity_count_24h")
            if total > max_sum:
                codes.append("velocity_sum_24h")
            await alert(
                f"player_pattern:{player_id}:{day}",
                "player_pattern",
                "warning",
                player_id,
                f"player {player_id}: {payments} deposits, {total} minor units in 24 h "
                f"cross {', '.join(codes)} (rule set {rules.version})",
                reasons=codes,
                payments=payments,
                total_minor=total,
                version=rules.version,
            )
    return raised


async def _main() -> None:
    from config import get_settings
    from db.engine import make_engine, make_sessionmaker
    from domain.fraud import RuleSource

    settings = get_settings()
    if not settings.database_url:
        raise SystemExit("PAY_DATABASE_URL is not set")
    engine = make_engine(settings.database_url, pool_size=1)
    rules = RuleSource(settings.fraud_rules_path, settings.fraud_rules_overlay).current()
    async with make_sessionmaker(engine).begin() as session:
        raised = await run_checks(
            session, now=datetime.now(UTC), thresholds=MonitorThresholds(), rules=rules
        )
    await engine.dispose()
    print(f"{len(raised)} new alert(s)", *raised, sep="\n")


if __name__ == "__main__":
    asyncio.run(_main())
