"""Halyk ePay: the connector (providers/connectors/halyk_epay.py) and its simulator
(simulator/connectors/halyk_epay.py).

First over httpx.MockTransport against answers and requests written by hand from the documented
formats (tests/fixtures/halyk_epay/): request shapes, every resultCode and statusName, amounts,
errors, the OAuth token (cached, taken again before it expires and once on a 401), callbacks
checked by their secret_hash. Then over HTTP against the simulator process: the card flows, 3-D
Secure with its callback, refunds, and the behaviour knobs through Halyk's API.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from config import Settings
from config.connectors import ConnectorConfig
from providers.amounts import InvalidAmount
from providers.card import CardData
from providers.connectors.halyk_epay import (
    CLIENT,
    HalykChargeOutcome,
    HalykEpayClient,
    from_tenge,
    invoice_id,
    to_tenge,
    token_url,
)
from providers.errors import (
    CardRejected,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnreachable,
)
from providers.payments import CallbackNotUnderstood
from providers.registry import build_client, card_dialect, connector_types
from providers.signing import SignatureError
from simulator.connectors import plugins

FIXTURES = Path(__file__).parent / "fixtures" / "halyk_epay"
REFERENCE = "dep_0123456789abcdef01234567"
INVOICE = "902603101348480"
OTHER = "dep_fedcba9876543210fedcba98"
OTHER_INVOICE = "382834686663490"
TRANSACTION = "a7c3e9f0-1b2d-4e5f-8a6b-7c8d9e0f1a2b"
CARD_ID = "c6f5a1d2-3b4e-4f60-8a7b-9c0d1e2f3a4b"
WEBHOOK_SECRET = "whsec-halyk"
API = "https://test-epay-api.epayment.kz"
OAUTH = "https://test-epay-oauth.epayment.kz/oauth2/token"
POST_LINK = "https://pay.example.kz/v1/webhooks/halyk"
CONFIG = ConnectorConfig(
    type="halyk_epay",
    base_url=API,
    client_id="test-client",
    client_secret=SecretStr("test-client-secret"),
    merchant_id="67e34d63-474a-4fe5-a9ac-a5d4a8e8b04a",
    webhook_secret=SecretStr(WEBHOOK_SECRET),
)

Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def answer(name: str, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, content=raw(name), headers={"content-type": "application/json", **headers}
    )


def status_with(**changes: Any) -> httpx.Response:
    """status_charge.json with some of its transaction's fields changed."""
    data = json.loads(raw("status_charge.json"))
    data["transaction"].update(changes)
    return httpx.Response(200, json=data)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}


class Halyk:
    """A MockTransport handler: the OAuth host issues tok-1, tok-2, ... (counted); every other
    request goes to `route`. `seen` keeps the API requests, `tokens` the token requests."""

    def __init__(self, route: Handler, *, expires_in: object = 7200) -> None:
        self.route = route
        self.expires_in = expires_in
        self.seen: list[httpx.Request] = []
        self.tokens: list[httpx.Request] = []
        self.token_answer: Handler | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == OAUTH:
            self.tokens.append(request)
            if self.token_answer is not None:
                return self.token_answer(request)
            issued = json.loads(raw("token.json"))
            issued |= {"access_token": f"tok-{len(self.tokens)}", "expires_in": self.expires_in}
            return httpx.Response(200, json=issued)
        self.seen.append(request)
        return self.route(request)

    def client(self, config: ConnectorConfig = CONFIG) -> HalykEpayClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return HalykEpayClient(
            http=http,
            base_url="http://sim",
            provider="halyk",
            secret="api-secret",
            root_url=API,
            config=config,
        )

    def paths(self) -> list[str]:
        return [
            f"{r.method} {r.url.path}" + (f"?{r.url.query.decode()}" if r.url.query else "")
            for r in self.seen
        ]


STATUS_PATH = f"GET /check-status/payment/transaction/{INVOICE}"


# -- identity, registration, money ---------------------------------------------------------------


def test_registered_as_the_halyk_epay_connector_on_both_sides() -> None:
    assert connector_types()["halyk_epay"] is HalykEpayClient is CLIENT
    assert card_dialect("halyk", Settings()) is HalykEpayClient
    assert plugins()["halyk_epay"].CONNECTOR_TYPE == "halyk_epay"


def test_invoice_ids_are_fixed_numbers_of_15_digits() -> None:
    """Pinned: an invoice in flight must be found under the same number after any release."""
    assert invoice_id(REFERENCE) == INVOICE
    assert invoice_id(OTHER) == OTHER_INVOICE
    for n in range(2000):
        reference = f"dep_{hashlib.md5(str(n).encode()).hexdigest()[:24]}"  # noqa: S324
        invoice = invoice_id(reference)
        assert invoice.isdigit()
        assert len(invoice) == 15
        assert invoice[0] != "0"
        assert invoice_id(reference) == invoice


def test_tenge_is_exact_both_ways() -> None:
    assert (to_tenge(500000), to_tenge(500010), to_tenge(1)) == (
        5000,
        Decimal("5000.10"),
        Decimal("0.01"),
    )
    assert from_tenge(5000) == 500000
    assert from_tenge(Decimal("5000.10")) == from_tenge("5000.1") == 500010
    for bad in (Decimal("1.005"), Decimal("-1"), 1.5, True, None, "1e3", Decimal("NaN")):
        with pytest.raises(InvalidAmount):
            from_tenge(bad)


