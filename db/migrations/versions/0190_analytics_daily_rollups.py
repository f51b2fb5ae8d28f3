# ruff: noqa: S608  (SQL built from this module's constants only)
"""Analytics: local-day rollups for long windows, completion-time histograms, escalation runs.

Issue 19's reads over 180 days were over their goals at 1M deposits: the summary scanned every
hour of `payment_hourly` (105k rows) and sorted every completion time (800k) for its medians,
and the harm-marker list walked the last 30 days of deposits. New (see db/rollups.py):

* `payment_daily`: `payment_hourly` per day in `analytics_zone()`, folded from the same
  deltas (`db.rollups.fold`); a window reads its whole local days here, its edge hours from
  `payment_hourly`, its edge minutes from the payments.
* `completion_daily` (+ `completion_daily_deltas`, a row trigger on `payment_completions`):
  completions per local day and log-scale bucket of seconds (`completion_bucket`, 4 % wide).
  The exact medians and p95 are found from it: the bucket holding each rank, then that one
  bucket's rows (an expression index), never the whole window sorted.
* `player_escalations`: the length of the run of rising amounts ending at each player's last
  succeeded deposit (capped at 16), kept by a row trigger on `deposits` under a lock on the
  player's row, so the harm-marker list reads its candidates instead of recomputing them.
* A partial index on zero wallet balances (chasing candidates).

Everything is backfilled from history under SHARE locks.

Revision ID: 0190
Revises: 0180
"""

from collections.abc import Sequence

from alembic import op

from db.rollups import ESCALATION_CAP, ROLLUPS_0190, rebuild

revision: str = "0190"
down_revision: str | Sequence[str] | None = "0180"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = """
CREATE TABLE payment_daily (
    kind text NOT NULL, currency text NOT NULL, day date NOT NULL, method text NOT NULL,
    provider text NOT NULL, status text NOT NULL, reason text NOT NULL,
    n bigint NOT NULL, amount_minor bigint NOT NULL, fraud bigint NOT NULL,
    PRIMARY KEY (kind, currency, day, method, provider, status, reason)
);
CREATE TABLE completion_daily (
    kind text NOT NULL, currency text NOT NULL, day date NOT NULL, bucket integer NOT NULL,
    n bigint NOT NULL, in_time bigint NOT NULL, with_deadline bigint NOT NULL,
    PRIMARY KEY (kind, currency, day, bucket)
);
CREATE TABLE completion_daily_deltas (
    id bigserial PRIMARY KEY,
    kind text NOT NULL, currency text NOT NULL, day date NOT NULL, bucket integer NOT NULL,
    n integer NOT NULL, in_time integer NOT NULL, with_deadline integer NOT NULL
);
CREATE TABLE player_escalations (
    player_id varchar(40) NOT NULL, currency text NOT NULL, rising_n integer NOT NULL,
    PRIMARY KEY (player_id, currency)
);
"""

