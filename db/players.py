"""Players and their wallet balances."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LedgerAccount, Player
from domain.ledger import player_wallet


class PlayerExists(Exception):
    """Another player already has this external id."""


@dataclass(frozen=True)
class Balance:
    currency: str
    available_minor: int
    held_minor: int


async def create_player(
    session: AsyncSession,
    *,
    player_id: str,
    external_id: str,
    iin: str,
    full_name: str,
    birth_date: date,
    phone: str,
    email: str | None,
) -> Player:
    taken = await session.scalar(select(Player.id).where(Player.external_id == external_id))
    if taken is not None:
        raise PlayerExists(external_id)
    player = Player(
        id=player_id,
        external_id=external_id,
        iin=iin,
        full_name=full_name,
        birth_date=birth_date,
        phone=phone,
        email=email,
    )
    session.add(player)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the external id first
        raise PlayerExists(external_id) from exc
    return player


async def get_player(session: AsyncSession, *, player_id: str) -> Player | None:
    return await session.get(Player, player_id)


async def get_balance(session: AsyncSession, *, player_id: str, currency: str) -> Balance:
    account = await session.scalar(
        select(LedgerAccount).where(LedgerAccount.code == player_wallet(player_id, currency).code)
    )
    if account is None:
        return Balance(currency=currency, available_minor=0, held_minor=0)
    available = account.posted_credits - account.posted_debits - account.pending_debits
    return Balance(currency=currency, available_minor=available, held_minor=account.pending_debits)