def test_the_token_endpoint_is_halyks_oauth_host_for_its_api_hosts() -> None:
    assert (
        token_url("https://epay-api.homebank.kz") == "https://epay-oauth.homebank.kz/oauth2/token"
    )
    assert token_url(API) == OAUTH
    assert token_url("http://sim/providers/halyk/") == "http://sim/providers/halyk/oauth2/token"


# -- request shapes -------------------------------------------------------------------------------


async def test_tokenize_sends_the_card_to_cards_save_with_the_clients_token() -> None:
    halyk = Halyk(lambda request: answer("save_card.json"))
    client = halyk.client()
    card = CardData(
        number="4000000000003220", exp_month=3, exp_year=2030, cvc="123", holder="AIGERIM SEITKALI"
    )
    token = await client.tokenize(card)
    assert (token.token, token.bin, token.last4, token.scheme, token.issuer_country) == (
        CARD_ID,
        "400000",
        "3220",
        "visa",
        "KZ",
    )
    (issued,) = halyk.tokens
    assert form(issued) == fixture("token_request.json")
    (save,) = halyk.seen
    assert (save.method, str(save.url)) == ("POST", f"{API}/cards/save")
    assert save.headers["authorization"] == "Bearer tok-1"
    assert json.loads(save.content) == fixture("save_card_request.json")


async def test_charge_asks_a_payment_token_then_pays_with_the_saved_card() -> None:
    halyk = Halyk(lambda request: answer("auth_charge.json"))
    client = halyk.client()
    outcome = await client.charge(
        reference=REFERENCE, token=CARD_ID, amount=500010, currency="KZT", callback_url=POST_LINK
    )
    assert isinstance(outcome, HalykChargeOutcome)
    assert (outcome.status, outcome.charge_id, outcome.amount, outcome.currency) == (
        "succeeded",
        TRANSACTION,
        500010,
        "KZT",
    )
    assert (outcome.reference, outcome.decline_code, outcome.amount_refunded) == (
        REFERENCE,
        None,
        0,
    )
    (issued,) = halyk.tokens
    assert form(issued) == fixture("payment_token_request.json")
    (auth,) = halyk.seen  # taken at once (a one-stage terminal): no charge operation
    assert (auth.method, str(auth.url)) == ("POST", f"{API}/payments/cards/auth")
    assert auth.headers["authorization"] == "Bearer tok-1"
    assert auth.headers["content-type"] == "application/json"
    assert json.loads(auth.content, parse_float=Decimal) == fixture("auth_request.json")
    assert b'"amount":5000.10,' in auth.content  # digit for digit, no float on the way


async def test_whole_tenge_is_an_integer_and_the_callback_links_are_optional() -> None:
    halyk = Halyk(lambda request: status_with())  # any answer: only the requests matter here
    client = halyk.client()
    with contextlib.suppress(ProviderOutcomeUnknown):
        await client.charge(reference=REFERENCE, token=CARD_ID, amount=500000, currency="KZT")
    issued = form(halyk.tokens[0])
    assert issued["amount"] == "5000"
    assert "postLink" not in issued
    assert "failurePostLink" not in issued
    assert b'"amount":5000,' in halyk.seen[0].content


async def test_a_held_payment_is_taken_before_it_is_reported() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/payments/cards/auth":
            return answer("auth_held.json")
        if request.url.path == f"/operation/{TRANSACTION}/charge":
            return httpx.Response(200)
        return answer("status_charge.json")

    halyk = Halyk(route)
    outcome = await halyk.client().charge(
        reference=REFERENCE, token=CARD_ID, amount=500010, currency="KZT", callback_url=POST_LINK
    )
    assert (outcome.status, outcome.amount) == ("succeeded", 500010)
    assert halyk.paths() == [
        "POST /payments/cards/auth",
        f"POST /operation/{TRANSACTION}/charge",
        STATUS_PATH,
    ]
    # the payment's own token for the payment, the client's for the operations
    assert [r.headers["authorization"] for r in halyk.seen] == [
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-2",
    ]
    assert "invoiceID" in form(halyk.tokens[0])
    assert "invoiceID" not in form(halyk.tokens[1])


async def test_a_late_hold_is_released_not_taken_when_the_deposit_moved_on() -> None:
    """An inquiry for a deposit that already succeeded elsewhere (or expired) finds money only
    held: it cancels the hold; the charge operation is never sent."""
    statuses = iter(["status_auth.json", "status_auth.json", "status_cancel.json"])

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/operation/{TRANSACTION}/cancel":
            return httpx.Response(200)
        return answer(next(statuses))

    halyk = Halyk(route)
    outcome = await halyk.client().get_charge(REFERENCE, release_held=True)
    assert outcome is not None
    assert outcome.status == "cancelled"
    assert f"POST /operation/{TRANSACTION}/cancel" in halyk.paths()
    assert f"POST /operation/{TRANSACTION}/charge" not in halyk.paths()


