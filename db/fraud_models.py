"""Tables of the anti-fraud engine: decisions (with the signals they were made on, the facts and
each rule's result), responsible-gaming limits and self-exclusions, monitoring alerts (migration
0010), block and allow lists with their audit trail, and deposits held for review (0160)."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import CIDR, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base


class FraudDecision(Base):
    """One decision per payment, with the identifiers other payments are linked by.

    `created_at` is the payment's creation time, so velocity windows line up with the payments'.
    """

    __tablename__ = "fraud_decisions"
    __table_args__ = (
        Index(
            "ix_fraud_decisions_player",
            "player_id",
            "kind",
            "created_at",
            postgresql_include=["amount_minor", "ip_country", "device_id"],
        ),
        *(
            Index(
                f"ix_fraud_decisions_{column}",
                column,
                "kind",
                "created_at",
                postgresql_include=["player_id", "amount_minor"],
                postgresql_where=text(f"{column} IS NOT NULL"),
            )
            for column in ("card_key", "device_id", "ip", "destination_key")
        ),
    )

    payment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    player_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(32))
    card_key: Mapped[str | None] = mapped_column(String(64))  # fingerprint (0160) or BIN:last4
    card_country: Mapped[str | None] = mapped_column(String(2))
    device_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    ip_country: Mapped[str | None] = mapped_column(String(2))
    destination_key: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSONB)
    version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The explanation (0160): the facts the rules read, every rule's result, the rule set's hash.
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    rule_results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    rules_hash: Mapped[str | None] = mapped_column(String(64))


class DepositLimit(Base):
    """A responsible-gaming deposit cap; the latest row in force per period applies."""

    __tablename__ = "rg_deposit_limits"
    __table_args__ = (
        Index("ix_rg_deposit_limits_player", "player_id", "period", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    period: Mapped[str] = mapped_column(String(8))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)  # None removes the limit
    currency: Mapped[str] = mapped_column(String(3))
    effective_from: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SelfExclusion(Base):
    __tablename__ = "rg_self_exclusions"
    __table_args__ = (Index("ix_rg_self_exclusions_player", "player_id", "until"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    until: Mapped[datetime] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Alert(Base):
    """Something an operator should look at; raised once per `dedupe_key`."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    handled_at: Mapped[datetime | None] = mapped_column()
    handled_by: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(500))


class RiskListEntry(Base):
    """A block or allow list entry; removed (never deleted) by an operator, or expired."""

    __tablename__ = "risk_list_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    list_type: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(128))
    network: Mapped[str | None] = mapped_column(CIDR)
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column()
    removed_at: Mapped[datetime | None] = mapped_column()
    removed_by: Mapped[str | None] = mapped_column(String(128))
    removed_reason: Mapped[str | None] = mapped_column(String(500))


class RiskListEvent(Base):
    """The audit trail of the lists: who added, changed or removed an entry, when and why."""

    __tablename__ = "risk_list_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("risk_list_entries.id"))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    at: Mapped[datetime] = mapped_column(server_default=func.now())


class DepositReview(Base):
    """A deposit the engine sent to review: held (not credited) or credited with the person's
    withdrawals blocked, until an operator approves or rejects it."""

    __tablename__ = "deposit_reviews"

    deposit_id: Mapped[str] = mapped_column(ForeignKey("deposits.id"), primary_key=True)
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_by_name: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(500))
