"""Kaspi QR / Kaspi Pay (QR payments and payment requests to the customer's phone), behind the
`PaymentProviderClient` interface. One connector type, two providers: `kaspi_qr` (method qr) and
`kaspi_pay` (method mobile_banking).

Every answer is an envelope `{StatusCode: 0, Data: {...}, Message}`; an error is a non-zero
StatusCode, inside an HTTP 200 as much as under a 4xx/5xx. Paths are relative to the API root of
the configured scheme (`base_url`, e.g. `https://qrapi-cert-ip.kaspi.kz/r3/v01`; at the simulator
`{simulator_url}/providers/{name}`); the key goes in `Api-Key`, and for the strongest scheme the
client certificate (`client_cert_file` / `client_key_file`, mutual TLS, wired in
`providers.registry.build_client`). Every body carries `OrganizationBin` (`merchant_id`) and
`DeviceToken` (`api_secret`: the token of the device registered at the trade point).

- `POST qr/create` {OrganizationBin, DeviceToken, Amount, ExternalId} -> {QrToken, ExpireDate,
  QrPaymentId, PaymentMethods, QrPaymentBehaviorOptions}: a QR for the player to scan.
- `POST qr/create-link` (same body; `details["kaspi_flow"] == "link"`) -> {PaymentLink,
  ExpireDate, PaymentId, PaymentMethods, PaymentBehaviorOptions}: a link to open in the app.
- `POST remote/create` {..., PhoneNumber, Comment} -> {QrPaymentId}: a payment request pushed
  to the customer's Kaspi app (`details["phone"]`, +77XXXXXXXXX).
- `GET payment/status?ExternalId=&DeviceToken=` -> {QrPaymentId, ExternalId, Status, Amount,
  ExpireDate, QrToken | PaymentLink, ProductType, LoanOfferName, LoanTerm}: every inquiry by our
  reference; then, once Processed, `GET payment/details?QrPaymentId=&DeviceToken=` ->
  {QrPaymentId, TotalAmount, AvailableReturnAmount, TransactionDate, ProductType,
  LoanOfferName, LoanTerm}.
- `POST remote/cancel` {OrganizationBin, DeviceToken, QrPaymentId} -> {Status}: close an unpaid
  payment (after the lookup: Kaspi's id is needed).
- `POST payment/return` {OrganizationBin, DeviceToken, QrPaymentId, Amount} ->
  {ReturnOperationId}: a refund, whole or partial (`refund`).

Statuses: QrTokenCreated, RemotePaymentCreated and Wait (scanned or opened, being confirmed) are
pending, Processed succeeded, Error declined (`decline_code` "kaspi_error": Kaspi gives no
reason), Expired expired, RemotePaymentCanceled cancelled. StatusCodes (`STATUS_CODES`): refusals
before processing are `ProviderRejected` (-1501 device not found, -1502 device disabled, -1503,
-10000 no client certificate, -14000002, -99000002, -99000003 trade point problems, -99000005
return above the purchase, -99000011 wrong purchase status, -99000020 no partial return,
990000018, 990000026, 990000028 wrong amount, 990000033 no payment methods); -1601 and
-99000001 (purchase not found) are "not found" (an inquiry answers None); -999 (service
unavailable) is not processed (`ProviderUnreachable`, as a documented 503 "down" is); -99000006
(return failed, try again) and every code not listed leave the outcome unknown. Money is decimal
tenge as JSON numbers (`TENGE`, exact: an answer is read with decimals, never floats); Kaspi
knows only KZT. Kaspi sends no callbacks: `verify_callback` refuses every one, and the platform
polls (as it always does). How a payment was funded (Kaspi Gold, or Kaspi Red / Kredit /
instalments: ProductType, LoanOfferName, LoanTerm) is kept in the outcome's `funding`.

Assumptions (not confirmed against Kaspi's own documentation; verify before production): the
inquiry by our reference, `GET payment/status?ExternalId=` (documented is only
`payment/status/{QrPaymentId}`, which needs Kaspi's id and so local storage), answering with the
payment's QrPaymentId, ExternalId, ordered Amount, ExpireDate and, for a QR payment, its QrToken or
PaymentLink (so a payment found by inquiry still shows the player what to scan); ExternalId
accepted by `remote/create` as by `qr/create`; `remote/cancel` closing an unpaid QR payment as well
as a remote one, and answering the status a paid one keeps; the status names Expired (time ran
out, also for a QR never scanned) and RemotePaymentCanceled (closed by `remote/cancel`, also for a
QR); Error carrying no decline reason; PhoneNumber as the 10 national digits ("7011234567");
`payment/details` answering only for Processed payments, with the funding fields (ProductType
values Gold, Red, Loan...: anything but Gold, or a LoanOfferName or LoanTerm, counts as financed;
LoanTerm in months); ReturnOperationId inside `Data`; the codes' meanings as public SDKs list them
(990000033 also seen written 99000033, both read as a refusal); `Api-Key` accepted on every
scheme alongside the client certificate; no idempotency key on `payment/return`, so `refund` is
never retried here and an unknown outcome is settled by reading `AvailableReturnAmount`
(`get_refundable`) before asking again, and -99000006 ("return failed, try again") read as an
unknown outcome for that reason; no lifetime or callback URL in the create bodies (Kaspi's own
QrCodeScanWaitTimeout applies, our `expires_in_seconds` is not sent); the QrToken being the text
to encode in the QR; the DeviceToken kept in `api_secret` and the BIN in `merchant_id` (the
configuration has no fields of those names); the method of a payment found by inquiry taken from
the provider (`PROVIDER_METHODS`), else from the QR it carries.

Daily reports (reconciliation): `providers.reports.kaspi`, whose docstring gives the report's
format and what the public sources do not confirm about it (no report API of this provider is
publicly documented: the endpoint and format there are assumed).
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel

from config.connectors import ConnectorConfig
from providers.amounts import InvalidAmount
from providers.connector import ApiKey, Endpoint, Envelope, ErrorMap, Money, Vocabulary
from providers.errors import ProviderRejected, ProviderUnreachable
from providers.payments import (
    CallbackNotUnderstood,
    PaymentCallback,
    PaymentConnector,
    PaymentOutcome,
    PaymentProviderClient,
    PaymentRequest,
)
from providers.signing import SignatureError, SignatureScheme

CONNECTOR_TYPE = "kaspi"

CURRENCY = "KZT"
# Development defaults (the simulator expects them when the connector configures none).
DEV_ORGANIZATION_BIN = "000000000000"

# Which flow each configured Kaspi provider serves (its routing rule's method).
PROVIDER_METHODS = {"kaspi_qr": "qr", "kaspi_pay": "mobile_banking"}

Classified = Literal["refused", "not_found", "unavailable", "unknown"]

# Every StatusCode documented (public SDKs and integration code): our code and what it means
# for the request. Codes not here leave the outcome unknown.
STATUS_CODES: dict[int, tuple[str, Classified]] = {
    -1501: ("device_not_found", "refused"),
    -1502: ("device_disabled", "refused"),
    -1503: ("device_in_another_trade_point", "refused"),
    -1601: ("not_found", "not_found"),
    -10000: ("client_certificate_missing", "refused"),
    -14000002: ("no_trade_points", "refused"),
    -99000001: ("not_found", "not_found"),
    -99000002: ("trade_point_not_found", "refused"),
    -99000003: ("trade_point_mismatch", "refused"),
    -99000005: ("return_exceeds_purchase", "refused"),
    -99000006: ("return_failed", "unknown"),
    -99000011: ("wrong_purchase_status", "refused"),
    -99000020: ("partial_return_unavailable", "refused"),
    990000018: ("trade_point_disabled", "refused"),
    990000026: ("trade_point_refuses_qr", "refused"),
    990000028: ("invalid_amount", "refused"),
    990000033: ("no_payment_methods", "refused"),
    99000033: ("no_payment_methods", "refused"),
    -999: ("unavailable", "unavailable"),
}
UNAVAILABLE = -999

# Kaspi's statuses in ours: the whole of its vocabulary (an unknown one is unreadable).
STATUSES = {
    "QrTokenCreated": "pending",
    "RemotePaymentCreated": "pending",
    "Wait": "pending",
    "Processed": "succeeded",
    "Error": "declined",
    "Expired": "expired",
    "RemotePaymentCanceled": "cancelled",
}
DECLINE_CODES = {"Error": "kaspi_error", "Expired": "expired", "RemotePaymentCanceled": "cancelled"}


def organization_bin(config: ConnectorConfig | None) -> str:
    return config.merchant_id if config is not None and config.merchant_id else DEV_ORGANIZATION_BIN


def device_token(config: ConnectorConfig | None, provider: str) -> str:
    """The DeviceToken of the trade point's registered device (`api_secret`)."""
    if config is not None and config.api_secret is not None:
        return config.api_secret.get_secret_value()
    return f"dev-device-{provider}"


