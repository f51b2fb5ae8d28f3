"""CloudPayments KZ connector (`providers.connectors.cloudpayments`) and its simulator
(`simulator.connectors.cloudpayments`).

First against answers, request bodies, credentials, X-Request-IDs and signed notifications
written by hand from the documented formats (tests/fixtures/cloudpayments/, never produced by
the code under test), through httpx.MockTransport; then over HTTP against the real simulator
process: tokenize and charge, 3-D Secure completion, void, partial refunds, find by invoice,
payouts to a card token, and the simulator's behaviour knobs through CloudPayments' API."""

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from config import Settings
from config.connectors import ConnectorConfig
from providers.amounts import InvalidAmount
from providers.card import CardData
from providers.connectors.cloudpayments import (
    CLIENT,
    PAYOUT_CLIENT,
    CloudPaymentsClient,
    CloudPaymentsPayoutClient,
    charge_outcome,
    decode_amount,
    encode_amount,
    notification_kind,
)
from providers.errors import (
    CardRejected,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
)
from providers.payments import CallbackNotUnderstood
from providers.registry import build_client, card_dialect, connector_types
from providers.signing import SignatureError
from simulator.connectors import plugins
from simulator.connectors.cloudpayments import encode_callback, pa_res

FIXTURES = Path(__file__).parent / "fixtures" / "cloudpayments"
WIRE: dict[str, Any] = json.loads((FIXTURES / "wire.json").read_text())
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(path: str) -> Any:
    """A fixture as JSON, its decimal numbers exact."""
    return json.loads((FIXTURES / path).read_bytes(), parse_float=Decimal)


def answered(name: str, status: int = 200) -> httpx.Response:
    """A hand-written answer, byte for byte."""
    content = (FIXTURES / "answers" / name).read_bytes()
    return httpx.Response(status, content=content, headers={"content-type": "application/json"})


def sent(request: httpx.Request) -> Any:
    return json.loads(request.content, parse_float=Decimal)


def offline(handler: Handler) -> CloudPaymentsClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return CloudPaymentsClient(
        http=http,
        base_url="http://sim",
        provider="cloudpayments",
        secret=WIRE["api_secret"],
        config=ConnectorConfig(type="cloudpayments", merchant_id=WIRE["public_id"]),
    )


def offline_payouts(handler: Handler) -> CloudPaymentsPayoutClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return CloudPaymentsPayoutClient(
        http=http,
        base_url="http://sim",
        provider="cloudpayments",
        secret=WIRE["api_secret"],
        config=ConnectorConfig(type="cloudpayments", merchant_id=WIRE["public_id"]),
    )


def always(name: str, status: int = 200) -> Handler:
    return lambda _request: answered(name, status)


def replying(status: int, content: bytes) -> Handler:
    return lambda _request: httpx.Response(status, content=content)


def with_model(name: str, **changes: Any) -> dict[str, Any]:
    """A hand-written answer with some of its Model's fields changed, its numbers kept as
    written (as the connector reads them off the wire)."""
    answer: dict[str, Any] = json.loads((FIXTURES / "answers" / name).read_bytes(), parse_float=str)
    return {**answer, "Model": {**answer["Model"], **changes}}


CARD = CardData(
    number="4242424242424242", exp_month=12, exp_year=2030, cvc="123", holder="ASEL NURLANOVNA"
)


# -- the registry finds both sides ------------------------------------------------------------


def test_the_platform_and_the_simulator_find_the_cloudpayments_connector() -> None:
    assert connector_types()["cloudpayments"] is CLIENT is CloudPaymentsClient
    assert card_dialect("cloudpayments") is CloudPaymentsClient
    assert PAYOUT_CLIENT is CloudPaymentsPayoutClient
    assert plugins()["cloudpayments"].encode_callback is encode_callback


# -- requests on the wire ---------------------------------------------------------------------


