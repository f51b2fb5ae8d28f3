"""CloudPayments KZ (cards, payouts to a card), behind the `CardProviderClient` and
`PayoutProviderClient` interfaces.

The API (root `config.base_url`, e.g. https://api.cloudpayments.kz; the simulator's
`/providers/{name}` otherwise): every call is a `POST` of JSON, authenticated with HTTP Basic
`public id : API secret`, answered `{Success, Message, Model}`.

- `payments/cards/tokenize` {CardNumber, CardExpDate: "MM/YY", CardCvv, Name, AccountId} ->
  Model {Token, CardFirstSix, CardLastFour, CardType, CardExpDate, IssuerBankCountry} (see the
  assumptions: CloudPayments itself takes card data only as a cryptogram)
- `payments/tokens/charge` {Amount, Currency, AccountId, Token, InvoiceId, TrInitiatorCode,
  PaymentScheduled} -> a transaction, or a 3-D Secure request (`Success: false`, Model
  {TransactionId, PaReq, AcsUrl}, no Status)
- `payments/cards/post3ds` {TransactionId, PaRes}: the payer's 3-D Secure result -> a transaction
- `payments/find` {InvoiceId}: the last transaction under our reference; `Success: false`,
  `Message: "Not found"` when there is none (the provider never saw it: None)
- `payments/void` {TransactionId}; `payments/refund` {TransactionId, Amount} (partial by amount)
- payouts `payments/token/topup` {Token, Amount, AccountId, Currency, InvoiceId} -> a transaction
  (`OperationType: CardPayout`); there is no payout cancel: a payout is found or it is not

A transaction (`Model`) carries TransactionId, Amount (a decimal number of tenge), Currency,
InvoiceId (our reference), Status `AwaitingAuthentication | Authorized | Completed | Cancelled |
Declined` and, declined, a ReasonCode (5051 insufficient funds, 5054 expired card, ...,
`REASONS`). A declined payment is `Success: false` WITH a Model: a decline, not an error.
`Success: false` with a Message and no Model is an error: a refusal before processing
(`ProviderRejected`) when the message is of a documented refusal kind (`... is required`,
`Invalid ...`, `... not found`: a validation error creates no transaction), any other message an
outcome we cannot know (`ProviderOutcomeUnknown`). HTTP statuses are classified as everywhere
(`providers.http`); an error answer's Message becomes its code (`Invalid Amount value` ->
`invalid_amount_value`). Amounts go out as JSON numbers with at most two decimals, checked to be
exact, and are read from the answer's literal digits (`10.00000` -> 1000 tiyn; `10.005` is an
answer we cannot read), never through binary floating point.

Idempotency: every call that may move money carries `X-Request-ID`, a UUIDv5 of
`kzpay:cloudpayments:{operation}:{our reference}` (`request_id`), so a retry of the same operation
is answered by CloudPayments with the first result, and different operations on one reference
never collide; `payments/find` carries none (an idempotent read must not be answered from a
cache). Notifications (Check, Pay, Fail, Cancel, Refund) are JSON signed with
`X-Content-HMAC: base64(HMAC-SHA256(webhook secret, raw body))`, with no timestamp (a replay is
caught by the event id, `{kind}:{TransactionId}`, and a callback is only a hint the workflow
checks by inquiry); they are answered `{"code": 0}` (`callback_ack`).

3-D Secure: the charge's `action_url` is the AcsUrl and its `action_form` PaReq and MD (the
TransactionId); the deposit's `next_action` asks the payer's browser to POST them, with our
TermUrl (`/v1/deposits/{id}/3ds`), to the ACS, which posts PaRes and MD back to TermUrl, where
`complete_3ds` finishes the payment (nothing is charged until it does).

Assumptions (unconfirmed, verify against the CloudPayments KZ sandbox before production): the
KZ API root and that it speaks exactly the documented RU API; that `payments/cards/tokenize`
exists: CloudPayments documents no server-side tokenization (card data travels as a
`CardCryptogramPacket` made by its checkout script, and a Token comes back from the first
`payments/cards/charge|auth`), so with a real account `tokenize` must be replaced by that first
cryptogram payment, whose Model.Token then feeds `payments/tokens/charge`; that one constant
AccountId (`ACCOUNT_ID`) for every card, payment and payout is acceptable (our interface carries
no player id; a token tied to the AccountId it was issued with is then always used with it);
that CloudPayments does not refuse a second payment under one InvoiceId and `payments/find`
answers the last one (so a charge retried after the X-Request-ID window is safe only because the
platform asks first); that the notification URLs
are set in the CloudPayments back office to `/v1/webhooks/{provider}` (the `callback_url` of a
charge is not sent: the API has no such field) and the notification format there is switched to
JSON (the default is a form, whose X-Content-HMAC is computed over the url-decoded body); that
X-Content-HMAC is keyed with the configured webhook secret (CloudPayments keys it with the API
secret: configure both the same for a real account); that the notifications can be told
apart by their fields alone (Pay carries TotalFee or GatewayName, Check neither, Cancel
no Status; Fail a non-zero ReasonCode; Refund `OperationType: Refund`); that X-Request-ID is
honoured for at least an hour and for every operation here, and accepts a UUID; that a Message
of the refusal kinds above is always sent before anything was processed; that CloudPayments has
no documented "down, nothing processed" answer (so every 5xx leaves the outcome unknown); that a
JSON Amount never needs more than two decimals; that `Authorized` (funds held by a two-stage
auth, which this connector never asks for) is best read as not yet paid (`requires_action`: never
credited, and the deposit's cancel voids it); that `payments/void` accepts a transaction awaiting
3-D Secure; that `payments/find` also finds payouts by their InvoiceId, and that a payout is
final when it answers (Authorized or AwaitingAuthentication there is read as still processing,
an outcome not known yet); the StatusCode numbers, which are never read (the Status name is).

Daily reports (reconciliation): `providers.reports.cloudpayments`, whose docstring gives
the report's format and what the public sources do not confirm about it (no report API of this
provider is publicly documented: the endpoint and format there are assumed).
"""

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel

