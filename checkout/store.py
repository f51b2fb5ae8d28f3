"""Checkout sessions and funnel events in PostgreSQL, and the facts the pages are built from."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.models import CheckoutEvent, CheckoutSession
from checkout.payout import NOT_WITHDRAWN, DepositFact
from db.models import Deposit, Withdrawal

CLAIM_STALE = timedelta(seconds=90)  # a submission that never finished (the process died)


async def by_token_digest(session: AsyncSession, digest: str) -> CheckoutSession | None:
    found: CheckoutSession | None = await session.scalar(
        select(CheckoutSession).where(CheckoutSession.token_sha256 == digest)
    )
    return found


async def mark_opened(session: AsyncSession, row: CheckoutSession, *, now: datetime) -> None:
    """The funnel's first step, once per session however many times the page is opened."""
    if row.opened_at is not None:
        return
    inserted = await session.execute(
        insert(CheckoutEvent)
        .values(session_id=row.id, kind="opened", created_at=now)
        .on_conflict_do_nothing(
            index_elements=["session_id"], index_where=CheckoutEvent.kind == "opened"
        )
        .returning(CheckoutEvent.id)
    )
    if inserted.first() is not None:
        await session.execute(
            update(CheckoutSession).where(CheckoutSession.id == row.id).values(opened_at=now)
        )


async def record_event(
    session: AsyncSession,
    *,
    session_id: str,
    kind: str,
    now: datetime,
    method: str | None = None,
    payment_id: str | None = None,
    attempt: int | None = None,
) -> None:
    session.add(
        CheckoutEvent(
            session_id=session_id,
            kind=kind,
            method=method,
            payment_id=payment_id,
            attempt=attempt,
            created_at=now,
        )
    )


async def methods_used(session: AsyncSession, *, player_id: str) -> list[str]:
    """The methods the player paid with, the most recently used first."""
    rows = await session.execute(
        select(Deposit.method, func.max(Deposit.created_at).label("last"))
        .where(Deposit.player_id == player_id, Deposit.status == "succeeded")
        .group_by(Deposit.method)
        .order_by(func.max(Deposit.created_at).desc())
    )
    return [str(row.method) for row in rows]


async def deposit_facts(session: AsyncSession, *, player_id: str) -> list[DepositFact]:
    """The player's succeeded deposits, newest first (closed loop)."""
    rows = await session.scalars(
        select(Deposit)
        .where(Deposit.player_id == player_id, Deposit.status == "succeeded")
        .order_by(Deposit.created_at.desc())
        .limit(500)
    )
    return [
        DepositFact(
            id=d.id,
            method=d.method,
            amount_minor=d.amount_minor,
            card=d.card,
            account=(d.details or {}).get("account"),
        )
        for d in rows
    ]


async def withdrawn_by_method(
    session: AsyncSession, *, player_id: str, currency: str
) -> dict[str, int]:
    rows = await session.execute(
        select(Withdrawal.method, func.sum(Withdrawal.amount_minor))
        .where(
            Withdrawal.player_id == player_id,
            Withdrawal.currency == currency,
            Withdrawal.status.not_in(NOT_WITHDRAWN),
        )
        .group_by(Withdrawal.method)
    )
    return {str(method): int(total or 0) for method, total in rows.all()}


async def choose(
    session: AsyncSession,
    *,
    session_id: str,
    method: str | None,
    amount_minor: int | None,
    now: datetime,
) -> None:
    await session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id == session_id)
        .values(
            chosen_method=method, chosen_amount_minor=amount_minor, last_error=None, updated_at=now
        )
    )


async def set_error(
    session: AsyncSession, *, session_id: str, key: str | None, now: datetime
) -> None:
    await session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id == session_id)
        .values(last_error=key, updated_at=now)
    )


async def set_locale(session: AsyncSession, *, session_id: str, locale: str) -> None:
    await session.execute(
        update(CheckoutSession).where(CheckoutSession.id == session_id).values(locale=locale)
    )


async def claim(session: AsyncSession, *, session_id: str, nonce: str, now: datetime) -> bool:
    """Take the session for one submission: none other runs until it is finished (or stale)."""
    taken = await session.execute(
        update(CheckoutSession)
        .where(
            CheckoutSession.id == session_id,
            (CheckoutSession.claim.is_(None))
            | (CheckoutSession.claim == nonce)
            | (CheckoutSession.claimed_at < now - CLAIM_STALE),
        )
        .values(claim=nonce, claimed_at=now)
        .returning(CheckoutSession.id)
    )
    return taken.first() is not None


async def finish_claim(
    session: AsyncSession,
    *,
    row: CheckoutSession,
    nonce: str,
    now: datetime,
    payment_id: str | None = None,
    error: str | None = None,
    completed: bool = False,
) -> None:
    """Release the claim; with a payment, the session now follows it (and keeps its id)."""
    values: dict[str, Any] = {
        "claim": None,
        "claimed_at": None,
        "updated_at": now,
        "last_error": error,
    }
    if payment_id is not None:
        ids: Sequence[str] = row.payment_ids or []
        if payment_id not in ids:
            values["payment_ids"] = [*ids, payment_id]
        values["payment_id"] = payment_id
    if completed:
        values["completed_at"] = now
    await session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id == row.id, CheckoutSession.claim == nonce)
        .values(**values)
    )


async def complete(session: AsyncSession, *, session_id: str, now: datetime) -> None:
    await session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.id == session_id, CheckoutSession.completed_at.is_(None))
        .values(completed_at=now, updated_at=now)
    )
