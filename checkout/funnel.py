# ruff: noqa: S608  (SQL text is this module's constants; values are bound)
"""The deposit funnel of the hosted checkout: page opened -> method chosen -> submitted ->
succeeded, overall, per method and per provider.

Deposit sessions created in `[start, end)` count. Each step counts sessions (a session that
tried a card twice counts once per step); `attempts` counts payments. "Succeeded" is read from
the payments the sessions created (`deposits.status`), so it holds even when the player closed
the page before the result. The provider is the one that served the payment (`unassigned` while
none has).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_SESSIONS = """
    SELECT s.id FROM checkout_sessions s
    WHERE s.kind = 'deposit' AND s.currency = :currency
      AND s.created_at >= :start AND s.created_at < :end
"""

_TOTALS = f"""
WITH s AS ({_SESSIONS})
SELECT
  (SELECT count(*) FROM s) AS created,
  (SELECT count(DISTINCT e.session_id) FROM checkout_events e JOIN s ON s.id = e.session_id
    WHERE e.kind = 'opened') AS opened,
  (SELECT count(DISTINCT e.session_id) FROM checkout_events e JOIN s ON s.id = e.session_id
    WHERE e.kind = 'method_chosen') AS method_chosen,
  (SELECT count(DISTINCT e.session_id) FROM checkout_events e JOIN s ON s.id = e.session_id
    WHERE e.kind = 'submitted') AS submitted,
  (SELECT count(DISTINCT e.session_id) FROM checkout_events e JOIN s ON s.id = e.session_id
    JOIN deposits d ON d.id = e.payment_id
    WHERE e.kind = 'submitted' AND d.status = 'succeeded') AS succeeded
"""

_BY_METHOD = f"""
WITH s AS ({_SESSIONS})
SELECT e.method AS method,
  count(DISTINCT e.session_id) FILTER (WHERE e.kind = 'method_chosen') AS chosen,
  count(DISTINCT e.session_id) FILTER (WHERE e.kind = 'submitted') AS submitted,
  count(DISTINCT e.session_id) FILTER (WHERE e.kind = 'submitted' AND d.status = 'succeeded')
    AS succeeded,
  count(*) FILTER (WHERE e.kind = 'submitted') AS attempts,
  coalesce(sum(d.amount_minor) FILTER (WHERE e.kind = 'submitted' AND d.status = 'succeeded'),
    0) AS volume_minor
FROM checkout_events e JOIN s ON s.id = e.session_id
LEFT JOIN deposits d ON d.id = e.payment_id
WHERE e.kind IN ('method_chosen', 'submitted') AND e.method IS NOT NULL
GROUP BY e.method ORDER BY e.method
"""

_BY_PROVIDER = f"""
WITH s AS ({_SESSIONS})
SELECT e.method AS method, coalesce(d.provider, 'unassigned') AS provider,
  count(*) AS attempts,
  count(*) FILTER (WHERE d.status = 'succeeded') AS succeeded,
  count(*) FILTER (WHERE d.status IN ('failed', 'declined', 'expired')) AS unsuccessful
FROM checkout_events e JOIN s ON s.id = e.session_id
JOIN deposits d ON d.id = e.payment_id
WHERE e.kind = 'submitted'
GROUP BY e.method, coalesce(d.provider, 'unassigned') ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Funnel:
    totals: dict[str, Any]
    by_method: list[dict[str, Any]]
    by_provider: list[dict[str, Any]]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def funnel(session: AsyncSession, *, start: datetime, end: datetime, currency: str) -> Funnel:
    params = {"start": start, "end": end, "currency": currency}
    totals = dict((await session.execute(text(_TOTALS), params)).mappings().one())
    totals = {k: int(v or 0) for k, v in totals.items()}
    totals["conversion"] = _rate(totals["succeeded"], totals["opened"])
    methods = [dict(r) for r in (await session.execute(text(_BY_METHOD), params)).mappings()]
    for row in methods:
        for key in ("chosen", "submitted", "succeeded", "attempts", "volume_minor"):
            row[key] = int(row[key] or 0)
        row["conversion"] = _rate(row["succeeded"], row["chosen"])
    providers = [dict(r) for r in (await session.execute(text(_BY_PROVIDER), params)).mappings()]
    for row in providers:
        for key in ("attempts", "succeeded", "unsuccessful"):
            row[key] = int(row[key] or 0)
        row["approval_rate"] = _rate(row["succeeded"], row["succeeded"] + row["unsuccessful"])
    return Funnel(totals=totals, by_method=methods, by_provider=providers)
