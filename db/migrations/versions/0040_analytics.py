"""Indexes for analytics and operations: time-range scans and first deposits per player.

Revision ID: 0040
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0040"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deposits_created", "deposits", ["created_at"])
    op.create_index("ix_withdrawals_created", "withdrawals", ["created_at"])
    op.create_index(
        "ix_deposits_first_succeeded",
        "deposits",
        ["player_id", "created_at"],
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.create_index("ix_payment_attempts_provider", "payment_attempts", ["provider", "step"])


def downgrade() -> None:
    op.drop_index("ix_payment_attempts_provider", table_name="payment_attempts")
    op.drop_index("ix_deposits_first_succeeded", table_name="deposits")
    op.drop_index("ix_withdrawals_created", table_name="withdrawals")
    op.drop_index("ix_deposits_created", table_name="deposits")
