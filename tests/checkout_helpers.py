"""Helpers of the hosted checkout's tests: sessions, the pages' forms, waiting for a payment."""

import asyncio
import random
import re
import time
import uuid
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

RETURN_URL = "https://casino.example/back?session={CHECKOUT_SESSION_ID}"


def player_client(app: Any) -> httpx.AsyncClient:
    """A player's browser without a key, from an address of its own (the pages count requests
    per client IP: each test is a different player)."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


def session_body(player_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "player_id": player_id,
        "currency": "KZT",
        "amount_presets": [2_000_00, 5_000_00, 10_000_00],
        "return_url": RETURN_URL,
    }
    body.update(overrides)
    return body


async def open_session(api: httpx.AsyncClient, player_id: str, **overrides: Any) -> dict[str, Any]:
    response = await api.post(
        "/v1/checkout/sessions",
        json=session_body(player_id, **overrides),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def path_of(session: dict[str, Any]) -> str:
    return urlsplit(str(session["url"])).path


def csrf(page: str, action: str) -> str:
    """The CSRF token of the form posting to `.../{action}`."""
    found = re.search(
        rf'action="[^"]*/{action}"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"', page
    )
    assert found, f"no form posting to {action}"
    return unescape(found.group(1))


async def until_status(
    sessions: async_sessionmaker[AsyncSession],
    payment_id: str,
    *statuses: str,
    table: str = "deposits",
    timeout: float = 30,
) -> str:
    """The payment's status once it is one of `statuses` (a database write: polled)."""
    deadline = time.monotonic() + timeout
    while True:
        async with sessions() as session:
            status = await session.scalar(
                text(f"SELECT status FROM {table} WHERE id = :id"),  # noqa: S608 - a constant
                {"id": payment_id},
            )
        if status in statuses or time.monotonic() > deadline:
            assert status in statuses, (payment_id, status)
            return str(status)
        await asyncio.sleep(0.1)


async def session_row(sessions: async_sessionmaker[AsyncSession], session_id: str) -> Any:
    async with sessions() as session:
        return (
            (
                await session.execute(
                    text("SELECT * FROM checkout_sessions WHERE id = :id"), {"id": session_id}
                )
            )
            .mappings()
            .one()
        )


async def expire(sessions: async_sessionmaker[AsyncSession], session_id: str) -> None:
    async with sessions.begin() as session:
        await session.execute(
            text(
                "UPDATE checkout_sessions SET expires_at = now() - interval '1 second' "
                "WHERE id = :id"
            ),
            {"id": session_id},
        )
