"""A worker killed (SIGKILL, a real process) after the acquirer processed the charge and before
the worker reported it: the next worker settles the charge at the same acquirer, by inquiry,
under the same reference. One charge, one credit, and the route is the one already in history.
"""

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from config import Settings, child_environment
from domain.roles import Role
from tests import test_gateway as gateway
from tests.conftest import _client, card_deposit, new_player
from tests.histories_helpers import keep
from tests.test_gateway import _at_provider, _create, _credits, _finish

ROOT = Path(__file__).resolve().parent.parent
sim = gateway.sim  # the simulator's admin API, reset after each test


class WorkerProcess:
    """`python worker.py` on its own task queue, against the test database and Temporal."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = env
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self._log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self._env,
        )
        out.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown, no report of the running activity
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


@pytest.fixture
def queue() -> str:
    return f"kill-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker(
    settings: Settings,
    temporal_client: Client,
    fraud_overlay: Path,
    queue: str,
    tmp_path: Path,
) -> Iterator[WorkerProcess]:
    assert settings.database_url
    env = child_environment(
        {
            "PAY_ENVIRONMENT": "test",
            "PAY_DATABASE_URL": settings.database_url,
            "PAY_SIMULATOR_URL": settings.simulator_url,
            "PAY_TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
            "PAY_TEMPORAL_TASK_QUEUE": queue,
            "PAY_MONITORING_INTERVAL_SECONDS": "0",
            "PAY_PROVIDER_HTTP_TIMEOUT_SECONDS": "5",
            # No sticky queue: the test server does not hand a dead worker's sticky workflow
            # task to another worker (a real cluster does, after a few seconds).
            "PAY_WORKER_MAX_CACHED_WORKFLOWS": "0",
            "PAY_CHARGE_RETRY_INITIAL_SECONDS": "0.2",
            "PAY_FRAUD_RULES_OVERLAY": str(fraud_overlay),
            "PAY_LOG_FORMAT": "text",
        }
    )
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def queued_api(
    settings: Settings, temporal_client: Client, api_keys: dict[Role, str], queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API starting workflows on the killable worker's task queue."""
    app: FastAPI = create_app(settings.model_copy(update={"temporal_task_queue": queue}))
    async with app.router.lifespan_context(app):
        app.state.payments._temporal = temporal_client
        async with _client(app, api_keys[Role.MERCHANT]) as client:
            yield client


async def test_a_worker_killed_after_the_charge_settles_it_at_the_same_acquirer(
    queued_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    worker: WorkerProcess,
) -> None:
    # halyk stores the charge, then takes 3 s to answer: the worker is killed meanwhile.
    await sim.put("/admin/providers/halyk/behaviour", json={"latency_ms": 3000})
    player = await new_player(queued_api)
    deposit: dict[str, Any] = await _create(queued_api, card_deposit(player))
    log = await _at_provider(sim, "halyk", deposit["id"])
    assert log["charge"]["status"] == "succeeded"  # processed at the acquirer
    worker.kill()
    await sim.put("/admin/providers/halyk/behaviour", json={})
    worker.start()

    done = await _finish(queued_api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "halyk"), done
    outcomes = [a["outcome"] for a in done["attempts"]]
    assert "inquiry_succeeded" in outcomes, outcomes  # the next worker asked, never re-charged
    held = (await sim.get("/admin/charges", params={"reference": deposit["id"]})).json()
    assert [h["provider"] for h in held if h["money_moved"]] == ["halyk"], held
    for other in ("freedom", "cloudpayments"):  # never charged at another acquirer
        log = (await sim.get(f"/admin/providers/{other}/charges/{deposit['id']}")).json()
        assert log["calls"] == 0, other
    assert await _credits(sessions, deposit["id"]) == 1
    await keep(temporal_client, deposit["workflow_id"], "deposit_card_worker_killed")
