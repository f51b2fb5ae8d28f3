"""Payment analytics for operators: `GET /v1/analytics/summary`."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import OperatorDep, SessionDep
from api.errors import Problem
from db import analytics

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

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


@router.get(
    "/summary",
    response_model=Summary,
    response_model_by_alias=True,
    responses=_PROBLEMS,  # type: ignore[arg-type]
)
async def summary(
    session: SessionDep,
    _: OperatorDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    group_by: Literal["method", "provider", "day"] | None = None,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
) -> Summary:
    """Payments created in `[from, to)` (default: the last 30 days), totals and per group.

    Money is integer minor units; rates are 0..1; durations are seconds.
    """
    end = _utc(to) if to else datetime.now(UTC)
    start = _utc(from_) if from_ else end - timedelta(days=30)
    if start >= end:
        raise Problem(422, "invalid_range", "`from` must be before `to`")
    if end - start > timedelta(days=3660):
        raise Problem(422, "invalid_range", "The range may span at most ten years")
    total, groups = await analytics.summary(
        session, start=start, end=end, group_by=group_by, currency=currency
    )
    return Summary.model_validate(
        {
            "from": start,
            "to": end,
            "currency": currency,
            "group_by": group_by,
            "totals": _out(total),
            "groups": [_out(g) for g in groups],
        }
    )
