"""Refunds: `POST /v1/deposits/{id}/refunds`, full or partial, idempotent, through the connector
that took the payment (every real provider's: Halyk ePay, Freedom Pay cards and e-wallet,
CloudPayments, Kaspi QR and Kaspi Pay, ioka), with the hold posted once the provider confirms; a
provider configured without refunds is refused before anything is held."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from config import Settings
from domain.roles import Role
from providers.errors import ProviderRejected
from providers.registry import build_client, connector_class, provider_http_client
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
from tests.test_gateway import _at_provider, _create, _deposit, _finish
from worker import build_worker

Stack = tuple[httpx.AsyncClient, httpx.AsyncClient]  # merchant, operator
OpenStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def stacks(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[OpenStack]:
    """Opens an API (and its worker) taking its method only through `provider`, its connector
    configured with `refunds` or not; merchant and operator clients of it."""
    async with contextlib.AsyncExitStack() as opened:

        async def open_stack(provider: str, *, refunds: bool = True) -> Stack:
            configured = only(settings, provider, f"refund-{uuid.uuid4().hex[:8]}")
            if not refunds:
                connector = configured.connector(provider).model_copy(update={"refunds": False})
                configured = configured.model_copy(update={"connectors": {provider: connector}})
            app: FastAPI = create_app(configured)
            http = await opened.enter_async_context(provider_http_client(configured))
            worker = build_worker(temporal_env.client, configured, sessions=sessions, http=http)
            await opened.enter_async_context(worker)
            await opened.enter_async_context(app.router.lifespan_context(app))
            app.state.payments._temporal = temporal_env.client
            merchant = await opened.enter_async_context(_client(app, api_keys[Role.MERCHANT]))
            operator = await opened.enter_async_context(_client(app, api_keys[Role.OPERATOR]))
            return merchant, operator

        yield open_stack


@pytest.fixture
async def sim(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator_url, timeout=30) as client:
        yield client


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def _available(api: httpx.AsyncClient, player: str) -> int:
    available: int = (await api.get(f"/v1/players/{player}")).json()["balance"]["available"]
    return available


async def test_a_partial_refund_through_halyk_then_the_rest(
    stacks: OpenStack, temporal_env: WorkflowEnvironment
) -> None:
    merchant, operator = await stacks("halyk")
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


# provider, method, deposit details, how the player pays on the simulator's page (None: a card
# charged at once)
REFUNDING: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("halyk", "card", {}, None),
    ("freedom", "card", {}, None),
    ("cloudpayments", "card", {}, None),
    ("kaspi_qr", "qr", {}, "confirm"),
    ("kaspi_pay", "mobile_banking", {"phone": "+77011234567"}, "confirm"),
    ("ioka", "aggregator", {"return_url": "https://casino.example/back"}, "confirm"),
    ("freedom_wallet", "ewallet", {"wallet_account": "+77011234567"}, "confirm"),
]


@pytest.mark.parametrize(
    ("provider", "method", "details", "pay"),
    [pytest.param(p, m, d, a, id=p) for p, m, d, a in REFUNDING],
)
async def test_a_full_refund_through_each_real_providers_connector(
    stacks: OpenStack,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    sim: httpx.AsyncClient,
    provider: str,
    method: str,
    details: dict[str, Any],
    pay: str | None,
) -> None:
    """The whole deposit back through the provider that took it: posted once it confirms, and
    the provider itself then refuses to give back anything more (it holds our refund)."""
    merchant, operator = await stacks(provider)
    player = await new_player(merchant)
    amount = 250_000
    body = (
        card_deposit(player, amount)
        if method == "card"
        else _deposit(player, method, amount, **details)
    )
    deposit = await _create(merchant, body)
    if pay is not None:
        await _at_provider(sim, provider, deposit["id"])
        paid = await sim.post(f"/pay/{provider}/{deposit['id']}/{pay}")
        assert paid.status_code == 200, paid.text
    done = await _finish(merchant, temporal_env.client, deposit, skip_time=pay is not None)
    assert (done["status"], done["provider"]) == ("succeeded", provider), done
    assert await _available(merchant, player) == amount

    url = f"/v1/deposits/{deposit['id']}/refunds"
    refund = await operator.post(
        url, json={"amount": amount, "reason": "duplicate"}, headers=_key()
    )
    assert refund.status_code == 202, refund.text
    await _result(temporal_env.client.get_workflow_handle(refund.json()["workflow_id"]))
    listed = (await operator.get(url)).json()["data"]
    assert [(r["amount"], r["status"], r["provider"]) for r in listed] == [
        (amount, "succeeded", provider)
    ]
    assert await _available(merchant, player) == 0
    shown = (await merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    assert [t["kind"] for t in shown["ledger"]].count("refund_paid") == 1

    # At the provider: nothing is left to give back.
    async with httpx.AsyncClient(timeout=10) as http:
        client: Any = build_client(settings, http, provider, connector_class(settings, provider))
        with pytest.raises(ProviderRejected):
            await client.refund(reference=deposit["id"], amount=100, currency="KZT")


async def test_refunds_refuse_what_cannot_be_refunded_and_change_nothing(
    stacks: OpenStack, temporal_env: WorkflowEnvironment, operator_api: httpx.AsyncClient
) -> None:
    """Halyk configured without refunds (`ConnectorConfig(refunds=False)`): its deposits are
    refunded in its back office, never through the platform."""
    merchant, operator = await stacks("halyk", refunds=False)
    player = await new_player(merchant)
    halyk = await deposit_and_wait(merchant, temporal_env.client, card_deposit(player, 500_000))
    assert (halyk["status"], halyk["provider"]) == ("succeeded", "halyk")
    failed = await deposit_and_wait(
        merchant, temporal_env.client, card_deposit(player, 500_000, number=VISA_DECLINED)
    )
    assert failed["status"] == "failed"
    body = {"amount": 100_000, "reason": "player asked"}
    cases = [
        (f"/v1/deposits/{halyk['id']}/refunds", body, 422, "refunds_not_supported"),
        (f"/v1/deposits/{failed['id']}/refunds", body, 409, "invalid_state"),
        ("/v1/deposits/dep_nope/refunds", body, 404, "deposit_not_found"),
    ]
    for url, sent, status, code in cases:
        answer = await operator.post(url, json=sent, headers=_key())
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    for bad in ({"amount": 0, "reason": "x"}, {"amount": 1, "reason": "nul\x00"}, {"amount": 1}):
        answer = await operator.post(
            f"/v1/deposits/{halyk['id']}/refunds", json=bad, headers=_key()
        )
        assert answer.status_code in (400, 422), answer.text
    refused = await merchant.post(f"/v1/deposits/{halyk['id']}/refunds", json=body, headers=_key())
    assert refused.status_code == 403  # operators refund, not the casino backend
    listed = await operator.get(f"/v1/deposits/{halyk['id']}/refunds")
    assert listed.json()["data"] == []
    assert await _available(merchant, player) == 500_000

    # It was the configuration: the platform's default one refunds the same deposit via Halyk.
    allowed = await operator_api.post(
        f"/v1/deposits/{halyk['id']}/refunds", json=body, headers=_key()
    )
    assert allowed.status_code == 202, allowed.text
    await _result(temporal_env.client.get_workflow_handle(allowed.json()["workflow_id"]))
    listed = await operator.get(f"/v1/deposits/{halyk['id']}/refunds")
    assert [(r["amount"], r["status"]) for r in listed.json()["data"]] == [(100_000, "succeeded")]
    assert await _available(merchant, player) == 400_000


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
        f"/v1/deposits/dep_{'9' * 5000}/refunds", json=body, headers=_key()
    )
    assert (long_id.status_code, long_id.json()["code"]) == (404, "deposit_not_found")
    huge_id = await operator_api.post(
        f"/v1/deposits/{'9' * 5000}/refunds", json=body, headers=_key()
    )
    assert huge_id.status_code in (400, 404), huge_id.text  # beyond 64 bits, or no such deposit
    arabic_indic = "\u0661\u0662\u0663"  # 123 in Arabic-Indic digits
    for amount in (10**30, arabic_indic, 1.5, -1):
        answer = await operator_api.post(
            "/v1/deposits/dep_x/refunds", json={"amount": amount, "reason": "x"}, headers=_key()
        )
        assert answer.status_code in (400, 422), answer.text
    for limit in (arabic_indic, "99999999999999999999999"):
        answer = await operator_api.get("/v1/ops/late-payments", params={"limit": limit})
        assert answer.status_code in (400, 422), answer.text
