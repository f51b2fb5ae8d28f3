"""Responsible gaming: a player's deposit limits, self-exclusion and cool-off, and the figures of
the casino's reality checks (contract: Players). Everything applies to the person (one IIN)
across all their accounts: a limit or an exclusion set on one account holds on every other."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictInt

from api.deps import SessionDep, SettingsDep
from api.errors import Problem
from db import compliance as compliance_store
from db import persons
from db import players as player_store
from db import responsible_gaming as rg
from domain.compliance.responsible import COOL_OFF_MAX, REALITY_WINDOWS, cool_off_problem
from domain.ledger import player_wallet

router = APIRouter(prefix="/v1/players", tags=["responsible gaming"])

_PROBLEMS = {
    404: {"description": "player_not_found"},
    409: {"description": "self_exclusion_irrevocable, cool_off_irrevocable"},
    422: {"description": "validation_error, unsupported_currency, invalid_until"},
}


class LimitsIn(BaseModel):
    """Caps in minor units per rolling period; `null` removes one (after the cooling-off)."""

    model_config = {"extra": "forbid"}
    currency: str = Field(default="KZT", min_length=3, max_length=3)
    daily: StrictInt | None = Field(default=None, gt=0)
    weekly: StrictInt | None = Field(default=None, gt=0)
    monthly: StrictInt | None = Field(default=None, gt=0)


class LimitOut(BaseModel):
    amount: int | None = Field(description="in force now; null: no limit")
    pending_amount: int | None = None
    pending_from: datetime | None = Field(
        default=None, description="when a raised or removed limit takes effect (cooling-off)"
    )


class LimitsOut(BaseModel):
    object: Literal["deposit_limits"] = "deposit_limits"
    player_id: str
    currency: str
    daily: LimitOut
    weekly: LimitOut
    monthly: LimitOut


class SelfExclusionIn(BaseModel):
    model_config = {"extra": "forbid"}
    until: str = Field(
        max_length=40, description="an RFC 3339 time, or a date (excluded through that day)"
    )
    reason: str | None = Field(default=None, max_length=200)


class SelfExclusionOut(BaseModel):
    object: Literal["self_exclusion"] = "self_exclusion"
    player_id: str
    excluded_until: datetime | None
    active: bool


async def _require_player(session: SessionDep, player_id: str) -> None:
    if await player_store.get_player(session, player_id=player_id) is None:
        raise Problem(404, "player_not_found", f"No player {player_id!r}")


def _limits_out(player_id: str, currency: str, states: list[rg.LimitState]) -> LimitsOut:
    by_period = {
        s.period: LimitOut(
            amount=s.amount_minor,
            pending_amount=s.pending_amount_minor,
            pending_from=s.pending_from,
        )
        for s in states
    }
    return LimitsOut(player_id=player_id, currency=currency, **by_period)


@router.post("/{player_id}/limits", responses=_PROBLEMS)  # type: ignore[arg-type]
async def set_limits(
    player_id: str, body: LimitsIn, session: SessionDep, settings: SettingsDep
) -> LimitsOut:
    """Set deposit caps. Lower caps apply at once; higher or removed ones after 24 hours.
    Only the periods present in the body change."""
    if body.currency not in settings.currencies:
        raise Problem(422, "unsupported_currency", f"currency {body.currency!r} is not supported")
    now = datetime.now(UTC)
    async with session.begin():
        await _require_player(session, player_id)
        for period in rg.PERIODS:
            if period in body.model_fields_set:
                await rg.set_limit(
                    session,
                    player_id=player_id,
                    period=period,
                    amount_minor=getattr(body, period),
                    currency=body.currency,
                    now=now,
                )
        states = await rg.get_limits(session, player_id=player_id, now=now)
    return _limits_out(player_id, body.currency, states)


@router.get("/{player_id}/limits", responses=_PROBLEMS)  # type: ignore[arg-type]
async def get_limits(player_id: str, session: SessionDep) -> LimitsOut:
    await _require_player(session, player_id)
    states = await rg.get_limits(session, player_id=player_id, now=datetime.now(UTC))
    return _limits_out(player_id, "KZT", states)


UNTIL_AT_MOST = timedelta(days=100 * 365)


def _parse_until(value: str) -> datetime:
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Problem(422, "invalid_until", "until must be an RFC 3339 time or a date") from exc
    if parsed.tzinfo is None:
        raise Problem(422, "invalid_until", "until needs a time zone (RFC 3339), e.g. ...Z")
    # The calendar's far end breaks date arithmetic for every later request of the player.
    if parsed.astimezone(UTC) > datetime.now(UTC) + UNTIL_AT_MOST:
        raise Problem(422, "invalid_until", "until is at most 100 years ahead (that is for life)")
    return parsed


@router.post("/{player_id}/self-exclusion", responses=_PROBLEMS)  # type: ignore[arg-type]
async def self_exclude(
    player_id: str, body: SelfExclusionIn, session: SessionDep
) -> SelfExclusionOut:
    """Exclude the player from depositing until a time; an exclusion is never shortened."""
    now = datetime.now(UTC)
    until = _parse_until(body.until)
    if until <= now:
        raise Problem(422, "invalid_until", "until must be in the future")
    async with session.begin():
        await _require_player(session, player_id)
        end = await rg.self_exclude(session, player_id=player_id, until=until, reason=body.reason)
    return SelfExclusionOut(player_id=player_id, excluded_until=end, active=end > now)


@router.get("/{player_id}/self-exclusion", responses=_PROBLEMS)  # type: ignore[arg-type]
async def get_self_exclusion(player_id: str, session: SessionDep) -> SelfExclusionOut:
    await _require_player(session, player_id)
    end = await rg.excluded_until(session, player_id=player_id)
    return SelfExclusionOut(
        player_id=player_id, excluded_until=end, active=end is not None and end > datetime.now(UTC)
    )


@router.delete(
    "/{player_id}/self-exclusion",
    responses={409: {"description": "self_exclusion_irrevocable"}, 404: _PROBLEMS[404]},
)
async def lift_self_exclusion(player_id: str, session: SessionDep) -> None:
    """A self-exclusion is irrevocable: lifting it early is always refused (409); it ends at
    its own time (Law No. 219-III Art. 15-1)."""
    await _require_player(session, player_id)
    end = await rg.excluded_until(session, player_id=player_id)
    if end is not None and end > datetime.now(UTC):
        raise Problem(
            409,
            "self_exclusion_irrevocable",
            f"A self-exclusion cannot be lifted early; it ends {end.isoformat()}",
        )
    raise Problem(409, "self_exclusion_irrevocable", "There is no self-exclusion in force to lift")


class CoolOffIn(BaseModel):
    """A break from 24 hours to 6 weeks: `hours`, or `until` (an RFC 3339 time)."""

    model_config = {"extra": "forbid"}
    hours: int | None = Field(default=None, ge=24, le=int(COOL_OFF_MAX.total_seconds() // 3600))
    until: datetime | None = None
    reason: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class CoolOffOut(BaseModel):
    object: Literal["cool_off"] = "cool_off"
    player_id: str
    cooling_off_until: datetime | None
    active: bool


@router.post("/{player_id}/cool-off", responses=_PROBLEMS)  # type: ignore[arg-type]
async def cool_off(player_id: str, body: CoolOffIn, session: SessionDep) -> CoolOffOut:
    """Take a break now for 24 hours to 6 weeks: deposits are refused (`cooling_off`) until it
    ends, on every account of the person. It can be extended, never shortened or lifted."""
    now = datetime.now(UTC)
    if (body.hours is None) == (body.until is None):
        raise Problem(422, "invalid_cool_off", "give either hours or until")
    if body.until is not None and body.until.tzinfo is None:
        raise Problem(422, "invalid_until", "until needs a time zone (RFC 3339), e.g. ...Z")
    until = body.until if body.until is not None else now + timedelta(hours=body.hours or 0)
    problem = cool_off_problem(until, now=now)
    if problem:
        raise Problem(422, "invalid_cool_off", problem)
    async with session.begin():
        await _require_player(session, player_id)
        end = await rg.cool_off(session, player_id=player_id, until=until, reason=body.reason)
    return CoolOffOut(player_id=player_id, cooling_off_until=end, active=end > now)


@router.get("/{player_id}/cool-off", responses=_PROBLEMS)  # type: ignore[arg-type]
async def get_cool_off(player_id: str, session: SessionDep) -> CoolOffOut:
    await _require_player(session, player_id)
    end = await rg.cooling_off_until(session, player_id=player_id)
    return CoolOffOut(
        player_id=player_id,
        cooling_off_until=end,
        active=end is not None and end > datetime.now(UTC),
    )


@router.delete(
    "/{player_id}/cool-off",
    responses={409: {"description": "cool_off_irrevocable"}, 404: _PROBLEMS[404]},
)
async def lift_cool_off(player_id: str, session: SessionDep) -> None:
    """A cool-off runs to its end: lifting it early is refused (409)."""
    await _require_player(session, player_id)
    raise Problem(409, "cool_off_irrevocable", "A cool-off cannot be lifted before it ends")


class RealityWindowOut(BaseModel):
    deposits: int = Field(description="succeeded deposits, minor units")
    deposit_count: int
    withdrawals: int = Field(description="withdrawals paid or on their way, minor units")
    net_loss: int = Field(description="deposits minus withdrawals (negative: a net win)")
    bets: int = Field(description="game bets posted (game-transactions), minor units")
    wins: int = Field(description="game wins and refunded bets, minor units")
    game_net_loss: int = Field(description="bets minus wins")


class ResponsibleGamingOut(BaseModel):
    object: Literal["responsible_gaming"] = "responsible_gaming"
    player_id: str
    person_id: str
    currency: str
    as_of: datetime
    self_excluded_until: datetime | None
    cooling_off_until: datetime | None
    limits: LimitsOut
    windows: dict[str, RealityWindowOut] = Field(
        description="`24h`, `7d`, `30d`: the person's accounts at this merchant"
    )


@router.get("/{player_id}/responsible-gaming", responses=_PROBLEMS)  # type: ignore[arg-type]
async def responsible_gaming(player_id: str, session: SessionDep) -> ResponsibleGamingOut:
    """What the casino's front end shows in its reality checks: deposits and net loss over 24
    hours, 7 and 30 days, with the limits, self-exclusion and cool-off in force."""
    player = await player_store.get_player(session, player_id=player_id)
    if player is None:
        raise Problem(404, "player_not_found", f"No player {player_id!r}")
    now = datetime.now(UTC)
    currency = "KZT"
    accounts = await persons.accounts_at(
        session, person_id=player.person_id, merchant_id=player.merchant_id
    )
    figures = await compliance_store.reality_figures(
        session,
        person_id=player.person_id,
        merchant_id=player.merchant_id,
        currency=currency,
        wallets=[player_wallet(a.player_id, currency).code for a in accounts],
        windows=REALITY_WINDOWS,
        now=now,
    )
    states = await rg.get_limits(session, player_id=player_id, now=now)
    excluded = await rg.excluded_until(session, player_id=player_id)
    cooling = await rg.cooling_off_until(session, player_id=player_id)
    return ResponsibleGamingOut(
        player_id=player_id,
        person_id=player.person_id,
        currency=currency,
        as_of=now,
        self_excluded_until=excluded if excluded and excluded > now else None,
        cooling_off_until=cooling if cooling and cooling > now else None,
        limits=_limits_out(player_id, currency, states),
        windows={
            name: RealityWindowOut(
                deposits=w.deposits_minor,
                deposit_count=w.deposit_count,
                withdrawals=w.withdrawals_minor,
                net_loss=w.net_loss_minor,
                bets=w.bets_minor,
                wins=w.wins_minor,
                game_net_loss=w.game_net_loss_minor,
            )
            for name, w in figures.items()
        },
    )
