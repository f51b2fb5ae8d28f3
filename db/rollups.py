# ruff: noqa: S608  (SQL text is built only from this module's constants; values are bound)
"""Analytics rollups (migration 0170): kept by triggers, folded, checked against history.

What is kept, and by what:

* `payment_hourly` (kind x UTC hour x method x provider x status x reason x currency: count,
  amount, fraud hits) and `payment_totals` (the same without the hour, for `/metrics`). A row
  trigger on `deposits` and `withdrawals` appends -1/+1 deltas to `payment_hourly_deltas` in the
  payment's own transaction (an insert, never an update of a shared row, so payments never wait
  on each other); `fold()` moves deltas into both rollups. Readers sum rollup + pending deltas,
  so a figure is exact whether or not a fold has run.
* `provider_call_deltas` -> `provider_call_totals`: the same for `payment_attempts` (counts,
  latency sum and histogram buckets for `/metrics`).
* `payment_completions`: one row per succeeded deposit / paid withdrawal with its seconds to
  complete (first success event minus creation) and, for withdrawals, paid by the deadline.
* `player_first_deposits`: each player's first succeeded deposit per currency.
* `player_stats` (lifetime succeeded deposits, paid withdrawals, deposits the risk engine sent
  to review or declined, last deposit), `player_daily` (per day in `analytics_zone()`,
  Asia/Almaty) and `player_hours` (succeeded deposits per local hour of day): the behaviour
  metrics, segments and player profile (db/behaviour.py), updated in the payment's transaction
  (one player's rows: payments of different players never wait on each other).
* `ledger_entry_balances`: each player-wallet entry's posted balance after it (a statement
  trigger on `ledger_entries`, under the account locks the posting functions take).
* `payment_daily` (migration 0190): `payment_hourly` per day in `analytics_zone()`, folded from
  the same deltas; long windows read their whole local days here.
* `completion_daily` (+ `completion_daily_deltas`, a row trigger on `payment_completions`):
  completions per local day and log-scale bucket of seconds (`completion_bucket`), with the
  withdrawals paid in time: where each percentile's rank lies, so only one bucket is sorted.
* `player_escalations`: the run of rising amounts ending at the player's last succeeded deposit
  (capped at `ESCALATION_CAP`), recomputed by a row trigger on `deposits` under the row's lock.
* `completion_daily_groups` (migration 0260): `completion_daily` per method and per provider
  (`dim`, `key`), folded from the same deltas (which carry the method and provider).
* `completion_day_percentiles`: each closed local day's (before today in `analytics_zone()`)
  completions: count, paid in time, exact median and p95. The fold recomputes a day in the
  statement that folds the day's deltas (one snapshot: the completions those deltas came from),
  and the days closed since the last day kept; readers take a day kept only when none of its
  deltas is pending, so a late completion is counted from the histogram until the next fold.
  The worker folds every minute (workflows/analytics.py), so a read replica's are current too.

Hours are UTC, so days in any whole-hour time zone (Asia/Almaty) are sums of hours.
`python -m db.rollups check` recomputes every rollup from history and prints the differences
(exit 1 when any), like `python -m db.check_ledger`; `fold` folds; `rebuild` recomputes
everything (after a bulk load with triggers off, as bench/analytics.py does).
"""

import argparse
import asyncio
import sys
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

LATENCY_BUCKETS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
DEPOSIT_UNSUCCESSFUL = ("failed", "declined", "expired")
WITHDRAWAL_UNSUCCESSFUL = ("rejected", "failed", "cancelled")
FRAUD_DECISIONS = ("review", "decline")
FOLD_LOCK = 170_001  # pg_try_advisory_xact_lock key: one fold at a time
ESCALATION_CAP = 16  # the longest run of rising deposits `player_escalations` counts


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def hour_sql(column: str) -> str:
    """The UTC hour of a timestamptz, as a timestamptz (independent of the session zone)."""
    return f"(date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def payment_rows(kind: str, table: str) -> str:
    """One row per payment with its rollup key (`p` is the payments table's alias)."""
    bad = _list(DEPOSIT_UNSUCCESSFUL if kind == "deposit" else WITHDRAWAL_UNSUCCESSFUL)
    return (
        f"SELECT '{kind}'::text AS kind, {hour_sql('p.created_at')} AS hour, "
        "p.method::text AS method, "
        "coalesce(p.provider, 'unassigned')::text AS provider, p.status::text AS status, "
        f"CASE WHEN p.status IN ({bad}) THEN coalesce(p.status_reason, 'unspecified') ELSE '' END"
        "::text AS reason, p.currency::text AS currency, 1 AS n, p.amount_minor, "
        f"coalesce(p.risk->>'decision' IN ({_list(FRAUD_DECISIONS)}), false)::int AS fraud, "
        f"p.created_at FROM {table} p"
    )


