"""Tables of the hosted checkout (migration 0140): sessions and their funnel events."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base


class CheckoutSession(Base):
    """One player's payment page: single use, bound to the player and an amount range.

    The token in the page's URL is not stored: only its SHA-256 (`token_sha256`), so the table
    alone opens no page. Card data is never written here: a card goes straight to the deposit.
    """

    __tablename__ = "checkout_sessions"
    __table_args__ = (Index("ix_checkout_sessions_player", "player_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # deposit | withdrawal
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)  # fixed by the casino
    min_amount_minor: Mapped[int] = mapped_column(BigInteger)
    max_amount_minor: Mapped[int] = mapped_column(BigInteger)
    amount_presets: Mapped[list[int]] = mapped_column(JSONB)
    methods: Mapped[list[str] | None] = mapped_column(JSONB)  # the casino's choice; None: all
    return_url: Mapped[str] = mapped_column(String(500))
    help_url: Mapped[str | None] = mapped_column(String(500))
    locale: Mapped[str | None] = mapped_column(String(2))
    merchant_key_id: Mapped[str] = mapped_column(String(40))
    # The player's way through the page.
    chosen_method: Mapped[str | None] = mapped_column(String(32))
    chosen_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    payment_id: Mapped[str | None] = mapped_column(String(40))  # the latest attempt's
    payment_ids: Mapped[list[str]] = mapped_column(JSONB)  # every attempt, oldest first
    claim: Mapped[str | None] = mapped_column(String(64))  # a submission under way (its nonce)
    claimed_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(64))  # a code shown once, in words
    details: Mapped[dict[str, Any] | None] = mapped_column()  # never card data
    opened_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CheckoutEvent(Base):
    """The funnel: `opened` (once per session), `method_chosen`, `submitted` (with the payment
    it created); whether it succeeded is read from the payment itself."""

    __tablename__ = "checkout_events"
    __table_args__ = (
        Index("ix_checkout_events_created", "created_at"),
        Index("ix_checkout_events_session", "session_id"),
        Index(
            "uq_checkout_events_opened",
            "session_id",
            unique=True,
            postgresql_where=text("kind = 'opened'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("checkout_sessions.id"))
    kind: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(32))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    attempt: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
