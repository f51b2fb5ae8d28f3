"""Analytics for operators: `GET /v1/analytics/summary` and `/segments`, and the player 360
(`GET /v1/players/{id}/profile`), all on the analytics pool and read from rollups."""

import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AnalyticsSessionDep, OperatorDep, SettingsDep
from api.errors import Problem
from db import analytics, behaviour, rollups

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
log = logging.getLogger(__name__)

_PROBLEMS = {422: {"description": "invalid_range"}}


class ReasonCount(BaseModel):
    status: str
    reason: str
    count: int


class DepositFigures(BaseModel):
    count: int
    by_status: dict[str, int]
    succeeded: int
    volume_minor: int = Field(description="Sum of succeeded deposits, minor units")
    attempted_volume_minor: int
    average_minor: int | None = Field(description="Succeeded volume / succeeded count, floored")
    approval_rate: float | None = Field(
        description="Succeeded / finished (succeeded, failed, declined, expired)"
    )
    median_seconds_to_complete: float | None
    p95_seconds_to_complete: float | None
    first_time_depositors: int = Field(
        description="Players whose first succeeded deposit ever falls in this window and group"
    )
    unsuccessful_reasons: list[ReasonCount]
    fraud_hits: int = Field(description="Risk decision review or decline")


class WithdrawalFigures(BaseModel):
    count: int
    by_status: dict[str, int]
    paid: int
    paid_volume_minor: int
    requested_volume_minor: int
    approval_rate: float | None = Field(description="Paid / finished (paid, rejected, failed, …)")
    median_seconds_to_pay: float | None
    p95_seconds_to_pay: float | None
    unsuccessful_reasons: list[ReasonCount]
    fraud_hits: int
    paid_in_time: int = Field(
        default=0, description="Paid by their payout deadline (3 calendar days, Art. 12 p. 4)"
    )
    paid_in_time_rate: float | None = Field(
        default=None, description="Paid in time / paid (those with a deadline)"
    )


class Figures(BaseModel):
    key: str
    deposits: DepositFigures
    withdrawals: WithdrawalFigures
    net_deposits_minor: int = Field(description="Succeeded deposits minus paid withdrawals")
    fraud_hits: int


class Summary(BaseModel):
    object: Literal["analytics.summary"] = "analytics.summary"
    from_: datetime = Field(alias="from")
    to: datetime
    currency: str
    group_by: Literal["method", "provider", "day"] | None
    time_zone: str = Field(description="The zone whose calendar days `group_by=day` uses")
    totals: Figures
    groups: list[Figures]

    model_config = {"populate_by_name": True}


def _out(figures: analytics.Figures) -> Figures:
    data: dict[str, Any] = {
        "key": figures.key,
        "deposits": figures.deposits,
        "withdrawals": figures.withdrawals,
        "net_deposits_minor": figures.net_deposits_minor,
        "fraud_hits": figures.fraud_hits,
    }
    return Figures.model_validate(data)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_zone(name: str | None, default: str) -> str:
    """An IANA zone name (`tz`), or the configured one; 422 for an unknown zone."""
    chosen = name or default
    try:
        ZoneInfo(chosen)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Problem(422, "invalid_time_zone", f"Unknown time zone {chosen!r}") from exc
    return chosen


async def fold_rollups(session: AsyncSession) -> None:
    """Fold pending rollup deltas (cheap, one at a time); readers are exact without it, and a
    read-only replica cannot, so a refusal is only logged."""
    try:
        await rollups.fold(session)
    except DBAPIError:
        await session.rollback()
        log.info("rollup fold skipped (read-only analytics database?)", exc_info=True)


@router.get(
    "/summary",
    response_model=Summary,
    response_model_by_alias=True,
    responses=_PROBLEMS,  # type: ignore[arg-type]
)
async def summary(
    session: AnalyticsSessionDep,
    settings: SettingsDep,
    _: OperatorDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    group_by: Literal["method", "provider", "day"] | None = None,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
    tz: Annotated[str | None, Query(max_length=64)] = None,
) -> Summary:
    """Payments created in `[from, to)` (default: the last 30 days), totals and per group.

    `from` and `to` take any UTC offset; days (`group_by=day`) are calendar days in `tz`
    (default `PAY_ANALYTICS_TIME_ZONE`, Asia/Almaty). Money is integer minor units; rates are
    0..1; durations are seconds. Read from the rollups (db/rollups.py).
    """
    zone = time_zone(tz, settings.analytics_time_zone)
    end = _utc(to) if to else datetime.now(UTC)
    start = _utc(from_) if from_ else end - timedelta(days=30)
    if start >= end:
        raise Problem(422, "invalid_range", "`from` must be before `to`")
    if end - start > timedelta(days=3660):
        raise Problem(422, "invalid_range", "The range may span at most ten years")
    await fold_rollups(session)
    total, groups = await analytics.summary(
        session, start=start, end=end, group_by=group_by, currency=currency, time_zone=zone
    )
    return Summary.model_validate(
        {
            "from": start,
            "to": end,
            "currency": currency,
            "group_by": group_by,
            "time_zone": zone,
            "totals": _out(total),
            "groups": [_out(g) for g in groups],
        }
    )