@pytest.mark.parametrize(
    "capture",
    [
        answer("error_unavailable.json", 503),
        httpx.Response(429, headers={"Retry-After": "2"}),
        answer("error_invalid_status.json", 400),
    ],
    ids=["unavailable", "throttled", "refused-still-held"],
)
async def test_after_the_authorisation_no_failure_reads_as_not_processed(
    capture: httpx.Response,
) -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/payments/cards/auth":
            return answer("auth_held.json")
        if "/operation/" in request.url.path:
            return capture
        return status_with(statusName="AUTH")

    halyk = Halyk(route)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await halyk.client().charge(
            reference=REFERENCE, token=CARD_ID, amount=500010, currency="KZT"
        )
    assert unknown.value.code == "not_captured"


async def test_a_3d_secure_answer_sends_the_payer_to_its_page() -> None:
    outcome = (
        await Halyk(lambda request: answer("auth_3d.json"))
        .client()
        .charge(reference=REFERENCE, token=CARD_ID, amount=500010, currency="KZT")
    )
    assert (outcome.status, outcome.action_url) == (
        "requires_action",
        "https://test-epay.epayment.kz/acs/902603101348480",
    )


async def test_a_declined_payment_says_why() -> None:
    outcome = (
        await Halyk(lambda request: answer("auth_reject.json"))
        .client()
        .charge(reference=REFERENCE, token=CARD_ID, amount=500010, currency="KZT")
    )
    assert (outcome.status, outcome.decline_code) == ("declined", "insufficient_funds")


async def test_an_answer_about_another_invoice_or_reference_is_not_taken() -> None:
    wrong_invoice = json.loads(raw("auth_charge.json")) | {"invoiceID": OTHER_INVOICE}
    halyk = Halyk(lambda request: httpx.Response(200, json=wrong_invoice))
    with pytest.raises(ProviderOutcomeUnknown) as unreadable:
        await halyk.client().charge(reference=REFERENCE, token=CARD_ID, amount=1, currency="KZT")
    assert unreadable.value.code == "invalid_response"
    other = json.loads(raw("auth_charge.json")) | {"description": OTHER, "invoiceID": OTHER_INVOICE}
    halyk = Halyk(lambda request: httpx.Response(200, json=other))
    with pytest.raises(ProviderOutcomeUnknown) as elsewhere:
        await halyk.client().charge(reference=REFERENCE, token=CARD_ID, amount=1, currency="KZT")
    assert elsewhere.value.code == "invalid_response"
    # the invoice asked about holds another reference of ours: two references on one number
    collided = Halyk(lambda request: status_with(description=OTHER, invoiceID=OTHER_INVOICE))
    with pytest.raises(ProviderOutcomeUnknown) as collision:
        await collided.client().get_charge(REFERENCE)
    assert collision.value.code == "invoice_collision"


# -- status: every statusName and resultCode ------------------------------------------------------


@pytest.mark.parametrize(
    ("status_name", "ours"),
    [
        ("NEW", "requires_action"),
        ("3D", "requires_action"),
        ("FINGERPRINT", "requires_action"),
        ("AUTH", "succeeded"),  # taken first: see the requests
        ("CHARGE", "succeeded"),
        ("REFUND", "succeeded"),
        ("CANCEL", "cancelled"),
        ("CANCEL_OLD", "cancelled"),
        ("REJECT", "declined"),
        ("FAILED", "declined"),
    ],
)
async def test_every_status_name_in_our_words(status_name: str, ours: str) -> None:
    captured: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            captured.append(request.url.path)
            return httpx.Response(200)
        return status_with(statusName="CHARGE" if captured else status_name, reasonCode="51")

    outcome = await Halyk(route).client().get_charge(REFERENCE)
    assert outcome is not None
    assert outcome.status == ours
    assert captured == ([f"/operation/{TRANSACTION}/charge"] if status_name == "AUTH" else [])
    expected_decline = "insufficient_funds" if ours in ("declined", "cancelled") else None
    assert outcome.decline_code == expected_decline


async def test_an_unknown_status_name_is_an_unreadable_answer() -> None:
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await (
            Halyk(lambda request: status_with(statusName="VERIFIED")).client().get_charge(REFERENCE)
        )
    assert unknown.value.code == "invalid_response"


@pytest.mark.parametrize(
    ("fixture_name", "expected"),
    [
        ("status_charge.json", "succeeded"),
        ("status_rejected.json", "declined"),
        ("status_not_found.json", None),
        ("status_error.json", (ProviderOutcomeUnknown, "provider_error")),
        ("status_no_terminal.json", (ProviderRejected, "invalid_terminal")),
        ("status_bad_terminal.json", (ProviderRejected, "invalid_terminal")),
        ("status_in_progress.json", (ProviderOutcomeUnknown, "in_progress")),
        ("status_foreign_terminal.json", (ProviderRejected, "invalid_terminal")),
    ],
)
async def test_every_result_code(fixture_name: str, expected: object) -> None:
    client = Halyk(lambda request: answer(fixture_name)).client()
    if isinstance(expected, tuple):
        error, code = expected
        with pytest.raises(error) as raised:
            await client.get_charge(REFERENCE)
        assert raised.value.code == code
        return
    outcome = await client.get_charge(REFERENCE)
    if expected is None:
        assert outcome is None
        return
    assert outcome is not None
    assert (outcome.status, outcome.amount, outcome.charge_id) == (expected, 500010, TRANSACTION)


