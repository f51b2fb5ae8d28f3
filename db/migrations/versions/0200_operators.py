"""Operators are people: `operators` (name, e-mail, active) and `operator_keys` (issue 20).

An operator or admin API key belongs to at most one operator (`operator_keys`, one row per
key); a person may hold several keys (rotation, a laptop and a phone). Decisions (approving or
rejecting a withdrawal or a held deposit, resolving a reconciliation case) are made by a person:
the API refuses them from a key that belongs to no active operator, admin keys included, and
four eyes are two different operators, never two keys of one. `python -m api.keys
create-operator`, `assign`, `deactivate-operator` (which also revokes the person's keys).

The grants come from 0130's default privileges (the tables are created as the owner role): the
application role reads and writes them (the CLI runs as it), analytics reads them.

Revision ID: 0200
Revises: 0190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0200"
down_revision: str | Sequence[str] | None = "0190"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("length(btrim(name)) > 0", name="operators_name_not_blank"),
        sa.CheckConstraint("email LIKE '_%@_%'", name="operators_email_shape"),
    )
    # One person, one e-mail address (case does not make another person).
    op.create_index("operators_email_key", "operators", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "operator_keys",
        sa.Column(
            "key_id",
            sa.String(40),
            sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("operator_id", sa.String(40), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column(
            "assigned_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("operator_keys_operator", "operator_keys", ["operator_id"])


def downgrade() -> None:
    op.drop_table("operator_keys")
    op.drop_index("operators_email_key", table_name="operators")
    op.drop_table("operators")
