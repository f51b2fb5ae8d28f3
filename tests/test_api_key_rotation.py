"""API keys expire and rotate (`python -m api.keys rotate`): the new key works at once, the old
one keeps working for the grace period and is refused after it, like an expired key."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import keys as keys_cli
from config import Settings
from db import api_keys
from db.models import ApiKey
from domain.roles import Role
from tests.conftest import _client

Sessions = async_sessionmaker[AsyncSession]


async def _status(app: FastAPI, key: str) -> int:
    """401 for a refused key; an accepted merchant key reaches the handler (404: no player)."""
    async with _client(app, key) as client:
        return (await client.get("/v1/players/pl_nobody")).status_code


async def _issue(sessions: Sessions, *, expires_at: datetime | None = None) -> api_keys.IssuedKey:
    async with sessions.begin() as session:
        return await api_keys.issue_key(
            session, name="casino backend", role=Role.MERCHANT, expires_at=expires_at
        )


async def test_an_expired_key_is_refused(app: FastAPI, sessions: Sessions) -> None:
    now = datetime.now(UTC)
    live = await _issue(sessions, expires_at=now + timedelta(hours=1))
    expired = await _issue(sessions, expires_at=now - timedelta(seconds=1))
    assert await _status(app, live.secret) == 404
    assert await _status(app, expired.secret) == 401
    async with sessions() as session:
        assert await api_keys.authenticate(session, key=expired.secret) is None
        # Operator sessions opened with it end too (api/auth.py looks the key up each time).
        assert await api_keys.active_holder(session, key_id=expired.holder.key_id) is None
        assert await api_keys.active_holder(session, key_id=live.holder.key_id) is not None


async def test_rotation_overlaps_for_the_grace_period_then_the_old_key_is_refused(
    app: FastAPI, sessions: Sessions
) -> None:
    old = await _issue(sessions)
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        rotated = await api_keys.rotate_key(
            session, key_id=old.holder.key_id, grace=timedelta(hours=2), now=now
        )
    assert rotated is not None
    assert rotated.old_key_id == old.holder.key_id
    assert rotated.old_expires_at == now + timedelta(hours=2)
    new = rotated.new
    assert new.secret != old.secret
    assert (new.holder.name, new.holder.role) == ("casino backend", Role.MERCHANT)
    assert new.expires_at is None  # the old key had no lifetime
    assert await _status(app, new.secret) == 404
    assert await _status(app, old.secret) == 404  # still inside the grace period

    async with sessions.begin() as session:  # the grace period is over
        row = await session.get_one(ApiKey, old.holder.key_id)
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert await _status(app, old.secret) == 401
    assert await _status(app, new.secret) == 404
    async with sessions.begin() as session:  # an expired key cannot be rotated again
        again = await api_keys.rotate_key(session, key_id=old.holder.key_id, grace=timedelta())
    assert again is None


async def test_a_rotated_key_keeps_its_lifetime_and_an_earlier_expiry(sessions: Sessions) -> None:
    now = datetime.now(UTC)
    old = await _issue(sessions, expires_at=now + timedelta(minutes=30))
    async with sessions.begin() as session:
        rotated = await api_keys.rotate_key(
            session, key_id=old.holder.key_id, grace=timedelta(days=7), now=now
        )
    assert rotated is not None
    # The old key was due in 30 minutes: a longer grace period does not extend it.
    assert rotated.old_expires_at == now + timedelta(minutes=30)
    async with sessions() as session:
        created = (await session.get_one(ApiKey, old.holder.key_id)).created_at
    assert rotated.new.expires_at == now + (old.expires_at - created)  # type: ignore[operator]


async def test_revoked_keys_are_not_rotated(sessions: Sessions) -> None:
    old = await _issue(sessions)
    async with sessions.begin() as session:
        assert await api_keys.revoke_key(session, key_id=old.holder.key_id)
    async with sessions.begin() as session:
        for key_id in ("key_missing", old.holder.key_id):
            assert await api_keys.rotate_key(session, key_id=key_id, grace=timedelta()) is None


def test_the_command_line_rotates_and_lists(
    settings: Settings,
    sessions: Sessions,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(keys_cli, "get_settings", lambda: settings)
    assert keys_cli.main(["create", "--role", "operator", "--name", "Aliya (ops)"]) == 0
    key_id = capsys.readouterr().out.split()[0]
    assert key_id.startswith("key_")

    assert keys_cli.main(["rotate", key_id, "--grace-hours", "1", "--expires-in-days", "90"]) == 0
    captured = capsys.readouterr()
    first, new_key = captured.out.splitlines()
    new_id = first.split()[0]
    assert new_id != key_id
    assert first.endswith("(operator, Aliya (ops))")
    assert new_key.startswith(f"kzp_{new_id}_")
    assert f"{key_id} stops working at" in captured.err

    assert keys_cli.main(["list"]) == 0
    listed = {line.split("\t")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "active until" in listed[key_id]
    assert "active until" in listed[new_id]  # 90 days
    assert listed[new_id].endswith("Aliya (ops)")

    assert keys_cli.main(["rotate", "key_missing"]) == 1
    assert "no active key key_missing" in capsys.readouterr().err