@pytest.mark.parametrize(
    "body",
    [
        {"resultCode": "108", "resultMessage": "?"},
        {"resultCode": "101", "transaction": json.loads(raw("status_charge.json"))["transaction"]},
        {"resultCode": "100", "resultMessage": "no transaction"},
        {"resultMessage": "no code"},
    ],
    ids=["unknown-code", "rejected-but-charged", "found-without-transaction", "no-code"],
)
async def test_a_result_we_cannot_read_leaves_the_outcome_unknown(body: dict[str, Any]) -> None:
    client = Halyk(lambda request: httpx.Response(200, json=body)).client()
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await client.get_charge(REFERENCE)
    assert unknown.value.code == "invalid_response"


async def test_a_not_found_error_answer_is_none_too() -> None:
    client = Halyk(lambda request: httpx.Response(404, json={"code": 102})).client()
    assert await client.get_charge(REFERENCE) is None
    assert await client.cancel_charge(REFERENCE) is None


async def test_amounts_after_a_partial_refund() -> None:
    client = Halyk(lambda request: answer("status_partly_refunded.json")).client()
    refunded = await client.get_charge(REFERENCE)
    assert isinstance(refunded, HalykChargeOutcome)
    assert (refunded.amount, refunded.amount_refunded) == (500010, 200000)


@pytest.mark.parametrize(
    "amount",
    [b"5000.105", b'"5000.105"', b"-1", b"true", b"1E-3", b"6000"],
    ids=[
        "three-decimals",
        "three-decimals-text",
        "negative",
        "boolean",
        "tiny-exponent",
        "more-than-charged",
    ],
)
async def test_an_amount_we_cannot_read_exactly_is_an_unreadable_answer(amount: bytes) -> None:
    body = raw("status_charge.json").replace(b'"amount": 5000.10', b'"amount": ' + amount, 1)
    client = Halyk(lambda request: httpx.Response(200, content=body)).client()
    with pytest.raises(ProviderOutcomeUnknown) as odd:
        await client.get_charge(REFERENCE)
    assert odd.value.code == "invalid_response"


# -- operations -----------------------------------------------------------------------------------


async def test_refund_by_amount_then_reads_the_payment_again() -> None:
    refunds: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            refunds.append(request.url.query.decode())
            return httpx.Response(200)
        return answer("status_partly_refunded.json" if refunds else "status_charge.json")

    halyk = Halyk(route)
    outcome = await halyk.client().refund(REFERENCE, 200000, "KZT")
    assert isinstance(outcome, HalykChargeOutcome)
    assert (outcome.status, outcome.amount, outcome.amount_refunded) == (
        "succeeded",
        500010,
        200000,
    )
    assert halyk.paths() == [
        STATUS_PATH,
        f"POST /operation/{TRANSACTION}/refund?amount=2000",
        STATUS_PATH,
    ]
    assert halyk.seen[1].headers["authorization"] == "Bearer tok-1"


async def test_refunds_refused_before_anything_is_sent() -> None:
    halyk = Halyk(lambda request: answer("status_charge.json"))
    client = halyk.client()
    with pytest.raises(ProviderRejected) as currency:
        await client.refund(REFERENCE, 100, "USD")
    assert currency.value.code == "currency_mismatch"
    with pytest.raises(ProviderRejected) as nothing:
        await client.refund(REFERENCE, 0, "KZT")
    assert nothing.value.code == "invalid_amount"
    assert [r.method for r in halyk.seen] == ["GET"]
    missing = Halyk(lambda request: answer("status_not_found.json")).client()
    with pytest.raises(ProviderRejected) as not_found:
        await missing.refund(REFERENCE, 100, "KZT")
    assert not_found.value.code == "not_found"


async def test_a_refund_answered_but_not_readable_afterwards_is_unknown_not_refused() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200)
        if any(r.method == "POST" for r in halyk.seen):
            return httpx.Response(429)
        return answer("status_charge.json")

    halyk = Halyk(route)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await halyk.client().refund(REFERENCE, 200000, "KZT")
    assert unknown.value.code == "refund_status_unknown"


async def test_cancel_ends_a_payment_waiting_for_3d_secure_and_leaves_a_charged_one() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200)
        cancelled = any(r.method == "POST" for r in waiting.seen)
        return status_with(statusName="CANCEL" if cancelled else "3D", reasonCode="457")

    waiting = Halyk(route)
    outcome = await waiting.client().cancel_charge(REFERENCE)
    assert outcome is not None
    assert (outcome.status, outcome.decline_code) == ("cancelled", "cancelled_by_merchant")
    assert waiting.paths() == [STATUS_PATH, f"POST /operation/{TRANSACTION}/cancel", STATUS_PATH]

    charged = Halyk(lambda request: answer("status_charge.json"))
    outcome = await charged.client().cancel_charge(REFERENCE)
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert charged.paths() == [STATUS_PATH]


async def test_a_cancel_that_does_not_take_leaves_the_outcome_unknown() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return answer("error_invalid_status.json", 400)
        return status_with(statusName="3D")

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await Halyk(route).client().cancel_charge(REFERENCE)
    assert unknown.value.code == "not_cancelled"


# -- errors ---------------------------------------------------------------------------------------


