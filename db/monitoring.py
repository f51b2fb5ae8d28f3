"""Monitoring beyond single payments: alerts, and the checks that raise them.

`run_checks` looks at the recent past and raises an alert (once per key and period) when
- a provider's approval rate for a method in the window falls under a floor
  (`provider_approval_low`): the provider's own answers only, approved against declined or
  failed; a payment still waiting for the player, one the player never finished (expired) or
  cancelled is no failure of the provider's,
- a provider's p95 latency in the window rises over a ceiling (`provider_latency_high`),
- payments pile up in a non-terminal status for too long (`payments_stuck`): deposits past
  their method's threshold (a card answers in seconds, a bank transfer waits days for the
  player) or held for an operator's review, and withdrawals waiting for an operator
  (`in_review`) or for their payout (`pending`, `approved`, `processing`) past their own, longer,
  thresholds,
- a payout provider fails too many of the withdrawals it finished in the window
  (`payout_failure_high`),
- a player's recent payments, taken together, cross a velocity rule of the current rule set
  after the fact (`player_pattern`), e.g. deposits that were each fine when they were judged.

The worker runs it periodically (`workflows/monitoring.py`, `PAY_MONITORING_INTERVAL_SECONDS`);
`python -m db.monitoring` or `POST /v1/ops/alerts/check` run it once. The thresholds come from
settings (`PAY_MONITOR_*`, `Settings.monitor_thresholds()`).
"""

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.fraud_models import Alert
from domain.fraud.config import RuleSet

# How long a deposit may sit in pending / requires_action / processing before it counts as stuck,
# per method: a card answers in seconds; QR and app payments wait minutes for the player; a bank
# transfer waits for the player's bank, days.
DEFAULT_STUCK_MINUTES: dict[str, int] = {
    "card": 10,
    "qr": 30,
    "mobile_banking": 30,
    "ewallet": 60,
    "aggregator": 60,
    "bank_transfer": 3 * 24 * 60,
}


@dataclass(frozen=True)
class MonitorThresholds:
    window_minutes: int = 15
    min_attempts: int = 10  # fewer final answers say nothing about a provider's health
    min_approval_pct: int = 70
    # Per method, where one differs (cards are declined more often than QR payments fail).
    min_approval_pct_by_method: dict[str, int] = field(default_factory=dict)
    max_p95_latency_ms: int = 3000
    stuck_minutes: int = 10  # a method without its own threshold
    stuck_minutes_by_method: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_STUCK_MINUTES)
    )
    deposit_review_stuck_minutes: int = 240  # a held deposit waiting for an operator
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


# The provider's own answers: approved, or declined / failed. Waiting for the player
# (requires_action, pending), the player never finishing (expired), cancellations, circuit skips
# and inquiries still pending are not the provider's verdict on a payment.
APPROVED_OUTCOMES = ("succeeded", "inquiry_succeeded")
FAILED_OUTCOMES = (
    "declined",
    "inquiry_declined",
    "failed",
    "inquiry_failed",
    "error",
    "timeout",
    "rejected",
)
_PROVIDER_STATS = text(
    """
    SELECT a.provider, coalesce(d.method, 'unknown') AS method,
           count(*) FILTER (WHERE a.outcome IN :approved) AS approved,
           count(*) FILTER (WHERE a.outcome IN :failed) AS failed,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms) AS p95
    FROM payment_attempts a LEFT JOIN deposits d ON d.id = a.payment_id
    WHERE a.created_at >= :since AND a.created_at <= :now AND a.step NOT LIKE 'payout%'
      AND a.outcome IN :counted
    GROUP BY a.provider, coalesce(d.method, 'unknown')
    """
).bindparams(
    bindparam("approved", expanding=True),
    bindparam("failed", expanding=True),
    bindparam("counted", expanding=True),
)
_STUCK = text(
    """
    SELECT method, status, count(*) AS stuck, min(updated_at) AS oldest
    FROM deposits
    WHERE status IN ('pending', 'requires_action', 'processing', 'in_review')
      AND updated_at < :earliest
      AND updated_at < CASE WHEN status = 'in_review' THEN :review_before
          ELSE coalesce(CAST(CAST(:befores AS jsonb) ->> method AS timestamptz), :default_before)
          END
    GROUP BY method, status
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

    stats = await session.execute(
        _PROVIDER_STATS,
        {
            "since": now - window,
            "now": now,
            "approved": list(APPROVED_OUTCOMES),
            "failed": list(FAILED_OUTCOMES),
            "counted": list(APPROVED_OUTCOMES + FAILED_OUTCOMES),
        },
    )
    for provider, method, approved, failed, p95 in stats.all():
        answered = approved + failed
        if answered >= thresholds.min_attempts:
            pct = 100 * approved // answered
            floor = thresholds.min_approval_pct_by_method.get(method, thresholds.min_approval_pct)
            if pct < floor:
                await alert(
                    f"provider_approval_low:{provider}:{method}:{bucket}",
                    "provider_approval_low",
                    "critical",
                    provider,
                    f"{provider} ({method}): {pct}% of {answered} answers approved in the last "
                    f"{thresholds.window_minutes} min (floor {floor}%)",
                    approval_pct=pct,
                    attempts=answered,
                    method=method,
                )
            if p95 is not None and p95 > thresholds.max_p95_latency_ms:
                await alert(
                    f"provider_latency_high:{provider}:{method}:{bucket}",
                    "provider_latency_high",
                    "warning",
                    provider,
                    f"{provider} ({method}): p95 latency {int(p95)} ms in the last "
                    f"{thresholds.window_minutes} min (ceiling {thresholds.max_p95_latency_ms} ms)",
                    p95_ms=int(p95),
                    attempts=answered,
                    method=method,
                )

    by_method = {**DEFAULT_STUCK_MINUTES, **thresholds.stuck_minutes_by_method}
    befores = {m: (now - timedelta(minutes=v)).isoformat() for m, v in by_method.items()}
    all_minutes = [*by_method.values(), thresholds.stuck_minutes]
    stuck_params = {
        "earliest": now - timedelta(minutes=min(all_minutes)),
        "befores": json.dumps(befores),
        "default_before": now - timedelta(minutes=thresholds.stuck_minutes),
        "review_before": now - timedelta(minutes=thresholds.deposit_review_stuck_minutes),
    }
    for method, status, stuck, oldest in (await session.execute(_STUCK, stuck_params)).all():
        held = status == "in_review"
        limit = (
            thresholds.deposit_review_stuck_minutes
            if held
            else by_method.get(method, thresholds.stuck_minutes)
        )
        if stuck >= (1 if held else thresholds.stuck_count):
            await alert(
                f"payments_stuck:deposit:{method}:{status}:{bucket}",
                "payments_stuck",
                "warning" if held else "critical",
                f"deposit:{status}",
                f"{stuck} {method} deposits in {status} for over {limit} min",
                status=status,
                method=method,
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
            session, now=datetime.now(UTC), thresholds=settings.monitor_thresholds(), rules=rules
        )
    await engine.dispose()
    print(f"{len(raised)} new alert(s)", *raised, sep="\n")


if __name__ == "__main__":
    asyncio.run(_main())
