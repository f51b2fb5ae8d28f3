"""PayHub's hosted-checkout API (aggregator), behind the `PaymentProviderClient` interface.

- `POST /checkout/sessions` {order_id, amount_minor, currency, success_url, webhook_url,
  ttl_seconds} -> a session {session_id, order_id, status, amount_minor, captured_minor, currency,
  failure_reason, paid_with, checkout_url, expires_at}
- `GET /checkout/sessions/by-order/{order_id}`: status inquiry
- `POST /checkout/sessions/by-order/{order_id}/cancel`: cancel a session not paid yet

Statuses OPEN | COMPLETED | FAILED | EXPIRED | CANCELED; errors {errors: [{code, detail}]}; key in
`X-PayHub-Key`; callbacks JSON {event, id, session: <session>} signed
`X-PayHub-Signature: ts=<unix s>;sig=<base64>`, HMAC-SHA256 over `{ts}:{hex SHA-256 of body}`.
Money is integer minor units on the wire (`amount_minor`), checked to be an integer.
"""

from typing import Any

from providers.connector import MINOR_UNITS, ApiKey, Endpoint, ErrorMap, Vocabulary
from providers.payments import (
    Callback,
    PaymentCallback,
    PaymentConnector,
    PaymentOutcome,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import PAYHUB_SCHEME

VOCABULARY = Vocabulary(
    statuses={
        "OPEN": "pending",
        "COMPLETED": "succeeded",
        "FAILED": "declined",
        "EXPIRED": "expired",
        "CANCELED": "cancelled",
    },
    reasons={
        "CUSTOMER_ABANDONED": "declined_by_payer",
        "PAYMENT_REFUSED": "do_not_honor",
        "SESSION_EXPIRED": "expired",
        "MERCHANT_CANCELED": "cancelled",
    },
)
MONEY = MINOR_UNITS


def _create_body(payment: PaymentRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": payment.reference,
        "amount_minor": payment.amount,
        "currency": payment.currency,
        "webhook_url": payment.callback_url,
        "ttl_seconds": payment.expires_in_seconds,
    }
    if payment.details.get("return_url"):
        body["success_url"] = payment.details["return_url"]
    return body


def session_outcome(data: dict[str, Any], provider: str) -> PaymentOutcome:
    """A checkout session as `PaymentOutcome` (amounts in minor units, checked to be integers)."""
    captured = data.get("captured_minor")
    return PaymentOutcome(
        reference=data["order_id"],
        payment_id=data["session_id"],
        method="aggregator",
        status=VOCABULARY.status(data["status"]),
        amount=MONEY.decode(data["amount_minor"], "amount_minor"),
        currency=data["currency"],
        amount_received=MONEY.decode(captured, "amount_minor") if captured is not None else None,
        decline_code=VOCABULARY.reason(data.get("failure_reason")),
        action={
            "type": "redirect",
            "url": data["checkout_url"],
            "expires_at": data.get("expires_at"),
        },
    )


def _callback(envelope: dict[str, Any]) -> PaymentCallback:
    session = envelope["session"]
    captured = session.get("captured_minor")
    return PaymentCallback(
        reference=session["order_id"],
        status=VOCABULARY.status(session["status"]),
        amount=MONEY.decode(
            captured if captured is not None else session["amount_minor"], "amount_minor"
        ),
        currency=session.get("currency"),
        decline_code=VOCABULARY.reason(session.get("failure_reason")),
        provider_payment_id=session.get("session_id"),
        event_id=envelope.get("id"),
    )


SPEC = PaymentConnector(
    auth=ApiKey("X-PayHub-Key"),
    errors=ErrorMap(
        path=("errors", 0, "code"),
        codes={"SESSION_NOT_FOUND": "not_found", "ORDER_ID_REUSED": "reference_reused"},
        lower=True,
    ),
    vocabulary=VOCABULARY,
    money=MONEY,
    signature=PAYHUB_SCHEME,
    methods=frozenset({"aggregator"}),
    create=Endpoint("POST", "/checkout/sessions"),
    status=Endpoint("GET", "/checkout/sessions/by-order/{reference}"),
    cancel=Endpoint("POST", "/checkout/sessions/by-order/{reference}/cancel"),
    create_body=_create_body,
    outcome=session_outcome,
    callback=Callback("json", _callback),
)


class PayHubClient(PaymentProviderClient):
    spec = SPEC
