# ruff: noqa: S608  (SQL text is built only from this module's constants; values are bound)
"""Player behaviour from the per-player rollups (db/rollups.py): one player's metrics, and the
segments every player falls into. Money is integer minor units.

Reads `player_stats`, `player_daily`, `player_hours`, `player_first_deposits`,
`cohort_monthly` and `player_escalations`, never the payment history: a player's metrics are a
handful of index probes, the segments one pass over `player_stats` (one row per player and
currency), a page of the harm-marker list a few ordered index walks and one batch of probes.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.rollups import ESCALATION_CAP


@dataclass(frozen=True)
class SegmentRules:
    """The thresholds of the segments (days back from `now`, money in minor units)."""

    new_days: int = 30
    active_days: int = 30
    dormant_days: int = 90
    churn_min_deposits: int = 3
    vip_net_deposits_minor: int = 100_000_000  # 1,000,000 KZT deposited net of withdrawals
    high_risk_flagged: int = 2


async def player_metrics(
    session: AsyncSession, *, player_id: str, currency: str, today: date
) -> dict[str, Any]:
    """First/last deposit, deposits over 7/30/90 days, averages, frequency, net deposits, the
    withdrawal ratio, active days and the hour-of-day profile (days and hours in the analytics
    zone; `today` is today's date there)."""
    key = {"p": player_id, "c": currency}
    stats = (
        (
            await session.execute(
                text(
                    "SELECT s.*, f.first_at FROM player_stats s LEFT JOIN player_first_deposits f "
                    "USING (player_id, currency) WHERE s.player_id = :p AND s.currency = :c"
                ),
                key,
            )
        )
        .mappings()
        .first()
    )
    windows = (
        (
            await session.execute(
                text(
                    "SELECT "
                    + ", ".join(
                        f"coalesce(sum(deposits_n) FILTER (WHERE day > :d{n}), 0) AS n{n}, "
                        f"coalesce(sum(deposits_minor) FILTER (WHERE day > :d{n}), 0) AS m{n}"
                        for n in (7, 30, 90)
                    )
                    + ", count(*) FILTER (WHERE deposits_n > 0) AS active_days "
                    "FROM player_daily WHERE player_id = :p AND currency = :c"
                ),
                {**key, **{f"d{n}": today - timedelta(days=n) for n in (7, 30, 90)}},
            )
        )
        .mappings()
        .one()
    )
    hours = [0] * 24
    for hour, n in await session.execute(
        text(
            "SELECT hour, deposits_n FROM player_hours WHERE player_id = :p AND currency = :c "
            "AND deposits_n <> 0"
        ),
        key,
    ):
        hours[int(hour)] = int(n)
    deposits_n = int(stats["deposits_n"]) if stats else 0
    deposits_minor = int(stats["deposits_minor"]) if stats else 0
    withdrawals_minor = int(stats["withdrawals_minor"]) if stats else 0
    first: datetime | None = stats["first_at"] if stats else None
    last: datetime | None = stats["last_deposit_at"] if stats else None
    span_days = max((last - first).days, 0) + 1 if first and last else None
    return {
        "first_deposit_at": first,
        "last_deposit_at": last,
        "deposits": {
            f"{n}d": {"count": int(windows[f"n{n}"]), "amount_minor": int(windows[f"m{n}"])}
            for n in (7, 30, 90)
        },
        "deposit_count": deposits_n,
        "deposits_minor": deposits_minor,
        "average_deposit_minor": deposits_minor // deposits_n if deposits_n else None,
        # Succeeded deposits per 30 days between the first and the last deposit.
        "deposits_per_30_days": round(deposits_n * 30 / span_days, 2) if span_days else None,
        "withdrawals_paid": int(stats["withdrawals_n"]) if stats else 0,
        "withdrawals_minor": withdrawals_minor,
        "net_deposits_minor": deposits_minor - withdrawals_minor,
        "withdrawal_ratio": round(withdrawals_minor / deposits_minor, 4)
        if deposits_minor
        else None,
        "flagged_deposits": int(stats["flagged_n"]) if stats else 0,
        "active_days": int(windows["active_days"]),
        "hour_of_day": hours,
    }


_SEGMENT_TESTS = {
    "new": "f.first_at >= :new_since",
    "active": "s.last_deposit_at >= :active_since",
    "at_risk_of_churn": "s.last_deposit_at < :active_since AND s.last_deposit_at >= "
    ":dormant_since AND s.deposits_n >= :churn_min",
    "dormant": "s.last_deposit_at < :dormant_since",
    "vip": "s.deposits_minor - s.withdrawals_minor >= :vip_net",
    "high_risk": "s.flagged_n >= :risk_flagged",
}
# One pass over player_stats, every segment's figures as FILTERed aggregates.
_SEGMENTS = (
    "SELECT "
    + ", ".join(
        f"count(*) FILTER (WHERE {test}) AS {name}_players, "
        f"coalesce(sum(s.deposits_minor) FILTER (WHERE {test}), 0) AS {name}_deposits, "
        f"coalesce(sum(s.withdrawals_minor) FILTER (WHERE {test}), 0) AS {name}_withdrawals"
        for name, test in _SEGMENT_TESTS.items()
    )
    + " FROM player_stats s LEFT JOIN player_first_deposits f USING (player_id, currency) "
    "WHERE s.currency = :currency"
)

SEGMENTS = ("new", "active", "at_risk_of_churn", "dormant", "vip", "high_risk")


async def segments(
    session: AsyncSession, *, currency: str, now: datetime, rules: SegmentRules
) -> list[dict[str, Any]]:
    """Players per segment with their money; a player may be in several (VIP and active)."""
    rows = (
        (
            await session.execute(
                text(_SEGMENTS),
                {
                    "currency": currency,
                    "new_since": now - timedelta(days=rules.new_days),
                    "active_since": now - timedelta(days=rules.active_days),
                    "dormant_since": now - timedelta(days=rules.dormant_days),
                    "churn_min": rules.churn_min_deposits,
                    "vip_net": rules.vip_net_deposits_minor,
                    "risk_flagged": rules.high_risk_flagged,
                },
            )
        )
        .mappings()
        .all()
    )
    row = rows[0]
    return [
        {
            "segment": name,
            "players": int(row[f"{name}_players"]),
            "deposits_minor": int(row[f"{name}_deposits"]),
            "withdrawals_minor": int(row[f"{name}_withdrawals"]),
            "net_deposits_minor": int(row[f"{name}_deposits"]) - int(row[f"{name}_withdrawals"]),
        }
        for name in SEGMENTS
    ]


_COHORTS = """
WITH sizes AS (
    SELECT date_trunc('month', first_at AT TIME ZONE analytics_zone())::date AS cohort,
           count(*) AS players
    FROM player_first_deposits WHERE currency = :currency AND first_at >= :since GROUP BY 1
), activity AS (
    SELECT cohort, month, sum(depositors) AS depositors, sum(deposits_minor) AS deposits_minor,
           sum(withdrawals_minor) AS withdrawals_minor
    FROM (SELECT cohort, month, depositors, deposits_minor, withdrawals_minor
          FROM cohort_monthly WHERE currency = :currency AND cohort >= :since_day
          UNION ALL
          SELECT cohort, month, depositors, deposits_minor, withdrawals_minor
          FROM cohort_monthly_deltas WHERE currency = :currency AND cohort >= :since_day) x
    WHERE month >= cohort
    GROUP BY 1, 2
    HAVING sum(depositors) <> 0 OR sum(deposits_minor) <> 0 OR sum(withdrawals_minor) <> 0
)
SELECT a.cohort, s.players, a.month, a.depositors, a.deposits_minor, a.withdrawals_minor
FROM activity a JOIN sizes s USING (cohort) ORDER BY 1, 3
"""

_FUNNEL = """
SELECT (SELECT count(*) FROM players WHERE created_at >= :since) AS registered,
       (SELECT count(*) FROM player_first_deposits f JOIN players p ON p.id = f.player_id
        WHERE f.currency = :currency AND p.created_at >= :since) AS first_deposit,
       (SELECT count(*) FROM player_stats s JOIN players p ON p.id = s.player_id
        WHERE s.currency = :currency AND s.deposits_n >= 2 AND p.created_at >= :since)
           AS second_deposit
"""


async def cohorts(
    session: AsyncSession, *, currency: str, since: datetime
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per first-deposit month (in the analytics zone) since `since`: its players, and per later
    month the share depositing, deposits and net revenue (deposits - paid withdrawals), with the
    running totals; and the funnel registered -> first deposit -> second deposit of the players
    registered since `since`."""
    rows = (
        (
            await session.execute(
                text(_COHORTS),
                {"currency": currency, "since": since, "since_day": since.date()},
            )
        )
        .mappings()
        .all()
    )
    out: dict[date, dict[str, Any]] = {}
    for r in rows:
        cohort = out.setdefault(
            r["cohort"],
            {"cohort": r["cohort"].isoformat()[:7], "players": int(r["players"]), "months": []},
        )
        months = cohort["months"]
        deposits, withdrawals = int(r["deposits_minor"]), int(r["withdrawals_minor"])
        previous = (
            months[-1] if months else {"cumulative_deposits_minor": 0, "cumulative_net_minor": 0}
        )
        months.append(
            {
                "month": r["month"].isoformat()[:7],
                "months_after": (r["month"].year - r["cohort"].year) * 12
                + r["month"].month
                - r["cohort"].month,
                "depositors": int(r["depositors"]),
                "retention": round(int(r["depositors"]) / cohort["players"], 4)
                if cohort["players"]
                else None,
                "deposits_minor": deposits,
                "net_minor": deposits - withdrawals,
                "cumulative_deposits_minor": previous["cumulative_deposits_minor"] + deposits,
                "cumulative_net_minor": previous["cumulative_net_minor"] + deposits - withdrawals,
            }
        )
    funnel = (
        (await session.execute(text(_FUNNEL), {"currency": currency, "since": since}))
        .mappings()
        .one()
    )
    return list(out.values()), {k: int(v) for k, v in funnel.items()}


# -- harm markers --------------------------------------------------------------------------

NIGHT_HOURS = (0, 1, 2, 3, 4, 5)  # local hours (analytics zone)


@dataclass(frozen=True)
class HarmRules:
    escalation_deposits: int = 4  # this many consecutive succeeded deposits, each larger
    night_share: float = 0.5  # of succeeded deposits made 00:00-05:59 local time
    night_min_deposits: int = 3
    chase_minutes: int = 30  # a deposit this soon after the wallet reached zero
    regamble_hours: int = 24  # a bet this soon after the player cancelled a withdrawal
    lookback_days: int = 90


async def harm_markers(
    session: AsyncSession, *, player_id: str, currency: str, now: datetime, rules: HarmRules
) -> list[dict[str, Any]]:
    """The player's harm markers, each with its evidence (index probes on the player's rows)."""
    found = await _markers(session, [player_id], currency=currency, now=now, rules=rules)
    return found.get(player_id, [])


async def _markers(
    session: AsyncSession, players: list[str], *, currency: str, now: datetime, rules: HarmRules
) -> dict[str, list[dict[str, Any]]]:
    """The harm markers of each of `players`, five queries for all of them (each a handful of
    index probes per player)."""
    since = now - timedelta(days=rules.lookback_days)
    key = {"ps": players, "c": currency, "since": since}
    found: dict[str, list[dict[str, Any]]] = {}
    recent: dict[str, list[Any]] = {}
    for row in await session.execute(
        text(
            "SELECT p.id AS player_id, d.id, d.amount_minor FROM unnest(CAST(:ps AS text[])) "
            "AS p(id) CROSS JOIN LATERAL (SELECT id, amount_minor, created_at FROM deposits "
            "WHERE player_id = p.id AND currency = :c AND status = 'succeeded' "
            "ORDER BY created_at DESC, id DESC LIMIT :n) d ORDER BY p.id, d.created_at, d.id"
        ),
        {**key, "n": rules.escalation_deposits},
    ):
        recent.setdefault(row.player_id, []).append(row)
    for player, rows in recent.items():
        amounts = [int(r.amount_minor) for r in rows]
        if len(amounts) == rules.escalation_deposits and all(a < b for a, b in pairwise(amounts)):
            found.setdefault(player, []).append(
                {
                    "marker": "deposit_escalation",
                    "evidence": {"amounts_minor": amounts, "deposit_ids": [r.id for r in rows]},
                }
            )
    hours: dict[str, dict[int, int]] = {}
    for row in await session.execute(
        text(
            "SELECT player_id, hour, deposits_n FROM player_hours "
            "WHERE player_id = ANY(CAST(:ps AS text[])) AND currency = :c"
        ),
        key,
    ):
        hours.setdefault(row.player_id, {})[int(row.hour)] = int(row.deposits_n)
    for player, by_hour in hours.items():
        total, night = sum(by_hour.values()), sum(by_hour.get(h, 0) for h in NIGHT_HOURS)
        if total and night >= rules.night_min_deposits and night / total >= rules.night_share:
            found.setdefault(player, []).append(
                {
                    "marker": "night_deposits",
                    "evidence": {
                        "night_deposits": night,
                        "deposits": total,
                        "hours": "00-05 local",
                    },
                }
            )
    chases: dict[str, list[str]] = {}
    for row in await session.execute(
        text(
            "SELECT p.id AS player_id, x.key FROM unnest(CAST(:ps AS text[])) AS p(id) "
            "CROSS JOIN LATERAL ("
            # From each entry that left the wallet at zero (a partial index) to the next one.
            "SELECT t.key, t.created_at FROM ledger_accounts a "
            "JOIN ledger_entry_balances z ON z.account_id = a.id AND z.balance_after = 0 "
            "CROSS JOIN LATERAL (SELECT n.entry_id FROM ledger_entry_balances n "
            "     WHERE n.account_id = a.id AND n.entry_id > z.entry_id "
            "     ORDER BY n.entry_id LIMIT 1) b "
            "JOIN ledger_entries e ON e.id = b.entry_id "
            "JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE a.owner_id = p.id AND a.type = 'player_wallet' AND a.currency = :c "
            "AND t.kind = 'deposit_credit' AND t.created_at >= :since "
            "AND EXISTS (SELECT FROM ledger_entry_balances prev "
            "     JOIN ledger_entries pe ON pe.id = prev.entry_id "
            "     JOIN ledger_transactions pt ON pt.id = pe.transaction_id "
            "     WHERE prev.account_id = a.id AND prev.entry_id < b.entry_id "
            "     AND pt.created_at >= t.created_at - make_interval(mins => :mins)) "
            "ORDER BY t.created_at DESC LIMIT 20) x ORDER BY p.id, x.created_at DESC"
        ),
        {**key, "mins": rules.chase_minutes},
    ):
        chases.setdefault(row.player_id, []).append(row.key)
    for player, keys in chases.items():
        found.setdefault(player, []).append(
            {
                "marker": "chasing",
                "evidence": {
                    "deposits_after_zero_balance": len(keys),
                    "transactions": keys,
                    "within_minutes": rules.chase_minutes,
                },
            }
        )
    regambled: dict[str, list[Any]] = {}
    for row in await session.execute(
        text(
            "SELECT w.player_id, w.id, w.amount_minor FROM unnest(CAST(:ps AS text[])) AS p(id) "
            "CROSS JOIN LATERAL (SELECT w.player_id, w.id, w.amount_minor, w.created_at "
            "FROM withdrawals w WHERE w.player_id = p.id "
            "AND w.currency = :c AND w.status = 'cancelled' AND w.created_at >= :since "
            "AND EXISTS (SELECT FROM ledger_accounts a JOIN ledger_entries e "
            "ON e.account_id = a.id JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE a.owner_id = p.id AND a.type = 'player_wallet' AND a.currency = :c "
            "AND t.kind = 'game_bet' AND t.created_at >= w.updated_at "
            "AND t.created_at < w.updated_at + make_interval(hours => :hours)) "
            "ORDER BY w.created_at DESC LIMIT 20) w ORDER BY w.player_id, w.created_at DESC"
        ),
        {**key, "hours": rules.regamble_hours},
    ):
        regambled.setdefault(row.player_id, []).append(row)
    for player, rows in regambled.items():
        found.setdefault(player, []).append(
            {
                "marker": "cancelled_withdrawal_regambled",
                "evidence": {
                    "withdrawal_ids": [r.id for r in rows],
                    "amount_minor": sum(int(r.amount_minor) for r in rows),
                    "within_hours": rules.regamble_hours,
                },
            }
        )
    raised: dict[str, list[dict[str, Any]]] = {}
    for row in await session.execute(
        text(
            "SELECT player_id, period, previous, amount_minor, effective_from FROM ("
            "  SELECT player_id, period, previous, amount_minor, effective_from, row_number() "
            "  OVER (PARTITION BY player_id ORDER BY effective_from DESC) AS shown FROM ("
            "    SELECT player_id, period, amount_minor, effective_from, lag(amount_minor) OVER "
            "    (PARTITION BY player_id, period ORDER BY effective_from, id) AS previous, "
            "    row_number() OVER (PARTITION BY player_id, period ORDER BY effective_from, id) "
            "    AS n FROM rg_deposit_limits "
            "    WHERE player_id = ANY(CAST(:ps AS text[])) AND currency = :c) l "
            "  WHERE n > 1 AND effective_from >= :since "
            "  AND (amount_minor IS NULL OR amount_minor > previous)) r "
            "WHERE shown <= 20 ORDER BY player_id, effective_from DESC"
        ),
        key,
    ):
        raised.setdefault(row.player_id, []).append(
            {
                "period": row.period,
                "from_minor": row.previous,
                "to_minor": row.amount_minor,
                "effective_from": row.effective_from,
            }
        )
    for player, changes in raised.items():
        found.setdefault(player, []).append(
            {"marker": "limit_increases", "evidence": {"changes": changes}}
        )
    return found


# Players who may show a marker, after :after in player id order (each branch an ordered index
# walk that stops at :n): rising runs (`player_escalations`), night hours (`player_hours`),
# limit changes, cancelled withdrawals, and wallets that reached zero (chasing).
_HARM_CANDIDATES = """
SELECT DISTINCT player_id FROM (
    (SELECT player_id FROM player_escalations
     WHERE currency = :currency AND rising_n >= :escalation AND player_id > :after
     ORDER BY player_id LIMIT :n)
    UNION ALL
    (SELECT player_id FROM player_hours
     WHERE currency = :currency AND player_id > :after
     GROUP BY player_id
     HAVING sum(deposits_n) FILTER (WHERE hour = ANY(:night)) >= :night_min
        AND sum(deposits_n) FILTER (WHERE hour = ANY(:night)) >= :night_share * sum(deposits_n)
     ORDER BY player_id LIMIT :n)
    UNION ALL
    (SELECT DISTINCT player_id FROM (
        SELECT player_id, amount_minor, effective_from,
               lag(amount_minor) OVER (PARTITION BY player_id, period
                                       ORDER BY effective_from, id) AS previous,
               row_number() OVER (PARTITION BY player_id, period
                                  ORDER BY effective_from, id) AS n
        FROM rg_deposit_limits WHERE currency = :currency AND player_id > :after) l
     WHERE n > 1 AND effective_from >= :since
       AND (amount_minor IS NULL OR amount_minor > previous)
     ORDER BY player_id LIMIT :n)
    UNION ALL
    (SELECT DISTINCT player_id FROM withdrawals
     WHERE status = 'cancelled' AND currency = :currency AND created_at >= :since
       AND player_id > :after
     ORDER BY player_id LIMIT :n)
    UNION ALL
    (SELECT DISTINCT a.owner_id FROM ledger_entry_balances b
     JOIN ledger_accounts a ON a.id = b.account_id
     WHERE b.balance_after = 0 AND a.type = 'player_wallet' AND a.currency = :currency
       AND a.owner_id > :after
     ORDER BY a.owner_id LIMIT :n)
) c
ORDER BY player_id
LIMIT :n
"""


async def players_with_harm_markers(
    session: AsyncSession,
    *,
    currency: str,
    now: datetime,
    rules: HarmRules,
    limit: int,
    after: str = "",
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` players showing a harm marker, in player id order after `after`, with
    their markers and evidence; and the cursor of the next page (None at the end). Candidates
    come from the rollups and small indexes (`_HARM_CANDIDATES`), a page at a time, each page
    judged in one batch (`_markers`)."""
    out: list[dict[str, Any]] = []
    batch = max(limit * 2, 50)
    while True:
        candidates = list(
            (
                await session.execute(
                    text(_HARM_CANDIDATES),
                    {
                        "currency": currency,
                        "after": after,
                        "night": list(NIGHT_HOURS),
                        "night_min": rules.night_min_deposits,
                        "night_share": rules.night_share,
                        "since": now - timedelta(days=rules.lookback_days),
                        "escalation": min(rules.escalation_deposits, ESCALATION_CAP),
                        "n": batch,
                    },
                )
            ).scalars()
        )
        if not candidates:
            return out, None
        found = await _markers(session, candidates, currency=currency, now=now, rules=rules)
        for player_id in candidates:
            if found.get(player_id):
                out.append({"player_id": player_id, "markers": found[player_id]})
                if len(out) == limit:
                    return out, player_id
        if len(candidates) < batch:
            return out, None
        after = candidates[-1]