# -- money ---------------------------------------------------------------------------------------


def to_tenge(minor: int) -> int | float:
    """500000 tiyn -> 5000 (a JSON integer); 500010 -> 5000.1 (a JSON number whose shortest form
    is exactly the amount, checked: exact below 10^13 tenge)."""
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0:
        raise InvalidAmount(f"not a non-negative integer amount: {minor!r}")
    whole, tiyn = divmod(minor, 100)
    if tiyn == 0:
        return whole
    exact = Decimal(minor).scaleb(-2)
    number = float(exact)
    if Decimal(repr(number)) != exact:
        raise InvalidAmount(f"{exact} tenge cannot be written exactly as a JSON number")
    return number


def from_tenge(value: object, name: str = "Amount") -> int:
    """A JSON number of tenge (integer, or decimal read as Decimal) -> tiyn; more than two
    decimals, a negative amount, or anything but a number is refused, never rounded."""
    if isinstance(value, bool):
        raise InvalidAmount(f"{name} is not a number: {value!r}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, float):  # parsed by someone else: its shortest form is the text
        amount = Decimal(repr(value))
    else:
        raise InvalidAmount(f"{name} is not a number: {value!r}")
    if not amount.is_finite() or amount < 0:
        raise InvalidAmount(f"{name} is not a non-negative amount: {value!r}")
    tiyn = amount.scaleb(2)
    if tiyn != tiyn.to_integral_value():
        raise InvalidAmount(f"{name} has more than 2 decimals: {value!r}")
    return int(tiyn)


TENGE = Money("decimal tenge as a JSON number", to_tenge, from_tenge)


# -- the spec --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCodeEnvelope(Envelope):
    """`{StatusCode: 0, Data}`; any other integer StatusCode is an error (the code itself)."""

    def error_code(self, answer: Any) -> object:
        code = answer[self.result]
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"{self.result} is not an integer: {code!r}")
        return None if code == 0 else code


