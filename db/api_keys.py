"""API keys: `kzp_<key id>_<secret>`. The key id finds the row, the secret's SHA-256 proves it.

The secret is 32 random bytes, so a plain SHA-256 is as strong as a slow password hash here
and keeps authentication to one indexed lookup per request.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiKey
from domain.ids import new_id
from domain.roles import Role

PREFIX = "kzp"


@dataclass(frozen=True)
class KeyHolder:
    key_id: str
    name: str
    role: Role


@dataclass(frozen=True)
class IssuedKey:
    holder: KeyHolder
    secret: str
    """The full key, shown once: it is not stored anywhere."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = key.partition("_")
    key_id, sep, secret = rest.rpartition("_")
    if prefix != PREFIX or not sep or not key_id.startswith("key_") or len(secret) != 64:
        return None
    return key_id, secret


async def issue_key(session: AsyncSession, *, name: str, role: Role) -> IssuedKey:
    key_id = new_id("key")
    secret = secrets.token_hex(32)
    session.add(ApiKey(id=key_id, name=name, role=role.value, secret_sha256=_digest(secret)))
    await session.flush()
    return IssuedKey(KeyHolder(key_id, name, role), f"{PREFIX}_{key_id}_{secret}")


async def authenticate(session: AsyncSession, *, key: str) -> KeyHolder | None:
    parts = split_key(key)
    if parts is None:
        return None
    key_id, secret = parts
    row = await session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    return KeyHolder(row.id, row.name, Role(row.role))


async def active_holder(session: AsyncSession, *, key_id: str) -> KeyHolder | None:
    """The holder of a key that exists and is not revoked (for sessions issued to it)."""
    row = await session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    return KeyHolder(row.id, row.name, Role(row.role))


async def list_keys(session: AsyncSession) -> list[tuple[KeyHolder, datetime, datetime | None]]:
    rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at))
    return [(KeyHolder(r.id, r.name, Role(r.role)), r.created_at, r.revoked_at) for r in rows]


async def revoke_key(session: AsyncSession, *, key_id: str) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
