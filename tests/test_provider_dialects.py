"""Unit tests of the provider dialects' adapters (httpx.MockTransport: no money moves here):
KazBank's transfer instructions, TengeWallet's form invoices, BankApp's push requests, KZQR's
QR orders, PayHub's checkout sessions and AltynCard's card gateway, their money format (decimal
strings <-> integer minor units, exactly; BankApp's, PayHub's and AltynCard's integers) and their
own callback signatures."""

import json
import time
from collections.abc import Callable
from typing import Any, get_args
from urllib.parse import parse_qs

import httpx
import pytest

from providers.altyncard import AltynCardClient
from providers.amounts import InvalidAmount, from_decimal_string, to_decimal_string
from providers.bankapp import BankAppClient
from providers.card import CardData, CardProviderClient, ChargeOutcome
from providers.errors import (
    CardRejected,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnreachable,
)
from providers.kazbank import KazbankClient
from providers.kzqr import KzqrClient
from providers.payhub import PayHubClient
from providers.payments import CallbackNotUnderstood, PaymentProviderClient, PaymentStatus
from providers.registry import card_dialect, payment_dialect
from providers.signing import SignatureError
from providers.tengewallet import TengeWalletClient
from simulator.dialects import (
    bankapp_callback,
    kazbank_callback,
    kzqr_callback,
    payhub_callback,
    tengewallet_callback,
)

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.mark.parametrize(
    ("text", "minor"),
    [("5000.10", 500010), ("5000.00", 500000), ("5000", 500000), ("0.01", 1), ("1.5", 150)],
)
def test_decimal_strings_become_exact_minor_units(text: str, minor: int) -> None:
    assert from_decimal_string(text) == minor


@pytest.mark.parametrize(
    "text", ["1.005", "1.000", "-1.00", "1e3", " 1.00", "1,00", "", ".5", "01.00", "NaN", 5.1]
)
def test_amounts_with_more_than_two_decimals_or_odd_forms_are_refused(text: object) -> None:
    with pytest.raises(InvalidAmount):
        from_decimal_string(text)


def test_minor_units_become_decimal_strings() -> None:
    assert to_decimal_string(500010) == "5000.10"
    assert to_decimal_string(5) == "0.05"
    assert from_decimal_string(to_decimal_string(123456789012)) == 123456789012
    with pytest.raises(InvalidAmount):
        to_decimal_string(-1)


@pytest.mark.parametrize(
    ("cls", "ours"),
    [
        *[
            (cls, get_args(PaymentStatus))
            for cls in (KazbankClient, TengeWalletClient, BankAppClient, KzqrClient, PayHubClient)
        ],
        (AltynCardClient, get_args(ChargeOutcome.model_fields["status"].annotation)),
    ],
)
def test_dialect_status_maps_reach_every_status_of_ours(
    cls: type[PaymentProviderClient | CardProviderClient], ours: tuple[str, ...]
) -> None:
    """Each dialect names every status we know, and only those (an unknown one of theirs is an
    unreadable answer, so the map is the whole of their vocabulary)."""
    vocabulary = cls.spec.vocabulary
    assert vocabulary is not None
    assert sorted(set(vocabulary.statuses.values())) == sorted(ours)


def test_providers_get_their_dialects() -> None:
    assert payment_dialect("kazbank") is KazbankClient
    assert payment_dialect("tengewallet") is TengeWalletClient
    assert payment_dialect("bankapp") is BankAppClient
    assert payment_dialect("kzqr") is KzqrClient
    assert payment_dialect("payhub") is PayHubClient
    assert payment_dialect("nobank") is PaymentProviderClient
    assert card_dialect("altyncard") is AltynCardClient
    assert card_dialect("kazcard") is CardProviderClient


def _instruction(**changes: Any) -> dict[str, Any]:
    return {
        "instructionId": "ti_1",
        "orderId": "dep_1",
        "state": "NEW",
        "sum": "5000.10",
        "paidSum": None,
        "currency": "KZT",
        "rejectReason": None,
        "beneficiary": {
            "bankName": "KazBank JSC",
            "bic": "KZBKKZKA",
            "iban": "KZ86125KZT5004100100",
            "name": "KZ Gaming Payments LLP",
        },
        "expiresAt": "2026-11-28T00:00:00+00:00",
        "payUrl": "http://sim/pay/kazbank/dep_1",
        **changes,
    }


