"""Posting a balanced transaction exactly once.

Accounts are locked in code order (no deadlock between two postings), the idempotency key is
checked only after the locks are held (so a concurrent duplicate sees the first one's commit),
and balance flags are checked against the locked counters.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LedgerAccount, LedgerEntry, LedgerTransaction
from domain.ledger import Side, TransactionSpec


class LedgerKeyConflict(Exception):
    """The key was posted before with different content: never retried."""


class InsufficientFunds(Exception):
    """The posting would take an account past its balance flag."""


@dataclass(frozen=True)
class PostedTransaction:
    id: int
    key: str
    created: bool


async def post_transaction(session: AsyncSession, *, spec: TransactionSpec) -> PostedTransaction:
    """Post `spec` inside the caller's database transaction; the caller commits."""
    accounts = {entry.account.code: entry.account for entry in spec.entries}
    await session.execute(
        insert(LedgerAccount)
        .values(
            [
                {
                    "code": ref.code,
                    "type": ref.type.value,
                    "currency": ref.currency,
                    "owner_id": ref.owner_id,
                    "debits_must_not_exceed_credits": ref.debits_must_not_exceed_credits,
                    "posted_debits": 0,
                    "posted_credits": 0,
                    "pending_debits": 0,
                    "pending_credits": 0,
                }
                for ref in accounts.values()
            ]
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )
    locked = {
        account.code: account
        for account in (
            await session.scalars(
                select(LedgerAccount)
                .where(LedgerAccount.code.in_(sorted(accounts)))
                .order_by(LedgerAccount.code)
                .with_for_update()
            )
        ).all()
    }

    existing = await session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.key == spec.key)
    )
    if existing is not None:
        if existing.content_hash != spec.content_hash:
            raise LedgerKeyConflict(spec.key)
        return PostedTransaction(id=existing.id, key=spec.key, created=False)

    for entry in spec.entries:
        account = locked[entry.account.code]
        if entry.side is Side.DEBIT:
            account.posted_debits += entry.amount_minor
        else:
            account.posted_credits += entry.amount_minor
    for account in locked.values():
        owed = account.posted_debits + account.pending_debits
        if account.debits_must_not_exceed_credits and owed > account.posted_credits:
            raise InsufficientFunds(account.code)

    transaction = LedgerTransaction(
        key=spec.key, kind=spec.kind, payment_id=spec.payment_id, content_hash=spec.content_hash
    )
    session.add(transaction)
    await session.flush()
    session.add_all(
        LedgerEntry(
            transaction_id=transaction.id,
            account_id=locked[entry.account.code].id,
            side=entry.side.value,
            amount_minor=entry.amount_minor,
            currency=entry.account.currency,
        )
        for entry in spec.entries
    )
    await session.flush()
    return PostedTransaction(id=transaction.id, key=spec.key, created=True)


async def transactions_for_payment(session: AsyncSession, *, payment_id: str) -> list[str]:
    return list(
        (
            await session.scalars(
                select(LedgerTransaction.key)
                .where(LedgerTransaction.payment_id == payment_id)
                .order_by(LedgerTransaction.id)
            )
        ).all()
    )
