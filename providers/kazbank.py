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
from providers.signing import KAZBANK_SCHEME

VOCABULARY = Vocabulary(
    what="state",
    statuses={
        "NEW": "pending",
        "PAID": "succeeded",
        "REJECTED": "declined",
        "EXPIRED": "expired",
        "CANCELLED": "cancelled",
    },
    reasons={
        "PAYER_CANCELLED": "declined_by_payer",
        "BANK_REJECTED": "do_not_honor",
        "TTL_EXCEEDED": "expired",
        "MERCHANT_CANCELLED": "cancelled",
    },
)
MONEY = DECIMAL_STRING


def _create_body(payment: PaymentRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "orderId": payment.reference,
        "sum": payment.amount,
        "currency": payment.currency,
        "callbackUrl": payment.callback_url,
        "ttlSeconds": payment.expires_in_seconds,
    }
    if payment.details.get("iin"):
        body["payerIin"] = payment.details["iin"]
    return body


def instruction_outcome(data: dict[str, Any], provider: str) -> PaymentOutcome:
    """An instruction as `PaymentOutcome` (amounts exact, in minor units)."""
    amount = MONEY.decode(data["sum"], "sum")
    paid = data.get("paidSum")
    beneficiary = data.get("beneficiary") or {}
    return PaymentOutcome(
        reference=data["orderId"],
        payment_id=data["instructionId"],
        method="bank_transfer",
        status=VOCABULARY.status(data["state"]),
        amount=amount,
        currency=data["currency"],
        amount_received=MONEY.decode(paid, "paidSum") if paid is not None else None,
        decline_code=VOCABULARY.reason(data.get("rejectReason")),
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


def _callback(data: dict[str, Any]) -> PaymentCallback:
    paid = data.get("paidSum")
    return PaymentCallback(
        reference=data["orderId"],
        status=VOCABULARY.status(data["state"]),
        amount=MONEY.decode(paid if paid is not None else data["sum"], "sum"),
        currency=data.get("currency"),
        decline_code=VOCABULARY.reason(data.get("rejectReason")),
        provider_payment_id=data.get("instructionId"),
        event_id=data.get("eventId"),
    )


SPEC = PaymentConnector(
    auth=ApiKey("X-Api-Key"),
    errors=ErrorMap(
        path=("errorCode",),
        codes={"ORDER_NOT_FOUND": "not_found", "ORDER_CONFLICT": "reference_reused"},
        lower=True,
    ),
    vocabulary=VOCABULARY,
    money=MONEY,
    signature=KAZBANK_SCHEME,
    methods=frozenset({"bank_transfer"}),
    create=Endpoint("POST", "/v2/transfer-instructions"),
    status=Endpoint("GET", "/v2/transfer-instructions/by-order/{reference}"),
    cancel=Endpoint("DELETE", "/v2/transfer-instructions/by-order/{reference}"),
    create_body=_create_body,
    outcome=instruction_outcome,
    callback=Callback("json", _callback),
)


class KazbankClient(PaymentProviderClient):
    spec = SPEC