from providers.amounts import InvalidAmount, from_decimal_string, to_decimal_string
from providers.card import (
    CardConnector,
    CardData,
    CardProviderClient,
    CardToken,
    ChargeOutcome,
    ChargeRequest,
)
from providers.connector import ApiKey, Endpoint, ErrorMap, Money, Vocabulary
from providers.errors import CardRejected, ProviderOutcomeUnknown, ProviderRejected
from providers.http import ProviderHttp, classify_transport_error
from providers.payments import CallbackNotUnderstood, PaymentCallback
from providers.payout import PayoutConnector, PayoutOutcome, PayoutProviderClient, PayoutRequest
from providers.signing import SignatureError, SignatureScheme

CONNECTOR_TYPE = "cloudpayments"

REQUEST_ID_HEADER = "X-Request-ID"
SIGNATURE_HEADER = "X-Content-HMAC"
# The payer id CloudPayments requires with a token (see the assumptions): one for every payment.
ACCOUNT_ID = "kzpay"
CALLBACK_ACK = b'{"code": 0}'

# -- statuses and decline reasons --------------------------------------------------------------

STATUSES = {
    "AwaitingAuthentication": "requires_action",
    "Authorized": "requires_action",  # held, not captured: never read as paid
    "Completed": "succeeded",
    "Cancelled": "cancelled",
    "Declined": "declined",
}

# ReasonCode -> ours (0 is Approved: no reason).
REASONS = {
    "5001": "refer_to_card_issuer",
    "5003": "invalid_merchant",
    "5004": "pick_up_card",
    "5005": "do_not_honor",
    "5006": "network_refused",
    "5007": "pick_up_card",
    "5012": "invalid_transaction",
    "5013": "invalid_amount",
    "5014": "invalid_card_number",
    "5015": "no_such_issuer",
    "5019": "transaction_error",
    "5030": "format_error",
    "5031": "issuer_not_supported",
    "5033": "expired_card",
    "5034": "suspected_fraud",
    "5036": "restricted_card",
    "5041": "lost_card",
    "5043": "stolen_card",
    "5051": "insufficient_funds",
    "5054": "expired_card",
    "5057": "transaction_not_permitted",
    "5062": "restricted_card",
    "5063": "security_violation",
    "5065": "exceeds_frequency_limit",
    "5082": "incorrect_cvv",
    "5091": "issuer_unavailable",
    "5092": "issuer_unavailable",
    "5096": "system_error",
    "5204": "unable_to_process",
    "5206": "authentication_failed",
    "5207": "authentication_unavailable",
    "5300": "acquirer_limit",
}

