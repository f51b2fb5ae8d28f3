"""ioka (cards on its hosted checkout, our `aggregator` method), behind the
`PaymentProviderClient` interface, with refunds.

ioka Payments API v2 (the OpenAPI document 2.8.0 that ships in iokadev/ioka-flutter,
`lib/src/api/ioka_api.json`; KAZAKHSTAN.md "Real payment providers' API styles"):

- `POST /v2/orders` {amount (integer tiyn), currency, capture_method AUTO|MANUAL, external_id,
  description, due_date, back_url} -> 201 {order: <order>, order_access_token}
- `GET /v2/orders?external_id=<ours>` -> [<order>]: the lookup by our reference
- `GET /v2/orders/{order_id}` -> <order>
- `POST /v2/orders/{order_id}/cancel` {reason} -> 200 <payment>: voids the order's authorized
  payment
- `POST /v2/orders/{order_id}/refunds` {amount, reason} -> 200 <refund> (partial allowed, at
  least 100 tiyn); `GET` the same path lists them
- <order> = {id, status, created_at, amount, currency, capture_method, external_id,
  description, due_date, back_url, checkout_url, ...}; statuses UNPAID | ON_HOLD | PAID |
  EXPIRED; <refund> = {id, payment_id, order_id, status, amount, error}, statuses PENDING |
  APPROVED | DECLINED
- errors {code, message} with HTTP 400 / 401 / 403 / 404 / 409 (`ERRORS` below); 500 and 504 leave
  the outcome unknown, and so does a bare 503 (see the assumptions)
- key in the `API-KEY` header; webhooks are registered once per shop (`POST /v2/webhooks`
  {url, events} answers the `key` that signs them), not per order: the `callback_url` of
  `create_payment` is not sent, the operator registers `/v1/webhooks/ioka` and configures the key
  as this provider's webhook secret. A webhook is JSON {event, order, payment} with `event`
  PAYMENT_APPROVED | PAYMENT_CAPTURED | PAYMENT_CANCELLED | PAYMENT_DECLINED.

How it reads in our terms. Our reference is the order's `external_id` (ioka refuses a second
order under it: 409 `OrderExists`, an outcome to settle by inquiry like any 409 on our
reference); the order's `id` is the provider payment id; the player's next action is
{"type": "redirect", "url": checkout_url}. We create orders with `capture_method` AUTO and a
`due_date` at the end of the player's time. UNPAID is pending (a declined card leaves the order
UNPAID: the player may try again on the page until `due_date`), PAID succeeded with the whole
amount, EXPIRED expired. ON_HOLD is pending too: a card authorized and not captured yet, which
with AUTO capture is the moment between authorization and ioka's own capture. The money is
reserved on the player's card, not ours, so nothing is credited before PAID; we keep asking, and
a cancel in that moment voids the authorization (what ioka documents `cancel` for), after which
we report whatever the order then says (PAID if the capture won the race). `cancel_payment`
looks the order up, returns it unchanged when it is final, else asks ioka to cancel and reads the
order again; a cancel refused because there is nothing to cancel (`NOTHING_TO_CANCEL`) is answered
with the order as it stands. Refunds are not idempotent at ioka (no key): after a refund whose
outcome is unknown, read `get_refunds` before asking again.

Assumptions, unconfirmed against a live ioka account (ioka's webhook signature scheme is not
documented beyond an `X-Signature` header): webhooks are taken only when `X-Signature` is the
lowercase hex HMAC-SHA256, keyed with the webhook key, of `{X-Timestamp}.{raw body}`, and
`X-Timestamp` (unix seconds) is within the tolerance, so a webhook without a timestamp is
refused and the workflow learns the outcome by polling, which it does anyway; the status EXPIRED
(in KAZAKHSTAN.md, not in the 2.8.0 document) is final; a cancel of an UNPAID order closes it
and the order then reads CANCELLED (2.8.0 documents the cancel for authorized payments only; a
refusal of it is read as above); a 503 whose body carries the code `ServiceUnavailable` was
refused before processing (ioka documents every 503 as "not executed", but a bare 503 may come
from something in front of it, so it stays unknown); the refund answer carries its `amount`
(listed as required by 2.8.0; the requested amount is reported when it is absent); and the codes
`BadGateway` and `ProcessingDeadlineReachedError` leave the outcome unknown whatever the HTTP
status, since ioka may have reached the acquirer.

Daily reports (reconciliation): `providers.reports.ioka`, whose docstring gives the report's
format and what the public sources do not confirm about it (no report API of this provider is
publicly documented: the endpoint and format there are assumed).
"""

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from providers.connector import MINOR_UNITS, ApiKey, Endpoint, ErrorMap, Vocabulary
from providers.errors import ProviderOutcomeUnknown, ProviderRejected
from providers.payments import (
    CallbackNotUnderstood,
    PaymentCallback,
    PaymentConnector,
    PaymentOutcome,
    PaymentProviderClient,
    PaymentRequest,
    PaymentStatus,
)
from providers.signing import SignatureError, SignatureScheme

