"""Late payments and the callbacks already taken.

`late_payments`: money a provider reports (and confirms on inquiry) for a deposit that had
already expired, failed, or succeeded at another provider. One case per deposit and provider,
opened with a critical alert and resolved once by the configured policy: credited to the player
(the deposit's own credit posting, so never twice) or a refund asked of the provider.

`webhook_receipts`: each verified callback once, by provider and event id (or the hash of its
body when it has none): the same delivery again is answered 200 and changes nothing.

Revision ID: 0090
Revises: 0080
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0090"
down_revision: str | None = "0080"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "late_payments",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("deposit_id", sa.String(40), sa.ForeignKey("deposits.id"), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("deposit_status", sa.String(32), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(32), nullable=False, server_default="open"),
        sa.Column("ledger_transaction_id", sa.BigInteger, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("deposit_id", "provider", name="uq_late_payment_deposit_provider"),
    )
    op.create_table(
        "webhook_receipts",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("event_key", sa.String(128), primary_key=True),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_table("late_payments")
