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

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx

from providers.amounts import from_decimal_string, to_decimal_string
from providers.errors import ProviderRejected
from providers.payments import CallbackNotUnderstood, PaymentCallback, PaymentOutcome
from providers.payments import PaymentProviderClient as _Base
from providers.signing import (
    TENGEWALLET_SIGNATURE_HEADER,
    TENGEWALLET_TIMESTAMP_HEADER,
    verify_tengewallet,
)
from providers.vocabulary import reason_code, translated

STATUSES = {
    "AWAITING": "pending",
    "COMPLETED": "succeeded",
    "REJECTED": "declined",
    "EXPIRED": "expired",
    "REVOKED": "cancelled",
}
REJECT_REASONS = {
    "NO_FUNDS": "insufficient_funds",
    "USER_DECLINED": "declined_by_payer",
    "WALLET_REJECTED": "do_not_honor",
    "LIFETIME_EXCEEDED": "expired",
    "MERCHANT_REVOKED": "cancelled",
}
ERRORS = {"invoice_not_found": "not_found", "duplicate_order": "reference_reused"}


class TengeWalletClient(_Base):
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        super().__init__(http=http, base_url=base_url, provider=provider, secret=secret)
        self._headers = {"X-TW-Key": secret}

    def _error_code(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        code = payload.get("error") if isinstance(payload, dict) else None
        if not code:
            return f"http_{response.status_code}"
        return ERRORS.get(str(code), str(code))

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
        if method != "ewallet":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        form = {
            "merchant_order": reference,
            "total": to_decimal_string(amount),
            "currency": currency,
            "wallet": details.get("account", ""),
            "notify_url": callback_url,
            "lifetime": str(expires_in_seconds),
        }
        if details.get("return_url"):
            form["return_url"] = details["return_url"]
        response = await self._request("POST", "/api/invoice/create", data=form)
        return self._outcome(response.json())

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._invoice("status", reference)

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._invoice("revoke", reference)

    async def _invoice(self, verb: str, reference: str) -> PaymentOutcome | None:
        response = await self._lookup(
            "POST", f"/api/invoice/{verb}", data={"merchant_order": reference}
        )
        return None if response is None else self._outcome(response.json())

    def _outcome(self, data: Any) -> PaymentOutcome:
        return self._parsed(invoice_outcome, data)

    @staticmethod
    def verify_callback(
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        verify_tengewallet(
            secret,
            body=body,
            signature=headers.get(TENGEWALLET_SIGNATURE_HEADER),
            timestamp=headers.get(TENGEWALLET_TIMESTAMP_HEADER),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )

    @staticmethod
    def parse_callback(body: bytes) -> PaymentCallback:
        try:
            parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
            form = {k: v[-1] for k, v in parsed.items()}
            paid = form.get("paid_total") or form["total"]
            return PaymentCallback(
                reference=form["merchant_order"],
                status=translated(form["status"], STATUSES, what="status"),
                amount=from_decimal_string(paid),
                currency=form.get("currency") or None,
                decline_code=reason_code(form.get("reject_reason") or None, REJECT_REASONS),
                provider_payment_id=form.get("invoice_id") or None,
                event_id=form.get("notification_id") or None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


def invoice_outcome(data: dict[str, Any]) -> PaymentOutcome:
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
        status=translated(data["status"], STATUSES, what="status"),
        amount=from_decimal_string(data["total"]),
        currency=data["currency"],
        amount_received=from_decimal_string(paid) if paid is not None else None,
        decline_code=reason_code(data.get("reject_reason"), REJECT_REASONS),
        action={"type": "redirect", "url": data.get("confirm_url"), "expires_at": expires_at},
    )