_HOURLY_KEY = "kind, hour, method, provider, status, reason, currency"
_TOTALS_KEY = "kind, method, provider, status, currency"
_CALLS_KEY = "provider, step, outcome"
_BUCKETS = ", ".join(f"le_{ms}" for ms in LATENCY_BUCKETS_MS)

_MONTH = "date_trunc('month', created_at AT TIME ZONE analytics_zone())::date"
_PLAYER_MONTHLY = (
    "SELECT player_id, currency, month, sum(dn)::bigint AS deposits_n, "
    "sum(dm)::bigint AS deposits_minor, sum(wm)::bigint AS withdrawals_minor FROM ("
    f"SELECT player_id, currency::text AS currency, {_MONTH} AS month, 1 AS dn, "
    "amount_minor AS dm, 0::bigint AS wm FROM deposits WHERE status = 'succeeded' "
    f"UNION ALL SELECT player_id, currency, {_MONTH}, 0, 0, amount_minor FROM withdrawals "
    "WHERE status = 'paid') x GROUP BY 1, 2, 3"
)

_DAILY_KEY = "kind, currency, day, method, provider, status, reason"
_COMPLETION_KEY = "kind, currency, day, bucket"
_LOCAL_DAY = "(created_at AT TIME ZONE analytics_zone())::date"
_COMPLETIONS = (
    "SELECT d.id AS payment_id, 'deposit'::text AS kind, d.created_at, "
    "d.method::text AS method, "
    "coalesce(d.provider, 'unassigned')::text AS provider, d.currency::text AS currency, "
    "extract(epoch FROM min(e.occurred_at) - d.created_at)::float8 AS seconds, "
    "NULL::boolean AS in_time FROM deposits d "
    "JOIN payment_events e ON e.payment_id = d.id AND e.status = 'succeeded' "
    "WHERE d.status = 'succeeded' GROUP BY d.id "
    "UNION ALL "
    "SELECT w.id, 'withdrawal', w.created_at, w.method, w.provider, w.currency, "
    "extract(epoch FROM min(e.occurred_at) - w.created_at)::float8, "
    "min(e.occurred_at) <= w.payout_deadline FROM withdrawals w "
    "JOIN payment_events e ON e.payment_id = w.id AND e.status = 'paid' "
    "WHERE w.status = 'paid' GROUP BY w.id"
)

_GROUPS_KEY = "kind, currency, day, dim, key, bucket"
_TODAY = "(now() AT TIME ZONE analytics_zone())::date"


def _day_percentiles(completions: str, where: str = "") -> str:
    """Each closed local day's completions (before today in `analytics_zone()`): count, paid
    in time, exact median and p95 (`percentile_cont`, as a window's sort gives), from
    `completions` (rows with kind, currency, created_at, seconds, in_time), filtered by
    `where` over (kind, currency, day)."""
    return (
        "SELECT kind, currency, day, n, in_time, with_deadline, median, p95 FROM ("
        "SELECT kind, currency, (created_at AT TIME ZONE analytics_zone())::date AS day, "
        "count(*)::bigint AS n, count(*) FILTER (WHERE in_time)::bigint AS in_time, "
        "count(in_time)::bigint AS with_deadline, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median, "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95 "
        f"FROM ({completions}) c WHERE created_at < CAST({_TODAY} AS timestamp) "
        "AT TIME ZONE analytics_zone() GROUP BY 1, 2, 3) x " + where
    )


