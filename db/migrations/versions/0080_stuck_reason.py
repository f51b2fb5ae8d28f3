"""Payments a workflow could not move on: why, and since when.

When a workflow's bounded retries run out (the database refused a write, a provider left a
payment's outcome unknown past every inquiry), it records the step and the reason here and
raises an alert; `GET /v1/ops/stuck` lists such payments whatever their age. Cleared when the
step succeeds later.

Revision ID: 0080
Revises: 0070
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0080"
down_revision: str | None = "0070"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("deposits", "withdrawals"):
        op.add_column(table, sa.Column("stuck_reason", sa.String(200), nullable=True))
        op.add_column(table, sa.Column("stuck_since", sa.DateTime(timezone=True), nullable=True))
        op.create_index(
            f"ix_{table}_stuck",
            table,
            ["stuck_since"],
            postgresql_where=sa.text("stuck_reason IS NOT NULL"),
        )


def downgrade() -> None:
    for table in ("deposits", "withdrawals"):
        op.drop_index(f"ix_{table}_stuck", table_name=table)
        op.drop_column(table, "stuck_since")
        op.drop_column(table, "stuck_reason")
