"""The cardholder name Freedom Pay reports reaches the risk engine: a card of someone else is a
reason on the deposit's risk and a high alert; the name itself is not kept."""

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from domain.roles import Role
from providers.connectors.freedom_pay import signed_form
from providers.registry import provider_http_client
from tests.conftest import _client, card_deposit, deposit_and_wait, new_player
from tests.test_connectors_end_to_end import only
from worker import build_worker


@pytest.fixture
async def freedom(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The API (and a worker) taking cards through Freedom Pay."""
    configured = only(settings, "freedom", f"holder-{uuid.uuid4().hex[:8]}")
    app: FastAPI = create_app(configured)
    async with (
        provider_http_client(configured) as http,
        build_worker(temporal_env.client, configured, sessions=sessions, http=http),
        app.router.lifespan_context(app),
    ):
        app.state.payments._temporal = temporal_env.client
        async with _client(app, api_keys[Role.MERCHANT]) as merchant:
            yield merchant, configured


def _result_callback(deposit: dict[str, object], owner: str, secret: str) -> bytes:
    fields = {
        "pg_order_id": str(deposit["id"]),
        "pg_payment_id": str(700000 + uuid.uuid4().int % 100000),
        "pg_amount": "5000.00",
        "pg_currency": "KZT",
        "pg_result": "1",
        "pg_can_reject": "1",
        "pg_card_pan": "4242-42XX-XXXX-4242",
        "pg_card_owner": owner,
    }
    return urlencode(signed_form("freedom", fields, secret, uuid.uuid4().hex[:16])).encode()


@pytest.mark.parametrize(
    ("owner", "matches"), [("IVAN PETROV", False), ("TULEGENOVA AIGERIM", True)]
)
async def test_the_reported_cardholder_is_judged_against_the_player(
    freedom: tuple[httpx.AsyncClient, Settings],
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    owner: str,
    matches: bool,
) -> None:
    api, configured = freedom
    player = await new_player(api)  # Aigerim Tulegenova
    deposit = await deposit_and_wait(api, temporal_env.client, card_deposit(player))
    assert (deposit["status"], deposit["provider"]) == ("succeeded", "freedom")
    body = _result_callback(deposit, owner, configured.webhook_secret("freedom"))
    answer = await api.post(
        "/v1/webhooks/freedom",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")  # its signed answer
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert ("card_holder_mismatch" in shown["risk"]["reasons"]) is not matches
    # Credited already: someone else's card puts the deposit in review and the person's
    # withdrawals wait for it (issue 18); the player's own card changes nothing.
    review = shown["risk"].get("review")
    if matches:
        assert review is None
    else:
        assert (review["mode"], review["status"]) == ("credit", "pending")
    async with sessions() as session:
        stored = await session.scalar(
            text("SELECT risk FROM deposits WHERE id = :id"), {"id": deposit["id"]}
        )
        alert = await session.scalar(
            text("SELECT severity FROM alerts WHERE dedupe_key = :k"),
            {"k": f"card_holder_mismatch:{deposit['id']}"},
        )
    assert stored["card_holder_matches"] is matches
    assert owner not in str(stored)  # the name itself is not kept
    assert alert == (None if matches else "high")
