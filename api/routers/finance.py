"""Finance views of the ledger (operator key; admin keys too):

- `GET /v1/finance/trial-balance?date=&level=gl|account`: every account's (or GL line's)
  posted debits and credits through the end of the day, with its debit or credit balance, and
  per currency the totals, which balance.
- `GET /v1/finance/balances?date=`: the day's balance snapshot per account (taken on demand if
  missing or stale); `POST /v1/finance/snapshots/{date}` takes it (the worker's activity too).
- `GET /v1/finance/periods`, `POST /v1/finance/periods/{YYYY-MM}/close`: periods close in
  order once they are over; postings dated in a closed period are refused by the database and
  by the API (`period_closed`): corrections go to the open period.
- `GET /v1/finance/gl.csv?date=`: the GL journal of a day as CSV: account codes, debit and
  credit columns in minor units.
- `GET /v1/finance/recon?date=&provider=`: each provider's reconciled day (the dashboard's
  reconciliation page, `/dashboard/recon`).

Days are posting dates: Asia/Almaty days (domain/finance.py).
"""

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import OperatorDep, SessionDep
from api.errors import Problem
from api.schemas import StrictModel
from db import finance
from domain.finance import Period, business_day, gl_account, gl_subaccount, has_ended

router = APIRouter(prefix="/v1/finance", tags=["finance"])
Date = date  # the models' `date` fields shadow the type in their class bodies

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthorized"},
    403: {"description": "forbidden"},
    409: {"description": "earlier_period_open (periods close in order)"},
    422: {"description": "invalid_period, period_not_over, invalid_date (in the future)"},
}


def _not_future(day: date) -> date:
    if day > business_day(datetime.now(UTC)):
        raise Problem(422, "invalid_date", f"{day} is in the future (Asia/Almaty)")
    return day


class TrialBalanceLine(BaseModel):
    gl_code: str
    gl_name: str
    account: str = Field(description="the ledger account, or the GL sub-account at level gl")
    currency: str
    debits: int = Field(description="posted debits through the day, minor units")
    credits: int = Field(description="posted credits through the day, minor units")
    debit_balance: int
    credit_balance: int


class CurrencyTotals(BaseModel):
    currency: str
    debits: int
    credits: int
    debit_balance: int
    credit_balance: int
    balanced: bool


class TrialBalance(BaseModel):
    object: Literal["trial_balance"] = "trial_balance"
    date: Date
    level: Literal["gl", "account"]
    closed_through: Date | None
    lines: list[TrialBalanceLine]
    totals: list[CurrencyTotals]


def _totals(lines: list[TrialBalanceLine]) -> list[CurrencyTotals]:
    sums: dict[str, list[int]] = {}
    for line in lines:
        total = sums.setdefault(line.currency, [0, 0, 0, 0])
        total[0] += line.debits
        total[1] += line.credits
        total[2] += line.debit_balance
        total[3] += line.credit_balance
    return [
        CurrencyTotals(
            currency=currency,
            debits=d,
            credits=c,
            debit_balance=db,
            credit_balance=cb,
            balanced=d == c and db == cb,
        )
        for currency, (d, c, db, cb) in sorted(sums.items())
    ]


@router.get("/trial-balance", responses=_PROBLEMS)
async def trial_balance(
    session: SessionDep,
    _: OperatorDep,
    date: date,  # the day, Asia/Almaty: postings dated on or before it
    level: Literal["gl", "account"] = "gl",
) -> TrialBalance:
    """The trial balance at the end of `date`. At level `gl` accounts are added up by GL
    account and sub-account (a provider; all players as one); at `account` each ledger account
    is a line."""
    day = _not_future(date)
    balances = await finance.balances_at(session, day=day)
    if level == "gl":
        lines = [
            TrialBalanceLine(
                gl_code=g.gl_code,
                gl_name=g.gl_name,
                account=g.subaccount,
                currency=g.currency,
                debits=g.debits_minor,
                credits=g.credits_minor,
                debit_balance=max(g.debits_minor - g.credits_minor, 0),
                credit_balance=max(g.credits_minor - g.debits_minor, 0),
            )
            for g in finance.gl_lines(balances)
        ]
    else:
        lines = [
            TrialBalanceLine(
                gl_code=gl_account(b.type).code,
                gl_name=gl_account(b.type).name,
                account=b.code,
                currency=b.currency,
                debits=b.debits_minor,
                credits=b.credits_minor,
                debit_balance=b.line.debit_balance_minor,
                credit_balance=b.line.credit_balance_minor,
            )
            for b in balances
        ]
    return TrialBalance(
        date=day,
        level=level,
        closed_through=await finance.closed_through(session),
        lines=lines,
        totals=_totals(lines),
    )


