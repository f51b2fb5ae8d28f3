"""KazBank's transfer-instructions API (bank transfers), behind the `PaymentProviderClient`
interface.

- `POST /v2/transfer-instructions` {orderId, sum: "5000.00", currency, payerIin?, callbackUrl,
  ttlSeconds} -> an instruction {instructionId, orderId, state, sum, paidSum, beneficiary, ...}
- `GET /v2/transfer-instructions/by-order/{orderId}`: status inquiry
- `DELETE /v2/transfer-instructions/by-order/{orderId}`: cancel an unpaid instruction

States NEW | PAID | REJECTED | EXPIRED | CANCELLED; errors {errorCode, errorMessage}; API key in
`X-Api-Key`; callbacks JSON signed `X-KazBank-Signature: sha256=<hex>` over `{unix ms}:{body}`.
Money is a decimal string of tenge on the wire and integer tiyn here (`providers.amounts`).
"""

import json
from collections.abc import Mapping
from typing import Any

import httpx

from providers.amounts import from_decimal_string, to_decimal_string
from providers.errors import ProviderRejected
from providers.payments import CallbackNotUnderstood, PaymentCallback, PaymentOutcome
from providers.payments import PaymentProviderClient as _Base
from providers.signing import KAZBANK_SIGNATURE_HEADER, KAZBANK_TIMESTAMP_HEADER, verify_kazbank
from providers.vocabulary import reason_code, translated

STATES = {
    "NEW": "pending",
    "PAID": "succeeded",
    "REJECTED": "declined",
    "EXPIRED": "expired",
    "CANCELLED": "cancelled",
}
REJECT_REASONS = {
    "PAYER_CANCELLED": "declined_by_payer",
    "BANK_REJECTED": "do_not_honor",
    "TTL_EXCEEDED": "expired",
    "MERCHANT_CANCELLED": "cancelled",
}
ERRORS = {"ORDER_NOT_FOUND": "not_found", "ORDER_CONFLICT": "reference_reused"}


class KazbankClient(_Base):
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        super().__init__(http=http, base_url=base_url, provider=provider, secret=secret)
        self._headers = {"X-Api-Key": secret}

    def _error_code(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        code = payload.get("errorCode") if isinstance(payload, dict) else None
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
        if method != "bank_transfer":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        body: dict[str, Any] = {
            "orderId": reference,
            "sum": to_decimal_string(amount),
            "currency": currency,
            "callbackUrl": callback_url,
            "ttlSeconds": expires_in_seconds,
        }
        if details.get("iin"):
            body["payerIin"] = details["iin"]
        response = await self._request("POST", "/v2/transfer-instructions", json=body)
        return self._outcome(response.json())

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._by_order("GET", reference)

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._by_order("DELETE", reference)

    async def _by_order(self, verb: str, reference: str) -> PaymentOutcome | None:
        response = await self._lookup(verb, f"/v2/transfer-instructions/by-order/{reference}")
        return None if response is None else self._outcome(response.json())

    def _outcome(self, data: Any) -> PaymentOutcome:
        return self._parsed(instruction_outcome, data)

    @staticmethod
    def verify_callback(
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        verify_kazbank(
            secret,
            body=body,
            signature=headers.get(KAZBANK_SIGNATURE_HEADER),
            timestamp=headers.get(KAZBANK_TIMESTAMP_HEADER),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )

    @staticmethod
    def parse_callback(body: bytes) -> PaymentCallback:
        try:
            data = json.loads(body)
            paid = data.get("paidSum")
            return PaymentCallback(
                reference=data["orderId"],
                status=translated(data["state"], STATES, what="state"),
                amount=from_decimal_string(paid if paid is not None else data["sum"]),
                currency=data.get("currency"),
                decline_code=reason_code(data.get("rejectReason"), REJECT_REASONS),
                provider_payment_id=data.get("instructionId"),
                event_id=data.get("eventId"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


def instruction_outcome(data: dict[str, Any]) -> PaymentOutcome:
    """An instruction as `PaymentOutcome` (amounts exact, in minor units)."""
    amount = from_decimal_string(data["sum"])
    paid = data.get("paidSum")
    beneficiary = data.get("beneficiary") or {}
    return PaymentOutcome(
        reference=data["orderId"],
        payment_id=data["instructionId"],
        method="bank_transfer",
        status=translated(data["state"], STATES, what="state"),
        amount=amount,
        currency=data["currency"],
        amount_received=from_decimal_string(paid) if paid is not None else None,
        decline_code=reason_code(data.get("rejectReason"), REJECT_REASONS),
        action={
            "type": "bank_transfer_instructions",
            "bank_name": beneficiary.get("bankName"),
            "bic": beneficiary.get("bic"),
            "iban": beneficiary.get("iban"),
            "beneficiary": beneficiary.get("name"),
            "reference": data["orderId"],
            "amount": amount,
            "currency": data["currency"],
            "expires_at": data.get("expiresAt"),
            "pay_url": data.get("payUrl"),
        },
    )