async def _with(handler: Handler, cls: type[PaymentProviderClient]) -> PaymentProviderClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return cls(http=http, base_url="http://sim", provider=cls.__name__, secret="s3cret")


async def test_kazbank_creates_transfer_instructions_in_its_own_format() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=_instruction())

    client = await _with(answer, KazbankClient)
    outcome = await client.create_payment(
        reference="dep_1",
        method="bank_transfer",
        amount=500010,
        currency="KZT",
        details={},
        callback_url="http://api/v1/webhooks/kazbank",
        expires_in_seconds=3600,
    )

    (request,) = seen
    assert (request.method, request.url.path) == (
        "POST",
        "/providers/KazbankClient/v2/transfer-instructions",
    )
    assert request.headers["x-api-key"] == "s3cret"
    assert json.loads(request.content) == {
        "orderId": "dep_1",
        "sum": "5000.10",
        "currency": "KZT",
        "callbackUrl": "http://api/v1/webhooks/kazbank",
        "ttlSeconds": 3600,
    }
    assert outcome.status == "pending"
    assert outcome.amount == 500010
    assert outcome.payment_id == "ti_1"
    assert outcome.action["type"] == "bank_transfer_instructions"
    assert outcome.action["amount"] == 500010
    assert outcome.action["reference"] == "dep_1"
    assert outcome.action["iban"].startswith("KZ")


async def test_kazbank_status_cancel_and_not_found() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/providers/KazbankClient/v2/transfer-instructions/")
        if request.url.path.endswith("/by-order/dep_missing"):
            return httpx.Response(404, json={"errorCode": "ORDER_NOT_FOUND", "errorMessage": "x"})
        if request.method == "DELETE":
            return httpx.Response(
                200, json=_instruction(state="CANCELLED", rejectReason="MERCHANT_CANCELLED")
            )
        return httpx.Response(200, json=_instruction(state="PAID", paidSum="4999.99"))

    client = await _with(answer, KazbankClient)
    paid = await client.get_payment("dep_1")
    assert paid is not None
    assert (paid.status, paid.amount, paid.amount_received) == ("succeeded", 500010, 499999)
    cancelled = await client.cancel_payment("dep_1")
    assert cancelled is not None
    assert (cancelled.status, cancelled.decline_code) == ("cancelled", "cancelled")
    assert await client.get_payment("dep_missing") is None


async def test_kazbank_refuses_sub_tiyn_amounts_and_maps_errors() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(409, json={"errorCode": "ORDER_CONFLICT", "errorMessage": "x"})
        if request.url.path.endswith("dep_down"):
            return httpx.Response(503, json={"errorCode": "SERVICE_UNAVAILABLE"})
        return httpx.Response(200, json=_instruction(sum="1.005"))

    client = await _with(answer, KazbankClient)
    with pytest.raises(ProviderOutcomeUnknown) as unreadable:
        await client.get_payment("dep_1")
    assert unreadable.value.code == "invalid_response"
    with pytest.raises(ProviderUnreachable) as down:  # a documented "down" 503: not processed
        await client.get_payment("dep_down")
    assert down.value.code == "service_unavailable"
    with pytest.raises(ProviderOutcomeUnknown) as conflict:
        await client.create_payment(
            reference="dep_1",
            method="bank_transfer",
            amount=100,
            currency="KZT",
            details={},
            callback_url="http://api",
            expires_in_seconds=60,
        )
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "reference_reused")


def _invoice(**changes: Any) -> dict[str, Any]:
    return {
        "invoice_id": "inv_1",
        "merchant_order": "dep_2",
        "status": "AWAITING",
        "total": "5000.10",
        "paid_total": None,
        "currency": "KZT",
        "reject_reason": None,
        "confirm_url": "http://sim/pay/tengewallet/dep_2",
        "valid_until": 1_800_000_000,
        **changes,
    }


async def test_tengewallet_creates_invoices_with_forms() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_invoice())

    client = await _with(answer, TengeWalletClient)
    outcome = await client.create_payment(
        reference="dep_2",
        method="ewallet",
        amount=500010,
        currency="KZT",
        details={"account": "tw-7701"},
        callback_url="http://api/v1/webhooks/tengewallet",
        expires_in_seconds=1800,
    )

    (request,) = seen
    assert request.url.path == "/providers/TengeWalletClient/api/invoice/create"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["x-tw-key"] == "s3cret"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "merchant_order": "dep_2",
        "total": "5000.10",
        "currency": "KZT",
        "wallet": "tw-7701",
        "notify_url": "http://api/v1/webhooks/tengewallet",
        "lifetime": "1800",
    }
    assert (outcome.status, outcome.amount, outcome.payment_id) == ("pending", 500010, "inv_1")
    assert outcome.action == {
        "type": "redirect",
        "url": "http://sim/pay/tengewallet/dep_2",
        "expires_at": "2027-01-15T08:00:00+00:00",
    }


