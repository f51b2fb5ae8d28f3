"""Deposits, their status trail and provider attempts.

Every write here is idempotent on business ids, because activities that call it are retried.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Deposit, LedgerTransaction, PaymentAttempt, PaymentEvent
from db.trail import payment_trail
from domain.statuses import DepositStatus, can_transition


@dataclass(frozen=True)
class DepositView:
    deposit: Deposit
    attempts: list[PaymentAttempt]
    events: list[PaymentEvent]
    ledger: list[LedgerTransaction]


async def create_deposit(
    session: AsyncSession,
    *,
    deposit_id: str,
    player_id: str,
    amount_minor: int,
    currency: str,
    method: str,
    provider: str | None,
    card: dict[str, Any] | None,
    client: dict[str, Any] | None,
    workflow_id: str,
    created_at: datetime,
    details: dict[str, str] | None = None,
) -> Deposit:
    row: dict[str, Any] = {
        "id": deposit_id,
        "player_id": player_id,
        "amount_minor": amount_minor,
        "currency": currency,
        "method": method,
        "status": DepositStatus.PENDING.value,
        "provider": provider,
        "card": card,
        "client": client,
        "details": details,
        "workflow_id": workflow_id,
        "created_at": created_at,
        "updated_at": created_at,
    }
    # The deposit and its first trail event in one statement (every deposit request runs it);
    # the returned object is what was written, not attached to the session.
    written = insert(cast(Table, Deposit.__table__)).values(**row).cte("written")
    await session.execute(
        insert(cast(Table, PaymentEvent.__table__))
        .values(payment_id=deposit_id, status=DepositStatus.PENDING.value, occurred_at=created_at)
        .add_cte(written)
    )
    deposit = Deposit(**row)
    return deposit


def created_view(deposit: Deposit) -> DepositView:
    """The view of a deposit `create_deposit` has just written, without reading it back: no
    attempts, no ledger, its one `pending` event."""
    event = PaymentEvent(
        payment_id=deposit.id, status=deposit.status, reason=None, occurred_at=deposit.created_at
    )
    return DepositView(deposit, attempts=[], events=[event], ledger=[])


async def get_deposit_view(session: AsyncSession, *, deposit_id: str) -> DepositView | None:
    deposit = await session.get(Deposit, deposit_id)
    if deposit is None:
        return None
    trail = await payment_trail(session, payment_id=deposit_id)
    return DepositView(deposit, trail.attempts, trail.events, trail.ledger)


async def list_deposits(
    session: AsyncSession,
    *,
    player_id: str | None,
    status: str | None,
    method: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    before: tuple[datetime, str] | None,
) -> list[Deposit]:
    query = select(Deposit).order_by(Deposit.created_at.desc(), Deposit.id.desc()).limit(limit)
    if player_id is not None:
        query = query.where(Deposit.player_id == player_id)
    if status is not None:
        query = query.where(Deposit.status == status)
    if method is not None:
        query = query.where(Deposit.method == method)
    if created_from is not None:
        query = query.where(Deposit.created_at >= created_from)
    if created_to is not None:
        query = query.where(Deposit.created_at < created_to)
    if before is not None:
        query = query.where(
            (Deposit.created_at < before[0])
            | ((Deposit.created_at == before[0]) & (Deposit.id < before[1]))
        )
    return list((await session.scalars(query)).all())


# One round trip: lock the row and read its status, move it if the transition is allowed (and
# record the provider), and add the trail event for a move. It used to be four statements
# through the ORM (select for update, insert, flush, and the select again on a re-read).
_RECORD_STATUS = text("""
WITH p AS (
    SELECT CAST(:deposit_id AS varchar) AS deposit_id, CAST(:status AS varchar) AS status,
           CAST(:reason AS varchar) AS reason, CAST(:occurred_at AS timestamptz) AS occurred_at,
           CAST(:provider AS varchar) AS provider, CAST(:movable AS varchar[]) AS movable
), old AS (
    SELECT d.id, d.status, d.status = ANY(p.movable) AS moves
    FROM deposits d, p WHERE d.id = p.deposit_id FOR UPDATE OF d
), moved AS (
    UPDATE deposits d SET
        status = CASE WHEN old.moves THEN p.status ELSE d.status END,
        status_reason = CASE WHEN old.moves THEN p.reason ELSE d.status_reason END,
        updated_at = CASE WHEN old.moves THEN p.occurred_at
                          ELSE greatest(d.updated_at, p.occurred_at) END,
        provider = coalesce(p.provider, d.provider),
        next_action = CASE WHEN p.provider IS NULL THEN d.next_action END
    FROM old, p
    WHERE d.id = old.id AND (old.moves OR p.provider IS NOT NULL)
    RETURNING d.status
), event AS (
    INSERT INTO payment_events (payment_id, status, reason, occurred_at)
    SELECT p.deposit_id, p.status, p.reason, p.occurred_at FROM old, p WHERE old.moves
    ON CONFLICT ON CONSTRAINT uq_payment_event_status DO NOTHING
)
SELECT coalesce((SELECT status FROM moved), old.status) AS status FROM old
""")


async def record_status(
    session: AsyncSession,
    *,
    deposit_id: str,
    status: DepositStatus,
    reason: str | None,
    occurred_at: datetime,
    provider: str | None = None,
    also_from: tuple[DepositStatus, ...] = (),
) -> DepositStatus:
    """Move the deposit to `status` once; a replay or a stale transition changes nothing.

    `also_from` allows moves the status machine does not (a late payment: expired or failed
    to succeeded, once the provider confirmed the money).

    With `provider`, also record the provider that served the deposit and clear its next
    action (as `gateway.set_route` does), whatever the status does.
    Returns the status the deposit has afterwards.
    """
    movable = [
        s.value
        for s in DepositStatus
        if s != status and (can_transition(s, status) or s in also_from)
    ]
    row = (
        await session.execute(
            _RECORD_STATUS,
            {
                "deposit_id": deposit_id,
                "status": status.value,
                "reason": reason,
                "occurred_at": occurred_at,
                "provider": provider,
                "movable": movable,
            },
        )
    ).one_or_none()
    if row is None:
        raise NoResultFound(f"no deposit {deposit_id}")
    return DepositStatus(row.status)


async def record_attempt(
    session: AsyncSession,
    *,
    payment_id: str,
    step: str,
    attempt_no: int,
    provider: str,
    outcome: str,
    error_code: str | None,
    latency_ms: int,
) -> None:
    await session.execute(
        insert(PaymentAttempt)
        .values(
            payment_id=payment_id,
            step=step,
            attempt_no=attempt_no,
            provider=provider,
            outcome=outcome,
            error_code=error_code,
            latency_ms=latency_ms,
        )
        .on_conflict_do_nothing(constraint="uq_payment_attempt")
    )


async def set_risk(session: AsyncSession, *, deposit_id: str, risk: dict[str, Any]) -> None:
    deposit = await session.get_one(Deposit, deposit_id)
    deposit.risk = risk


async def current_status(session: AsyncSession, *, deposit_id: str) -> tuple[str, str | None]:
    """The deposit's status and provider as committed now (a fresh read, not the session's)."""
    row = (
        await session.execute(
            text("SELECT status, provider FROM deposits WHERE id = :id"), {"id": deposit_id}
        )
    ).one()
    return str(row.status), row.provider


async def keep_funding(session: AsyncSession, *, deposit_id: str, funding: dict[str, Any]) -> None:
    """How the payer funded the deposit, with its method details (`details.funding`)."""
    await session.execute(
        text(
            "UPDATE deposits SET details = coalesce(details, '{}'::jsonb) "
            "|| jsonb_build_object('funding', CAST(:funding AS jsonb)) WHERE id = :id"
        ),
        {"funding": json.dumps(funding), "id": deposit_id},
    )