async def test_requests_carry_basic_auth_the_documented_bodies_and_a_request_id_per_operation() -> (
    None
):
    seen: list[httpx.Request] = []
    voided = False

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal voided
        seen.append(request)
        path = request.url.path.removeprefix("/providers/cloudpayments")
        if path == "/payments/find":
            if sent(request)["InvoiceId"] == "dep_fixture_1":
                return answered("charge_completed.json")
            return answered("find_cancelled.json" if voided else "find_awaiting.json")
        if path == "/payments/void":
            voided = True
        return answered(
            {
                "/payments/cards/tokenize": "tokenize.json",
                "/payments/tokens/charge": "charge_completed.json",
                "/payments/cards/post3ds": "post3ds_completed.json",
                "/payments/void": "void.json",
                "/payments/refund": "refund.json",
            }[path]
        )

    client = offline(answer)
    token = await client.tokenize(CARD)
    first = await client.charge(
        reference="dep_fixture_1",
        token=token.token,
        amount=500010,
        currency="KZT",
        callback_url="http://api/v1/webhooks/cloudpayments",
    )
    again = await client.charge(
        reference="dep_fixture_1", token=token.token, amount=500010, currency="KZT"
    )
    completed = await client.complete_3ds(
        reference="dep_fixture_3",
        charge_id="506",
        pa_res="eJxVUdtuwjAM/ZWI9zVpKWxD2pvGWRBC4ASdjXdh3Lld+e3dsIAf",
    )
    cancelled = await client.cancel_charge("dep_fixture_3")
    refund = await client.refund(reference="dep_fixture_1", amount=150005, currency="KZT")

    assert first == again
    assert (completed.status, cancelled and cancelled.status) == ("succeeded", "cancelled")
    assert (refund.refund_id, refund.charge_id, refund.amount) == ("568", "504", 150005)
    calls = [(r.url.path.removeprefix("/providers/cloudpayments"), r) for r in seen]
    assert [path for path, _ in calls] == [
        "/payments/cards/tokenize",
        "/payments/tokens/charge",
        "/payments/tokens/charge",
        "/payments/cards/post3ds",
        "/payments/find",
        "/payments/void",
        "/payments/find",
        "/payments/find",
        "/payments/refund",
    ]
    for _, request in calls:
        assert request.method == "POST"
        assert request.headers["authorization"] == WIRE["authorization"]
        assert request.headers["content-type"] == "application/json"
    bodies = {
        "/payments/cards/tokenize": ("tokenize.json", "tokenize"),
        "/payments/tokens/charge": ("tokens_charge.json", "charge"),
        "/payments/cards/post3ds": ("post3ds.json", "post3ds"),
        "/payments/void": ("void.json", "void"),
        "/payments/refund": ("refund.json", "refund"),
    }
    for path, request in calls:
        if path == "/payments/find":  # an idempotent read: never answered from a cache
            assert "x-request-id" not in request.headers
            assert set(sent(request)) == {"InvoiceId"}
            continue
        body, operation = bodies[path]
        assert sent(request) == fixture(f"requests/{body}"), path
        assert request.headers["x-request-id"] == WIRE["request_ids"][operation], path
    # The callback URL is the back office's: nothing of it travels with the charge.
    assert b"webhooks" not in calls[1][1].content
    assert calls[1][1].headers["x-request-id"] == calls[2][1].headers["x-request-id"]
    assert sent(calls[4][1]) == fixture("requests/find.json")


async def test_a_payout_goes_to_the_card_token_with_its_own_request_id() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answered("topup_completed.json")

    payouts = offline_payouts(answer)
    outcome = await payouts.pay(
        reference="wd_fixture_1",
        amount=15000050,
        currency="KZT",
        method="card",
        destination={"card": {"token": "tk_7d1c0e5a3b", "bin": "424242", "last4": "4242"}},
    )
    assert (outcome.status, outcome.payout_id, outcome.amount) == ("paid", "610", 15000050)
    [request] = seen
    assert request.url.path == "/providers/cloudpayments/payments/token/topup"
    assert request.headers["authorization"] == WIRE["authorization"]
    assert request.headers["x-request-id"] == WIRE["request_ids"]["topup"]
    assert sent(request) == fixture("requests/token_topup.json")

    with pytest.raises(ProviderRejected) as refused:
        await payouts.pay(
            reference="wd_2", amount=100, currency="KZT", method="bank_transfer", destination={}
        )
    assert refused.value.code == "unsupported_method"
    with pytest.raises(ProviderRejected) as no_token:
        await payouts.pay(
            reference="wd_3", amount=100, currency="KZT", method="card", destination={}
        )
    assert no_token.value.code == "invalid_destination"
    assert len(seen) == 1  # neither refusal left this process