async def test_tengewallet_status_revoke_not_found_and_sub_tiyn_refused() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        order = parse_qs(request.content.decode())["merchant_order"][0]
        if order == "dep_missing":
            return httpx.Response(404, json={"error": "invoice_not_found"})
        if order == "dep_odd":
            return httpx.Response(200, json=_invoice(total="1.005"))
        if request.url.path.endswith("/revoke"):
            return httpx.Response(200, json=_invoice(status="REVOKED"))
        return httpx.Response(200, json=_invoice(status="REJECTED", reject_reason="NO_FUNDS"))

    client = await _with(answer, TengeWalletClient)
    declined = await client.get_payment("dep_2")
    assert declined is not None
    assert (declined.status, declined.decline_code) == ("declined", "insufficient_funds")
    revoked = await client.cancel_payment("dep_2")
    assert revoked is not None
    assert revoked.status == "cancelled"
    assert await client.get_payment("dep_missing") is None
    with pytest.raises(ProviderOutcomeUnknown) as unreadable:
        await client.get_payment("dep_odd")
    assert unreadable.value.code == "invalid_response"


def _event(status: str, amount: int = 500010) -> dict[str, Any]:
    return {
        "reference": "dep_3",
        "provider_payment_id": "pay_abc",
        "status": status,
        "amount": amount,
        "ordered_amount": 500010,
        "currency": "KZT",
        "decline_code": "insufficient_funds" if status == "declined" else None,
        "event_id": "evt_1",
        "sent_at": "2026-11-25T00:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("cls", "encode"),
    [
        (KazbankClient, kazbank_callback),
        (TengeWalletClient, tengewallet_callback),
        (BankAppClient, bankapp_callback),
        (KzqrClient, kzqr_callback),
        (PayHubClient, payhub_callback),
    ],
)
def test_dialect_callbacks_verify_and_parse_in_our_terms(
    cls: type[PaymentProviderClient], encode: Callable[..., tuple[bytes, dict[str, str]]]
) -> None:
    body, headers = encode("s3cret", _event("succeeded", 499999))
    now = time.time()
    cls.verify_callback("s3cret", headers, body, now=now, tolerance_seconds=300)
    parsed = cls.parse_callback(body)
    assert (parsed.reference, parsed.status, parsed.amount) == ("dep_3", "succeeded", 499999)
    assert parsed.currency == "KZT"

    declined = cls.parse_callback(encode("s3cret", _event("declined"))[0])
    assert declined.status == "declined"
    stale = cls.parse_callback(encode("s3cret", _event("processing"))[0])
    assert stale.status == "pending"

    for secret, at, content, code in [
        ("not-the-secret", now, body, "invalid_signature"),
        ("s3cret", now, body.replace(b"4999", b"9999"), "invalid_signature"),
        ("s3cret", now + 400, body, "stale_timestamp"),
    ]:
        with pytest.raises(SignatureError) as refused:
            cls.verify_callback(secret, headers, content, now=at, tolerance_seconds=300)
        assert refused.value.code == code
    with pytest.raises(SignatureError) as missing:
        cls.verify_callback("s3cret", {}, body, now=now, tolerance_seconds=300)
    assert missing.value.code == "signature_missing"
    # The common format's headers are not this provider's signature.
    with pytest.raises(SignatureError):
        PaymentProviderClient.verify_callback(
            "s3cret", headers, body, now=now, tolerance_seconds=300
        )


def test_dialect_callbacks_with_sub_tiyn_amounts_are_not_understood() -> None:
    kazbank = json.dumps(
        {"orderId": "dep_3", "state": "PAID", "sum": "1.005", "paidSum": "1.005"}
    ).encode()
    with pytest.raises(CallbackNotUnderstood):
        KazbankClient.parse_callback(kazbank)
    wallet = b"merchant_order=dep_3&status=COMPLETED&total=1.005&paid_total=1.005"
    with pytest.raises(CallbackNotUnderstood):
        TengeWalletClient.parse_callback(wallet)


