"""KZQR's dynamic-QR API (QR payments), behind the `PaymentProviderClient` interface.

Every answer is an envelope: {result: "OK", data: <qr order>} or {result: "ERROR", error: {code,
text}} with numeric codes (1404 no such order, 1409 merchant_ref reused).
- `POST /merchant/v3/qr` {merchant_ref, amount: {value: "2500.00", currency}, notify_url, ttl_sec}
  -> a QR order {qr_id, merchant_ref, state, amount, paid, fail_code, qr_string, expire_at}
- `GET /merchant/v3/qr?merchant_ref=...`: status inquiry (a query parameter, not a path)
- `POST /merchant/v3/qr/close` {merchant_ref}: close an unpaid QR

States ACTIVE | PAID | FAILED | EXPIRED | CLOSED; token in `X-KZQR-Token`; callbacks JSON
{type, notification_id, data: <qr order>} signed `X-KZQR-Signature: <hex HMAC-SHA512>` over
`{X-KZQR-Nonce}|{X-KZQR-Timestamp}|{body}`. Money is {value: decimal string, currency}
(`providers.amounts`).
"""

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from providers.amounts import from_decimal_string, to_decimal_string
from providers.errors import ProviderRejected
from providers.payments import CallbackNotUnderstood, PaymentCallback, PaymentOutcome
from providers.payments import PaymentProviderClient as _Base
from providers.signing import (
    KZQR_NONCE_HEADER,
    KZQR_SIGNATURE_HEADER,
    KZQR_TIMESTAMP_HEADER,
    verify_kzqr,
)
from providers.vocabulary import reason_code, translated

STATES = {
    "ACTIVE": "pending",
    "PAID": "succeeded",
    "FAILED": "declined",
    "EXPIRED": "expired",
    "CLOSED": "cancelled",
}
FAIL_CODES = {
    "PAYER_REFUSED": "declined_by_payer",
    "ISSUER_DECLINED": "do_not_honor",
    "QR_EXPIRED": "expired",
    "MERCHANT_CLOSED": "cancelled",
}
ERRORS = {"1404": "not_found", "1409": "reference_reused"}


class KzqrClient(_Base):
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        super().__init__(http=http, base_url=base_url, provider=provider, secret=secret)
        self._headers = {"X-KZQR-Token": secret}

    def _error_code(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if code is None:
            return f"http_{response.status_code}"
        return ERRORS.get(str(code), f"kzqr_{code}")

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
        if method != "qr":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        body = {
            "merchant_ref": reference,
            "amount": {"value": to_decimal_string(amount), "currency": currency},
            "notify_url": callback_url,
            "ttl_sec": expires_in_seconds,
        }
        response = await self._request("POST", "/merchant/v3/qr", json=body)
        return self._outcome(response.json())

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        query = urlencode({"merchant_ref": reference})
        return await self._order("GET", f"/merchant/v3/qr?{query}", None)

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._order("POST", "/merchant/v3/qr/close", {"merchant_ref": reference})

    async def _order(
        self, verb: str, path: str, body: dict[str, str] | None
    ) -> PaymentOutcome | None:
        response = await self._lookup(verb, path, json=body)
        return None if response is None else self._outcome(response.json())

    def _outcome(self, envelope: Any) -> PaymentOutcome:
        return self._parsed(_enveloped_outcome, envelope)

    @staticmethod
    def verify_callback(
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        verify_kzqr(
            secret,
            body=body,
            signature=headers.get(KZQR_SIGNATURE_HEADER),
            nonce=headers.get(KZQR_NONCE_HEADER),
            timestamp=headers.get(KZQR_TIMESTAMP_HEADER),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )

    @staticmethod
    def parse_callback(body: bytes) -> PaymentCallback:
        try:
            envelope = json.loads(body)
            data = envelope["data"]
            money = data.get("paid") or data["amount"]
            return PaymentCallback(
                reference=data["merchant_ref"],
                status=translated(data["state"], STATES, what="state"),
                amount=from_decimal_string(money["value"]),
                currency=money.get("currency"),
                decline_code=reason_code(data.get("fail_code"), FAIL_CODES),
                provider_payment_id=data.get("qr_id"),
                event_id=envelope.get("notification_id"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


def _enveloped_outcome(envelope: Any) -> PaymentOutcome:
    """Every answer is `{result: "OK", data}`; anything else is not an outcome."""
    if envelope.get("result") != "OK":
        raise ValueError(f"result is {envelope.get('result')!r}")
    return qr_outcome(envelope["data"])


def qr_outcome(data: dict[str, Any]) -> PaymentOutcome:
    """A QR order as `PaymentOutcome` (amounts exact, in minor units)."""
    paid = data.get("paid")
    return PaymentOutcome(
        reference=data["merchant_ref"],
        payment_id=data["qr_id"],
        method="qr",
        status=translated(data["state"], STATES, what="state"),
        amount=from_decimal_string(data["amount"]["value"]),
        currency=data["amount"]["currency"],
        amount_received=from_decimal_string(paid["value"]) if paid is not None else None,
        decline_code=reason_code(data.get("fail_code"), FAIL_CODES),
        action={"type": "qr", "payload": data["qr_string"], "expires_at": data.get("expire_at")},
    )