class Segment(BaseModel):
    segment: Literal["new", "active", "at_risk_of_churn", "dormant", "vip", "high_risk"]
    players: int
    deposits_minor: int = Field(description="Lifetime succeeded deposits of these players")
    withdrawals_minor: int = Field(description="Lifetime paid withdrawals of these players")
    net_deposits_minor: int


class Segments(BaseModel):
    object: Literal["analytics.segments"] = "analytics.segments"
    currency: str
    as_of: datetime
    rules: dict[str, int]
    data: list[Segment]


@router.get("/segments", response_model=Segments)
async def segments(
    session: AnalyticsSessionDep,
    _: OperatorDep,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
    vip_net_deposits_minor: Annotated[
        int, Query(ge=0)
    ] = behaviour.SegmentRules.vip_net_deposits_minor,
) -> Segments:
    """Players per segment, with their lifetime money (a player may be in several):

    - `new`: first succeeded deposit in the last 30 days; `active`: a deposit in the last 30;
    - `at_risk_of_churn`: 3+ deposits, the last 30-90 days ago; `dormant`: none for 90 days;
    - `vip`: net deposits (succeeded deposits - paid withdrawals) >= `vip_net_deposits_minor`;
    - `high_risk`: 2+ deposits the risk engine sent to review or declined.

    Read from the per-player rollups (db/rollups.py), one row per player.
    """
    rules = behaviour.SegmentRules(vip_net_deposits_minor=vip_net_deposits_minor)
    now = datetime.now(UTC)
    await fold_rollups(session)
    data = await behaviour.segments(session, currency=currency, now=now, rules=rules)
    return Segments.model_validate(
        {"currency": currency, "as_of": now, "rules": asdict(rules), "data": data}
    )


@router.get("/cohorts")
async def cohorts(
    session: AnalyticsSessionDep,
    settings: SettingsDep,
    _: OperatorDep,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
    months: Annotated[int, Query(ge=1, le=36)] = 6,
) -> dict[str, Any]:
    """Cohorts by first-deposit month (calendar months in `PAY_ANALYTICS_TIME_ZONE`) over the
    last `months`: players, and per later month the share depositing again (`retention`),
    deposits, net revenue (deposits - paid withdrawals) and their running totals; plus the
    funnel registered -> first deposit -> second deposit of the players registered since."""
    zone = ZoneInfo(settings.analytics_time_zone)
    today = datetime.now(zone).date()
    month = today.year * 12 + today.month - 1 - (months - 1)
    since = datetime(month // 12, month % 12 + 1, 1, tzinfo=zone)
    await fold_rollups(session)
    data, funnel = await behaviour.cohorts(session, currency=currency, since=since)
    return {
        "object": "analytics.cohorts",
        "currency": currency,
        "since": since,
        "time_zone": settings.analytics_time_zone,
        "cohorts": data,
        "funnel": funnel,
    }


@router.get("/harm-markers")
async def harm_markers(
    session: AnalyticsSessionDep,
    _: OperatorDep,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str, Query(max_length=40, description="`next_after` of the page before")] = "",
) -> dict[str, Any]:
    """Players showing a harm marker, each marker with its evidence: `deposit_escalation` (4
    consecutive succeeded deposits, each larger), `night_deposits` (half or more of 3+ deposits
    made 00:00-05:59 local time), `chasing` (a deposit within 30 min of the wallet reaching
    zero), `cancelled_withdrawal_regambled` (a bet within 24 h of cancelling a withdrawal),
    `limit_increases` (a deposit limit raised or removed), over the last 90 days. In player id
    order, `limit` a page; `next_after` (null on the last page) asks for the next one."""
    now = datetime.now(UTC)
    await fold_rollups(session)
    data, next_after = await behaviour.players_with_harm_markers(
        session, currency=currency, now=now, rules=behaviour.HarmRules(), limit=limit, after=after
    )
    return {
        "object": "analytics.harm_markers",
        "currency": currency,
        "as_of": now,
        "data": data,
        "next_after": next_after,
    }


profiles = APIRouter(prefix="/v1/players", tags=["analytics"])


def _mask(value: str | None, keep: int = 1) -> str | None:
    if not value:
        return value
    return " ".join(part[:keep] + "*" * max(len(part) - keep, 1) for part in value.split())