CONNECTOR_TYPE = "ioka"
METHOD = "aggregator"

SIGNATURE_HEADER = "X-Signature"  # lowercase hex HMAC-SHA256 over `{X-Timestamp}.{body}`
TIMESTAMP_HEADER = "X-Timestamp"  # unix seconds

# ioka's documented business error codes (2.8.0, tag "errors") in ours. Whether one is a refusal
# is the HTTP status's call (`providers.http`), except `OUTCOME_UNKNOWN_CODES`.
ERRORS = {
    "Unauthorized": "unauthorized",
    "Forbidden": "forbidden",
    "InvalidRequest": "invalid_request",
    "BadGateway": "bad_gateway",
    "OrderNotFound": "not_found",
    "OrderExists": "reference_reused",
    "OrderUnpaid": "order_unpaid",
    "OrderHasApprovedPayment": "order_has_approved_payment",
    "OrderHasNoApprovedPayment": "order_has_no_approved_payment",
    "OrderHasNoAttemptsLeftError": "no_attempts_left",
    "OrderExpired": "order_expired",
    "PaymentNotFound": "payment_not_found",
    "RefundNotFound": "refund_not_found",
    "PaymentStarted": "payment_started",
    "ProcessingDeadlineReachedError": "processing_deadline_reached",
    "PaymentCaptureAmountExceeded": "capture_amount_exceeded",
    "PaymentRefundAmountExceededError": "refund_amount_exceeded",
    "ServiceUnavailable": "service_unavailable",  # assumed: a 503 refused before processing
}
# ioka may have reached the acquirer: never a refusal, whatever the HTTP status.
OUTCOME_UNKNOWN_CODES = frozenset({"bad_gateway", "processing_deadline_reached"})
# A cancel refused for these leaves the order as it is: read it and answer with it.
NOTHING_TO_CANCEL = frozenset(
    {"payment_not_found", "order_has_no_approved_payment", "order_expired"}
)

ORDER_STATUSES = {
    "UNPAID": "pending",
    "ON_HOLD": "pending",  # authorized, not captured yet: not our money until PAID
    "PAID": "succeeded",
    "EXPIRED": "expired",
    "CANCELLED": "cancelled",  # assumed: an unpaid order closed by our cancel
}
RefundStatus = Literal["pending", "succeeded", "declined"]
REFUND_STATUSES: dict[str, RefundStatus] = {
    "PENDING": "pending",
    "APPROVED": "succeeded",
    "DECLINED": "declined",
}

ORDERS = Endpoint("POST", "/v2/orders")
BY_EXTERNAL_ID = Endpoint("GET", "/v2/orders", encoding="query", reference_field="external_id")
# `{reference}` stands for ioka's order id in these.
ORDER = Endpoint("GET", "/v2/orders/{reference}")
CANCEL = Endpoint("POST", "/v2/orders/{reference}/cancel")
REFUNDS = Endpoint("POST", "/v2/orders/{reference}/refunds")
LIST_REFUNDS = Endpoint("GET", "/v2/orders/{reference}/refunds")


def utc_now() -> datetime:
    return datetime.now(UTC)


def ioka_time(at: datetime) -> str:
    """ioka's date-time: UTC, RFC 3339 without an offset (e.g. 2019-08-24T14:15:22)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    """Raise SignatureError unless the webhook is signed with `secret` within the tolerance."""
    if not signature or not timestamp:
        raise SignatureError(
            "signature_missing", f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} required"
        )
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureError("invalid_timestamp", "timestamp is not unix seconds")
    given = signature.strip().lower()
    expected = sign(secret, int(timestamp), body)
    if not given.isascii() or not hmac.compare_digest(expected, given):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")


SCHEME = SignatureScheme(verify, {"signature": SIGNATURE_HEADER, "timestamp": TIMESTAMP_HEADER})


def order_body(payment: PaymentRequest) -> dict[str, Any]:
    """`POST /v2/orders`: captured at once, payable until the player's time is up."""
    body: dict[str, Any] = {
        "amount": payment.amount,
        "currency": payment.currency,
        "capture_method": "AUTO",
        "external_id": payment.reference,
        "description": f"Deposit {payment.reference}",
        "due_date": ioka_time(utc_now() + timedelta(seconds=payment.expires_in_seconds)),
    }
    if payment.details.get("return_url"):
        body["back_url"] = payment.details["return_url"]
    return body