def _refuse_callback(secret: str, **_: Any) -> None:
    raise SignatureError(
        "callbacks_not_supported", "Kaspi sends no callbacks: its payments are polled"
    )


NO_CALLBACKS = SignatureScheme(verify=_refuse_callback, headers={})


def _order_body(payment: PaymentRequest) -> dict[str, Any]:
    """qr/create and qr/create-link (the client adds OrganizationBin and DeviceToken)."""
    return {"Amount": payment.amount, "ExternalId": payment.reference}


def _remote_body(payment: PaymentRequest) -> dict[str, Any]:
    return {
        **_order_body(payment),
        "PhoneNumber": national_phone(payment.details.get("phone")),
        "Comment": f"Deposit {payment.reference}",
    }


def national_phone(phone: object) -> str:
    """+77011234567 -> 7011234567 (Kaspi's PhoneNumber); ValueError for anything else."""
    if not isinstance(phone, str) or len(phone) != 12 or not phone.startswith("+77"):
        raise ValueError(f"not a Kazakh mobile number +77XXXXXXXXX: {phone!r}")
    digits = phone[2:]
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"not a Kazakh mobile number +77XXXXXXXXX: {phone!r}")
    return digits


@dataclass(frozen=True, kw_only=True)
class KaspiConnector(PaymentConnector):
    """The common payment spec (create = qr/create, status = the lookup by ExternalId, cancel =
    remote/cancel) plus Kaspi's other endpoints."""

    create_link: Endpoint
    remote_create: Endpoint
    remote_body: Callable[[PaymentRequest], Mapping[str, Any]]
    details: Endpoint
    refund: Endpoint