class SnapshotOut(BaseModel):
    object: Literal["balance_snapshot"] = "balance_snapshot"
    date: Date
    taken_at: datetime
    accounts: int
    taken: bool = Field(description="False: a fresh snapshot of the day was there already")


class SnapshotBalance(BaseModel):
    account: str
    type: str
    gl_code: str
    subaccount: str
    currency: str
    debits: int
    credits: int
    balance: int = Field(description="debits minus credits")


class SnapshotPage(BaseModel):
    object: Literal["list"] = "list"
    date: Date
    taken_at: datetime
    data: list[SnapshotBalance]
    next_cursor: str | None


@router.post("/snapshots/{day}", responses=_PROBLEMS)
async def take_snapshot(day: date, session: SessionDep, _: OperatorDep) -> SnapshotOut:
    """Take the day's balance snapshot (again, if a posting dated back made it stale)."""
    _not_future(day)
    async with session.begin():
        snapshot = await finance.take_snapshot(session, day=day, now=datetime.now(UTC))
    return SnapshotOut(
        date=snapshot.day,
        taken_at=snapshot.taken_at,
        accounts=snapshot.accounts,
        taken=snapshot.taken,
    )


@router.get("/balances", responses=_PROBLEMS)
async def balances(
    session: SessionDep,
    _: OperatorDep,
    date: date,
    account_prefix: Annotated[
        str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_:.-]+$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_:.-]+$")] = None,
) -> SnapshotPage:
    """Each account's balance at the end of `date`, from the day's snapshot (taken now if there
    is none or it is stale), in account-code order."""
    day = _not_future(date)
    async with session.begin():
        snapshot = await finance.take_snapshot(session, day=day, now=datetime.now(UTC))
        rows = await finance.snapshot_rows(
            session, day=day, account_prefix=account_prefix, limit=limit + 1, after=cursor
        )
    page = rows[:limit]
    return SnapshotPage(
        date=day,
        taken_at=snapshot.taken_at,
        data=[
            SnapshotBalance(
                account=row.code,
                type=row.type,
                gl_code=gl_account(row.type).code,
                subaccount=gl_subaccount(row.type, row.owner_id),
                currency=row.currency,
                debits=row.debits_minor,
                credits=row.credits_minor,
                balance=row.debits_minor - row.credits_minor,
            )
            for row in page
        ],
        next_cursor=page[-1].code if len(rows) > limit else None,
    )


class PeriodOut(BaseModel):
    object: Literal["period"] = "period"
    period: str
    status: Literal["closed", "open"]
    starts_on: date
    ends_on: date
    closed_at: datetime | None = None
    closed_by: str | None = None
    closed_by_name: str | None = None
    note: str | None = None


class PeriodList(BaseModel):
    object: Literal["list"] = "list"
    closed_through: Date | None
    data: list[PeriodOut]


def _period_out(closed: finance.ClosedPeriod) -> PeriodOut:
    return PeriodOut(
        period=closed.period,
        status="closed",
        starts_on=closed.starts_on,
        ends_on=closed.ends_on,
        closed_at=closed.closed_at,
        closed_by=closed.closed_by,
        closed_by_name=closed.closed_by_name,
        note=closed.note,
    )


@router.get("/periods", responses=_PROBLEMS)
async def periods(session: SessionDep, _: OperatorDep) -> PeriodList:
    """The closed periods, oldest first."""
    closed = await finance.closed_periods(session)
    return PeriodList(
        closed_through=await finance.closed_through(session),
        data=[_period_out(c) for c in closed],
    )


class CloseBody(StrictModel):
    note: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")


