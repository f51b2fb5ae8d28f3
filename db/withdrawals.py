"""Withdrawals and the operators' reviews of them (risk facts: `db/fraud.py`).

Writes are idempotent on business ids: the activities that call them are retried.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Deposit,
    LedgerTransaction,
    PaymentAttempt,
    PaymentEvent,
    Withdrawal,
    WithdrawalReview,
)
from db.trail import payment_trail
from domain.withdrawals import WithdrawalStatus, can_transition


@dataclass(frozen=True)
class WithdrawalView:
    withdrawal: Withdrawal
    reviews: list[WithdrawalReview]
    attempts: list[PaymentAttempt]
    events: list[PaymentEvent]
    ledger: list[LedgerTransaction]


async def create_withdrawal(
    session: AsyncSession,
    *,
    withdrawal_id: str,
    player_id: str,
    amount_minor: int,
    currency: str,
    method: str,
    destination: dict[str, Any],
    destination_fingerprint: str,
    provider: str,
    approvals_needed: int,
    workflow_id: str,
    created_at: datetime,
    client: dict[str, Any] | None = None,
) -> Withdrawal:
    withdrawal = Withdrawal(
        id=withdrawal_id,
        player_id=player_id,
        amount_minor=amount_minor,
        currency=currency,
        method=method,
        destination=destination,
        destination_fingerprint=destination_fingerprint,
        status=WithdrawalStatus.PENDING.value,
        provider=provider,
        approvals_needed=approvals_needed,
        client=client,
        workflow_id=workflow_id,
        created_at=created_at,
        updated_at=created_at,
    )
    session.add(withdrawal)
    session.add(
        PaymentEvent(
            payment_id=withdrawal_id,
            status=WithdrawalStatus.PENDING.value,
            occurred_at=created_at,
        )
    )
    await session.flush()
    return withdrawal


async def get_withdrawal_view(
    session: AsyncSession, *, withdrawal_id: str
) -> WithdrawalView | None:
    withdrawal = await session.get(Withdrawal, withdrawal_id)
    if withdrawal is None:
        return None
    reviews = await session.scalars(
        select(WithdrawalReview)
        .where(WithdrawalReview.withdrawal_id == withdrawal_id)
        .order_by(WithdrawalReview.created_at, WithdrawalReview.id)
    )
    trail = await payment_trail(session, payment_id=withdrawal_id)
    return WithdrawalView(
        withdrawal, list(reviews.all()), trail.attempts, trail.events, trail.ledger
    )


async def list_withdrawals(
    session: AsyncSession,
    *,
    player_id: str | None,
    status: str | None,
    escalated: bool | None,
    limit: int,
    before: tuple[datetime, str] | None,
) -> list[Withdrawal]:
    query = (
        select(Withdrawal).order_by(Withdrawal.created_at.desc(), Withdrawal.id.desc()).limit(limit)
    )
    if player_id is not None:
        query = query.where(Withdrawal.player_id == player_id)
    if status is not None:
        query = query.where(Withdrawal.status == status)
    if escalated is not None:
        query = query.where(
            Withdrawal.escalated_at.is_not(None) if escalated else Withdrawal.escalated_at.is_(None)
        )
    if before is not None:
        query = query.where(
            (Withdrawal.created_at < before[0])
            | ((Withdrawal.created_at == before[0]) & (Withdrawal.id < before[1]))
        )
    return list((await session.scalars(query)).all())


async def list_by_deadline(
    session: AsyncSession,
    *,
    player_id: str | None,
    status: str | None,
    escalated: bool | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[Withdrawal]:
    """The approval queue in the order operators must work it: the nearest payout deadline
    first (index `ix_withdrawals_status_deadline`); `after` is the last row of the previous
    page (deadline, id)."""
    query = (
        select(Withdrawal)
        .where(Withdrawal.payout_deadline.is_not(None))
        .order_by(Withdrawal.payout_deadline.asc(), Withdrawal.id.asc())
        .limit(limit)
    )
    if player_id is not None:
        query = query.where(Withdrawal.player_id == player_id)
    if status is not None:
        query = query.where(Withdrawal.status == status)
    if escalated is not None:
        query = query.where(
            Withdrawal.escalated_at.is_not(None) if escalated else Withdrawal.escalated_at.is_(None)
        )
    if after is not None:
        query = query.where(
            (Withdrawal.payout_deadline > after[0])
            | ((Withdrawal.payout_deadline == after[0]) & (Withdrawal.id > after[1]))
        )
    return list((await session.scalars(query)).all())


async def record_status(
    session: AsyncSession,
    *,
    withdrawal_id: str,
    status: WithdrawalStatus,
    reason: str | None,
    occurred_at: datetime,
) -> WithdrawalStatus:
    """Move to `status` once; a replay or a stale transition changes nothing."""
    withdrawal = await session.get_one(Withdrawal, withdrawal_id, with_for_update=True)
    current = WithdrawalStatus(withdrawal.status)
    if current == status or not can_transition(current, status):
        return current
    await session.execute(
        insert(PaymentEvent)
        .values(
            payment_id=withdrawal_id, status=status.value, reason=reason, occurred_at=occurred_at
        )
        .on_conflict_do_nothing(constraint="uq_payment_event_status")
    )
    withdrawal.status = status.value
    withdrawal.status_reason = reason
    withdrawal.updated_at = occurred_at
    return status


async def record_review(
    session: AsyncSession,
    *,
    withdrawal_id: str,
    action: str,
    operator_id: str,
    operator_name: str,
    reason: str | None,
    occurred_at: datetime,
) -> None:
    await session.execute(
        insert(WithdrawalReview)
        .values(
            withdrawal_id=withdrawal_id,
            action=action,
            operator_id=operator_id,
            operator_name=operator_name,
            reason=reason,
            created_at=occurred_at,
        )
        .on_conflict_do_nothing(constraint="uq_withdrawal_review")
    )


async def mark_escalated(session: AsyncSession, *, withdrawal_id: str, at: datetime) -> None:
    withdrawal = await session.get_one(Withdrawal, withdrawal_id, with_for_update=True)
    if withdrawal.escalated_at is None:
        withdrawal.escalated_at = at


async def player_card_tokens(session: AsyncSession, *, player_id: str) -> dict[str, dict[str, Any]]:
    """The cards this player has deposited with (a succeeded deposit: the card paid), by each
    provider token they were vaulted as: a card payout may only go to one of these."""
    rows = await session.scalars(
        select(Deposit.card).where(
            Deposit.player_id == player_id,
            Deposit.card.is_not(None),
            Deposit.status == "succeeded",
        )
    )
    cards: dict[str, dict[str, Any]] = {}
    for card in rows:
        if not card:
            continue
        tokens = dict(card.get("tokens") or {})
        if "token" in card:
            tokens.setdefault("", card["token"])
        for token in tokens.values():
            cards[str(token)] = {**card, "token": str(token)}
    return cards