async def test_error_answers_in_our_words() -> None:
    bad_card = Halyk(lambda request: answer("error_invalid_card.json", 400)).client()
    with pytest.raises(CardRejected) as rejected:
        await bad_card.tokenize(
            CardData(number="4000000000000001", exp_month=1, exp_year=2030, cvc="123")
        )
    assert rejected.value.code == "invalid_card_number"

    down = Halyk(lambda request: answer("error_unavailable.json", 503)).client()
    with pytest.raises(ProviderUnreachable) as unreachable:  # its documented "down": failover
        await down.get_charge(REFERENCE)
    assert unreachable.value.code == "temporarily_unavailable"

    reused = Halyk(lambda request: httpx.Response(409, json={"code": 1009, "message": "taken"}))
    with pytest.raises(ProviderOutcomeUnknown) as conflict:  # something is under that invoice
        await reused.client().charge(reference=REFERENCE, token=CARD_ID, amount=1, currency="KZT")
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "invoice_reused")

    odd = Halyk(lambda request: httpx.Response(400, json={"code": 2345, "message": "?"})).client()
    with pytest.raises(ProviderRejected) as passed_through:
        await odd.get_charge(REFERENCE)
    assert passed_through.value.code == "halyk_2345"

    failing = Halyk(lambda request: httpx.Response(500, json={"code": 1012})).client()
    with pytest.raises(ProviderOutcomeUnknown) as server_error:
        await failing.charge(reference=REFERENCE, token=CARD_ID, amount=1, currency="KZT")
    assert server_error.value.code == "http_500"

    throttled = Halyk(lambda request: httpx.Response(429, headers={"Retry-After": "3"})).client()
    with pytest.raises(ProviderThrottled) as slow_down:
        await throttled.get_charge(REFERENCE)
    assert slow_down.value.retry_after == 3


async def test_an_amount_with_tiyn_beyond_two_decimals_is_never_sent() -> None:
    halyk = Halyk(lambda request: answer("auth_charge.json"))
    with pytest.raises(ProviderRejected) as refused:
        await halyk.client().charge(reference=REFERENCE, token=CARD_ID, amount=-5, currency="KZT")
    assert refused.value.code == "invalid_amount"
    assert halyk.seen == []
    assert halyk.tokens == []


# -- the OAuth token ------------------------------------------------------------------------------


async def test_the_token_is_cached_and_shared_by_concurrent_calls() -> None:
    halyk = Halyk(lambda request: answer("status_charge.json"))
    client = halyk.client()
    await client.get_charge(REFERENCE)
    await asyncio.gather(*(client.get_charge(REFERENCE) for _ in range(5)))
    assert len(halyk.tokens) == 1
    assert {r.headers["authorization"] for r in halyk.seen} == {"Bearer tok-1"}


@pytest.mark.parametrize("expires_in", [7200, "7200"])
async def test_the_token_is_taken_again_before_it_expires(expires_in: object) -> None:
    halyk = Halyk(lambda request: answer("status_charge.json"), expires_in=expires_in)
    client = halyk.client()
    now = [1000.0]
    client.clock = lambda: now[0]
    await client.get_charge(REFERENCE)
    now[0] += 7200 - 301  # more than five minutes left: still good
    await client.get_charge(REFERENCE)
    assert len(halyk.tokens) == 1
    now[0] += 2  # less than five minutes left: a new one before it runs out
    await client.get_charge(REFERENCE)
    assert len(halyk.tokens) == 2
    assert [r.headers["authorization"] for r in halyk.seen] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_a_401_takes_a_new_token_and_sends_the_call_once_more() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-1":
            return answer("error_token_expired.json", 401)
        return answer("status_charge.json")

    halyk = Halyk(route)
    outcome = await halyk.client().get_charge(REFERENCE)
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert len(halyk.tokens) == 2
    assert [r.headers["authorization"] for r in halyk.seen] == ["Bearer tok-1", "Bearer tok-2"]


async def test_a_second_401_is_a_refusal_not_a_loop() -> None:
    halyk = Halyk(lambda request: answer("error_token_expired.json", 401))
    with pytest.raises(ProviderRejected) as refused:
        await halyk.client().get_charge(REFERENCE)
    assert refused.value.code == "token_expired"
    assert (len(halyk.tokens), len(halyk.seen)) == (2, 2)


async def test_a_401_on_the_payment_asks_a_new_payment_token() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-1":
            return answer("error_token_expired.json", 401)
        return answer("auth_charge.json")

    halyk = Halyk(route)
    outcome = await halyk.client().charge(
        reference=REFERENCE, token=CARD_ID, amount=500010, currency="KZT", callback_url=POST_LINK
    )
    assert outcome.status == "succeeded"
    assert [form(r)["invoiceID"] for r in halyk.tokens] == [INVOICE, INVOICE]
    assert len(halyk.seen) == 2


