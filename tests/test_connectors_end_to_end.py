"""One deposit end to end through each real provider's connector, turned on by configuration
only: the routing rule enabled for that provider, nothing else changed. The API, a worker and
the workflow run as in production; the simulator speaks the provider's own API."""

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from domain.roles import Role
from providers.registry import provider_http_client
from tests import test_gateway as gateway
from tests.conftest import _client, card_deposit, new_player
from tests.test_gateway import _at_provider, _create, _credits, _deposit, _finish
from worker import build_worker

sim = gateway.sim  # the simulator's admin API, reset after each test

# provider, method, deposit details, how the player pays on the simulator's page (None: a card
# charged at once)
CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("halyk", "card", {}, None),
    ("cloudpayments", "card", {}, None),
    ("freedom", "card", {}, None),
    ("kaspi_qr", "qr", {}, "confirm"),
    ("kaspi_pay", "mobile_banking", {"phone": "+77011234567"}, "confirm"),
    ("ioka", "aggregator", {"return_url": "https://casino.example/back"}, "confirm"),
    ("freedom_wallet", "ewallet", {"wallet_account": "+77011234567"}, "confirm"),
]


def only(settings: Settings, provider: str, queue: str) -> Settings:
    """The same configuration with `provider` the only one enabled for its method."""
    method = settings.provider_rule(provider)
    assert method is not None
    rules = tuple(
        dataclasses.replace(rule, enabled=rule.name == provider)
        if rule.method == method.method
        else rule
        for rule in settings.providers
    )
    return settings.model_copy(update={"providers": rules, "temporal_task_queue": queue})


@pytest.fixture
async def stack_for(
    request: pytest.FixtureRequest,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[httpx.AsyncClient]:
    """A worker and the API configured with only this provider on for its method."""
    configured = only(settings, request.param, f"real-{uuid.uuid4().hex[:8]}")
    async with provider_http_client(configured) as http:
        worker = build_worker(temporal_env.client, configured, sessions=sessions, http=http)
        async with worker:
            app: FastAPI = create_app(configured)
            async with app.router.lifespan_context(app):
                app.state.payments._temporal = temporal_env.client
                async with _client(app, api_keys[Role.MERCHANT]) as client:
                    yield client


@pytest.mark.parametrize(
    ("stack_for", "method", "details", "pay"),
    [pytest.param(p, m, d, a, id=p) for p, m, d, a in CASES],
    indirect=["stack_for"],
)
async def test_a_deposit_through_the_real_providers_connector(
    stack_for: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    request: pytest.FixtureRequest,
    method: str,
    details: dict[str, Any],
    pay: str | None,
) -> None:
    provider = request.node.callspec.params["stack_for"]
    api = stack_for
    player = await new_player(api)
    body = card_deposit(player) if method == "card" else _deposit(player, method, **details)
    deposit = await _create(api, body)
    if pay is not None:
        await _at_provider(sim, provider, deposit["id"])
        paid = await sim.post(f"/pay/{provider}/{deposit['id']}/{pay}")
        assert paid.status_code == 200, paid.text
    done = await _finish(api, temporal_env.client, deposit, skip_time=pay is not None)
    assert (done["status"], done["provider"]) == ("succeeded", provider), done
    held = (await sim.get("/admin/charges", params={"reference": deposit["id"]})).json()
    assert [h["provider"] for h in held if h["money_moved"]] == [provider], held
    assert await _credits(sessions, deposit["id"]) == 1
    if provider.startswith("kaspi"):  # how the payer funded it is kept with the deposit
        assert done["funding"] is not None, done
        assert done["funding"]["product_type"], done["funding"]