def test_public_id_defaults_to_the_provider_name() -> None:
    http = httpx.AsyncClient()
    client = CloudPaymentsClient(
        http=http, base_url="http://sim", provider="cloudpayments", secret="s3cret"
    )
    expected = "Basic " + base64.b64encode(b"cloudpayments:s3cret").decode()
    assert client._headers == {"Authorization": expected}


# -- answers: transactions, 3-D Secure, errors in and out of the envelope ---------------------


async def test_answers_are_read_in_our_terms() -> None:
    completed = await offline(always("charge_completed.json")).charge(
        reference="dep_fixture_1", token="tk", amount=500010, currency="KZT"
    )
    assert completed.model_dump() == {
        "reference": "dep_fixture_1",
        "charge_id": "504",
        "status": "succeeded",
        "decline_code": None,
        "amount": 500010,  # "Amount": 5000.10, read from its digits
        "currency": "KZT",
        "action_url": None,
        "action_form": None,
    }
    declined = await offline(always("charge_declined.json")).charge(
        reference="dep_fixture_2", token="tk", amount=1000, currency="KZT"
    )
    assert (declined.status, declined.decline_code, declined.amount) == (
        "declined",
        "insufficient_funds",
        1000,  # "Amount": 10.00000
    )
    challenge = await offline(always("charge_3ds.json")).charge(
        reference="dep_fixture_3", token="tk", amount=250000, currency="KZT"
    )
    assert challenge.model_dump() == {
        "reference": "dep_fixture_3",
        "charge_id": "506",
        "status": "requires_action",
        "decline_code": None,
        "amount": 250000,
        "currency": "KZT",
        "action_url": "https://acs.example.kz/acs/auth/start.do",
        # what the payer's browser POSTs to the ACS (the platform adds TermUrl)
        "action_form": {
            "PaReq": "eJxVUdtuwjAM/ZWI9zVpKWxD2pvGWRBC4ASdjXdh3Lld+e3dsIAf",
            "MD": "506",
        },
    }
    waiting = await offline(always("find_awaiting.json")).get_charge("dep_fixture_3")
    assert waiting is not None
    assert (waiting.status, waiting.action_url) == ("requires_action", None)
    assert await offline(always("not_found.json")).get_charge("dep_never") is None
    token = await offline(always("tokenize.json")).tokenize(CARD)
    assert token.model_dump() == {
        "token": "tk_7d1c0e5a3b",
        "bin": "424242",
        "last4": "4242",
        "scheme": "visa",
        "issuer_country": "KZ",
    }


async def test_a_settled_charge_is_never_voided_and_one_never_seen_cannot_be() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return answered("charge_completed.json")

    settled = await offline(answer).cancel_charge("dep_fixture_1")
    assert settled is not None
    assert settled.status == "succeeded"
    assert seen == ["/providers/cloudpayments/payments/find"]
    assert await offline(always("not_found.json")).cancel_charge("dep_never") is None


async def test_errors_without_a_model_are_refusals_only_when_documented_as_such() -> None:
    with pytest.raises(ProviderRejected) as required:
        await offline(always("amount_required.json")).charge(
            reference="dep_1", token="tk", amount=100, currency="KZT"
        )
    assert required.value.code == "amount_is_required"
    with pytest.raises(CardRejected) as invalid:
        await offline(always("invalid_amount.json")).tokenize(CARD)
    assert invalid.value.code == "invalid_amount_value"
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await offline(always("undocumented_error.json")).charge(
            reference="dep_1", token="tk", amount=100, currency="KZT"
        )
    assert unknown.value.code == "something_went_wrong_on_our_side"
    for body in (b"<html>bad gateway</html>", b'{"Model": null}', b'{"Success": false}'):
        client = offline(replying(200, body))
        with pytest.raises(ProviderOutcomeUnknown) as unreadable:
            await client.get_charge("dep_1")
        assert unreadable.value.code == "invalid_response"


async def test_http_failures_are_classified_as_everywhere() -> None:
    def throttled(_request: httpx.Request) -> httpx.Response:
        body = {"Success": False, "Message": "Too many requests"}
        return httpx.Response(429, json=body, headers={"Retry-After": "3"})

    with pytest.raises(ProviderThrottled) as slow:
        await offline(throttled).get_charge("dep_1")
    assert slow.value.retry_after == 3.0
    unauthorized = b'{"Success": false, "Message": "Unauthorized"}'
    with pytest.raises(ProviderRejected) as refused:
        await offline(replying(401, unauthorized)).get_charge("dep_1")
    assert refused.value.code == "unauthorized"
    down = b'{"Success": false, "Message": "Service unavailable"}'
    for status in (500, 502, 503, 504):  # no documented "down, nothing processed" answer
        client = offline(replying(status, down))
        with pytest.raises(ProviderOutcomeUnknown):
            await client.charge(reference="dep_1", token="tk", amount=100, currency="KZT")


