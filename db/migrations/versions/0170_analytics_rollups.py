# ruff: noqa: S608  (SQL built from this module's constants and validated role names only)
"""Analytics rollups kept by triggers, and the wallet statement's stored running balance.

See db/rollups.py for what each table holds. The triggers:

* `deposits`, `withdrawals` (row, AFTER INSERT/UPDATE/DELETE): a -1 delta for the old key and a
  +1 delta for the new one in `payment_hourly_deltas` (append only: payments never wait on a
  shared rollup row); the payment's completion row; the player's first deposit (an index probe
  on `ix_deposits_first_succeeded`). Nothing is done when no field the rollups read changed.
* `payment_events` (row, AFTER INSERT of a success status): the payment's completion row.
* `payment_attempts` (row, AFTER INSERT/UPDATE/DELETE): deltas in `provider_call_deltas`.
* `ledger_entries` (statement, AFTER INSERT): the balance after each new player-wallet entry,
  from the account's last stored balance; the posting functions lock the accounts (FOR UPDATE,
  by code) before they insert, so postings to one wallet run one after another. The table is
  derived, not the ledger: it keeps the default grants of 0130 (the application role could
  write it, as it can every rollup; `python -m db.rollups check` would show any change), while
  `ledger_entries` itself stays writable through the posting functions alone.

Everything existing is backfilled (`db.rollups.rebuild`) under SHARE locks, so no write is
counted twice or missed.

Revision ID: 0170
Revises: 0160
"""

from collections.abc import Sequence

from alembic import op

from db.rollups import (
    DEPOSIT_UNSUCCESSFUL,
    FRAUD_DECISIONS,
    LATENCY_BUCKETS_MS,
    ROLLUPS_0170,
    WITHDRAWAL_UNSUCCESSFUL,
    hour_sql,
    rebuild,
)

