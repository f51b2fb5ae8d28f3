"""Case resolutions, chargebacks, risk flags, posting dates, closed periods, balance snapshots.

- `ledger_transactions.posting_date`: the day a posting belongs to in the books. By default the
  Asia/Almaty day it is written (`ledger_posting_date()`); a writer may date its postings
  otherwise for its database transaction with `SET LOCAL ledger.posting_date = 'YYYY-MM-DD'`
  (`db.finance.date_postings`). Existing rows get the Almaty day of their `created_at`.
- `finance_periods`: the closed accounting periods (calendar months), closed in order. A
  trigger refuses any posting dated on or before the end of the latest one (SQLSTATE LG423),
  whoever writes it: corrections go to the open period.
- `ledger_daily_balances` + `balance_snapshots`: each account's posted debits and credits
  through the end of a day, taken on demand, by the worker's activity, and at period close.
- `chargebacks`: each provider's chargeback once, by its id at the provider, with how it was
  split between the player's wallet and a receivable, and its reversal.
- `player_risk_flags`: what the fraud engine should know about a player (a chargeback), open
  until cleared.
- `recon_case_actions`: every approval and execution of a case resolution, with who and why;
  a case may be `resolving` while its money goes back through a provider.

Revision ID: 0120
Revises: 0110
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0120"
down_revision: str | None = "0110"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTING_DATE = """
CREATE OR REPLACE FUNCTION ledger_posting_date() RETURNS date LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('ledger.posting_date', true), '')::date,
                    (now() AT TIME ZONE 'Asia/Almaty')::date)
$$
"""

# The books are closed through the end of the latest closed period: one index read per posting
# (the periods table holds one row per closed month). Periods close in order (db.finance), so
# nothing before that day is open either.
_REFUSE_CLOSED = """
CREATE OR REPLACE FUNCTION ledger_refuse_closed_period() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_through date;
BEGIN
    SELECT max(ends_on) INTO v_through FROM finance_periods;
    IF v_through IS NOT NULL AND NEW.posting_date <= v_through THEN
        RAISE EXCEPTION 'posting % is dated %, in a closed period (the books are closed through %)',
            NEW.key, NEW.posting_date, v_through
            USING ERRCODE = 'LG423';
    END IF;
    RETURN NEW;
END $$
"""

# Closing waits for every transaction still writing postings (SHARE conflicts with their ROW
# EXCLUSIVE) and keeps new ones out until it commits, so no posting dated in the period slips
# in after the close. Periods close in order: not while an earlier month has postings and is
# open. SECURITY DEFINER: the application's role may insert postings but not take that lock.
# Answers 'closed', 'already_closed' or 'earlier_open:YYYY-MM'.
_CLOSE = """
CREATE OR REPLACE FUNCTION finance_close_period(
    p_period text, p_starts date, p_ends date, p_at timestamptz, p_by text, p_name text,
    p_note text
) RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_through date;
    v_open date;
BEGIN
    LOCK TABLE ledger_transactions IN SHARE MODE;
    SELECT max(ends_on) INTO v_through FROM finance_periods;
    IF v_through IS NOT NULL AND p_ends <= v_through THEN
        RETURN 'already_closed';
    END IF;
    SELECT min(posting_date) INTO v_open FROM ledger_transactions
    WHERE posting_date < p_starts AND (v_through IS NULL OR posting_date > v_through);
    IF v_open IS NOT NULL THEN
        RETURN 'earlier_open:' || to_char(v_open, 'YYYY-MM');
    END IF;
    INSERT INTO finance_periods (period, starts_on, ends_on, closed_at, closed_by,
                                 closed_by_name, note)
    VALUES (p_period, p_starts, p_ends, p_at, p_by, p_name, p_note);
    RETURN 'closed';