SPEC = KaspiConnector(
    auth=ApiKey("Api-Key"),
    errors=ErrorMap(
        path=("StatusCode",),
        codes={str(code): ours for code, (ours, _) in STATUS_CODES.items()},
        prefix="kaspi_",
        envelope=StatusCodeEnvelope(
            result="StatusCode",
            ok="0",
            error=("StatusCode",),
            refusals=frozenset(
                str(code)
                for code, (_, kind) in STATUS_CODES.items()
                if kind in ("refused", "not_found")
            ),
        ),
    ),
    vocabulary=Vocabulary(statuses=STATUSES, what="Status"),
    money=TENGE,
    signature=NO_CALLBACKS,
    create=Endpoint("POST", "/qr/create"),
    create_link=Endpoint("POST", "/qr/create-link"),
    remote_create=Endpoint("POST", "/remote/create"),
    status=Endpoint("GET", "/payment/status", "query", reference_field="ExternalId"),
    details=Endpoint("GET", "/payment/details", "query"),
    cancel=Endpoint("POST", "/remote/cancel"),
    refund=Endpoint("POST", "/payment/return"),
    create_body=_order_body,
    remote_body=_remote_body,
)


class RefundOutcome(BaseModel):
    """A Kaspi return: done at once (money back in the customer's app) or refused."""

    reference: str
    payment_id: str
    refund_id: str
    amount: int
    currency: str
    status: Literal["succeeded"] = "succeeded"


class Refundable(BaseModel):
    """What a paid payment can still give back (`payment/details`)."""

    reference: str
    payment_id: str
    paid: int
    available: int
    currency: str


# -- the client ------------------------------------------------------------------------------------


