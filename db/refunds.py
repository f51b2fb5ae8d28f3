"""Refunds of deposits (migration 0100): plain SQL, one statement each."""

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_COLUMNS = (
    "id, deposit_id, provider, amount_minor, currency, reason, status, status_reason, "
    "workflow_id, stuck_reason, created_at, updated_at"
)


async def refunded_or_pending(session: AsyncSession, *, deposit_id: str) -> int:
    """What is already refunded or being refunded: only a refused refund gives money back."""
    total = await session.scalar(
        text(
            "SELECT coalesce(sum(amount_minor), 0) FROM refunds "
            "WHERE deposit_id = :id AND status <> 'failed'"
        ),
        {"id": deposit_id},
    )
    return int(total or 0)


async def create_refund(
    session: AsyncSession,
    *,
    refund_id: str,
    deposit_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
    reason: str,
    workflow_id: str,
) -> None:
    await session.execute(
        text(
            "INSERT INTO refunds (id, deposit_id, provider, amount_minor, currency, reason, "
            "workflow_id) VALUES (:id, :deposit_id, :provider, :amount, :currency, :reason, "
            ":workflow_id)"
        ),
        {
            "id": refund_id,
            "deposit_id": deposit_id,
            "provider": provider,
            "amount": amount_minor,
            "currency": currency,
            "reason": reason,
            "workflow_id": workflow_id,
        },
    )


async def get_refund(session: AsyncSession, *, refund_id: str) -> dict[str, Any] | None:
    row = await session.execute(
        text(f"SELECT {_COLUMNS} FROM refunds WHERE id = :id"),  # noqa: S608 - constant columns
        {"id": refund_id},
    )
    found = row.mappings().one_or_none()
    return dict(found) if found else None


async def list_refunds(session: AsyncSession, *, deposit_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(f"SELECT {_COLUMNS} FROM refunds WHERE deposit_id = :id ORDER BY created_at, id"),  # noqa: S608
        {"id": deposit_id},
    )
    return [dict(row) for row in rows.mappings()]


async def record_status(
    session: AsyncSession, *, refund_id: str, status: str, reason: str | None, at: datetime
) -> None:
    """Move a pending refund to its final status, once."""
    await session.execute(
        text(
            "UPDATE refunds SET status = :status, status_reason = :reason, updated_at = :at "
            "WHERE id = :id AND status = 'pending'"
        ),
        {"status": status, "reason": reason, "at": at, "id": refund_id},
    )