STATUSES = [
    ("AwaitingAuthentication", "requires_action"),
    ("Authorized", "requires_action"),  # held by a two-stage auth: never read as paid
    ("Completed", "succeeded"),
    ("Cancelled", "cancelled"),
    ("Declined", "declined"),
]


@pytest.mark.parametrize(("status", "ours"), STATUSES)
def test_every_documented_status_is_read(status: str, ours: str) -> None:
    code = 5051 if status == "Declined" else 0
    outcome = charge_outcome(with_model("charge_completed.json", Status=status, ReasonCode=code))
    assert outcome.status == ours
    assert outcome.decline_code == ("insufficient_funds" if status == "Declined" else None)


async def test_an_unknown_status_is_an_answer_we_cannot_read() -> None:
    answer = with_model("charge_completed.json", Status="Refunded")
    client = offline(replying(200, json.dumps(answer).encode()))
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await client.get_charge("dep_fixture_1")
    assert unknown.value.code == "invalid_response"


REASON_CODES = [
    (5001, "refer_to_card_issuer"),
    (5003, "invalid_merchant"),
    (5004, "pick_up_card"),
    (5005, "do_not_honor"),
    (5006, "network_refused"),
    (5007, "pick_up_card"),
    (5012, "invalid_transaction"),
    (5013, "invalid_amount"),
    (5014, "invalid_card_number"),
    (5015, "no_such_issuer"),
    (5019, "transaction_error"),
    (5030, "format_error"),
    (5031, "issuer_not_supported"),
    (5033, "expired_card"),
    (5034, "suspected_fraud"),
    (5036, "restricted_card"),
    (5041, "lost_card"),
    (5043, "stolen_card"),
    (5051, "insufficient_funds"),
    (5054, "expired_card"),
    (5057, "transaction_not_permitted"),
    (5062, "restricted_card"),
    (5063, "security_violation"),
    (5065, "exceeds_frequency_limit"),
    (5082, "incorrect_cvv"),
    (5091, "issuer_unavailable"),
    (5092, "issuer_unavailable"),
    (5096, "system_error"),
    (5204, "unable_to_process"),
    (5206, "authentication_failed"),
    (5207, "authentication_unavailable"),
    (5300, "acquirer_limit"),
    (5999, "5999"),  # one not documented passes through
]


@pytest.mark.parametrize(("code", "ours"), REASON_CODES)
def test_every_documented_reason_code_is_read(code: int, ours: str) -> None:
    declined = charge_outcome(with_model("charge_declined.json", ReasonCode=code))
    assert (declined.status, declined.decline_code) == ("declined", ours)


async def test_payouts_are_paid_failed_or_not_final_yet() -> None:
    paid = await offline_payouts(always("topup_completed.json")).get_payout("wd_fixture_1")
    assert paid is not None
    assert (paid.status, paid.failure_code, paid.amount) == ("paid", None, 15000050)
    failed = await offline_payouts(always("topup_declined.json")).get_payout("wd_fixture_2")
    assert failed is not None
    assert (failed.status, failed.failure_code) == ("failed", "transaction_not_permitted")
    held = with_model("topup_completed.json", Status="Authorized")
    body = json.dumps(held).encode()
    with pytest.raises(ProviderOutcomeUnknown) as processing:
        await offline_payouts(replying(200, body)).get_payout("wd_1")
    assert processing.value.code == "processing"
    assert await offline_payouts(always("not_found.json")).get_payout("wd_never") is None
    with pytest.raises(ProviderRejected) as no_cancel:
        await offline_payouts(always("not_found.json")).cancel_payout(
            reference="wd_never", amount=100, currency="KZT"
        )
    assert no_cancel.value.code == "not_found"


@pytest.mark.parametrize(
    ("value", "tiyn"),
    [("5000.10", 500010), ("10.00000", 1000), ("5000.1", 500010), (10, 1000), ("0.01", 1)],
)
def test_amounts_are_read_exactly_from_their_digits(value: object, tiyn: int) -> None:
    assert decode_amount(value) == tiyn


