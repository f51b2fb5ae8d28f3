"""Late money is never dropped, and a callback's word never moves money.

Late payments are reported by callbacks, so these tests use providers that send them: ioka
(aggregator: webhooks registered per shop, here to the API the tests serve), KazBank (bank
transfers, from statement lines) and Freedom Pay (cards: the signed result callback). Kaspi
sends none; a signal to its deposit's workflow stands for any claim of payment.

A late payment is judged by the deposit's risk review as an on-time one is (issue 18): held in
`in_review` until an operator approves it (rejected: refunded at the provider), or credited with
the person's withdrawals blocked under `review_mode = "credit"`.

A case whose policy is `refund` (money taken at a second provider for a deposit credited at
another, or any late payment under the `refund` policy) is refunded through the connector that
took the money; a refusal leaves the case open and the deposit flagged stuck.
"""

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.gateway_models import ProviderEvent
from api.app import create_app
from config import Settings
from db import late_payments as late_store
from domain.roles import Role
from providers.amounts import from_decimal_string
from providers.connectors.freedom_pay import (
    FreedomPayClient,
    merchant_id,
    new_salt,
    read_answer,
    signed_form,
)
from providers.registry import card_providers, provider_http_client
from simulator.connectors.ioka import encode_callback as ioka_callback
from simulator.connectors.ioka import order_id as ioka_order_id
from tests import test_gateway as gateway
from tests.conftest import (
    VISA_DECLINED,
    _client,
    _result,
    card_deposit,
    deposit_and_wait,
    new_player,
)
from tests.fraud_helpers import overlay
from tests.histories_helpers import keep
from tests.test_card_holder import _result_callback as freedom_result_callback
from tests.test_gateway import _at_provider, _create, _credits, _deposit, _finish, _until_status
from tests.test_withdrawals import iban_withdrawal, wager
from worker import build_worker
from workflows.deposit import DepositWorkflow
from workflows.late_payment import LatePaymentResult, late_payment_workflow_id

api_server = gateway.api_server  # the API on the port the simulator calls back
sim = gateway.sim  # the simulator's admin API, reset after each test

IOKA_EVENTS = ["PAYMENT_APPROVED", "PAYMENT_CAPTURED", "PAYMENT_CANCELLED", "PAYMENT_DECLINED"]


@pytest.fixture
async def ioka_webhook(sim: httpx.AsyncClient, settings: Settings) -> AsyncIterator[None]:
    """ioka sends webhooks where the shop registered them (once per shop, for orders made
    after): here, to the API the tests serve on the port of `Settings.api_url`."""
    key = {"API-KEY": settings.provider_secret("ioka")}
    hook = await sim.post(
        "/providers/ioka/v2/webhooks",
        json={"url": f"{settings.api_url}/v1/webhooks/ioka", "events": IOKA_EVENTS},
        headers=key,
    )
    assert hook.status_code == 201, hook.text
    yield
    removed = await sim.delete(f"/providers/ioka/v2/webhooks/{hook.json()['id']}", headers=key)
    assert removed.status_code == 204, removed.text


@dataclass(frozen=True)
class Stack:
    """An API and its worker on a task queue of their own, configured as `settings` says."""

    merchant: httpx.AsyncClient
    operator: httpx.AsyncClient
    settings: Settings


