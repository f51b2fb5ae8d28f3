"""Anti-fraud: decisions with their signals, responsible-gaming limits, self-exclusions, alerts,
and the indexes the fact queries and the monitor read through.

Revision ID: 0010
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNALS = ("card_key", "device_id", "ip", "destination_key")


def upgrade() -> None:
    op.create_table(
        "fraud_decisions",
        sa.Column("payment_id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("player_id", sa.String(40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("card_key", sa.String(16)),
        sa.Column("card_country", sa.String(2)),
        sa.Column("device_id", sa.String(128)),
        sa.Column("ip", sa.String(64)),
        sa.Column("ip_country", sa.String(2)),
        sa.Column("destination_key", sa.String(64)),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("reasons", postgresql.JSONB, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index(
        "ix_fraud_decisions_player",
        "fraud_decisions",
        ["player_id", "kind", "created_at"],
        postgresql_include=["amount_minor", "ip_country", "device_id"],
    )
    for column in _SIGNALS:
        op.create_index(
            f"ix_fraud_decisions_{column}",
            "fraud_decisions",
            [column, "kind", "created_at"],
            postgresql_include=["player_id", "amount_minor"],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    op.create_table(
        "rg_deposit_limits",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("amount_minor", sa.BigInteger),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("period IN ('daily', 'weekly', 'monthly')", name="rg_limit_period"),
        sa.CheckConstraint("amount_minor IS NULL OR amount_minor > 0", name="rg_limit_positive"),
    )
    op.create_index(
        "ix_rg_deposit_limits_player",
        "rg_deposit_limits",
        ["player_id", "period", "effective_from"],
    )
    op.create_table(
        "rg_self_exclusions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(200)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_rg_self_exclusions_player", "rg_self_exclusions", ["player_id", "until"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("handled_at", sa.DateTime(timezone=True)),
        sa.Column("handled_by", sa.String(128)),
        sa.Column("note", sa.String(500)),
        sa.CheckConstraint("status IN ('open', 'handled')", name="alert_status"),
    )
    op.create_index("ix_alerts_status_created", "alerts", ["status", "created_at"])
    # Fact queries: deposit sums for responsible-gaming limits read only this index.
    op.create_index(
        "ix_deposits_player_created_cover",
        "deposits",
        ["player_id", "created_at"],
        postgresql_include=["amount_minor", "status", "currency"],
    )
    # Cycling: the wallet's entries from a transaction id on, and that id from a time.
    op.create_index(
        "ix_ledger_entries_account_tx",
        "ledger_entries",
        ["account_id", "transaction_id"],
        postgresql_include=["amount_minor", "side"],
    )
    op.create_index("ix_ledger_transactions_created", "ledger_transactions", ["created_at"])
    # Monitoring: provider attempts by time.
    op.create_index(
        "ix_payment_attempts_created",
        "payment_attempts",
        ["created_at"],
        postgresql_include=["provider", "outcome", "latency_ms"],
    )


def downgrade() -> None:
    op.drop_index("ix_payment_attempts_created", "payment_attempts")
    op.drop_index("ix_ledger_transactions_created", "ledger_transactions")
    op.drop_index("ix_ledger_entries_account_tx", "ledger_entries")
    op.drop_index("ix_deposits_player_created_cover", "deposits")
    op.drop_table("alerts")
    op.drop_table("rg_self_exclusions")
    op.drop_table("rg_deposit_limits")
    op.drop_table("fraud_decisions")
