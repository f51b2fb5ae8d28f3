"""`python -m api` as several processes (PAY_API_WORKERS): each caches API keys, and a revoked
key is refused at once by all of them (issue 21)."""

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.__main__ import GC_THRESHOLDS, settle_gc, worker_count
from config import Settings, child_environment
from db import api_keys
from domain.roles import Role
from stack.launcher import Stack, free_port
from tests.conftest import ROOT, _wait_http


def test_one_worker_per_core_unless_configured() -> None:
    assert worker_count(Settings(api_workers=3)) == 3
    assert worker_count(Settings(api_workers=0)) >= 1


def test_one_api_worker_per_two_cores_beside_the_embedded_postgres(tmp_path: Path) -> None:
    """`make run` (the launcher) leaves half the cores to its embedded PostgreSQL; a configured
    count, or an external database, is left alone."""
    cores = len(os.sched_getaffinity(0))
    embedded = Stack(Settings(data_dir=tmp_path, database_url=None, api_workers=0))
    assert embedded._api_workers() == {"PAY_API_WORKERS": str(max(cores // 2, 1))}
    assert Stack(Settings(data_dir=tmp_path, database_url=None, api_workers=3))._api_workers() == {}
    external = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://db/x", api_workers=0)
    assert Stack(external)._api_workers() == {}


def test_an_api_worker_freezes_its_startup_objects() -> None:
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 10_000  # modules, classes, functions: out of the way
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.fixture
def workers_api(
    database_url: str, simulator_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("api-workers") / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_environment(
            {
                "PAY_DATABASE_URL": database_url,
                "PAY_SIMULATOR_URL": simulator_url,
                "PAY_API_HOST": "127.0.0.1",
                "PAY_API_PORT": str(port),
                "PAY_API_WORKERS": "2",
                "PAY_API_CACHE_TTL_SECONDS": "300",  # only the notification can empty it
                "PAY_ENVIRONMENT": "test",
            }
        ),
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


async def test_a_revoked_key_is_refused_at_once_by_every_worker(
    workers_api: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        issued = await api_keys.issue_key(session, name="game platform", role=Role.MERCHANT)
    headers = {"Authorization": f"Bearer {issued.secret}"}
    async with httpx.AsyncClient(base_url=workers_api, headers=headers) as api:

        async def statuses(n: int) -> list[int]:
            # Fresh connections spread the calls over the workers.
            calls = [
                api.get("/v1/wallet/players/pl_nobody/balance", headers={"Connection": "close"})
                for _ in range(n)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

        await asyncio.sleep(0.5)  # the workers' listeners connect as they start
        assert set(await statuses(40)) == {404}  # accepted (and cached) everywhere
        async with sessions.begin() as session:
            assert await api_keys.revoke_key(session, key_id=issued.holder.key_id)
        await asyncio.sleep(0.05)  # the notification crosses to the other processes
        assert set(await statuses(40)) == {401}
