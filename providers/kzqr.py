"""KZQR's dynamic-QR API (QR payments), behind the `PaymentProviderClient` interface.

Every answer is an envelope: {result: "OK", data: <qr order>} or {result: "ERROR", error: {code,
text}} with numeric codes (1404 no such order, 1409 merchant_ref reused, 1422 amount refused),
under the HTTP status of the error or, for some errors, inside a 200. Only 1404 and 1422 are
documented as refusals before processing; any other code in a 200 leaves the outcome unknown.
- `POST /merchant/v3/qr` {merchant_ref, amount: {value: "2500.00", currency}, notify_url, ttl_sec}
  -> a QR order {qr_id, merchant_ref, state, amount, paid, fail_code, qr_string, expire_at}
- `GET /merchant/v3/qr?merchant_ref=...`: status inquiry (a query parameter, not a path)
- `POST /merchant/v3/qr/close` {merchant_ref}: close an unpaid QR

States ACTIVE | PAID | FAILED | EXPIRED | CLOSED; token in `X-KZQR-Token`; callbacks JSON
{type, notification_id, data: <qr order>} signed `X-KZQR-Signature: <hex HMAC-SHA512>` over
`{X-KZQR-Nonce}|{X-KZQR-Timestamp}|{body}`. Money is {value: decimal string, currency}
(`providers.amounts`).
"""

from typing import Any

from providers.connector import DECIMAL_STRING, ApiKey, Endpoint, Envelope, ErrorMap, Vocabulary
from providers.payments import (
    Callback,
    Fields,
    PaymentConnector,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import KZQR_SCHEME


def _create_body(payment: PaymentRequest) -> dict[str, Any]:
    return {
        "merchant_ref": payment.reference,
        "amount": {"value": payment.amount, "currency": payment.currency},
        "notify_url": payment.callback_url,
        "ttl_sec": payment.expires_in_seconds,
    }


def _action(order: dict[str, Any], provider: str) -> dict[str, Any]:
    """The QR to scan."""
    return {"type": "qr", "payload": order["qr_string"], "expires_at": order.get("expire_at")}


SPEC = PaymentConnector(
    auth=ApiKey("X-KZQR-Token"),
    errors=ErrorMap(
        path=("error", "code"),
        codes={"1404": "not_found", "1409": "reference_reused", "1503": "service_unavailable"},
        prefix="kzqr_",
        envelope=Envelope(
            result="result", ok="OK", error=("error", "code"), refusals=frozenset({"1404", "1422"})
        ),
    ),
    vocabulary=Vocabulary(
        what="state",
        statuses={
            "ACTIVE": "pending",
            "PAID": "succeeded",
            "FAILED": "declined",
            "EXPIRED": "expired",
            "CLOSED": "cancelled",
        },
        reasons={
            "PAYER_REFUSED": "declined_by_payer",
            "ISSUER_DECLINED": "do_not_honor",
            "QR_EXPIRED": "expired",
            "MERCHANT_CLOSED": "cancelled",
        },
    ),
    money=DECIMAL_STRING,
    signature=KZQR_SCHEME,
    create=Endpoint("POST", "/merchant/v3/qr"),
    status=Endpoint("GET", "/merchant/v3/qr", "query", reference_field="merchant_ref"),
    cancel=Endpoint("POST", "/merchant/v3/qr/close", reference_field="merchant_ref"),
    create_body=_create_body,
    fields=Fields(
        method="qr",
        reference="merchant_ref",
        payment_id="qr_id",
        status="state",
        amount=("amount", "value"),
        received=("paid", "value"),
        currency=("amount", "currency"),
        decline="fail_code",
        action=_action,
    ),
    answer_at=("data",),  # {result: "OK", data}; an error envelope is classified before
    callback=Callback("json", at=("data",), event_id="notification_id"),
)


class KzqrClient(PaymentProviderClient):
    spec = SPEC
