# ruff: noqa: S608  (SQL built from this module's constants only)
"""Analytics: kept percentiles of closed days, completion histograms per method and provider.

Issue 19's last reads over their goal at 1M deposits (db/analytics.py):

* a long window by day found each day's median and p95 from that day's histogram and bucket
  rows (180 days: 720 index range reads). `completion_day_percentiles` keeps, per kind,
  currency and closed local day (before today in `analytics_zone()`), the count and the exact
  median and p95 (`percentile_cont`), recomputed by `db.rollups.fold` in the statement that
  folds the day's completion deltas (a late completion's delta is pending until then, and
  readers take a stored day only when none is pending), and for the days closed since.
* grouping by method or provider sorted every completion of the window.
  `completion_daily_groups` is `completion_daily` per method and per provider (`dim`, `key`),
  folded from the same deltas (now carrying the payment's method and provider), and two
  indexes find a group's bucket rows, so a group's percentiles read one bucket as the total's do.

Backfilled from history under a SHARE lock on the completions.

Revision ID: 0260
Revises: 0240
"""

from collections.abc import Sequence

from alembic import op

from db.rollups import ROLLUPS_0260, rebuild

revision: str = "0260"
down_revision: str | Sequence[str] | None = "0240"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = """
CREATE TABLE completion_daily_groups (
    kind text NOT NULL, currency text NOT NULL, day date NOT NULL, dim text NOT NULL,
    key text NOT NULL, bucket integer NOT NULL,
    n bigint NOT NULL, in_time bigint NOT NULL, with_deadline bigint NOT NULL,
    -- a window's rows by an index-only scan
    PRIMARY KEY (kind, currency, dim, day, key, bucket) INCLUDE (n, in_time, with_deadline),
    CHECK (dim IN ('method', 'provider'))
);
CREATE TABLE completion_day_percentiles (
    kind text NOT NULL, currency text NOT NULL, day date NOT NULL,
    n bigint NOT NULL, in_time bigint NOT NULL, with_deadline bigint NOT NULL,
    median float8 NOT NULL, p95 float8 NOT NULL,
    PRIMARY KEY (kind, currency, day)
);
"""

_INDEXES = """
CREATE INDEX ix_payment_completions_method_bucket ON payment_completions
    (kind, currency, method, completion_bucket(seconds), created_at) INCLUDE (seconds);
CREATE INDEX ix_payment_completions_provider_bucket ON payment_completions
    (kind, currency, provider, completion_bucket(seconds), created_at) INCLUDE (seconds);
"""


def _completion_trigger(with_groups: bool) -> str:
    """`analytics_completion_changed` (migration 0190's), its deltas with the method and
    provider when `with_groups`."""
    cols = ", method, provider" if with_groups else ""
    old = ", OLD.method, OLD.provider" if with_groups else ""
    new = ", NEW.method, NEW.provider" if with_groups else ""
    return f"""
CREATE OR REPLACE FUNCTION analytics_completion_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO completion_daily_deltas (kind, currency, day, bucket, n, in_time,
                                             with_deadline{cols})
        VALUES (OLD.kind, OLD.currency, (OLD.created_at AT TIME ZONE analytics_zone())::date,
                completion_bucket(OLD.seconds), -1, -coalesce(OLD.in_time, false)::int,
                -(OLD.in_time IS NOT NULL)::int{old});
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO completion_daily_deltas (kind, currency, day, bucket, n, in_time,
                                             with_deadline{cols})
        VALUES (NEW.kind, NEW.currency, (NEW.created_at AT TIME ZONE analytics_zone())::date,
                completion_bucket(NEW.seconds), 1, coalesce(NEW.in_time, false)::int,
                (NEW.in_time IS NOT NULL)::int{new});
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(_TABLES)
    op.execute(_INDEXES)
    # Completions wait while the histograms are rebuilt, so none is counted twice or missed.
    op.execute("LOCK TABLE payment_completions, completion_daily_deltas IN SHARE MODE")
    op.execute(
        "ALTER TABLE completion_daily_deltas ADD COLUMN method text NOT NULL DEFAULT '', "
        "ADD COLUMN provider text NOT NULL DEFAULT ''"
    )
    op.execute(
        "ALTER TABLE completion_daily_deltas ALTER COLUMN method DROP DEFAULT, "
        "ALTER COLUMN provider DROP DEFAULT"
    )
    op.execute(_completion_trigger(with_groups=True))
    # Pending completion deltas are counted by the recomputation, so dropped by it.
    rebuild(op.get_bind(), tables=ROLLUPS_0260)
    # Grants: migration 0130's default privileges (the application role writes, the analytics
    # role reads).


def downgrade() -> None:
    op.execute(_completion_trigger(with_groups=False))
    op.execute("ALTER TABLE completion_daily_deltas DROP COLUMN method, DROP COLUMN provider")
    op.execute("DROP INDEX ix_payment_completions_provider_bucket")
    op.execute("DROP INDEX ix_payment_completions_method_bucket")
    op.drop_table("completion_day_percentiles")
    op.drop_table("completion_daily_groups")
