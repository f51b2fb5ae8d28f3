"""Every way a provider call can fail, classified the same for every connector (providers.errors,
providers.http): did the provider process the request (outcome unknown: settle by inquiry at the
same provider) or certainly not (another provider may be tried)? Checked across the connectors of
the real providers (Halyk ePay, Freedom Pay cards, e-wallet and payouts, CloudPayments cards and
payouts, Kaspi QR and Kaspi Pay, ioka), KazBank and the common APIs. httpx.MockTransport raises
the transport errors or answers; no money moves here.

Each connector is driven through its whole flow: Halyk's OAuth token is served (its own failures
are classified apart, below), so that the failure hits the operation itself."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from providers.card import CardData, CardProviderClient
from providers.connectors.cloudpayments import CloudPaymentsClient, CloudPaymentsPayoutClient
from providers.connectors.freedom_pay import (
    FreedomPayClient,
    FreedomPayPayoutClient,
    new_salt,
    script_name,
    signed_xml,
)
from providers.connectors.freedom_pay_wallet import FreedomPayWalletClient
from providers.connectors.halyk_epay import HalykEpayClient, invoice_id
from providers.connectors.ioka import IokaClient
from providers.connectors.kaspi import KaspiClient
from providers.errors import (
    CardRejected,
    ProviderError,
    ProviderNotProcessed,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnreachable,
    outcome_known,
)
from providers.http import ProviderHttp
from providers.kazbank import KazbankClient
from providers.payments import PaymentProviderClient
from providers.payout import PayoutProviderClient

Handler = Callable[[httpx.Request], httpx.Response]
CARD = CardData(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123")
SECRET = "s"
TOKEN_PATH = "/oauth2/token"


@dataclass(frozen=True)
class Operation:
    """One connector method; `lookup` ones are about a reference the provider may never have seen
    (None on not_found), the others refuse with `rejected`."""

    adapter: type[ProviderHttp]
    name: str
    call: Callable[[Any], Awaitable[object]]
    lookup: bool = False
    rejected: type[ProviderRejected] = ProviderRejected
    variant: str = ""

    @property
    def id(self) -> str:
        variant = f"[{self.variant}]" if self.variant else ""
        return f"{self.adapter.__name__}{variant}.{self.name}"


def _card_operations(adapter: type[CardProviderClient]) -> list[Operation]:
    return [
        Operation(adapter, "tokenize", lambda c: c.tokenize(CARD), rejected=CardRejected),
        Operation(
            adapter,
            "charge",
            lambda c: c.charge(reference="dep_1", token="tok", amount=100, currency="KZT"),
        ),
        Operation(adapter, "get_charge", lambda c: c.get_charge("dep_1"), lookup=True),
        Operation(adapter, "cancel_charge", lambda c: c.cancel_charge("dep_1"), lookup=True),
    ]


def _payment_operations(adapter: type[PaymentProviderClient], method: str) -> list[Operation]:
    async def create(client: PaymentProviderClient) -> object:
        return await client.create_payment(
            reference="dep_1",
            method=method,
            amount=500010,
            currency="KZT",
            details={"phone": "+77011234567", "account": "+77011234567"},
            callback_url="http://api/v1/webhooks/x",
            expires_in_seconds=600,
        )

    variant = method if adapter is KaspiClient else ""
    return [
        Operation(adapter, "create_payment", create, variant=variant),
        Operation(
            adapter, "get_payment", lambda c: c.get_payment("dep_1"), lookup=True, variant=variant
        ),
        Operation(
            adapter,
            "cancel_payment",
            lambda c: c.cancel_payment("dep_1"),
            lookup=True,
            variant=variant,
        ),
    ]


def _payout_operations(adapter: type[PayoutProviderClient]) -> list[Operation]:
    """Bank payouts to an IBAN (the common API: KazBank's), the acquirers' to a saved card."""
    to_card = adapter is not PayoutProviderClient
    method = "card" if to_card else "bank_transfer"
    destination = {"card": {"token": "tok"}} if to_card else {"iban": "KZ86125KZT5004100100"}
    return [
        Operation(
            adapter,
            "pay",
            lambda c: c.pay(
                reference="wd_1",
                amount=100,
                currency="KZT",
                method=method,
                destination=destination,
            ),
        ),
        Operation(adapter, "get_payout", lambda c: c.get_payout("wd_1"), lookup=True),
        Operation(
            adapter,
            "cancel_payout",
            lambda c: c.cancel_payout(reference="wd_1", amount=100, currency="KZT"),
        ),
    ]


OPERATIONS = [
    *[
        operation
        for adapter in (CardProviderClient, HalykEpayClient, FreedomPayClient, CloudPaymentsClient)
        for operation in _card_operations(adapter)
    ],
    *[
        operation
        for adapter, method in (
            (PaymentProviderClient, "bank_transfer"),
            (KazbankClient, "bank_transfer"),
            (KaspiClient, "qr"),
            (KaspiClient, "mobile_banking"),
            (IokaClient, "aggregator"),
            (FreedomPayWalletClient, "ewallet"),
        )
        for operation in _payment_operations(adapter, method)
    ],
    *[
        operation
        for adapter in (PayoutProviderClient, FreedomPayPayoutClient, CloudPaymentsPayoutClient)
        for operation in _payout_operations(adapter)
    ],
]
every_operation = pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.id)


def _operation(op_id: str) -> Operation:
    return next(o for o in OPERATIONS if o.id == op_id)


def _halyk_tokens(handler: Handler) -> Handler:
    """Halyk's OAuth token endpoint answers; every other request goes to `handler`."""

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(TOKEN_PATH):
            return httpx.Response(200, json={"access_token": "at", "expires_in": 7200})
        return handler(request)

    return serve


async def _fail(operation: Operation, handler: Handler, *, tokens: bool = True) -> ProviderError:
    """The error the operation raises against `handler` (it must raise one); Halyk's tokens are
    served unless `tokens` is false."""
    served = _halyk_tokens(handler) if tokens else handler
    async with httpx.AsyncClient(transport=httpx.MockTransport(served)) as http:
        client = operation.adapter(http=http, base_url="http://sim", provider="p", secret=SECRET)
        with pytest.raises(ProviderError) as caught:
            await operation.call(client)
    assert caught.value.provider == "p"
    return caught.value


async def _answer(operation: Operation, handler: Handler) -> object:
    """What the operation returns against `handler` (it must not raise)."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(_halyk_tokens(handler))) as http:
        client = operation.adapter(http=http, base_url="http://sim", provider="p", secret=SECRET)
        return await operation.call(client)


def _raising(error: type[httpx.TransportError], message: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(message, request=request)

    return handler


def _answering(status: int, **kwargs: Any) -> Handler:
    return lambda request: httpx.Response(status, **kwargs)


# -- transport failures: only one before the request left is "not processed" --------------------


@every_operation
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ConnectError, "[Errno 111] Connection refused"),
        (httpx.ConnectError, "[Errno -2] Name or service not known"),  # DNS
        (httpx.ConnectTimeout, "connect timed out"),
        (httpx.PoolTimeout, "no connection from the pool in time"),
    ],
)
async def test_a_request_that_never_left_is_unreachable(
    operation: Operation, error: type[httpx.TransportError], message: str
) -> None:
    failure = await _fail(operation, _raising(error, message))
    assert type(failure) is ProviderUnreachable
    assert (failure.code, failure.detail) == ("unreachable", error.__name__)
    assert outcome_known(failure)


@every_operation
@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.WriteTimeout])
async def test_no_answer_in_time_is_a_timeout_with_the_outcome_unknown(
    operation: Operation, error: type[httpx.TransportError]
) -> None:
    failure = await _fail(operation, _raising(error, "timed out"))
    assert type(failure) is ProviderTimeout
    assert isinstance(failure, ProviderOutcomeUnknown)
    assert failure.code == "timeout"
    assert not outcome_known(failure)


@every_operation
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ReadError, "read failed"),
        (httpx.ReadError, "[Errno 104] Connection reset by peer"),
        (httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        (httpx.WriteError, "[Errno 32] Broken pipe"),
    ],
)
async def test_an_answer_lost_after_sending_leaves_the_outcome_unknown(
    operation: Operation, error: type[httpx.TransportError], message: str
) -> None:
    failure = await _fail(operation, _raising(error, message))
    assert type(failure) is ProviderOutcomeUnknown
    assert (failure.code, failure.detail) == ("connection_lost", error.__name__)
    assert not outcome_known(failure)


# -- HTTP statuses ------------------------------------------------------------------------------


@every_operation
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_leaves_the_outcome_unknown(operation: Operation, status: int) -> None:
    """Processed then failed is as likely as not (here with a code that says nothing more)."""
    failure = await _fail(operation, _answering(status, json={"code": "internal_error"}))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == f"http_{status}"
    assert not outcome_known(failure)


# Each provider's own "down, nothing processed" answer (a 503 with its documented code); the
# connectors of providers that document none leave every 5xx unknown.
UNAVAILABLE: dict[type[ProviderHttp], dict[str, Any] | None] = {
    CardProviderClient: {"json": {"code": "outage"}},
    PaymentProviderClient: {"json": {"code": "temporarily_unavailable"}},
    PayoutProviderClient: {"json": {"code": "unavailable"}},
    HalykEpayClient: {"json": {"code": 1011, "message": "temporarily unavailable"}},
    KazbankClient: {"json": {"errorCode": "SERVICE_UNAVAILABLE"}},
    IokaClient: {"json": {"code": "ServiceUnavailable", "message": "down"}},
    KaspiClient: {"json": {"StatusCode": -999, "Message": "Service unavailable"}},
    CloudPaymentsClient: None,  # a Message is free text: no documented "down" answer
    CloudPaymentsPayoutClient: None,
    FreedomPayClient: None,  # error 1000 is "internal error": processed or not, unknown
    FreedomPayPayoutClient: None,
    FreedomPayWalletClient: None,
}


@every_operation
async def test_a_documented_unavailable_503_is_not_processed(operation: Operation) -> None:
    answer = UNAVAILABLE[operation.adapter]
    if answer is None:
        failure = await _fail(operation, _answering(503, json={"Message": "Service unavailable"}))
        assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "http_503")
        return
    failure = await _fail(operation, _answering(503, **answer))
    assert type(failure) is ProviderUnreachable
    assert outcome_known(failure)


@every_operation
@pytest.mark.parametrize("status", [400, 401, 403, 422])
async def test_a_documented_4xx_is_a_refusal_before_processing(
    operation: Operation, status: int
) -> None:
    failure = await _fail(operation, _answering(status, json={"code": "refused"}))
    assert type(failure) is operation.rejected
    assert outcome_known(failure)


@every_operation
async def test_a_conflict_on_our_reference_leaves_the_outcome_unknown(
    operation: Operation,
) -> None:
    """409: something already exists under our reference; only an inquiry says what."""
    failure = await _fail(operation, _answering(409, json={"code": "reference_reused"}))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == "http_409"
    assert not outcome_known(failure)


def _freedom_error(code: str) -> dict[str, Any]:
    """Freedom Pay's XML error answer (unsigned: as it is read off a non-2xx answer)."""
    xml = f"<response><pg_status>error</pg_status><pg_error_code>{code}</pg_error_code></response>"
    return {"content": xml.encode(), "headers": {"content-type": "application/xml"}}


# Each provider's "no such order / payment" error answer.
NOT_FOUND: dict[type[ProviderHttp], dict[str, Any]] = {
    HalykEpayClient: {"json": {"code": 102, "message": "Invoice not found"}},
    FreedomPayClient: _freedom_error("340"),
    FreedomPayPayoutClient: _freedom_error("340"),
    FreedomPayWalletClient: _freedom_error("340"),
    CloudPaymentsClient: {"json": {"Success": False, "Message": "Not found"}},
    CloudPaymentsPayoutClient: {"json": {"Success": False, "Message": "Not found"}},
    KaspiClient: {"json": {"StatusCode": -1601, "Message": "Purchase not found"}},
    IokaClient: {"json": {"code": "OrderNotFound", "message": "no order"}},
    KazbankClient: {"json": {"errorCode": "ORDER_NOT_FOUND"}},
}


@every_operation
async def test_not_found_is_never_seen_for_an_inquiry_and_a_refusal_otherwise(
    operation: Operation,
) -> None:
    handler = _answering(404, **NOT_FOUND.get(operation.adapter, {"json": {"code": "not_found"}}))
    if operation.lookup:
        assert await _answer(operation, handler) is None
        return
    failure = await _fail(operation, handler)
    assert type(failure) is operation.rejected
    assert failure.code == "not_found"


@every_operation
async def test_429_is_throttled_with_retry_after(operation: Operation) -> None:
    failure = await _fail(operation, _answering(429, headers={"Retry-After": "7"}))
    assert type(failure) is ProviderThrottled
    assert failure.retry_after == 7
    assert outcome_known(failure)


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({}, None),
        ({"Retry-After": "0"}, 0),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
    ],
)
@pytest.mark.parametrize(
    "op_id", ["PaymentProviderClient.get_payment", "HalykEpayClient.get_charge"]
)
async def test_retry_after_is_read_in_seconds_only(
    op_id: str, headers: dict[str, str], retry_after: float | None
) -> None:
    failure = await _fail(_operation(op_id), _answering(429, headers=headers))
    assert isinstance(failure, ProviderThrottled)
    assert failure.retry_after == retry_after


