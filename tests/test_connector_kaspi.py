"""Kaspi QR / Kaspi Pay (`providers.connectors.kaspi`, simulated by `simulator.connectors.kaspi`).

First the wire: request shapes against hand-written fixtures (tests/fixtures/kaspi/, written from
the documented formats, never produced by the code under test) over httpx.MockTransport, every
documented StatusCode and status, money in decimal tenge. Then the real simulator process:
a QR paid on the player's page, a payment request to a phone, declines, cancels, returns, the
behaviour knobs through Kaspi's API, and no callback ever.
"""

import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from pydantic import SecretStr

from config import Settings
from config.connectors import ConnectorConfig
from providers.amounts import InvalidAmount
from providers.connectors.kaspi import (
    CLIENT,
    CONNECTOR_TYPE,
    KaspiClient,
    RefundOutcome,
    from_tenge,
    to_tenge,
)
from providers.errors import (
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnreachable,
)
from providers.payments import CallbackNotUnderstood, PaymentOutcome, PaymentStatus
from providers.registry import build_client, connector_types, payment_dialect
from providers.signing import SignatureError

FIXTURES = Path(__file__).parent / "fixtures" / "kaspi"
BIN = "180340021791"
DEVICE = "2be4cc91-5895-48f8-8bc2-86c7bd419b3b"
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    """A hand-written fixture, decimals read exactly."""
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content, parse_float=Decimal)


def plain(data: Any) -> Any:
    """Decimals as JSON numbers again (a float's shortest form is the decimal's digits)."""
    if isinstance(data, Decimal):
        return float(data)
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [plain(value) for value in data]
    return data


def answer(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(plain(data)).encode())


def kaspi(handler: Handler, provider: str = "kaspi_qr") -> KaspiClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = ConnectorConfig(type="kaspi", merchant_id=BIN, api_secret=SecretStr(DEVICE))
    return KaspiClient(
        http=http,
        base_url="http://sim",
        provider=provider,
        secret="kaspi-api-key",
        root_url="https://qrapi-cert-ip.kaspi.kz/r3/v01",
        config=config,
    )


