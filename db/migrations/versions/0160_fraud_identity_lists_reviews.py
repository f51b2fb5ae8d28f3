"""Anti-fraud a risk team can trust (issue 18): card identity, explanations, lists, held reviews.

- `fraud_decisions.card_key` widens to 64 characters: a card is now its fingerprint (HMAC-SHA256
  of the PAN under a secret, hex), computed in the API before tokenization; rows written before
  keep their `BIN:last4` key. Each decision keeps the facts it used (`facts`), every configured
  rule's result (`rule_results`: hit, action, score, shadow, suppressed) and the content hash
  of the rule set (`rules_hash`) beside its version label.
- `risk_list_entries`: block and allow lists of IINs, card fingerprints, devices, IPs or CIDR
  ranges (`network`), IBANs, phones and wallet accounts, with a reason, the operator who added
  it, an optional expiry and a removal (never deleted); `risk_list_events` is their audit trail.
- `deposit_reviews`: a deposit the engine sent to review, how it is held (`hold`: not credited
  until approved; `credit`: credited, the person's withdrawals blocked until approved), and the
  operator's decision.

The grants come from 0130's default privileges (the tables are created as the owner role).

Revision ID: 0160
Revises: 0150
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import CIDR, JSONB

revision: str = "0160"
down_revision: str | Sequence[str] | None = "0150"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )


def upgrade() -> None:
    op.alter_column("fraud_decisions", "card_key", type_=sa.String(64), existing_type=sa.String(16))
    op.add_column("fraud_decisions", sa.Column("facts", JSONB, nullable=True))
    op.add_column("fraud_decisions", sa.Column("rule_results", JSONB, nullable=True))
    op.add_column("fraud_decisions", sa.Column("rules_hash", sa.String(64), nullable=True))
    # No index on created_at alone: the planner would take it for the per-player look-ups (a
    # backward scan of every decision); backtests, an offline tool, read the table in order.

    op.create_table(
        "risk_list_entries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("list_type", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("network", CIDR, nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _at("created_at", nullable=False, now=True),
        _at("expires_at"),
        _at("removed_at"),
        sa.Column("removed_by", sa.String(128), nullable=True),
        sa.Column("removed_reason", sa.String(500), nullable=True),
        sa.CheckConstraint("list_type IN ('block', 'allow')", name="risk_list_type"),
        sa.CheckConstraint(
            "kind IN ('iin', 'card', 'device', 'ip', 'iban', 'phone', 'wallet')",
            name="risk_list_kind",
        ),
        sa.CheckConstraint("(kind = 'ip') = (network IS NOT NULL)", name="risk_list_network"),
    )
    # One live entry per list, kind and value; the decision's look-up reads this index.
    op.create_index(
        "ux_risk_list_live",
        "risk_list_entries",
        ["kind", "value", "list_type"],
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    op.create_index(
        "ix_risk_list_networks",
        "risk_list_entries",
        ["network"],
        postgresql_using="gist",
        postgresql_ops={"network": "inet_ops"},
        postgresql_where=sa.text("removed_at IS NULL AND network IS NOT NULL"),
    )
    op.create_table(
        "risk_list_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("risk_list_entries.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        _at("at", nullable=False, now=True),
        sa.CheckConstraint("action IN ('added', 'updated', 'removed')", name="risk_list_action"),
    )
    op.create_index("ix_risk_list_events_entry", "risk_list_events", ["entry_id", "id"])

    op.create_table(
        "deposit_reviews",
        sa.Column("deposit_id", sa.String(40), sa.ForeignKey("deposits.id"), primary_key=True),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("reasons", JSONB, nullable=False, server_default="[]"),
        _at("created_at", nullable=False, now=True),
        _at("decided_at"),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_by_name", sa.String(100), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.CheckConstraint("mode IN ('hold', 'credit')", name="deposit_review_mode"),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name="deposit_review_status"
        ),
    )
    op.create_index("ix_deposit_reviews_status", "deposit_reviews", ["status", "created_at"])
    # Withdrawals of a person with a credited deposit still under review (or rejected) wait.
    op.create_index(
        "ix_deposit_reviews_blocking",
        "deposit_reviews",
        ["player_id"],
        postgresql_where=sa.text("status <> 'approved'"),
    )


def downgrade() -> None:
    op.drop_table("deposit_reviews")
    op.drop_table("risk_list_events")
    op.drop_table("risk_list_entries")
    for column in ("rules_hash", "rule_results", "facts"):
        op.drop_column("fraud_decisions", column)
    op.alter_column(
        "fraud_decisions",
        "card_key",
        type_=sa.String(16),
        existing_type=sa.String(64),
        postgresql_using="left(card_key, 16)",
    )
