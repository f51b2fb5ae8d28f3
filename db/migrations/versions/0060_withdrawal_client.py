"""Withdrawals remember the client (device, IP) they were requested from, for the fraud rules.

Revision ID: 0060
Revises: 0050
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0060"
down_revision: str | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("withdrawals", sa.Column("client", postgresql.JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("withdrawals", "client")