@pytest.fixture
async def refunding(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[Stack]:
    """The platform with `late_payment_policy = "refund"`: late money goes back, never credited."""
    configured = settings.model_copy(
        update={
            "late_payment_policy": "refund",
            "temporal_task_queue": f"late-refund-{uuid.uuid4().hex[:8]}",
        }
    )
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
            yield Stack(merchant, operator, configured)


def _ioka_paid(deposit: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The event of ioka's webhook for the deposit's order paid in full."""
    return {
        "reference": deposit["id"],
        "status": "succeeded",
        "amount": deposit["amount"],
        "currency": "KZT",
        "provider_payment_id": ioka_order_id(deposit["id"]),
        "event_id": event_id or f"evt_{uuid.uuid4().hex[:8]}",
        "sent_at": "now",
    }


async def _late_result(client: Client, deposit_id: str, provider: str) -> LatePaymentResult:
    handle = client.get_workflow_handle(
        late_payment_workflow_id(deposit_id, provider), result_type=LatePaymentResult
    )
    await _result(handle)
    result: LatePaymentResult = await handle.result()
    return result


async def _paid_at(sim: httpx.AsyncClient, provider: str, reference: str) -> None:
    """Until the provider holds the payment as paid (the simulator pays it late on its own
    clock: no event to await)."""
    deadline = time.monotonic() + 20
    while True:
        log = (await sim.get(f"/admin/providers/{provider}/payments/{reference}")).json()
        status = (log.get("payment") or {}).get("status")
        if status == "succeeded" or time.monotonic() > deadline:
            assert status == "succeeded", log
            return
        await asyncio.sleep(0.05)


async def _delivered(
    sim: httpx.AsyncClient, reference: str, status: str, count: int
) -> list[dict[str, Any]]:
    """The callbacks of `status` the simulator delivered for the reference, once there are
    `count` (deliveries run in the simulator: no event to await)."""
    deadline = time.monotonic() + 20
    while True:
        sent = (await sim.get("/admin/callbacks", params={"reference": reference})).json()
        mine: list[dict[str, Any]] = [c for c in sent if c["status"] == status]
        if len(mine) >= count or time.monotonic() > deadline:
            assert len(mine) == count, sent
            return mine
        await asyncio.sleep(0.05)


async def _ioka_refunds(
    sim: httpx.AsyncClient, settings: Settings, reference: str
) -> list[dict[str, Any]]:
    """The refunds ioka itself lists for the order (its own API, as the shop's back office)."""
    listed = await sim.get(
        f"/providers/ioka/v2/orders/{ioka_order_id(reference)}/refunds",
        headers={"API-KEY": settings.provider_secret("ioka")},
    )
    assert listed.status_code == 200, listed.text
    refunds: list[dict[str, Any]] = listed.json()
    return refunds


async def _freedom_status(
    sim: httpx.AsyncClient, settings: Settings, reference: str
) -> dict[str, str]:
    """Freedom Pay's own get_status.php answer about the order (a signed form)."""
    fields = {
        "pg_merchant_id": merchant_id(settings.connector("freedom")),
        "pg_order_id": reference,
    }
    form = signed_form("get_status.php", fields, settings.provider_secret("freedom"), new_salt())
    answer = read_answer((await sim.post("/providers/freedom/get_status.php", data=form)).content)
    assert answer.fields.get("pg_status") == "ok", answer.fields
    return answer.fields


async def _money_moved(sim: httpx.AsyncClient, reference: str) -> list[str]:
    held: list[dict[str, Any]] = (
        await sim.get("/admin/charges", params={"reference": reference})
    ).json()
    return sorted(h["provider"] for h in held if h["money_moved"])


async def _stuck_reason(sessions: async_sessionmaker[AsyncSession], deposit_id: str) -> Any:
    async with sessions() as session:
        return await session.scalar(
            text("SELECT stuck_reason FROM deposits WHERE id = :id"), {"id": deposit_id}
        )


async def _alert_severity(sessions: async_sessionmaker[AsyncSession], dedupe_key: str) -> Any:
    async with sessions() as session:
        return await session.scalar(
            text("SELECT severity FROM alerts WHERE dedupe_key = :k"), {"k": dedupe_key}
        )


async def _available(api: httpx.AsyncClient, player_id: str) -> int:
    available: int = (await api.get(f"/v1/players/{player_id}")).json()["balance"]["available"]
    return available


# -- credited: the default policy ---------------------------------------------------------------


@pytest.mark.usefixtures("ioka_webhook")
async def test_a_success_after_expiry_opens_a_case_and_credits_once(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """ioka reports the order paid after it expired, and repeats its webhook twice."""
    await sim.put(
        "/admin/providers/ioka/behaviour",
        json={
            "late_success_after_expiry": True,
            "late_success_delay_ms": 1000,  # after the workflow read it expired
            "callback_same_event_repeat": 2,
        },
    )
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    expired = await _finish(api, temporal_client, deposit, skip_time=True)
    assert expired["status"] == "expired"

    case = await _case_when(operator_api, deposit["id"], lambda c: c["resolution"] != "open")
    assert (case["provider"], case["policy"], case["resolution"]) == ("ioka", "credit", "credited")
    assert case["deposit_status"] == "expired"
    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert (result.outcome, result.case_id) == ("credited", case["id"])
    delivered = await _delivered(sim, deposit["id"], "succeeded", 3)
    # The late success, then the very same request twice more: each taken once.
    assert [c.get("repeat", False) for c in delivered] == [False, True, True], delivered
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _available(api, player) == deposit["amount"]
    assert await _alert_severity(sessions, f"late_payment:{deposit['id']}:ioka") == "critical"
    await keep(
        temporal_client, late_payment_workflow_id(deposit["id"], "ioka"), "late_payment_credited"
    )


@pytest.mark.usefixtures("ioka_webhook")
async def test_a_late_success_recorded_before_its_workflow_started_is_taken_on_the_resend(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The receipt of a late success is committed before its workflow starts (so the workflow
    reads what the callback judged); if the start failed, the provider's resend of the same
    event starts it, once: money that arrives late is never dropped."""
    await sim.put(
        "/admin/providers/ioka/behaviour",
        json={
            "late_success_after_expiry": True,
            "late_success_delay_ms": 1000,
            "callback_lost": True,
        },
    )
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    expired = await _finish(api, temporal_client, deposit, skip_time=True)
    assert expired["status"] == "expired"
    await _paid_at(sim, "ioka", deposit["id"])
    body, headers = ioka_callback(settings.webhook_secret("ioka"), _ioka_paid(deposit))
    # The first delivery got as far as its receipt; the orchestrator then refused the start.
    async with sessions() as session:
        assert await late_store.first_receipt(
            session,
            provider="ioka",
            event_key=hashlib.sha256(body).hexdigest(),
            reference=deposit["id"],
        )
        await session.commit()
    for _ in range(2):
        again = await api.post("/v1/webhooks/ioka", content=body, headers=headers)
        assert (again.status_code, again.json()["outcome"]) == (200, "duplicate"), again.text
    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert result.outcome == "credited"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _available(api, player) == deposit["amount"]


async def test_a_signal_claiming_payment_credits_nothing_until_the_provider_confirms(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Whoever can signal the workflow cannot credit an unpaid deposit: it asks the provider."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "qr"))
    await _at_provider(sim, "kaspi_qr", deposit["id"])
    handle = temporal_client.get_workflow_handle(deposit["workflow_id"])
    for currency in ("KZT", "USD"):
        await handle.signal(
            DepositWorkflow.provider_event,
            ProviderEvent(
                provider="kaspi_qr",
                reference=deposit["id"],
                status="succeeded",
                amount_minor=deposit["amount"],
                currency=currency,
            ),
        )
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert done["status"] == "expired"
    assert await _credits(sessions, deposit["id"]) == 0


async def test_the_same_signed_callback_twice_is_taken_once(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """ioka's webhook carries no event id: the same body again is the same delivery."""
    await sim.put("/admin/providers/ioka/behaviour", json={"callback_lost": True})
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    await sim.post(f"/pay/ioka/{deposit['id']}/confirm")
    body, headers = ioka_callback(settings.webhook_secret("ioka"), _ioka_paid(deposit))
    first = await api.post("/v1/webhooks/ioka", content=body, headers=headers)
    again = await api.post("/v1/webhooks/ioka", content=body, headers=headers)
    assert first.json()["outcome"] == "signalled", first.text
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    done = await _finish(api, temporal_client, deposit)
    assert done["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1


async def test_a_repeated_success_for_the_credited_deposit_opens_no_case(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The very payment the deposit was credited for, reported again after the workflow ended:
    not late, no refund asked, nothing changes."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    await sim.post(f"/pay/ioka/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert (done["status"], done["provider"]) == ("succeeded", "ioka")
    body, headers = ioka_callback(settings.webhook_secret("ioka"), _ioka_paid(deposit))
    again = await api.post("/v1/webhooks/ioka", content=body, headers=headers)
    assert again.json()["outcome"] == "already_final", again.text
    listed = (await operator_api.get("/v1/ops/late-payments")).json()["data"]
    assert [c for c in listed if c["deposit_id"] == deposit["id"]] == []
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _ioka_refunds(sim, settings, deposit["id"]) == []


async def _statement_line(sim: httpx.AsyncClient, amount: int, reference: str) -> None:
    booked = await sim.post(
        "/admin/providers/kazbank/statement-lines",
        json={"amount": amount, "purpose": f"Payment for order {reference.upper()} thanks"},
    )
    assert booked.status_code == 201, booked.text


async def test_a_late_transfer_short_then_topped_up_is_a_case_then_credited_once(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """After the bank transfer expired, the player sends part of it, then the rest: the short
    part opens a case for an operator (another amount); the top-up makes it whole and the
    policy credits it, once."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "bank_transfer", amount=1_000_000))
    await _at_provider(sim, "kazbank", deposit["id"])
    assert (await _finish(api, temporal_client, deposit, skip_time=True))["status"] == "expired"

    await _statement_line(sim, 600_000, deposit["id"])
    short = await _case_when(operator_api, deposit["id"], lambda c: c["policy"] == "manual")
    assert (short["amount_minor"], short["resolution"]) == (600_000, "open")
    assert await _credits(sessions, deposit["id"]) == 0

    await _statement_line(sim, 400_000, deposit["id"])
    whole = await _case_when(operator_api, deposit["id"], lambda c: c["resolution"] == "credited")
    assert whole["amount_minor"] == 1_000_000
    assert await _credits(sessions, deposit["id"]) == 1
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "succeeded"


async def test_a_live_transfer_of_another_amount_is_flagged_then_becomes_a_case(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Paid over the amount while the order is open: not credited, flagged stuck at once with
    what arrived; when the order's time is up, the money is a late-payment case."""
    player = await new_player(api)
    deposit = await _create(api, _deposit(player, "bank_transfer", amount=1_000_000))
    await _at_provider(sim, "kazbank", deposit["id"])
    await _statement_line(sim, 1_100_000, deposit["id"])
    for _ in range(400):  # written by the workflow after its next poll: no event to await
        stuck = (await operator_api.get("/v1/ops/stuck", params={"older_than": "1d"})).json()
        mine = [p for p in stuck["data"] if p["id"] == deposit["id"]]
        if mine:
            break
        await asyncio.sleep(0.05)
    assert mine, "the over-paid deposit was never flagged"
    assert mine[0]["stuck_reason"].startswith("amount_mismatch_at:kazbank")
    done = await _finish(api, temporal_client, deposit, skip_time=True)
    assert (done["status"], done["status_reason"]) == ("expired", "expired:amount_mismatch")
    case = await _case_when(operator_api, deposit["id"], lambda c: c["policy"] == "manual")
    assert case["amount_minor"] == 1_100_000
    assert await _credits(sessions, deposit["id"]) == 0


# -- refunded through the connector that took the money ----------------------------------------


async def test_money_taken_at_a_second_acquirer_for_a_credited_deposit_is_refunded_there(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The deposit is credited at Halyk; the same order is then paid at Freedom Pay too (its
    payment page for our reference, paid by the player). Freedom Pay's signed result callback
    opens a case whose policy is `refund` (crediting again would pay twice, whatever the worker's
    policy), and the money goes back through Freedom Pay: refunded there in full, the case
    `refunded`, the player credited once, Halyk's charge untouched."""
    player = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player))
    assert (deposit["status"], deposit["provider"]) == ("succeeded", "halyk"), deposit
    amount = deposit["amount"]

    async with provider_http_client(settings) as http:
        freedom = card_providers(settings, http)["freedom"]
        assert isinstance(freedom, FreedomPayClient)
        page = await freedom.init_payment(
            reference=deposit["id"],
            amount=amount,
            currency="KZT",
            callback_url=f"{settings.api_url}/v1/webhooks/freedom",
        )
    assert page.status == "requires_action"
    paid = await sim.post(f"/pay/freedom/{deposit['id']}/confirm")
    assert paid.json()["status"] == "succeeded", paid.text
    assert await _money_moved(sim, deposit["id"]) == ["freedom", "halyk"]  # charged twice

    case = await _case_when(operator_api, deposit["id"], lambda c: c["resolution"] != "open")
    assert (case["provider"], case["policy"], case["resolution"]) == (
        "freedom",
        "refund",
        "refunded",
    ), case
    assert (case["deposit_status"], case["amount_minor"]) == ("succeeded", amount)
    result = await _late_result(temporal_client, deposit["id"], "freedom")
    assert (result.outcome, result.case_id) == ("refunded", case["id"])

    at_freedom = await _freedom_status(sim, settings, deposit["id"])
    assert at_freedom["pg_transaction_status"] == "refunded", at_freedom
    assert from_decimal_string(at_freedom["pg_refund_amount"]) == amount
    halyk = (await sim.get(f"/admin/providers/halyk/charges/{deposit['id']}")).json()
    assert halyk["charge"]["status"] == "succeeded"  # the credited payment stays

    assert await _credits(sessions, deposit["id"]) == 1
    assert await _available(api, player) == amount
    shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
    assert (shown["status"], shown["provider"]) == ("succeeded", "halyk")
    assert await _alert_severity(sessions, f"late_payment:{deposit['id']}:freedom") == "critical"
    assert await _stuck_reason(sessions, deposit["id"]) is None
    await keep(
        temporal_client,
        late_payment_workflow_id(deposit["id"], "freedom"),
        "late_payment_refunded",
    )


async def _expired_then_paid_at_ioka(
    stack: Stack, client: Client, sim: httpx.AsyncClient
) -> tuple[str, dict[str, Any]]:
    """A player's aggregator deposit that expired unpaid, and that ioka then reports paid (its
    webhook lost: the test delivers it when it chooses)."""
    await sim.put(
        "/admin/providers/ioka/behaviour",
        json={
            "late_success_after_expiry": True,
            "late_success_delay_ms": 1000,  # after the workflow read it expired
            "callback_lost": True,
        },
    )
    player = await new_player(stack.merchant)
    deposit = await _create(stack.merchant, _deposit(player, "aggregator"))
    await _at_provider(sim, "ioka", deposit["id"])
    expired = await _finish(stack.merchant, client, deposit, skip_time=True)
    assert expired["status"] == "expired", expired
    await _paid_at(sim, "ioka", deposit["id"])
    return player, deposit


async def _deliver_ioka_webhook(stack: Stack, deposit: dict[str, Any]) -> None:
    body, headers = ioka_callback(stack.settings.webhook_secret("ioka"), _ioka_paid(deposit))
    taken = await stack.merchant.post("/v1/webhooks/ioka", content=body, headers=headers)
    assert taken.json()["outcome"] == "late_payment", taken.text


async def test_under_the_refund_policy_a_late_payment_is_refunded_where_it_was_paid(
    refunding: Stack,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """`late_payment_policy = "refund"`: ioka's late success is refunded at ioka in full, the case
    `refunded`, and the player never credited."""
    player, deposit = await _expired_then_paid_at_ioka(refunding, temporal_client, sim)
    await _deliver_ioka_webhook(refunding, deposit)

    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert result.outcome == "refunded", result
    case = await _case_when(refunding.operator, deposit["id"], lambda c: c["id"] == result.case_id)
    assert (case["provider"], case["policy"], case["resolution"]) == ("ioka", "refund", "refunded")
    refunds = await _ioka_refunds(sim, refunding.settings, deposit["id"])
    assert [(r["status"], r["amount"]) for r in refunds] == [("APPROVED", deposit["amount"])]

    assert await _credits(sessions, deposit["id"]) == 0
    assert await _available(refunding.merchant, player) == 0
    shown = (await refunding.merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "expired"
    assert await _stuck_reason(sessions, deposit["id"]) is None


async def test_a_late_refund_refused_by_the_provider_flags_the_deposit_and_keeps_the_case_open(
    refunding: Stack,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Part of the late money was already returned in ioka's back office, so ioka refuses to
    refund the whole amount (PaymentRefundAmountExceededError): nothing is asked again, the
    deposit is flagged stuck (critical alert) and the case stays open for an operator."""
    player, deposit = await _expired_then_paid_at_ioka(refunding, temporal_client, sim)
    returned = await sim.post(
        f"/providers/ioka/v2/orders/{ioka_order_id(deposit['id'])}/refunds",
        json={"amount": 100_000, "reason": "returned by the shop in ioka's dashboard"},
        headers={"API-KEY": refunding.settings.provider_secret("ioka")},
    )
    assert returned.status_code == 200, returned.text
    await _deliver_ioka_webhook(refunding, deposit)

    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert result.outcome == "refund_refused", result
    case = await _case_when(refunding.operator, deposit["id"], lambda c: c["id"] == result.case_id)
    assert (case["provider"], case["policy"], case["resolution"]) == ("ioka", "refund", "open")
    assert case["resolved_at"] is None
    stuck = await _stuck_reason(sessions, deposit["id"])
    assert stuck is not None
    assert stuck.startswith("late_refund_refused_at:ioka: refused:refund_amount_exceeded"), stuck
    key = f"payment_stuck:deposit:{deposit['id']}:late_refund_refused_at:ioka"
    assert await _alert_severity(sessions, key) == "critical"
    refunds = await _ioka_refunds(sim, refunding.settings, deposit["id"])
    assert [r["amount"] for r in refunds] == [100_000]  # only the back office's

    assert await _credits(sessions, deposit["id"]) == 0
    assert await _available(refunding.merchant, player) == 0
    await keep(
        temporal_client,
        late_payment_workflow_id(deposit["id"], "ioka"),
        "late_payment_refund_refused",
    )


async def _case_when(
    operator_api: httpx.AsyncClient, deposit_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The deposit's late-payment case once `ready` (written by a workflow: no event)."""
    for _ in range(400):
        listed = await operator_api.get("/v1/ops/late-payments")
        assert listed.status_code == 200, listed.text
        mine = [c for c in listed.json()["data"] if c["deposit_id"] == deposit_id and ready(c)]
        if mine:
            case: dict[str, Any] = mine[0]
            return case
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such late-payment case for {deposit_id}")


async def test_a_signed_callback_with_a_nul_byte_is_refused_with_400(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """Signed does not mean well-formed: a NUL in the reference never reaches the database."""
    secret = settings.webhook_secret("ioka")
    body, headers = ioka_callback(secret, _ioka_paid({"id": "dep_\x00x", "amount": 1}))
    answer = await api.post("/v1/webhooks/ioka", content=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_callback"), answer.text
    body, headers = ioka_callback(secret, _ioka_paid({"id": "dep_x", "amount": 1}))
    twin = await api.post("/v1/webhooks/ioka", content=body, headers=headers)  # without the NUL
    assert (twin.status_code, twin.json()["code"]) == (404, "payment_not_found"), twin.text


# -- judged by the deposit's risk review (issue 18) ---------------------------------------------

# Aggregator deposits of the tests' 250_000 are "large": the engine sends them to review.
REVIEWED = "[deposit.rules.large_amount]\nmin_amount = 200_000\n"


async def _reviewed_expired_then_paid(
    stack: Stack, client: Client, sim: httpx.AsyncClient, fraud_overlay: Path, mode: str
) -> tuple[str, dict[str, Any]]:
    """A deposit the engine sent to review (`review_mode = mode`) that expired unpaid, and that
    ioka then reports paid (the test delivers the webhook)."""
    extra = f'[deposit]\nreview_mode = "{mode}"\n\n{REVIEWED}'
    with overlay(fraud_overlay, extra, f"late-review-{mode}"):
        player, deposit = await _expired_then_paid_at_ioka(stack, client, sim)
    shown = (await stack.merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["risk"]["decision"] == "review", shown["risk"]
    assert shown["risk"]["review"]["mode"] == mode
    return player, deposit


@pytest.fixture
def default_stack(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, settings: Settings
) -> Stack:
    return Stack(api, operator_api, settings)


async def test_a_late_payment_in_review_is_held_until_an_operator_approves_it(
    default_stack: Stack,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    fraud_overlay: Path,
) -> None:
    """Review means held, late too: ioka's late success for a deposit in review (`hold`) moves
    it to `in_review`, not credited, with the case open, until an operator approves it through
    the same API as an on-time deposit; then it is credited once."""
    stack = default_stack
    player, deposit = await _reviewed_expired_then_paid(
        stack, temporal_client, sim, fraud_overlay, "hold"
    )
    # Expired unpaid, its review has nothing to decide: off the queue unless asked for.
    queued = (await stack.operator.get("/v1/risk/reviews")).json()["data"]
    assert deposit["id"] not in [r["deposit_id"] for r in queued]
    lapsed = (await stack.operator.get("/v1/risk/reviews?include_lapsed=true")).json()["data"]
    assert deposit["id"] in [r["deposit_id"] for r in lapsed]
    await _deliver_ioka_webhook(stack, deposit)

    held = await _until_status(stack.merchant, deposit["id"], "in_review")
    assert held["status"] == "in_review", held
    assert str(held["status_reason"]).startswith("risk_review:large_amount"), held
    assert held["provider"] == "ioka"
    case = await _case_when(stack.operator, deposit["id"], lambda c: True)
    assert (case["policy"], case["resolution"]) == ("credit", "open")
    assert await _credits(sessions, deposit["id"]) == 0
    assert await _available(stack.merchant, player) == 0
    queue = (await stack.operator.get("/v1/risk/reviews")).json()["data"]
    item = next(r for r in queue if r["deposit_id"] == deposit["id"])
    assert (item["mode"], item["status"]) == ("hold", "pending"), item

    approved = await stack.operator.post(
        f"/v1/deposits/{deposit['id']}/approve", json={"reason": "paid late, KYC on file"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["risk"]["review"]["status"] == "approved"
    refused = await stack.operator.post(
        f"/v1/deposits/{deposit['id']}/reject", json={"reason": "changed my mind"}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")

    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert (result.outcome, result.case_id) == ("credited", case["id"])
    shown = (await stack.merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "succeeded"
    assert await _credits(sessions, deposit["id"]) == 1
    assert await _available(stack.merchant, player) == deposit["amount"]
    resolved = await _case_when(stack.operator, deposit["id"], lambda c: c["id"] == case["id"])
    assert resolved["resolution"] == "credited"
    await keep(
        temporal_client,
        late_payment_workflow_id(deposit["id"], "ioka"),
        "late_payment_review_approved",
    )
    await keep(temporal_client, deposit["workflow_id"], "late_review_approved")  # the review's


async def test_a_late_payment_whose_review_is_rejected_is_declined_and_refunded(
    default_stack: Stack,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    fraud_overlay: Path,
) -> None:
    """Rejected: the deposit is declined (`risk_review_rejected`), the money refunded at ioka in
    full, the case `refunded`, the player never credited."""
    stack = default_stack
    player, deposit = await _reviewed_expired_then_paid(
        stack, temporal_client, sim, fraud_overlay, "hold"
    )
    await _deliver_ioka_webhook(stack, deposit)
    await _until_status(stack.merchant, deposit["id"], "in_review")

    rejected = await stack.operator.post(
        f"/v1/deposits/{deposit['id']}/reject", json={"reason": "player unreachable"}
    )
    assert rejected.status_code == 200, rejected.text
    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert result.outcome == "refunded", result
    shown = (await stack.merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "declined"
    assert str(shown["status_reason"]).startswith("risk_review_rejected"), shown
    assert shown["risk"]["review"]["status"] == "rejected"
    refunds = await _ioka_refunds(sim, settings, deposit["id"])
    assert [(r["status"], r["amount"]) for r in refunds] == [("APPROVED", deposit["amount"])]
    case = await _case_when(stack.operator, deposit["id"], lambda c: c["id"] == result.case_id)
    assert case["resolution"] == "refunded"
    assert await _credits(sessions, deposit["id"]) == 0
    assert await _available(stack.merchant, player) == 0


async def test_a_late_payment_in_credit_mode_review_is_credited_and_blocks_withdrawals(
    default_stack: Stack,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    fraud_overlay: Path,
) -> None:
    """`review_mode = "credit"`: credited late, and the person's withdrawals wait for the
    review, which an operator then approves (never silently an approval)."""
    stack = default_stack
    player, deposit = await _reviewed_expired_then_paid(
        stack, temporal_client, sim, fraud_overlay, "credit"
    )
    await _deliver_ioka_webhook(stack, deposit)
    result = await _late_result(temporal_client, deposit["id"], "ioka")
    assert result.outcome == "credited", result
    shown = (await stack.merchant.get(f"/v1/deposits/{deposit['id']}")).json()
    assert shown["status"] == "succeeded"
    review = shown["risk"]["review"]
    assert (review["mode"], review["status"]) == ("credit", "pending"), review
    assert await _available(stack.merchant, player) == deposit["amount"]

    await wager(sessions, player, deposit["amount"])
    body = iban_withdrawal(player, 100_000)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    blocked = await stack.merchant.post("/v1/withdrawals", json=body, headers=key)
    assert (blocked.status_code, blocked.json()["code"]) == (422, "withdrawals_blocked_by_review")
    assert blocked.json()["deposits_in_review"] == [deposit["id"]]
    approved = await stack.operator.post(f"/v1/deposits/{deposit['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["risk"]["review"]["status"] == "approved"


async def test_a_late_payment_with_someone_elses_card_is_held_for_review(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The deposit failed at Halyk (declined), then the player paid the order on Freedom Pay's
    page: Freedom Pay's result callback names a cardholder who is not the player. Late money on
    someone else's card is held for review as it would be on time (the engine had approved the
    deposit): `in_review`, not credited, in the queue; rejected, it goes back at Freedom Pay."""
    player = await new_player(api)  # Aigerim Tulegenova
    failed = await deposit_and_wait(
        api, temporal_client, card_deposit(player, number=VISA_DECLINED)
    )
    assert (failed["status"], failed["risk"]["decision"]) == ("failed", "approve"), failed
    async with provider_http_client(settings) as http:
        freedom = card_providers(settings, http)["freedom"]
        assert isinstance(freedom, FreedomPayClient)
        page = await freedom.init_payment(
            reference=failed["id"],
            amount=failed["amount"],
            currency="KZT",
            callback_url="http://127.0.0.1:9/nowhere",  # its own callback lost: ours comes
        )
    assert page.status == "requires_action"
    paid = await sim.post(f"/pay/freedom/{failed['id']}/confirm")
    assert paid.json()["status"] == "succeeded", paid.text
    body = freedom_result_callback(failed, "IVAN PETROV", settings.webhook_secret("freedom"))
    taken = await api.post(
        "/v1/webhooks/freedom",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert taken.status_code == 200, taken.text

    held = await _until_status(api, failed["id"], "in_review")
    assert held["status"] == "in_review", held
    assert "card_holder_mismatch" in str(held["status_reason"]), held
    assert held["provider"] == "freedom"
    assert await _credits(sessions, failed["id"]) == 0
    queue = (await operator_api.get("/v1/risk/reviews")).json()["data"]
    item = next(r for r in queue if r["deposit_id"] == failed["id"])
    assert (item["mode"], item["status"]) == ("hold", "pending"), item
    assert "card_holder_mismatch" in item["reasons"]

    rejected = await operator_api.post(
        f"/v1/deposits/{failed['id']}/reject", json={"reason": "someone else's card"}
    )
    assert rejected.status_code == 200, rejected.text
    result = await _late_result(temporal_client, failed["id"], "freedom")
    assert result.outcome == "refunded", result
    at_freedom = await _freedom_status(sim, settings, failed["id"])
    assert at_freedom["pg_transaction_status"] == "refunded", at_freedom
    shown = (await api.get(f"/v1/deposits/{failed['id']}")).json()
    assert shown["status"] == "declined"
    assert await _credits(sessions, failed["id"]) == 0
    assert await _available(api, player) == 0
