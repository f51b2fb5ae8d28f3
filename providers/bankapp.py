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
    Fields,
    PaymentConnector,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import BANKAPP_SCHEME


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


def _action(push: dict[str, Any], provider: str) -> dict[str, Any]:
    """Confirm in the provider's app, on the phone the push went to."""
    return {
        "type": "app_confirm",
        "app": provider,
        "phone": push.get("phoneMasked"),
        "expires_at": push.get("expiresAt"),
        "confirm_url": push.get("confirmUrl"),
    }


SPEC = PaymentConnector(
    auth=ApiKey("X-BankApp-Key"),
    errors=ErrorMap(
        path=("error", "code"),
        codes={"PUSH_NOT_FOUND": "not_found", "DUPLICATE_REQUEST": "reference_reused"},
        lower=True,
    ),
    vocabulary=Vocabulary(
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
    ),
    money=MINOR_UNITS,
    signature=BANKAPP_SCHEME,
    create=Endpoint("POST", "/api/v1/push-requests"),
    status=Endpoint("GET", "/api/v1/push-requests/{reference}"),
    cancel=Endpoint("POST", "/api/v1/push-requests/{reference}/withdraw"),
    create_body=_create_body,
    fields=Fields(
        method="mobile_banking",
        reference="requestId",
        payment_id="pushId",
        status="status",
        amount="amountTiyn",
        received="paidTiyn",
        currency="currency",
        decline="declineReason",
        action=_action,
    ),
    callback=Callback("json", event_id="eventId"),
)


class BankAppClient(PaymentProviderClient):
    spec = SPEC
