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
    Fields,
    PaymentConnector,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import PAYHUB_SCHEME


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


def _action(session: dict[str, Any], provider: str) -> dict[str, Any]:
    """PayHub's hosted page, where the player picks a method."""
    return {
        "type": "redirect",
        "url": session["checkout_url"],
        "expires_at": session.get("expires_at"),
    }


SPEC = PaymentConnector(
    auth=ApiKey("X-PayHub-Key"),
    errors=ErrorMap(
        path=("errors", 0, "code"),
        codes={"SESSION_NOT_FOUND": "not_found", "ORDER_ID_REUSED": "reference_reused"},
        lower=True,
    ),
    vocabulary=Vocabulary(
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
    ),
    money=MINOR_UNITS,
    signature=PAYHUB_SCHEME,
    create=Endpoint("POST", "/checkout/sessions"),
    status=Endpoint("GET", "/checkout/sessions/by-order/{reference}"),
    cancel=Endpoint("POST", "/checkout/sessions/by-order/{reference}/cancel"),
    create_body=_create_body,
    fields=Fields(
        method="aggregator",
        reference="order_id",
        payment_id="session_id",
        status="status",
        amount="amount_minor",
        received="captured_minor",
        currency="currency",
        decline="failure_reason",
        action=_action,
    ),
    callback=Callback("json", at=("session",), event_id="id"),
)


class PayHubClient(PaymentProviderClient):
    spec = SPEC
