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

import json
from collections.abc import Mapping
from typing import Any

import httpx

from providers.errors import ProviderRejected
from providers.payments import CallbackNotUnderstood, PaymentCallback, PaymentOutcome
from providers.payments import PaymentProviderClient as _Base
from providers.signing import BANKAPP_SIGNATURE_HEADER, verify_bankapp
from providers.vocabulary import reason_code, translated, whole_minor

STATUSES = {
    "SENT": "pending",
    "ACCEPTED": "succeeded",
    "DECLINED": "declined",
    "TIMEOUT": "expired",
    "WITHDRAWN": "cancelled",
}
DECLINE_REASONS = {
    "USER_DECLINED": "declined_by_payer",
    "BANK_DECLINED": "do_not_honor",
    "NO_ACCOUNT": "not_a_customer",
    "NO_RESPONSE": "expired",
    "MERCHANT_WITHDREW": "cancelled",
}
ERRORS = {"PUSH_NOT_FOUND": "not_found", "DUPLICATE_REQUEST": "reference_reused"}


class BankAppClient(_Base):
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        super().__init__(http=http, base_url=base_url, provider=provider, secret=secret)
        self._headers = {"X-BankApp-Key": secret}

    def _error_code(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if not code:
            return f"http_{response.status_code}"
        return ERRORS.get(str(code), str(code).lower())

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
        if method != "mobile_banking":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        body = {
            "requestId": reference,
            "phone": details.get("phone", ""),
            "amountTiyn": amount,
            "currency": currency,
            "description": f"Deposit {reference}",
            "hookUrl": callback_url,
            "expiresInSec": expires_in_seconds,
        }
        response = await self._request("POST", "/api/v1/push-requests", json=body)
        return self._outcome(response.json())

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._push("GET", f"/api/v1/push-requests/{reference}")

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._push("POST", f"/api/v1/push-requests/{reference}/withdraw")

    async def _push(self, verb: str, path: str) -> PaymentOutcome | None:
        response = await self._lookup(verb, path)
        return None if response is None else self._outcome(response.json())

    def _outcome(self, data: Any) -> PaymentOutcome:
        return self._parsed(lambda answer: push_outcome(answer, app=self.provider), data)

    @staticmethod
    def verify_callback(
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        verify_bankapp(
            secret,
            body=body,
            signature=headers.get(BANKAPP_SIGNATURE_HEADER),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )

    @staticmethod
    def parse_callback(body: bytes) -> PaymentCallback:
        try:
            data = json.loads(body)
            paid = data.get("paidTiyn")
            return PaymentCallback(
                reference=data["requestId"],
                status=translated(data["status"], STATUSES, what="status"),
                amount=whole_minor(
                    paid if paid is not None else data["amountTiyn"], field="amountTiyn"
                ),
                currency=data.get("currency"),
                decline_code=reason_code(data.get("declineReason"), DECLINE_REASONS),
                provider_payment_id=data.get("pushId"),
                event_id=data.get("eventId"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


def push_outcome(data: dict[str, Any], *, app: str) -> PaymentOutcome:
    """A push request as `PaymentOutcome` (amounts in minor units, checked to be integers)."""
    paid = data.get("paidTiyn")
    return PaymentOutcome(
        reference=data["requestId"],
        payment_id=data["pushId"],
        method="mobile_banking",
        status=translated(data["status"], STATUSES, what="status"),
        amount=whole_minor(data["amountTiyn"], field="amountTiyn"),
        currency=data["currency"],
        amount_received=whole_minor(paid, field="amountTiyn") if paid is not None else None,
        decline_code=reason_code(data.get("declineReason"), DECLINE_REASONS),
        action={
            "type": "app_confirm",
            "app": app,
            "phone": data.get("phoneMasked"),
            "expires_at": data.get("expiresAt"),
            "confirm_url": data.get("confirmUrl"),
        },
    )
