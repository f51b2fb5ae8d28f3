"""The finance views of the ledger (migration 0120): trial balance at a date, daily balance
snapshots, closed periods, the GL export. Plain SQL over the ledger's own rows.

Every query reads posted amounts only (`posted`, and the posting of a pending transfer); a hold
still pending is no balance yet. A day is a posting date (`domain.finance`): the Asia/Almaty
day a transaction was written, unless its writer dated it (`date_postings`).
"""

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.finance import BalanceLine, Period, gl_account, gl_subaccount
from domain.recon.cases import CaseFacts, held_minor

PERIOD_CLOSED_STATE = "LG423"


class PeriodClosed(Exception):
    """A posting dated in a closed period: the database refused it (or would)."""

    def __init__(self, period: str, detail: str | None = None) -> None:
        super().__init__(detail or f"period {period} is closed")
        self.period = period


def is_period_closed_error(exc: BaseException) -> bool:
    """Whether a database error is the closed-period trigger's refusal."""
    if not isinstance(exc, DBAPIError):
        return False
    return getattr(exc.orig, "sqlstate", None) == PERIOD_CLOSED_STATE


async def date_postings(session: AsyncSession, day: date) -> None:
    """Date the postings of the session's current transaction `day` (instead of today)."""
    await session.execute(
        text("SELECT set_config('ledger.posting_date', :day, true)"), {"day": day.isoformat()}
    )


async def today(session: AsyncSession) -> date:
    """The date a posting written now gets: the database's clock, in Asia/Almaty."""
    value = await session.scalar(text("SELECT ledger_posting_date()"))
    assert isinstance(value, date)
    return value


# -- periods ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedPeriod:
    period: str
    starts_on: date
    ends_on: date
    closed_at: datetime
    closed_by: str
    closed_by_name: str
    note: str | None


async def closed_period(session: AsyncSession, period: Period) -> ClosedPeriod | None:
    row = (
        await session.execute(
            text(
                "SELECT period, starts_on, ends_on, closed_at, closed_by, closed_by_name, note "
                "FROM finance_periods WHERE period = :period"
            ),
            {"period": str(period)},
        )
    ).one_or_none()
    return None if row is None else ClosedPeriod(**row._asdict())


async def closed_periods(session: AsyncSession) -> list[ClosedPeriod]:
    rows = await session.execute(
        text(
            "SELECT period, starts_on, ends_on, closed_at, closed_by, closed_by_name, note "
            "FROM finance_periods ORDER BY period"
        )
    )
    return [ClosedPeriod(**row._asdict()) for row in rows]


async def closed_through(session: AsyncSession) -> date | None:
    """The last day of the latest closed period: nothing on or before it takes postings."""
    value = await session.scalar(text("SELECT max(ends_on) FROM finance_periods"))
    return value if isinstance(value, date) else None


async def ensure_open(session: AsyncSession, day: date) -> None:
    """PeriodClosed if `day` lies in a closed period (the API's check before it posts)."""
    through = await closed_through(session)
    if through is not None and day <= through:
        raise PeriodClosed(
            str(Period.of(day)),
            f"{day} lies in a closed period (the books are closed through {through}): book it "
            "in the open period",
        )


class EarlierPeriodOpen(Exception):
    def __init__(self, period: str) -> None:
        super().__init__(f"period {period} has postings and is still open: close it first")
        self.period = period