SPEC = PaymentConnector(
    auth=ApiKey("API-KEY"),
    errors=ErrorMap(path=("code",), codes=ERRORS),
    vocabulary=Vocabulary(statuses=ORDER_STATUSES),
    money=MINOR_UNITS,
    signature=SCHEME,
    create=ORDERS,
    status=BY_EXTERNAL_ID,
    cancel=CANCEL,
    create_body=order_body,
)


def _amount(value: object, name: str) -> int:
    return MINOR_UNITS.decode(value, name)


def _due(order: dict[str, Any]) -> str | None:
    """The order's `due_date` as an ISO time with its offset (ioka writes UTC without one)."""
    due = order.get("due_date")
    if not isinstance(due, str):
        return None
    try:
        at = datetime.fromisoformat(due)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def order_outcome(order: Any) -> PaymentOutcome:
    """An ioka order in our terms (it raises when it cannot be read)."""
    if not isinstance(order, dict):
        raise TypeError(f"an order is an object, got {type(order).__name__}")
    vocabulary = SPEC.vocabulary
    assert vocabulary is not None
    status = vocabulary.status(order["status"])
    amount = _amount(order["amount"], "amount")
    url = order.get("checkout_url")
    if status == "pending" and not url:
        raise ValueError("an unpaid order without its checkout_url")
    action: dict[str, Any] = {"type": "redirect", "url": url, "expires_at": _due(order)}
    return PaymentOutcome(
        reference=order["external_id"],
        payment_id=order["id"],
        method=METHOD,
        status=cast(PaymentStatus, status),  # ORDER_STATUSES holds only ours
        amount=amount,
        currency=order["currency"],
        amount_received=amount if status == "succeeded" else None,  # AUTO: captured in full
        action=action if url else {},
    )


def _ours(reference: str) -> Callable[[Any], PaymentOutcome]:
    """An order parser that insists the order is the one under our reference."""

    def parse(order: Any) -> PaymentOutcome:
        outcome = order_outcome(order)
        if outcome.reference != reference:
            raise ValueError(f"order {outcome.payment_id} is {outcome.reference!r}, not ours")
        return outcome

    return parse


def _the_order(reference: str, answer: Any) -> dict[str, Any] | None:
    """The one order under our reference in a `GET /v2/orders?external_id=` answer."""
    if not isinstance(answer, list):
        raise TypeError("the order search answers a list")
    found = [o for o in answer if isinstance(o, dict) and o.get("external_id") == reference]
    if len(found) > 1:
        raise ValueError(f"{len(found)} orders under external_id {reference!r}")
    return found[0] if found else None


class RefundOutcome(BaseModel):
    """One refund of a paid order, in our terms."""

    reference: str
    provider_payment_id: str  # ioka's order id
    refund_id: str
    status: RefundStatus
    amount: int
    currency: str
    decline_code: str | None = None


def refund_outcome(
    refund: Any, *, reference: str, currency: str, requested: int | None = None
) -> RefundOutcome:
    if not isinstance(refund, dict):
        raise TypeError(f"a refund is an object, got {type(refund).__name__}")
    status = REFUND_STATUSES.get(refund["status"])
    if status is None:
        raise KeyError(f"unknown refund status {refund['status']!r}")
    amount = refund.get("amount")
    if amount is None and requested is None:
        raise KeyError("a refund without its amount")
    error = refund.get("error")
    decline = error.get("code") if isinstance(error, dict) else None
    return RefundOutcome(
        reference=reference,
        provider_payment_id=refund["order_id"],
        refund_id=refund["id"],
        status=status,
        amount=_amount(amount if amount is not None else requested, "amount"),
        currency=currency,
        decline_code=None if decline is None else ERRORS.get(decline, str(decline).lower()),
    )


