"""Deposit data functions against real PostgreSQL."""

import uuid
from datetime import UTC, datetime

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
            provider="halyk",
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