async def close_period(
    session: AsyncSession,
    *,
    period: Period,
    actor_id: str,
    actor_name: str,
    note: str | None,
    now: datetime,
) -> tuple[ClosedPeriod | None, bool]:
    """Close `period`: (the period's record, newly closed). Closing it again is harmless (the
    record, False; None when it was closed as part of a later period). EarlierPeriodOpen if
    an earlier month with postings is still open: periods close in order.

    `finance_close_period` (migration 0120) waits for every transaction still writing postings
    and keeps new ones out until this commits, so no posting dated in the period can slip in
    after the close; from then on the trigger refuses them. Commit before taking the last
    day's snapshot: it is final by then, and the lock is not held while it is taken.
    """
    outcome = await session.scalar(
        text("SELECT finance_close_period(:period, :starts, :ends, :now, :by, :name, :note)"),
        {
            "period": str(period),
            "starts": period.first_day,
            "ends": period.last_day,
            "now": now,
            "by": actor_id,
            "name": actor_name,
            "note": note,
        },
    )
    if isinstance(outcome, str) and outcome.startswith("earlier_open:"):
        raise EarlierPeriodOpen(outcome.split(":", 1)[1])
    return await closed_period(session, period), outcome == "closed"


# -- balances ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountBalance:
    account_id: int
    code: str
    type: str
    currency: str
    owner_id: str | None
    debits_minor: int
    credits_minor: int

    @property
    def line(self) -> BalanceLine:
        return BalanceLine(self.debits_minor, self.credits_minor)


def _balances(rows: Iterable[Any]) -> list[AccountBalance]:
    """Rows selected as `account_id, code, type, currency, owner_id, debits_minor,
    credits_minor`, as balances."""
    return [
        AccountBalance(
            account_id=row.account_id,
            code=row.code,
            type=row.type,
            currency=row.currency,
            owner_id=row.owner_id,
            debits_minor=int(row.debits_minor),
            credits_minor=int(row.credits_minor),
        )
        for row in rows
    ]


# Each account's posted debits and credits through the end of :day: from the newest snapshot
# before it that is still fresh (no transaction it did not see is dated on or before its day),
# plus what was posted since. :base is that snapshot's day, or NULL: from the first posting.
_THROUGH = """
    WITH moved AS (
        SELECT e.account_id,
               sum(e.amount_minor) FILTER (WHERE e.side = 'D') AS debits,
               sum(e.amount_minor) FILTER (WHERE e.side = 'C') AS credits
        FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
        WHERE t.phase IN ('posted', 'post_pending') AND t.posting_date <= :day
          AND (CAST(:base AS date) IS NULL OR t.posting_date > CAST(:base AS date))
        GROUP BY e.account_id
    ), base AS (
        SELECT account_id, debits_minor AS debits, credits_minor AS credits
        FROM ledger_daily_balances WHERE day = CAST(:base AS date)
    ), total AS (
        SELECT account_id, sum(coalesce(debits, 0)) AS debits, sum(coalesce(credits, 0)) AS credits
        FROM (SELECT * FROM base UNION ALL SELECT * FROM moved) both_parts
        GROUP BY account_id
    )
"""


_FRESH = """
    SELECT s.day FROM balance_snapshots s
    WHERE s.day {op} :day AND NOT EXISTS (
        SELECT 1 FROM ledger_transactions t
        WHERE t.id > s.through_transaction_id AND t.posting_date <= s.day
          AND t.phase IN ('posted', 'post_pending'))
    ORDER BY s.day DESC LIMIT 1
"""


async def _fresh_base(session: AsyncSession, *, day: date, inclusive: bool) -> date | None:
    """The newest snapshot on (or only before) the day that no later posting made stale."""
    query = _FRESH.format(op="<=" if inclusive else "<")
    row = await session.scalar(text(query), {"day": day})
    return row if isinstance(row, date) else None


async def balances_at(session: AsyncSession, *, day: date) -> list[AccountBalance]:
    """Every account that has posted anything by the end of `day`, with its totals."""
    base = await _fresh_base(session, day=day, inclusive=True)
    rows = await session.execute(
        text(
            _THROUGH  # noqa: S608 - module constants only
            + """
            SELECT a.id AS account_id, a.code, a.type, a.currency, a.owner_id,
                   total.debits AS debits_minor, total.credits AS credits_minor
            FROM total JOIN ledger_accounts a ON a.id = total.account_id
            ORDER BY a.code
            """
        ),
        {"day": day, "base": base},
    )
    return _balances(rows)