def _push(**changes: Any) -> dict[str, Any]:
    return {
        "pushId": "push_1",
        "requestId": "dep_4",
        "status": "SENT",
        "amountTiyn": 500010,
        "paidTiyn": None,
        "currency": "KZT",
        "declineReason": None,
        "phoneMasked": "+7701***4567",
        "confirmUrl": "http://sim/pay/bankapp/dep_4",
        "expiresAt": "2026-11-25T15:00:00+00:00",
        **changes,
    }


async def test_bankapp_sends_push_requests_in_its_own_format() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=_push())

    client = await _with(answer, BankAppClient)
    outcome = await client.create_payment(
        reference="dep_4",
        method="mobile_banking",
        amount=500010,
        currency="KZT",
        details={"phone": "+77011234567"},
        callback_url="http://api/v1/webhooks/bankapp",
        expires_in_seconds=900,
    )

    (request,) = seen
    assert (request.method, request.url.path) == (
        "POST",
        "/providers/BankAppClient/api/v1/push-requests",
    )
    assert request.headers["x-bankapp-key"] == "s3cret"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "requestId": "dep_4",
        "phone": "+77011234567",
        "amountTiyn": 500010,
        "currency": "KZT",
        "description": "Deposit dep_4",
        "hookUrl": "http://api/v1/webhooks/bankapp",
        "expiresInSec": 900,
    }
    assert (outcome.status, outcome.amount, outcome.payment_id) == ("pending", 500010, "push_1")
    assert outcome.action == {
        "type": "app_confirm",
        "app": "BankAppClient",
        "phone": "+7701***4567",
        "expires_at": "2026-11-25T15:00:00+00:00",
        "confirm_url": "http://sim/pay/bankapp/dep_4",
    }
    with pytest.raises(ProviderRejected) as other_method:
        await client.create_payment(
            reference="dep_4",
            method="qr",
            amount=100,
            currency="KZT",
            details={},
            callback_url="http://api",
            expires_in_seconds=60,
        )
    assert other_method.value.code == "unsupported_method"


async def test_bankapp_status_withdraw_errors_and_non_integer_amounts() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        assert path.startswith("/providers/BankAppClient/api/v1/push-requests")
        if request.method == "POST" and path.endswith("/push-requests"):
            return httpx.Response(
                409, json={"error": {"code": "DUPLICATE_REQUEST", "message": "x"}}
            )
        if path.endswith("/dep_missing"):
            return httpx.Response(404, json={"error": {"code": "PUSH_NOT_FOUND", "message": "x"}})
        if path.endswith("/dep_down"):
            return httpx.Response(503, json={"error": {"code": "SERVICE_UNAVAILABLE"}})
        if path.endswith("/dep_odd"):
            return httpx.Response(200, json=_push(amountTiyn=5000.1))
        if path.endswith("/withdraw"):
            assert request.method == "POST"
            return httpx.Response(
                200, json=_push(status="WITHDRAWN", declineReason="MERCHANT_WITHDREW")
            )
        return httpx.Response(200, json=_push(status="ACCEPTED", paidTiyn=500010))

    client = await _with(answer, BankAppClient)
    accepted = await client.get_payment("dep_4")
    assert accepted is not None
    assert (accepted.status, accepted.amount_received) == ("succeeded", 500010)
    withdrawn = await client.cancel_payment("dep_4")
    assert withdrawn is not None
    assert (withdrawn.status, withdrawn.decline_code) == ("cancelled", "cancelled")
    assert await client.get_payment("dep_missing") is None
    with pytest.raises(ProviderUnreachable):  # its documented "down" 503
        await client.get_payment("dep_down")
    with pytest.raises(ProviderOutcomeUnknown) as odd:
        await client.get_payment("dep_odd")
    assert odd.value.code == "invalid_response"
    with pytest.raises(ProviderOutcomeUnknown) as conflict:
        await client.create_payment(
            reference="dep_4",
            method="mobile_banking",
            amount=100,
            currency="KZT",
            details={"phone": "+77011234567"},
            callback_url="http://api",
            expires_in_seconds=60,
        )
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "reference_reused")


