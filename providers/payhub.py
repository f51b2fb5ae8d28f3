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

import json
from collections.abc import Mapping
from typing import Any

import httpx

from providers.errors import ProviderRejected
from providers.payments import CallbackNotUnderstood, PaymentCallback, PaymentOutcome
from providers.payments import PaymentProviderClient as _Base
from providers.signing import PAYHUB_SIGNATURE_HEADER, verify_payhub
from providers.vocabulary import reason_code, translated, whole_minor

STATUSES = {
    "OPEN": "pending",
    "COMPLETED": "succeeded",
    "FAILED": "declined",
    "EXPIRED": "expired",
    "CANCELED": "cancelled",
}
FAILURE_REASONS = {
    "CUSTOMER_ABANDONED": "declined_by_payer",
    "PAYMENT_REFUSED": "do_not_honor",
    "SESSION_EXPIRED": "expired",
    "MERCHANT_CANCELED": "cancelled",
}
ERRORS = {"SESSION_NOT_FOUND": "not_found", "ORDER_ID_REUSED": "reference_reused"}


class PayHubClient(_Base):
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        super().__init__(http=http, base_url=base_url, provider=provider, secret=secret)
        self._headers = {"X-PayHub-Key": secret}

    def _error_code(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        errors = payload.get("errors") if isinstance(payload, dict) else None
        first = errors[0] if isinstance(errors, list) and errors else None
        code = first.get("code") if isinstance(first, dict) else None
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
        if method != "aggregator":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        body: dict[str, Any] = {
            "order_id": reference,
            "amount_minor": amount,
            "currency": currency,
            "webhook_url": callback_url,
            "ttl_seconds": expires_in_seconds,
        }
        if details.get("return_url"):
            body["success_url"] = details["return_url"]
        response = await self._request("POST", "/checkout/sessions", json=body)
        return self._outcome(response.json())

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._session("GET", f"/checkout/sessions/by-order/{reference}")

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._session("POST", f"/checkout/sessions/by-order/{reference}/cancel")

    async def _session(self, verb: str, path: str) -> PaymentOutcome | None:
        response = await self._lookup(verb, path)
        return None if response is None else self._outcome(response.json())

    def _outcome(self, data: Any) -> PaymentOutcome:
        return self._parsed(session_outcome, data)

    @staticmethod
    def verify_callback(
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        verify_payhub(
            secret,
            body=body,
            signature=headers.get(PAYHUB_SIGNATURE_HEADER),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )

    @staticmethod
    def parse_callback(body: bytes) -> PaymentCallback:
        try:
            envelope = json.loads(body)
            session = envelope["session"]
            captured = session.get("captured_minor")
            return PaymentCallback(
                reference=session["order_id"],
                status=translated(session["status"], STATUSES, what="status"),
                amount=whole_minor(
                    captured if captured is not None else session["amount_minor"],
                    field="amount_minor",
                ),
                currency=session.get("currency"),
                decline_code=reason_code(session.get("failure_reason"), FAILURE_REASONS),
                provider_payment_id=session.get("session_id"),
                event_id=envelope.get("id"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


def session_outcome(data: dict[str, Any]) -> PaymentOutcome:
    """A checkout session as `PaymentOutcome` (amounts in minor units, checked to be integers)."""
    captured = data.get("captured_minor")
    return PaymentOutcome(
        reference=data["order_id"],
        payment_id=data["session_id"],
        method="aggregator",
        status=translated(data["status"], STATUSES, what="status"),
        amount=whole_minor(data["amount_minor"], field="amount_minor"),
        currency=data["currency"],
        amount_received=whole_minor(captured, field="amount_minor")
        if captured is not None
        else None,
        decline_code=reason_code(data.get("failure_reason"), FAILURE_REASONS),
        action={
            "type": "redirect",
            "url": data["checkout_url"],
            "expires_at": data.get("expires_at"),
        },
    )