def callback_of(body: bytes) -> PaymentCallback:
    """A verified webhook {event, order, payment} in our terms (the order's state; the amount
    is the payment's captured amount once PAID, else the order's)."""
    vocabulary = SPEC.vocabulary
    assert vocabulary is not None
    try:
        data = json.loads(body)
        order = data["order"]
        payment = data.get("payment") or {}
        status = vocabulary.status(order["status"])
        captured = payment.get("captured_amount") if status == "succeeded" else None
        error = payment.get("error") if payment.get("status") == "DECLINED" else None
        decline = error.get("code") if isinstance(error, dict) else None
        return PaymentCallback(
            reference=order["external_id"],
            status=status,
            amount=_amount(captured or order["amount"], "amount"),
            currency=order["currency"],
            decline_code=vocabulary.reason(decline),
            provider_payment_id=order["id"],
        )
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise CallbackNotUnderstood(str(exc)) from exc


class IokaClient(PaymentProviderClient):
    spec = SPEC

    @classmethod
    def parse_callback(cls, body: bytes) -> PaymentCallback:
        return callback_of(body)

    def _classify_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 400 <= status < 500 and status != 429:
            code = self.spec.errors.code_of(response)
            if code in OUTCOME_UNKNOWN_CODES:
                raise ProviderOutcomeUnknown(self.provider, code, f"HTTP {status}")
        super()._classify_status(response)

    async def create_payment(
        self,
        *,
        reference: str,
        method: str,
        amount: int,
        currency: str,
        details: dict[str, str],
        callback_url: str,
        expires_in_seconds: int,
    ) -> PaymentOutcome:
        if method != METHOD:
            raise ProviderRejected(self.provider, "unsupported_method", method)
        order = PaymentRequest(
            reference=reference,
            method=method,
            amount=self.spec.money.encode(amount),
            currency=currency,
            details=details,
            callback_url=callback_url,  # not sent: ioka's webhooks are registered per shop
            expires_in_seconds=expires_in_seconds,
        )
        response = await self._call(self.spec.create, reference, self.spec.create_body(order))
        parse = _ours(reference)
        return self._answer(lambda answer: parse(answer["order"]), response)

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        """Status inquiry by our reference (the order's `external_id`); None: no such order."""
        order = await self._find(reference)
        return None if order is None else self._parsed(_ours(reference), order)

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        """Close the order unless it is final, then say what it is; None: no such order."""
        found = await self.get_payment(reference)
        if found is None or found.status != "pending":
            return found
        order_id = quote(found.payment_id, safe="")
        try:
            await self._call(CANCEL, order_id, {"reason": "payment time is up"})
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            if exc.code not in NOTHING_TO_CANCEL:
                raise
        return await self._inquiry(ORDER, order_id, _ours(reference))

    async def refund(
        self, reference: str, amount: int, currency: str, *, reason: str | None = None
    ) -> RefundOutcome:
        """Refund part or all of a paid order. Not idempotent at ioka: after an unknown
        outcome, read `get_refunds` before asking again."""
        if amount <= 0:
            raise ProviderRejected(self.provider, "invalid_amount", f"refund of {amount}")
        found = await self.get_payment(reference)
        if found is None:
            raise ProviderRejected(self.provider, "not_found", f"no order {reference!r}")
        if found.currency != currency:
            detail = f"the order is in {found.currency}, not {currency}"
            raise ProviderRejected(self.provider, "currency_mismatch", detail)
        body: dict[str, Any] = {"amount": self.spec.money.encode(amount)}
        if reason:
            body["reason"] = reason
        response = await self._call(REFUNDS, quote(found.payment_id, safe=""), body)
        return self._answer(
            lambda answer: refund_outcome(
                answer, reference=reference, currency=currency, requested=amount
            ),
            response,
        )

    async def get_refunds(self, reference: str) -> list[RefundOutcome] | None:
        """Every refund of the order under our reference; None: no such order."""
        found = await self.get_payment(reference)
        if found is None:
            return None
        currency = found.currency

        def parse(answer: Any) -> list[RefundOutcome]:
            if not isinstance(answer, list):
                raise TypeError("the refund list answers a list")
            return [refund_outcome(r, reference=reference, currency=currency) for r in answer]

        return await self._inquiry(LIST_REFUNDS, quote(found.payment_id, safe=""), parse)

    async def _find(self, reference: str) -> dict[str, Any] | None:
        response = await self._lookup(BY_EXTERNAL_ID, reference)
        if response is None:
            return None
        return self._answer(lambda answer: _the_order(reference, answer), response)


CLIENT = IokaClient