def test_bankapp_signature_is_one_header_and_declines_map_to_our_codes() -> None:
    body, headers = bankapp_callback(
        "s3cret", {**_event("declined"), "decline_code": "not_a_customer"}
    )
    (name,) = [k for k in headers if k != "content-type"]
    assert name == "X-BankApp-Signature"
    stamp, digest = headers[name].split(",")
    assert stamp.startswith("t=")
    assert digest.startswith("v1=")
    BankAppClient.verify_callback("s3cret", headers, body, now=time.time(), tolerance_seconds=300)
    parsed = BankAppClient.parse_callback(body)
    assert (parsed.status, parsed.decline_code) == ("declined", "not_a_customer")
    assert parsed.provider_payment_id == "push_abc"
    # The timestamp is signed: moving it makes the signature invalid.
    moved = {name: f"t={int(stamp[2:]) + 1},{digest}"}
    with pytest.raises(SignatureError) as refused:
        BankAppClient.verify_callback("s3cret", moved, body, now=time.time(), tolerance_seconds=300)
    assert refused.value.code == "invalid_signature"
    with pytest.raises(SignatureError) as garbled:
        BankAppClient.verify_callback(
            "s3cret", {name: "sha256=abc"}, body, now=time.time(), tolerance_seconds=300
        )
    assert garbled.value.code == "signature_missing"


def test_bankapp_callbacks_with_non_integer_tiyn_are_not_understood() -> None:
    for amount in ("500010", 5000.1, True, -1):
        body = json.dumps({"requestId": "dep_4", "status": "ACCEPTED", "amountTiyn": amount})
        with pytest.raises(CallbackNotUnderstood):
            BankAppClient.parse_callback(body.encode())


def _qr(**changes: Any) -> dict[str, Any]:
    return {
        "qr_id": "qr_1",
        "merchant_ref": "dep_5",
        "state": "ACTIVE",
        "amount": {"value": "2500.50", "currency": "KZT"},
        "paid": None,
        "fail_code": None,
        "qr_string": "http://sim/pay/kzqr/dep_5",
        "expire_at": "2026-11-25T15:00:00+00:00",
        **changes,
    }


async def test_kzqr_creates_qr_orders_in_envelopes() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": "OK", "data": _qr()})

    client = await _with(answer, KzqrClient)
    outcome = await client.create_payment(
        reference="dep_5",
        method="qr",
        amount=250050,
        currency="KZT",
        details={},
        callback_url="http://api/v1/webhooks/kzqr",
        expires_in_seconds=900,
    )

    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/providers/KzqrClient/merchant/v3/qr")
    assert request.headers["x-kzqr-token"] == "s3cret"
    assert json.loads(request.content) == {
        "merchant_ref": "dep_5",
        "amount": {"value": "2500.50", "currency": "KZT"},
        "notify_url": "http://api/v1/webhooks/kzqr",
        "ttl_sec": 900,
    }
    assert (outcome.status, outcome.amount, outcome.payment_id) == ("pending", 250050, "qr_1")
    assert outcome.action == {
        "type": "qr",
        "payload": "http://sim/pay/kzqr/dep_5",
        "expires_at": "2026-11-25T15:00:00+00:00",
    }


async def test_kzqr_status_by_query_close_errors_and_sub_tiyn_refused() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/close"):
            assert json.loads(request.content) == {"merchant_ref": "dep_5"}
            data = _qr(state="CLOSED", fail_code="MERCHANT_CLOSED")
            return httpx.Response(200, json={"result": "OK", "data": data})
        if request.method == "POST":
            return httpx.Response(409, json={"result": "ERROR", "error": {"code": 1409}})
        assert path == "/providers/KzqrClient/merchant/v3/qr"
        ref = request.url.params["merchant_ref"]
        if ref == "dep_missing":
            return httpx.Response(404, json={"result": "ERROR", "error": {"code": 1404}})
        if ref == "dep_odd":
            odd = _qr(amount={"value": "1.005", "currency": "KZT"})
            return httpx.Response(200, json={"result": "OK", "data": odd})
        if ref == "dep_envelope":
            return httpx.Response(200, json={"result": "ERROR", "data": _qr()})
        paid = {"value": "2500.50", "currency": "KZT"}
        return httpx.Response(200, json={"result": "OK", "data": _qr(state="PAID", paid=paid)})

    client = await _with(answer, KzqrClient)
    paid = await client.get_payment("dep_5")
    assert paid is not None
    assert (paid.status, paid.amount_received) == ("succeeded", 250050)
    closed = await client.cancel_payment("dep_5")
    assert closed is not None
    assert (closed.status, closed.decline_code) == ("cancelled", "cancelled")
    assert await client.get_payment("dep_missing") is None
    for reference in ("dep_odd", "dep_envelope"):
        with pytest.raises(ProviderOutcomeUnknown) as unreadable:
            await client.get_payment(reference)
        assert unreadable.value.code == "invalid_response"
    with pytest.raises(ProviderOutcomeUnknown) as conflict:
        await client.create_payment(
            reference="dep_5",
            method="qr",
            amount=100,
            currency="KZT",
            details={},
            callback_url="http://api",
            expires_in_seconds=60,
        )
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "reference_reused")