@profiles.get("/{player_id}/profile", responses={404: {"description": "not_found"}})
async def player_profile(
    player_id: str,
    session: AnalyticsSessionDep,
    settings: SettingsDep,
    _: OperatorDep,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
) -> dict[str, Any]:
    """Player 360 for operators: identity (masked), accounts linked by IIN, card, device and
    payout destination, wallet balance, payments by method, risk decisions, limits and
    exclusions, and the behaviour metrics (db/behaviour.py). The statement itself is
    `GET /v1/players/{id}/statement`."""
    zone = ZoneInfo(settings.analytics_time_zone)
    player = (
        (await session.execute(text("SELECT * FROM players WHERE id = :p"), {"p": player_id}))
        .mappings()
        .first()
    )
    if player is None:
        raise Problem(404, "not_found", f"No player {player_id}")
    key = {"p": player_id, "c": currency}

    async def rows(sql: str, **params: Any) -> list[dict[str, Any]]:
        result = await session.execute(text(sql), {**key, **params})
        return [dict(r) for r in result.mappings()]

    linked = await rows(
        "SELECT id AS player_id, 'iin' AS link FROM players "
        "WHERE person_id = :person AND id <> :p "
        "UNION SELECT o.player_id, l.link FROM ("
        "  SELECT DISTINCT 'card' AS link, card_key AS v FROM fraud_decisions "
        "  WHERE player_id = :p AND card_key IS NOT NULL "
        "  UNION SELECT DISTINCT 'device', device_id FROM fraud_decisions "
        "  WHERE player_id = :p AND device_id IS NOT NULL "
        "  UNION SELECT DISTINCT 'payout_destination', destination_key FROM fraud_decisions "
        "  WHERE player_id = :p AND destination_key IS NOT NULL) l "
        "CROSS JOIN LATERAL (SELECT DISTINCT f.player_id FROM fraud_decisions f "
        "  WHERE f.player_id <> :p AND ((l.link = 'card' AND f.card_key = l.v) "
        "  OR (l.link = 'device' AND f.device_id = l.v) "
        "  OR (l.link = 'payout_destination' AND f.destination_key = l.v)) LIMIT 20) o "
        "ORDER BY 2, 1 LIMIT 50",
        person=player["person_id"],
    )
    balance = await session.scalar(
        text(
            "SELECT posted_credits - posted_debits FROM ledger_accounts "
            "WHERE owner_id = :p AND type = 'player_wallet' AND currency = :c"
        ),
        key,
    )
    by_method = await rows(
        "SELECT 'deposit' AS kind, method, status, count(*) AS count, "
        "sum(amount_minor) AS amount_minor FROM deposits "
        "WHERE player_id = :p AND currency = :c GROUP BY method, status "
        "UNION ALL SELECT 'withdrawal', method, status, count(*), sum(amount_minor) "
        "FROM withdrawals WHERE player_id = :p AND currency = :c GROUP BY method, status "
        "ORDER BY 1, 2, 3"
    )
    decisions = await rows(
        "SELECT payment_id, kind, decision, score, reasons, created_at FROM fraud_decisions "
        "WHERE player_id = :p ORDER BY created_at DESC LIMIT 20"
    )
    limits = await rows(
        "SELECT period, amount_minor, currency, effective_from FROM rg_deposit_limits "
        "WHERE player_id = :p ORDER BY effective_from DESC LIMIT 20"
    )
    exclusions = await rows(
        "SELECT until, reason, created_at FROM rg_self_exclusions WHERE player_id = :p "
        "ORDER BY created_at DESC LIMIT 20"
    )
    metrics = await behaviour.player_metrics(
        session,
        player_id=player_id,
        currency=currency,
        today=datetime.now(zone).date(),
    )
    markers = await behaviour.harm_markers(
        session,
        player_id=player_id,
        currency=currency,
        now=datetime.now(UTC),
        rules=behaviour.HarmRules(),
    )
    return {
        "object": "player.profile",
        "player_id": player_id,
        "currency": currency,
        "identity": {
            "external_id": player["external_id"],
            "full_name": _mask(player["full_name"]),
            "iin": str(player["iin"])[:2] + "*" * 8 + str(player["iin"])[-2:],
            "phone": str(player["phone"])[:5] + "*****" + str(player["phone"])[-2:],
            "email": _mask(player["email"], 2),
            "birth_year": player["birth_date"].year,
            "merchant_id": player["merchant_id"],
            "registered_at": player["created_at"],
        },
        "linked_accounts": linked,
        "balance_minor": int(balance or 0),
        "statement": f"/v1/players/{player_id}/statement?currency={currency}",
        "payments_by_method": [
            {**r, "count": int(r["count"]), "amount_minor": int(r["amount_minor"])}
            for r in by_method
        ],
        "risk_decisions": decisions,
        "limits": limits,
        "exclusions": exclusions,
        "behaviour": metrics,
        "harm_markers": markers,
    }