def _kaspi_id(value: object) -> str:
    """QrPaymentId / PaymentId / ReturnOperationId: an integer (or its digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) in ("", "0"):
        raise ValueError(f"not a Kaspi id: {value!r}")
    text = str(value)
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise ValueError(f"not a Kaspi id: {value!r}")
    return text


def _data(answer: Any) -> dict[str, Any]:
    data = answer["Data"]
    if not isinstance(data, dict):
        raise TypeError(f"Data is not an object: {data!r}")
    return data


class KaspiClient(PaymentProviderClient):
    spec: ClassVar[KaspiConnector] = SPEC

    def _setup(self) -> None:
        self._credentials = {
            "OrganizationBin": organization_bin(self.config),
            "DeviceToken": device_token(self.config, self.provider),
        }

    # -- callbacks: none ---------------------------------------------------------------------

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
        """Kaspi sends no callbacks: anything claiming to be one is refused."""
        _refuse_callback(secret)

    @classmethod
    def parse_callback(cls, body: bytes) -> PaymentCallback:
        raise CallbackNotUnderstood("Kaspi sends no callbacks")

    # -- answers ------------------------------------------------------------------------------

    def _json(self, response: httpx.Response) -> Any:
        """The body as JSON with decimals as `Decimal` (money is never read through a float)."""
        return self._parsed(lambda r: json.loads(r.content, parse_float=Decimal), response)

    def _classify_envelope(self, response: httpx.Response) -> None:
        """-999 (service unavailable) inside the envelope: nothing was processed."""
        envelope = self.spec.errors.envelope
        if envelope is not None:
            code = self._parsed(envelope.error_code, self._json(response))
            if code == UNAVAILABLE:
                raise ProviderUnreachable(self.provider, "unavailable", "Kaspi StatusCode -999")
        super()._classify_envelope(response)

    # -- payments -----------------------------------------------------------------------------

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
        """A QR (`qr`; a payment link with `details["kaspi_flow"] == "link"`) or a payment
        request to `details["phone"]` (`mobile_banking`). Kaspi takes no callback URL and sets
        the payment's lifetime itself."""
        spec = self.spec
        if currency != CURRENCY:
            raise ProviderRejected(self.provider, "unsupported_currency", currency)
        try:
            payment = PaymentRequest(
                reference=reference,
                method=method,
                amount=spec.money.encode(amount),
                currency=currency,
                details=details,
                callback_url=callback_url,
                expires_in_seconds=expires_in_seconds,
            )
        except InvalidAmount as exc:
            raise ProviderRejected(self.provider, "invalid_amount", str(exc)) from exc
        if method == "qr":
            link = details.get("kaspi_flow") == "link"
            endpoint = spec.create_link if link else spec.create
            body = spec.create_body(payment)
        elif method == "mobile_banking":
            endpoint = spec.remote_create
            try:
                body = spec.remote_body(payment)
            except ValueError as exc:
                raise ProviderRejected(self.provider, "invalid_phone", str(exc)) from exc
        else:
            raise ProviderRejected(self.provider, "unsupported_method", method)
        response = await self._call(endpoint, body={**self._credentials, **body})
        return self._answer(lambda answer: self._created(_data(answer), payment, amount), response)

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        """Status inquiry by our reference (ExternalId); None when Kaspi never saw it."""
        data = await self._find(reference)
        if data is None:
            return None
        return await self._outcome_of(reference, data)

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        """Close the payment unless it is final (paid meanwhile: its outcome says so); None
        when Kaspi never saw it."""
        data = await self._find(reference)
        if data is None:
            return None
        status = self._parsed(self._status, data)
        if status != "pending":
            return await self._outcome_of(reference, data)
        body = {**self._credentials, "QrPaymentId": int(_kaspi_id(data["QrPaymentId"]))}
        try:
            response = await self._call(self.spec.cancel, body=body)
        except ProviderRejected as exc:
            if exc.code != "wrong_purchase_status":
                raise
            return await self.get_payment(reference)  # it moved on meanwhile: say where
        closed = self._answer(_data, response)
        return await self._outcome_of(reference, {**data, "Status": closed.get("Status")})

    async def get_refundable(self, reference: str) -> Refundable | None:
        """What a paid payment can still return; None when Kaspi never saw it."""
        data = await self._find(reference)
        if data is None:
            return None
        details = await self._details(data)
        return self._parsed(
            lambda d: Refundable(
                reference=reference,
                payment_id=_kaspi_id(d["QrPaymentId"]),
                paid=from_tenge(d["TotalAmount"], "TotalAmount"),
                available=from_tenge(d["AvailableReturnAmount"], "AvailableReturnAmount"),
                currency=CURRENCY,
            ),
            details,
        )

    async def refund(self, reference: str, amount: int, currency: str) -> RefundOutcome:
        """Return `amount` of a paid payment (a Kaspi "return", whole or partial). Kaspi keeps no
        idempotency key for returns: after an unknown outcome, read `get_refundable` before
        asking again."""
        if currency != CURRENCY:
            raise ProviderRejected(self.provider, "unsupported_currency", currency)
        if isinstance(amount, int) and amount <= 0:
            raise ProviderRejected(self.provider, "invalid_amount", "nothing to return")
        try:
            wire_amount = self.spec.money.encode(amount)
        except InvalidAmount as exc:
            raise ProviderRejected(self.provider, "invalid_amount", str(exc)) from exc
        data = await self._find(reference)
        if data is None:
            raise ProviderRejected(self.provider, "not_found", f"no payment {reference!r}")
        payment_id = self._parsed(lambda d: _kaspi_id(d["QrPaymentId"]), data)
        body = {**self._credentials, "QrPaymentId": int(payment_id), "Amount": wire_amount}
        response = await self._call(self.spec.refund, body=body)
        return self._answer(
            lambda answer: RefundOutcome(
                reference=reference,
                payment_id=payment_id,
                refund_id=_kaspi_id(_data(answer)["ReturnOperationId"]),
                amount=amount,
                currency=CURRENCY,
            ),
            response,
        )

    # -- helpers ------------------------------------------------------------------------------

    async def _find(self, reference: str) -> dict[str, Any] | None:
        """The payment under our reference (the lookup by ExternalId), or None."""
        response = await self._lookup(
            self.spec.status, reference, {"DeviceToken": self._credentials["DeviceToken"]}
        )
        if response is None:
            return None

        def payment(answer: Any) -> dict[str, Any]:
            data = _data(answer)
            if data["ExternalId"] != reference:
                raise ValueError(f"asked for {reference!r}, got {data['ExternalId']!r}")
            _kaspi_id(data["QrPaymentId"])
            return data

        return self._answer(payment, response)

    async def _details(self, data: dict[str, Any]) -> dict[str, Any]:
        body = {"QrPaymentId": data["QrPaymentId"], "DeviceToken": self._credentials["DeviceToken"]}
        response = await self._call(self.spec.details, body=body)
        return self._answer(_data, response)

    async def _outcome_of(self, reference: str, data: dict[str, Any]) -> PaymentOutcome:
        """A looked-up payment in our terms; a paid one with its details (what was paid, how it
        was funded, what can be returned)."""
        status = self._parsed(self._status, data)
        details = await self._details(data) if status == "succeeded" else None
        return self._parsed(lambda d: self._looked_up(reference, d, details), data)

    def _status(self, data: Mapping[str, Any]) -> str:
        vocabulary = self.spec.vocabulary
        assert vocabulary is not None
        return vocabulary.status(data["Status"])

    def _method(self, data: Mapping[str, Any]) -> str:
        known = PROVIDER_METHODS.get(self.provider)
        if known is not None:
            return known
        return "qr" if data.get("QrToken") or data.get("PaymentLink") else "mobile_banking"

    def _created(
        self, data: dict[str, Any], payment: PaymentRequest, amount: int
    ) -> PaymentOutcome:
        """The answer to qr/create, qr/create-link or remote/create: pending (unless Kaspi says
        otherwise in a Status), for the amount we asked."""
        remote = payment.method == "mobile_banking"
        default = "RemotePaymentCreated" if remote else "QrTokenCreated"
        kaspi_status = data.get("Status", default)
        payment_id = data["QrPaymentId"] if "QrPaymentId" in data else data["PaymentId"]
        if remote:
            phone = str(payment.details.get("phone", ""))
            action = _app_confirm(self.provider, phone[:5] + "***" + phone[-4:], data)
        else:
            action = _qr(data)
            if action["payload"] is None:
                raise ValueError("a QR payment without QrToken or PaymentLink")
        vocabulary = self.spec.vocabulary
        assert vocabulary is not None
        return PaymentOutcome(
            reference=payment.reference,
            payment_id=_kaspi_id(payment_id),
            method=payment.method,
            status=vocabulary.status(kaspi_status),
            amount=amount,
            currency=CURRENCY,
            decline_code=DECLINE_CODES.get(kaspi_status),
            action=action,
        )

    def _looked_up(
        self, reference: str, data: dict[str, Any], details: dict[str, Any] | None
    ) -> PaymentOutcome:
        vocabulary = self.spec.vocabulary
        assert vocabulary is not None
        kaspi_status = data["Status"]
        method = self._method(data)
        action = _qr(data) if method == "qr" else _app_confirm(self.provider, None, data)
        received = None
        funding = None
        if details is not None:
            if _kaspi_id(details["QrPaymentId"]) != _kaspi_id(data["QrPaymentId"]):
                raise ValueError("payment/details answered about another payment")
            received = from_tenge(details["TotalAmount"], "TotalAmount")
            funding = _funding({**data, **details})
        return PaymentOutcome(
            reference=reference,
            payment_id=_kaspi_id(data["QrPaymentId"]),
            method=method,
            status=vocabulary.status(kaspi_status),
            amount=from_tenge(data["Amount"], "Amount"),
            currency=CURRENCY,
            amount_received=received,
            decline_code=DECLINE_CODES.get(kaspi_status),
            action=action,
            funding=funding,
        )


