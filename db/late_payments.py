"""Late-payment cases and callback receipts (migration 0090): plain SQL, one statement each."""

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_OPEN = text("""
INSERT INTO late_payments (deposit_id, provider, amount_minor, currency, deposit_status, policy)
VALUES (:deposit_id, :provider, :amount_minor, :currency, :deposit_status, :policy)
ON CONFLICT ON CONSTRAINT uq_late_payment_deposit_provider DO UPDATE
    SET amount_minor = CASE WHEN late_payments.resolution = 'open'
                            THEN EXCLUDED.amount_minor ELSE late_payments.amount_minor END,
        currency = CASE WHEN late_payments.resolution = 'open'
                        THEN EXCLUDED.currency ELSE late_payments.currency END,
        policy = CASE WHEN late_payments.resolution = 'open'
                      THEN EXCLUDED.policy ELSE late_payments.policy END
RETURNING id, resolution, policy, (xmax = 0) AS created
""")


async def open_case(
    session: AsyncSession,
    *,
    deposit_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
    deposit_status: str,
    policy: str,
) -> tuple[int, str, str, bool]:
    """The case of this deposit at this provider: (id, resolution, policy, newly opened). A case
    still open takes the latest amount the provider reports (a short transfer topped up)."""
    row = (
        await session.execute(
            _OPEN,
            {
                "deposit_id": deposit_id,
                "provider": provider,
                "amount_minor": amount_minor,
                "currency": currency,
                "deposit_status": deposit_status,
                "policy": policy,
            },
        )
    ).one()
    return int(row.id), str(row.resolution), str(row.policy), bool(row.created)


async def find_case(
    session: AsyncSession, *, deposit_id: str, provider: str
) -> tuple[int, str, str] | None:
    """The case of this deposit at this provider, if one was opened: (id, resolution, policy)."""
    row = (
        await session.execute(
            text(
                "SELECT id, resolution, policy FROM late_payments "
                "WHERE deposit_id = :deposit_id AND provider = :provider"
            ),
            {"deposit_id": deposit_id, "provider": provider},
        )
    ).one_or_none()
    return None if row is None else (int(row.id), str(row.resolution), str(row.policy))


async def resolve_case(
    session: AsyncSession,
    *,
    case_id: int,
    resolution: str,
    ledger_transaction_id: int | None,
    at: datetime,
) -> None:
    await session.execute(
        text(
            "UPDATE late_payments SET resolution = :resolution, resolved_at = :at, "
            "ledger_transaction_id = coalesce(:tx, ledger_transaction_id) "
            "WHERE id = :id AND resolution = 'open'"
        ),
        {"resolution": resolution, "at": at, "tx": ledger_transaction_id, "id": case_id},
    )


async def list_cases(session: AsyncSession, *, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT id, deposit_id, provider, amount_minor, currency, deposit_status, policy, "
            "resolution, ledger_transaction_id, created_at, resolved_at "
            "FROM late_payments ORDER BY id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [dict(row._mapping) for row in rows]


async def first_receipt(
    session: AsyncSession, *, provider: str, event_key: str, reference: str
) -> bool:
    """Record a verified callback; False when this provider already delivered this event."""
    result = await session.execute(
        text(
            "INSERT INTO webhook_receipts (provider, event_key, reference) "
            "VALUES (:provider, :key, :reference) ON CONFLICT DO NOTHING RETURNING provider"
        ),
        {"provider": provider, "key": event_key, "reference": reference},
    )
    return result.scalar_one_or_none() is not None
