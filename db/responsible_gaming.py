"""Responsible gaming: deposit limits per rolling period, self-exclusion and cool-offs.

A lower limit applies at once; a higher one (or removing one) only after a cooling-off period,
so a player cannot lift a limit in the heat of the moment. A self-exclusion or a cool-off can be
extended but never shortened. Periods are rolling: daily is the last 24 hours, weekly 7 days,
monthly 30.

Everything applies to the person (the IIN, migration 0150) across all their accounts: a limit
or an exclusion set on one account holds on every other, and the deposits of all of them count
against the limits. The functions take any one account's id.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.compliance_models import CoolOff
from db.fraud_models import DepositLimit, SelfExclusion
from db.models import Deposit
from db.persons import accounts_of_person_of

Period = Literal["daily", "weekly", "monthly"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly")
PERIOD_DAYS: dict[Period, int] = {"daily": 1, "weekly": 7, "monthly": 30}
COOLING_OFF = timedelta(hours=24)
_NOT_COUNTED = ("declined", "failed", "expired")


@dataclass(frozen=True)
class LimitState:
    period: Period
    amount_minor: int | None  # in force now; None: no limit
    pending_amount_minor: int | None
    pending_from: datetime | None


async def _rows(session: AsyncSession, player_id: str, period: str) -> list[DepositLimit]:
    rows = await session.scalars(
        select(DepositLimit)
        .where(
            DepositLimit.player_id.in_(accounts_of_person_of(player_id)),
            DepositLimit.period == period,
        )
        .order_by(DepositLimit.id.desc())
        .limit(20)
    )
    return list(rows.all())


def _state(period: Period, rows: list[DepositLimit], now: datetime) -> LimitState:
    in_force = next((r for r in rows if r.effective_from <= now), None)
    latest = rows[0] if rows else None
    pending = latest if latest is not None and latest.effective_from > now else None
    return LimitState(
        period=period,
        amount_minor=in_force.amount_minor if in_force else None,
        pending_amount_minor=pending.amount_minor if pending else None,
        pending_from=pending.effective_from if pending else None,
    )


async def get_limits(session: AsyncSession, *, player_id: str, now: datetime) -> list[LimitState]:
    """Every period's limit state, from one query (the latest 20 rows of each period)."""
    rows = await session.scalars(
        select(DepositLimit)
        .where(
            DepositLimit.player_id.in_(accounts_of_person_of(player_id)),
            DepositLimit.period.in_(PERIODS),
        )
        .order_by(DepositLimit.id.desc())
    )
    return _states(rows, now)


def _states(rows: Iterable[DepositLimit], now: datetime) -> list[LimitState]:
    """Every period's limit state from the player's limit rows, newest first."""
    by_period: dict[str, list[DepositLimit]] = {p: [] for p in PERIODS}
    for row in rows:
        by_period[row.period].append(row)
    return [_state(p, by_period[p][:20], now) for p in PERIODS]


async def set_limit(
    session: AsyncSession,
    *,
    player_id: str,
    period: Period,
    amount_minor: int | None,
    currency: str,
    now: datetime,
) -> LimitState:
    rows = await _rows(session, player_id, period)
    state = _state(period, rows, now)
    latest = rows[0] if rows else None
    if latest is not None and latest.amount_minor == amount_minor:
        return state  # the same request again changes nothing (nor restarts a cooling-off)
    current = state.amount_minor
    stricter = amount_minor is not None and (current is None or amount_minor <= current)
    session.add(
        DepositLimit(
            player_id=player_id,
            period=period,
            amount_minor=amount_minor,
            currency=currency,
            effective_from=now if stricter else now + COOLING_OFF,
        )
    )
    await session.flush()
    return _state(period, await _rows(session, player_id, period), now)


async def excluded_until(session: AsyncSession, *, player_id: str) -> datetime | None:
    until: datetime | None = await session.scalar(
        select(func.max(SelfExclusion.until)).where(
            SelfExclusion.player_id.in_(accounts_of_person_of(player_id))
        )
    )
    return until


async def self_exclude(
    session: AsyncSession, *, player_id: str, until: datetime, reason: str | None
) -> datetime:
    """Exclude the player until `until` unless already excluded longer; the end in force."""
    current = await excluded_until(session, player_id=player_id)
    if current is not None and current >= until:
        return current
    session.add(SelfExclusion(player_id=player_id, until=until, reason=reason))
    await session.flush()
    return until


async def cooling_off_until(session: AsyncSession, *, player_id: str) -> datetime | None:
    until: datetime | None = await session.scalar(
        select(func.max(CoolOff.until)).where(
            CoolOff.player_id.in_(accounts_of_person_of(player_id))
        )
    )
    return until


async def cool_off(
    session: AsyncSession, *, player_id: str, until: datetime, reason: str | None
) -> datetime:
    """A break until `until` unless one already runs longer; the end in force."""
    current = await cooling_off_until(session, player_id=player_id)
    if current is not None and current >= until:
        return current
    session.add(CoolOff(player_id=player_id, until=until, reason=reason))
    await session.flush()
    return until


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str


async def deposit_refusal(
    session: AsyncSession, *, player_id: str, amount_minor: int, currency: str, now: datetime
) -> Refusal | None:
    """Why a new deposit must be refused at once, or None. The fraud rules check it again.

    The exclusion, the cool-off and the limits of the person come from one query (it runs on
    every deposit request)."""
    one_row = select(literal(1).label("one")).subquery()
    accounts = accounts_of_person_of(player_id)
    exclusion = (
        select(func.max(SelfExclusion.until))
        .where(SelfExclusion.player_id.in_(accounts))
        .scalar_subquery()
    )
    cooling = select(func.max(CoolOff.until)).where(CoolOff.player_id.in_(accounts))
    rows = (
        await session.execute(
            select(exclusion.label("until"), cooling.scalar_subquery().label("cool"), DepositLimit)
            .select_from(one_row)
            .outerjoin(
                DepositLimit,
                and_(DepositLimit.player_id.in_(accounts), DepositLimit.period.in_(PERIODS)),
            )
            .order_by(DepositLimit.id.desc())
        )
    ).all()
    until: datetime | None = rows[0].until if rows else None
    if until is not None and until > now:
        return Refusal("self_excluded", f"The player is self-excluded until {until.isoformat()}")
    cool: datetime | None = rows[0].cool if rows else None
    if cool is not None and cool > now:
        return Refusal("cooling_off", f"The player is on a cool-off until {cool.isoformat()}")
    limits = [row.DepositLimit for row in rows if row.DepositLimit is not None]
    for state in _states(limits, now):
        if state.amount_minor is None:
            continue
        used = await session.scalar(
            select(func.coalesce(func.sum(Deposit.amount_minor), 0)).where(
                Deposit.player_id.in_(accounts),
                Deposit.currency == currency,
                Deposit.created_at >= now - timedelta(days=PERIOD_DAYS[state.period]),
                Deposit.status.not_in(_NOT_COUNTED),
            )
        )
        if int(used or 0) + amount_minor > state.amount_minor:
            left = max(0, state.amount_minor - int(used or 0))
            return Refusal(
                "deposit_limit_exceeded",
                f"The deposit would pass the player's {state.period} deposit limit of "
                f"{state.amount_minor} ({left} left)",
            )
    return None