@router.post("/periods/{period}/close", responses=_PROBLEMS)
async def close_period(
    session: SessionDep,
    principal: OperatorDep,
    response: Response,
    period: Annotated[str, Path(max_length=7, description="YYYY-MM")],
    body: CloseBody | None = None,
) -> PeriodOut:
    """Close a month that is over: from now on the database refuses any posting dated in it
    (or before it). Closing it again is harmless (200); a fresh close is 201."""
    try:
        parsed = Period.parse(period)
    except ValueError as exc:
        raise Problem(422, "invalid_period", str(exc)) from exc
    now = datetime.now(UTC)
    if not has_ended(parsed, now=now):
        raise Problem(
            422,
            "period_not_over",
            f"{parsed} is not over yet (Asia/Almaty): close it after {parsed.last_day}",
        )
    try:
        async with session.begin():
            closed, created = await finance.close_period(
                session,
                period=parsed,
                actor_id=principal.key_id,
                actor_name=principal.name,
                note=body.note if body else None,
                now=now,
            )
    except finance.EarlierPeriodOpen as exc:
        raise Problem(
            409, "earlier_period_open", f"{exc.period} has postings and is open: close it first"
        ) from exc
    if created:
        # Final now that nothing can be dated in the period: taken after the close committed,
        # so postings were not held up while it was computed.
        async with session.begin():
            await finance.take_snapshot(session, day=parsed.last_day, now=now)
    response.status_code = 201 if created else 200
    if closed is None:  # inside the books closed through a later period
        return PeriodOut(
            period=str(parsed), status="closed", starts_on=parsed.first_day, ends_on=parsed.last_day
        )
    return _period_out(closed)


_GL_COLUMNS = [
    "date",
    "gl_code",
    "gl_name",
    "subaccount",
    "currency",
    "debit_minor",
    "credit_minor",
]


@router.get(
    "/gl.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **_PROBLEMS},
)
async def gl_export(session: SessionDep, _: OperatorDep, date: date) -> StreamingResponse:
    """The day's GL journal: per GL account, sub-account (a provider; all players as one) and
    currency, what the postings dated that day debited and credited, in minor units. Debits
    equal credits per currency."""
    day = _not_future(date)
    lines = [line async for line in finance.gl_day(session, day=day)]

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_GL_COLUMNS)
        for line in lines:
            writer.writerow(
                [
                    day.isoformat(),
                    line.gl_code,
                    line.gl_name,
                    line.subaccount,
                    line.currency,
                    line.debits_minor,
                    line.credits_minor,
                ]
            )
        yield buffer.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="gl-{day.isoformat()}.csv"'},
    )


class ProviderDayOut(BaseModel):
    provider: str
    date: Date
    currency: str
    run: dict[str, Any] | None = Field(description="the day's current reconciliation run")
    runs: int
    matched_count: int
    matched_amount: int
    unmatched_count: int
    unmatched_amount: int
    open_cases: int
    open_cases_amount: int = Field(
        description="the day's open cases' money in the difference account (like held_amount)"
    )
    resolved_cases: int
    outstanding_cases_amount: int = Field(
        description="the money of every case still open at the end of the day, any day's"
    )
    clearing_balance: int = Field(description="provider clearing at the end of the day")
    difference_balance: int = Field(description="reconciliation difference at the end of the day")
    explained: bool = Field(
        description="clearing is zero and open cases explain the difference account"
    )


class ProviderDays(BaseModel):
    object: Literal["list"] = "list"
    date: Date
    data: list[ProviderDayOut]


@router.get("/recon", responses=_PROBLEMS)
async def recon_days(
    session: SessionDep,
    _: OperatorDep,
    date: date,
    provider: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,64}$")] = None,
) -> ProviderDays:
    """Each provider's reconciled day: matched and unmatched counts and amounts of its current
    run, its cases, its clearing and difference balances at the end of the day."""
    day = _not_future(date)
    days = await finance.provider_days(session, day=day, provider=provider)
    out = []
    for d in days:
        run = d.run or {}
        out.append(
            ProviderDayOut(
                provider=d.provider,
                date=d.business_date,
                currency=d.currency,
                run=d.run,
                runs=d.runs,
                matched_count=int(run.get("matched_count") or 0),
                matched_amount=int(run.get("matched_minor") or 0),
                unmatched_count=int(run.get("unmatched_count") or 0),
                unmatched_amount=int(run.get("unmatched_minor") or 0),
                open_cases=d.open_cases,
                open_cases_amount=d.open_cases_minor,
                resolved_cases=d.resolved_cases,
                outstanding_cases_amount=d.outstanding_minor,
                clearing_balance=d.clearing_minor,
                difference_balance=d.difference_minor,
                explained=d.clearing_minor == 0 and d.difference_minor == -d.outstanding_minor,
            )
        )
    return ProviderDays(date=day, data=out)
