"""What every payment leaves behind besides its own row: provider attempts, status events and
ledger transactions, all keyed by the payment id. Deposits and withdrawals read it one way."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LedgerTransaction, PaymentAttempt, PaymentEvent


@dataclass(frozen=True)
class Trail:
    attempts: list[PaymentAttempt]
    events: list[PaymentEvent]
    ledger: list[LedgerTransaction]


async def payment_trail(session: AsyncSession, *, payment_id: str) -> Trail:
    attempts = await session.scalars(
        select(PaymentAttempt)
        .where(PaymentAttempt.payment_id == payment_id)
        .order_by(PaymentAttempt.created_at, PaymentAttempt.id)
    )
    events = await session.scalars(
        select(PaymentEvent)
        .where(PaymentEvent.payment_id == payment_id)
        .order_by(PaymentEvent.occurred_at, PaymentEvent.id)
    )
    ledger = await session.scalars(
        select(LedgerTransaction)
        .where(LedgerTransaction.payment_id == payment_id)
        .order_by(LedgerTransaction.id)
    )
    return Trail(list(attempts.all()), list(events.all()), list(ledger.all()))
