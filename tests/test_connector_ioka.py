"""The ioka connector (`providers.connectors.ioka`): its requests and the reading of every
documented answer against fixtures written by hand from ioka's documented formats
(`tests/fixtures/ioka/`, after the OpenAPI document 2.8.0: OrderIn, OrderAndAccessToken, OrderOut,
ExtendedPayment, RefundIn, ExtendedRefund, RefundOut, Error, WebhookEvent) over
httpx.MockTransport; its webhooks' signature; then over HTTP against the simulator process (the
session's `simulator_url`): an order paid on the player's page, expired, cancelled, unknown,
refunded in part, and the behaviour knobs through ioka's API."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from config import Settings
from providers import check as provider_check
from providers.connectors import ioka
from providers.connectors.ioka import IokaClient
from providers.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnreachable,
)
from providers.payments import CallbackNotUnderstood, PaymentStatus
from providers.registry import (
    build_client,
    callback_dialect,
    connector_types,
    payment_dialect,
    provider_http_client,
)
from providers.signing import SignatureError
from simulator.connectors import ioka as simulated

FIXTURES = Path(__file__).parent / "fixtures" / "ioka"
REFERENCE = "dep_01HV8K2M5Q"
ORDER_ID = "ord_9Xk2LqT7Vb"
KEY = "ioka-test-api-key"
WEBHOOK_KEY = "ioka-test-webhook-key"
NOW = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def answer(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=fixture(name))


class FakeIoka:
    """ioka answering from fixtures: (method, path) -> its answers in turn; keeps every
    request. A request nobody expected fails the test."""

    def __init__(self, answers: dict[tuple[str, str], list[httpx.Response]]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        queue = self.answers.get((request.method, request.url.path))
        if not queue:
            raise AssertionError(f"unexpected {request.method} {request.url}")
        return queue.pop(0)

    def client(self) -> IokaClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return IokaClient(
            http=http,
            base_url="http://simulator.invalid",
            provider="ioka",
            secret=KEY,
            root_url="https://stage-api.ioka.kz",
        )

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.seen]


def lookup(*orders: str) -> list[httpx.Response]:
    """`GET /v2/orders?external_id=` answering these order fixtures."""
    return [httpx.Response(200, json=[fixture(name) for name in orders])]


SEARCH = ("GET", "/v2/orders")
ORDER = ("GET", f"/v2/orders/{ORDER_ID}")
CANCEL = ("POST", f"/v2/orders/{ORDER_ID}/cancel")
REFUNDS = ("POST", f"/v2/orders/{ORDER_ID}/refunds")
LIST_REFUNDS = ("GET", f"/v2/orders/{ORDER_ID}/refunds")


async def create(client: IokaClient, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "reference": REFERENCE,
        "method": "aggregator",
        "amount": 500000,
        "currency": "KZT",
        "details": {"return_url": f"https://casino.example/deposits/{REFERENCE}"},
        "callback_url": "https://api.example/v1/webhooks/ioka",
        "expires_in_seconds": 1800,
        **changes,
    }
    return await client.create_payment(**arguments)


# -- plugging in ----------------------------------------------------------------------------


def test_the_connector_plugs_in_as_type_ioka() -> None:
    settings = Settings()
    assert settings.connector("ioka").type == "ioka"
    assert connector_types()["ioka"] is IokaClient
    assert payment_dialect("ioka", settings) is IokaClient
    assert callback_dialect("ioka", settings) is IokaClient


def test_every_status_of_ioka_is_one_of_ours() -> None:
    vocabulary = IokaClient.spec.vocabulary
    assert vocabulary is not None
    assert set(vocabulary.statuses) == {"UNPAID", "ON_HOLD", "PAID", "EXPIRED", "CANCELLED"}
    assert set(vocabulary.statuses.values()) <= set(get_args(PaymentStatus))


def test_every_documented_error_code_has_a_code_of_ours() -> None:
    documented = {entry["body"]["code"] for entry in fixture("errors")}
    assert documented <= set(ioka.ERRORS)


# -- requests and answers (MockTransport) ---------------------------------------------------


async def test_an_order_is_created_in_ioka_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ioka, "utc_now", lambda: NOW)
    fake = FakeIoka({("POST", "/v2/orders"): [answer("create_order_response", 201)]})

    outcome = await create(fake.client())

    (request,) = fake.seen
    assert (request.method, str(request.url)) == ("POST", "https://stage-api.ioka.kz/v2/orders")
    assert request.headers["API-KEY"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == fixture("create_order_request")
    assert outcome.reference == REFERENCE
    assert outcome.payment_id == ORDER_ID
    assert (outcome.method, outcome.status) == ("aggregator", "pending")
    assert (outcome.amount, outcome.currency, outcome.amount_received) == (500000, "KZT", None)
    assert outcome.action == {
        "type": "redirect",
        "url": f"https://stage-checkout.ioka.kz/orders/{ORDER_ID}",
        "expires_at": "2026-03-01T10:30:00+00:00",
    }


async def test_no_return_url_sends_no_back_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ioka, "utc_now", lambda: NOW)
    fake = FakeIoka({("POST", "/v2/orders"): [answer("create_order_response", 201)]})
    await create(fake.client(), details={}, expires_in_seconds=900)
    sent = json.loads(fake.seen[0].content)
    assert "back_url" not in sent
    assert sent["due_date"] == "2026-03-01T10:15:00"


async def test_only_the_aggregator_method_is_sent_to_ioka() -> None:
    fake = FakeIoka({})
    with pytest.raises(ProviderRejected) as refused:
        await create(fake.client(), method="card")
    assert refused.value.code == "unsupported_method"
    assert fake.seen == []


async def test_an_order_created_under_another_reference_is_unreadable() -> None:
    other = fixture("create_order_response")
    other["order"]["external_id"] = "dep_somebody_else"
    fake = FakeIoka({("POST", "/v2/orders"): [httpx.Response(201, json=other)]})
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await create(fake.client())
    assert unknown.value.code == "invalid_response"


@pytest.mark.parametrize(
    ("order", "status", "received"),
    [
        ("order_unpaid", "pending", None),
        ("order_on_hold", "pending", None),  # authorized, not captured: not ours yet
        ("order_paid", "succeeded", 500000),
        ("order_expired", "expired", None),
        ("order_cancelled", "cancelled", None),
    ],
)
async def test_every_order_status_is_read(order: str, status: str, received: int | None) -> None:
    fake = FakeIoka({SEARCH: lookup(order)})

    outcome = await fake.client().get_payment(REFERENCE)

    (request,) = fake.seen
    assert request.url.path == "/v2/orders"
    assert dict(request.url.params) == {"external_id": REFERENCE}
    assert request.headers["API-KEY"] == KEY
    assert outcome is not None
    assert (outcome.reference, outcome.payment_id) == (REFERENCE, ORDER_ID)
    assert (outcome.status, outcome.amount_received) == (status, received)


async def test_an_order_nobody_created_is_none() -> None:
    other = {**fixture("order_paid"), "external_id": "dep_01HV8K2M5Q_2"}
    fake = FakeIoka({SEARCH: [httpx.Response(200, json=[]), httpx.Response(200, json=[other])]})
    client = fake.client()
    assert await client.get_payment(REFERENCE) is None
    assert await client.get_payment(REFERENCE) is None  # a near match is not ours


@pytest.mark.parametrize(
    "listed",
    [
        [fixture("order_unpaid"), fixture("order_paid")],  # two orders under one external_id
        [{**fixture("order_paid"), "status": "REFUNDED"}],  # a status nobody documented
        [{**fixture("order_paid"), "amount": "500000"}],  # money as a string
        [{**fixture("order_paid"), "amount": 5000.0}],  # money as a float
        [{key: v for key, v in fixture("order_unpaid").items() if key != "checkout_url"}],
        {"count": 1, "data": [fixture("order_paid")]},  # not the documented list
    ],
)
async def test_answers_we_cannot_read_leave_the_outcome_unknown(listed: Any) -> None:
    fake = FakeIoka({SEARCH: [httpx.Response(200, json=listed)]})
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await fake.client().get_payment(REFERENCE)
    assert unknown.value.code == "invalid_response"


# What each documented error means for money (status and body from errors.json).
ERROR_READINGS: dict[str, tuple[type[ProviderError], str]] = {
    "Unauthorized": (ProviderRejected, "unauthorized"),
    "Forbidden": (ProviderRejected, "forbidden"),
    "InvalidRequest": (ProviderRejected, "invalid_request"),
    "BadGateway": (ProviderOutcomeUnknown, "bad_gateway"),  # it may have reached the acquirer
    "OrderNotFound": (ProviderRejected, "not_found"),
    "OrderExists": (ProviderOutcomeUnknown, "http_409"),  # our reference exists: ask
    "OrderUnpaid": (ProviderRejected, "order_unpaid"),
    "OrderHasApprovedPayment": (ProviderRejected, "order_has_approved_payment"),
    "OrderHasNoApprovedPayment": (ProviderRejected, "order_has_no_approved_payment"),
    "OrderHasNoAttemptsLeftError": (ProviderRejected, "no_attempts_left"),
    "OrderExpired": (ProviderRejected, "order_expired"),
    "PaymentNotFound": (ProviderRejected, "payment_not_found"),
    "RefundNotFound": (ProviderRejected, "refund_not_found"),
    "PaymentStarted": (ProviderRejected, "payment_started"),
    "ProcessingDeadlineReachedError": (ProviderOutcomeUnknown, "processing_deadline_reached"),
    "PaymentCaptureAmountExceeded": (ProviderRejected, "capture_amount_exceeded"),
    "PaymentRefundAmountExceededError": (ProviderRejected, "refund_amount_exceeded"),
}


@pytest.mark.parametrize("entry", fixture("errors"), ids=lambda e: str(e["body"]["code"]))
async def test_every_documented_error_is_classified(entry: dict[str, Any]) -> None:
    fake = FakeIoka({("POST", "/v2/orders"): [httpx.Response(entry["status"], json=entry["body"])]})
    kind, code = ERROR_READINGS[entry["body"]["code"]]
    with pytest.raises(ProviderError) as failed:
        await create(fake.client())
    assert type(failed.value) is kind
    assert failed.value.code == code
    if code == "http_409":
        assert failed.value.detail == "reference_reused"


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (httpx.Response(429, headers={"Retry-After": "3"}), ProviderThrottled, "throttled"),
        (httpx.Response(500, json={"code": "InternalError", "message": "x"}), None, "http_500"),
        (httpx.Response(502, text="<html>bad gateway</html>"), None, "http_502"),
        (httpx.Response(504), None, "http_504"),
        (httpx.Response(503, text="Service Unavailable"), None, "http_503"),  # a bare 503
        (
            httpx.Response(503, json={"code": "ServiceUnavailable", "message": "maintenance"}),
            ProviderUnreachable,
            "service_unavailable",
        ),
        (httpx.Response(201, text="not json"), None, "invalid_response"),
        (httpx.Response(201, json={"order_access_token": "t"}), None, "invalid_response"),
    ],
)
async def test_status_codes_and_unreadable_answers(
    response: httpx.Response, kind: type[ProviderError] | None, code: str
) -> None:
    fake = FakeIoka({("POST", "/v2/orders"): [response]})
    with pytest.raises(ProviderError) as failed:
        await create(fake.client())
    assert type(failed.value) is (kind or ProviderOutcomeUnknown)
    assert failed.value.code == code
    if isinstance(failed.value, ProviderThrottled):
        assert failed.value.retry_after == 3.0


async def test_cancel_closes_an_unpaid_order_and_reads_it_again() -> None:
    fake = FakeIoka(
        {
            SEARCH: lookup("order_unpaid"),
            CANCEL: [answer("cancel_response")],
            ORDER: [answer("order_cancelled")],
        }
    )
    closed = await fake.client().cancel_payment(REFERENCE)
    assert fake.calls() == [SEARCH, CANCEL, ORDER]
    assert json.loads(fake.seen[1].content) == fixture("cancel_request")
    assert fake.seen[1].headers["API-KEY"] == KEY
    assert closed is not None
    assert (closed.status, closed.payment_id) == ("cancelled", ORDER_ID)


async def test_cancel_voids_an_order_on_hold_and_says_what_it_became() -> None:
    fake = FakeIoka(
        {
            SEARCH: lookup("order_on_hold"),
            CANCEL: [answer("cancel_response")],
            ORDER: [answer("order_cancelled")],
        }
    )
    closed = await fake.client().cancel_payment(REFERENCE)
    assert fake.calls() == [SEARCH, CANCEL, ORDER]
    assert closed is not None
    assert closed.status == "cancelled"


@pytest.mark.parametrize(
    ("order", "status"),
    [("order_paid", "succeeded"), ("order_expired", "expired"), ("order_cancelled", "cancelled")],
)
async def test_cancel_leaves_a_final_order_as_it_is(order: str, status: str) -> None:
    fake = FakeIoka({SEARCH: lookup(order)})
    closed = await fake.client().cancel_payment(REFERENCE)
    assert fake.calls() == [SEARCH]
    assert closed is not None
    assert closed.status == status


async def test_cancel_refused_because_the_player_just_paid_answers_paid() -> None:
    refused = {"code": "OrderHasNoApprovedPayment", "message": "order has no approved payment"}
    fake = FakeIoka(
        {
            SEARCH: lookup("order_unpaid"),
            CANCEL: [httpx.Response(400, json=refused)],
            ORDER: [answer("order_paid")],
        }
    )
    closed = await fake.client().cancel_payment(REFERENCE)
    assert closed is not None
    assert (closed.status, closed.amount_received) == ("succeeded", 500000)


async def test_cancel_of_an_order_ioka_never_saw_is_none() -> None:
    gone = {"code": "OrderNotFound", "message": "order not found"}
    fake = FakeIoka({SEARCH: [httpx.Response(200, json=[])]})
    assert await fake.client().cancel_payment(REFERENCE) is None
    fake = FakeIoka(
        {SEARCH: lookup("order_unpaid"), CANCEL: [httpx.Response(404, json=gone)]},
    )
    assert await fake.client().cancel_payment(REFERENCE) is None


async def test_a_cancel_refused_for_other_reasons_is_an_error() -> None:
    fake = FakeIoka(
        {
            SEARCH: lookup("order_unpaid"),
            CANCEL: [httpx.Response(403, json={"code": "Forbidden", "message": "no"})],
        }
    )
    with pytest.raises(ProviderRejected) as refused:
        await fake.client().cancel_payment(REFERENCE)
    assert refused.value.code == "forbidden"


@pytest.mark.parametrize(
    ("refund", "status", "decline"),
    [
        ("refund_approved", "succeeded", None),
        ("refund_pending", "pending", None),
        ("refund_declined", "declined", "bad_gateway"),
    ],
)
async def test_a_partial_refund_in_ioka_format(
    refund: str, status: str, decline: str | None
) -> None:
    fake = FakeIoka({SEARCH: lookup("order_paid"), REFUNDS: [answer(refund)]})

    outcome = await fake.client().refund(
        REFERENCE, 150000, "KZT", reason="player asked for part of the deposit back"
    )

    assert fake.calls() == [SEARCH, REFUNDS]
    assert json.loads(fake.seen[1].content) == fixture("refund_request")
    assert fake.seen[1].headers["API-KEY"] == KEY
    assert (outcome.reference, outcome.provider_payment_id) == (REFERENCE, ORDER_ID)
    assert (outcome.refund_id, outcome.status, outcome.decline_code) == (
        "rfd_H2c9Lp0aQw",
        status,
        decline,
    )
    assert (outcome.amount, outcome.currency) == (150000, "KZT")


async def test_a_refund_answer_without_its_amount_reports_the_requested_one() -> None:
    fake = FakeIoka({SEARCH: lookup("order_paid"), REFUNDS: [answer("refund_without_amount")]})
    outcome = await fake.client().refund(REFERENCE, 150000, "KZT")
    assert json.loads(fake.seen[1].content) == {"amount": 150000}
    assert (outcome.status, outcome.amount) == ("succeeded", 150000)


async def test_refunds_refused_before_anything_is_sent() -> None:
    fake = FakeIoka({SEARCH: [*lookup("order_paid"), httpx.Response(200, json=[])]})
    client = fake.client()
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(REFERENCE, 0, "KZT")
    assert refused.value.code == "invalid_amount"
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(REFERENCE, 150000, "USD")
    assert refused.value.code == "currency_mismatch"
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(REFERENCE, 150000, "KZT")
    assert refused.value.code == "not_found"
    assert fake.calls() == [SEARCH, SEARCH]


async def test_the_refunds_of_an_order_are_listed() -> None:
    fake = FakeIoka({SEARCH: lookup("order_paid"), LIST_REFUNDS: [answer("refunds_list")]})
    refunds = await fake.client().get_refunds(REFERENCE)
    assert refunds is not None
    assert [(r.refund_id, r.status, r.amount) for r in refunds] == [
        ("rfd_H2c9Lp0aQw", "succeeded", 150000),
        ("rfd_Jq4wZ8rT1u", "pending", 50000),
    ]
    fake = FakeIoka({SEARCH: [httpx.Response(200, json=[])]})
    assert await fake.client().get_refunds(REFERENCE) is None


# -- webhooks -------------------------------------------------------------------------------


def signed(body: bytes, key: str, at: int) -> httpx.Headers:
    """The assumed scheme, written out here: hex HMAC-SHA256 over `{timestamp}.{body}`."""
    digest = hmac.new(key.encode(), str(at).encode() + b"." + body, hashlib.sha256).hexdigest()
    return httpx.Headers({"X-Signature": digest, "X-Timestamp": str(at)})


def check(headers: Mapping[str, str], body: bytes, *, key: str = WEBHOOK_KEY, now: float) -> None:
    IokaClient.verify_callback(key, headers, body, now=now, tolerance_seconds=300)


@pytest.mark.parametrize(
    ("webhook", "status", "amount", "decline"),
    [
        ("webhook_payment_captured", "succeeded", 500000, None),
        ("webhook_payment_approved", "pending", 500000, None),
        ("webhook_payment_declined", "pending", 500000, "insufficient_funds"),
        ("webhook_payment_cancelled", "cancelled", 500000, None),
    ],
)
def test_a_signed_webhook_is_taken_and_read(
    webhook: str, status: str, amount: int, decline: str | None
) -> None:
    body = (FIXTURES / f"{webhook}.json").read_bytes()
    at = int(time.time())
    check(signed(body, WEBHOOK_KEY, at), body, now=at + 10)

    callback = IokaClient.parse_callback(body)

    assert (callback.reference, callback.provider_payment_id) == (REFERENCE, ORDER_ID)
    assert (callback.status, callback.amount, callback.currency) == (status, amount, "KZT")
    assert callback.decline_code == decline
    assert callback.event_id is None  # ioka's webhook carries none: deduplicated by body


def test_forged_and_wrong_secret_webhooks_are_refused() -> None:
    body = (FIXTURES / "webhook_payment_captured.json").read_bytes()
    at = int(time.time())
    good = signed(body, WEBHOOK_KEY, at)
    refused: dict[str, list[tuple[Mapping[str, str], bytes]]] = {
        "invalid_signature": [
            (signed(body, "another-shop-key", at), body),  # the wrong secret
            (signed(body, KEY, at), body),  # the API key is not the webhook key
            (good, body.replace(b'"captured_amount": 500000', b'"captured_amount": 900000')),
            (httpx.Headers({"X-Signature": "0" * 64, "X-Timestamp": str(at)}), body),
            ({"X-Signature": "ünïcode", "X-Timestamp": str(at)}, body),  # as latin-1 decoded
            # a replay with a fresh timestamp and the old signature
            (httpx.Headers({"X-Signature": good["X-Signature"], "X-Timestamp": str(at + 1)}), body),
        ],
        "signature_missing": [
            (httpx.Headers({"X-Signature": good["X-Signature"]}), body),
            (httpx.Headers({"X-Timestamp": str(at)}), body),
            (httpx.Headers({}), body),
        ],
        "invalid_timestamp": [
            (httpx.Headers({"X-Signature": good["X-Signature"], "X-Timestamp": "soon"}), body),
        ],
    }
    for code, cases in refused.items():
        for headers, sent in cases:
            with pytest.raises(SignatureError) as failed:
                check(headers, sent, now=at)
            assert failed.value.code == code
    with pytest.raises(SignatureError) as stale:
        check(good, body, now=at + 301)
    assert stale.value.code == "stale_timestamp"
    check(good, body, now=at + 299)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"event": "PAYMENT_CAPTURED", "order": {"status": "PAID"}}',
        json.dumps({**fixture("webhook_payment_captured"), "order": "ord_9Xk2LqT7Vb"}).encode(),
    ],
)
def test_a_webhook_we_cannot_read_is_not_understood(body: bytes) -> None:
    with pytest.raises(CallbackNotUnderstood):
        IokaClient.parse_callback(body)


@pytest.mark.parametrize(
    ("status", "decline", "ours", "code"),
    [
        ("succeeded", None, "succeeded", None),
        ("declined", "do_not_honor", "pending", "do_not_honor"),
    ],
)
def test_the_simulators_webhooks_are_what_the_connector_reads(
    status: str, decline: str | None, ours: str, code: str | None
) -> None:
    event = {
        "reference": REFERENCE,
        "provider_payment_id": "pay_0123456789",
        "status": status,
        "amount": 500000,
        "ordered_amount": 500000,
        "currency": "KZT",
        "decline_code": decline,
        "event_id": "evt_1",
        "sent_at": NOW.isoformat(),
    }
    body, headers = simulated.encode_callback(WEBHOOK_KEY, event)
    check(httpx.Headers(headers), body, now=time.time())
    callback = IokaClient.parse_callback(body)
    assert (callback.reference, callback.status, callback.amount) == (REFERENCE, ours, 500000)
    assert callback.decline_code == code
    assert callback.provider_payment_id == simulated.order_id(REFERENCE)


# -- against the simulator process ----------------------------------------------------------


def _reference() -> str:
    return f"dep_ioka_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(settings: Settings, simulator_url: str) -> AsyncIterator[IokaClient]:
    """ioka as configured (`build_client`), its simulated behaviour reset afterwards."""
    async with provider_http_client(settings) as http:
        yield build_client(settings, http, "ioka", IokaClient)
    async with httpx.AsyncClient() as admin:
        reset = await admin.put(f"{simulator_url}/admin/providers/ioka/behaviour", json={})
        reset.raise_for_status()


@pytest.fixture
async def simulator(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator_url) as http:
        yield http


async def open_order(client: IokaClient, reference: str, expires_in_seconds: int = 900) -> Any:
    return await client.create_payment(
        reference=reference,
        method="aggregator",
        amount=500000,
        currency="KZT",
        details={"return_url": "https://casino.example/back"},
        callback_url="http://unused.invalid/v1/webhooks/ioka",
        expires_in_seconds=expires_in_seconds,
    )


async def behave(simulator: httpx.AsyncClient, **knobs: Any) -> None:
    (await simulator.put("/admin/providers/ioka/behaviour", json=knobs)).raise_for_status()


async def held(simulator: httpx.AsyncClient, reference: str) -> list[dict[str, Any]]:
    found = await simulator.get("/admin/charges", params={"reference": reference})
    found.raise_for_status()
    listed: list[dict[str, Any]] = found.json()
    return listed


async def test_an_order_paid_on_the_checkout_page_reads_paid(
    client: IokaClient, simulator: httpx.AsyncClient, simulator_url: str
) -> None:
    reference = _reference()
    opened = await open_order(client, reference)
    assert (opened.status, opened.amount, opened.currency) == ("pending", 500000, "KZT")
    assert opened.action["type"] == "redirect"
    assert opened.action["url"] == f"{simulator_url}/pay/ioka/{reference}"
    page = await simulator.get(opened.action["url"])
    assert page.status_code == 200
    assert "Hosted payment page" in page.text

    (await simulator.post(f"/pay/ioka/{reference}/confirm")).raise_for_status()

    paid = await client.get_payment(reference)
    assert paid is not None
    assert (paid.status, paid.amount_received, paid.payment_id) == (
        "succeeded",
        500000,
        opened.payment_id,
    )
    assert await client.cancel_payment(reference) == paid  # nothing to close
    (payment,) = await held(simulator, reference)
    assert (payment["provider"], payment["money_moved"]) == ("ioka", True)


async def test_an_order_whose_time_is_up_reads_expired(
    client: IokaClient, simulator: httpx.AsyncClient
) -> None:
    reference = _reference()
    await open_order(client, reference)
    (await simulator.post(f"/admin/providers/ioka/payments/{reference}/expire")).raise_for_status()

    expired = await client.get_payment(reference)
    assert expired is not None
    assert expired.status == "expired"
    assert (await simulator.post(f"/pay/ioka/{reference}/confirm")).status_code == 409
    closed = await client.cancel_payment(reference)
    assert closed is not None
    assert closed.status == "expired"


async def test_a_declined_card_leaves_the_order_unpaid_until_it_expires(
    client: IokaClient, simulator: httpx.AsyncClient
) -> None:
    reference = _reference()
    await open_order(client, reference, expires_in_seconds=3)
    (await simulator.post(f"/pay/ioka/{reference}/decline")).raise_for_status()
    unpaid = await client.get_payment(reference)
    assert unpaid is not None
    assert unpaid.status == "pending"
    deadline = time.monotonic() + 10
    while unpaid is not None and unpaid.status == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(0.25)  # the order's due_date passes in the simulator's time
        unpaid = await client.get_payment(reference)
    assert unpaid is not None
    assert unpaid.status == "expired"


async def test_a_cancelled_order_cannot_be_paid(
    client: IokaClient, simulator: httpx.AsyncClient
) -> None:
    reference = _reference()
    opened = await open_order(client, reference)

    closed = await client.cancel_payment(reference)

    assert closed is not None
    assert (closed.status, closed.payment_id) == ("cancelled", opened.payment_id)
    assert (await simulator.post(f"/pay/ioka/{reference}/confirm")).status_code == 409
    again = await client.get_payment(reference)
    assert again is not None
    assert again.status == "cancelled"
    assert await client.cancel_payment(reference) == again
    (payment,) = await held(simulator, reference)
    assert payment["money_moved"] is False


async def test_a_reference_ioka_never_saw_is_none(client: IokaClient) -> None:
    reference = _reference()
    assert await client.get_payment(reference) is None
    assert await client.cancel_payment(reference) is None
    assert await client.get_refunds(reference) is None
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(reference, 10000, "KZT")
    assert refused.value.code == "not_found"


async def test_a_paid_order_is_refunded_in_parts_up_to_what_was_paid(
    client: IokaClient, simulator: httpx.AsyncClient
) -> None:
    reference = _reference()
    await open_order(client, reference)
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(reference, 10000, "KZT")
    assert refused.value.code == "order_unpaid"
    (await simulator.post(f"/pay/ioka/{reference}/confirm")).raise_for_status()

    first = await client.refund(reference, 150000, "KZT", reason="partial")
    second = await client.refund(reference, 350000, "KZT")

    assert [(r.status, r.amount) for r in (first, second)] == [
        ("succeeded", 150000),
        ("succeeded", 350000),
    ]
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(reference, 100, "KZT")
    assert refused.value.code == "refund_amount_exceeded"
    with pytest.raises(ProviderRejected) as refused:
        await client.refund(reference, 99, "KZT")  # ioka's least refund is 100 tiyn
    assert refused.value.code == "invalid_request"
    refunds = await client.get_refunds(reference)
    assert refunds is not None
    assert [r.refund_id for r in refunds] == [first.refund_id, second.refund_id]
    assert sum(r.amount for r in refunds) == 500000
    paid = await client.get_payment(reference)
    assert paid is not None
    assert paid.status == "succeeded"


async def test_a_second_order_under_one_reference_is_a_conflict_to_settle_by_inquiry(
    client: IokaClient,
) -> None:
    reference = _reference()
    opened = await open_order(client, reference)
    with pytest.raises(ProviderOutcomeUnknown) as conflict:
        await open_order(client, reference)
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "reference_reused")
    found = await client.get_payment(reference)
    assert found is not None
    assert found.payment_id == opened.payment_id


async def test_throttled_by_ioka(client: IokaClient, simulator: httpx.AsyncClient) -> None:
    reference = _reference()
    await behave(simulator, throttle_next=2, throttle_retry_after_seconds=2)
    with pytest.raises(ProviderThrottled) as throttled:
        await open_order(client, reference)
    assert throttled.value.retry_after == 2.0
    with pytest.raises(ProviderThrottled):
        await client.get_payment(reference)
    assert await client.get_payment(reference) is None  # nothing was processed
    opened = await open_order(client, reference)
    assert opened.status == "pending"


async def test_an_order_processed_then_answered_502_exists(
    client: IokaClient, simulator: httpx.AsyncClient
) -> None:
    reference = _reference()
    await behave(simulator, error_after_processing_next=1)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await open_order(client, reference)
    assert unknown.value.code == "http_502"

    found = await client.get_payment(reference)

    assert found is not None
    assert (found.status, found.amount) == ("pending", 500000)
    assert found.action["url"].endswith(f"/pay/ioka/{reference}")
    assert len(await held(simulator, reference)) == 1


async def test_an_order_processed_then_hung_up_on_exists(
    client: IokaClient, simulator: httpx.AsyncClient
) -> None:
    reference = _reference()
    await behave(simulator, reset_after_processing_next=1)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await open_order(client, reference)
    assert unknown.value.code == "connection_lost"
    found = await client.get_payment(reference)
    assert found is not None
    assert found.status == "pending"


async def test_outage_and_credentials(
    client: IokaClient, simulator: httpx.AsyncClient, settings: Settings
) -> None:
    reference = _reference()
    await behave(simulator, outage=True)
    with pytest.raises(ProviderUnreachable) as down:
        await open_order(client, reference)
    assert down.value.code == "service_unavailable"
    await behave(simulator, expire_credentials_next=1)
    with pytest.raises(ProviderRejected) as expired:
        await client.get_payment(reference)
    assert expired.value.code == "unauthorized"
    async with httpx.AsyncClient() as http:
        stranger = IokaClient(
            http=http,
            base_url=settings.simulator_url,
            provider="ioka",
            secret="not-the-key",
            root_url=settings.provider_base_url("ioka"),
        )
        with pytest.raises(ProviderRejected) as refused:
            await stranger.get_payment(reference)
    assert refused.value.code == "unauthorized"


class WebhookReceiver:
    """The shop's webhook endpoint: keeps each request, answers 200."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "WebhookReceiver":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/ioka"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, value in (line.split(":", 1) for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                await self.deliveries.put((headers, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_the_webhook_of_a_paid_order_is_signed_with_the_webhook_key(
    client: IokaClient, simulator: httpx.AsyncClient, settings: Settings
) -> None:
    api_key = {"API-KEY": settings.provider_secret("ioka")}
    async with WebhookReceiver() as receiver:
        hook = await simulator.post(
            "/providers/ioka/v2/webhooks",
            json={"url": receiver.url, "events": ["PAYMENT_CAPTURED", "PAYMENT_DECLINED"]},
            headers=api_key,
        )
        assert hook.status_code == 201
        assert hook.json()["key"] == settings.webhook_secret("ioka")
        try:
            reference = _reference()
            await open_order(client, reference)
            (await simulator.post(f"/pay/ioka/{reference}/confirm")).raise_for_status()
            headers, body = await asyncio.wait_for(receiver.deliveries.get(), timeout=10)
        finally:
            removed = await simulator.delete(
                f"/providers/ioka/v2/webhooks/{hook.json()['id']}", headers=api_key
            )
            assert removed.status_code == 204

    received = httpx.Headers(headers)
    IokaClient.verify_callback(
        settings.webhook_secret("ioka"),
        received,
        body,
        now=time.time(),
        tolerance_seconds=settings.webhook_tolerance_seconds,
    )
    with pytest.raises(SignatureError) as wrong:
        IokaClient.verify_callback(
            settings.provider_secret("ioka"),
            received,
            body,
            now=time.time(),
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    assert wrong.value.code == "invalid_signature"
    callback = IokaClient.parse_callback(body)
    assert (callback.reference, callback.status, callback.amount) == (
        reference,
        "succeeded",
        500000,
    )
    assert json.loads(body)["event"] == "PAYMENT_CAPTURED"


async def test_the_provider_check_reaches_ioka(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m providers.check ioka`: a lookup of an order that cannot exist, answered
    with none."""
    monkeypatch.setattr(provider_check, "get_settings", lambda: settings)
    ok, message = await provider_check.check("ioka")
    assert ok, message
    assert "(ioka)" in message
