"""The first ledger posting against real PostgreSQL: exactly once, immutable, no overdraft."""

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import ledger as ledger_store
from domain.ledger import (
    Entry,
    Side,
    TransactionSpec,
    deposit_credit,
    player_wallet,
    provider_clearing,
    shard_for,
)


def _credit(deposit_id: str, amount: int = 1_000) -> TransactionSpec:
    return deposit_credit(
        deposit_id=deposit_id,
        player_id=f"pl_{deposit_id}",
        provider="halyk",
        amount_minor=amount,
        currency="KZT",
    )


async def test_same_key_posts_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    spec = _credit(uuid.uuid4().hex)
    async with sessions.begin() as session:
        first = await ledger_store.post_transaction(session, spec=spec)
    async with sessions.begin() as session:
        again = await ledger_store.post_transaction(session, spec=spec)
    assert first.created
    assert not again.created
    assert again.id == first.id
    async with sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM ledger_transactions WHERE key = :k"), {"k": spec.key}
        )
    assert count == 1


async def test_same_key_other_content_is_a_conflict(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deposit_id = uuid.uuid4().hex
    async with sessions.begin() as session:
        await ledger_store.post_transaction(session, spec=_credit(deposit_id, 1_000))
    with pytest.raises(ledger_store.LedgerKeyConflict):
        async with sessions.begin() as session:
            await ledger_store.post_transaction(session, spec=_credit(deposit_id, 2_000))


async def test_ledger_rows_are_immutable(sessions: async_sessionmaker[AsyncSession]) -> None:
    spec = _credit(uuid.uuid4().hex)
    async with sessions.begin() as session:
        posted = await ledger_store.post_transaction(session, spec=spec)
    for statement in (
        "UPDATE ledger_entries SET amount_minor = 1 WHERE transaction_id = :id",
        "DELETE FROM ledger_entries WHERE transaction_id = :id",
        "DELETE FROM ledger_transactions WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with sessions.begin() as session:
                await session.execute(text(statement), {"id": posted.id})


async def test_player_wallet_cannot_go_negative(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = f"pl_{uuid.uuid4().hex[:8]}"
    wallet = player_wallet(player, "KZT")
    clearing = provider_clearing("halyk", "KZT")
    overdraw = TransactionSpec(
        key=f"test:{player}:overdraw",
        kind="test",
        payment_id=None,
        entries=(Entry(wallet, Side.DEBIT, 1), Entry(clearing, Side.CREDIT, 1)),
    )
    with pytest.raises(ledger_store.InsufficientFunds):
        async with sessions.begin() as session:
            await ledger_store.post_transaction(session, spec=overdraw)
    async with sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM ledger_transactions WHERE key = :k"), {"k": overdraw.key}
        )
    assert count == 0


def test_batcher_lanes_never_share_a_house_shard() -> None:
    """LedgerBatcher puts a posting in lane shard_for(key, lanes); its house accounts are in
    shard shard_for(key, shards). With shards a multiple of lanes, a house shard belongs to one
    lane only, so concurrent batches never queue on each other's house account locks."""
    for lanes, shards in ((2, 8), (4, 8), (4, 16)):
        owner: dict[int, int] = {}
        for n in range(2_000):
            key = f"game:pl_{n}:r_{n}:bet"
            assert owner.setdefault(shard_for(key, shards), shard_for(key, lanes)) == shard_for(
                key, lanes
            )
        assert len(owner) == shards