def test_kzqr_signature_covers_the_nonce() -> None:
    body, headers = kzqr_callback("s3cret", _event("succeeded"))
    KzqrClient.verify_callback("s3cret", headers, body, now=time.time(), tolerance_seconds=300)
    other_nonce = {**headers, "X-KZQR-Nonce": "0000000000000000"}
    with pytest.raises(SignatureError) as refused:
        KzqrClient.verify_callback(
            "s3cret", other_nonce, body, now=time.time(), tolerance_seconds=300
        )
    assert refused.value.code == "invalid_signature"
    sub_tiyn = json.dumps(
        {"data": {"merchant_ref": "d", "state": "PAID", "amount": {"value": "1.005"}}}
    ).encode()
    with pytest.raises(CallbackNotUnderstood):
        KzqrClient.parse_callback(sub_tiyn)


def _session(**changes: Any) -> dict[str, Any]:
    return {
        "session_id": "cs_1",
        "order_id": "dep_6",
        "status": "OPEN",
        "amount_minor": 250050,
        "captured_minor": None,
        "currency": "KZT",
        "failure_reason": None,
        "paid_with": None,
        "checkout_url": "http://sim/pay/payhub/dep_6",
        "expires_at": "2026-11-25T15:30:00+00:00",
        **changes,
    }


async def test_payhub_opens_checkout_sessions_in_its_own_format() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=_session())

    client = await _with(answer, PayHubClient)
    outcome = await client.create_payment(
        reference="dep_6",
        method="aggregator",
        amount=250050,
        currency="KZT",
        details={"return_url": "https://casino.example/back"},
        callback_url="http://api/v1/webhooks/payhub",
        expires_in_seconds=1800,
    )

    (request,) = seen
    assert (request.method, request.url.path) == (
        "POST",
        "/providers/PayHubClient/checkout/sessions",
    )
    assert request.headers["x-payhub-key"] == "s3cret"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "order_id": "dep_6",
        "amount_minor": 250050,
        "currency": "KZT",
        "success_url": "https://casino.example/back",
        "webhook_url": "http://api/v1/webhooks/payhub",
        "ttl_seconds": 1800,
    }
    assert (outcome.status, outcome.amount, outcome.payment_id) == ("pending", 250050, "cs_1")
    assert outcome.action == {
        "type": "redirect",
        "url": "http://sim/pay/payhub/dep_6",
        "expires_at": "2026-11-25T15:30:00+00:00",
    }
    with pytest.raises(ProviderRejected) as wrong:
        await client.create_payment(
            reference="dep_6",
            method="qr",
            amount=1,
            currency="KZT",
            details={},
            callback_url="http://api",
            expires_in_seconds=60,
        )
    assert wrong.value.code == "unsupported_method"


