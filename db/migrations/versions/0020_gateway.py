"""Payment gateway: provider circuit breakers, deposit next_action and method details, unified
error codes on attempts; an attempt is unique per provider so a cascade can number its tries.

Revision ID: 0020
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_circuits",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="closed"),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.add_column("deposits", sa.Column("details", postgresql.JSONB(), nullable=True))
    op.add_column("deposits", sa.Column("next_action", postgresql.JSONB(), nullable=True))
    op.add_column("payment_attempts", sa.Column("unified_code", sa.String(64), nullable=True))
    op.drop_constraint("uq_payment_attempt", "payment_attempts", type_="unique")
    op.create_unique_constraint(
        "uq_payment_attempt", "payment_attempts", ["payment_id", "step", "attempt_no", "provider"]
    )
    op.create_index(
        "ix_payment_attempts_provider_created", "payment_attempts", ["provider", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_payment_attempts_provider_created", table_name="payment_attempts")
    op.drop_constraint("uq_payment_attempt", "payment_attempts", type_="unique")
    op.create_unique_constraint(
        "uq_payment_attempt", "payment_attempts", ["payment_id", "step", "attempt_no"]
    )
    op.drop_column("payment_attempts", "unified_code")
    op.drop_column("deposits", "next_action")
    op.drop_column("deposits", "details")
    op.drop_table("provider_circuits")