# -- answers we cannot read ---------------------------------------------------------------------


@every_operation
@pytest.mark.parametrize(
    "answer",
    [
        {"content": b"<html>Bad gateway</html>", "headers": {"content-type": "text/html"}},
        {"content": b""},
        {"json": {}},
        {"json": []},
        {"json": {"result": "OK", "data": None, "status": "paid", "amount": "1.005"}},
    ],
    ids=["html", "empty", "empty_object", "list", "wrong_shape"],
)
async def test_an_unreadable_2xx_leaves_the_outcome_unknown(
    operation: Operation, answer: dict[str, Any]
) -> None:
    if operation.adapter is IokaClient and operation.lookup and answer == {"json": []}:
        # ioka's order search answers a list: an empty one is "no such order", not unreadable.
        assert await _answer(operation, _answering(200, **answer)) is None
        return
    failure = await _fail(operation, _answering(200, **answer))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == "invalid_response"
    assert not outcome_known(failure)


# -- Halyk ePay: its OAuth token, and check-status result codes inside a 200 --------------------

HALYK_GET = _operation("HalykEpayClient.get_charge")
HALYK_CHARGE = _operation("HalykEpayClient.charge")


def _token_failing(handler: Handler) -> Handler:
    """The token endpoint answers with `handler`; nothing else may be asked."""

    def serve(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith(TOKEN_PATH), request.url
        return handler(request)

    return serve


@pytest.mark.parametrize("operation", [HALYK_GET, HALYK_CHARGE], ids=lambda o: o.id)
@pytest.mark.parametrize(
    "handler",
    [
        _raising(httpx.ConnectError, "refused"),
        _raising(httpx.ReadTimeout, "timed out"),
        _raising(httpx.RemoteProtocolError, "disconnected"),
        _answering(500, json={"code": 1012}),
        _answering(503),
        _answering(200, content=b"<html/>"),
        _answering(200, json={"access_token": "at"}),  # no lifetime
    ],
    ids=["connect", "read_timeout", "lost", "500", "503", "html", "no_expiry"],
)
async def test_halyk_a_token_that_fails_is_never_a_payment(
    operation: Operation, handler: Handler
) -> None:
    """Nothing is paid by asking for a token: whatever goes wrong there, nothing was processed
    (and the payment was not even asked for)."""
    failure = await _fail(operation, _token_failing(handler), tokens=False)
    assert (type(failure), failure.code) == (ProviderUnreachable, "token_unavailable")


@pytest.mark.parametrize(
    ("status", "expected"), [(401, ProviderRejected), (400, ProviderRejected), (429, None)]
)
async def test_halyk_a_token_refused_is_a_refusal_and_throttled_is_throttled(
    status: int, expected: type[ProviderError] | None
) -> None:
    handler = _token_failing(_answering(status, json={"code": 1002}))
    failure = await _fail(HALYK_GET, handler, tokens=False)
    if expected is None:
        assert type(failure) is ProviderThrottled
    else:
        assert type(failure) is expected
    assert outcome_known(failure)


def _check_status(code: str) -> Handler:
    return _answering(200, json={"resultCode": code, "resultMessage": "x"})


@pytest.mark.parametrize(
    ("code", "error", "ours"),
    [
        ("103", ProviderOutcomeUnknown, "provider_error"),
        ("107", ProviderOutcomeUnknown, "in_progress"),
        ("104", ProviderRejected, "invalid_terminal"),
        ("106", ProviderRejected, "invalid_terminal"),
        ("109", ProviderRejected, "invalid_terminal"),
        ("999", ProviderOutcomeUnknown, "invalid_response"),
    ],
)
async def test_halyk_check_status_result_codes(
    code: str, error: type[ProviderError], ours: str
) -> None:
    failure = await _fail(HALYK_GET, _check_status(code))
    assert (type(failure), failure.code) == (error, ours)


async def test_halyk_no_such_invoice_inside_a_200_is_never_seen() -> None:
    assert await _answer(HALYK_GET, _check_status("102")) is None


async def test_halyk_an_answer_about_another_reference_is_not_taken() -> None:
    """Two of our references on one invoice: never taken for the payment asked about."""
    transaction = {
        "id": "t1",
        "invoiceID": invoice_id("dep_2"),
        "amount": 1,
        "currency": "KZT",
        "description": "dep_2",
        "statusName": "CHARGE",
    }
    handler = _answering(200, json={"resultCode": "100", "transaction": transaction})
    failure = await _fail(HALYK_GET, handler)  # asked about dep_1
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "invoice_collision")
    transaction["invoiceID"] = invoice_id("dep_1")  # an invoice that is not its description's
    failure = await _fail(HALYK_GET, handler)
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "invalid_response")


