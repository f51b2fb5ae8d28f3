"""`/metrics` with `PAY_METRICS_TOKEN`: a scrape without the token is refused before any query.

(The edge never forwards `/metrics` at all: tests/test_compose.py checks its configuration.)
"""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from api.app import create_app
from config import Settings

TOKEN = "metrics-" + "m" * 40


@pytest.fixture(scope="module")
async def guarded(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}))
    async with application.router.lifespan_context(application):
        yield application


async def _scrape(app: FastAPI, authorization: str | bytes | None) -> httpx.Response:
    headers: dict[bytes, bytes] = {}
    if authorization is not None:
        value = authorization if isinstance(authorization, bytes) else authorization.encode()
        headers[b"Authorization"] = value
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    ) as client:
        return await client.get("/metrics")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        "Bearer é".encode(),
    ],
)
async def test_a_scrape_without_the_token_is_refused(
    guarded: FastAPI, authorization: str | bytes | None
) -> None:
    response = await _scrape(guarded, authorization)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "PAY_METRICS_TOKEN" in response.json()["detail"]
    assert TOKEN not in response.text


async def test_the_token_lets_prometheus_scrape(guarded: FastAPI) -> None:
    response = await _scrape(guarded, f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert "kzpay_payments" in response.text


async def test_without_a_token_configured_metrics_stay_open(app: FastAPI) -> None:
    """Development and tests: nothing configured, nothing asked (production requires it)."""
    assert (await _scrape(app, None)).status_code == 200