END $$
"""


def upgrade() -> None:
    op.execute(_POSTING_DATE)
    op.add_column("ledger_transactions", sa.Column("posting_date", sa.Date, nullable=True))
    op.execute("ALTER TABLE ledger_transactions DISABLE TRIGGER ledger_transactions_immutable")
    op.execute(
        "UPDATE ledger_transactions "
        "SET posting_date = (created_at AT TIME ZONE 'Asia/Almaty')::date"
    )
    op.execute("ALTER TABLE ledger_transactions ENABLE TRIGGER ledger_transactions_immutable")
    op.execute(
        "ALTER TABLE ledger_transactions ALTER COLUMN posting_date SET DEFAULT "
        "ledger_posting_date(), ALTER COLUMN posting_date SET NOT NULL"
    )
    op.create_index("ix_ledger_transactions_posting_date", "ledger_transactions", ["posting_date"])

    op.create_table(
        "finance_periods",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(40), nullable=False),
        sa.Column("closed_by_name", sa.String(100), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.CheckConstraint("period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name="period_format"),
    )
    op.create_index("ix_finance_periods_ends_on", "finance_periods", ["ends_on"])
    op.execute(_REFUSE_CLOSED)
    op.execute(_CLOSE)
    op.execute(
        "CREATE TRIGGER ledger_transactions_open_period BEFORE INSERT ON ledger_transactions "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_closed_period()"
    )

    op.create_table(
        "balance_snapshots",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        # The newest transaction the snapshot saw: a later one dated on or before `day` makes
        # it stale (a posting dated back into an open period), and it is taken again.
        sa.Column("through_transaction_id", sa.BigInteger, nullable=False),
        sa.Column("accounts", sa.Integer, nullable=False),
    )
    op.create_table(
        "ledger_daily_balances",
        sa.Column(
            "day",
            sa.Date,
            sa.ForeignKey("balance_snapshots.day", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), primary_key=True
        ),
        sa.Column("debits_minor", sa.BigInteger, nullable=False),
        sa.Column("credits_minor", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "chargebacks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_chargeback_id", sa.String(64), nullable=False),
        sa.Column("deposit_id", sa.String(40), sa.ForeignKey("deposits.id"), nullable=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("business_date", sa.Date, nullable=True),
        sa.Column("wallet_minor", sa.BigInteger, nullable=False),
        sa.Column("receivable_minor", sa.BigInteger, nullable=False),
        sa.Column("transaction_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="charged_back"),
        sa.Column("reversal_amount_minor", sa.BigInteger, nullable=True),
        sa.Column("reversal_wallet_minor", sa.BigInteger, nullable=True),
        sa.Column("reversal_receivable_minor", sa.BigInteger, nullable=True),
        sa.Column("reversal_transaction_key", sa.String(200), nullable=True),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("provider", "provider_chargeback_id", name="uq_chargeback_provider_id"),
        sa.CheckConstraint("amount_minor > 0", name="chargeback_amount_positive"),
        sa.CheckConstraint(
            "wallet_minor >= 0 AND receivable_minor >= 0 "
            "AND wallet_minor + receivable_minor = amount_minor",
            name="chargeback_split",
        ),
        sa.CheckConstraint("status IN ('charged_back', 'reversed')", name="chargeback_status"),
        sa.CheckConstraint(
            "source IN ('manual', 'report', 'notification')", name="chargeback_source"
        ),
    )
    op.create_index("ix_chargebacks_player", "chargebacks", ["player_id", "created_at"])

    op.create_table(
        "player_risk_flags",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source_ref", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_reason", sa.String(200), nullable=True),
        sa.UniqueConstraint("player_id", "kind", "source_ref", name="uq_player_risk_flag"),
    )
    op.create_index(
        "ix_player_risk_flags_active",
        "player_risk_flags",
        ["player_id"],
        postgresql_where=sa.text("cleared_at IS NULL"),
    )

    op.create_table(
        "recon_case_actions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.BigInteger, sa.ForeignKey("recon_cases.id"), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_name", sa.String(100), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("transaction_key", sa.String(200), nullable=True),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "step IN ('approve', 'execute', 'settled', 'reopened')", name="case_action_step"
        ),
    )
    op.create_index("ix_recon_case_actions_case", "recon_case_actions", ["case_id", "id"])
    op.execute(
        "ALTER TABLE recon_cases DROP CONSTRAINT recon_cases_status_check, "
        "ADD CONSTRAINT recon_cases_status_check "
        "CHECK (status IN ('open', 'resolving', 'resolved'))"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE recon_cases DROP CONSTRAINT recon_cases_status_check, "
        "ADD CONSTRAINT recon_cases_status_check CHECK (status IN ('open', 'resolved'))"
    )
    op.drop_table("recon_case_actions")
    op.drop_table("player_risk_flags")
    op.drop_table("chargebacks")
    op.drop_table("ledger_daily_balances")
    op.drop_table("balance_snapshots")
    op.execute("DROP TRIGGER ledger_transactions_open_period ON ledger_transactions")
    op.execute("DROP FUNCTION ledger_refuse_closed_period()")
    op.execute(
        "DROP FUNCTION finance_close_period(text, date, date, timestamptz, text, text, text)"
    )
    op.drop_table("finance_periods")
    op.drop_index("ix_ledger_transactions_posting_date", table_name="ledger_transactions")
    op.drop_column("ledger_transactions", "posting_date")
    op.execute("DROP FUNCTION ledger_posting_date()")