@pytest.mark.parametrize(
    ("token_answer", "error", "code"),
    [
        (httpx.Response(503), ProviderUnreachable, "token_unavailable"),
        (httpx.Response(500, json={"code": 1012}), ProviderUnreachable, "token_unavailable"),
        (
            httpx.Response(200, json={"token_type": "Bearer"}),
            ProviderUnreachable,
            "token_unavailable",
        ),
        (
            httpx.Response(200, json={"access_token": "t", "expires_in": 0}),
            ProviderUnreachable,
            "token_unavailable",
        ),
        (httpx.Response(401, json={"code": 1002}), ProviderRejected, "unauthorized"),
        (httpx.Response(429, headers={"Retry-After": "1"}), ProviderThrottled, "throttled"),
    ],
    ids=["503", "500", "no-token", "no-lifetime", "bad-client", "throttled"],
)
async def test_no_token_means_nothing_was_paid(
    token_answer: httpx.Response, error: type[Exception], code: str
) -> None:
    halyk = Halyk(lambda request: answer("auth_charge.json"))
    halyk.token_answer = lambda request: token_answer
    with pytest.raises(error) as raised:
        await halyk.client().charge(reference=REFERENCE, token=CARD_ID, amount=1, currency="KZT")
    assert getattr(raised.value, "code", None) == code
    assert halyk.seen == []  # the payment was never sent


async def test_an_unreachable_token_endpoint_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    halyk = Halyk(lambda request: answer("status_charge.json"))
    halyk.token_answer = refuse
    with pytest.raises(ProviderUnreachable):
        await halyk.client().get_charge(REFERENCE)


# -- callbacks ------------------------------------------------------------------------------------


def _verify(body: bytes, secret: str = WEBHOOK_SECRET) -> None:
    HalykEpayClient.verify_callback(secret, {}, body, now=time.time(), tolerance_seconds=300)


def test_the_secret_hash_is_hmac_of_the_invoice_under_the_webhook_secret() -> None:
    expected = hmac.new(WEBHOOK_SECRET.encode(), INVOICE.encode(), hashlib.sha256).hexdigest()
    assert Halyk(lambda r: httpx.Response(200)).client().secret_hash(INVOICE) == expected
    assert fixture("callback_ok.json")["secret_hash"] == expected


def test_a_callback_with_its_invoices_secret_hash_is_taken_as_a_hint() -> None:
    _verify(raw("callback_ok.json"))
    paid = HalykEpayClient.parse_callback(raw("callback_ok.json"))
    assert (paid.reference, paid.status, paid.amount, paid.currency) == (
        REFERENCE,
        "succeeded",
        500010,
        "KZT",
    )
    assert (paid.provider_payment_id, paid.decline_code, paid.event_id) == (TRANSACTION, None, None)
    _verify(raw("callback_error.json"))
    failed = HalykEpayClient.parse_callback(raw("callback_error.json"))
    assert (failed.status, failed.decline_code) == ("declined", "authentication_failed")


def _forged(**changes: Any) -> bytes:
    data = json.loads(raw("callback_ok.json"))
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("body", "secret", "code"),
    [
        (_forged(secret_hash="0" * 64), WEBHOOK_SECRET, "invalid_signature"),
        (_forged(), "another-webhook-secret", "invalid_signature"),
        (_forged(secret_hash=None), WEBHOOK_SECRET, "signature_missing"),
        (_forged(secret_hash=""), WEBHOOK_SECRET, "signature_missing"),
        # a genuine invoice and hash, claiming another of our references
        (_forged(description=OTHER), WEBHOOK_SECRET, "invalid_signature"),
        # another invoice with the first one's hash
        (_forged(invoiceId=OTHER_INVOICE), WEBHOOK_SECRET, "invalid_signature"),
        (b"not json", WEBHOOK_SECRET, "signature_missing"),
    ],
    ids=[
        "wrong-hash",
        "wrong-secret",
        "no-hash",
        "blank-hash",
        "other-reference",
        "other-invoice",
        "garbage",
    ],
)
def test_a_forged_callback_is_refused(body: bytes, secret: str, code: str) -> None:
    with pytest.raises(SignatureError) as refused:
        _verify(body, secret)
    assert refused.value.code == code


def test_without_a_webhook_secret_the_callbacks_cannot_pass() -> None:
    """Fail closed: its payments settle by polling until the secret is configured."""
    unconfigured = Halyk(lambda r: httpx.Response(200)).client(ConnectorConfig(type="halyk_epay"))
    body = _forged(secret_hash=unconfigured.secret_hash(INVOICE))
    for secret in (WEBHOOK_SECRET, "api-secret", ""):
        with pytest.raises(SignatureError):
            _verify(body, secret)


@pytest.mark.parametrize(
    "body",
    [_forged(code="pending"), _forged(amount="5000.105"), _forged(description=None), b"[]"],
    ids=["unknown-code", "odd-amount", "no-reference", "not-an-object"],
)
def test_a_callback_we_cannot_read(body: bytes) -> None:
    with pytest.raises(CallbackNotUnderstood):
        HalykEpayClient.parse_callback(body)


# -- over HTTP against the simulator --------------------------------------------------------------

CARD = CardData(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="A B")
THREE_DS = CardData(number="4000000000003220", exp_month=12, exp_year=2030, cvc="123")
DECLINING = CardData(number="4000000000000002", exp_month=12, exp_year=2030, cvc="123")