# -- Freedom Pay: signed XML answers, errors inside a 200 ---------------------------------------

FREEDOM_GET = _operation("FreedomPayClient.get_charge")
FREEDOM_CHARGE = _operation("FreedomPayClient.charge")


def _freedom(fields: dict[str, str], secret: str = SECRET) -> Handler:
    """An XML answer signed with `secret` for the script asked."""

    def handler(request: httpx.Request) -> httpx.Response:
        script = script_name(request.url.path)
        return httpx.Response(200, content=signed_xml(script, fields, secret, new_salt()))

    return handler


@pytest.mark.parametrize(
    ("code", "error", "ours"),
    [
        ("200", ProviderRejected, "bad_request"),
        ("120", ProviderRejected, "not_allowed"),
        ("700", ProviderRejected, "invalid_card_data"),
        ("1000", ProviderOutcomeUnknown, "internal_error"),
        ("5555", ProviderOutcomeUnknown, "freedom_5555"),
    ],
)
@pytest.mark.parametrize("operation", [FREEDOM_CHARGE, FREEDOM_GET], ids=lambda o: o.id)
async def test_freedom_errors_inside_a_200_are_refusals_only_where_documented(
    operation: Operation, code: str, error: type[ProviderError], ours: str
) -> None:
    failure = await _fail(operation, _freedom({"pg_status": "error", "pg_error_code": code}))
    assert (type(failure), failure.code) == (error, ours)


