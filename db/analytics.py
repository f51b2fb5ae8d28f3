# ruff: noqa: S608  (SQL text is built only from this module's constants; values are bound)
"""Payment analytics computed in SQL: one aggregate query per figure family, grouped by a key.

Money stays integer minor units end to end (sums are `bigint`/`numeric` in PostgreSQL and
`int` here); only rates and durations are floats. A payment belongs to the window by its
`created_at`; times to complete come from `payment_events` (the first time the payment reached
its success status, minus its creation).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

GroupBy = Literal["method", "provider", "day"]

# Whitelisted key expressions over the alias `p` (never user text in SQL).
_KEYS: dict[str, str] = {
    "method": "p.method",
    "provider": "coalesce(p.provider, 'unassigned')",
    "day": "to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "total": "'total'",
}
_FRAUD = "p.risk->>'decision' IN ('review', 'decline')"
_DEPOSIT_UNSUCCESSFUL = ("failed", "declined", "expired")
_WITHDRAWAL_UNSUCCESSFUL = ("rejected", "failed", "cancelled")


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
    }


async def _by_key(
    session: AsyncSession, sql: str, params: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    rows = (await session.execute(text(sql), params)).mappings().all()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(str(row["k"]), []).append(dict(row))
    return out


def _window(table: str, key: str) -> str:
    return (
        f"SELECT p.*, {_KEYS[key]} AS k FROM {table} p "
        "WHERE p.created_at >= :start AND p.created_at < :end AND p.currency = :currency"
    )


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


async def _deposit_figures(
    session: AsyncSession, key: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    w = _window("deposits", key)
    bad = ", ".join(f"'{s}'" for s in _DEPOSIT_UNSUCCESSFUL)
    statuses = await _by_key(
        session,
        f"WITH p AS ({w}) SELECT k, status, count(*) AS n, sum(amount_minor) AS amount, "
        f"count(*) FILTER (WHERE {_FRAUD}) AS fraud FROM p GROUP BY k, status",
        params,
    )
    timing = await _by_key(
        session,
        f"WITH p AS ({w}), done AS ("
        "  SELECT p.k, extract(epoch FROM min(e.occurred_at) - p.created_at) AS secs FROM p"
        "  JOIN payment_events e ON e.payment_id = p.id AND e.status = 'succeeded'"
        "  WHERE p.status = 'succeeded' GROUP BY p.id, p.k, p.created_at) "
        "SELECT k, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS median, "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY secs) AS p95 FROM done GROUP BY k",
        params,
    )
    reasons = await _by_key(
        session,
        f"WITH p AS ({w}) SELECT k, status, coalesce(status_reason, 'unspecified') AS reason, "
        f"count(*) AS n FROM p WHERE status IN ({bad}) GROUP BY k, status, reason "
        "ORDER BY n DESC, status, reason",
        params,
    )
    # A first-time depositor's first succeeded deposit ever lies in the window (and the group).
    first = await _by_key(
        session,
        "WITH firsts AS (SELECT DISTINCT ON (player_id) * FROM deposits "
        "  WHERE status = 'succeeded' AND currency = :currency "
        "  ORDER BY player_id, created_at, id) "
        f"SELECT {_KEYS[key]} AS k, count(*) AS n FROM firsts p "
        "WHERE p.created_at >= :start AND p.created_at < :end GROUP BY 1",
        params,
    )
    out: dict[str, dict[str, Any]] = {}
    for k, rows in statuses.items():
        fig = out.setdefault(k, _empty_deposits())
        for row in rows:
            n, amount = int(row["n"]), int(row["amount"])
            fig["count"] += n
            fig["by_status"][row["status"]] = n
            fig["attempted_volume_minor"] += amount
            fig["fraud_hits"] += int(row["fraud"])
            if row["status"] == "succeeded":
                fig["succeeded"] = n
                fig["volume_minor"] = amount
        finished = fig["succeeded"] + sum(fig["by_status"].get(s, 0) for s in _DEPOSIT_UNSUCCESSFUL)
        fig["approval_rate"] = _rate(fig["succeeded"], finished)
        if fig["succeeded"]:
            fig["average_minor"] = fig["volume_minor"] // fig["succeeded"]
    for k, rows in timing.items():
        fig = out.setdefault(k, _empty_deposits())
        fig["median_seconds_to_complete"] = _seconds(rows[0]["median"])
        fig["p95_seconds_to_complete"] = _seconds(rows[0]["p95"])
    for k, rows in reasons.items():
        out.setdefault(k, _empty_deposits())["unsuccessful_reasons"] = [
            {"status": r["status"], "reason": r["reason"], "count": int(r["n"])} for r in rows
        ]
    for k, rows in first.items():
        out.setdefault(k, _empty_deposits())["first_time_depositors"] = int(rows[0]["n"])
    return out


async def _withdrawal_figures(
    session: AsyncSession, key: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    w = _window("withdrawals", key)
    bad = ", ".join(f"'{s}'" for s in _WITHDRAWAL_UNSUCCESSFUL)
    statuses = await _by_key(
        session,
        f"WITH p AS ({w}) SELECT k, status, count(*) AS n, sum(amount_minor) AS amount, "
        f"count(*) FILTER (WHERE {_FRAUD}) AS fraud FROM p GROUP BY k, status",
        params,
    )
    timing = await _by_key(
        session,
        f"WITH p AS ({w}), done AS ("
        "  SELECT p.k, extract(epoch FROM min(e.occurred_at) - p.created_at) AS secs FROM p"
        "  JOIN payment_events e ON e.payment_id = p.id AND e.status = 'paid'"
        "  WHERE p.status = 'paid' GROUP BY p.id, p.k, p.created_at) "
        "SELECT k, percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS median, "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY secs) AS p95 FROM done GROUP BY k",
        params,
    )
    reasons = await _by_key(
        session,
        f"WITH p AS ({w}) SELECT k, status, coalesce(status_reason, 'unspecified') AS reason, "
        f"count(*) AS n FROM p WHERE status IN ({bad}) GROUP BY k, status, reason "
        "ORDER BY n DESC, status, reason",
        params,
    )
    out: dict[str, dict[str, Any]] = {}
    for k, rows in statuses.items():
        fig = out.setdefault(k, _empty_withdrawals())
        for row in rows:
            n, amount = int(row["n"]), int(row["amount"])
            fig["count"] += n
            fig["by_status"][row["status"]] = n
            fig["requested_volume_minor"] += amount
            fig["fraud_hits"] += int(row["fraud"])
            if row["status"] == "paid":
                fig["paid"] = n
                fig["paid_volume_minor"] = amount
        finished = fig["paid"] + sum(fig["by_status"].get(s, 0) for s in _WITHDRAWAL_UNSUCCESSFUL)
        fig["approval_rate"] = _rate(fig["paid"], finished)
    for k, rows in timing.items():
        fig = out.setdefault(k, _empty_withdrawals())
        fig["median_seconds_to_pay"] = _seconds(rows[0]["median"])
        fig["p95_seconds_to_pay"] = _seconds(rows[0]["p95"])
    for k, rows in reasons.items():
        out.setdefault(k, _empty_withdrawals())["unsuccessful_reasons"] = [
            {"status": r["status"], "reason": r["reason"], "count": int(r["n"])} for r in rows
        ]
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
) -> tuple[Figures, list[Figures]]:
    """The totals over [start, end) and, when asked, the same figures per group."""
    params = {"start": start, "end": end, "currency": currency}
    total = (await _figures(session, "total", params)).get("total") or Figures(
        key="total", deposits=_empty_deposits(), withdrawals=_empty_withdrawals()
    )
    groups = list((await _figures(session, group_by, params)).values()) if group_by else []
    return total, groups
