"""API keys with roles: 401 for a missing or wrong key, 403 for the wrong role."""

import asyncio
import subprocess
import sys

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config import child_environment
from tests.conftest import ROOT, _client, player_body


def _keys_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.keys", *args],
        cwd=ROOT,
        env=child_environment({"PAY_DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        check=False,
    )


async def test_missing_or_wrong_key_is_401(app: FastAPI, anonymous_api: httpx.AsyncClient) -> None:
    missing = await anonymous_api.post("/v1/players", json=player_body())
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "unauthorized"
    for key in (
        "nonsense",
        "kzp_key_abc_" + "x" * 43,
        "kzp_key_0123456789abcdef01234567_" + "y" * 43,
    ):
        async with _client(app, key) as client:
            wrong = await client.get("/v1/players/pl_unknown")
        assert wrong.status_code == 401, key
        assert wrong.json()["code"] == "unauthorized"
    health = await anonymous_api.get("/healthz")
    assert health.status_code == 200


async def test_roles(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, admin_api: httpx.AsyncClient
) -> None:
    forbidden = await operator_api.post("/v1/players", json=player_body())
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    created = await api.post("/v1/players", json=player_body())
    assert created.status_code == 201
    player_id = created.json()["id"]
    assert (await operator_api.get(f"/v1/players/{player_id}")).status_code == 200
    assert (await admin_api.post("/v1/players", json=player_body())).status_code == 201


async def test_cli_issues_lists_and_revokes_keys(
    app: FastAPI, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await asyncio.to_thread(
        _keys_cli, database_url, "create", "--role", "merchant", "--name", "casino-7"
    )
    assert created.returncode == 0, created.stderr
    key_id, key = created.stdout.split()[0], created.stdout.splitlines()[1]
    async with _client(app, key) as client:
        assert (await client.post("/v1/players", json=player_body())).status_code == 201

    async with sessions() as session:
        stored = (
            await session.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key_id})
        ).one()
    secret = key.rsplit("_", 1)[1]
    assert secret not in " ".join(str(value) for value in stored)

    listed = await asyncio.to_thread(_keys_cli, database_url, "list")
    assert key_id in listed.stdout
    assert secret not in listed.stdout

    revoked = await asyncio.to_thread(_keys_cli, database_url, "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    async with _client(app, key) as client:
        assert (await client.get("/v1/players/pl_x")).status_code == 401


async def test_openapi_declares_bearer_security(anonymous_api: httpx.AsyncClient) -> None:
    schema = (await anonymous_api.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["APIKey"]["scheme"] == "bearer"
    assert {"APIKey": []} in schema["paths"]["/v1/deposits"]["post"]["security"]
