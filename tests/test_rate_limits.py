"""Rate limits per API key, per client IP and per provider's webhook: the request past the limit
is a 429 problem+json with Retry-After, before any handler reads it; other clients go on."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from config import Settings
from domain.roles import Role
from tests.conftest import _client


@pytest.fixture
async def limited_app(settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    limited = settings.model_copy(
        update={
            "rate_limits_enabled": True,
            "rate_limit_per_api_key": "5/minute",
            "rate_limit_per_client_ip": "12/minute",
            "rate_limit_per_provider_webhook": "3/minute",
        }
    )
    application = create_app(limited)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        yield application


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1


async def test_a_key_past_its_limit_is_429_and_another_key_goes_on(
    limited_app: FastAPI, api_keys: dict[Role, str]
) -> None:
    async with _client(limited_app, api_keys[Role.MERCHANT]) as merchant:
        answers = [await merchant.get("/v1/players/pl_nope") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [404] * 5
    _refused(answers[5])
    async with _client(limited_app, api_keys[Role.OPERATOR]) as operator:
        assert (await operator.get("/v1/ops/stuck")).status_code == 200
    async with _client(limited_app, None) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200  # never limited


async def test_a_client_ip_past_its_limit_is_429_whatever_the_keys(
    limited_app: FastAPI,
) -> None:
    codes = []
    for n in range(13):
        async with _client(limited_app, f"not-a-key-{n}") as client:
            codes.append((await client.get("/v1/players/pl_nope")).status_code)
    assert codes[:12] == [401] * 12
    assert codes[12] == 429


async def test_webhooks_are_limited_per_provider(limited_app: FastAPI) -> None:
    async with _client(limited_app, None) as provider:
        answers = [await provider.post("/v1/webhooks/ioka", content=b"{}") for _ in range(4)]
        other = await provider.post("/v1/webhooks/kazbank", content=b"{}")
    assert [a.status_code for a in answers[:3]] == [401] * 3  # unsigned: refused, but counted
    _refused(answers[3])
    assert other.status_code == 401  # another provider's budget
