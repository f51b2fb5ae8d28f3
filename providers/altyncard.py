"""AltynCard's card gateway API, behind the `CardProviderClient` interface.

- `POST /gateway/tokens` {pan, expiry: "MM/YYYY", securityCode, cardholder} -> {cardToken, bin,
  lastFour, brand: VISA | MASTERCARD | UNIONPAY, issuerCountry}
- `POST /gateway/payments` {merchantReference, cardToken, amount: {minor, currency},
  notificationUrl} -> a payment {paymentId, merchantReference, state, amount, refusalReason,
  challengeUrl}
- `GET /gateway/payments/{merchantReference}`: status inquiry
- `POST /gateway/payments/{merchantReference}/void`: abandon a payment waiting for 3-D Secure

States APPROVED | REFUSED | CHALLENGE_REQUIRED | VOIDED; errors {fault: {code, text}}; key in
`X-Altyn-Key`. Money is {minor: integer minor units, currency}, checked to be an integer.
3-D Secure callbacks keep the common signed format (`providers.signing.sign`).
"""

from typing import Any

import httpx

from providers.card import CardData, CardProviderClient, CardToken, ChargeOutcome
from providers.errors import CardRejected, ProviderRejected
from providers.vocabulary import reason_code, translated, whole_minor

STATES = {
    "APPROVED": "succeeded",
    "REFUSED": "declined",
    "CHALLENGE_REQUIRED": "requires_action",
    "VOIDED": "cancelled",
}
REFUSAL_REASONS = {
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "CARD_EXPIRED": "expired_card",
    "DO_NOT_HONOR": "do_not_honor",
    "THREE_DS_FAILED": "authentication_failed",
    "CHALLENGE_TIMEOUT": "expired",
    "MERCHANT_VOID": "cancelled_by_merchant",
}
ERRORS = {
    "PAYMENT_NOT_FOUND": "not_found",
    "DUPLICATE_REFERENCE": "reference_reused",
    "INVALID_PAN": "invalid_card_number",
    "UNKNOWN_TOKEN": "unknown_token",
}


class AltynCardClient(CardProviderClient):
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        super().__init__(http=http, base_url=base_url, provider=provider, secret=secret)
        self._headers = {"X-Altyn-Key": secret}

    def _error_code(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return f"http_{response.status_code}"
        fault = payload.get("fault") if isinstance(payload, dict) else None
        code = fault.get("code") if isinstance(fault, dict) else None
        if not code:
            return f"http_{response.status_code}"
        return ERRORS.get(str(code), str(code).lower())

    async def tokenize(self, card: CardData) -> CardToken:
        body = {
            "pan": card.number,
            "expiry": f"{card.exp_month:02d}/{card.exp_year}",
            "securityCode": card.cvc,
            "cardholder": card.holder,
        }
        try:
            response = await self._request("POST", "/gateway/tokens", json=body)
        except ProviderRejected as exc:
            raise CardRejected(exc.provider, exc.code, exc.detail) from exc
        return self._parsed(_card_token, response)

    async def charge(
        self,
        *,
        reference: str,
        token: str,
        amount: int,
        currency: str,
        callback_url: str | None = None,
    ) -> ChargeOutcome:
        body = {
            "merchantReference": reference,
            "cardToken": token,
            "amount": {"minor": amount, "currency": currency},
            "notificationUrl": callback_url,
        }
        response = await self._request("POST", "/gateway/payments", json=body)
        return self._outcome(response.json())

    async def get_charge(self, reference: str) -> ChargeOutcome | None:
        return await self._payment("GET", f"/gateway/payments/{reference}")

    async def cancel_charge(self, reference: str) -> ChargeOutcome | None:
        return await self._payment("POST", f"/gateway/payments/{reference}/void")

    async def _payment(self, verb: str, path: str) -> ChargeOutcome | None:
        response = await self._lookup(verb, path)
        return None if response is None else self._outcome(response.json())

    def _outcome(self, data: Any) -> ChargeOutcome:
        return self._parsed(payment_outcome, data)


def _card_token(response: httpx.Response) -> CardToken:
    data = response.json()
    return CardToken(
        token=data["cardToken"],
        bin=data["bin"],
        last4=data["lastFour"],
        scheme=str(data["brand"]).lower(),
        issuer_country=data["issuerCountry"],
    )


def payment_outcome(data: dict[str, Any]) -> ChargeOutcome:
    """An AltynCard payment as `ChargeOutcome` (amounts in minor units, checked to be integers)."""
    return ChargeOutcome.model_validate(
        {
            "reference": data["merchantReference"],
            "charge_id": data["paymentId"],
            "status": translated(data["state"], STATES, what="state"),
            "decline_code": reason_code(data.get("refusalReason"), REFUSAL_REASONS),
            "amount": whole_minor(data["amount"]["minor"], field="amount.minor"),
            "currency": data["amount"]["currency"],
            "action_url": data.get("challengeUrl"),
        }
    )
