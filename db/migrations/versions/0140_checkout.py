"""Hosted checkout: the player's payment sessions and the funnel of what they did on the page.

- `checkout_sessions`: one per `POST /v1/checkout/sessions` (deposit or withdrawal), bound to a
  player, a currency and an amount range, expiring; the URL's token is kept only as its SHA-256.
  The page's progress (method chosen, the attempts' payment ids, a submission under way, the
  last refusal code) lives on the row; card data never does.
- `checkout_events`: `opened` (once per session), `method_chosen`, `submitted` (with the
  payment it created): the funnel of `GET /v1/analytics/checkout-funnel`, whose last step,
  succeeded, is read from the payments.

The grants come from 0130's default privileges (the tables are created as the owner role).

Revision ID: 0140
Revises: 0130
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0140"
down_revision: str | Sequence[str] | None = "0130"
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
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("player_id", sa.String(40), sa.ForeignKey("players.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=True),
        sa.Column("min_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("max_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_presets", JSONB, nullable=False, server_default="[]"),
        sa.Column("methods", JSONB, nullable=True),
        sa.Column("return_url", sa.String(500), nullable=False),
        sa.Column("help_url", sa.String(500), nullable=True),
        sa.Column("locale", sa.String(2), nullable=True),
        sa.Column("merchant_key_id", sa.String(40), nullable=False),
        sa.Column("chosen_method", sa.String(32), nullable=True),
        sa.Column("chosen_amount_minor", sa.BigInteger, nullable=True),
        sa.Column("payment_id", sa.String(40), nullable=True),
        sa.Column("payment_ids", JSONB, nullable=False, server_default="[]"),
        sa.Column("claim", sa.String(64), nullable=True),
        _at("claimed_at"),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("details", JSONB, nullable=True),
        _at("opened_at"),
        _at("completed_at"),
        _at("expires_at", nullable=False),
        _at("created_at", nullable=False, now=True),
        _at("updated_at", nullable=False, now=True),
        sa.CheckConstraint("kind IN ('deposit', 'withdrawal')", name="checkout_kind"),
        sa.CheckConstraint(
            "min_amount_minor > 0 AND max_amount_minor >= min_amount_minor",
            name="checkout_amount_range",
        ),
        sa.CheckConstraint(
            "amount_minor IS NULL OR amount_minor BETWEEN min_amount_minor AND max_amount_minor",
            name="checkout_amount_in_range",
        ),
    )
    op.create_index("ix_checkout_sessions_player", "checkout_sessions", ["player_id", "created_at"])
    op.create_table(
        "checkout_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id", sa.String(40), sa.ForeignKey("checkout_sessions.id"), nullable=False
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("payment_id", sa.String(40), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=True),
        _at("created_at", nullable=False, now=True),
        sa.CheckConstraint(
            "kind IN ('opened', 'method_chosen', 'submitted')", name="checkout_event_kind"
        ),
    )
    op.create_index("ix_checkout_events_created", "checkout_events", ["created_at"])
    op.create_index("ix_checkout_events_session", "checkout_events", ["session_id"])
    # One `opened` per session, however many tabs open it at once.
    op.create_index(
        "uq_checkout_events_opened",
        "checkout_events",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'opened'"),
    )


def downgrade() -> None:
    op.drop_table("checkout_events")
    op.drop_table("checkout_sessions")
