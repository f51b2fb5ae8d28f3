"""KazBank's transfer-instructions API (bank transfers), behind the `PaymentProviderClient`
interface.

- `POST /v2/transfer-instructions` {orderId, sum: "5000.00", currency, payerIin?, callbackUrl,
  ttlSeconds} -> an instruction {instructionId, orderId, state, sum, paidSum, beneficiary, ...}
- `GET /v2/transfer-instructions/by-order/{orderId}`: status inquiry
- `DELETE /v2/transfer-instructions/by-order/{orderId}`: cancel an unpaid instruction

States NEW | PAID | REJECTED | EXPIRED | CANCELLED; errors {errorCode, errorMessage}; API key in
`X-Api-Key`; callbacks JSON signed `X-KazBank-Signature: sha256=<hex>` over `{unix ms}:{body}`.
Money is a decimal string of tenge on the wire and integer tiyn here (`providers.amounts`).
The statement of the operator's account (camt.053, CSV): `providers.reports.kazbank`.
"""

from typing import Any

from providers.connector import DECIMAL_STRING, ApiKey, Endpoint, ErrorMap, Vocabulary
from providers.payments import (
    Callback,
    Fields,
    PaymentConnector,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import KAZBANK_SCHEME


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


def _action(instruction: dict[str, Any], provider: str) -> dict[str, Any]:
    """Where and what to transfer."""
    beneficiary = instruction.get("beneficiary") or {}
    return {
        "type": "bank_transfer_instructions",
        "bank_name": beneficiary.get("bankName"),
        "bic": beneficiary.get("bic"),
        "iban": beneficiary.get("iban"),
        "beneficiary": beneficiary.get("name"),
        "reference": instruction["orderId"],
        "amount": DECIMAL_STRING.decode(instruction["sum"], "sum"),
        "currency": instruction["currency"],
        "expires_at": instruction.get("expiresAt"),
        "pay_url": instruction.get("payUrl"),
    }


SPEC = PaymentConnector(
    auth=ApiKey("X-Api-Key"),
    errors=ErrorMap(
        path=("errorCode",),
        codes={"ORDER_NOT_FOUND": "not_found", "ORDER_CONFLICT": "reference_reused"},
        lower=True,
    ),
    vocabulary=Vocabulary(
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
    ),
    money=DECIMAL_STRING,
    signature=KAZBANK_SCHEME,
    create=Endpoint("POST", "/v2/transfer-instructions"),
    status=Endpoint("GET", "/v2/transfer-instructions/by-order/{reference}"),
    cancel=Endpoint("DELETE", "/v2/transfer-instructions/by-order/{reference}"),
    create_body=_create_body,
    fields=Fields(
        method="bank_transfer",
        reference="orderId",
        payment_id="instructionId",
        status="state",
        amount="sum",
        received="paidSum",
        currency="currency",
        decline="rejectReason",
        action=_action,
    ),
    callback=Callback("json", event_id="eventId"),
)


class KazbankClient(PaymentProviderClient):
    spec = SPEC