VOCABULARY = Vocabulary(statuses=STATUSES, reasons=REASONS, what="Status")

PAYOUT_STATUSES: dict[str, Literal["paid", "failed"] | None] = {
    "Completed": "paid",
    "Declined": "failed",
    "Cancelled": "failed",
    "Authorized": None,  # not final yet
    "AwaitingAuthentication": None,
}

CARD_TYPES = {"Visa": "visa", "MasterCard": "mastercard", "Mastercard": "mastercard"}

# Messages of an answer without a Model that CloudPayments documents as refusals made before
# anything was processed (a validation error, nothing under that id).
_REFUSAL = re.compile(r"(?:.+ is required|invalid .+|.+ is invalid|(?:.+ )?not found)", re.I)


def message_code(message: object) -> str:
    """A CloudPayments Message as our code: `Invalid Amount value` -> `invalid_amount_value`."""
    slug = re.sub(r"[^a-z0-9]+", "_", str(message).lower()).strip("_")
    return slug[:64] or "error"


def reason(code: object) -> str | None:
    """A ReasonCode in ours; 0 (Approved) and none are no reason."""
    if code is None or str(code) == "0":
        return None
    return VOCABULARY.reason(code)


# -- money -------------------------------------------------------------------------------------


def encode_amount(minor: int) -> float:
    """Tiyn as CloudPayments' JSON number of tenge: 500010 -> 5000.1, written `5000.1`. Refused
    unless the number is exactly the amount (beyond 15 significant digits it would not be)."""
    text = to_decimal_string(minor)
    value = float(text)
    if Decimal(repr(value)) != Decimal(text):
        raise InvalidAmount(f"{text} cannot be written exactly as a JSON number")
    return value