_FUNCTIONS = f"""
-- The log-scale bucket of a completion time: 25 per factor e (each about 4 % wide).
CREATE FUNCTION completion_bucket(seconds float8) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN seconds > 0.001 THEN floor(ln(seconds) * 25)::integer ELSE -1000 END
$$;

CREATE FUNCTION analytics_completion_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO completion_daily_deltas (kind, currency, day, bucket, n, in_time,
                                             with_deadline)
        VALUES (OLD.kind, OLD.currency, (OLD.created_at AT TIME ZONE analytics_zone())::date,
                completion_bucket(OLD.seconds), -1, -coalesce(OLD.in_time, false)::int,
                -(OLD.in_time IS NOT NULL)::int);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO completion_daily_deltas (kind, currency, day, bucket, n, in_time,
                                             with_deadline)
        VALUES (NEW.kind, NEW.currency, (NEW.created_at AT TIME ZONE analytics_zone())::date,
                completion_bucket(NEW.seconds), 1, coalesce(NEW.in_time, false)::int,
                (NEW.in_time IS NOT NULL)::int);
    END IF;
    RETURN NULL;
END $$;

-- The run of rising amounts ending at the player's last succeeded deposit (by creation).
CREATE FUNCTION analytics_escalation_sync(p_player text, p_currency text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := 0;
    v_next bigint;
    r record;
BEGIN
    -- The player's row first, locked: a concurrent deposit of the same player waits here, and
    -- the query below (a new snapshot) then sees it. A lock, not an update: no new row version.
    INSERT INTO player_escalations (player_id, currency, rising_n)
    VALUES (p_player, p_currency, 0) ON CONFLICT (player_id, currency) DO NOTHING;
    PERFORM FROM player_escalations WHERE player_id = p_player AND currency = p_currency
    FOR UPDATE;
    FOR r IN SELECT amount_minor FROM deposits
             WHERE player_id = p_player AND currency = p_currency AND status = 'succeeded'
             ORDER BY created_at DESC, id DESC LIMIT {ESCALATION_CAP} LOOP
        EXIT WHEN v_next IS NOT NULL AND r.amount_minor >= v_next;
        v_n := v_n + 1;
        v_next := r.amount_minor;
    END LOOP;
    UPDATE player_escalations SET rising_n = v_n
    WHERE player_id = p_player AND currency = p_currency AND rising_n <> v_n;
END $$;

CREATE FUNCTION analytics_escalation_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved boolean := TG_OP <> 'UPDATE'
        OR NEW.status IS DISTINCT FROM OLD.status
        OR NEW.amount_minor IS DISTINCT FROM OLD.amount_minor
        OR NEW.created_at IS DISTINCT FROM OLD.created_at
        OR NEW.player_id IS DISTINCT FROM OLD.player_id
        OR NEW.currency IS DISTINCT FROM OLD.currency;
BEGIN
    IF NOT moved THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'succeeded' THEN
        PERFORM analytics_escalation_sync(OLD.player_id, OLD.currency);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'succeeded' THEN
        PERFORM analytics_escalation_sync(NEW.player_id, NEW.currency);
    END IF;
    RETURN NULL;
END $$;
"""

_INDEXES = """
CREATE INDEX ix_payment_completions_bucket ON payment_completions
    (kind, currency, completion_bucket(seconds), created_at) INCLUDE (seconds);
CREATE INDEX ix_player_escalations_rising ON player_escalations (currency, rising_n);
CREATE INDEX ix_ledger_entry_balances_zero ON ledger_entry_balances (account_id)
    WHERE balance_after = 0;
"""

_TRIGGERS = """
CREATE TRIGGER analytics_completions AFTER INSERT OR UPDATE OR DELETE ON payment_completions
    FOR EACH ROW EXECUTE FUNCTION analytics_completion_changed();
CREATE TRIGGER analytics_deposits_escalation AFTER INSERT OR UPDATE OR DELETE ON deposits
    FOR EACH ROW EXECUTE FUNCTION analytics_escalation_changed();
"""


def upgrade() -> None:
    op.execute(_TABLES)
    op.execute(_FUNCTIONS)
    op.execute(_INDEXES)
    # Writes wait while the backfill reads, so none is counted twice or missed.
    op.execute(
        "LOCK TABLE deposits, withdrawals, payment_events, payment_completions, "
        "payment_hourly_deltas IN SHARE MODE"
    )
    op.execute(_TRIGGERS)
    rebuild(op.get_bind(), tables=ROLLUPS_0190)


def downgrade() -> None:
    op.execute("DROP TRIGGER analytics_deposits_escalation ON deposits")
    op.execute("DROP TRIGGER analytics_completions ON payment_completions")
    op.execute("DROP INDEX ix_ledger_entry_balances_zero")
    op.execute("DROP INDEX ix_player_escalations_rising")
    op.execute("DROP INDEX ix_payment_completions_bucket")
    for function in (
        "analytics_escalation_changed()",
        "analytics_escalation_sync(text, text)",
        "analytics_completion_changed()",
        "completion_bucket(float8)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    for table in (
        "player_escalations",
        "completion_daily_deltas",
        "completion_daily",
        "payment_daily",
    ):
        op.drop_table(table)