# Recomputed from history: what each rollup must hold.
EXPECTED: dict[str, tuple[str, str]] = {
    "payment_hourly": (
        _HOURLY_KEY,
        f"SELECT {_HOURLY_KEY}, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor, "
        f"sum(fraud)::bigint AS fraud FROM ({payment_rows('deposit', 'deposits')} UNION ALL "
        f"{payment_rows('withdrawal', 'withdrawals')}) x GROUP BY {_HOURLY_KEY}",
    ),
    "payment_totals": (
        _TOTALS_KEY,
        f"SELECT {_TOTALS_KEY}, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor "
        f"FROM ({payment_rows('deposit', 'deposits')} UNION ALL "
        f"{payment_rows('withdrawal', 'withdrawals')}) x GROUP BY {_TOTALS_KEY}",
    ),
    "provider_call_totals": (
        _CALLS_KEY,
        f"SELECT {_CALLS_KEY}, count(*)::bigint AS n, coalesce(sum(latency_ms), 0)::bigint "
        "AS total_ms, "
        + ", ".join(
            f"count(*) FILTER (WHERE latency_ms <= {ms})::bigint AS le_{ms}"
            for ms in LATENCY_BUCKETS_MS
        )
        + f" FROM payment_attempts GROUP BY {_CALLS_KEY}",
    ),
    "payment_completions": (
        "payment_id",
        _COMPLETIONS,
    ),
    "player_first_deposits": (
        "player_id, currency",
        "SELECT DISTINCT ON (player_id, currency) player_id, currency::text AS currency, "
        "id AS deposit_id, created_at AS first_at, method::text AS method, "
        "coalesce(provider, 'unassigned')::text AS provider FROM deposits "
        "WHERE status = 'succeeded' ORDER BY player_id, currency, created_at, id",
    ),
    "player_stats": (
        "player_id, currency",
        "SELECT player_id, currency, sum(dn)::bigint AS deposits_n, "
        "sum(dm)::bigint AS deposits_minor, sum(wn)::bigint AS withdrawals_n, "
        "sum(wm)::bigint AS withdrawals_minor, sum(fl)::bigint AS flagged_n, "
        "max(last) AS last_deposit_at FROM ("
        "SELECT player_id, currency::text AS currency, (status = 'succeeded')::int AS dn, "
        "CASE WHEN status = 'succeeded' THEN amount_minor ELSE 0 END AS dm, 0 AS wn, "
        "0::bigint AS wm, "
        f"coalesce(risk->>'decision' IN ({_list(FRAUD_DECISIONS)}), false)::int AS fl, "
        "CASE WHEN status = 'succeeded' THEN created_at END AS last FROM deposits "
        "UNION ALL SELECT player_id, currency, 0, 0, 1, amount_minor, 0, NULL "
        "FROM withdrawals WHERE status = 'paid') x GROUP BY 1, 2 "
        "HAVING sum(dn) <> 0 OR sum(wn) <> 0 OR sum(fl) <> 0",
    ),
    "player_daily": (
        "player_id, currency, day",
        "SELECT player_id, currency, day, sum(dn)::bigint AS deposits_n, "
        "sum(dm)::bigint AS deposits_minor, sum(wn)::bigint AS withdrawals_n, "
        "sum(wm)::bigint AS withdrawals_minor FROM ("
        "SELECT player_id, currency::text AS currency, "
        "(created_at AT TIME ZONE analytics_zone())::date AS day, 1 AS dn, amount_minor AS dm, "
        "0 AS wn, 0::bigint AS wm FROM deposits WHERE status = 'succeeded' "
        "UNION ALL SELECT player_id, currency, (created_at AT TIME ZONE analytics_zone())::date, "
        "0, 0, 1, amount_minor FROM withdrawals WHERE status = 'paid') x GROUP BY 1, 2, 3",
    ),
    "player_monthly": (
        "player_id, currency, month",
        _PLAYER_MONTHLY,
    ),
    "cohort_monthly": (
        "currency, cohort, month",
        "SELECT m.currency, f.cohort, m.month, "
        "count(*) FILTER (WHERE m.deposits_n > 0)::bigint AS depositors, "
        "sum(m.deposits_minor)::bigint AS deposits_minor, "
        "sum(m.withdrawals_minor)::bigint AS withdrawals_minor "
        f"FROM ({_PLAYER_MONTHLY}) m JOIN (SELECT DISTINCT ON (player_id, currency) player_id, "
        f"currency::text AS currency, {_MONTH} AS cohort FROM deposits "
        "WHERE status = 'succeeded' ORDER BY player_id, currency, created_at, id) f "
        "ON f.player_id = m.player_id AND f.currency = m.currency GROUP BY 1, 2, 3",
    ),
    "player_hours": (
        "player_id, currency, hour",
        "SELECT player_id, currency::text AS currency, "
        "extract(hour FROM created_at AT TIME ZONE analytics_zone())::smallint AS hour, "
        "count(*)::bigint AS deposits_n FROM deposits WHERE status = 'succeeded' "
        "GROUP BY 1, 2, 3",
    ),
    "payment_daily": (
        _DAILY_KEY,
        f"SELECT {_DAILY_KEY}, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor, "
        f"sum(fraud)::bigint AS fraud FROM (SELECT kind, currency, {_LOCAL_DAY} AS day, "
        "method, provider, status, reason, n, amount_minor, fraud FROM ("
        f"{payment_rows('deposit', 'deposits')} UNION ALL "
        f"{payment_rows('withdrawal', 'withdrawals')}) p) x GROUP BY {_DAILY_KEY}",
    ),
    "completion_daily": (
        _COMPLETION_KEY,
        "SELECT kind, currency, (created_at AT TIME ZONE analytics_zone())::date AS day, "
        "completion_bucket(seconds) AS bucket, count(*)::bigint AS n, "
        "count(*) FILTER (WHERE in_time)::bigint AS in_time, "
        "count(in_time)::bigint AS with_deadline "
        f"FROM ({_COMPLETIONS}) c GROUP BY 1, 2, 3, 4",
    ),
    "completion_daily_groups": (
        _GROUPS_KEY,
        "SELECT kind, currency, day, dim, key, bucket, count(*)::bigint AS n, "
        "count(*) FILTER (WHERE in_time)::bigint AS in_time, "
        "count(in_time)::bigint AS with_deadline FROM ("
        "SELECT kind, currency, (created_at AT TIME ZONE analytics_zone())::date AS day, "
        "d.dim, CASE d.dim WHEN 'method' THEN c.method ELSE c.provider END AS key, "
        "completion_bucket(seconds) AS bucket, in_time "
        f"FROM ({_COMPLETIONS}) c, (VALUES ('method'), ('provider')) AS d(dim)) x "
        "GROUP BY 1, 2, 3, 4, 5, 6",
    ),
    "completion_day_percentiles": (
        "kind, currency, day",
        # Only the days stored and without pending deltas: those are the ones readers take
        # (a day closed since the last fold is not stored yet; readers use the histogram).
        _day_percentiles(
            f"SELECT kind, currency, created_at, seconds, in_time FROM ({_COMPLETIONS}) c",
            "WHERE (kind, currency, day) IN (SELECT kind, currency, day "
            "FROM completion_day_percentiles) AND NOT EXISTS (SELECT FROM "
            "completion_daily_deltas q WHERE q.kind = x.kind AND q.currency = x.currency "
            "AND q.day = x.day)",
        ),
    ),
    "player_escalations": (
        "player_id, currency",
        "SELECT player_id, currency, least(coalesce(min(n) FILTER (WHERE n > 1 AND NOT rising) "
        f"- 1, count(*)), {ESCALATION_CAP})::integer AS rising_n FROM ("
        "SELECT player_id, currency::text AS currency, row_number() OVER w AS n, "
        "amount_minor < lag(amount_minor) OVER w AS rising FROM deposits "
        "WHERE status = 'succeeded' "
        "WINDOW w AS (PARTITION BY player_id, currency ORDER BY created_at DESC, id DESC)) x "
        "GROUP BY 1, 2",
    ),
    "ledger_entry_balances": (
        "account_id, entry_id",
        "SELECT e.account_id, e.id AS entry_id, sum(CASE WHEN t.phase = 'pending' THEN 0 "
        "WHEN e.side = 'C' THEN e.amount_minor ELSE -e.amount_minor END) "
        "OVER (PARTITION BY e.account_id ORDER BY e.id)::bigint AS balance_after "
        "FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "AND a.type = 'player_wallet' JOIN ledger_transactions t ON t.id = e.transaction_id",
    ),
}

