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
    PaymentCallback,
    PaymentConnector,
    PaymentOutcome,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import TENGEWALLET_SCHEME

VOCABULARY = Vocabulary(
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
)
MONEY = DECIMAL_STRING


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


def invoice_outcome(data: dict[str, Any], provider: str) -> PaymentOutcome:
    """An invoice as `PaymentOutcome` (amounts exact, in minor units)."""
    paid = data.get("paid_total")
    valid_until = data.get("valid_until")
    expires_at = (
        datetime.fromtimestamp(int(valid_until), UTC).isoformat()
        if valid_until is not None
        else None
    )
    return PaymentOutcome(
        reference=data["merchant_order"],
        payment_id=data["invoice_id"],
        method="ewallet",
        status=VOCABULARY.status(data["status"]),
        amount=MONEY.decode(data["total"], "total"),
        currency=data["currency"],
        amount_received=MONEY.decode(paid, "paid_total") if paid is not None else None,
        decline_code=VOCABULARY.reason(data.get("reject_reason")),
        action={"type": "redirect", "url": data.get("confirm_url"), "expires_at": expires_at},
    )


def _callback(form: dict[str, str]) -> PaymentCallback:
    return PaymentCallback(
        reference=form["merchant_order"],
        status=VOCABULARY.status(form["status"]),
        amount=MONEY.decode(form.get("paid_total") or form["total"], "total"),
        currency=form.get("currency") or None,
        decline_code=VOCABULARY.reason(form.get("reject_reason") or None),
        provider_payment_id=form.get("invoice_id") or None,
        event_id=form.get("notification_id") or None,
    )


SPEC = PaymentConnector(
    auth=ApiKey("X-TW-Key"),
    errors=ErrorMap(
        path=("error",),
        codes={"invoice_not_found": "not_found", "duplicate_order": "reference_reused"},
    ),
    vocabulary=VOCABULARY,
    money=MONEY,
    signature=TENGEWALLET_SCHEME,
    methods=frozenset({"ewallet"}),
    create=Endpoint("POST", "/api/invoice/create", encoding="form"),
    status=Endpoint("POST", "/api/invoice/status", "form", reference_field="merchant_order"),
    cancel=Endpoint("POST", "/api/invoice/revoke", "form", reference_field="merchant_order"),
    create_body=_create_form,
    outcome=invoice_outcome,
    callback=Callback("form", _callback),
)


class TengeWalletClient(PaymentProviderClient):
    spec = SPEC