@dataclass(frozen=True)
class Snapshot:
    day: date
    taken_at: datetime
    through_transaction_id: int
    accounts: int
    taken: bool  # False: a fresh snapshot was there already


async def take_snapshot(session: AsyncSession, *, day: date, now: datetime) -> Snapshot:
    """Each account's balance at the end of `day`, kept in `ledger_daily_balances`; taken again
    if a posting dated on or before `day` arrived after it was taken (a newer transaction id).

    A posting still uncommitted while the snapshot is taken, with an older id, is not seen and
    does not make it stale: take a day's snapshot once the day is over (the nightly schedule
    takes the previous day's at 00:30); a closed period's last day is exact for good."""
    # Serialize snapshots of the same day; whether one is fresh is read after the lock.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('balance_snapshot'), :n)"),
        {"n": day.toordinal()},
    )
    existing = (
        await session.execute(
            text(
                """
                SELECT s.day, s.taken_at, s.through_transaction_id, s.accounts FROM
                balance_snapshots s WHERE s.day = :day AND NOT EXISTS (
                    SELECT 1 FROM ledger_transactions t
                    WHERE t.id > s.through_transaction_id AND t.posting_date <= s.day
                      AND t.phase IN ('posted', 'post_pending'))
                """
            ),
            {"day": day},
        )
    ).one_or_none()
    if existing is not None:
        return Snapshot(**existing._asdict(), taken=False)
    through = int(
        await session.scalar(text("SELECT coalesce(max(id), 0) FROM ledger_transactions")) or 0
    )
    base = await _fresh_base(session, day=day, inclusive=False)
    await session.execute(text("DELETE FROM balance_snapshots WHERE day = :day"), {"day": day})
    await session.execute(
        text(
            "INSERT INTO balance_snapshots (day, taken_at, through_transaction_id, accounts) "
            "VALUES (:day, :now, :through, 0)"
        ),
        {"day": day, "now": now, "through": through},
    )
    result = await session.execute(
        text(
            _THROUGH  # noqa: S608 - module constants only
            + """
            INSERT INTO ledger_daily_balances (day, account_id, debits_minor, credits_minor)
            SELECT :day, account_id, debits, credits FROM total
            """
        ),
        {"day": day, "base": base},
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    await session.execute(
        text("UPDATE balance_snapshots SET accounts = :count WHERE day = :day"),
        {"count": count, "day": day},
    )
    return Snapshot(
        day=day, taken_at=now, through_transaction_id=through, accounts=count, taken=True
    )


async def snapshot_rows(
    session: AsyncSession, *, day: date, account_prefix: str | None, limit: int, after: str | None
) -> list[AccountBalance]:
    """A snapshot's accounts in code order, a page at a time (keyset on the account code)."""
    rows = await session.execute(
        text(
            """
            SELECT a.id AS account_id, a.code, a.type, a.currency, a.owner_id,
                   b.debits_minor, b.credits_minor
            FROM ledger_daily_balances b JOIN ledger_accounts a ON a.id = b.account_id
            WHERE b.day = :day
              AND (CAST(:prefix AS text) IS NULL
                   OR left(a.code, length(CAST(:prefix AS text))) = CAST(:prefix AS text))
              AND (CAST(:after AS text) IS NULL OR a.code > CAST(:after AS text))
            ORDER BY a.code LIMIT :limit
            """
        ),
        {"day": day, "prefix": account_prefix, "after": after, "limit": limit},
    )
    return _balances(rows)


# -- trial balance and GL ---------------------------------------------------------------------


@dataclass(frozen=True)
class GlLine:
    gl_code: str
    gl_name: str
    subaccount: str
    currency: str
    debits_minor: int
    credits_minor: int


def gl_lines(balances: list[AccountBalance]) -> list[GlLine]:
    """Accounts added up by GL account, sub-account (the provider; all players as one) and
    currency; shards of a house account are one line."""
    sums: dict[tuple[str, str, str, str], list[int]] = {}
    for balance in balances:
        gl = gl_account(balance.type)
        key = (gl.code, gl.name, gl_subaccount(balance.type, balance.owner_id), balance.currency)
        totals = sums.setdefault(key, [0, 0])
        totals[0] += balance.debits_minor
        totals[1] += balance.credits_minor
    return [
        GlLine(code, name, sub, currency, debits, credits)
        for (code, name, sub, currency), (debits, credits) in sorted(sums.items())
    ]


async def day_movements(session: AsyncSession, *, day: date) -> list[AccountBalance]:
    """What each account was debited and credited by the postings dated `day`."""
    rows = await session.execute(
        text(
            """
            SELECT a.id AS account_id, a.code, a.type, a.currency, a.owner_id,
                   coalesce(sum(e.amount_minor) FILTER (WHERE e.side = 'D'), 0) AS debits_minor,
                   coalesce(sum(e.amount_minor) FILTER (WHERE e.side = 'C'), 0) AS credits_minor
            FROM ledger_transactions t
            JOIN ledger_entries e ON e.transaction_id = t.id
            JOIN ledger_accounts a ON a.id = e.account_id
            WHERE t.posting_date = :day AND t.phase IN ('posted', 'post_pending')
            GROUP BY a.id, a.code, a.type, a.currency, a.owner_id
            ORDER BY a.code
            """
        ),
        {"day": day},
    )
    return _balances(rows)


async def gl_day(session: AsyncSession, *, day: date) -> AsyncIterator[GlLine]:
    """The GL journal of one day: each GL line's debits and credits of postings dated then."""
    for line in gl_lines(await day_movements(session, day=day)):
        yield line


def as_json(line: GlLine) -> dict[str, Any]:
    return {
        "gl_code": line.gl_code,
        "gl_name": line.gl_name,
        "subaccount": line.subaccount,
        "currency": line.currency,
        "debit": line.debits_minor,
        "credit": line.credits_minor,
    }


# -- the reconciliation dashboard -------------------------------------------------------------


@dataclass(frozen=True)
class ProviderDay:
    """One provider's business day as the finance team checks it."""

    provider: str
    business_date: date
    currency: str
    run: dict[str, Any] | None  # the day's current run (the latest not superseded)
    runs: int  # how many runs the day had (a corrected report supersedes)
    open_cases: int  # the day's cases not resolved (open or resolving)
    open_cases_minor: int  # their money, signed like `held_minor`
    resolved_cases: int
    outstanding_minor: int  # the money of every case still waiting at the end of the day
    clearing_minor: int  # the provider's clearing at the end of the day (debits - credits)
    difference_minor: int  # its reconciliation-difference account at the end of the day


_RUNS = text(
    """
    SELECT DISTINCT ON (provider, currency) provider, currency, id, status, line_count,
           matched_count, matched_minor, unmatched_count, unmatched_minor, cases_opened,
           net_settled_minor, clearing_minor, fee_delta_minor, difference_minor,
           fees_reported_minor, fees_expected_minor, outcomes, created_at, finished_at,
           count(*) OVER (PARTITION BY provider, currency) AS runs
    FROM recon_runs
    WHERE business_date = :day
      AND (CAST(:provider AS text) IS NULL OR provider = CAST(:provider AS text))
    ORDER BY provider, currency, (status = 'superseded'), id DESC
    """
)
_CASES = text(
    """
    SELECT provider, currency,
           count(*) FILTER (WHERE status <> 'resolved') AS open,
           count(*) FILTER (WHERE status = 'resolved') AS resolved
    FROM recon_cases
    WHERE business_date = :day
      AND (CAST(:provider AS text) IS NULL OR provider = CAST(:provider AS text))
    GROUP BY provider, currency
    """
)
# Cases whose money waited in the difference account at the end of the day: raised on or
# before it and not resolved by then (a superseded run's cases went with its settlement).
_OUTSTANDING = text(
    """
    SELECT id, provider, kind, reference, amount_minor, currency, details, business_date
    FROM recon_cases
    WHERE business_date <= :day
      AND (status <> 'resolved' OR (resolved_at AT TIME ZONE 'Asia/Almaty')::date > :day)
      AND resolution IS DISTINCT FROM 'superseded'
      AND (CAST(:provider AS text) IS NULL OR provider = CAST(:provider AS text))
    """
)
# The providers' clearing and difference accounts at the end of the day as reconciliation dates
# postings: by posting date, unless `recon_postings` (migration 0110) dates a posting to the
# business day it settles (a day's settlement is posted after the day, for the day).
_HOUSE_AT = text(
    """
    WITH accounts AS (
        SELECT id, type, owner_id, currency FROM ledger_accounts
        WHERE type IN ('provider_clearing', 'recon_difference')
          AND (CAST(:owner AS text) IS NULL OR owner_id = CAST(:owner AS text))
    )
    SELECT a.owner_id, a.type, a.currency,
           sum(CASE WHEN e.side = 'D' THEN e.amount_minor ELSE -e.amount_minor END) AS net
    FROM accounts a
    JOIN ledger_entries e ON e.account_id = a.id
    JOIN ledger_transactions t ON t.id = e.transaction_id
    LEFT JOIN recon_postings rp ON rp.ledger_transaction_id = t.id
    WHERE t.phase IN ('posted', 'post_pending')
      AND coalesce(rp.business_date, t.posting_date) <= :day
    GROUP BY a.owner_id, a.type, a.currency
    """
)


async def provider_days(
    session: AsyncSession, *, day: date, provider: str | None
) -> list[ProviderDay]:
    """Each provider's day: its current reconciliation run (matched and unmatched counts and
    amounts), its cases, and its clearing and difference balances at the end of the day."""
    params = {"day": day, "provider": provider}
    runs = {(r.provider, r.currency): r for r in await session.execute(_RUNS, params)}
    cases = {(r.provider, r.currency): r for r in await session.execute(_CASES, params)}
    held: dict[tuple[str, str], int] = {}
    outstanding: dict[tuple[str, str], int] = {}
    for row in await session.execute(_OUTSTANDING, params):
        facts = CaseFacts(
            id=row.id,
            provider=row.provider,
            kind=row.kind,
            reference=row.reference,
            amount_minor=row.amount_minor,
            currency=row.currency,
            details=dict(row.details or {}),
        )
        key = (row.provider, row.currency)
        waiting = held_minor(facts)
        outstanding[key] = outstanding.get(key, 0) + waiting
        if row.business_date == day:
            held[key] = held.get(key, 0) + waiting
    owner = None if provider is None else f"provider:{provider}"
    balances: dict[tuple[str, str], dict[str, int]] = {}
    rows = await session.execute(_HOUSE_AT, {"day": day, "owner": owner})
    for row in rows:
        name = str(row.owner_id).removeprefix("provider:")
        balances.setdefault((name, row.currency), {})[row.type] = int(row.net or 0)
    keys = sorted(set(runs) | set(cases) | set(balances) | set(outstanding))
    days: list[ProviderDay] = []
    for key in keys:
        run = runs.get(key)
        counted = cases.get(key)
        money = balances.get(key, {})
        days.append(
            ProviderDay(
                provider=key[0],
                business_date=day,
                currency=key[1],
                run=None
                if run is None
                else {
                    k: v
                    for k, v in run._asdict().items()
                    if k not in ("provider", "currency", "runs")
                },
                runs=0 if run is None else int(run.runs),
                open_cases=0 if counted is None else int(counted.open),
                open_cases_minor=held.get(key, 0),
                resolved_cases=0 if counted is None else int(counted.resolved),
                outstanding_minor=outstanding.get(key, 0),
                clearing_minor=money.get("provider_clearing", 0),
                difference_minor=money.get("recon_difference", 0),
            )
        )
    return days
