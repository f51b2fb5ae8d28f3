"""TengeWallet's invoice API (e-wallet), behind the `PaymentProviderClient` interface.

Requests are forms (`application/x-www-form-urlencoded`), answers JSON:
- `POST /api/invoice/create` merchant_order, total ("2500.00"), currency, wallet, notify_url,
  return_url?, lifetime (seconds) -> an invoice {invoice_id, merchant_order, status, total,
  paid_total, reject_reason, confirm_url, valid_until (unix seconds)}
- `POST /api/invoice/status` merchant_order: status inquiry
- `POST /api/invoice/revoke` merchant_order: cancel an unconfirmed invoice

Statuses AWAITING | COMPLETED | REJECTED | EXPIRED | REVOKED; errors {error, error_description};
key in `X-TW-Key`; callbacks are forms signed `X-TW-Signature: <base64>` over
`{ISO timestamp}\\n{body}` with the timestamp in `X-TW-Timestamp`.
"""

from datetime import UTC, datetime
from typing import Any

from providers.connector import DECIMAL_STRING, ApiKey, Endpoint, ErrorMap, Vocabulary
from providers.payments import (
    Callback,
    Fields,
    PaymentConnector,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import TENGEWALLET_SCHEME


def _create_form(payment: PaymentRequest) -> dict[str, str]:
    form = {
        "merchant_order": payment.reference,
        "total": payment.amount,
        "currency": payment.currency,
        "wallet": payment.details.get("account", ""),
        "notify_url": payment.callback_url,
        "lifetime": str(payment.expires_in_seconds),
    }
    if payment.details.get("return_url"):
        form["return_url"] = payment.details["return_url"]
    return form


def _action(invoice: dict[str, Any], provider: str) -> dict[str, Any]:
    """The wallet's confirmation page, open until `valid_until` (unix seconds)."""
    valid_until = invoice.get("valid_until")
    expires_at = (
        datetime.fromtimestamp(int(valid_until), UTC).isoformat()
        if valid_until is not None
        else None
    )
    return {"type": "redirect", "url": invoice.get("confirm_url"), "expires_at": expires_at}


SPEC = PaymentConnector(
    auth=ApiKey("X-TW-Key"),
    errors=ErrorMap(
        path=("error",),
        codes={"invoice_not_found": "not_found", "duplicate_order": "reference_reused"},
    ),
    vocabulary=Vocabulary(
        statuses={
            "AWAITING": "pending",
            "COMPLETED": "succeeded",
            "REJECTED": "declined",
            "EXPIRED": "expired",
            "REVOKED": "cancelled",
        },
        reasons={
            "NO_FUNDS": "insufficient_funds",
            "USER_DECLINED": "declined_by_payer",
            "WALLET_REJECTED": "do_not_honor",
            "LIFETIME_EXCEEDED": "expired",
            "MERCHANT_REVOKED": "cancelled",
        },
    ),
    money=DECIMAL_STRING,
    signature=TENGEWALLET_SCHEME,
    create=Endpoint("POST", "/api/invoice/create", encoding="form"),
    status=Endpoint("POST", "/api/invoice/status", "form", reference_field="merchant_order"),
    cancel=Endpoint("POST", "/api/invoice/revoke", "form", reference_field="merchant_order"),
    create_body=_create_form,
    fields=Fields(
        method="ewallet",
        reference="merchant_order",
        payment_id="invoice_id",
        status="status",
        amount="total",
        received="paid_total",
        currency="currency",
        decline="reject_reason",
        action=_action,
    ),
    callback=Callback("form", event_id="notification_id"),
)


class TengeWalletClient(PaymentProviderClient):
    spec = SPEC
