"""Players and their wallet balances. A player account belongs to a person (one IIN,
`db/persons.py`); its external id is unique per merchant."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiKey, LedgerAccount, Player
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
    merchant_id: str = "default",
    person_id: str | None = None,
    linked_to: str | None = None,
) -> Player:
    """`person_id`: the person of the IIN (without it, the database's trigger finds or creates
    it); `linked_to`: the person's account at this merchant the merchant linked it to."""
    taken = await session.scalar(
        select(Player.id).where(
            Player.merchant_id == merchant_id, Player.external_id == external_id
        )
    )
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
        merchant_id=merchant_id,
        linked_to=linked_to,
    )
    if person_id is not None:
        player.person_id = person_id
    session.add(player)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the external id first
        raise PlayerExists(external_id) from exc
    return player


async def merchant_of_key(session: AsyncSession, *, key_id: str) -> str:
    """The merchant an API key acts for (`api_keys.merchant_id`, `default` unless set)."""
    merchant: str | None = await session.scalar(
        select(ApiKey.merchant_id).where(ApiKey.id == key_id)
    )
    return merchant or "default"


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