# What each rollup holds now, pending deltas included.
ACTUAL: dict[str, str] = {
    "payment_hourly": (
        f"SELECT {_HOURLY_KEY}, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor, "
        f"sum(fraud)::bigint AS fraud FROM (SELECT {_HOURLY_KEY}, n, amount_minor, fraud "
        f"FROM payment_hourly UNION ALL SELECT {_HOURLY_KEY}, n, amount_minor, fraud "
        f"FROM payment_hourly_deltas) x GROUP BY {_HOURLY_KEY} HAVING sum(n) <> 0 "
        "OR sum(amount_minor) <> 0 OR sum(fraud) <> 0"
    ),
    "payment_totals": (
        f"SELECT {_TOTALS_KEY}, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor "
        f"FROM (SELECT {_TOTALS_KEY}, n, amount_minor FROM payment_totals UNION ALL "
        f"SELECT {_TOTALS_KEY}, n, amount_minor FROM payment_hourly_deltas) x "
        f"GROUP BY {_TOTALS_KEY} HAVING sum(n) <> 0 OR sum(amount_minor) <> 0"
    ),
    "provider_call_totals": (
        f"SELECT {_CALLS_KEY}, sum(n)::bigint AS n, sum(total_ms)::bigint AS total_ms, "
        + ", ".join(f"sum(le_{ms})::bigint AS le_{ms}" for ms in LATENCY_BUCKETS_MS)
        + f" FROM (SELECT {_CALLS_KEY}, n, total_ms, {_BUCKETS} FROM provider_call_totals "
        f"UNION ALL SELECT {_CALLS_KEY}, n, total_ms, {_BUCKETS} FROM provider_call_deltas) x "
        f"GROUP BY {_CALLS_KEY} HAVING sum(n) <> 0"
    ),
    "payment_completions": (
        "SELECT payment_id, kind, created_at, method, provider, currency, seconds, in_time "
        "FROM payment_completions"
    ),
    "player_first_deposits": (
        "SELECT player_id, currency, deposit_id, first_at, method, provider "
        "FROM player_first_deposits"
    ),
    "player_stats": (
        "SELECT player_id, currency, deposits_n, deposits_minor, withdrawals_n, "
        "withdrawals_minor, flagged_n, last_deposit_at FROM player_stats "
        "WHERE deposits_n <> 0 OR withdrawals_n <> 0 OR flagged_n <> 0 OR deposits_minor <> 0 "
        "OR withdrawals_minor <> 0"
    ),
    "player_daily": (
        "SELECT player_id, currency, day, deposits_n, deposits_minor, withdrawals_n, "
        "withdrawals_minor FROM player_daily WHERE deposits_n <> 0 OR withdrawals_n <> 0 "
        "OR deposits_minor <> 0 OR withdrawals_minor <> 0"
    ),
    "player_hours": (
        "SELECT player_id, currency, hour, deposits_n FROM player_hours WHERE deposits_n <> 0"
    ),
    "player_monthly": (
        "SELECT player_id, currency, month, deposits_n, deposits_minor, withdrawals_minor "
        "FROM player_monthly WHERE deposits_n <> 0 OR deposits_minor <> 0 "
        "OR withdrawals_minor <> 0"
    ),
    "cohort_monthly": (
        "SELECT currency, cohort, month, sum(depositors)::bigint AS depositors, "
        "sum(deposits_minor)::bigint AS deposits_minor, "
        "sum(withdrawals_minor)::bigint AS withdrawals_minor FROM ("
        "SELECT currency, cohort, month, depositors, deposits_minor, withdrawals_minor "
        "FROM cohort_monthly UNION ALL SELECT currency, cohort, month, depositors, "
        "deposits_minor, withdrawals_minor FROM cohort_monthly_deltas) x GROUP BY 1, 2, 3 "
        "HAVING sum(depositors) <> 0 OR sum(deposits_minor) <> 0 OR sum(withdrawals_minor) <> 0"
    ),
    "payment_daily": (
        f"SELECT {_DAILY_KEY}, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor, "
        f"sum(fraud)::bigint AS fraud FROM (SELECT {_DAILY_KEY}, n, amount_minor, fraud "
        "FROM payment_daily UNION ALL SELECT kind, currency, "
        "(hour AT TIME ZONE analytics_zone())::date, method, provider, status, reason, n, "
        f"amount_minor, fraud FROM payment_hourly_deltas) x GROUP BY {_DAILY_KEY} "
        "HAVING sum(n) <> 0 OR sum(amount_minor) <> 0 OR sum(fraud) <> 0"
    ),
    "completion_daily": (
        f"SELECT {_COMPLETION_KEY}, sum(n)::bigint AS n, sum(in_time)::bigint AS in_time, "
        "sum(with_deadline)::bigint AS with_deadline FROM ("
        f"SELECT {_COMPLETION_KEY}, n, in_time, with_deadline FROM completion_daily UNION ALL "
        f"SELECT {_COMPLETION_KEY}, n, in_time, with_deadline FROM completion_daily_deltas) x "
        f"GROUP BY {_COMPLETION_KEY} HAVING sum(n) <> 0 OR sum(in_time) <> 0 "
        "OR sum(with_deadline) <> 0"
    ),
    "completion_daily_groups": (
        f"SELECT {_GROUPS_KEY}, sum(n)::bigint AS n, sum(in_time)::bigint AS in_time, "
        "sum(with_deadline)::bigint AS with_deadline FROM ("
        f"SELECT {_GROUPS_KEY}, n, in_time, with_deadline FROM completion_daily_groups "
        "UNION ALL SELECT kind, currency, day, d.dim, CASE d.dim WHEN 'method' THEN method "
        "ELSE provider END, bucket, n, in_time, with_deadline FROM completion_daily_deltas, "
        "(VALUES ('method'), ('provider')) AS d(dim)) x "
        f"GROUP BY {_GROUPS_KEY} HAVING sum(n) <> 0 OR sum(in_time) <> 0 "
        "OR sum(with_deadline) <> 0"
    ),
    "completion_day_percentiles": (
        "SELECT kind, currency, day, n, in_time, with_deadline, median, p95 "
        "FROM completion_day_percentiles p "
        "WHERE NOT EXISTS (SELECT FROM completion_daily_deltas q WHERE q.kind = p.kind "
        "AND q.currency = p.currency AND q.day = p.day)"
    ),
    "player_escalations": (
        "SELECT player_id, currency, rising_n FROM player_escalations WHERE rising_n <> 0"
    ),
    "ledger_entry_balances": (
        "SELECT account_id, entry_id, balance_after FROM ledger_entry_balances"
    ),
}

