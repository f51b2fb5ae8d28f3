"""BankApp's push-payment API (mobile banking), behind the `PaymentProviderClient` interface.

- `POST /api/v1/push-requests` {requestId, phone, amountTiyn, currency, description, hookUrl,
  expiresInSec} -> a push request {pushId, requestId, status, amountTiyn, paidTiyn, currency,
  declineReason, phoneMasked, confirmUrl, expiresAt}
- `GET /api/v1/push-requests/{requestId}`: status inquiry
- `POST /api/v1/push-requests/{requestId}/withdraw`: cancel a push not answered yet

Statuses SENT | ACCEPTED | DECLINED | TIMEOUT | WITHDRAWN; errors {error: {code, message}}; key in
`X-BankApp-Key`; callbacks JSON signed `X-BankApp-Signature: t=<unix s>,v1=<hex>` over
`{t}.{body}`. Money is integer tiyn on the wire (`amountTiyn`), checked to be an integer.
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
from providers.signing import BANKAPP_SCHEME

VOCABULARY = Vocabulary(
    statuses={
        "SENT": "pending",
        "ACCEPTED": "succeeded",
        "DECLINED": "declined",
        "TIMEOUT": "expired",
        "WITHDRAWN": "cancelled",
    },
    reasons={
        "USER_DECLINED": "declined_by_payer",
        "BANK_DECLINED": "do_not_honor",
        "NO_ACCOUNT": "not_a_customer",
        "NO_RESPONSE": "expired",
        "MERCHANT_WITHDREW": "cancelled",
    },
)
MONEY = MINOR_UNITS


def _create_body(payment: PaymentRequest) -> dict[str, Any]:
    return {
        "requestId": payment.reference,
        "phone": payment.details.get("phone", ""),
        "amountTiyn": payment.amount,
        "currency": payment.currency,
        "description": f"Deposit {payment.reference}",
        "hookUrl": payment.callback_url,
        "expiresInSec": payment.expires_in_seconds,
    }


def push_outcome(data: dict[str, Any], provider: str) -> PaymentOutcome:
    """A push request as `PaymentOutcome` (amounts in minor units, checked to be integers); the
    app to confirm in is the provider's."""
    paid = data.get("paidTiyn")
    return PaymentOutcome(
        reference=data["requestId"],
        payment_id=data["pushId"],
        method="mobile_banking",
        status=VOCABULARY.status(data["status"]),
        amount=MONEY.decode(data["amountTiyn"], "amountTiyn"),
        currency=data["currency"],
        amount_received=MONEY.decode(paid, "amountTiyn") if paid is not None else None,
        decline_code=VOCABULARY.reason(data.get("declineReason")),
        action={
            "type": "app_confirm",
            "app": provider,
            "phone": data.get("phoneMasked"),
            "expires_at": data.get("expiresAt"),
            "confirm_url": data.get("confirmUrl"),
        },
    )


def _callback(data: dict[str, Any]) -> PaymentCallback:
    paid = data.get("paidTiyn")
    return PaymentCallback(
        reference=data["requestId"],
        status=VOCABULARY.status(data["status"]),
        amount=MONEY.decode(paid if paid is not None else data["amountTiyn"], "amountTiyn"),
        currency=data.get("currency"),
        decline_code=VOCABULARY.reason(data.get("declineReason")),
        provider_payment_id=data.get("pushId"),
        event_id=data.get("eventId"),
    )


SPEC = PaymentConnector(
    auth=ApiKey("X-BankApp-Key"),
    errors=ErrorMap(
        path=("error", "code"),
        codes={"PUSH_NOT_FOUND": "not_found", "DUPLICATE_REQUEST": "reference_reused"},
        lower=True,
    ),
    vocabulary=VOCABULARY,
    money=MONEY,
    signature=BANKAPP_SCHEME,
    methods=frozenset({"mobile_banking"}),
    create=Endpoint("POST", "/api/v1/push-requests"),
    status=Endpoint("GET", "/api/v1/push-requests/{reference}"),
    cancel=Endpoint("POST", "/api/v1/push-requests/{reference}/withdraw"),
    create_body=_create_body,
    outcome=push_outcome,
    callback=Callback("json", _callback),
)


class BankAppClient(PaymentProviderClient):
    spec = SPEC
