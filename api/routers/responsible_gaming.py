"""Responsible gaming: a player's deposit limits and self-exclusion (contract: Players)."""

from datetime import UTC, date, datetime, time
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictInt

from api.deps import SessionDep, SettingsDep
from api.errors import Problem
from db import players as player_store
from db import responsible_gaming as rg

router = APIRouter(prefix="/v1/players", tags=["responsible gaming"])

_PROBLEMS = {
    404: {"description": "player_not_found"},
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


def _parse_until(value: str) -> datetime:
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.max, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Problem(422, "invalid_until", "until must be an RFC 3339 time or a date") from exc
    if parsed.tzinfo is None:
        raise Problem(422, "invalid_until", "until needs a time zone (RFC 3339), e.g. ...Z")
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
