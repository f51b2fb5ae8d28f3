"""Every way a provider call can fail, classified the same for every adapter (providers.errors,
providers.http): did the provider process the request (outcome unknown: settle by inquiry at the
same provider) or certainly not (another provider may be tried)? httpx.MockTransport raises the
transport errors or answers; no money moves here."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from providers.altyncard import AltynCardClient
from providers.bankapp import BankAppClient
from providers.card import CardData, CardProviderClient
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
from providers.kzqr import KzqrClient
from providers.payhub import PayHubClient
from providers.payments import PaymentProviderClient
from providers.payout import PayoutProviderClient
from providers.tengewallet import TengeWalletClient

Handler = Callable[[httpx.Request], httpx.Response]
CARD = CardData(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123")


@dataclass(frozen=True)
class Operation:
    """One adapter method; `lookup` ones are about a reference the provider may never have seen
    (None on not_found), the others refuse with `rejected`."""

    adapter: type[ProviderHttp]
    name: str
    call: Callable[[Any], Awaitable[object]]
    lookup: bool = False
    rejected: type[ProviderRejected] = ProviderRejected

    @property
    def id(self) -> str:
        return f"{self.adapter.__name__}.{self.name}"


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


def _payment_operations(adapter: type[PaymentProviderClient]) -> list[Operation]:
    fields = adapter.spec.fields
    method = "bank_transfer" if fields is None else fields.method

    async def create(client: PaymentProviderClient) -> object:
        return await client.create_payment(
            reference="dep_1",
            method=method,
            amount=500010,
            currency="KZT",
            details={"phone": "+77011234567", "account": "tw-1"},
            callback_url="http://api/v1/webhooks/x",
            expires_in_seconds=60,
        )

    return [
        Operation(adapter, "create_payment", create),
        Operation(adapter, "get_payment", lambda c: c.get_payment("dep_1"), lookup=True),
        Operation(adapter, "cancel_payment", lambda c: c.cancel_payment("dep_1"), lookup=True),
    ]


OPERATIONS = [
    *_card_operations(CardProviderClient),
    *_card_operations(AltynCardClient),
    *[
        operation
        for adapter in (
            PaymentProviderClient,
            KazbankClient,
            TengeWalletClient,
            BankAppClient,
            KzqrClient,
            PayHubClient,
        )
        for operation in _payment_operations(adapter)
    ],
    Operation(
        PayoutProviderClient,
        "pay",
        lambda c: c.pay(
            reference="wd_1",
            amount=100,
            currency="KZT",
            method="bank_transfer",
            destination={"iban": "KZ86125KZT5004100100"},
        ),
    ),
    Operation(PayoutProviderClient, "get_payout", lambda c: c.get_payout("wd_1"), lookup=True),
    Operation(
        PayoutProviderClient,
        "cancel_payout",
        lambda c: c.cancel_payout(reference="wd_1", amount=100, currency="KZT"),
    ),
]
every_operation = pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.id)


async def _fail(operation: Operation, handler: Handler) -> ProviderError:
    """The error the operation raises against `handler` (it must raise one)."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = operation.adapter(http=http, base_url="http://sim", provider="p", secret="s")
        with pytest.raises(ProviderError) as caught:
            await operation.call(client)
    assert caught.value.provider == "p"
    return caught.value


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


@every_operation
async def test_not_found_is_never_seen_for_an_inquiry_and_a_refusal_otherwise(
    operation: Operation,
) -> None:
    error_bodies = {
        AltynCardClient: {"fault": {"code": "PAYMENT_NOT_FOUND"}},
        KazbankClient: {"errorCode": "ORDER_NOT_FOUND"},
        TengeWalletClient: {"error": "invoice_not_found"},
        BankAppClient: {"error": {"code": "PUSH_NOT_FOUND"}},
        KzqrClient: {"result": "ERROR", "error": {"code": 1404}},
        PayHubClient: {"errors": [{"code": "SESSION_NOT_FOUND"}]},
    }
    body = error_bodies.get(operation.adapter, {"code": "not_found"})
    handler = _answering(404, json=body)
    if operation.lookup:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = operation.adapter(http=http, base_url="http://sim", provider="p", secret="s")
            assert await operation.call(client) is None
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
async def test_retry_after_is_read_in_seconds_only(
    headers: dict[str, str], retry_after: float | None
) -> None:
    (operation,) = [o for o in OPERATIONS if o.id == "PaymentProviderClient.get_payment"]
    failure = await _fail(operation, _answering(429, headers=headers))
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
    failure = await _fail(operation, _answering(200, **answer))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == "invalid_response"
    assert not outcome_known(failure)


# -- errors inside a 200 envelope (KZQR) --------------------------------------------------------


def _kzqr_error(code: object) -> Handler:
    return _answering(200, json={"result": "ERROR", "error": {"code": code, "text": "x"}})


KZQR_GET = next(o for o in OPERATIONS if o.id == "KzqrClient.get_payment")
KZQR_CREATE = next(o for o in OPERATIONS if o.id == "KzqrClient.create_payment")


async def test_kzqr_no_such_order_inside_a_200_is_never_seen() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_kzqr_error(1404))) as http:
        client = KzqrClient(http=http, base_url="http://sim", provider="kzqr", secret="s")
        assert await client.get_payment("dep_1") is None


async def test_kzqr_documented_refusal_inside_a_200_is_a_refusal() -> None:
    failure = await _fail(KZQR_CREATE, _kzqr_error(1422))
    assert type(failure) is ProviderRejected
    assert failure.code == "kzqr_1422"
    assert outcome_known(failure)


@pytest.mark.parametrize(
    ("code", "ours"), [(1409, "reference_reused"), (1500, "kzqr_1500"), ("E42", "kzqr_E42")]
)
@pytest.mark.parametrize("operation", [KZQR_CREATE, KZQR_GET], ids=lambda o: o.id)
async def test_kzqr_other_errors_inside_a_200_leave_the_outcome_unknown(
    operation: Operation, code: object, ours: str
) -> None:
    failure = await _fail(operation, _kzqr_error(code))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == ours
    assert not outcome_known(failure)


@pytest.mark.parametrize(
    "envelope",
    [
        {"result": "ERROR", "data": {}},
        {"result": "ERROR", "error": {"text": "no code"}},
        {"result": "MAYBE"},
        {"data": {}},
    ],
)
async def test_kzqr_envelopes_we_cannot_read_leave_the_outcome_unknown(
    envelope: dict[str, Any],
) -> None:
    failure = await _fail(KZQR_CREATE, _answering(200, json=envelope))
    assert type(failure) is ProviderOutcomeUnknown
    assert failure.code == "invalid_response"


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