async def test_payhub_status_cancel_errors_and_non_integer_amounts() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        prefix = "/providers/PayHubClient/checkout/sessions"
        if request.method == "POST" and path.endswith("/cancel"):
            assert path == f"{prefix}/by-order/dep_6/cancel"
            data = _session(status="CANCELED", failure_reason="MERCHANT_CANCELED")
            return httpx.Response(200, json=data)
        if request.method == "POST":
            return httpx.Response(409, json={"errors": [{"code": "ORDER_ID_REUSED"}]})
        reference = path.rsplit("/", 1)[1]
        assert path == f"{prefix}/by-order/{reference}"
        if reference == "dep_missing":
            return httpx.Response(404, json={"errors": [{"code": "SESSION_NOT_FOUND"}]})
        if reference == "dep_odd":
            return httpx.Response(200, json=_session(amount_minor="250050"))
        if reference == "dep_down":
            return httpx.Response(503, json={"errors": [{"code": "SERVICE_UNAVAILABLE"}]})
        if reference == "dep_failed":
            return httpx.Response(
                200, json=_session(status="FAILED", failure_reason="CUSTOMER_ABANDONED")
            )
        paid = _session(status="COMPLETED", captured_minor=250050, paid_with="qr")
        return httpx.Response(200, json=paid)

    client = await _with(answer, PayHubClient)
    paid = await client.get_payment("dep_6")
    assert paid is not None
    assert (paid.status, paid.amount_received) == ("succeeded", 250050)
    failed = await client.get_payment("dep_failed")
    assert failed is not None
    assert (failed.status, failed.decline_code) == ("declined", "declined_by_payer")
    cancelled = await client.cancel_payment("dep_6")
    assert cancelled is not None
    assert (cancelled.status, cancelled.decline_code) == ("cancelled", "cancelled")
    assert await client.get_payment("dep_missing") is None
    with pytest.raises(ProviderOutcomeUnknown) as unreadable:
        await client.get_payment("dep_odd")
    assert unreadable.value.code == "invalid_response"
    with pytest.raises(ProviderUnreachable):  # its documented "down" 503
        await client.get_payment("dep_down")
    with pytest.raises(ProviderOutcomeUnknown) as conflict:
        await client.create_payment(
            reference="dep_6",
            method="aggregator",
            amount=100,
            currency="KZT",
            details={},
            callback_url="http://api",
            expires_in_seconds=60,
        )
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "reference_reused")


def test_payhub_signature_covers_a_digest_of_the_body_and_amounts_must_be_integers() -> None:
    body, headers = payhub_callback("s3cret", _event("declined"))
    assert headers["X-PayHub-Signature"].startswith("ts=")
    PayHubClient.verify_callback("s3cret", headers, body, now=time.time(), tolerance_seconds=300)
    parsed = PayHubClient.parse_callback(body)
    assert (parsed.status, parsed.decline_code) == ("declined", "insufficient_funds")
    assert parsed.provider_payment_id == "cs_abc"
    no_sig = {"X-PayHub-Signature": headers["X-PayHub-Signature"].split(";")[0]}
    with pytest.raises(SignatureError) as missing:
        PayHubClient.verify_callback("s3cret", no_sig, body, now=time.time(), tolerance_seconds=300)
    assert missing.value.code == "signature_missing"
    for amount in ("500010", 5000.1, True, -1):
        session = {"order_id": "dep_6", "status": "COMPLETED", "amount_minor": amount}
        with pytest.raises(CallbackNotUnderstood):
            PayHubClient.parse_callback(json.dumps({"session": session}).encode())


def _altyn_payment(**changes: Any) -> dict[str, Any]:
    return {
        "paymentId": "ap_1",
        "merchantReference": "dep_7",
        "state": "APPROVED",
        "amount": {"minor": 500010, "currency": "KZT"},
        "refusalReason": None,
        "challengeUrl": None,
        **changes,
    }


async def _altyn(handler: Handler) -> AltynCardClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AltynCardClient(http=http, base_url="http://sim", provider="altyncard", secret="s3cret")


async def test_altyncard_tokenizes_and_charges_in_its_own_format() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/tokens"):
            token = {
                "cardToken": "atk_1",
                "bin": "400000",
                "lastFour": "3220",
                "brand": "VISA",
                "issuerCountry": "KZ",
            }
            return httpx.Response(201, json=token)
        challenge = "http://sim/pay/altyncard/dep_7"
        return httpx.Response(
            200, json=_altyn_payment(state="CHALLENGE_REQUIRED", challengeUrl=challenge)
        )

    client = await _altyn(answer)
    card = CardData(number="4000000000003220", exp_month=3, exp_year=2030, cvc="123", holder="A B")
    token = await client.tokenize(card)
    assert (token.token, token.last4, token.scheme) == ("atk_1", "3220", "visa")
    outcome = await client.charge(
        reference="dep_7",
        token="atk_1",
        amount=500010,
        currency="KZT",
        callback_url="http://api/v1/webhooks/altyncard",
    )
    assert (outcome.status, outcome.charge_id, outcome.amount) == (
        "requires_action",
        "ap_1",
        500010,
    )
    assert outcome.action_url == "http://sim/pay/altyncard/dep_7"

    tokens, pay = seen
    assert (tokens.method, tokens.url.path) == ("POST", "/providers/altyncard/gateway/tokens")
    assert tokens.headers["x-altyn-key"] == "s3cret"
    assert "authorization" not in tokens.headers
    assert json.loads(tokens.content) == {
        "pan": "4000000000003220",
        "expiry": "03/2030",
        "securityCode": "123",
        "cardholder": "A B",
    }
    assert (pay.method, pay.url.path) == ("POST", "/providers/altyncard/gateway/payments")
    assert json.loads(pay.content) == {
        "merchantReference": "dep_7",
        "cardToken": "atk_1",
        "amount": {"minor": 500010, "currency": "KZT"},
        "notificationUrl": "http://api/v1/webhooks/altyncard",
    }


