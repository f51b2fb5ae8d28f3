"""API keys: `kzp_<key id>_<secret>`. The key id finds the row, the secret's SHA-256 proves it.

The secret is 32 random bytes, so a plain SHA-256 is as strong as a slow password hash here
and keeps authentication to one indexed lookup per request.

A key may expire (`expires_at`): from then on it is refused like a revoked one. Rotation
(`rotate_key`, `python -m api.keys rotate`) issues a new key for the same holder and lets the
old one expire after a grace period, so its users can switch without an outage.

Operator and admin keys belong to a person (`db/operators.py`, migration 0200): `issue_key(...,
operator_id=...)` assigns the new key, and a rotated key stays with its person.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import operators
from db.models import ApiKey
from domain.ids import new_id
from domain.roles import Role

PREFIX = "kzp"
# NOTIFY channel of every change to a key (revocation, rotation, expiry; migration 0180's
# trigger), payload the key id: each API process drops the key from its cache
# (api/hot_cache.py) as the change commits.
CHANGES_CHANNEL = "api_keys_changed"


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
    expires_at: datetime | None = None


@dataclass(frozen=True)
class KeyInfo:
    holder: KeyHolder
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    operator_id: str | None = None
    """The person the key belongs to (operator and admin keys), if assigned."""


@dataclass(frozen=True)
class RotatedKey:
    new: IssuedKey
    old_key_id: str
    old_expires_at: datetime
    """When the old key stops working (the end of the grace period, or sooner if it was due)."""


def _usable(row: ApiKey | None, now: datetime | None = None) -> bool:
    if row is None or row.revoked_at is not None:
        return False
    return row.expires_at is None or row.expires_at > (now or datetime.now(UTC))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = key.partition("_")
    key_id, sep, secret = rest.rpartition("_")
    if prefix != PREFIX or not sep or not key_id.startswith("key_") or len(secret) != 64:
        return None
    return key_id, secret


async def issue_key(
    session: AsyncSession,
    *,
    name: str,
    role: Role,
    expires_at: datetime | None = None,
    merchant_id: str = "default",
    operator_id: str | None = None,
) -> IssuedKey:
    """`merchant_id`: the merchant whose players a merchant key registers (migration 0150).
    `operator_id`: the person an operator or admin key belongs to (migration 0200)."""
    key_id = new_id("key")
    secret = secrets.token_hex(32)
    session.add(
        ApiKey(
            id=key_id,
            name=name,
            role=role.value,
            secret_sha256=_digest(secret),
            expires_at=expires_at,
            merchant_id=merchant_id,
        )
    )
    await session.flush()
    if operator_id is not None:
        await operators.assign_key(session, key_id=key_id, operator_id=operator_id)
    return IssuedKey(KeyHolder(key_id, name, role), f"{PREFIX}_{key_id}_{secret}", expires_at)


async def authenticate(session: AsyncSession, *, key: str) -> KeyHolder | None:
    parts = split_key(key)
    if parts is None:
        return None
    key_id, secret = parts
    row = await session.get(ApiKey, key_id)
    if row is None or not _usable(row):
        return None
    if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    return KeyHolder(row.id, row.name, Role(row.role))


async def active_holder(session: AsyncSession, *, key_id: str) -> KeyHolder | None:
    """The holder of a key that exists, is not revoked and has not expired (for sessions)."""
    row = await session.get(ApiKey, key_id)
    if row is None or not _usable(row):
        return None
    return KeyHolder(row.id, row.name, Role(row.role))


async def list_keys(session: AsyncSession) -> list[KeyInfo]:
    rows = await session.execute(
        select(ApiKey, operators.OperatorKey.operator_id)
        .outerjoin(operators.OperatorKey, operators.OperatorKey.key_id == ApiKey.id)
        .order_by(ApiKey.created_at)
    )
    return [
        KeyInfo(
            KeyHolder(r.id, r.name, Role(r.role)), r.created_at, r.revoked_at, r.expires_at, owner
        )
        for r, owner in rows
    ]


# Copied from the old key to the new one on rotation: everything but what makes a key itself.
_OWN_COLUMNS = frozenset({"id", "secret_sha256", "created_at", "revoked_at", "expires_at"})


async def rotate_key(
    session: AsyncSession,
    *,
    key_id: str,
    grace: timedelta,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> RotatedKey | None:
    """A new key for the holder of `key_id` (same name, role and owner); the old one expires at
    the end of `grace` (or keeps an earlier expiry). None when the old key is not usable.
    `expires_in`: the new key's own lifetime (default: the old key's, if it had one)."""
    now = now or datetime.now(UTC)
    old = await session.get(ApiKey, key_id, with_for_update=True)
    if old is None or not _usable(old, now):
        return None
    if expires_in is None and old.expires_at is not None:
        expires_in = old.expires_at - old.created_at
    secret = secrets.token_hex(32)
    copied = {
        column.key: getattr(old, column.key)
        for column in ApiKey.__mapper__.column_attrs
        if column.key not in _OWN_COLUMNS
    }
    new = ApiKey(
        **copied,
        id=new_id("key"),
        secret_sha256=_digest(secret),
        expires_at=now + expires_in if expires_in is not None else None,
    )
    session.add(new)
    end_of_grace = now + grace
    if old.expires_at is None or old.expires_at > end_of_grace:
        old.expires_at = end_of_grace
    await session.flush()
    owner = await operators.operator_id_of_key(session, key_id=old.id)
    if owner is not None:  # the new key is the same person's
        session.add(operators.OperatorKey(key_id=new.id, operator_id=owner))
        await session.flush()
    holder = KeyHolder(new.id, new.name, Role(new.role))
    issued = IssuedKey(holder, f"{PREFIX}_{new.id}_{secret}", new.expires_at)
    return RotatedKey(issued, old.id, old.expires_at)


async def revoke_key(session: AsyncSession, *, key_id: str) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class KeyRecord:
    """What a cache needs to check a key without the database (api/hot_cache.py)."""

    holder: KeyHolder
    secret_sha256: str
    expires_at: datetime | None
    revoked: bool
    merchant_id: str


async def key_record(session: AsyncSession, *, key_id: str) -> KeyRecord | None:
    row = await session.get(ApiKey, key_id)
    if row is None:
        return None
    return KeyRecord(
        KeyHolder(row.id, row.name, Role(row.role)),
        row.secret_sha256,
        row.expires_at,
        row.revoked_at is not None,
        row.merchant_id or "default",
    )


def secret_matches(record_sha256: str, secret: str) -> bool:
    return hmac.compare_digest(record_sha256, _digest(secret))
