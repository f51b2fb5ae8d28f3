"""Withdrawals and the operators' review decisions on them.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("destination", postgresql.JSONB, nullable=False),
        sa.Column("destination_fingerprint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.String(200)),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("risk", postgresql.JSONB),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True)),
        sa.Column("workflow_id", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="withdrawal_amount_positive"),
    )
    op.create_index("ix_withdrawals_status_updated", "withdrawals", ["status", "updated_at"])
    op.create_index("ix_withdrawals_player_created", "withdrawals", ["player_id", "created_at"])
    op.create_index(
        "ix_withdrawals_destination", "withdrawals", ["destination_fingerprint", "player_id"]
    )
    op.create_table(
        "withdrawal_reviews",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("withdrawal_id", sa.String(40), sa.ForeignKey("withdrawals.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("operator_id", sa.String(40), nullable=False),
        sa.Column("operator_name", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("withdrawal_id", "action", "operator_id", name="uq_withdrawal_review"),
    )


def downgrade() -> None:
    op.drop_table("withdrawal_reviews")
    op.drop_table("withdrawals")
