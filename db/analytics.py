# ruff: noqa: S608  (SQL text is built only from this module's constants; values are bound)
"""Payment analytics computed in SQL: one aggregate query per figure family, grouped by a key.

Money stays integer minor units end to end (sums are `bigint`/`numeric` in PostgreSQL and
`int` here); only rates and durations are floats. A payment belongs to the window by its
`created_at`; times to complete come from `payment_completions` (the first time the payment
reached its success status, minus its creation). Every figure is read from the rollups that
triggers keep (db/rollups.py, migration 0170): whole UTC hours from `payment_hourly` (plus its
pending deltas), the fractions of an hour at the window's edges from the payments themselves.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
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


def _status_rows(kind: str, table: str) -> str:
    """Rows (at, method, provider, status, reason, n, amount_minor, fraud) for the window: the
    rollup and its pending deltas for whole hours, the payments for the edges."""
    payments = rollups.payment_rows(kind, table)
    cols = "hour AS at, method, provider, status, reason, n, amount_minor, fraud"
    where = "kind = :kind AND currency = :currency AND hour >= :hs AND hour < :he"
    return (
        f"SELECT {cols} FROM payment_hourly WHERE {where} "
        f"UNION ALL SELECT {cols} FROM payment_hourly_deltas WHERE {where} "
        f"UNION ALL SELECT created_at AS at, method, provider, status, reason, n, amount_minor, "
        f"fraud FROM ({payments} WHERE p.currency = :currency AND ("
        "(p.created_at >= :start AND p.created_at < :hs) OR "
        "(p.created_at >= :he AND p.created_at < :end))) x"
    )


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


async def _deposit_figures(
    session: AsyncSession, key: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    statuses = await _statuses(session, "deposit", "deposits", key, params)
    timing = await _by_key(
        session, _grouped(key, _TIMING_SELECT, _TIMING_SOURCE, ()), {**params, "kind": "deposit"}
    )
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
    timing = await _by_key(
        session,
        _grouped(key, _TIMING_SELECT, _TIMING_SOURCE, ()),
        {**params, "kind": "withdrawal"},
    )
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
    hs, he = hour_span(start, end)
    # The percentiles sort a window's completion times: in memory, not spilled to disk.
    await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        "hs": hs,
        "he": he,
        "currency": currency,
    }

    def empty() -> Figures:
        return Figures(key="total", deposits=_empty_deposits(), withdrawals=_empty_withdrawals())

    if group_by is None:
        return (await _figures(session, "total", params)).get("total") or empty(), []
    labels: list[str] = []
    if group_by == "day":
        params["bounds"], labels = day_bounds(start, end, time_zone)
    found = await _figures(session, group_by, params)  # the groups and their total, one pass
    total = found.pop(TOTAL, None) or empty()
    total.key = "total"
    groups = list(found.values())
    for figures in groups:
        if group_by == "day":
            figures.key = labels[int(figures.key) - 1]
    return total, sorted(groups, key=lambda f: f.key)
