"""Refunds of deposits: full or partial, through the connector that took the payment.

The amount is held on the player's wallet when the refund is asked for (the pending transfer
`refund:{id}:hold`), then posted when the provider confirms the refund or released when it
refuses it. A refund whose outcome the provider left unknown keeps its hold and is flagged
stuck: refunds are not idempotent at most providers, so it is never sent twice.

Revision ID: 0100
Revises: 0090
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0100"
down_revision: str | None = "0090"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("deposit_id", sa.String(40), sa.ForeignKey("deposits.id"), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="pending"),
        sa.Column("status_reason", sa.String(200), nullable=True),
        sa.Column("workflow_id", sa.String(80), nullable=False),
        sa.Column("stuck_reason", sa.String(200), nullable=True),
        sa.Column("stuck_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("amount_minor > 0", name="refund_amount_positive"),
    )
    op.create_index("ix_refunds_deposit", "refunds", ["deposit_id"])


def downgrade() -> None:
    op.drop_index("ix_refunds_deposit", table_name="refunds")
    op.drop_table("refunds")
