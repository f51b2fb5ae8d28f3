"""Hostile input: schemathesis over the OpenAPI schema against a real API process, oversized
bodies, and invalid identifiers refused with precise codes (nothing ever a 500)."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from temporalio.client import Client

from config import Settings, child_environment
from domain.roles import Role
from stack.launcher import free_port
from tests.conftest import ROOT, _wait_http, card_deposit, make_iin, new_player, player_body

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def api_process(
    settings: Settings,
    temporal_client: Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The API as its own process (`python -m api`), on the test database and Temporal."""
    assert settings.database_url
    port = free_port()
    log = (tmp_path_factory.mktemp("api") / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_environment(
            {
                "PAY_ENVIRONMENT": "test",
                "PAY_DATABASE_URL": settings.database_url,
                "PAY_SIMULATOR_URL": settings.simulator_url,
                "PAY_API_PORT": str(port),
                "PAY_TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
                "PAY_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
                "PAY_LOG_FORMAT": "text",
            }
        ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


async def test_schemathesis_finds_no_server_error(
    api_process: str, api_keys: dict[Role, str], tmp_path: Path
) -> None:
    """Every operation, fuzzed from its schema with a merchant key: never a 5xx."""
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{api_process}/openapi.json",
        "--header",
        f"Authorization: Bearer {api_keys[Role.MERCHANT]}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "15",
        "--seed",
        "20261125",
        "--request-timeout",
        "30",
        "--workers",
        "2",
        "--phases",
        "examples,fuzzing",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    suite = await asyncio.to_thread(_junit, tmp_path)
    assert len(suite.findall(".//testcase")) >= 15, output[-3000:]  # every operation ran
    assert not suite.findall(".//failure")
    assert not suite.findall(".//error")


def _junit(directory: Path) -> ElementTree.Element:
    """Schemathesis's own JUnit report (written by the test itself, so trusted)."""
    [report] = directory.glob("*.xml")
    return ElementTree.parse(report).getroot()  # noqa: S314


async def test_oversized_bodies_are_refused(api: httpx.AsyncClient, api_process: str) -> None:
    player = await new_player(api)
    body = card_deposit(player)
    body["client"] = {"user_agent": "x" * 200_000}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    refused = await api.post("/v1/deposits", json=body, headers=headers)
    assert refused.status_code == 413
    assert refused.json()["code"] == "payload_too_large"
    async with httpx.AsyncClient(base_url=api_process) as raw:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x" * 10_000

        streamed = await raw.post(
            "/v1/players",
            content=chunks(),
            headers={"content-type": "application/json", **api.headers},
        )
    assert streamed.status_code == 413
    again = await api.post("/v1/deposits", json=card_deposit(player), headers=headers)
    assert again.status_code == 202  # the refused request claimed nothing


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"iin": "900101300001"}, "invalid_iin"),
        ({"iin": "90010130000"}, "invalid_iin"),
        ({"phone": "+79161234567"}, "invalid_phone"),
        ({"iin": make_iin("150101", 5)}, "underage"),
    ],
)
async def test_invalid_identity_refused_precisely(
    api: httpx.AsyncClient, overrides: dict[str, str], code: str
) -> None:
    response = await api.post("/v1/players", json=player_body(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"currency": "USD"}, "unsupported_currency"),
        ({"amount": 0}, "validation_error"),
        ({"amount": -5}, "validation_error"),
        ({"amount": "100"}, "validation_error"),
        ({"amount": 1.5}, "validation_error"),
        ({"card_number": "4242424242424241"}, "invalid_card_number"),
    ],
)
async def test_bad_amounts_and_cards_refused(
    api: httpx.AsyncClient, change: dict[str, object], code: str
) -> None:
    player = await new_player(api)
    body = card_deposit(player)
    number = change.pop("card_number", None)
    if number:
        body["details"]["card"]["number"] = number
    body.update(change)
    response = await api.post(
        "/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    listed = await api.get("/v1/deposits", params={"player_id": player})
    assert listed.json()["data"] == []
