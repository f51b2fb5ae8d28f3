# ruff: noqa: S608  (SQL text is built only from this module's constants; values are bound)
"""Payment analytics computed in SQL: one aggregate query per figure family, grouped by a key.

Money stays integer minor units end to end (sums are `bigint`/`numeric` in PostgreSQL and
`int` here); only rates and durations are floats. A payment belongs to the window by its
`created_at`; times to complete come from `payment_completions` (the first time the payment
reached its success status, minus its creation). Every figure is read from the rollups that
triggers keep (db/rollups.py, migrations 0170 and 0190), never the history: the window's whole
days in the analytics zone from `payment_daily`, its other whole UTC hours from
`payment_hourly` (plus their pending deltas), the fractions of an hour at its edges from the
payments themselves (or the whole hour less its payments outside the window, when fewer:
`edge_hours`). The medians and p95 (exactly `percentile_cont`'s) come from the completion
histograms `completion_daily` and, per method or provider, `completion_daily_groups`
(migration 0260): each rank's bucket, then that bucket's rows alone; by day, each closed day's
are read kept (`completion_day_percentiles`).
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollups

GroupBy = Literal["method", "provider", "day"]

DEFAULT_TIME_ZONE = "Asia/Almaty"
WORK_MEM = "64MB"
TOTAL = "\x00total"  # the key of the total over all groups (GROUPING SETS), never a group's

# Whitelisted key expressions over a row source with `at`, `method`, `provider` (never user
# text in SQL; the zone is a bound parameter).
_KEYS: dict[str, str] = {
    # Byte order (COLLATE "C"): the percentiles sort by the key, and a locale's order is slower.
    "method": 'r.method COLLATE "C"',
    "provider": 'r.provider COLLATE "C"',
    # The index of the local day in :bounds (their UTC starts, see day_bounds): a binary search
    # per row instead of a time zone conversion.
    "day": "width_bucket(r.at, CAST(:bounds AS timestamptz[]))",
    "total": "'total'",
}
_DEPOSIT_UNSUCCESSFUL = rollups.DEPOSIT_UNSUCCESSFUL
_WITHDRAWAL_UNSUCCESSFUL = rollups.WITHDRAWAL_UNSUCCESSFUL


@dataclass
class Figures:
    """Everything the summary reports for one group (or the total)."""

    key: str
    deposits: dict[str, Any] = field(default_factory=dict)
    withdrawals: dict[str, Any] = field(default_factory=dict)
    net_deposits_minor: int = 0
    fraud_hits: int = 0


def _empty_deposits() -> dict[str, Any]:
    return {
        "count": 0,
        "by_status": {},
        "succeeded": 0,
        "volume_minor": 0,
        "attempted_volume_minor": 0,
        "average_minor": None,
        "approval_rate": None,
        "median_seconds_to_complete": None,
        "p95_seconds_to_complete": None,
        "first_time_depositors": 0,
        "unsuccessful_reasons": [],
        "fraud_hits": 0,
    }


def _empty_withdrawals() -> dict[str, Any]:
    return {
        "count": 0,
        "by_status": {},
        "paid": 0,
        "paid_volume_minor": 0,
        "requested_volume_minor": 0,
        "approval_rate": None,
        "median_seconds_to_pay": None,
        "p95_seconds_to_pay": None,
        "unsuccessful_reasons": [],
        "fraud_hits": 0,
        "paid_in_time": 0,
        "paid_in_time_rate": None,
    }


async def _by_key(
    session: AsyncSession, sql: str, params: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    rows = (await session.execute(text(sql), params)).mappings().all()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(TOTAL if row["k"] is None else str(row["k"]), []).append(dict(row))
    return out


def _grouped(key: str, select: str, source: str, by: tuple[str, ...], having: str = "") -> str:
    """`select` over `source` per `by` and the key; for a group key, the total over all groups
    too, in the same pass (GROUPING SETS: its rows have k NULL, read as TOTAL)."""
    inner = f"SELECT {_KEYS[key]} AS k, r.* FROM ({source}) r"
    cols = ", ".join(f"x.{c}" for c in by)
    if key == "total":
        sets = ", ".join(["x.k", *(f"x.{c}" for c in by)])
    else:
        sets = f"GROUPING SETS ((x.k{', ' if by else ''}{cols}), ({cols}))"
    keys = "x.k" + "".join(f", x.{c}" for c in by)
    return f"SELECT {keys}, {select} FROM ({inner}) x GROUP BY {sets} {having}"


def day_bounds(start: datetime, end: datetime, zone: str) -> tuple[list[datetime], list[str]]:
    """The UTC instants at which each calendar day in `zone` touching [start, end) begins, one
    past the last, and each day's label (YYYY-MM-DD): `width_bucket(at, bounds)` = i means the
    day labels[i - 1]."""
    tz = ZoneInfo(zone)
    day = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    bounds: list[datetime] = []
    labels: list[str] = []
    while day <= last + timedelta(days=1):
        bounds.append(datetime.combine(day, time(), tz).astimezone(UTC))
        labels.append(day.isoformat())
        day += timedelta(days=1)
    return bounds, labels[:-1]


def _ceil_hour(value: datetime) -> datetime:
    floor = value.replace(minute=0, second=0, microsecond=0)
    return floor if floor == value else floor + timedelta(hours=1)


def hour_span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours inside [start, end): read from the hourly rollup; the fractions of an
    hour at either edge are read from the payments themselves (indexed by `created_at`)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first, last = _ceil_hour(start), end.replace(minute=0, second=0, microsecond=0)
    return (first, last) if first < last else (end, end)


def local_midnights(start: datetime, end: datetime, zone: str) -> tuple[datetime, datetime]:
    """The first and the last midnight in `zone` inside [start, end] (UTC), when both are whole
    UTC hours and the first comes before the last: the window's whole local days lie between
    them (read from the daily rollups). Otherwise (end, end): no whole day."""
    tz = ZoneInfo(zone)
    first_day = start.astimezone(tz).date()
    first = datetime.combine(first_day, time(), tz).astimezone(UTC)
    if first < start:
        first = datetime.combine(first_day + timedelta(days=1), time(), tz).astimezone(UTC)
    last = datetime.combine(end.astimezone(tz).date(), time(), tz).astimezone(UTC)
    aligned = all(t.minute == 0 and t.second == 0 and t.microsecond == 0 for t in (first, last))
    return (first, last) if aligned and first < last else (end, end)


def _status_rows(kind: str, table: str) -> str:
    """Rows (at, method, provider, status, reason, n, amount_minor, fraud) for the window: the
    whole local days (:ds to :de) from the daily rollup, the other whole hours (:hs2 to :he2,
    see `edge_hours`) from the hourly one, every pending delta of those, and the payments
    in the fractions of an hour at the edges (+1 each), or those outside the window in an edge
    hour read whole (-1 each)."""
    payments = rollups.payment_rows(kind, table)
    cols = "method, provider, status, reason, n, amount_minor, fraud"
    where = "kind = :kind AND currency = :currency"
    plus = (
        "(p.created_at >= :sp0 AND p.created_at < :sp1) OR "
        "(p.created_at >= :sp2 AND p.created_at < :sp3)"
    )
    minus = (
        "(p.created_at >= :sm0 AND p.created_at < :sm1) OR "
        "(p.created_at >= :sm2 AND p.created_at < :sm3)"
    )
    return (
        f"SELECT CAST(day AS timestamp) AT TIME ZONE :zone AS at, {cols} FROM payment_daily "
        f"WHERE {where} AND day >= CAST(:d0 AS date) AND day < CAST(:d1 AS date) "
        f"UNION ALL SELECT hour AS at, {cols} FROM payment_hourly WHERE {where} "
        "AND ((hour >= :hs2 AND hour < :ds) OR (hour >= :de AND hour < :he2)) "
        f"UNION ALL SELECT hour AS at, {cols} FROM payment_hourly_deltas WHERE {where} "
        "AND hour >= :hs2 AND hour < :he2 "
        "UNION ALL SELECT created_at AS at, method, provider, status, reason, s * n, "
        f"s * amount_minor, s * fraud FROM (SELECT *, CASE WHEN {plus} THEN 1 ELSE -1 END AS s "
        f"FROM ({payments} WHERE p.currency = :currency AND ({plus} OR {minus})) p) x"
    )


def edge_hours(
    start: datetime,
    end: datetime,
    zone: str,
    now: datetime | None = None,
    *,
    subtract: bool = True,
) -> dict[str, Any]:
    """How the fractions of an hour at a window's edges are read: the whole UTC hours
    [hs2, he2) from the hourly rollup, plus the payments in [sp0, sp1) and [sp2, sp3), minus
    those in [sm0, sm1) and [sm2, sm3). An edge hour is read whole, less its payments outside
    the window, when fewer of them lie there (by time; a window ending now: the hour's rest is
    the future) and the hour is inside one day of `zone` (its groups by day stay right)."""
    now = now or datetime.now(UTC)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    hs, he = hour_span(start, end)
    out: dict[str, Any] = {"hs": hs, "he": he, "hs2": hs, "he2": he}
    out.update(sp0=start, sp1=hs, sp2=he, sp3=end, sm0=end, sm1=end, sm2=end, sm3=end)
    if hs >= he or not subtract:  # no whole hour: the window's payments
        if hs >= he:
            out.update(sp0=start, sp1=end, sp2=end, sp3=end)
        return out
    tz = ZoneInfo(zone)
    hour = timedelta(hours=1)

    def one_day(at: datetime) -> bool:
        return (
            at.astimezone(tz).date()
            == (at + hour - timedelta(microseconds=1)).astimezone(tz).date()
        )

    first = hs - hour
    if start < hs and start - first < hs - start and one_day(first):
        out.update(hs2=first, sp0=end, sp1=end, sm0=first, sm1=start)
    if end > he and min(he + hour, max(now, end)) - end < end - he and one_day(he):
        out.update(he2=he + hour, sp2=end, sp3=end, sm2=end, sm3=he + hour)
    return out


_TIMING_SELECT = (
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY x.seconds) AS median, "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY x.seconds) AS p95, "
    "count(*) FILTER (WHERE x.in_time) AS in_time, "
    "count(*) FILTER (WHERE x.in_time IS NOT NULL) AS with_deadline"
)
_TIMING_SOURCE = (
    "SELECT created_at AS at, method, provider, seconds, in_time FROM payment_completions "
    "WHERE kind = :kind AND currency = :currency AND created_at >= :start AND created_at < :end"
)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


async def _statuses(
    session: AsyncSession, kind: str, table: str, key: str, params: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    return await _by_key(
        session,
        _grouped(
            key,
            "sum(x.n) AS n, sum(x.amount_minor) AS amount, sum(x.fraud) AS fraud",
            _status_rows(kind, table),
            ("status", "reason"),
            "HAVING sum(x.n) <> 0",
        ),
        {**params, "kind": kind},
    )


def _reasons(rows: list[dict[str, Any]], bad: tuple[str, ...]) -> list[dict[str, Any]]:
    found = [
        {"status": r["status"], "reason": r["reason"], "count": int(r["n"])}
        for r in rows
        if r["status"] in bad
    ]
    return sorted(found, key=lambda r: (-r["count"], r["status"], r["reason"]))


def _fold_statuses(
    fig: dict[str, Any], rows: list[dict[str, Any]], done: str, volume: str, attempted: str
) -> None:
    for row in rows:
        n, amount = int(row["n"]), int(row["amount"])
        fig["count"] += n
        fig["by_status"][row["status"]] = fig["by_status"].get(row["status"], 0) + n
        fig[attempted] += amount
        fig["fraud_hits"] += int(row["fraud"])
        if row["status"] == done:
            fig[done] += n
            fig[volume] += amount


# The histogram of the window's completion times per group (`{hist}`: whole local days from the
# daily histograms, the edge days' rows themselves or their whole day less the rows outside the
# window, see `histogram_span`), each percentile's two ranks
# (percentile_cont's), the bucket holding each rank, and the value at it: that bucket's rows in
# the group's range, sorted (an index range of `ix_payment_completions_bucket` or its method /
# provider twin), never the whole window.
_PERCENTILES_SQL = """
WITH h AS (
    {hist}
), g AS (
    -- integer, not numeric (sum's type for bigint): the window sums stay cheap
    SELECT {key} AS k, bucket, sum(n)::int AS n, sum(in_time)::int AS in_time,
           sum(with_deadline)::int AS wd
    FROM h {keep} GROUP BY 1, 2 HAVING sum(n) <> 0
), c AS (
    SELECT k, bucket, n, sum(n) OVER w - n AS below, sum(n) OVER p AS total,
           sum(in_time) OVER p AS in_time, sum(wd) OVER p AS wd
    FROM ({groups}) a WINDOW w AS (PARTITION BY k ORDER BY bucket), p AS (PARTITION BY k)
), t AS (
    SELECT k, total, in_time, wd FROM c WHERE below = 0  -- each group's first bucket
), r AS (
    SELECT t.k, p.name, p.p * (t.total - 1) AS pos, w.which,
           (CASE w.which WHEN 1 THEN floor(p.p * (t.total - 1))
                         ELSE ceil(p.p * (t.total - 1)) END)::bigint AS rank
    FROM t, (VALUES ('median', 0.5::float8), ('p95', 0.95::float8)) AS p(name, p),
         (VALUES (1), (2)) AS w(which)
    WHERE w.which = 1 OR ceil(p.p * (t.total - 1)) > floor(p.p * (t.total - 1))
), v AS (
    SELECT r.k, r.name, r.pos, r.which, s.seconds
    FROM r JOIN c ON c.k = r.k AND r.rank >= c.below AND r.rank < c.below + c.n
    LEFT JOIN LATERAL ({lookup}) s ON true
)
SELECT {label} AS k, t.total, t.in_time, t.wd, v.name, min(v.pos) AS pos,
       count(v.seconds) AS found, count(*) AS wanted,
       min(v.seconds) FILTER (WHERE v.which = 1) AS low,
       min(v.seconds) FILTER (WHERE v.which = 2) AS high
FROM t JOIN v USING (k) GROUP BY t.k, t.total, t.in_time, t.wd, v.name
"""
# The window's completions per local day and bucket: whole days from `completion_daily` and
# its pending deltas, the edges' rows (+1), or the rows outside the window in an edge day read
# whole (-1).
_DAYS_HIST = """
    SELECT day AS grp, bucket, n, in_time, with_deadline FROM completion_daily
    WHERE kind = :kind AND currency = :currency AND day >= CAST(:hd0 AS date)
      AND day < CAST(:hd1 AS date)
    UNION ALL
    SELECT day, bucket, n, in_time, with_deadline FROM completion_daily_deltas
    WHERE kind = :kind AND currency = :currency AND day >= CAST(:hd0 AS date)
      AND day < CAST(:hd1 AS date)
    UNION ALL
    SELECT (created_at AT TIME ZONE :zone)::date, completion_bucket(seconds), s.s,
           s.s * coalesce(in_time, false)::int, s.s * (in_time IS NOT NULL)::int
    FROM payment_completions, LATERAL (SELECT CASE WHEN created_at >= :p0 AND created_at < :p1
                                                     OR created_at >= :p2 AND created_at < :p3
                                                   THEN 1 ELSE -1 END AS s) s
    WHERE kind = :kind AND currency = :currency
      AND ((created_at >= :p0 AND created_at < :p1) OR (created_at >= :p2 AND created_at < :p3)
           OR (created_at >= :m0 AND created_at < :m1)
           OR (created_at >= :m2 AND created_at < :m3))"""
# The same per method or provider ({dim}, a whitelisted column name), from
# `completion_daily_groups`.
_GROUPS_HIST = """
    SELECT key AS grp, bucket, n, in_time, with_deadline FROM completion_daily_groups
    WHERE kind = :kind AND currency = :currency AND dim = '{dim}'
      AND day >= CAST(:hd0 AS date) AND day < CAST(:hd1 AS date)
    UNION ALL
    SELECT {dim}, bucket, n, in_time, with_deadline FROM completion_daily_deltas
    WHERE kind = :kind AND currency = :currency AND day >= CAST(:hd0 AS date)
      AND day < CAST(:hd1 AS date)
    UNION ALL
    SELECT {dim}, completion_bucket(seconds), s.s, s.s * coalesce(in_time, false)::int,
           s.s * (in_time IS NOT NULL)::int
    FROM payment_completions, LATERAL (SELECT CASE WHEN created_at >= :p0 AND created_at < :p1
                                                     OR created_at >= :p2 AND created_at < :p3
                                                   THEN 1 ELSE -1 END AS s) s
    WHERE kind = :kind AND currency = :currency
      AND ((created_at >= :p0 AND created_at < :p1) OR (created_at >= :p2 AND created_at < :p3)
           OR (created_at >= :m0 AND created_at < :m1)
           OR (created_at >= :m2 AND created_at < :m3))"""
# The value at a rank in a group's bucket: its rows in the window (`{match}`: the group's).
_LOOKUP = """
        SELECT x.seconds FROM payment_completions x
        WHERE x.kind = :kind AND x.currency = :currency {match}
          AND completion_bucket(x.seconds) = c.bucket
          AND x.created_at >= {lo} AND x.created_at < {hi}
        ORDER BY x.seconds OFFSET r.rank - c.below LIMIT 1"""
# Per method or provider and their total ('' : no method or provider is empty), one index
# range each: the branch of the other kind of group is skipped (a one-time filter).
_GROUP_LOOKUP = (
    "(" + _LOOKUP.format(match="AND c.k <> '' AND x.{dim} = c.k", lo=":start", hi=":end") + ")"
    " UNION ALL "
    "(" + _LOOKUP.format(match="AND c.k = ''", lo=":start", hi=":end") + ")"
)
_DAY_START = "(CAST(c.k AS timestamp) AT TIME ZONE :zone)"
_TOTAL_KEY = "CAST('infinity' AS date)"  # the group of every day
_DAY_LABEL = f"CASE WHEN t.k = {_TOTAL_KEY} THEN 'total' ELSE t.k::text END"
_BY_KEY = {
    "total": {
        "hist": _DAYS_HIST,
        "key": _TOTAL_KEY,
        "keep": "",
        "groups": "SELECT * FROM g",
        "lookup": _LOOKUP.format(match="", lo=":start", hi=":end"),
        "label": _DAY_LABEL,
    },
    # The days whose percentiles are not kept (`_STORED_SQL`); the total is the "total" key's.
    "day": {
        "hist": _DAYS_HIST,
        "key": "grp",
        "keep": "WHERE grp <> ALL(CAST(:stored AS date[]))",
        "groups": "SELECT * FROM g",
        "lookup": _LOOKUP.format(
            match="",
            lo=f"greatest(:start, {_DAY_START})",
            hi="least(:end, CAST(c.k + 1 AS timestamp) AT TIME ZONE :zone)",
        ),
        "label": "t.k::text",
    },
    # The groups and their total ('': every group's buckets summed).
    **{
        dim: {
            "hist": _GROUPS_HIST.format(dim=dim),
            "key": "grp",
            "keep": "",
            "groups": "SELECT * FROM g UNION ALL SELECT '', bucket, sum(n)::int, "
            "sum(in_time)::int, sum(wd)::int FROM g GROUP BY bucket",
            "lookup": _GROUP_LOOKUP.format(dim=dim),
            "label": "CASE t.k WHEN '' THEN 'total' ELSE t.k END",
        }
        for dim in ("method", "provider")
    },
}
# Each closed day's kept percentiles in the window, unless a completion of the day is pending
# (then the histogram's): see db/rollups.py (`completion_day_percentiles`).
_STORED_SQL = """
SELECT day, in_time, with_deadline, median, p95 FROM completion_day_percentiles p
WHERE kind = :kind AND currency = :currency AND day >= CAST(:cd0 AS date)
  AND day < CAST(:cd1 AS date)
  AND NOT EXISTS (SELECT FROM completion_daily_deltas q WHERE q.kind = p.kind
                  AND q.currency = p.currency AND q.day = p.day)
"""


def histogram_span(
    start: datetime, end: datetime, zone: str, now: datetime | None = None
) -> dict[str, Any]:
    """How a window's completions are counted: whole local days [cd0, cd1) of `zone` from the
    daily histograms, and each partial day at an edge either from its rows inside the window
    (+1 each: [p0, p1), [p2, p3)) or, when fewer rows lie outside it, as its whole day's
    histogram (the span [hd0, hd1) of days read) minus its rows outside the window (-1 each:
    [m0, m1), [m2, m3)); a window ending now is today's histogram, no rows read. Ranges
    of UTC instants; empty ones are (end, end)."""
    now = now or datetime.now(UTC)
    tz = ZoneInfo(zone)
    cds, cde = local_midnights(start, end, zone)
    cd0, cd1 = cds.astimezone(tz).date(), cde.astimezone(tz).date()
    out: dict[str, Any] = {"cd0": cd0, "cd1": cd1, "hd0": cd0, "hd1": cd1}
    out.update(p0=start, p1=cds, p2=cde, p3=end, m0=end, m1=end, m2=end, m3=end)
    if cds >= cde:  # no whole day: the window's rows
        out.update(p0=start, p1=end, p2=end, p3=end)
        return out

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), tz).astimezone(UTC)

    if start < cds:  # the first day's part before the window, if fewer rows lie there
        begins = midnight(cd0 - timedelta(days=1))
        if start - begins < cds - start:
            out.update(hd0=cd0 - timedelta(days=1), p0=end, p1=end, m0=begins, m1=start)
    if cde < end:  # the last day's part after the window: often the future, no rows yet
        ends = midnight(cd1 + timedelta(days=1))
        if min(ends, max(now, end)) - end < end - cde:
            out.update(hd1=cd1 + timedelta(days=1), p2=end, p3=end, m2=end, m3=ends)
    return out


async def _percentiles(
    session: AsyncSession, kind: str, key: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]] | None:
    """Per group (the SQL's label: 'total', a day, a method or provider): in_time,
    with_deadline, median and p95, from the histogram (`_PERCENTILES_SQL`) or, for the closed
    days of `key` day, kept. None when the histogram and the rows disagree."""
    bound = {
        **params,
        "kind": kind,
        **histogram_span(params["start"], params["end"], params["zone"]),
    }
    out: dict[str, dict[str, Any]] = {}
    if key == "day":
        for row in (await session.execute(text(_STORED_SQL), bound)).all():
            out[row.day.isoformat()] = {
                "in_time": int(row.in_time),
                "with_deadline": int(row.with_deadline),
                "median": row.median,
                "p95": row.p95,
            }
    rows = (
        await session.execute(
            text(_PERCENTILES_SQL.format(**_BY_KEY[key])),
            {**bound, "stored": [date.fromisoformat(d) for d in out]},
        )
    ).all()
    for row in rows:
        if row.found != row.wanted:
            # The histogram and the rows disagree (a completion between two statements of a
            # READ COMMITTED caller).
            return None
        figures = out.setdefault(row.k, {"in_time": int(row.in_time), "with_deadline": int(row.wd)})
        low, proportion = float(row.low), row.pos - math.floor(row.pos)
        figures[row.name] = low if row.high is None else low + proportion * (row.high - low)
    return out


async def _timing(
    session: AsyncSession, kind: str, key: str, params: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Median and p95 seconds to complete (percentile_cont's, exactly), and the withdrawals
    paid in time, per group, from the completion histograms (`_percentiles`): the total, local
    days of the analytics zone, methods and providers. Days of another zone, or a histogram
    that disagrees with the rows, sort the window (`_TIMING_SOURCE`)."""
    sort = _grouped(key, _TIMING_SELECT, _TIMING_SOURCE, ())
    if key not in _BY_KEY or (key == "day" and params["time_zone"] != params["zone"]):
        return await _by_key(session, sort, {**params, "kind": kind})
    found = await _percentiles(session, kind, key, params)
    if found and key == "day":  # and the total over the days
        total = await _percentiles(session, kind, "total", params)
        found = None if total is None else {**found, **total}
    if found is None:
        return await _by_key(session, sort, {**params, "kind": kind})
    # The total's key: "total" when it is the only group, else TOTAL (as `_grouped` keys it).
    out = {TOTAL if k == "total" and key != "total" else k: [v] for k, v in found.items()}
    if key == "day":  # keyed as the SQL keys days: the day's index in :bounds (1-based)
        index = {label: str(i) for i, label in enumerate(params["labels"], 1)}
        return {k if k == TOTAL else index[k]: v for k, v in out.items()}
    return out


async def _deposit_figures(
    session: AsyncSession, key: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    statuses = await _statuses(session, "deposit", "deposits", key, params)
    timing = await _timing(session, "deposit", key, params)
    # A first-time depositor's first succeeded deposit ever lies in the window (and the group).
    first = await _by_key(
        session,
        _grouped(
            key,
            "count(*) AS n",
            "SELECT first_at AS at, method, provider FROM player_first_deposits "
            "WHERE currency = :currency AND first_at >= :start AND first_at < :end",
            (),
        ),
        params,
    )
    out: dict[str, dict[str, Any]] = {}
    for k, rows in statuses.items():
        fig = out.setdefault(k, _empty_deposits())
        _fold_statuses(fig, rows, "succeeded", "volume_minor", "attempted_volume_minor")
        finished = fig["succeeded"] + sum(fig["by_status"].get(s, 0) for s in _DEPOSIT_UNSUCCESSFUL)
        fig["approval_rate"] = _rate(fig["succeeded"], finished)
        if fig["succeeded"]:
            fig["average_minor"] = fig["volume_minor"] // fig["succeeded"]
        fig["unsuccessful_reasons"] = _reasons(rows, _DEPOSIT_UNSUCCESSFUL)
    for k, rows in timing.items():
        fig = out.setdefault(k, _empty_deposits())
        fig["median_seconds_to_complete"] = _seconds(rows[0]["median"])
        fig["p95_seconds_to_complete"] = _seconds(rows[0]["p95"])
    for k, rows in first.items():
        out.setdefault(k, _empty_deposits())["first_time_depositors"] = int(rows[0]["n"])
    return out


async def _withdrawal_figures(
    session: AsyncSession, key: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    statuses = await _statuses(session, "withdrawal", "withdrawals", key, params)
    timing = await _timing(session, "withdrawal", key, params)
    out: dict[str, dict[str, Any]] = {}
    for k, rows in statuses.items():
        fig = out.setdefault(k, _empty_withdrawals())
        _fold_statuses(fig, rows, "paid", "paid_volume_minor", "requested_volume_minor")
        finished = fig["paid"] + sum(fig["by_status"].get(s, 0) for s in _WITHDRAWAL_UNSUCCESSFUL)
        fig["approval_rate"] = _rate(fig["paid"], finished)
        fig["unsuccessful_reasons"] = _reasons(rows, _WITHDRAWAL_UNSUCCESSFUL)
    for k, rows in timing.items():
        fig = out.setdefault(k, _empty_withdrawals())
        fig["median_seconds_to_pay"] = _seconds(rows[0]["median"])
        fig["p95_seconds_to_pay"] = _seconds(rows[0]["p95"])
        # The payout deadline for winnings (migration 0150): the share paid by it.
        fig["paid_in_time"] = int(rows[0]["in_time"])
        fig["paid_in_time_rate"] = _rate(int(rows[0]["in_time"]), int(rows[0]["with_deadline"]))
    return out


async def _figures(session: AsyncSession, key: str, params: dict[str, Any]) -> dict[str, Figures]:
    deposits = await _deposit_figures(session, key, params)
    withdrawals = await _withdrawal_figures(session, key, params)
    out: dict[str, Figures] = {}
    for k in sorted(set(deposits) | set(withdrawals)):
        dep = deposits.get(k, _empty_deposits())
        wd = withdrawals.get(k, _empty_withdrawals())
        out[k] = Figures(
            key=k,
            deposits=dep,
            withdrawals=wd,
            net_deposits_minor=int(dep["volume_minor"]) - int(wd["paid_volume_minor"]),
            fraud_hits=int(dep["fraud_hits"]) + int(wd["fraud_hits"]),
        )
    return out


async def summary(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    group_by: GroupBy | None,
    currency: str = "KZT",
    time_zone: str = DEFAULT_TIME_ZONE,
) -> tuple[Figures, list[Figures]]:
    """The totals over [start, end) and, when asked, the same figures per group (days are
    calendar days in `time_zone`). Reads the rollups (db/rollups.py), never the history."""
    edges = edge_hours(start, end, time_zone)
    he = edges["he"]
    # The percentiles' two reads (histogram, then ranks) and the rest: one snapshot.
    if not session.in_transaction():
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    # A fallback to sorting a window's completion times sorts in memory, not on disk.
    await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    zone = str(await session.scalar(text("SELECT analytics_zone()")))
    # Whole days of the rollups' zone come from the daily rollup, unless the groups are days
    # of another zone.
    ds, de = local_midnights(start.astimezone(UTC), end.astimezone(UTC), zone)
    if ds >= de or (group_by == "day" and time_zone != zone):
        ds = de = he
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        **edges,
        "ds": ds,
        "de": de,
        "d0": ds.astimezone(ZoneInfo(zone)).date(),
        "d1": de.astimezone(ZoneInfo(zone)).date(),
        "zone": zone,
        "time_zone": time_zone,
        "currency": currency,
        "labels": [],
    }

    def empty() -> Figures:
        return Figures(key="total", deposits=_empty_deposits(), withdrawals=_empty_withdrawals())

    if group_by is None:
        return (await _figures(session, "total", params)).get("total") or empty(), []
    labels: list[str] = []
    if group_by == "day":
        params["bounds"], labels = day_bounds(start, end, time_zone)
        params["labels"] = labels
    found = await _figures(session, group_by, params)  # the groups and their total, one pass
    total = found.pop(TOTAL, None) or empty()
    total.key = "total"
    groups = list(found.values())
    for figures in groups:
        if group_by == "day":
            figures.key = labels[int(figures.key) - 1]
    return total, sorted(groups, key=lambda f: f.key)
