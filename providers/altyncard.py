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

from providers.card import (
    CardConnector,
    CardData,
    CardProviderClient,
    CardToken,
    ChargeOutcome,
    ChargeRequest,
)
from providers.connector import MINOR_UNITS, ApiKey, Endpoint, ErrorMap, Vocabulary

VOCABULARY = Vocabulary(
    what="state",
    statuses={
        "APPROVED": "succeeded",
        "REFUSED": "declined",
        "CHALLENGE_REQUIRED": "requires_action",
        "VOIDED": "cancelled",
    },
    reasons={
        "INSUFFICIENT_FUNDS": "insufficient_funds",
        "CARD_EXPIRED": "expired_card",
        "DO_NOT_HONOR": "do_not_honor",
        "THREE_DS_FAILED": "authentication_failed",
        "CHALLENGE_TIMEOUT": "expired",
        "MERCHANT_VOID": "cancelled_by_merchant",
    },
)


def _token_body(card: CardData) -> dict[str, Any]:
    return {
        "pan": card.number,
        "expiry": f"{card.exp_month:02d}/{card.exp_year}",
        "securityCode": card.cvc,
        "cardholder": card.holder,
    }


def _charge_body(charge: ChargeRequest) -> dict[str, Any]:
    return {
        "merchantReference": charge.reference,
        "cardToken": charge.token,
        "amount": {"minor": charge.amount, "currency": charge.currency},
        "notificationUrl": charge.callback_url,
    }


def card_token(data: Any) -> CardToken:
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
            "status": VOCABULARY.status(data["state"]),
            "decline_code": VOCABULARY.reason(data.get("refusalReason")),
            "amount": MINOR_UNITS.decode(data["amount"]["minor"], "amount.minor"),
            "currency": data["amount"]["currency"],
            "action_url": data.get("challengeUrl"),
        }
    )


SPEC = CardConnector(
    auth=ApiKey("X-Altyn-Key"),
    errors=ErrorMap(
        path=("fault", "code"),
        codes={
            "PAYMENT_NOT_FOUND": "not_found",
            "DUPLICATE_REFERENCE": "reference_reused",
            "INVALID_PAN": "invalid_card_number",
            "UNKNOWN_TOKEN": "unknown_token",
        },
        lower=True,
    ),
    vocabulary=VOCABULARY,
    money=MINOR_UNITS,
    tokens=Endpoint("POST", "/gateway/tokens"),
    charges=Endpoint("POST", "/gateway/payments"),
    status=Endpoint("GET", "/gateway/payments/{reference}"),
    cancel=Endpoint("POST", "/gateway/payments/{reference}/void"),
    token_body=_token_body,
    charge_body=_charge_body,
    token=card_token,
    outcome=payment_outcome,
)


class AltynCardClient(CardProviderClient):
    spec = SPEC
