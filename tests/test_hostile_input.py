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


@pytest.fixture(scope="module")
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


# The operations that take bodies a player or a casino controls: fuzzed deeper in CI.
DEEP = r"^/v1/(players|deposits|withdrawals|webhooks)"


@pytest.mark.parametrize(
    ("role", "examples", "path_regex"),
    [
        (Role.MERCHANT, 15, None),
        (Role.OPERATOR, 15, None),
        (Role.ADMIN, 15, None),
        (Role.MERCHANT, 100, DEEP),
        (Role.OPERATOR, 100, DEEP),
    ],
    ids=["merchant", "operator", "admin", "merchant-deep", "operator-deep"],
)
async def test_schemathesis_finds_no_server_error(
    api_process: str,
    api_keys: dict[Role, str],
    tmp_path: Path,
    role: Role,
    examples: int,
    path_regex: str | None,
) -> None:
    """Every operation, fuzzed from its schema with each role's key (the write paths with 100
    examples each): never a 5xx."""
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{api_process}/openapi.json",
        "--header",
        f"Authorization: Bearer {api_keys[role]}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
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
        *(["--include-path-regex", path_regex] if path_regex else []),
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    suite = await asyncio.to_thread(_junit, tmp_path)
    assert len(suite.findall(".//testcase")) >= 8, output[-3000:]  # the operations ran
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


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (None, "nested deeper"),  # 700 levels in `details` (built below)
        ('{"player_id": "pl_1\\u0000", "amount": 1}', "NUL"),
        ('{"\\u0000": 1}', "NUL"),
        ('{"player_id": "pl_1", "amount": 99999999999999999999999}', "64 bits"),
        ('{"player_id": "pl_1", "amount": -99999999999999999999999}', "64 bits"),
    ],
)
async def test_hostile_json_bodies_are_400_and_change_nothing(
    api: httpx.AsyncClient, body: str | None, why: str
) -> None:
    player = await new_player(api)
    content = body or (
        f'{{"player_id": "{player}", "amount": 500000, "currency": "KZT", "method": "qr", '
        f'"details": {_nested(700)}}}'
    )
    key = uuid.uuid4().hex
    response = await api.post(
        "/v1/deposits",
        content=content,
        headers={"content-type": "application/json", "Idempotency-Key": key},
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json"), response.text
    assert why in response.json()["detail"]
    listed = await api.get("/v1/deposits", params={"player_id": player})
    assert listed.json()["data"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/deposits?limit=100000000000000000000",
        "/v1/ops/late-payments?limit=99999999999999999999999",
        "/v1/withdrawals/123456789012345678901234567890",
    ],
)
async def test_integers_beyond_64_bits_in_paths_and_queries_are_400(
    operator_api: httpx.AsyncClient, path: str
) -> None:
    response = await operator_api.get(path)
    assert (response.status_code, response.json()["code"]) == (400, "number_out_of_range")


async def test_non_ascii_signature_headers_are_refused_at_every_webhook(
    anonymous_api: httpx.AsyncClient, settings: Settings
) -> None:
    """Every provider's webhook, without a key: a signature header of non-ASCII bytes is a
    precise 4xx (the signature cannot be ours), never a 500 from comparing it."""
    names = (
        "X-Signature",
        "X-Signature-Timestamp",
        "X-Timestamp",
        "X-Content-HMAC",
        "Content-HMAC",
        "X-KazBank-Signature",
        "X-KazBank-Timestamp",
    )
    headers = {name.encode(): "zäöü€".encode() for name in names}
    for rule in settings.providers:
        for body in (b"{}", b"pg_order_id=x&pg_sig=\xc3\xa4"):
            answer = await anonymous_api.post(
                f"/v1/webhooks/{rule.name}", content=body, headers=headers
            )
            assert 400 <= answer.status_code < 500, (rule.name, answer.status_code, answer.text)


ARABIC_INDIC_PHONE = "+77" + "".join(chr(0x0660 + int(d)) for d in "011234567")


async def test_digits_of_other_scripts_are_not_phone_numbers(api: httpx.AsyncClient) -> None:
    """A phone in Arabic-Indic digits is `\\d` to a Unicode regex, never a number to a bank."""
    player = await new_player(api)
    deposit = await api.post(
        "/v1/deposits",
        json={
            "player_id": player,
            "amount": 500_000,
            "currency": "KZT",
            "method": "mobile_banking",
            "details": {"phone": ARABIC_INDIC_PHONE},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert (deposit.status_code, deposit.json()["code"]) == (422, "invalid_details")
    registered = await api.post("/v1/players", json=player_body(phone=ARABIC_INDIC_PHONE))
    assert (registered.status_code, registered.json()["code"]) == (422, "invalid_phone")
    payout = await api.post(
        "/v1/withdrawals",
        json={
            "player_id": player,
            "amount": 10_000_00,
            "currency": "KZT",
            "method": "mobile_banking",
            "destination": {"phone": ARABIC_INDIC_PHONE},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert payout.status_code == 422, payout.text
    assert payout.json()["code"] in ("invalid_phone", "invalid_destination")


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "ftp://casino.example/", "//casino.example/back"],
)
async def test_return_urls_are_web_pages_only(api: httpx.AsyncClient, url: str) -> None:
    player = await new_player(api)
    response = await api.post(
        "/v1/deposits",
        json={
            "player_id": player,
            "amount": 500_000,
            "currency": "KZT",
            "method": "aggregator",
            "details": {"return_url": url},
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert (response.status_code, response.json()["code"]) == (422, "invalid_details")


async def test_a_self_exclusion_at_the_calendars_end_is_refused_and_the_player_still_works(
    api: httpx.AsyncClient,
) -> None:
    player = await new_player(api)
    for until in ("9999-12-31", "9999-12-31T23:59:59Z"):
        response = await api.post(
            f"/v1/players/{player}/self-exclusion", json={"until": until, "reason": "x"}
        )
        assert (response.status_code, response.json().get("code")) == (422, "invalid_until"), (
            response.text
        )
    assert (await api.get(f"/v1/players/{player}/self-exclusion")).status_code == 200
    assert (await api.get(f"/v1/players/{player}")).status_code == 200
