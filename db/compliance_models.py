"""Tables of the compliance rules (migration 0150): cool-offs, refusals, the financial-monitoring
report queue and the operations reported to the ESU. Persons are in `db.models.Person`."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, PrimaryKeyConstraint, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base


class CoolOff(Base):
    """A break of 24 hours to 6 weeks the player took; the latest end in force applies."""

    __tablename__ = "rg_cool_offs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    player_id: Mapped[str] = mapped_column(ForeignKey("players.id"))
    until: Mapped[datetime] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ComplianceRefusal(Base):
    """A registration, deposit or withdrawal a compliance rule refused, with its code."""

    __tablename__ = "compliance_refusals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500))
    register: Mapped[str | None] = mapped_column(String(32))
    iin: Mapped[str | None] = mapped_column(String(12))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id"))
    player_id: Mapped[str | None] = mapped_column(ForeignKey("players.id"))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FmReport(Base):
    """A financial-monitoring report in the queue: one payout at or over the threshold, or a
    split series reaching it."""

    __tablename__ = "fm_reports"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    iin: Mapped[str] = mapped_column(String(12))
    full_name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    threshold_minor: Mapped[int] = mapped_column(BigInteger)
    payments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    first_paid_at: Mapped[datetime] = mapped_column()
    last_paid_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    submitted_at: Mapped[datetime | None] = mapped_column()
    submitted_by: Mapped[str | None] = mapped_column(String(40))
    submitted_by_name: Mapped[str | None] = mapped_column(String(100))
    submission_reference: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FmReportPayment(Base):
    """A payout's place in a report: at most one report of each kind."""

    __tablename__ = "fm_report_payments"
    __table_args__ = (PrimaryKeyConstraint("payment_id", "kind", name="pk_fm_report_payments"),)

    report_id: Mapped[str] = mapped_column(ForeignKey("fm_reports.id"))
    kind: Mapped[str] = mapped_column(String(16))
    payment_id: Mapped[str] = mapped_column(String(40))


class EsuOperation(Base):
    """An operation the ESU recorded, with its receipt: reported once."""

    __tablename__ = "esu_operations"

    operation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    payment_id: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column()
    receipt_id: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(server_default=func.now())