_FOLD_SQL = f"""
WITH RECURSIVE d AS (DELETE FROM payment_hourly_deltas
                     RETURNING {_HOURLY_KEY}, n, amount_minor, fraud),
g AS (SELECT {_HOURLY_KEY}, sum(n) AS n, sum(amount_minor) AS amount_minor, sum(fraud) AS fraud,
             count(*) AS c FROM d GROUP BY {_HOURLY_KEY}),
h AS (INSERT INTO payment_hourly AS r ({_HOURLY_KEY}, n, amount_minor, fraud)
      SELECT {_HOURLY_KEY}, n, amount_minor, fraud FROM g
      ON CONFLICT ({_HOURLY_KEY}) DO UPDATE SET n = r.n + excluded.n,
          amount_minor = r.amount_minor + excluded.amount_minor, fraud = r.fraud + excluded.fraud),
t AS (INSERT INTO payment_totals AS r ({_TOTALS_KEY}, n, amount_minor)
      SELECT {_TOTALS_KEY}, sum(n), sum(amount_minor) FROM g GROUP BY {_TOTALS_KEY}
      ON CONFLICT ({_TOTALS_KEY}) DO UPDATE SET n = r.n + excluded.n,
          amount_minor = r.amount_minor + excluded.amount_minor),
cd AS (DELETE FROM provider_call_deltas RETURNING {_CALLS_KEY}, n, total_ms, {_BUCKETS}),
cg AS (SELECT {_CALLS_KEY}, sum(n) AS n, sum(total_ms) AS total_ms, count(*) AS c,
              {", ".join(f"sum(le_{ms}) AS le_{ms}" for ms in LATENCY_BUCKETS_MS)}
       FROM cd GROUP BY {_CALLS_KEY}),
ct AS (INSERT INTO provider_call_totals AS r ({_CALLS_KEY}, n, total_ms, {_BUCKETS})
       SELECT {_CALLS_KEY}, n, total_ms, {_BUCKETS} FROM cg
       ON CONFLICT ({_CALLS_KEY}) DO UPDATE SET n = r.n + excluded.n,
           total_ms = r.total_ms + excluded.total_ms,
           {", ".join(f"le_{ms} = r.le_{ms} + excluded.le_{ms}" for ms in LATENCY_BUCKETS_MS)}),
hd AS (DELETE FROM cohort_monthly_deltas
       RETURNING currency, cohort, month, depositors, deposits_minor, withdrawals_minor),
hg AS (SELECT currency, cohort, month, sum(depositors) AS depositors,
              sum(deposits_minor) AS deposits_minor, sum(withdrawals_minor) AS withdrawals_minor,
              count(*) AS c
       FROM hd GROUP BY 1, 2, 3),
ht AS (INSERT INTO cohort_monthly AS r (currency, cohort, month, depositors, deposits_minor,
                                         withdrawals_minor)
       SELECT currency, cohort, month, depositors, deposits_minor, withdrawals_minor FROM hg
       ON CONFLICT (currency, cohort, month) DO UPDATE SET
           depositors = r.depositors + excluded.depositors,
           deposits_minor = r.deposits_minor + excluded.deposits_minor,
           withdrawals_minor = r.withdrawals_minor + excluded.withdrawals_minor),
dd AS (INSERT INTO payment_daily AS r ({_DAILY_KEY}, n, amount_minor, fraud)
       SELECT kind, currency, (hour AT TIME ZONE analytics_zone())::date, method, provider,
              status, reason, sum(n), sum(amount_minor), sum(fraud)
       FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7
       ON CONFLICT ({_DAILY_KEY}) DO UPDATE SET n = r.n + excluded.n,
           amount_minor = r.amount_minor + excluded.amount_minor,
           fraud = r.fraud + excluded.fraud),
qd AS (DELETE FROM completion_daily_deltas
       RETURNING {_COMPLETION_KEY}, method, provider, n, in_time, with_deadline),
qg AS (SELECT {_COMPLETION_KEY}, sum(n) AS n, sum(in_time) AS in_time,
              sum(with_deadline) AS with_deadline, count(*) AS c
       FROM qd GROUP BY {_COMPLETION_KEY}),
qt AS (INSERT INTO completion_daily AS r ({_COMPLETION_KEY}, n, in_time, with_deadline)
       SELECT {_COMPLETION_KEY}, n, in_time, with_deadline FROM qg
       ON CONFLICT ({_COMPLETION_KEY}) DO UPDATE SET n = r.n + excluded.n,
           in_time = r.in_time + excluded.in_time,
           with_deadline = r.with_deadline + excluded.with_deadline),
qm AS (INSERT INTO completion_daily_groups AS r ({_GROUPS_KEY}, n, in_time, with_deadline)
       SELECT kind, currency, day, d.dim,
              CASE d.dim WHEN 'method' THEN method ELSE provider END, bucket, sum(n),
              sum(in_time), sum(with_deadline)
       FROM qd, (VALUES ('method'), ('provider')) AS d(dim) GROUP BY 1, 2, 3, 4, 5, 6
       ON CONFLICT ({_GROUPS_KEY}) DO UPDATE SET n = r.n + excluded.n,
           in_time = r.in_time + excluded.in_time,
           with_deadline = r.with_deadline + excluded.with_deadline),
-- The closed days whose completions changed, and those closed since the last fold (after
-- the last day kept: a day before it changed by a delta): their exact percentiles again
-- (this statement's snapshot: the completions of the deltas above).
pp AS (  -- the (kind, currency) pairs of the histogram: an index skip scan
       (SELECT kind, currency FROM completion_daily ORDER BY kind, currency LIMIT 1)
       UNION ALL
       SELECT n.kind, n.currency FROM pp, LATERAL (
           SELECT kind, currency FROM completion_daily c
           WHERE (c.kind, c.currency) > (pp.kind, pp.currency)
           ORDER BY kind, currency LIMIT 1) n),
pd AS (SELECT DISTINCT kind, currency, day FROM qd WHERE day < {_TODAY}
       UNION SELECT pp.kind, pp.currency, c.day FROM pp, LATERAL (
           SELECT DISTINCT c.day FROM completion_daily c
           WHERE c.kind = pp.kind AND c.currency = pp.currency AND c.day < {_TODAY}
             AND c.day > coalesce((SELECT max(day) FROM completion_day_percentiles p
                                   WHERE p.kind = pp.kind AND p.currency = pp.currency),
                                  '-infinity')) c),
pc AS (SELECT pd.kind, pd.currency, pd.day, count(*)::bigint AS n,
              count(*) FILTER (WHERE x.in_time)::bigint AS in_time,
              count(x.in_time)::bigint AS with_deadline,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY x.seconds) AS median,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY x.seconds) AS p95
       FROM pd JOIN payment_completions x ON x.kind = pd.kind AND x.currency = pd.currency
        AND x.created_at >= CAST(pd.day AS timestamp) AT TIME ZONE analytics_zone()
        AND x.created_at < CAST(pd.day + 1 AS timestamp) AT TIME ZONE analytics_zone()
       GROUP BY 1, 2, 3),
pu AS (INSERT INTO completion_day_percentiles AS r (kind, currency, day, n, in_time,
                                                     with_deadline, median, p95)
       SELECT kind, currency, day, n, in_time, with_deadline, median, p95 FROM pc
       ON CONFLICT (kind, currency, day) DO UPDATE SET n = excluded.n,
           in_time = excluded.in_time, with_deadline = excluded.with_deadline,
           median = excluded.median, p95 = excluded.p95),
px AS (DELETE FROM completion_day_percentiles r USING pd
       WHERE r.kind = pd.kind AND r.currency = pd.currency AND r.day = pd.day
       AND NOT EXISTS (SELECT FROM pc WHERE pc.kind = pd.kind AND pc.currency = pd.currency
                       AND pc.day = pd.day))
SELECT coalesce((SELECT sum(c) FROM g), 0) + coalesce((SELECT sum(c) FROM cg), 0)
       + coalesce((SELECT sum(c) FROM hg), 0) + coalesce((SELECT sum(c) FROM qg), 0)
"""