def _qr(data: Mapping[str, Any]) -> dict[str, Any]:
    """Scan the QR (or open the link) in the Kaspi app."""
    link = data.get("PaymentLink")
    action: dict[str, Any] = {
        "type": "qr",
        "payload": data.get("QrToken") or link,
        "expires_at": data.get("ExpireDate"),
    }
    if link:
        action["url"] = link
    return action


def _app_confirm(provider: str, phone: str | None, data: Mapping[str, Any]) -> dict[str, Any]:
    """Confirm the payment request in the Kaspi app, on the phone it was sent to."""
    return {
        "type": "app_confirm",
        "app": provider,
        "phone": phone,
        "expires_at": data.get("ExpireDate"),
    }


def _funding(data: Mapping[str, Any]) -> dict[str, Any]:
    """How the customer paid: Kaspi Gold (own money) or on credit (Kaspi Red, Kredit,
    instalments), with the loan offer and its term in months."""
    product = data.get("ProductType")
    offer = data.get("LoanOfferName")
    term = data.get("LoanTerm")
    if term is not None and (isinstance(term, bool) or not isinstance(term, int) or term < 0):
        raise ValueError(f"LoanTerm is not a number of months: {term!r}")
    return {
        "product_type": product,
        "loan_offer_name": offer,
        "loan_term_months": term,
        "financed": (product is not None and product != "Gold") or bool(offer) or bool(term),
        "transaction_date": data.get("TransactionDate"),
        "available_return_amount": None
        if data.get("AvailableReturnAmount") is None
        else from_tenge(data["AvailableReturnAmount"], "AvailableReturnAmount"),
    }


CLIENT = KaspiClient
