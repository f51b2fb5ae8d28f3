"""Deposit data functions against real PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import deposits as deposit_store
from db import players as player_store
from domain.statuses import DepositStatus
from tests.conftest import make_iin


async def _player(session: AsyncSession) -> str:
    player = await player_store.create_player(
        session,
        player_id=f"pl_{uuid.uuid4().hex[:12]}",
        external_id=uuid.uuid4().hex,
        iin=make_iin(),
        full_name="Test Player",
        birth_date=datetime(1990, 1, 1, tzinfo=UTC).date(),
        phone="+77011234567",
        email=None,
    )
    return player.id


async def test_velocity_counts_recent_and_sums_day_without_failures(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        player_id = await _player(session)
        other_id = await _player(session)
        rows = [
            (player_id, 1_000, now - timedelta(minutes=5), DepositStatus.SUCCEEDED),
            (player_id, 2_000, now - timedelta(minutes=9), DepositStatus.FAILED),
            (player_id, 4_000, now - timedelta(hours=3), DepositStatus.SUCCEEDED),
            (player_id, 8_000, now - timedelta(hours=25), DepositStatus.SUCCEEDED),
            (other_id, 16_000, now - timedelta(minutes=1), DepositStatus.SUCCEEDED),
        ]
        for owner, amount, created, status in rows:
            deposit_id = f"dep_{uuid.uuid4().hex[:12]}"
            await deposit_store.create_deposit(
                session,
                deposit_id=deposit_id,
                player_id=owner,
                amount_minor=amount,
                currency="KZT",
                method="card",
                provider="kazcard",
                card=None,
                client=None,
                workflow_id=f"deposit-{deposit_id}",
                created_at=created,
            )
            if status is not DepositStatus.SUCCEEDED:
                await deposit_store.record_status(
                    session, deposit_id=deposit_id, status=status, reason=None, occurred_at=now
                )
    async with sessions() as session:
        facts = await deposit_store.velocity_facts(
            session, player_id=player_id, exclude_id="dep_current", now=now
        )
    assert facts.count_10m == 2
    assert facts.sum_24h_minor == 5_000


async def test_status_transitions_are_recorded_once_and_never_regress(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    deposit_id = f"dep_{uuid.uuid4().hex[:12]}"
    async with sessions.begin() as session:
        player_id = await _player(session)
        await deposit_store.create_deposit(
            session,
            deposit_id=deposit_id,
            player_id=player_id,
            amount_minor=1_000,
            currency="KZT",
            method="card",
            provider="kazcard",
            card=None,
            client=None,
            workflow_id=f"deposit-{deposit_id}",
            created_at=now,
        )
    for status in (
        DepositStatus.PROCESSING,
        DepositStatus.PROCESSING,
        DepositStatus.SUCCEEDED,
        DepositStatus.PROCESSING,
        DepositStatus.FAILED,
    ):
        async with sessions.begin() as session:
            after = await deposit_store.record_status(
                session, deposit_id=deposit_id, status=status, reason=None, occurred_at=now
            )
    assert after is DepositStatus.SUCCEEDED
    async with sessions() as session:
        view = await deposit_store.get_deposit_view(session, deposit_id=deposit_id)
    assert view is not None
    assert [e.status for e in view.events] == ["pending", "processing", "succeeded"]
