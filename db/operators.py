"""Operators are people (migration 0200): a name, an e-mail address, active or not; API keys
belong to them.

Only operator and admin keys belong to a person; merchant keys are a casino's backend. A key
is assigned once (`assign_key`; a rotated key stays with its person, `db/api_keys.py`) and never
moved to someone else: a key that changes hands is revoked and a new one issued. Deactivating an
operator revokes every key they hold, so it takes effect in every API process at once (the
revocation's NOTIFY, api/hot_cache.py), and `operator_of_key` no longer names them.

Decisions are made by people: `operator_of_key` is what the API asks before signing an approval
token (api/auth.py `deciding_operator`).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, ForeignKey, String, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from db.models import ApiKey, Base
from domain.ids import new_id
from domain.roles import Role

_EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}\.[^@\s.\x00-\x1f\x7f]{1,63}$"
)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    deactivated_at: Mapped[datetime | None] = mapped_column()


class OperatorKey(Base):
    __tablename__ = "operator_keys"

    key_id: Mapped[str] = mapped_column(String(40), ForeignKey("api_keys.id"), primary_key=True)
    operator_id: Mapped[str] = mapped_column(String(40), ForeignKey("operators.id"))
    assigned_at: Mapped[datetime] = mapped_column(server_default=func.now())


@dataclass(frozen=True)
class OperatorInfo:
    id: str
    name: str
    email: str
    active: bool


class OperatorRefused(ValueError):
    """The request does not fit the operators' records (the CLI prints it)."""


def _info(row: Operator) -> OperatorInfo:
    return OperatorInfo(row.id, row.name, row.email, row.active)


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100 or not name.isprintable():
        raise OperatorRefused("an operator's name is 1 to 100 printable characters")
    return name


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise OperatorRefused(f"{email!r} is not an e-mail address")
    return email


async def create_operator(session: AsyncSession, *, name: str, email: str) -> OperatorInfo:
    """A new person; one per e-mail address (case-insensitive)."""
    name, email = check_name(name), check_email(email)
    taken = await session.scalar(
        select(Operator.id).where(func.lower(Operator.email) == email.lower())
    )
    if taken is not None:
        raise OperatorRefused(f"{email} is operator {taken} already")
    row = Operator(id=new_id("op"), name=name, email=email, active=True)
    session.add(row)
    await session.flush()
    return _info(row)


async def get_operator(session: AsyncSession, *, operator_id: str) -> OperatorInfo | None:
    row = await session.get(Operator, operator_id)
    return _info(row) if row is not None else None


async def list_operators(session: AsyncSession) -> list[tuple[OperatorInfo, list[str]]]:
    """Every operator with the ids of the keys assigned to them (revoked ones too)."""
    rows = (await session.scalars(select(Operator).order_by(Operator.created_at))).all()
    keys: dict[str, list[str]] = {}
    for key_id, operator_id in await session.execute(
        select(OperatorKey.key_id, OperatorKey.operator_id).order_by(OperatorKey.assigned_at)
    ):
        keys.setdefault(operator_id, []).append(key_id)
    return [(_info(row), keys.get(row.id, [])) for row in rows]


async def assign_key(session: AsyncSession, *, key_id: str, operator_id: str) -> None:
    """The key belongs to this operator from now on. Refused for a merchant key, an unknown or
    inactive operator, or a key that belongs to someone already (it is never moved)."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise OperatorRefused(f"no key {key_id}")
    if Role(key.role) is Role.MERCHANT:
        raise OperatorRefused(
            f"{key_id} is a merchant key: only operator and admin keys are people's"
        )
    operator = await session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise OperatorRefused(f"no operator {operator_id}")
    if not operator.active:
        raise OperatorRefused(f"operator {operator_id} is deactivated")
    current = await session.get(OperatorKey, key_id, with_for_update=True)
    if current is not None:
        if current.operator_id == operator_id:
            return
        raise OperatorRefused(
            f"{key_id} belongs to {current.operator_id}: revoke it and issue the other person a key"
        )
    session.add(OperatorKey(key_id=key_id, operator_id=operator_id))
    await session.flush()


async def operator_id_of_key(session: AsyncSession, *, key_id: str) -> str | None:
    """Whose key this is (active or not): rotation hands the new key to the same person."""
    return await session.scalar(select(OperatorKey.operator_id).where(OperatorKey.key_id == key_id))


async def key_ids_of(session: AsyncSession, *, operator_id: str) -> set[str]:
    """Every key the operator holds or held: decisions recorded under a key id before operators
    existed (migration 0200) are theirs too."""
    rows = await session.scalars(
        select(OperatorKey.key_id).where(OperatorKey.operator_id == operator_id)
    )
    return set(rows)


async def operator_of_key(session: AsyncSession, *, key_id: str) -> OperatorInfo | None:
    """The active operator this key belongs to, or None (no one's key, or deactivated)."""
    row = await session.scalar(
        select(Operator)
        .join(OperatorKey, OperatorKey.operator_id == Operator.id)
        .where(OperatorKey.key_id == key_id, Operator.active.is_(True))
    )
    return _info(row) if row is not None else None


async def deactivate_operator(
    session: AsyncSession, *, operator_id: str, now: datetime | None = None
) -> int:
    """The operator may decide nothing from now on; their keys are revoked (how many)."""
    now = now or datetime.now(UTC)
    operator = await session.get(Operator, operator_id, with_for_update=True)
    if operator is None:
        raise OperatorRefused(f"no operator {operator_id}")
    if operator.active:
        operator.active = False
        operator.deactivated_at = now
    revoked = await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id.in_(select(OperatorKey.key_id).where(OperatorKey.operator_id == operator_id)),
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    await session.flush()
    return int(revoked.rowcount)  # type: ignore[attr-defined]