class Simulated:
    def __init__(self, client: HalykEpayClient, sim: httpx.AsyncClient) -> None:
        self.client = client
        self.sim = sim
        self.requests: list[httpx.Request] = []

    def token_requests(self) -> int:
        return sum(r.url.path.endswith("/oauth2/token") for r in self.requests)

    async def behave(self, **knobs: Any) -> None:
        response = await self.sim.put("/admin/providers/halyk/behaviour", json=knobs)
        response.raise_for_status()

    async def held(self, reference: str) -> list[dict[str, Any]]:
        response = await self.sim.get("/admin/charges", params={"reference": reference})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found


def _with_webhook_secret(settings: Settings) -> Settings:
    """The connector configured with the webhook secret the callback check uses (the same
    simulator: the defaults of everything else)."""
    config = ConnectorConfig(
        type="halyk_epay", webhook_secret=SecretStr(settings.webhook_secret("halyk"))
    )
    return settings.model_copy(update={"connectors": {**settings.connectors, "halyk": config}})


@pytest.fixture
async def simulated(settings: Settings, simulator_url: str) -> AsyncIterator[Simulated]:
    requests: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    async with (
        httpx.AsyncClient(timeout=5.0, event_hooks={"request": [record]}) as http,
        httpx.AsyncClient(base_url=simulator_url, timeout=10.0) as sim,
    ):
        client = build_client(_with_webhook_secret(settings), http, "halyk", CLIENT)
        simulated = Simulated(client, sim)
        simulated.requests = requests
        await simulated.behave()
        try:
            yield simulated
        finally:
            await simulated.behave()


def _reference() -> str:
    return f"dep_{uuid.uuid4().hex[:24]}"


async def test_simulated_tokenize_charge_status_refunds(simulated: Simulated) -> None:
    client, reference = simulated.client, _reference()
    token = await client.tokenize(CARD)
    assert (token.bin, token.last4, token.scheme, token.issuer_country) == (
        "424242",
        "4242",
        "visa",
        "KZ",
    )
    charged = await client.charge(
        reference=reference, token=token.token, amount=500010, currency="KZT"
    )
    assert (charged.reference, charged.status, charged.amount, charged.currency) == (
        reference,
        "succeeded",
        500010,
        "KZT",
    )
    paths = [r.url.path.split("/halyk", 1)[1] for r in simulated.requests]
    assert paths[-3:] == [  # held (AUTH), then taken
        "/payments/cards/auth",
        f"/operation/{charged.charge_id}/charge",
        f"/check-status/payment/transaction/{invoice_id(reference)}",
    ]
    again = await client.get_charge(reference)
    assert again == charged
    (held,) = await simulated.held(reference)
    assert (held["provider"], held["status"], held["amount"]) == ("halyk", "succeeded", 500010)

    partly = await client.refund(reference, 200000, "KZT")
    assert isinstance(partly, HalykChargeOutcome)
    assert (partly.status, partly.amount, partly.amount_refunded) == ("succeeded", 500010, 200000)
    with pytest.raises(ProviderRejected) as too_much:
        await client.refund(reference, 300020, "KZT")
    assert too_much.value.code == "refund_exceeds_amount"
    rest = await client.refund(reference, 300010, "KZT")
    assert isinstance(rest, HalykChargeOutcome)
    assert (rest.status, rest.amount_refunded) == ("succeeded", 500010)
    with pytest.raises(ProviderRejected) as nothing_left:
        await client.refund(reference, 100, "KZT")
    assert nothing_left.value.code == "invalid_status"
    cancelled = await client.cancel_charge(reference)  # charged: returned as it is
    assert cancelled is not None
    assert cancelled.status == "succeeded"

    repeated = await client.charge(
        reference=reference, token=token.token, amount=500010, currency="KZT"
    )
    assert repeated.charge_id == charged.charge_id
    log = (await simulated.sim.get(f"/admin/providers/halyk/charges/{reference}")).json()
    assert log["calls"] == 2
    assert len(await simulated.held(reference)) == 1


async def test_simulated_declines_and_unknown_cards(simulated: Simulated) -> None:
    client = simulated.client
    declining = await client.tokenize(DECLINING)
    declined = await client.charge(
        reference=_reference(), token=declining.token, amount=100000, currency="KZT"
    )
    assert (declined.status, declined.decline_code) == ("declined", "insufficient_funds")
    with pytest.raises(CardRejected) as invalid:
        await client.tokenize(
            CardData(number="4242424242424241", exp_month=1, exp_year=2030, cvc="1234")
        )
    assert invalid.value.code == "invalid_card_number"
    with pytest.raises(ProviderRejected) as unknown:
        await client.charge(reference=_reference(), token="tok_nope", amount=100, currency="KZT")
    assert unknown.value.code == "unknown_token"


async def test_simulated_not_found_is_none(simulated: Simulated) -> None:
    reference = _reference()
    assert await simulated.client.get_charge(reference) is None
    assert await simulated.client.cancel_charge(reference) is None
    assert await simulated.held(reference) == []