def decode_amount(value: object, name: str = "Amount") -> int:
    """A JSON number of tenge, read from its literal digits (`decoded` keeps them), as tiyn;
    trailing zeros are fine (`10.00000`), a third significant decimal is refused."""
    if isinstance(value, bool):
        raise InvalidAmount(f"{name} is not an amount: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidAmount(f"{name} is negative: {value!r}")
        return value * 100
    if not isinstance(value, str):
        raise InvalidAmount(f"{name} is not an amount: {value!r}")
    whole, dot, fraction = value.partition(".")
    fraction = fraction.rstrip("0")
    return from_decimal_string(f"{whole}.{fraction}" if dot and fraction else whole)


def decoded(content: bytes) -> Any:
    """A CloudPayments JSON answer, its decimal numbers kept as their literal text."""
    return json.loads(content, parse_float=str)


MONEY = Money("JSON number of tenge", encode=encode_amount, decode=decode_amount)


# -- idempotency -------------------------------------------------------------------------------

_REQUEST_IDS = uuid.NAMESPACE_URL


def request_id(operation: str, reference: str) -> str:
    """The X-Request-ID of one operation on one reference: the same on every retry, another for
    every other operation; never random."""
    return str(uuid.uuid5(_REQUEST_IDS, f"kzpay:cloudpayments:{operation}:{reference}"))


def basic_auth(public_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public_id}:{secret}".encode()).decode()


# -- answers -----------------------------------------------------------------------------------


def model_of(answer: Any) -> Any:
    """The Model of an answer that passed the envelope (a transaction or a 3-D Secure request)."""
    model = answer["Model"]
    if not isinstance(model, dict):
        raise TypeError(f"Model is not an object: {model!r}")
    return model


def transaction_outcome(model: Mapping[str, Any]) -> ChargeOutcome:
    """A transaction as `ChargeOutcome`."""
    status = VOCABULARY.status(model["Status"])
    return ChargeOutcome.model_validate(
        {
            "reference": str(model["InvoiceId"]),
            "charge_id": str(model["TransactionId"]),
            "status": status,
            "decline_code": reason(model.get("ReasonCode")) if status != "succeeded" else None,
            "amount": decode_amount(model["Amount"]),
            "currency": str(model["Currency"]),
        }
    )


def charge_outcome(answer: Any) -> ChargeOutcome:
    """A found, charged or 3-D Secure-completed transaction (the whole answer)."""
    return transaction_outcome(model_of(answer))


def payment_outcome(answer: Any, reference: str, amount: int, currency: str) -> ChargeOutcome:
    """The answer to `payments/tokens/charge`: a transaction, or the 3-D Secure request, which
    carries only TransactionId, PaReq and AcsUrl (the rest is the charge asked: `reference`,
    `amount` in tiyn, `currency`)."""
    model = model_of(answer)
    if "Status" in model:
        return transaction_outcome(model)
    if not model.get("AcsUrl") or not model.get("PaReq"):
        raise ValueError("a Model with neither Status nor AcsUrl and PaReq")
    return ChargeOutcome(
        reference=reference,
        charge_id=str(model["TransactionId"]),
        status="requires_action",
        amount=amount,
        currency=currency,
        action_url=str(model["AcsUrl"]),
        action_form={"PaReq": str(model["PaReq"]), "MD": str(model["TransactionId"])},
    )


def card_token(answer: Any) -> CardToken:
    model = model_of(answer)
    card_type = str(model["CardType"])
    return CardToken(
        token=str(model["Token"]),
        bin=str(model["CardFirstSix"]),
        last4=str(model["CardLastFour"]),
        scheme=CARD_TYPES.get(card_type, card_type.lower()),
        issuer_country=str(model["IssuerBankCountry"]),
    )


def payout_status(model: Mapping[str, Any]) -> Literal["paid", "failed"] | None:
    """A payout transaction's status in ours; None while it is not final."""
    status = model["Status"]
    if not isinstance(status, str) or status not in PAYOUT_STATUSES:
        raise KeyError(f"unknown Status {status!r}")
    return PAYOUT_STATUSES[status]


def payout_outcome(answer: Any) -> PayoutOutcome:
    """A final payout transaction as `PayoutOutcome` (`payout_status` tells a final one)."""
    model = model_of(answer)
    status = payout_status(model)
    if status is None:
        raise ValueError(f"payout {model.get('TransactionId')} is not final: {model['Status']}")
    failure = reason(model.get("ReasonCode")) or str(model["Status"]).lower()
    return PayoutOutcome(
        reference=str(model["InvoiceId"]),
        payout_id=str(model["TransactionId"]),
        status=status,
        failure_code=None if status == "paid" else failure,
        amount=decode_amount(model["Amount"]),
        currency=str(model["Currency"]),
    )


# -- notifications -----------------------------------------------------------------------------

NotificationKind = Literal["check", "pay", "fail", "cancel", "refund"]


def notification_kind(data: Mapping[str, Any]) -> NotificationKind:
    """Which notification a body is; CloudPayments sends each kind to its own URL and does not
    name it in the body, so it is told by its fields (see the assumptions)."""
    if data.get("OperationType") == "Refund":
        return "refund"
    if data.get("ReasonCode") not in (None, 0, "0"):
        return "fail"
    if "Status" not in data:
        return "cancel"
    if "TotalFee" in data or "GatewayName" in data:
        return "pay"
    return "check"


def _notification_status(kind: NotificationKind, data: Mapping[str, Any]) -> str:
    payout = data.get("OperationType") == "CardPayout"
    if kind == "pay":
        status = VOCABULARY.status(data["Status"])
        return "paid" if payout and status == "succeeded" else status
    return {
        "check": "pending",
        "fail": "failed" if payout else "declined",
        "cancel": "cancelled",
        "refund": "refunded",
    }[kind]


def notification(body: bytes) -> PaymentCallback:
    """A verified notification in our terms; CallbackNotUnderstood if it is not one."""
    try:
        data = decoded(body)
        if not isinstance(data, dict):
            raise TypeError("a notification is a JSON object")
        kind = notification_kind(data)
        amount = data.get("Amount")
        currency = data.get("Currency")
        return PaymentCallback(
            reference=str(data["InvoiceId"]),
            status=_notification_status(kind, data),
            amount=None if amount is None else decode_amount(amount),
            currency=None if currency is None else str(currency),
            decline_code=reason(data.get("ReasonCode")) if kind == "fail" else None,
            provider_payment_id=str(data["TransactionId"]),
            event_id=f"{kind}:{data['TransactionId']}",
        )
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise CallbackNotUnderstood(str(exc)) from exc


def sign(secret: str, body: bytes) -> str:
    """X-Content-HMAC: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(
    secret: str, *, body: bytes, signature: str | None, now: float, tolerance_seconds: int
) -> None:
    """No timestamp is signed: `now` and the tolerance have nothing to check."""
    if not signature:
        raise SignatureError("signature_missing", f"{SIGNATURE_HEADER} required")
    if not hmac.compare_digest(sign(secret, body), signature.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")


SIGNATURE = SignatureScheme(verify, {"signature": SIGNATURE_HEADER.lower()})


# -- request bodies ----------------------------------------------------------------------------


def token_body(card: CardData) -> dict[str, Any]:
    return {
        "CardNumber": card.number,
        "CardExpDate": f"{card.exp_month:02d}/{card.exp_year % 100:02d}",
        "CardCvv": card.cvc,
        "Name": card.holder,
        "AccountId": ACCOUNT_ID,
    }


def charge_body(charge: ChargeRequest) -> dict[str, Any]:
    return {
        "Amount": charge.amount,
        "Currency": charge.currency,
        "AccountId": ACCOUNT_ID,
        "Token": charge.token,
        "InvoiceId": charge.reference,
        "TrInitiatorCode": 1,  # the cardholder, depositing now
        "PaymentScheduled": 0,
    }


def payout_body(payout: PayoutRequest) -> dict[str, Any]:
    return {
        "Token": payout_token(payout),
        "Amount": payout.amount,
        "AccountId": ACCOUNT_ID,
        "Currency": payout.currency,
        "InvoiceId": payout.reference,
    }


def payout_token(payout: PayoutRequest) -> str:
    """The card token of a payout's destination: {"card": {"token": ...}} or {"card_token"}."""
    card = payout.destination.get("card")
    token = card.get("token") if isinstance(card, Mapping) else payout.destination.get("card_token")
    if not isinstance(token, str) or not token:
        raise ValueError("a CloudPayments payout goes to a card token: destination.card.token")
    return token


def _transaction_id(charge_id: str) -> int | str:
    return int(charge_id) if charge_id.isdigit() else charge_id


def _no_body(payout: PayoutRequest) -> dict[str, Any]:
    return {}


# -- the specs: endpoints, errors, money, statuses, signature -----------------------------------


@dataclass(frozen=True)
class MessageErrors(ErrorMap):
    """An error answer's code is its Message, in ours (`message_code`)."""

    def ours(self, code: object) -> str:
        return message_code(code)


ERRORS = MessageErrors(path=("Message",))
FIND = Endpoint("POST", "/payments/find", reference_field="InvoiceId")

SPEC = CardConnector(
    auth=ApiKey("Authorization"),  # Basic public id : API secret, made by the client
    errors=ERRORS,
    money=MONEY,
    vocabulary=VOCABULARY,
    signature=SIGNATURE,
    tokens=Endpoint("POST", "/payments/cards/tokenize"),
    charges=Endpoint("POST", "/payments/tokens/charge"),
    status=FIND,
    cancel=Endpoint("POST", "/payments/void"),
    token_body=token_body,
    charge_body=charge_body,
    token=card_token,
    outcome=charge_outcome,
)
POST3DS = Endpoint("POST", "/payments/cards/post3ds")
REFUND = Endpoint("POST", "/payments/refund")

PAYOUT_SPEC = PayoutConnector(
    auth=SPEC.auth,
    errors=ERRORS,
    money=MONEY,
    vocabulary=VOCABULARY,
    signature=SIGNATURE,
    pay=Endpoint("POST", "/payments/token/topup"),
    status=FIND,
    cancel=FIND,  # no payout cancel: what is there, or nothing (`cancel_payout`)
    pay_body=payout_body,
    cancel_body=_no_body,
    outcome=payout_outcome,
)


class RefundOutcome(BaseModel):
    reference: str
    refund_id: str  # the refund's own TransactionId
    charge_id: str
    amount: int
    currency: str


# -- the clients -------------------------------------------------------------------------------


class CloudPaymentsHttp(ProviderHttp):
    """What both CloudPayments clients share: Basic authentication, X-Request-ID, the
    `{Success, Message, Model}` envelope, exact decimal amounts, and the notifications."""

    def _setup(self) -> None:
        config, provider = self.config, self.provider
        public_id = config.merchant_id if config is not None and config.merchant_id else provider
        self._headers = {"Authorization": basic_auth(public_id, self._secret)}

    async def _send(
        self,
        endpoint: Endpoint,
        reference: str,
        body: Mapping[str, Any] | None = None,
        *,
        operation: str | None,
    ) -> Any:
        """One call; its answer past the envelope (see the module docstring). `operation` names
        the X-Request-ID (None: an idempotent read, sent without one)."""
        method, path, payload, _ = endpoint.request(reference, body)
        headers = dict(self._headers)
        if operation is not None:
            headers[REQUEST_ID_HEADER] = request_id(operation, reference)
        try:
            response = await self._http.request(
                method, self._base + path, json=payload, headers=headers, timeout=self._timeout
            )
        except httpx.TransportError as exc:
            raise classify_transport_error(self.provider, exc) from exc
        self._classify_status(response)
        answer = self._parsed(decoded, response.content)
        self._envelope(answer, response.status_code)
        return answer

    def _classify_status(self, response: httpx.Response) -> None:
        """As everywhere, except that no 503 is read as "down, nothing processed": CloudPayments
        documents no such answer, and a Message is free text (`Service unavailable` is no code
        of theirs)."""
        if response.status_code == 503:
            code = self.spec.errors.code_of(response)
            raise ProviderOutcomeUnknown(self.provider, "http_503", code)
        super()._classify_status(response)

    def _envelope(self, answer: Any, status: int) -> None:
        """`Success: false` without a Model is an error: a refusal of a documented kind, else
        an outcome we cannot know. With a Model it is a decline or a 3-D Secure request."""
        if not isinstance(answer, dict) or not isinstance(answer.get("Success"), bool):
            raise ProviderOutcomeUnknown(self.provider, "invalid_response", "no Success flag")
        if answer["Success"] or answer.get("Model") is not None:
            return
        message = answer.get("Message")
        if not isinstance(message, str) or not message.strip():
            raise ProviderOutcomeUnknown(
                self.provider, "invalid_response", "Success false without Model or Message"
            )
        code = message_code(message)
        if _REFUSAL.fullmatch(message.strip()):
            raise ProviderRejected(self.provider, code, message)
        detail = f"error inside an HTTP {status} answer: {message}"
        raise ProviderOutcomeUnknown(self.provider, code, detail)

    async def _find(self, reference: str) -> Any | None:
        """`payments/find` by InvoiceId; None when CloudPayments has nothing under it."""
        try:
            return await self._send(FIND, reference, operation=None)
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise

    @classmethod
    def verify_callback(
        cls,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        """Raise `providers.signing.SignatureError` unless X-Content-HMAC signs the raw body."""
        lowered = {key.lower(): value for key, value in headers.items()}
        SIGNATURE.check(secret, lowered, body, now=now, tolerance_seconds=tolerance_seconds)

    @classmethod
    def parse_callback(cls, body: bytes) -> PaymentCallback:
        """A verified notification in our terms; CallbackNotUnderstood if it is not."""
        return notification(body)

    @classmethod
    def callback_ack(cls) -> tuple[bytes, str]:
        """What CloudPayments expects back from every notification (`{"code": 0}`: accepted)."""
        return CALLBACK_ACK, "application/json"


class CloudPaymentsClient(CloudPaymentsHttp, CardProviderClient):
    spec: ClassVar[CardConnector] = SPEC

    async def tokenize(self, card: CardData) -> CardToken:
        # No reference: the X-Request-ID comes from the card itself, keyed with our secret so
        # that it reveals nothing of the card number.
        digest = hmac.new(
            self._secret.encode(),
            f"{card.number}|{card.exp_month}|{card.exp_year}".encode(),
            hashlib.sha256,
        ).hexdigest()
        try:
            answer = await self._send(
                self.spec.tokens, digest, self.spec.token_body(card), operation="tokenize"
            )
        except ProviderRejected as exc:
            raise CardRejected(exc.provider, exc.code, exc.detail) from exc
        return self._parsed(self.spec.token, answer)

    async def charge(
        self,
        *,
        reference: str,
        token: str,
        amount: int,
        currency: str,
        callback_url: str | None = None,
    ) -> ChargeOutcome:
        """One-stage payment by token; `callback_url` is not sent (the notification URLs are
        the back office's)."""
        charge = ChargeRequest(
            reference=reference,
            token=token,
            amount=self.spec.money.encode(amount),
            currency=currency,
            callback_url=callback_url,
        )
        answer = await self._send(
            self.spec.charges, reference, self.spec.charge_body(charge), operation="charge"
        )
        return self._parsed(lambda data: payment_outcome(data, reference, amount, currency), answer)

    async def complete_3ds(self, *, reference: str, charge_id: str, pa_res: str) -> ChargeOutcome:
        """The payer's 3-D Secure result (PaRes, posted by the ACS to our TermUrl with
        MD = TransactionId) for the charge under `reference`: the transaction as it ends."""
        body = {"TransactionId": _transaction_id(charge_id), "PaRes": pa_res}
        answer = await self._send(POST3DS, reference, body, operation="post3ds")
        return self._parsed(charge_outcome, answer)

    async def get_charge(self, reference: str) -> ChargeOutcome | None:
        answer = await self._find(reference)
        return None if answer is None else self._parsed(charge_outcome, answer)

    async def cancel_charge(self, reference: str) -> ChargeOutcome | None:
        """Void a charge still waiting (3-D Secure, or held): CloudPayments voids by
        TransactionId, so it is found first; a settled one is returned as it is, and one never
        seen is None (it cannot be closed: the caller waits out the processing window)."""
        found = await self.get_charge(reference)
        if found is None or found.status != "requires_action":
            return found
        body = {"TransactionId": _transaction_id(found.charge_id)}
        await self._send(self.spec.cancel, reference, body, operation="void")
        return await self.get_charge(reference)

    async def refund(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        refund_reference: str | None = None,
    ) -> RefundOutcome:
        """Refund `amount` (all or part) of the succeeded charge under `reference`. Idempotent
        per `refund_reference` (default: the reference and the amount; give one of its own to
        a second partial refund of the same amount)."""
        found = await self.get_charge(reference)
        if found is None:
            raise ProviderRejected(self.provider, "not_found", f"no charge {reference!r}")
        if found.status != "succeeded":
            raise ProviderRejected(self.provider, "not_refundable", found.status)
        if found.currency != currency:
            raise ProviderRejected(self.provider, "currency_mismatch", found.currency)
        body = {
            "TransactionId": _transaction_id(found.charge_id),
            "Amount": self.spec.money.encode(amount),
        }
        operation = f"refund:{refund_reference or f'{amount}{currency}'}"
        answer = await self._send(REFUND, reference, body, operation=operation)

        def read(data: Any) -> RefundOutcome:
            return RefundOutcome(
                reference=reference,
                refund_id=str(model_of(data)["TransactionId"]),
                charge_id=found.charge_id,
                amount=amount,
                currency=currency,
            )

        return self._parsed(read, answer)


class CloudPaymentsPayoutClient(CloudPaymentsHttp, PayoutProviderClient):
    """Payouts to a card token (`payments/token/topup`)."""

    spec: ClassVar[PayoutConnector] = PAYOUT_SPEC

    async def pay(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        method: str,
        destination: dict[str, Any],
    ) -> PayoutOutcome:
        if method != "card":
            raise ProviderRejected(self.provider, "unsupported_method", method)
        payout = self._payout(reference, amount, currency, method, destination)
        try:
            body = self.spec.pay_body(payout)
        except ValueError as exc:
            raise ProviderRejected(self.provider, "invalid_destination", str(exc)) from exc
        answer = await self._send(self.spec.pay, reference, body, operation="topup")
        return self._final(answer)

    async def get_payout(self, reference: str) -> PayoutOutcome | None:
        answer = await self._find(reference)
        return None if answer is None else self._final(answer)

    async def cancel_payout(self, *, reference: str, amount: int, currency: str) -> PayoutOutcome:
        """CloudPayments cannot cancel a payout: the one found, else `not_found` (the caller
        waits out the processing window before it trusts that nothing was paid)."""
        found = await self.get_payout(reference)
        if found is None:
            raise ProviderRejected(self.provider, "not_found", "no payout, and no payout cancel")
        return found

    def _final(self, answer: Any) -> PayoutOutcome:
        status = self._parsed(lambda data: payout_status(model_of(data)), answer)
        if status is None:
            raise ProviderOutcomeUnknown(self.provider, "processing", "payout not final yet")
        return self._parsed(self.spec.outcome, answer)


CLIENT = CloudPaymentsClient
PAYOUT_CLIENT = CloudPaymentsPayoutClient