@pytest.mark.parametrize("value", ["10.005", "1e3", "-1.00", True, -1, None, 10.5])
def test_amounts_with_a_third_decimal_or_odd_forms_are_refused(value: object) -> None:
    with pytest.raises(InvalidAmount):
        decode_amount(value)


def test_amounts_go_out_as_exact_json_numbers() -> None:
    assert json.dumps({"Amount": encode_amount(500010)}) == '{"Amount": 5000.1}'
    assert json.dumps({"Amount": encode_amount(1)}) == '{"Amount": 0.01}'
    with pytest.raises(InvalidAmount):
        encode_amount(12345678901234567891)


# -- notifications ----------------------------------------------------------------------------


def signed_notifications() -> tuple[str, dict[str, str]]:
    """The secret and each notification's X-Content-HMAC, from signatures.txt."""
    fields = {}
    for line in (FIXTURES / "notifications" / "signatures.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" = ")
            fields[key] = value
    return fields.pop("secret"), fields


NOTIFICATIONS = [
    ("pay.json", "pay", "succeeded", 500010, "KZT", None),
    ("fail.json", "fail", "declined", 1000, "KZT", "insufficient_funds"),
    ("check.json", "check", "pending", 250000, "KZT", None),
    ("cancel.json", "cancel", "cancelled", 250000, None, None),
    ("refund.json", "refund", "refunded", 150005, None, None),
    ("payout_pay.json", "pay", "paid", 15000050, "KZT", None),
]


@pytest.mark.parametrize(("name", "kind", "status", "amount", "currency", "reason"), NOTIFICATIONS)
def test_signed_notifications_are_verified_and_read(
    name: str, kind: str, status: str, amount: int, currency: str | None, reason: str | None
) -> None:
    secret, signatures = signed_notifications()
    body = (FIXTURES / "notifications" / name).read_bytes()
    for header in ("X-Content-HMAC", "x-content-hmac"):
        CLIENT.verify_callback(
            secret, {header: signatures[name]}, body, now=0.0, tolerance_seconds=300
        )
    data = json.loads(body)
    assert notification_kind(data) == kind
    callback = CLIENT.parse_callback(body)
    assert callback.reference == data["InvoiceId"]
    assert (callback.status, callback.amount, callback.currency) == (status, amount, currency)
    assert callback.decline_code == reason
    assert callback.provider_payment_id == str(data["TransactionId"])
    assert callback.event_id == f"{kind}:{data['TransactionId']}"


def test_forged_or_wrongly_keyed_notifications_are_refused() -> None:
    secret, signatures = signed_notifications()
    body = (FIXTURES / "notifications" / "pay.json").read_bytes()
    forged = body.replace(b'"Amount":5000.10', b'"Amount":9000.10')
    assert forged != body
    attempts: list[tuple[str, dict[str, str], bytes, str]] = [
        (secret, {"X-Content-HMAC": signatures["pay.json"]}, forged, "invalid_signature"),
        ("another-secret", {"X-Content-HMAC": signatures["pay.json"]}, body, "invalid_signature"),
        (secret, {"X-Content-HMAC": signatures["fail.json"]}, body, "invalid_signature"),
        (secret, {"Content-HMAC": signatures["pay.json"]}, body, "signature_missing"),
        (secret, {}, body, "signature_missing"),
    ]
    for key, headers, payload, code in attempts:
        with pytest.raises(SignatureError) as refused:
            CLIENT.verify_callback(key, headers, payload, now=0.0, tolerance_seconds=300)
        assert refused.value.code == code


def test_notifications_that_are_not_understood_and_the_ack() -> None:
    for body in (b"TransactionId=504&Amount=10.00", b"[]", b'{"TransactionId": 1}'):
        with pytest.raises(CallbackNotUnderstood):
            CLIENT.parse_callback(body)
    assert CLIENT.callback_ack() == (b'{"code": 0}', "application/json")
    assert PAYOUT_CLIENT.callback_ack() == (b'{"code": 0}', "application/json")


@pytest.mark.parametrize(
    ("status", "decline", "ours"),
    [
        ("succeeded", None, "succeeded"),
        ("declined", "insufficient_funds", "declined"),
        ("declined", "authentication_failed", "declined"),
        ("cancelled", "expired", "cancelled"),
        ("refunded", None, "refunded"),
        ("requires_action", None, "pending"),
    ],
)
def test_the_simulator_writes_notifications_the_connector_verifies_and_reads(
    status: str, decline: str | None, ours: str
) -> None:
    event = {
        "type": "charge.updated",
        "reference": "dep_sim_1",
        "provider_payment_id": "ch_0a1b2c3d4e5f6a7b8c9d",
        "payment_transaction_id": 11,
        "status": status,
        "amount": 500010,
        "currency": "KZT",
        "decline_code": decline,
        "event_id": "evt_1",
        "sent_at": "2026-03-02T09:15:42+00:00",
    }
    body, headers = encode_callback("sim-secret", event)
    CLIENT.verify_callback("sim-secret", headers, body, now=0.0, tolerance_seconds=300)
    callback = CLIENT.parse_callback(body)
    assert (callback.reference, callback.status, callback.amount) == ("dep_sim_1", ours, 500010)
    assert callback.decline_code == (decline if status == "declined" else None)
    with pytest.raises(SignatureError):
        CLIENT.verify_callback("other-secret", headers, body, now=0.0, tolerance_seconds=300)


# -- over HTTP against the simulator ----------------------------------------------------------

PROVIDER = "cloudpayments"


@pytest.fixture
async def http(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The platform's side and the simulator's admin and pages; behaviour reset after."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=5.0) as client:
        yield client
        await client.put(f"/admin/providers/{PROVIDER}/behaviour", json={})
        await client.put(f"/admin/payouts/{PROVIDER}/behaviour", json={})


def cards(settings: Settings, http: httpx.AsyncClient) -> CloudPaymentsClient:
    return build_client(settings, http, PROVIDER, CLIENT)


def payouts(settings: Settings, http: httpx.AsyncClient) -> CloudPaymentsPayoutClient:
    return build_client(settings, http, PROVIDER, PAYOUT_CLIENT)


def ref(prefix: str = "dep") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def card(number: str) -> CardData:
    return CardData(number=number, exp_month=12, exp_year=2030, cvc="123", holder="ASEL N")


async def knobs(http: httpx.AsyncClient, path: str, **behaviour: Any) -> None:
    (await http.put(f"/admin/{path}/{PROVIDER}/behaviour", json=behaviour)).raise_for_status()


async def test_tokenize_charge_and_find_by_invoice(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = cards(settings, http)
    token = await client.tokenize(card("4242424242424242"))
    assert (token.bin, token.last4, token.scheme, token.issuer_country) == (
        "424242",
        "4242",
        "visa",
        "KZ",
    )
    reference = ref()
    charged = await client.charge(
        reference=reference, token=token.token, amount=500010, currency="KZT"
    )
    assert (charged.status, charged.amount, charged.currency) == ("succeeded", 500010, "KZT")
    assert charged.charge_id.isdigit()
    assert await client.get_charge(reference) == charged
    again = await client.charge(
        reference=reference, token=token.token, amount=500010, currency="KZT"
    )
    assert again.charge_id == charged.charge_id
    assert await client.get_charge(ref()) is None

    for number, reason in (
        ("4000000000000002", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
    ):
        refused = await client.tokenize(card(number))
        declined = await client.charge(
            reference=ref(), token=refused.token, amount=100, currency="KZT"
        )
        assert (declined.status, declined.decline_code) == ("declined", reason)
    with pytest.raises(CardRejected):
        await client.tokenize(card("4242424242424241"))
    with pytest.raises(ProviderRejected) as unknown_token:
        await client.charge(reference=ref(), token="tk_nobody", amount=100, currency="KZT")
    assert unknown_token.value.code == "token_not_found"


async def test_3_d_secure_is_completed_with_the_acs_answer(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = cards(settings, http)
    token = await client.tokenize(card("4000000000003220"))
    reference = ref()
    challenge = await client.charge(
        reference=reference, token=token.token, amount=250000, currency="KZT"
    )
    assert challenge.status == "requires_action"
    assert challenge.action_url is not None
    assert challenge.action_url.endswith(f"/pay/{PROVIDER}/{reference}")
    waiting = await client.get_charge(reference)
    assert waiting is not None
    assert (waiting.status, waiting.charge_id) == ("requires_action", challenge.charge_id)
    done = await client.complete_3ds(
        reference=reference, charge_id=challenge.charge_id, pa_res=pa_res(int(challenge.charge_id))
    )
    assert (done.status, done.amount, done.charge_id) == ("succeeded", 250000, challenge.charge_id)
    assert await client.get_charge(reference) == done

    failing = ref()
    second = await client.charge(reference=failing, token=token.token, amount=1000, currency="KZT")
    bogus = pa_res(int(second.charge_id), passed=False)
    refused = await client.complete_3ds(reference=failing, charge_id=second.charge_id, pa_res=bogus)
    assert (refused.status, refused.decline_code) == ("declined", "authentication_failed")

    on_page = ref()
    third = await client.charge(reference=on_page, token=token.token, amount=1000, currency="KZT")
    (await http.post(f"/pay/{PROVIDER}/{on_page}/confirm")).raise_for_status()
    passed = await client.get_charge(on_page)
    assert passed is not None
    assert passed.status == "succeeded"
    late = await client.complete_3ds(reference=on_page, charge_id=third.charge_id, pa_res="any")
    assert late.status == "succeeded"  # settled on the ACS page: answered as it is


async def test_void_a_charge_awaiting_3_d_secure(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = cards(settings, http)
    secure = await client.tokenize(card("4000000000003220"))
    reference = ref()
    await client.charge(reference=reference, token=secure.token, amount=1000, currency="KZT")
    voided = await client.cancel_charge(reference)
    assert voided is not None
    assert voided.status == "cancelled"
    found = await client.get_charge(reference)
    assert found is not None
    assert found.status == "cancelled"

    plain = await client.tokenize(card("4242424242424242"))
    paid = ref()
    await client.charge(reference=paid, token=plain.token, amount=1000, currency="KZT")
    kept = await client.cancel_charge(paid)
    assert kept is not None
    assert kept.status == "succeeded"
    assert await client.cancel_charge(ref()) is None


async def test_partial_refunds(settings: Settings, http: httpx.AsyncClient) -> None:
    client = cards(settings, http)
    token = await client.tokenize(card("4242424242424242"))
    reference = ref()
    await client.charge(reference=reference, token=token.token, amount=1_000_000, currency="KZT")
    first = await client.refund(reference=reference, amount=300_000, currency="KZT")
    again = await client.refund(reference=reference, amount=300_000, currency="KZT")
    assert again.refund_id == first.refund_id  # the same X-Request-ID: the same refund
    with pytest.raises(ProviderRejected) as too_much:
        await client.refund(reference=reference, amount=800_000, currency="KZT")
    assert too_much.value.code == "invalid_amount_value"
    second = await client.refund(
        reference=reference, amount=300_000, currency="KZT", refund_reference="second"
    )
    assert second.refund_id != first.refund_id
    last = await client.refund(reference=reference, amount=400_000, currency="KZT")
    assert last.amount == 400_000
    with pytest.raises(ProviderRejected) as nothing_left:
        await client.refund(reference=reference, amount=1, currency="KZT")
    assert nothing_left.value.code == "invalid_amount_value"
    with pytest.raises(ProviderRejected) as never_seen:
        await client.refund(reference=ref(), amount=1, currency="KZT")
    assert never_seen.value.code == "not_found"
    with pytest.raises(ProviderRejected) as other_currency:
        await client.refund(reference=reference, amount=1, currency="USD")
    assert other_currency.value.code == "currency_mismatch"


async def test_payout_to_a_card_token(settings: Settings, http: httpx.AsyncClient) -> None:
    client = payouts(settings, http)
    token = await cards(settings, http).tokenize(card("4242424242424242"))
    reference = ref("wd")
    destination = {"card": {"token": token.token, "bin": token.bin, "last4": token.last4}}
    paid = await client.pay(
        reference=reference,
        amount=1_500_050,
        currency="KZT",
        method="card",
        destination=destination,
    )
    assert (paid.status, paid.amount, paid.reference) == ("paid", 1_500_050, reference)
    assert await client.get_payout(reference) == paid
    repeated = await client.pay(
        reference=reference,
        amount=1_500_050,
        currency="KZT",
        method="card",
        destination=destination,
    )
    assert repeated.payout_id == paid.payout_id
    assert await client.cancel_payout(reference=reference, amount=1_500_050, currency="KZT") == paid
    assert await client.get_payout(ref("wd")) is None
    with pytest.raises(ProviderRejected) as no_cancel:
        await client.cancel_payout(reference=ref("wd"), amount=100, currency="KZT")
    assert no_cancel.value.code == "not_found"

    ineligible = await cards(settings, http).tokenize(card("4000000000000002"))
    failed = await client.pay(
        reference=ref("wd"),
        amount=100,
        currency="KZT",
        method="card",
        destination={"card": {"token": ineligible.token}},
    )
    assert (failed.status, failed.failure_code) == ("failed", "transaction_not_permitted")
    held = await http.get("/admin/charges", params={"reference": reference})
    assert [(h["kind"], h["status"]) for h in held.json()] == [("payout", "paid")]
    with pytest.raises(ProviderRejected) as unknown_token:
        await client.pay(
            reference=ref("wd"),
            amount=100,
            currency="KZT",
            method="card",
            destination={"card": {"token": "tk_nobody"}},
        )
    assert unknown_token.value.code == "token_not_found"


async def test_a_payout_still_processing_is_not_known_until_it_is(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = payouts(settings, http)
    token = await cards(settings, http).tokenize(card("4242424242424242"))
    await knobs(http, "payouts", payout_processing_seconds=0.5)
    reference = ref("wd")
    with pytest.raises(ProviderOutcomeUnknown) as processing:
        await client.pay(
            reference=reference,
            amount=5000,
            currency="KZT",
            method="card",
            destination={"card": {"token": token.token}},
        )
    assert processing.value.code == "processing"
    deadline = asyncio.get_running_loop().time() + 5
    while True:  # the desk settles it on its own clock: nothing to await but its answer
        try:
            found = await client.get_payout(reference)
            break
        except ProviderOutcomeUnknown:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
    assert found is not None
    assert (found.status, found.amount) == ("paid", 5000)


async def test_throttling_through_the_api(settings: Settings, http: httpx.AsyncClient) -> None:
    client = cards(settings, http)
    token = await client.tokenize(card("4242424242424242"))
    await knobs(http, "providers", throttle_next=1, throttle_retry_after_seconds=3)
    reference = ref()
    with pytest.raises(ProviderThrottled) as throttled:
        await client.charge(reference=reference, token=token.token, amount=1000, currency="KZT")
    assert throttled.value.retry_after == 3.0
    assert await client.get_charge(reference) is None  # refused before processing
    charged = await client.charge(
        reference=reference, token=token.token, amount=1000, currency="KZT"
    )
    assert charged.status == "succeeded"


async def test_an_error_after_processing_leaves_the_outcome_unknown_and_the_charge_there(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = cards(settings, http)
    token = await client.tokenize(card("4242424242424242"))
    await knobs(http, "providers", error_after_processing_next=1)
    reference = ref()
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await client.charge(reference=reference, token=token.token, amount=70000, currency="KZT")
    assert unknown.value.code == "http_502"
    found = await client.get_charge(reference)
    assert found is not None
    assert (found.status, found.amount) == ("succeeded", 70000)
    held = (await http.get("/admin/charges", params={"reference": reference})).json()
    assert [(h["kind"], h["status"], h["money_moved"]) for h in held] == [
        ("charge", "succeeded", True)
    ]


async def test_a_payout_processed_then_answered_504_is_found_paid(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = payouts(settings, http)
    token = await cards(settings, http).tokenize(card("4242424242424242"))
    await knobs(http, "payouts", error_after_processing_next=1, error_after_processing_status=504)
    reference = ref("wd")
    with pytest.raises(ProviderOutcomeUnknown):
        await client.pay(
            reference=reference,
            amount=5000,
            currency="KZT",
            method="card",
            destination={"card": {"token": token.token}},
        )
    found = await client.get_payout(reference)
    assert found is not None
    assert found.status == "paid"


async def test_credentials_outage_and_a_wrong_secret(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client = cards(settings, http)
    await knobs(http, "providers", expire_credentials_next=1)
    with pytest.raises(ProviderRejected) as expired:
        await client.get_charge(ref())
    assert expired.value.code == "credentials_expired"
    await knobs(http, "providers", outage=True)
    with pytest.raises(ProviderOutcomeUnknown):  # no documented "down, nothing processed" code
        await client.get_charge(ref())
    await knobs(http, "providers")
    wrong = CloudPaymentsClient(
        http=http,
        base_url=settings.simulator_url,
        provider=PROVIDER,
        secret="not-the-secret",
    )
    with pytest.raises(ProviderRejected) as unauthorized:
        await wrong.get_charge(ref())
    assert unauthorized.value.code == "unauthorized"