@contextlib.asynccontextmanager
async def _callback_receiver() -> AsyncIterator[tuple[str, asyncio.Queue[bytes]]]:
    """A bare HTTP endpoint that keeps each request's body and answers 200."""
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = 0
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-length":
                length = int(value)
        await received.put(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1/webhooks/halyk", received


async def test_simulated_3d_secure_and_its_callback(
    simulated: Simulated, settings: Settings
) -> None:
    client, reference = simulated.client, _reference()
    token = await client.tokenize(THREE_DS)
    async with _callback_receiver() as (post_link, received):
        waiting = await client.charge(
            reference=reference,
            token=token.token,
            amount=250000,
            currency="KZT",
            callback_url=post_link,
        )
        assert waiting.status == "requires_action"
        assert waiting.action_url is not None
        assert waiting.action_url.endswith(f"/pay/halyk/{reference}")
        still = await client.get_charge(reference)
        assert still is not None
        assert still.status == "requires_action"
        passed = await simulated.sim.post(f"{waiting.action_url}/confirm")
        assert passed.status_code == 200
        body = await asyncio.wait_for(received.get(), timeout=10)
    # unsigned, but with the secret_hash sent for its invoice: taken as a hint
    HalykEpayClient.verify_callback(
        settings.webhook_secret("halyk"), {}, body, now=time.time(), tolerance_seconds=300
    )
    hint = HalykEpayClient.parse_callback(body)
    assert (hint.reference, hint.status, hint.amount, hint.currency) == (
        reference,
        "succeeded",
        250000,
        "KZT",
    )
    with pytest.raises(SignatureError):  # nobody else's secret makes it pass
        HalykEpayClient.verify_callback(
            settings.provider_secret("halyk"), {}, body, now=time.time(), tolerance_seconds=300
        )
    settled = await client.get_charge(reference)  # the status decides: held, then taken
    assert settled is not None
    assert (settled.status, settled.amount) == ("succeeded", 250000)


async def test_simulated_3d_secure_abandoned_and_failed(simulated: Simulated) -> None:
    client = simulated.client
    token = await client.tokenize(THREE_DS)
    abandoned = _reference()
    await client.charge(reference=abandoned, token=token.token, amount=100000, currency="KZT")
    cancelled = await client.cancel_charge(abandoned)
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    failed = _reference()
    waiting = await client.charge(
        reference=failed, token=token.token, amount=100000, currency="KZT"
    )
    await simulated.sim.post(f"{waiting.action_url}/decline")
    declined = await client.get_charge(failed)
    assert declined is not None
    assert (declined.status, declined.decline_code) == ("declined", "authentication_failed")


async def test_simulated_throttling(simulated: Simulated) -> None:
    client = simulated.client
    reference = _reference()
    assert await client.get_charge(reference) is None  # a token in hand
    await simulated.behave(throttle_next=1, throttle_retry_after_seconds=2)
    with pytest.raises(ProviderThrottled) as throttled:
        await client.get_charge(reference)
    assert throttled.value.retry_after == 2
    assert await client.get_charge(reference) is None


async def test_simulated_error_after_processing_is_unknown_and_the_charge_is_there(
    simulated: Simulated,
) -> None:
    client, reference = simulated.client, _reference()
    token = await client.tokenize(CARD)
    await simulated.behave(error_after_processing_next=1)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await client.charge(reference=reference, token=token.token, amount=120000, currency="KZT")
    assert unknown.value.code == "http_502"
    (held,) = await simulated.held(reference)
    assert held["status"] == "succeeded"
    found = await client.get_charge(reference)  # held at Halyk: taken by the inquiry
    assert found is not None
    assert (found.status, found.amount) == ("succeeded", 120000)


async def test_simulated_connection_dropped_after_processing(simulated: Simulated) -> None:
    client, reference = simulated.client, _reference()
    token = await client.tokenize(CARD)
    await simulated.behave(reset_after_processing_next=1)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await client.charge(reference=reference, token=token.token, amount=120000, currency="KZT")
    assert unknown.value.code == "connection_lost"
    assert len(await simulated.held(reference)) == 1


async def test_simulated_expired_credentials_take_a_new_token(simulated: Simulated) -> None:
    client = simulated.client
    reference = _reference()
    assert await client.get_charge(reference) is None
    assert simulated.token_requests() == 1
    await simulated.behave(expire_credentials_next=1)
    assert await client.get_charge(reference) is None
    assert simulated.token_requests() == 2
    await simulated.behave(expire_credentials_next=2)
    with pytest.raises(ProviderRejected) as expired:
        await client.get_charge(reference)
    assert expired.value.code == "token_expired"


async def test_simulated_outage_is_unreachable(simulated: Simulated) -> None:
    client = simulated.client
    token = await client.tokenize(CARD)
    await simulated.behave(outage=True)
    with pytest.raises(ProviderUnreachable):
        await client.get_charge(_reference())
    with pytest.raises(ProviderUnreachable):  # its payment token cannot be had
        await client.charge(reference=_reference(), token=token.token, amount=100, currency="KZT")


async def test_simulated_api_refuses_strangers(simulated: Simulated) -> None:
    sim = simulated.sim
    status = await sim.get(f"/providers/halyk/check-status/payment/transaction/{INVOICE}")
    assert (status.status_code, status.json()["code"]) == (401, 1002)
    stranger = await sim.post(
        "/providers/halyk/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "halyk", "client_secret": "x"},
    )
    assert (stranger.status_code, stranger.json()["code"]) == (401, 1002)
    common = await sim.get(f"/providers/halyk/charges/{REFERENCE}")
    assert common.status_code == 404  # only Halyk's own API for this provider