async def test_freedom_no_such_order_inside_a_200_is_never_seen() -> None:
    not_found = {"pg_status": "error", "pg_error_code": "340"}
    assert await _answer(FREEDOM_GET, _freedom(not_found)) is None
    assert await _answer(FREEDOM_GET, _freedom({"pg_status": "ok", "pg_payment_id": "0"})) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"pg_status": "ok", "pg_payment_id": "1", "pg_transaction_status": "ok"},
        {"pg_status": "error", "pg_error_code": "340"},  # "not found", from someone else
        {"pg_status": "error", "pg_error_code": "200"},  # a refusal, from someone else
    ],
)
@pytest.mark.parametrize("operation", [FREEDOM_CHARGE, FREEDOM_GET], ids=lambda o: o.id)
async def test_freedom_an_answer_not_signed_by_us_leaves_the_outcome_unknown(
    operation: Operation, fields: dict[str, str]
) -> None:
    failure = await _fail(operation, _freedom(fields, secret="not-ours"))
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "invalid_signature")


async def test_freedom_an_unrecognised_merchant_need_not_sign_and_is_a_refusal() -> None:
    for code, ours in (("100", "invalid_signature"), ("101", "unknown_merchant")):
        failure = await _fail(FREEDOM_CHARGE, _answering(200, **_freedom_error(code)))
        assert (type(failure), failure.code) == (ProviderRejected, ours)