# Inserted by rebuild(): (table, its columns, the recomputation).
_REBUILD = (
    ("payment_hourly", f"{_HOURLY_KEY}, n, amount_minor, fraud"),
    ("payment_totals", f"{_TOTALS_KEY}, n, amount_minor"),
    ("provider_call_totals", f"{_CALLS_KEY}, n, total_ms, {_BUCKETS}"),
    (
        "payment_completions",
        "payment_id, kind, created_at, method, provider, currency, seconds, in_time",
    ),
    ("player_first_deposits", "player_id, currency, deposit_id, first_at, method, provider"),
    (
        "player_stats",
        "player_id, currency, deposits_n, deposits_minor, withdrawals_n, withdrawals_minor, "
        "flagged_n, last_deposit_at",
    ),
    (
        "player_daily",
        "player_id, currency, day, deposits_n, deposits_minor, withdrawals_n, withdrawals_minor",
    ),
    ("player_hours", "player_id, currency, hour, deposits_n"),
    ("player_monthly", "player_id, currency, month, deposits_n, deposits_minor, withdrawals_minor"),
    ("cohort_monthly", "currency, cohort, month, depositors, deposits_minor, withdrawals_minor"),
    ("ledger_entry_balances", "account_id, entry_id, balance_after"),
    ("payment_daily", f"{_DAILY_KEY}, n, amount_minor, fraud"),
    ("completion_daily", f"{_COMPLETION_KEY}, n, in_time, with_deadline"),
    ("player_escalations", "player_id, currency, rising_n"),
    ("completion_daily_groups", f"{_GROUPS_KEY}, n, in_time, with_deadline"),
    (
        "completion_day_percentiles",
        "kind, currency, day, n, in_time, with_deadline, median, p95",
    ),
)
# The rollups each migration created (a migration rebuilds its own, as they were then).
ROLLUPS_0170 = tuple(table for table, _ in _REBUILD[:11])
ROLLUPS_0190 = ("payment_daily", "completion_daily", "player_escalations")
ROLLUPS_0260 = ("completion_daily", "completion_daily_groups", "completion_day_percentiles")
# `payment_daily` as the fold made it: `payment_hourly` per local day. Deltas pending when
# migration 0190 backfills are folded into both later, so it is not read from history then.
_DAILY_FROM_HOURLY = (
    "SELECT kind, currency, (hour AT TIME ZONE analytics_zone())::date AS day, method, "
    "provider, status, reason, sum(n)::bigint AS n, sum(amount_minor)::bigint AS amount_minor, "
    f"sum(fraud)::bigint AS fraud FROM payment_hourly GROUP BY {_DAILY_KEY}"
)


