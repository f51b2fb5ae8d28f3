"""Refunds: `POST /v1/deposits/{id}/refunds`, full or partial, idempotent, through the connector
that took the payment, with the hold posted once the provider confirms."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from domain.roles import Role
from providers.registry import provider_http_client
from tests.conftest import (
    VISA_DECLINED,
    _client,
    _result,
    card_deposit,
    deposit_and_wait,
    new_player,
)
from tests.histories_helpers import keep
from tests.test_connectors_end_to_end import only
from worker import build_worker


@pytest.fixture
async def halyk(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Merchant and operator clients of an API (and its worker) taking cards through Halyk."""
    configured = only(settings, "halyk", f"refund-{uuid.uuid4().hex[:8]}")
    app: FastAPI = create_app(configured)
    async with (
        provider_http_client(configured) as http,
        build_worker(temporal_env.client, configured, sessions=sessions, http=http),
        app.router.lifespan_context(app),
    ):
        app.state.payments._temporal = temporal_env.client
        async with (
            _client(app, api_keys[Role.MERCHANT]) as merchant,
            _client(app, api_keys[Role.OPERATOR]) as operator,
        ):
            yield merchant, operator


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def _available(api: httpx.AsyncClient, player: str) -> int:
    available: int = (await api.get(f"/v1/players/{player}")).json()["balance"]["available"]
    return available


async def test_a_partial_refund_through_halyk_then_the_rest(
    halyk: tuple[httpx.AsyncClient, httpx.AsyncClient], temporal_env: WorkflowEnvironment
) -> None:
    merchant, operator = halyk
    player = await new_player(merchant)
    deposit = await deposit_and_wait(merchant, temporal_env.client, card_deposit(player, 500_000))
    assert (deposit["status"], deposit["provider"]) == ("succeeded", "halyk")
    url = f"/v1/deposits/{deposit['id']}/refunds"

    key = _key()
    first = await operator.post(
        url, json={"amount": 200_000, "reason": "player asked"}, headers=key
    )
    assert first.status_code == 202, first.text
    again = await operator.post(
        url, json={"amount": 200_000, "reason": "player asked"}, headers=key
    )
    assert again.json()["id"] == first.json()["id"]  # the same request, the same refund
    await _result(temporal_env.client.get_workflow_handle(first.json()["workflow_id"]))
    await keep(temporal_env.client, first.json()["workflow_id"], "refund_succeeded")
    assert await _available(merchant, player) == 300_000

    too_much = await operator.post(url, json={"amount": 300_001, "reason": "x"}, headers=_key())
    assert (too_much.status_code, too_much.json()["code"]) == (422, "refund_exceeds_deposit")
    rest = await operator.post(url, json={"amount": 300_000, "reason": "the rest"}, headers=_key())
    assert rest.status_code == 202, rest.text
    await _result(temporal_env.client.get_workflow_handle(rest.json()["workflow_id"]))

    listed = (await operator.get(url)).json()["data"]
    assert [(r["amount"], r["status"]) for r in listed] == [
        (200_000, "succeeded"),
        (300_000, "succeeded"),
    ]
    assert await _available(merchant, player) == 0
    shown = (await merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    kinds = sorted(t["kind"] for t in shown["ledger"])
    assert kinds.count("refund_paid") == 2, kinds


async def test_refunds_refuse_what_cannot_be_refunded_and_change_nothing(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, temporal_client: object
) -> None:
    from temporalio.client import Client

    assert isinstance(temporal_client, Client)
    player = await new_player(api)
    kazcard = await deposit_and_wait(api, temporal_client, card_deposit(player, 500_000))
    failed = await deposit_and_wait(
        api, temporal_client, card_deposit(player, 500_000, number=VISA_DECLINED)
    )
    body = {"amount": 100_000, "reason": "player asked"}
    cases = [
        (f"/v1/deposits/{kazcard['id']}/refunds", body, 422, "refunds_not_supported"),
        (f"/v1/deposits/{failed['id']}/refunds", body, 409, "invalid_state"),
        ("/v1/deposits/dep_nope/refunds", body, 404, "deposit_not_found"),
    ]
    for url, sent, status, code in cases:
        answer = await operator_api.post(url, json=sent, headers=_key())
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    for bad in ({"amount": 0, "reason": "x"}, {"amount": 1, "reason": "nul\x00"}, {"amount": 1}):
        answer = await operator_api.post(
            f"/v1/deposits/{kazcard['id']}/refunds", json=bad, headers=_key()
        )
        assert answer.status_code == 422, answer.text
    merchant = await api.post(f"/v1/deposits/{kazcard['id']}/refunds", json=body, headers=_key())
    assert merchant.status_code == 403  # operators refund, not the casino backend
    listed = await operator_api.get(f"/v1/deposits/{kazcard['id']}/refunds")
    assert listed.json()["data"] == []
    assert await _available(api, player) == 500_000


async def test_hostile_refund_inputs_get_a_4xx_never_a_500(operator_api: httpx.AsyncClient) -> None:
    """NUL in the path or query, huge and foreign-digit amounts: refused before anything runs."""
    body = {"amount": 1, "reason": "x"}
    for url in ("/v1/deposits/dep_%00x/refunds", "/v1/deposits/%7F/refunds"):
        for answer in (
            await operator_api.post(url, json=body, headers=_key()),
            await operator_api.get(url),
        ):
            assert (answer.status_code, answer.json()["code"]) == (400, "invalid_characters")
    nul_query = await operator_api.get("/v1/ops/late-payments", params={"limit": "1\x00"})
    assert nul_query.status_code == 400
    long_id = await operator_api.post(
        f"/v1/deposits/{'9' * 5000}/refunds", json=body, headers=_key()
    )
    assert long_id.status_code == 404
    arabic_indic = "\u0661\u0662\u0663"  # 123 in Arabic-Indic digits
    for amount in (10**30, arabic_indic, 1.5, -1):
        answer = await operator_api.post(
            "/v1/deposits/dep_x/refunds", json={"amount": amount, "reason": "x"}, headers=_key()
        )
        assert answer.status_code == 422, answer.text
    for limit in (arabic_indic, "99999999999999999999999"):
        answer = await operator_api.get("/v1/ops/late-payments", params={"limit": limit})
        assert answer.status_code == 422, answer.text