@pytest.mark.parametrize(
    "fields", [{"pg_status": "maybe"}, {"pg_status": "error"}, {"pg_error_code": "1"}]
)
async def test_freedom_answers_we_cannot_read_leave_the_outcome_unknown(
    fields: dict[str, str],
) -> None:
    failure = await _fail(FREEDOM_CHARGE, _freedom(fields))
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "invalid_response")


# -- CloudPayments: {Success, Message, Model} ---------------------------------------------------

CLOUD_GET = _operation("CloudPaymentsClient.get_charge")
CLOUD_CHARGE = _operation("CloudPaymentsClient.charge")


def _cloud(message: str) -> Handler:
    return _answering(200, json={"Success": False, "Message": message, "Model": None})


@pytest.mark.parametrize(
    ("message", "error", "ours"),
    [
        ("Amount is required", ProviderRejected, "amount_is_required"),
        ("Invalid Amount value", ProviderRejected, "invalid_amount_value"),
        ("Token not found", ProviderRejected, "token_not_found"),
        ("System error", ProviderOutcomeUnknown, "system_error"),
        ("Service unavailable", ProviderOutcomeUnknown, "service_unavailable"),
    ],
)
async def test_cloudpayments_errors_inside_a_200_are_refusals_only_of_documented_kinds(
    message: str, error: type[ProviderError], ours: str
) -> None:
    failure = await _fail(CLOUD_CHARGE, _cloud(message))
    assert (type(failure), failure.code) == (error, ours)