class Recorder:
    """Answers each request with the next canned answer and keeps the requests."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


async def create_qr(client: KaspiClient, **overrides: Any) -> PaymentOutcome:
    arguments: dict[str, Any] = {
        "reference": "dep_01JD4QR",
        "method": "qr",
        "amount": 500010,
        "currency": "KZT",
        "details": {},
        "callback_url": "http://api/v1/webhooks/kaspi_qr",
        "expires_in_seconds": 900,
        **overrides,
    }
    return await client.create_payment(**arguments)


# -- plug-in --------------------------------------------------------------------------------------


def test_the_connector_is_found_for_both_kaspi_providers() -> None:
    assert CONNECTOR_TYPE == "kaspi"
    assert CLIENT is KaspiClient
    assert connector_types()["kaspi"] is KaspiClient
    assert payment_dialect("kaspi_qr") is KaspiClient
    assert payment_dialect("kaspi_pay") is KaspiClient


def test_kaspi_sends_no_callbacks_so_every_one_is_refused() -> None:
    body = json.dumps({"ExternalId": "dep_1", "Status": "Processed"}).encode()
    with pytest.raises(SignatureError) as refused:
        KaspiClient.verify_callback(
            "secret", {"X-Signature": "v1=00"}, body, now=0.0, tolerance_seconds=300
        )
    assert refused.value.code == "callbacks_not_supported"
    with pytest.raises(CallbackNotUnderstood):
        KaspiClient.parse_callback(body)


# -- request shapes -------------------------------------------------------------------------------


async def test_qr_create_sends_the_documented_body_and_shows_the_qr() -> None:
    recorder = Recorder(answer(fixture("qr_create.response.json")))
    outcome = await create_qr(kaspi(recorder))

    (request,) = recorder.requests
    assert (request.method, str(request.url)) == (
        "POST",
        "https://qrapi-cert-ip.kaspi.kz/r3/v01/qr/create",
    )
    assert request.headers["Api-Key"] == "kaspi-api-key"
    assert body_of(request) == fixture("qr_create.request.json")
    assert outcome == PaymentOutcome(
        reference="dep_01JD4QR",
        payment_id="12800944903",
        method="qr",
        status="pending",
        amount=500010,
        currency="KZT",
        action={
            "type": "qr",
            "payload": "https://qr.kaspi.kz/qrpay/51236903777280167836178166503744564400",
            "expires_at": "2025-10-22T17:10:50.717+05:00",
        },
    )


async def test_qr_create_link_when_asked_for_a_link() -> None:
    recorder = Recorder(answer(fixture("qr_create_link.response.json")))
    outcome = await create_qr(
        kaspi(recorder), reference="dep_01JD4LINK", amount=250000, details={"kaspi_flow": "link"}
    )

    (request,) = recorder.requests
    assert request.url.path == "/r3/v01/qr/create-link"
    assert body_of(request) == fixture("qr_create_link.request.json")
    link = "https://pay.kaspi.kz/pay/57320274812835631931198067238079705415594"
    assert outcome.payment_id == "12800944904"
    assert outcome.action == {
        "type": "qr",
        "payload": link,
        "url": link,
        "expires_at": "2025-10-22T17:10:50.717+05:00",
    }


async def test_remote_create_sends_a_payment_request_to_the_phone() -> None:
    recorder = Recorder(answer(fixture("remote_create.response.json")))
    outcome = await kaspi(recorder, "kaspi_pay").create_payment(
        reference="dep_01JD4PHONE",
        method="mobile_banking",
        amount=10000,
        currency="KZT",
        details={"phone": "+77015211545"},
        callback_url="http://api/v1/webhooks/kaspi_pay",
        expires_in_seconds=900,
    )

    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("POST", "/r3/v01/remote/create")
    assert body_of(request) == fixture("remote_create.request.json")
    assert outcome.status == "pending"
    assert outcome.payment_id == "12800627774"
    assert outcome.method == "mobile_banking"
    assert outcome.action == {
        "type": "app_confirm",
        "app": "kaspi_pay",
        "phone": "+7701***1545",
        "expires_at": None,
    }


@pytest.mark.parametrize(
    ("method", "currency", "details", "code"),
    [
        ("mobile_banking", "KZT", {}, "invalid_phone"),
        ("mobile_banking", "KZT", {"phone": "87015211545"}, "invalid_phone"),
        ("mobile_banking", "KZT", {"phone": "+7701521154x"}, "invalid_phone"),
        ("qr", "USD", {}, "unsupported_currency"),
        ("card", "KZT", {}, "unsupported_method"),
    ],
)
async def test_what_kaspi_cannot_take_is_refused_before_sending(
    method: str, currency: str, details: dict[str, str], code: str
) -> None:
    recorder = Recorder()
    with pytest.raises(ProviderRejected) as refused:
        await create_qr(kaspi(recorder), method=method, currency=currency, details=details)
    assert refused.value.code == code
    assert recorder.requests == []


async def test_a_pending_payment_is_looked_up_by_our_reference() -> None:
    recorder = Recorder(answer(fixture("status_pending_qr.response.json")))
    outcome = await kaspi(recorder).get_payment("dep_01JD4QR")

    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("GET", "/r3/v01/payment/status")
    assert dict(request.url.params) == {"ExternalId": "dep_01JD4QR", "DeviceToken": DEVICE}
    assert outcome is not None
    assert (outcome.status, outcome.amount, outcome.amount_received) == ("pending", 500010, None)
    assert outcome.action["payload"] == (
        "https://qr.kaspi.kz/qrpay/51236903777280167836178166503744564400"
    )


async def test_a_processed_payment_keeps_how_it_was_funded() -> None:
    recorder = Recorder(
        answer(fixture("status_processed_remote.response.json")),
        answer(fixture("details_processed_remote.response.json")),
    )
    outcome = await kaspi(recorder, "kaspi_pay").get_payment("dep_01JD4PHONE")

    status, details = recorder.requests
    assert status.url.params["ExternalId"] == "dep_01JD4PHONE"
    assert (details.method, details.url.path) == ("GET", "/r3/v01/payment/details")
    assert dict(details.url.params) == {"QrPaymentId": "12800627774", "DeviceToken": DEVICE}
    assert outcome is not None
    assert (outcome.status, outcome.amount, outcome.amount_received) == ("succeeded", 10000, 10000)
    assert outcome.decline_code is None
    assert outcome.action["type"] == "app_confirm"
    assert outcome.funding == {
        "product_type": "Red",
        "loan_offer_name": "Рассрочка 0-0-12",
        "loan_term_months": 12,
        "financed": True,
        "transaction_date": "2025-10-22T17:08:12.113+05:00",
        "available_return_amount": 5000,
    }


async def test_cancel_looks_up_kaspis_id_then_cancels_the_remote_payment() -> None:
    recorder = Recorder(
        answer(fixture("status_wait_remote.response.json")),
        answer(fixture("remote_cancel.response.json")),
    )
    outcome = await kaspi(recorder, "kaspi_pay").cancel_payment("dep_01JD4PHONE")

    lookup, cancel = recorder.requests
    assert lookup.url.path == "/r3/v01/payment/status"
    assert (cancel.method, cancel.url.path) == ("POST", "/r3/v01/remote/cancel")
    assert body_of(cancel) == fixture("remote_cancel.request.json")
    assert outcome is not None
    assert (outcome.status, outcome.decline_code) == ("cancelled", "cancelled")


async def test_cancel_of_a_paid_payment_answers_it_paid_without_cancelling() -> None:
    recorder = Recorder(
        answer(fixture("status_processed_remote.response.json")),
        answer(fixture("details_processed_remote.response.json")),
    )
    outcome = await kaspi(recorder, "kaspi_pay").cancel_payment("dep_01JD4PHONE")

    assert [r.url.path for r in recorder.requests] == [
        "/r3/v01/payment/status",
        "/r3/v01/payment/details",
    ]
    assert outcome is not None
    assert outcome.status == "succeeded"


async def test_cancel_and_lookup_of_a_payment_kaspi_never_saw_is_none() -> None:
    not_found = fixture("status_codes.json")["-1601"]
    recorder = Recorder(answer(not_found), answer(not_found))
    client = kaspi(recorder)
    assert await client.get_payment("dep_never") is None
    assert await client.cancel_payment("dep_never") is None
    assert [r.url.path for r in recorder.requests] == ["/r3/v01/payment/status"] * 2


async def test_a_return_sends_the_documented_body() -> None:
    recorder = Recorder(
        answer(fixture("status_processed_remote.response.json")),
        answer(fixture("payment_return.response.json")),
    )
    refunded = await kaspi(recorder, "kaspi_pay").refund("dep_01JD4PHONE", 5000, "KZT")

    lookup, returned = recorder.requests
    assert lookup.url.params["ExternalId"] == "dep_01JD4PHONE"
    assert (returned.method, returned.url.path) == ("POST", "/r3/v01/payment/return")
    assert body_of(returned) == fixture("payment_return.request.json")
    assert refunded == RefundOutcome(
        reference="dep_01JD4PHONE",
        payment_id="12800627774",
        refund_id="12800582793",
        amount=5000,
        currency="KZT",
    )


@pytest.mark.parametrize(("amount", "currency"), [(0, "KZT"), (100, "USD")])
async def test_a_return_kaspi_cannot_take_is_refused_before_sending(
    amount: int, currency: str
) -> None:
    recorder = Recorder()
    with pytest.raises(ProviderRejected):
        await kaspi(recorder).refund("dep_01JD4PHONE", amount, currency)
    assert recorder.requests == []


async def test_a_failed_return_leaves_the_outcome_unknown() -> None:
    """No idempotency key on returns: "failed, try again" may still have moved the money."""
    recorder = Recorder(
        answer(fixture("status_processed_remote.response.json")),
        answer(fixture("status_codes.json")["-99000006"]),
    )
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await kaspi(recorder, "kaspi_pay").refund("dep_01JD4PHONE", 5000, "KZT")
    assert unknown.value.code == "return_failed"


async def test_a_cancel_refused_because_the_payment_moved_on_reads_it_again() -> None:
    recorder = Recorder(
        answer(fixture("status_wait_remote.response.json")),
        answer(fixture("status_codes.json")["-99000011"]),
        answer(fixture("status_processed_remote.response.json")),
        answer(fixture("details_processed_remote.response.json")),
    )
    outcome = await kaspi(recorder, "kaspi_pay").cancel_payment("dep_01JD4PHONE")
    assert [r.url.path.rsplit("/", 2)[-2:] for r in recorder.requests] == [
        ["payment", "status"],
        ["remote", "cancel"],
        ["payment", "status"],
        ["payment", "details"],
    ]
    assert outcome is not None
    assert (outcome.status, outcome.amount_received) == ("succeeded", 10000)


async def test_what_is_left_to_return_comes_from_payment_details() -> None:
    recorder = Recorder(
        answer(fixture("status_processed_remote.response.json")),
        answer(fixture("details_processed_remote.response.json")),
    )
    left = await kaspi(recorder, "kaspi_pay").get_refundable("dep_01JD4PHONE")
    assert left is not None
    assert (left.paid, left.available, left.payment_id) == (10000, 5000, "12800627774")


# -- every documented StatusCode and status -------------------------------------------------------

REFUSED = {
    "-10000": "client_certificate_missing",
    "-1501": "device_not_found",
    "-1502": "device_disabled",
    "-1503": "device_in_another_trade_point",
    "-14000002": "no_trade_points",
    "-99000002": "trade_point_not_found",
    "-99000003": "trade_point_mismatch",
    "-99000005": "return_exceeds_purchase",
    "-99000011": "wrong_purchase_status",
    "-99000020": "partial_return_unavailable",
    "990000018": "trade_point_disabled",
    "990000026": "trade_point_refuses_qr",
    "990000028": "invalid_amount",
    "990000033": "no_payment_methods",
    "99000033": "no_payment_methods",
}
NOT_FOUND = ("-1601", "-99000001")


def test_every_documented_code_is_classified_here() -> None:
    documented = set(fixture("status_codes.json"))
    assert documented == {*REFUSED, *NOT_FOUND, "-999", "-99000006"}


@pytest.mark.parametrize(("code", "ours"), sorted(REFUSED.items()))
async def test_documented_refusals_are_refused_before_processing(code: str, ours: str) -> None:
    recorder = Recorder(answer(fixture("status_codes.json")[code]))
    with pytest.raises(ProviderRejected) as refused:
        await create_qr(kaspi(recorder))
    assert refused.value.code == ours


@pytest.mark.parametrize("code", NOT_FOUND)
async def test_purchase_not_found_is_none_for_a_lookup_and_a_refusal_otherwise(code: str) -> None:
    envelope = fixture("status_codes.json")[code]
    assert await kaspi(Recorder(answer(envelope))).get_payment("dep_x") is None
    with pytest.raises(ProviderRejected) as refused:
        await create_qr(kaspi(Recorder(answer(envelope))))
    assert refused.value.code == "not_found"


@pytest.mark.parametrize("status", [200, 503])
async def test_service_unavailable_is_not_processed(status: int) -> None:
    recorder = Recorder(answer(fixture("status_codes.json")["-999"], status))
    with pytest.raises(ProviderUnreachable) as down:
        await create_qr(kaspi(recorder))
    assert down.value.code == "unavailable"


@pytest.mark.parametrize(
    "envelope",
    [
        fixture("status_codes.json")["-99000006"],  # return failed: it may have moved money
        {"StatusCode": -12345, "Message": "undocumented"},
        {"StatusCode": 1, "Message": "undocumented"},
    ],
)
async def test_a_code_not_documented_as_a_refusal_leaves_the_outcome_unknown(
    envelope: dict[str, Any],
) -> None:
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await create_qr(kaspi(Recorder(answer(envelope))))
    assert not isinstance(unknown.value, ProviderUnreachable)


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(429, headers={"Retry-After": "2"}), ProviderThrottled),
        (httpx.Response(401, json={"Message": "bad Api-Key"}), ProviderRejected),
        (httpx.Response(400, json={"Message": "bad request"}), ProviderRejected),
        (httpx.Response(409, json={"Message": "ExternalId reused"}), ProviderOutcomeUnknown),
        (httpx.Response(502, json={"Message": "bad gateway"}), ProviderOutcomeUnknown),
        (httpx.Response(503, json={"Message": "down"}), ProviderOutcomeUnknown),  # bare 503
        (httpx.Response(200, json={"Data": {"QrPaymentId": 1}}), ProviderOutcomeUnknown),
        (httpx.Response(200, json={"StatusCode": "0", "Data": {}}), ProviderOutcomeUnknown),
        (httpx.Response(200, json={"StatusCode": 0, "Data": None}), ProviderOutcomeUnknown),
        (httpx.Response(200, text="<html>gateway</html>"), ProviderOutcomeUnknown),
    ],
)
async def test_http_failures_are_classified(
    response: httpx.Response, kind: type[Exception]
) -> None:
    with pytest.raises(kind):
        await create_qr(kaspi(Recorder(response)))


STATUSES = {
    "QrTokenCreated": ("pending", None),
    "RemotePaymentCreated": ("pending", None),
    "Wait": ("pending", None),
    "Processed": ("succeeded", None),
    "Error": ("declined", "kaspi_error"),
    "Expired": ("expired", "expired"),
    "RemotePaymentCanceled": ("cancelled", "cancelled"),
}


def test_kaspis_statuses_reach_every_status_of_ours() -> None:
    assert {ours for ours, _ in STATUSES.values()} == set(get_args(PaymentStatus))
    vocabulary = KaspiClient.spec.vocabulary
    assert vocabulary is not None
    assert dict(vocabulary.statuses) == {k: ours for k, (ours, _) in STATUSES.items()}


@pytest.mark.parametrize(("kaspi_status", "expected"), sorted(STATUSES.items()))
async def test_every_status_is_read(kaspi_status: str, expected: tuple[str, str | None]) -> None:
    found = fixture("status_pending_qr.response.json")
    found["Data"]["Status"] = kaspi_status
    answers = [answer(found)]
    if kaspi_status == "Processed":
        details = fixture("details_processed_remote.response.json")
        details["Data"].update(QrPaymentId=12800944903, TotalAmount=Decimal("5000.10"))
        answers.append(answer(details))
    outcome = await kaspi(Recorder(*answers)).get_payment("dep_01JD4QR")
    assert outcome is not None
    assert (outcome.status, outcome.decline_code) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"Status": "Refunded"},  # a status we do not know
        {"ExternalId": "dep_other"},  # about another payment
        {"Amount": Decimal("5000.105")},  # more than two decimals
        {"Amount": "5000.10"},  # not a number
        {"QrPaymentId": None},
    ],
)
async def test_lookups_we_cannot_read_leave_the_outcome_unknown(change: dict[str, Any]) -> None:
    found = fixture("status_pending_qr.response.json")
    found["Data"].update(change)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await kaspi(Recorder(answer(found))).get_payment("dep_01JD4QR")
    assert unknown.value.code == "invalid_response"


# -- money ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "wire"),
    [(500000, 5000), (500010, 5000.1), (1, 0.01), (123456789012345, 1234567890123.45)],
)
def test_tiyn_become_exact_decimal_tenge(minor: int, wire: float) -> None:
    assert to_tenge(minor) == wire
    assert from_tenge(Decimal(repr(wire))) == minor
    assert from_tenge(wire) == minor


@pytest.mark.parametrize(
    "value", [Decimal("1.005"), Decimal("-1"), "100", True, None, Decimal("NaN"), float("inf")]
)
def test_amounts_that_are_not_exact_tenge_are_refused(value: object) -> None:
    with pytest.raises(InvalidAmount):
        from_tenge(value)


def test_an_amount_past_exact_json_numbers_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        to_tenge(12345678901234567891)


# -- against the simulator ------------------------------------------------------------------------


@pytest.fixture
async def http(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The platform's side and the simulator's admin and player pages; behaviour reset after."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=5.0) as client:
        yield client
        for name in ("kaspi_qr", "kaspi_pay"):
            await client.put(f"/admin/providers/{name}/behaviour", json={})


def sim(settings: Settings, http: httpx.AsyncClient, provider: str = "kaspi_qr") -> KaspiClient:
    return build_client(settings, http, provider, KaspiClient)


def ref() -> str:
    return f"dep_{uuid.uuid4().hex[:16]}"


async def remote(
    client: KaspiClient, reference: str, phone: str = "+77011234567"
) -> PaymentOutcome:
    return await client.create_payment(
        reference=reference,
        method="mobile_banking",
        amount=250050,
        currency="KZT",
        details={"phone": phone},
        callback_url="http://api/v1/webhooks/kaspi_pay",
        expires_in_seconds=900,
    )


async def no_callbacks(http: httpx.AsyncClient, *references: str) -> None:
    for reference in references:
        sent = await http.get("/admin/callbacks", params={"reference": reference})
        assert sent.status_code == 200
        assert sent.json() == []


async def test_a_qr_paid_on_the_players_page_is_processed(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, reference = sim(settings, http), ref()
    created = await create_qr(client, reference=reference)
    assert (created.status, created.method, created.amount) == ("pending", "qr", 500010)
    assert created.action["type"] == "qr"
    assert created.action["payload"].endswith(f"/pay/kaspi_qr/{reference}")

    pending = await client.get_payment(reference)
    assert pending is not None
    assert (pending.status, pending.payment_id) == ("pending", created.payment_id)
    assert pending.action["payload"] == created.action["payload"]

    paid = await http.post(f"/pay/kaspi_qr/{reference}/confirm")
    assert paid.status_code == 200, paid.text
    outcome = await client.get_payment(reference)
    assert outcome is not None
    assert (outcome.status, outcome.amount_received) == ("succeeded", 500010)
    assert outcome.funding is not None
    assert outcome.funding["product_type"] == "Gold"
    assert outcome.funding["financed"] is False

    by_id = await http.get(
        f"/providers/kaspi_qr/payment/status/{created.payment_id}",
        headers={"Api-Key": settings.provider_secret("kaspi_qr")},
    )
    assert by_id.json()["StatusCode"] == 0
    assert by_id.json()["Data"]["Status"] == "Processed"
    await no_callbacks(http, reference)


async def test_a_qr_scanned_then_paid_on_instalments(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, reference = sim(settings, http), ref()
    created = await create_qr(client, reference=reference, amount=1_000_000)
    key = {"Api-Key": settings.provider_secret("kaspi_qr")}
    qr_id = int(created.payment_id)

    scanned = await http.post(
        "/providers/kaspi_qr/test/payment/scan", json={"QrPaymentId": qr_id}, headers=key
    )
    assert scanned.json()["Data"]["Status"] == "Wait"
    waiting = await client.get_payment(reference)
    assert waiting is not None
    assert waiting.status == "pending"

    confirmed = await http.post(
        "/providers/kaspi_qr/test/payment/confirm",
        json={"QrPaymentId": qr_id, "ProductType": "Red", "LoanOfferName": "0-0-3", "LoanTerm": 3},
        headers=key,
    )
    assert confirmed.json()["Data"]["Status"] == "Processed"
    paid = await client.get_payment(reference)
    assert paid is not None
    assert paid.status == "succeeded"
    funding = paid.funding
    assert funding is not None
    assert (funding["product_type"], funding["loan_term_months"], funding["financed"]) == (
        "Red",
        3,
        True,
    )
    await no_callbacks(http, reference)


async def test_a_payment_link_is_looked_up_with_its_link(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, reference = sim(settings, http), ref()
    created = await create_qr(client, reference=reference, details={"kaspi_flow": "link"})
    assert created.action["url"] == created.action["payload"]
    found = await client.get_payment(reference)
    assert found is not None
    assert found.action["url"] == created.action["url"]


async def test_a_payment_request_to_a_phone_is_confirmed_in_the_app(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, reference = sim(settings, http, "kaspi_pay"), ref()
    created = await remote(client, reference)
    assert (created.status, created.method) == ("pending", "mobile_banking")
    assert created.action["type"] == "app_confirm"
    assert created.action["phone"] == "+7701***4567"

    assert (await http.post(f"/pay/kaspi_pay/{reference}/confirm")).status_code == 200
    paid = await client.get_payment(reference)
    assert paid is not None
    assert (paid.status, paid.amount, paid.amount_received) == ("succeeded", 250050, 250050)
    await no_callbacks(http, reference)


async def test_declines_in_the_app_and_for_a_phone_without_kaspi(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, declined, no_account = sim(settings, http, "kaspi_pay"), ref(), ref()
    await remote(client, declined)
    assert (await http.post(f"/pay/kaspi_pay/{declined}/decline")).status_code == 200
    outcome = await client.get_payment(declined)
    assert outcome is not None
    assert (outcome.status, outcome.decline_code) == ("declined", "kaspi_error")

    at_once = await remote(client, no_account, phone="+77010000000")
    assert (at_once.status, at_once.decline_code) == ("declined", "kaspi_error")
    await no_callbacks(http, declined, no_account)


async def test_cancels_unknown_references_and_expiry(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    pay, qr = sim(settings, http, "kaspi_pay"), sim(settings, http)
    cancelled_remote, cancelled_qr, paid, expired = ref(), ref(), ref(), ref()

    await remote(pay, cancelled_remote)
    outcome = await pay.cancel_payment(cancelled_remote)
    assert outcome is not None
    assert outcome.status == "cancelled"
    again = await pay.get_payment(cancelled_remote)
    assert again is not None
    assert again.status == "cancelled"

    await create_qr(qr, reference=cancelled_qr)
    closed = await qr.cancel_payment(cancelled_qr)
    assert closed is not None
    assert closed.status == "cancelled"

    await create_qr(qr, reference=paid)
    await http.post(f"/pay/kaspi_qr/{paid}/confirm")
    kept = await qr.cancel_payment(paid)
    assert kept is not None
    assert (kept.status, kept.amount_received) == ("succeeded", 500010)

    await create_qr(qr, reference=expired)
    await http.post(f"/admin/providers/kaspi_qr/payments/{expired}/expire")
    timed_out = await qr.get_payment(expired)
    assert timed_out is not None
    assert (timed_out.status, timed_out.decline_code) == ("expired", "expired")

    never = ref()
    assert await qr.get_payment(never) is None
    assert await qr.cancel_payment(never) is None
    held = await http.get("/admin/charges", params={"reference": never})
    assert held.json() == []  # a cancel of what Kaspi never saw records nothing
    await no_callbacks(http, cancelled_remote, cancelled_qr, paid, expired)


async def test_returns_whole_partial_and_refused(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, reference, unpaid = sim(settings, http), ref(), ref()
    await create_qr(client, reference=reference)
    await http.post(f"/pay/kaspi_qr/{reference}/confirm")

    first = await client.refund(reference, 100010, "KZT")
    assert (first.amount, first.status) == (100010, "succeeded")
    left = await client.get_refundable(reference)
    assert left is not None
    assert (left.paid, left.available) == (500010, 400000)

    with pytest.raises(ProviderRejected) as too_much:
        await client.refund(reference, 400001, "KZT")
    assert too_much.value.code == "return_exceeds_purchase"
    rest = await client.refund(reference, 400000, "KZT")
    assert rest.refund_id != first.refund_id
    paid = await client.get_payment(reference)
    assert paid is not None
    assert paid.funding is not None
    assert paid.funding["available_return_amount"] == 0

    await create_qr(client, reference=unpaid)
    with pytest.raises(ProviderRejected) as not_paid:
        await client.refund(unpaid, 100, "KZT")
    assert not_paid.value.code == "wrong_purchase_status"
    with pytest.raises(ProviderRejected) as unknown:
        await client.refund(ref(), 100, "KZT")
    assert unknown.value.code == "not_found"


async def test_creates_are_idempotent_on_external_id(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    client, reference = sim(settings, http), ref()
    first = await create_qr(client, reference=reference)
    second = await create_qr(client, reference=reference)
    assert second.payment_id == first.payment_id
    with pytest.raises(ProviderOutcomeUnknown):  # the same ExternalId for another amount: 409
        await create_qr(client, reference=reference, amount=500020)


async def test_each_provider_takes_only_its_flow(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ProviderRejected) as no_remote:
        await remote(sim(settings, http, "kaspi_qr"), ref())
    assert no_remote.value.code == "no_payment_methods"
    with pytest.raises(ProviderRejected) as no_qr:
        await create_qr(sim(settings, http, "kaspi_pay"), reference=ref())
    assert no_qr.value.code == "trade_point_refuses_qr"


async def test_a_wrong_device_token_is_refused(settings: Settings, http: httpx.AsyncClient) -> None:
    wrong = settings.model_copy(
        update={
            "connectors": {
                "kaspi_qr": ConnectorConfig(type="kaspi", api_secret=SecretStr("not-our-device"))
            }
        }
    )
    with pytest.raises(ProviderRejected) as refused:
        await create_qr(sim(wrong, http), reference=ref())
    assert refused.value.code == "device_not_found"


async def test_throttling_through_kaspis_api(settings: Settings, http: httpx.AsyncClient) -> None:
    client, reference = sim(settings, http), ref()
    knob = {"throttle_next": 1, "throttle_retry_after_seconds": 2}
    assert (await http.put("/admin/providers/kaspi_qr/behaviour", json=knob)).status_code == 200
    with pytest.raises(ProviderThrottled) as throttled:
        await create_qr(client, reference=reference)
    assert throttled.value.retry_after == 2
    assert await client.get_payment(reference) is None  # refused before processing
    assert (await create_qr(client, reference=reference)).status == "pending"


@pytest.mark.parametrize("knob", [{"outage": True}, {"fail_next": 1}])
async def test_kaspi_unavailable_processes_nothing(
    settings: Settings, http: httpx.AsyncClient, knob: dict[str, Any]
) -> None:
    client, reference = sim(settings, http), ref()
    await http.put("/admin/providers/kaspi_qr/behaviour", json=knob)
    with pytest.raises(ProviderUnreachable) as down:
        await create_qr(client, reference=reference)
    assert down.value.code == "unavailable"
    await http.put("/admin/providers/kaspi_qr/behaviour", json={})
    assert await client.get_payment(reference) is None
    assert (await http.get("/admin/charges", params={"reference": reference})).json() == []


@pytest.mark.parametrize(
    ("knob", "code"),
    [({"error_after_processing_next": 1}, "http_502"), ({"reset_after_processing_next": 1}, None)],
)
async def test_processed_then_failed_leaves_the_outcome_unknown_and_the_payment_there(
    settings: Settings, http: httpx.AsyncClient, knob: dict[str, Any], code: str | None
) -> None:
    client, reference = sim(settings, http, "kaspi_pay"), ref()
    await http.put("/admin/providers/kaspi_pay/behaviour", json=knob)
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await remote(client, reference)
    if code is not None:
        assert unknown.value.code == code
    found = await client.get_payment(reference)
    assert found is not None
    assert (found.status, found.amount, found.method) == ("pending", 250050, "mobile_banking")
    await no_callbacks(http, reference)