def rebuild(connection: Connection, *, tables: tuple[str, ...] | None = None) -> None:
    """Recompute the rollups from history (the caller holds the tables still or owns them):
    every one, or only `tables` (a migration's own; the others' deltas are kept then)."""
    if tables is None:
        connection.execute(text("DELETE FROM payment_hourly_deltas"))
        connection.execute(text("DELETE FROM provider_call_deltas"))
        connection.execute(text("DELETE FROM cohort_monthly_deltas"))
        connection.execute(text("DELETE FROM completion_daily_deltas"))
    elif "completion_daily" in tables and connection.scalar(
        text("SELECT to_regclass('completion_daily_groups') IS NOT NULL")
    ):
        # Its deltas are dropped, so everything else folded from them is rebuilt too (from
        # migration 0260 on; migration 0190's own backfill ran before these existed).
        tables = (*tables, "completion_daily_groups", "completion_day_percentiles")
    for table, columns in _REBUILD:
        if tables is not None and table not in tables:
            continue
        source = EXPECTED[table][1]
        if table == "payment_daily" and tables is not None:
            source = _DAILY_FROM_HOURLY
        if table == "completion_day_percentiles":  # every closed day (the check: those kept)
            source = _day_percentiles(
                f"SELECT kind, currency, created_at, seconds, in_time FROM ({_COMPLETIONS}) c"
            )
        if table == "completion_daily":
            # Already counted by the recomputation (and added by the trigger as
            # `payment_completions` was rebuilt just before).
            connection.execute(text("DELETE FROM completion_daily_deltas"))
        connection.execute(text(f"DELETE FROM {table}"))
        connection.execute(
            text(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM ({source}) x")
        )


async def fold(session: AsyncSession) -> int:
    """Move pending deltas into the rollups; 0 when another fold holds the lock. Commits."""
    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FOLD_LOCK})
    moved = int(await session.scalar(text(_FOLD_SQL)) or 0) if got else 0
    await session.commit()
    return moved