async def test_cloudpayments_nothing_under_our_reference_is_never_seen() -> None:
    assert await _answer(CLOUD_GET, _cloud("Not found")) is None


async def test_cloudpayments_a_decline_is_an_answer_not_an_error() -> None:
    """`Success: false` WITH a Model: the card was declined; nothing to settle."""
    declined = {
        "TransactionId": 7,
        "Amount": 1,
        "Currency": "KZT",
        "InvoiceId": "dep_1",
        "Status": "Declined",
        "ReasonCode": 5051,
    }
    handler = _answering(200, json={"Success": False, "Message": None, "Model": declined})
    outcome = await _answer(CLOUD_CHARGE, handler)
    assert getattr(outcome, "status", None) == "declined"
    assert getattr(outcome, "decline_code", None) == "insufficient_funds"


@pytest.mark.parametrize(
    "answer",
    [{"Success": "false"}, {"Success": False}, {"Success": False, "Message": " "}],
)
async def test_cloudpayments_envelopes_we_cannot_read_leave_the_outcome_unknown(
    answer: dict[str, Any],
) -> None:
    failure = await _fail(CLOUD_CHARGE, _answering(200, json=answer))
    assert (type(failure), failure.code) == (ProviderOutcomeUnknown, "invalid_response")


# -- Kaspi: errors inside a 200 envelope {StatusCode, Data} -------------------------------------