revision: str = "0170"
down_revision: str | Sequence[str] | None = "0160"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _list(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_BUCKETS = ", ".join(f"le_{ms}" for ms in LATENCY_BUCKETS_MS)
_BUCKET_DDL = ", ".join(f"le_{ms} bigint NOT NULL DEFAULT 0" for ms in LATENCY_BUCKETS_MS)

_TABLES = f"""
CREATE TABLE payment_hourly (
    kind text NOT NULL, hour timestamptz NOT NULL, method text NOT NULL, provider text NOT NULL,
    status text NOT NULL, reason text NOT NULL, currency text NOT NULL,
    n bigint NOT NULL, amount_minor bigint NOT NULL, fraud bigint NOT NULL,
    PRIMARY KEY (kind, hour, method, provider, status, reason, currency)
);
CREATE INDEX ix_payment_hourly_window ON payment_hourly (kind, currency, hour);
CREATE TABLE payment_hourly_deltas (
    id bigserial PRIMARY KEY,
    kind text NOT NULL, hour timestamptz NOT NULL, method text NOT NULL, provider text NOT NULL,
    status text NOT NULL, reason text NOT NULL, currency text NOT NULL,
    n integer NOT NULL, amount_minor bigint NOT NULL, fraud integer NOT NULL
);
CREATE TABLE payment_totals (
    kind text NOT NULL, method text NOT NULL, provider text NOT NULL, status text NOT NULL,
    currency text NOT NULL, n bigint NOT NULL, amount_minor bigint NOT NULL,
    PRIMARY KEY (kind, method, provider, status, currency)
);
CREATE TABLE provider_call_totals (
    provider text NOT NULL, step text NOT NULL, outcome text NOT NULL,
    n bigint NOT NULL, total_ms bigint NOT NULL, {_BUCKET_DDL},
    PRIMARY KEY (provider, step, outcome)
);
CREATE TABLE provider_call_deltas (
    id bigserial PRIMARY KEY, provider text NOT NULL, step text NOT NULL, outcome text NOT NULL,
    n bigint NOT NULL, total_ms bigint NOT NULL, {_BUCKET_DDL}
);
CREATE TABLE payment_completions (
    payment_id varchar(40) PRIMARY KEY, kind text NOT NULL, created_at timestamptz NOT NULL,
    method text NOT NULL, provider text NOT NULL, currency text NOT NULL,
    seconds float8 NOT NULL, in_time boolean
);
CREATE INDEX ix_payment_completions_window ON payment_completions (kind, currency, created_at)
    INCLUDE (seconds, in_time, method, provider);
CREATE TABLE player_first_deposits (
    player_id varchar(40) NOT NULL, currency text NOT NULL, deposit_id varchar(40) NOT NULL,
    first_at timestamptz NOT NULL, method text NOT NULL, provider text NOT NULL,
    PRIMARY KEY (player_id, currency)
);
CREATE INDEX ix_player_first_deposits_window ON player_first_deposits (currency, first_at)
    INCLUDE (method, provider);
CREATE TABLE player_stats (
    player_id varchar(40) NOT NULL, currency text NOT NULL,
    deposits_n bigint NOT NULL DEFAULT 0, deposits_minor bigint NOT NULL DEFAULT 0,
    withdrawals_n bigint NOT NULL DEFAULT 0, withdrawals_minor bigint NOT NULL DEFAULT 0,
    flagged_n bigint NOT NULL DEFAULT 0, last_deposit_at timestamptz,
    PRIMARY KEY (player_id, currency)
);
CREATE TABLE player_daily (
    player_id varchar(40) NOT NULL, currency text NOT NULL, day date NOT NULL,
    deposits_n bigint NOT NULL, deposits_minor bigint NOT NULL,
    withdrawals_n bigint NOT NULL, withdrawals_minor bigint NOT NULL,
    PRIMARY KEY (player_id, currency, day)
);
CREATE TABLE player_monthly (
    player_id varchar(40) NOT NULL, currency text NOT NULL, month date NOT NULL,
    deposits_n bigint NOT NULL, deposits_minor bigint NOT NULL, withdrawals_minor bigint NOT NULL,
    PRIMARY KEY (player_id, currency, month)
);
CREATE TABLE cohort_monthly (
    currency text NOT NULL, cohort date NOT NULL, month date NOT NULL,
    depositors bigint NOT NULL, deposits_minor bigint NOT NULL, withdrawals_minor bigint NOT NULL,
    PRIMARY KEY (currency, cohort, month)
);
CREATE TABLE cohort_monthly_deltas (
    id bigserial PRIMARY KEY, currency text NOT NULL, cohort date NOT NULL, month date NOT NULL,
    depositors integer NOT NULL, deposits_minor bigint NOT NULL, withdrawals_minor bigint NOT NULL
);
CREATE TABLE player_hours (
    player_id varchar(40) NOT NULL, currency text NOT NULL, hour smallint NOT NULL,
    deposits_n bigint NOT NULL,
    PRIMARY KEY (player_id, currency, hour)
);
CREATE TABLE ledger_entry_balances (
    account_id bigint NOT NULL, entry_id bigint NOT NULL, balance_after bigint NOT NULL,
    PRIMARY KEY (account_id, entry_id)
);
"""


def _delta_values(row: str) -> str:
    """A payment_hourly_deltas VALUES tuple for OLD or NEW, with sign `s`."""
    return (
        f"(k, {hour_sql(f'{row}.created_at')}, {row}.method, "
        f"coalesce({row}.provider, 'unassigned'), "
        f"{row}.status, CASE WHEN {row}.status = ANY(bad) "
        f"THEN coalesce({row}.status_reason, 'unspecified') ELSE '' END, {row}.currency, "
        f"s, s * {row}.amount_minor, "
        f"s * coalesce({row}.risk->>'decision' IN ({_list(FRAUD_DECISIONS)}), false)::int)"
    )


_COLUMNS = "kind, hour, method, provider, status, reason, currency, n, amount_minor, fraud"

_FUNCTIONS = f"""
-- The zone of the players' days and hours (PAY_ANALYTICS_TIME_ZONE's default). To change it:
-- CREATE OR REPLACE this function, then `python -m db.rollups rebuild`.
CREATE FUNCTION analytics_zone() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'Asia/Almaty' $$;

-- A succeeded deposit / paid withdrawal (s = 1) or its reversal (s = -1) on the player's rollups.
CREATE FUNCTION analytics_player_add(
    k text, p_player text, p_currency text, p_at timestamptz, p_amount bigint, s integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    dep integer := CASE k WHEN 'deposit' THEN s ELSE 0 END;
    wd integer := CASE k WHEN 'deposit' THEN 0 ELSE s END;
    v_month date := date_trunc('month', p_at AT TIME ZONE analytics_zone())::date;
    v_after bigint;
    v_cohort date;
BEGIN
    -- The month, and the player's cohort's month (a delta: the cohort row is shared).
    INSERT INTO player_monthly AS m (player_id, currency, month, deposits_n, deposits_minor,
                                     withdrawals_minor)
    VALUES (p_player, p_currency, v_month, dep, dep * p_amount, wd * p_amount)
    ON CONFLICT (player_id, currency, month) DO UPDATE SET
        deposits_n = m.deposits_n + excluded.deposits_n,
        deposits_minor = m.deposits_minor + excluded.deposits_minor,
        withdrawals_minor = m.withdrawals_minor + excluded.withdrawals_minor
    RETURNING m.deposits_n INTO v_after;
    SELECT date_trunc('month', first_at AT TIME ZONE analytics_zone())::date INTO v_cohort
    FROM player_first_deposits WHERE player_id = p_player AND currency = p_currency;
    IF v_cohort IS NOT NULL THEN
        INSERT INTO cohort_monthly_deltas (currency, cohort, month, depositors, deposits_minor,
                                           withdrawals_minor)
        VALUES (p_currency, v_cohort, v_month,
                (v_after > 0)::int - (v_after - dep > 0)::int, dep * p_amount, wd * p_amount);
    END IF;
    INSERT INTO player_daily AS d (player_id, currency, day, deposits_n, deposits_minor,
                                   withdrawals_n, withdrawals_minor)
    VALUES (p_player, p_currency, (p_at AT TIME ZONE analytics_zone())::date, dep,
            dep * p_amount, wd, wd * p_amount)
    ON CONFLICT (player_id, currency, day) DO UPDATE SET
        deposits_n = d.deposits_n + excluded.deposits_n,
        deposits_minor = d.deposits_minor + excluded.deposits_minor,
        withdrawals_n = d.withdrawals_n + excluded.withdrawals_n,
        withdrawals_minor = d.withdrawals_minor + excluded.withdrawals_minor;
    INSERT INTO player_stats AS p (player_id, currency, deposits_n, deposits_minor,
                                   withdrawals_n, withdrawals_minor, last_deposit_at)
    VALUES (p_player, p_currency, dep, dep * p_amount, wd, wd * p_amount,
            CASE WHEN dep = 1 THEN p_at END)
    ON CONFLICT (player_id, currency) DO UPDATE SET
        deposits_n = p.deposits_n + excluded.deposits_n,
        deposits_minor = p.deposits_minor + excluded.deposits_minor,
        withdrawals_n = p.withdrawals_n + excluded.withdrawals_n,
        withdrawals_minor = p.withdrawals_minor + excluded.withdrawals_minor,
        last_deposit_at = greatest(p.last_deposit_at, excluded.last_deposit_at);
    IF dep <> 0 THEN
        INSERT INTO player_hours AS h (player_id, currency, hour, deposits_n)
        VALUES (p_player, p_currency,
                extract(hour FROM p_at AT TIME ZONE analytics_zone())::smallint, dep)
        ON CONFLICT (player_id, currency, hour) DO UPDATE SET
            deposits_n = h.deposits_n + excluded.deposits_n;
    END IF;
    IF dep = -1 THEN
        UPDATE player_stats SET last_deposit_at = (
            SELECT max(created_at) FROM deposits
            WHERE player_id = p_player AND currency = p_currency AND status = 'succeeded')
        WHERE player_id = p_player AND currency = p_currency;
    END IF;
END $$;

CREATE FUNCTION analytics_completion_sync(p_kind text, p_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM payment_completions WHERE payment_id = p_id AND kind = p_kind;
    IF p_kind = 'deposit' THEN
        INSERT INTO payment_completions
            (payment_id, kind, created_at, method, provider, currency, seconds, in_time)
        SELECT d.id, 'deposit', d.created_at, d.method, coalesce(d.provider, 'unassigned'),
               d.currency, extract(epoch FROM min(e.occurred_at) - d.created_at)::float8, NULL
        FROM deposits d JOIN payment_events e ON e.payment_id = d.id AND e.status = 'succeeded'
        WHERE d.id = p_id AND d.status = 'succeeded' GROUP BY d.id;
    ELSE
        INSERT INTO payment_completions
            (payment_id, kind, created_at, method, provider, currency, seconds, in_time)
        SELECT w.id, 'withdrawal', w.created_at, w.method, w.provider, w.currency,
               extract(epoch FROM min(e.occurred_at) - w.created_at)::float8,
               min(e.occurred_at) <= w.payout_deadline
        FROM withdrawals w JOIN payment_events e ON e.payment_id = w.id AND e.status = 'paid'
        WHERE w.id = p_id AND w.status = 'paid' GROUP BY w.id;
    END IF;
END $$;

CREATE FUNCTION analytics_first_deposit_sync(p_player text, p_currency text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_old date;
    v_new date;
BEGIN
    SELECT date_trunc('month', first_at AT TIME ZONE analytics_zone())::date INTO v_old
    FROM player_first_deposits WHERE player_id = p_player AND currency = p_currency;
    DELETE FROM player_first_deposits WHERE player_id = p_player AND currency = p_currency;
    INSERT INTO player_first_deposits (player_id, currency, deposit_id, first_at, method, provider)
    SELECT player_id, currency, id, created_at, method, coalesce(provider, 'unassigned')
    FROM deposits WHERE player_id = p_player AND currency = p_currency AND status = 'succeeded'
    ORDER BY created_at, id LIMIT 1;
    SELECT date_trunc('month', first_at AT TIME ZONE analytics_zone())::date INTO v_new
    FROM player_first_deposits WHERE player_id = p_player AND currency = p_currency;
    -- Another cohort: the player's months move from the old one to the new one.
    IF v_old IS DISTINCT FROM v_new THEN
        INSERT INTO cohort_monthly_deltas (currency, cohort, month, depositors, deposits_minor,
                                           withdrawals_minor)
        SELECT p_currency, c.cohort, m.month, c.s * (m.deposits_n > 0)::int,
               c.s * m.deposits_minor, c.s * m.withdrawals_minor
        FROM player_monthly m,
             (VALUES (v_old, -1), (v_new, 1)) AS c(cohort, s)
        WHERE m.player_id = p_player AND m.currency = p_currency AND c.cohort IS NOT NULL;
    END IF;
END $$;

CREATE FUNCTION analytics_payment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text := TG_ARGV[0];
    done text := CASE k WHEN 'deposit' THEN 'succeeded' ELSE 'paid' END;
    bad text[] := CASE k WHEN 'deposit' THEN ARRAY[{_list(DEPOSIT_UNSUCCESSFUL)}]
                  ELSE ARRAY[{_list(WITHDRAWAL_UNSUCCESSFUL)}] END;
    s integer;
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.status IS NOT DISTINCT FROM OLD.status
       AND NEW.status_reason IS NOT DISTINCT FROM OLD.status_reason
       AND NEW.method IS NOT DISTINCT FROM OLD.method
       AND NEW.provider IS NOT DISTINCT FROM OLD.provider
       AND NEW.currency IS NOT DISTINCT FROM OLD.currency
       AND NEW.amount_minor IS NOT DISTINCT FROM OLD.amount_minor
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at
       AND NEW.player_id IS NOT DISTINCT FROM OLD.player_id
       AND (NEW.risk->>'decision') IS NOT DISTINCT FROM (OLD.risk->>'decision') THEN
        IF k = 'deposit' THEN
            RETURN NULL;
        END IF;
        -- Withdrawals: the deadline decides "paid in time" (only their row has the column).
        IF NEW.payout_deadline IS NOT DISTINCT FROM OLD.payout_deadline THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        s := -1;
        INSERT INTO payment_hourly_deltas ({_COLUMNS}) VALUES {_delta_values("OLD")};
        IF k = 'deposit' AND OLD.risk->>'decision' IN ({_list(FRAUD_DECISIONS)}) THEN
            UPDATE player_stats SET flagged_n = flagged_n - 1
            WHERE player_id = OLD.player_id AND currency = OLD.currency;
        END IF;
        IF OLD.status = done THEN
            PERFORM analytics_player_add(k, OLD.player_id, OLD.currency, OLD.created_at,
                                         OLD.amount_minor, -1);
            PERFORM analytics_completion_sync(k, OLD.id);
            IF k = 'deposit' THEN
                PERFORM analytics_first_deposit_sync(OLD.player_id, OLD.currency);
            END IF;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        s := 1;
        INSERT INTO payment_hourly_deltas ({_COLUMNS}) VALUES {_delta_values("NEW")};
        IF k = 'deposit' AND NEW.risk->>'decision' IN ({_list(FRAUD_DECISIONS)}) THEN
            INSERT INTO player_stats AS p (player_id, currency, flagged_n)
            VALUES (NEW.player_id, NEW.currency, 1)
            ON CONFLICT (player_id, currency) DO UPDATE SET flagged_n = p.flagged_n + 1;
        END IF;
        IF NEW.status = done THEN
            PERFORM analytics_player_add(k, NEW.player_id, NEW.currency, NEW.created_at,
                                         NEW.amount_minor, 1);
            PERFORM analytics_completion_sync(k, NEW.id);
            IF k = 'deposit' THEN
                PERFORM analytics_first_deposit_sync(NEW.player_id, NEW.currency);
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION analytics_payment_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_completion_sync(
        CASE NEW.status WHEN 'succeeded' THEN 'deposit' ELSE 'withdrawal' END, NEW.payment_id);
    RETURN NULL;
END $$;

CREATE FUNCTION analytics_attempt_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.provider IS NOT DISTINCT FROM OLD.provider
       AND NEW.step IS NOT DISTINCT FROM OLD.step AND NEW.outcome IS NOT DISTINCT FROM OLD.outcome
       AND NEW.latency_ms IS NOT DISTINCT FROM OLD.latency_ms THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO provider_call_deltas (provider, step, outcome, n, total_ms, {_BUCKETS})
        VALUES (OLD.provider, OLD.step, OLD.outcome, -1, -OLD.latency_ms,
                {", ".join(f"-(OLD.latency_ms <= {ms})::int" for ms in LATENCY_BUCKETS_MS)});
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO provider_call_deltas (provider, step, outcome, n, total_ms, {_BUCKETS})
        VALUES (NEW.provider, NEW.step, NEW.outcome, 1, NEW.latency_ms,
                {", ".join(f"(NEW.latency_ms <= {ms})::int" for ms in LATENCY_BUCKETS_MS)});
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger_entry_balances_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_entry_balances (account_id, entry_id, balance_after)
    SELECT n.account_id, n.id,
           coalesce((SELECT b.balance_after FROM ledger_entry_balances b
                     WHERE b.account_id = n.account_id
                     ORDER BY b.entry_id DESC LIMIT 1), 0)
           + sum(CASE WHEN t.phase = 'pending' THEN 0 WHEN n.side = 'C' THEN n.amount_minor
                      ELSE -n.amount_minor END)
             OVER (PARTITION BY n.account_id ORDER BY n.id)
    FROM new_entries n
    JOIN ledger_accounts a ON a.id = n.account_id AND a.type = 'player_wallet'
    JOIN ledger_transactions t ON t.id = n.transaction_id;
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER analytics_deposits AFTER INSERT OR UPDATE OR DELETE ON deposits
    FOR EACH ROW EXECUTE FUNCTION analytics_payment_changed('deposit');
CREATE TRIGGER analytics_withdrawals AFTER INSERT OR UPDATE OR DELETE ON withdrawals
    FOR EACH ROW EXECUTE FUNCTION analytics_payment_changed('withdrawal');
CREATE TRIGGER analytics_payment_events AFTER INSERT ON payment_events
    FOR EACH ROW WHEN (NEW.status IN ('succeeded', 'paid'))
    EXECUTE FUNCTION analytics_payment_event();
CREATE TRIGGER analytics_payment_attempts AFTER INSERT OR UPDATE OR DELETE ON payment_attempts
    FOR EACH ROW EXECUTE FUNCTION analytics_attempt_changed();
CREATE TRIGGER ledger_entry_balances_on_entries AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_balances_add();
"""


def upgrade() -> None:
    op.execute(_TABLES)
    op.execute(_FUNCTIONS)
    # Writes wait while the backfill reads, so none is counted twice or missed.
    op.execute(
        "LOCK TABLE deposits, withdrawals, payment_events, payment_attempts, ledger_entries "
        "IN SHARE MODE"
    )
    op.execute(_TRIGGERS)
    rebuild(op.get_bind(), tables=ROLLUPS_0170)


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_entry_balances_on_entries ON ledger_entries")
    op.execute("DROP TRIGGER analytics_payment_attempts ON payment_attempts")
    op.execute("DROP TRIGGER analytics_payment_events ON payment_events")
    op.execute("DROP TRIGGER analytics_withdrawals ON withdrawals")
    op.execute("DROP TRIGGER analytics_deposits ON deposits")
    for function in (
        "ledger_entry_balances_add()",
        "analytics_attempt_changed()",
        "analytics_payment_event()",
        "analytics_payment_changed()",
        "analytics_first_deposit_sync(text, text)",
        "analytics_player_add(text, text, text, timestamptz, bigint, integer)",
        "analytics_zone()",
        "analytics_completion_sync(text, text)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    for table in (
        "ledger_entry_balances",
        "player_hours",
        "cohort_monthly_deltas",
        "cohort_monthly",
        "player_monthly",
        "player_daily",
        "player_stats",
        "player_first_deposits",
        "payment_completions",
        "provider_call_deltas",
        "provider_call_totals",
        "payment_totals",
        "payment_hourly_deltas",
        "payment_hourly",
    ):
        op.drop_table(table)
