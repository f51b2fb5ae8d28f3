"""Persons: one per IIN (migration 0150). Player accounts belong to a person; self-exclusion,
cool-offs, limits, velocity and multi-accounting apply to the person across all accounts."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Player
from domain.ids import new_id

_CLAIM = text(
    "INSERT INTO persons (id, iin, birth_date) VALUES (:id, :iin, :birth_date) "
    "ON CONFLICT (iin) DO UPDATE SET iin = EXCLUDED.iin RETURNING id"
)


@dataclass(frozen=True)
class Account:
    player_id: str
    merchant_id: str
    external_id: str
    linked_to: str | None


async def lock_person(session: AsyncSession, *, iin: str, birth_date: date) -> str:
    """The person of this IIN (created when new), locked until the transaction ends: two
    registrations of one IIN at once take turns, so the second sees the first's account."""
    person_id = (
        await session.execute(_CLAIM, {"id": new_id("psn"), "iin": iin, "birth_date": birth_date})
    ).scalar_one()
    return str(person_id)


async def accounts_at(session: AsyncSession, *, person_id: str, merchant_id: str) -> list[Account]:
    """The person's accounts at this merchant, oldest first."""
    rows = await session.execute(
        select(Player.id, Player.merchant_id, Player.external_id, Player.linked_to)
        .where(Player.person_id == person_id, Player.merchant_id == merchant_id)
        .order_by(Player.created_at, Player.id)
    )
    return [Account(r.id, r.merchant_id, r.external_id, r.linked_to) for r in rows]


async def person_of(session: AsyncSession, *, player_id: str) -> str | None:
    person: str | None = await session.scalar(
        select(Player.person_id).where(Player.id == player_id)
    )
    return person


def accounts_of_person_of(player_id: str) -> Select[str]:
    """The ids of every account of this player's person (the player's own included), as a
    subquery for `IN (...)`: the rules that apply to the person read all of them."""
    person = select(Player.person_id).where(Player.id == player_id).scalar_subquery()
    return select(Player.id).where(Player.person_id == person)