def _kaspi_error(code: object) -> Handler:
    return _answering(200, json={"StatusCode": code, "Message": "x"})


KASPI = [
    _operation(f"KaspiClient[{method}].{name}")
    for method in ("qr", "mobile_banking")
    for name in ("create_payment", "get_payment")
]


@pytest.mark.parametrize("code", [-1601, -99000001])
async def test_kaspi_no_such_purchase_inside_a_200_is_never_seen(code: int) -> None:
    for operation in KASPI:
        if operation.lookup:
            assert await _answer(operation, _kaspi_error(code)) is None


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        (-1501, "device_not_found"),
        (-1502, "device_disabled"),
        (-10000, "client_certificate_missing"),
        (-99000002, "trade_point_not_found"),
        (990000028, "invalid_amount"),
        (990000033, "no_payment_methods"),
    ],
)
@pytest.mark.parametrize("operation", KASPI, ids=lambda o: o.id)
async def test_kaspi_documented_refusal_inside_a_200_is_a_refusal(
    operation: Operation, code: int, ours: str
) -> None:
    failure = await _fail(operation, _kaspi_error(code))
    assert (type(failure), failure.code) == (ProviderRejected, ours)
    assert outcome_known(failure)


@pytest.mark.parametrize("operation", KASPI, ids=lambda o: o.id)
async def test_kaspi_service_unavailable_inside_a_200_is_not_processed(
    operation: Operation,
) -> None:
    failure = await _fail(operation, _kaspi_error(-999))
    assert (type(failure), failure.code) == (ProviderUnreachable, "unavailable")


@pytest.mark.parametrize(("code", "ours"), [(-99000006, "return_failed"), (12345, "kaspi_12345")])
@pytest.mark.parametrize("operation", KASPI, ids=lambda o: o.id)
async def test_kaspi_other_errors_inside_a_200_leave_the_outcome_unknown(
    operation: Operation, code: int, ours: str
) -> None:
    failure = await _fail(operation, _kaspi_error(code))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == ours
    assert not outcome_known(failure)


@pytest.mark.parametrize(
    "envelope",
    [
        {"StatusCode": "-1601"},  # not an integer
        {"StatusCode": None},
        {"StatusCode": True},
        {"Data": {}},
        {"StatusCode": 0, "Data": None},
    ],
)
async def test_kaspi_envelopes_we_cannot_read_leave_the_outcome_unknown(
    envelope: dict[str, Any],
) -> None:
    failure = await _fail(
        _operation("KaspiClient[qr].create_payment"), _answering(200, json=envelope)
    )
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == "invalid_response"


# -- ioka: codes that leave the outcome unknown whatever the status ------------------------------


@pytest.mark.parametrize("code", ["BadGateway", "ProcessingDeadlineReachedError"])
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_ioka_codes_that_may_have_reached_the_acquirer_are_never_refusals(
    code: str, status: int
) -> None:
    operation = _operation("IokaClient.create_payment")
    failure = await _fail(operation, _answering(status, json={"code": code, "message": "x"}))
    assert type(failure) is ProviderOutcomeUnknown
    assert not outcome_known(failure)


# -- the hierarchy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "known"),
    [
        (ProviderUnreachable("p", "unreachable"), True),
        (ProviderThrottled("p", "throttled", retry_after=7), True),
        (ProviderRejected("p", "invalid_request"), True),
        (CardRejected("p", "invalid_card_number"), True),
        (ProviderOutcomeUnknown("p", "http_503"), False),
        (ProviderTimeout("p", "timeout"), False),
        (ProviderOutcomeUnknown("p", "invalid_response"), False),
    ],
    ids=lambda e: type(e).__name__ if isinstance(e, ProviderError) else str(e),
)
def test_outcome_known_only_when_not_processed(error: ProviderError, known: bool) -> None:
    assert outcome_known(error) is known
    assert isinstance(error, ProviderNotProcessed) is known
    assert isinstance(error, ProviderOutcomeUnknown) is not known