@dataclass(frozen=True)
class Difference:
    rollup: str
    side: str  # "missing" (in history, not the rollup) or "extra" (in the rollup only)
    row: dict[str, object]


async def check(
    session: AsyncSession, *, sample: int = 5
) -> tuple[dict[str, int], list[Difference]]:
    """Each rollup against its recomputation: the count of differing rows per rollup, and a
    sample of them. Read-only; one snapshot (REPEATABLE READ) for all rollups."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    counts: dict[str, int] = {}
    found: list[Difference] = []
    for name, (_, expected) in EXPECTED.items():
        actual = ACTUAL[name]
        counts[name] = 0
        for side, left, right in (("missing", expected, actual), ("extra", actual, expected)):
            rows = (await session.execute(text(f"({left}) EXCEPT ({right})"))).mappings().all()
            counts[name] += len(rows)
            found += [Difference(name, side, dict(r)) for r in rows[:sample]]
    await session.rollback()
    return counts, found


async def _main(argv: list[str]) -> int:
    from config import get_settings
    from db.engine import make_engine, make_sessionmaker

    parser = argparse.ArgumentParser(prog="python -m db.rollups", description=__doc__)
    parser.add_argument("command", choices=["check", "fold", "rebuild"])
    args = parser.parse_args(argv)
    url = get_settings().database_url
    if not url:
        print("PAY_DATABASE_URL is not set", file=sys.stderr)
        return 2
    engine = make_engine(url, pool_size=1)
    try:
        sessions = make_sessionmaker(engine)
        async with sessions() as session:
            if args.command == "fold":
                print(f"folded {await fold(session)} deltas")
                return 0
            if args.command == "rebuild":
                await session.run_sync(lambda s: rebuild(s.connection()))
                await session.commit()
                print("rebuilt every rollup from history")
                return 0
            counts, found = await check(session)
        for name, n in counts.items():
            print(f"{'ok  ' if n == 0 else 'FAIL'} {name}: {n} differing rows")
        for d in found:
            print(f"  {d.rollup} {d.side}: {d.row}")
        return 1 if any(counts.values()) else 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
