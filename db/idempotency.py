"""Idempotency-Key storage: the first request with a key owns it until its transaction ends.

A concurrent request with the same key blocks on the primary key until the owner commits (and
then replays its result) or rolls back (and then proceeds as the new owner).
"""

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import IdempotencyKey


class IdempotencyKeyReused(Exception):
    """The key was used before with a different request body."""


@dataclass(frozen=True)
class StoredResponse:
    resource_id: str
    status_code: int


async def claim(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    request_hash: str,
    response: StoredResponse | None = None,
) -> StoredResponse | None:
    """None when this request now owns the key; the earlier response when it is a replay.

    With `response` (a resource id minted up front), the key is stored completed at once, so
    no `complete` is needed: the claim and the resource commit or roll back together.
    """
    inserted = await session.execute(
        insert(IdempotencyKey)
        .values(
            scope=scope,
            key=key,
            request_hash=request_hash,
            resource_id=response.resource_id if response else None,
            response_status=response.status_code if response else None,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    if inserted.first() is not None:
        return None
    row = (
        await session.execute(
            select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        )
    ).scalar_one()
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(key)
    assert row.resource_id is not None
    assert row.response_status is not None
    return StoredResponse(resource_id=row.resource_id, status_code=row.response_status)


async def complete(
    session: AsyncSession, *, scope: str, key: str, resource_id: str, status_code: int
) -> None:
    # One UPDATE (no read first): the key was claimed in this very transaction.
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(resource_id=resource_id, response_status=status_code)
    )
