"""The schema. Migrations in `db/migrations` create it; this module lets code query it typed."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, datetime: DateTime(timezone=True)}


class Person(Base):
    """One person, one IIN (migration 0150): every player account belongs to one."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    iin: Mapped[str] = mapped_column(String(12), unique=True)
    birth_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Player(Base):
    __tablename__ = "players"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id", name="uq_players_merchant_external_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128))
    iin: Mapped[str] = mapped_column(String(12), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Migration 0150: the person of the IIN (set by the trigger `players_person` when not
    # given), the merchant whose key registered the account, and the account it was linked to.
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), server_default=FetchedValue())
    merchant_id: Mapped[str] = mapped_column(String(64), server_default="default")
    linked_to: Mapped[str | None] = mapped_column(ForeignKey("players.id"))


class Deposit(Base):
    __tablename__ = "deposits"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="deposit_amount_positive"),
        Index("ix_deposits_player_created", "player_id", "created_at"),
        Index("ix_deposits_status_updated", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(64))
    card: Mapped[dict[str, Any] | None] = mapped_column()
    client: Mapped[dict[str, Any] | None] = mapped_column()
    risk: Mapped[dict[str, Any] | None] = mapped_column()
    details: Mapped[dict[str, Any] | None] = mapped_column()  # method details, never card data
    next_action: Mapped[dict[str, Any] | None] = mapped_column()  # while requires_action
    workflow_id: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set while the workflow cannot move on (migration 0080): the step and why.
    stuck_reason: Mapped[str | None] = mapped_column(String(200))
    stuck_since: Mapped[datetime | None] = mapped_column()


class PaymentEvent(Base):
    """Each status a payment reached, once: the audit trail shown as `events[]`."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("payment_id", "status", name="uq_payment_event_status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column()


class PaymentAttempt(Base):
    """One call to a provider on behalf of a payment, keyed by the activity attempt number."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        UniqueConstraint("payment_id", "step", "attempt_no", "provider", name="uq_payment_attempt"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(String(40), index=True)
    step: Mapped[str] = mapped_column(String(32))
    attempt_no: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    unified_code: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ProviderCircuit(Base):
    """A provider's circuit breaker, shared by every worker (domain/routing.py decides)."""

    __tablename__ = "provider_circuits"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), server_default="closed")
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    opened_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(40))
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    owner_id: Mapped[str | None] = mapped_column(String(64), index=True)
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(Boolean, default=False)
    posted_debits: Mapped[int] = mapped_column(BigInteger, default=0)
    posted_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_debits: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LedgerTransaction(Base):
    """Immutable once written (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(40), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16), server_default="posted")
    pending_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_transactions.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LedgerEntry(Base):
    """Immutable once written (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="entry_amount_positive"),
        CheckConstraint("side IN ('D', 'C')", name="entry_side"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    side: Mapped[str] = mapped_column(String(1))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    """An API key: only the SHA-256 of its secret part is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column()
    # Refused from then on (0130); rotation sets it on the old key after a grace period.
    expires_at: Mapped[datetime | None] = mapped_column()
    # The merchant whose players this key registers (0150); rotation keeps it.
    merchant_id: Mapped[str] = mapped_column(String(64), server_default="default")


class Withdrawal(Base):
    __tablename__ = "withdrawals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(32))
    destination: Mapped[dict[str, Any]] = mapped_column()
    """Display form only: card token/BIN/last four, IBAN, wallet account or phone."""
    destination_fingerprint: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(64))
    risk: Mapped[dict[str, Any] | None] = mapped_column()
    client: Mapped[dict[str, Any] | None] = mapped_column()
    """Device and IP the request came from (fraud rules); never shown to other players."""
    approvals_needed: Mapped[int] = mapped_column(Integer)
    escalated_at: Mapped[datetime | None] = mapped_column()
    workflow_id: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    stuck_reason: Mapped[str | None] = mapped_column(String(200))
    stuck_since: Mapped[datetime | None] = mapped_column()
    # Winnings are paid within 3 calendar days (0150: set on insert by a trigger); a day
    # before, operators are warned; at the deadline it is escalated.
    payout_deadline: Mapped[datetime | None] = mapped_column(server_default=FetchedValue())
    deadline_warned_at: Mapped[datetime | None] = mapped_column()
    deadline_escalated_at: Mapped[datetime | None] = mapped_column()


class WithdrawalReview(Base):
    """An operator's approve/reject (or the player's cancel), with who and why."""

    __tablename__ = "withdrawal_reviews"
    __table_args__ = (
        UniqueConstraint("withdrawal_id", "action", "operator_id", name="uq_withdrawal_review"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    withdrawal_id: Mapped[str] = mapped_column(ForeignKey("withdrawals.id"))
    action: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[str] = mapped_column(String(40))
    operator_name: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column()