async def test_altyncard_status_void_faults_and_non_integer_amounts() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        prefix = "/providers/altyncard/gateway"
        if path == f"{prefix}/tokens":
            return httpx.Response(422, json={"fault": {"code": "INVALID_PAN", "text": "Luhn"}})
        if request.method == "POST" and path.endswith("/void"):
            assert path == f"{prefix}/payments/dep_7/void"
            voided = _altyn_payment(state="VOIDED", refusalReason="CHALLENGE_TIMEOUT")
            return httpx.Response(200, json=voided)
        if request.method == "POST":
            return httpx.Response(409, json={"fault": {"code": "DUPLICATE_REFERENCE"}})
        reference = path.rsplit("/", 1)[1]
        assert path == f"{prefix}/payments/{reference}"
        if reference == "dep_missing":
            return httpx.Response(404, json={"fault": {"code": "PAYMENT_NOT_FOUND", "text": "-"}})
        if reference == "dep_odd":
            return httpx.Response(200, json=_altyn_payment(amount={"minor": 5000.1}))
        if reference == "dep_down":
            return httpx.Response(503, json={"fault": {"code": "SERVICE_UNAVAILABLE"}})
        if reference == "dep_refused":
            refused = _altyn_payment(state="REFUSED", refusalReason="INSUFFICIENT_FUNDS")
            return httpx.Response(200, json=refused)
        return httpx.Response(200, json=_altyn_payment())

    client = await _altyn(answer)
    approved = await client.get_charge("dep_7")
    assert approved is not None
    assert (approved.status, approved.amount, approved.currency) == ("succeeded", 500010, "KZT")
    refused = await client.get_charge("dep_refused")
    assert refused is not None
    assert (refused.status, refused.decline_code) == ("declined", "insufficient_funds")
    voided = await client.cancel_charge("dep_7")
    assert voided is not None
    assert (voided.status, voided.decline_code) == ("cancelled", "expired")
    assert await client.get_charge("dep_missing") is None
    with pytest.raises(ProviderOutcomeUnknown) as odd:
        await client.get_charge("dep_odd")
    assert odd.value.code == "invalid_response"
    with pytest.raises(ProviderUnreachable):  # its documented "down" 503
        await client.get_charge("dep_down")
    with pytest.raises(ProviderOutcomeUnknown) as conflict:
        await client.charge(reference="dep_7", token="atk_1", amount=1, currency="KZT")
    assert (conflict.value.code, conflict.value.detail) == ("http_409", "reference_reused")
    bad_card = CardData(number="4000000000000001", exp_month=1, exp_year=2030, cvc="123")
    with pytest.raises(CardRejected) as rejected:
        await client.tokenize(bad_card)
    assert rejected.value.code == "invalid_card_number"


@pytest.mark.parametrize("paid", [{}, "2500.50", {"currency": "KZT"}, [], 250050])
async def test_a_paid_amount_that_is_there_but_unreadable_is_not_taken_for_absent(
    paid: object,
) -> None:
    """`paid: null` is nothing paid yet; a `paid` we cannot read is an unreadable answer, never
    a success for the ordered amount (the activities read a missing amount paid as all of it)."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"result": "OK", "data": _qr(state="PAID", paid=paid)})

    client = await _with(answer, KzqrClient)
    with pytest.raises(ProviderOutcomeUnknown) as unreadable:
        await client.get_payment("dep_5")
    assert unreadable.value.code == "invalid_response"
    body = json.dumps({"data": {**_qr(state="PAID"), "paid": paid}}).encode()
    with pytest.raises(CallbackNotUnderstood):
        KzqrClient.parse_callback(body)


def test_a_blank_form_field_is_absent() -> None:
    wallet = b"merchant_order=dep_3&status=COMPLETED&total=5000.10&paid_total=&currency="
    parsed = TengeWalletClient.parse_callback(wallet)
    assert (parsed.amount, parsed.currency) == (500010, None)
