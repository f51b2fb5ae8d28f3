"""Gateway data: provider circuit breakers, provider health from attempts, a deposit's route.

Circuits live here so every worker sees the same state; each update locks the provider's row.
"""

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Deposit, PaymentAttempt, ProviderCircuit
from domain.routing import Circuit, CircuitPolicy, CircuitState, ProviderStats, after_result

# Attempt outcomes that count for a provider's success rate and latency.
SUCCESS_OUTCOMES = ("succeeded", "requires_action", "pending", "inquiry_succeeded")
FAILURE_OUTCOMES = ("declined", "error", "timeout", "inquiry_declined")
COUNTED_OUTCOMES = SUCCESS_OUTCOMES + FAILURE_OUTCOMES


def _circuit(row: ProviderCircuit | None, provider: str) -> Circuit:
    if row is None:
        return Circuit(provider)
    return Circuit(
        provider,
        state=CircuitState(row.state),
        consecutive_failures=row.consecutive_failures,
        opened_at=row.opened_at,
    )


async def circuits(session: AsyncSession, *, providers: list[str]) -> dict[str, Circuit]:
    rows = await session.scalars(
        select(ProviderCircuit).where(ProviderCircuit.provider.in_(providers))
    )
    found = {row.provider: _circuit(row, row.provider) for row in rows}
    return {name: found.get(name, Circuit(name)) for name in providers}


async def record_provider_result(
    session: AsyncSession, *, provider: str, failed: bool, now: datetime, policy: CircuitPolicy
) -> Circuit:
    """Apply one call's result to the provider's breaker under a row lock.

    A success at a breaker that is closed with no failures counted changes nothing here: callers
    record such a success with `record_success`, which only reads the breaker.
    """
    await session.execute(
        insert(ProviderCircuit)
        .values(provider=provider, state="closed", consecutive_failures=0, updated_at=now)
        .on_conflict_do_nothing()
    )
    row = await session.get_one(ProviderCircuit, provider, with_for_update=True)
    updated = after_result(_circuit(row, provider), failed=failed, now=now, policy=policy)
    row.state = updated.state.value
    row.consecutive_failures = updated.consecutive_failures
    row.opened_at = updated.opened_at
    row.updated_at = now
    return updated


async def reset_circuits(session: AsyncSession) -> None:
    await session.execute(delete(ProviderCircuit))


async def provider_stats(
    session: AsyncSession, *, providers: list[str], since: datetime
) -> dict[str, ProviderStats]:
    rows = await session.execute(
        select(
            PaymentAttempt.provider,
            func.count(),
            func.count().filter(PaymentAttempt.outcome.in_(SUCCESS_OUTCOMES)),
        )
        .where(
            PaymentAttempt.provider.in_(providers),
            PaymentAttempt.created_at >= since,
            PaymentAttempt.outcome.in_(COUNTED_OUTCOMES),
        )
        .group_by(PaymentAttempt.provider)
    )
    return {name: ProviderStats(attempts=n, successes=ok) for name, n, ok in rows.all()}


@dataclass(frozen=True)
class ProviderHealth:
    provider: str
    attempts: int
    successes: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None


async def provider_health(
    session: AsyncSession, *, providers: list[str], since: datetime
) -> dict[str, ProviderHealth]:
    rows = await session.execute(
        select(
            PaymentAttempt.provider,
            func.count(),
            func.sum(case((PaymentAttempt.outcome.in_(SUCCESS_OUTCOMES), 1), else_=0)),
            func.percentile_cont(0.5).within_group(PaymentAttempt.latency_ms),
            func.percentile_cont(0.95).within_group(PaymentAttempt.latency_ms),
        )
        .where(
            PaymentAttempt.provider.in_(providers),
            PaymentAttempt.created_at >= since,
            PaymentAttempt.outcome.in_(COUNTED_OUTCOMES),
        )
        .group_by(PaymentAttempt.provider)
    )
    return {
        name: ProviderHealth(name, int(n), int(ok or 0), p50, p95)
        for name, n, ok, p50, p95 in rows.all()
    }


async def set_route(
    session: AsyncSession,
    *,
    deposit_id: str,
    provider: str | None,
    next_action: dict[str, Any] | None,
    at: datetime,
    details: dict[str, str] | None = None,
) -> None:
    """The provider now serving the deposit and what the player must do (None: nothing)."""
    deposit = await session.get_one(Deposit, deposit_id, with_for_update=True)
    if details is not None:
        deposit.details = details
    if provider is not None:
        deposit.provider = provider
    deposit.next_action = next_action
    deposit.updated_at = max(deposit.updated_at, at)


@dataclass(frozen=True)
class Attempt:
    """One call to a provider on behalf of a payment, as `payment_attempts` keeps it."""

    payment_id: str
    step: str
    attempt_no: int
    provider: str
    outcome: str
    error_code: str | None
    unified_code: str | None
    latency_ms: int


def _attempt_row(attempt: Attempt) -> Insert:
    return (
        insert(PaymentAttempt)
        .values(**dataclasses.asdict(attempt))
        .on_conflict_do_nothing(constraint="uq_payment_attempt")
    )


async def record_attempt(session: AsyncSession, attempt: Attempt) -> None:
    await session.execute(_attempt_row(attempt))


async def record_success(session: AsyncSession, attempt: Attempt) -> bool:
    """Record a successful call's attempt, in one statement that also reads the provider's
    breaker. True when the breaker is closed with no failures counted: the success changes
    nothing there (no lock, no write). False: apply it with `record_provider_result`."""
    quiet = (
        select(ProviderCircuit.provider)
        .where(
            ProviderCircuit.provider == attempt.provider,
            ProviderCircuit.state == CircuitState.CLOSED.value,
            ProviderCircuit.consecutive_failures == 0,
        )
        .exists()
    )
    recorded = _attempt_row(attempt).cte("recorded")
    return bool(await session.scalar(select(quiet).add_cte(recorded)))


def window_start(now: datetime, seconds: int) -> datetime:
    return now - timedelta(seconds=seconds)
