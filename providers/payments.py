"""Adapter for asynchronous providers (bank transfer, e-wallet, mobile banking, QR, aggregator):
create a payment under our reference, inquire its status, cancel it while unpaid; verify and read
the provider's callbacks.

`PaymentProviderClient` runs a `PaymentConnector` spec; its default is the simulator's common
`/payments` API and its callbacks (`providers.signing.sign`). Providers with an API of their own
are specs of their own (`providers.kazbank`, `providers.connectors.*`), translated at this
boundary, so the activities see one interface.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, Field

from providers.connector import Connector, Endpoint
from providers.errors import ProviderRejected
from providers.http import ProviderHttp

PaymentStatus = Literal["pending", "succeeded", "declined", "expired", "cancelled"]


class PaymentOutcome(BaseModel):
    reference: str
    payment_id: str
    method: str
    status: PaymentStatus
    amount: int
    currency: str
    amount_received: int | None = None
    decline_code: str | None = None
    action: dict[str, Any]
    # How the payer funded it, where the provider says (Kaspi: Gold, or Red / Kredit /
    # instalments with their term): kept with the deposit for compliance and risk.
    funding: dict[str, Any] | None = None


_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class PaymentCallback(BaseModel):
    """A provider's callback in our terms (integer minor units, unified statuses and codes)."""

    # Printable only: a signed callback may still carry what PostgreSQL refuses (NUL).
    reference: str = Field(min_length=1, max_length=64, pattern=_PRINTABLE)
    status: str = Field(min_length=1, max_length=32, pattern=_PRINTABLE)
    amount: int | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, max_length=3, pattern=_PRINTABLE)
    decline_code: str | None = Field(default=None, max_length=64, pattern=_PRINTABLE)
    provider_payment_id: str | None = Field(default=None, max_length=64, pattern=_PRINTABLE)
    event_id: str | None = Field(default=None, max_length=64, pattern=_PRINTABLE)


class CallbackNotUnderstood(ValueError):
    pass


Key = str | tuple[str, ...]


def read(data: Any, key: Key) -> Any:
    """`data`'s `key` (None where absent), or a path through nested objects: an absent or null
    object has no fields (a null `paid` is no amount paid), but the fields of one that is there
    are required, and anything not an object is an answer we cannot read (it raises)."""
    path = (key,) if isinstance(key, str) else key
    value = data.get(path[0])
    for step in path[1:]:
        if value is None:
            return None
        value = value[step]
    return value


@dataclass(frozen=True, kw_only=True)
class Fields:
    """Where a provider's payment (in its answers and its callbacks) keeps each field of ours;
    `received`, the amount paid, is absent or null until paid. Its payments are all of one
    `method`; `action` is the player's next step from a payment and the provider's name."""

    method: str
    reference: Key
    payment_id: Key
    status: Key
    amount: Key
    received: Key
    currency: Key
    decline: Key
    action: Callable[[Any, str], dict[str, Any]]


@dataclass(frozen=True)
class Callback:
    """A provider's callback body: JSON or a form (the last value of a repeated field; a blank one
    is absent); the payment is `at` that path in it and the event's id at `event_id`."""

    encoding: Literal["json", "form"] = "json"
    at: tuple[str, ...] = ()
    event_id: Key | None = None

    def body(self, body: bytes) -> Any:
        if self.encoding == "form":
            form = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
            return {key: values[-1] for key, values in form.items() if values[-1] != ""}
        return json.loads(body)


@dataclass(frozen=True)
class PaymentRequest:
    reference: str
    method: str
    amount: Any  # in the provider's money format (`Connector.money`)
    currency: str
    details: Mapping[str, str]
    callback_url: str
    expires_in_seconds: int


@dataclass(frozen=True, kw_only=True)
class PaymentConnector(Connector):
    """An asynchronous provider: its endpoints, its request body, and where its answers and
    callbacks keep our fields (`fields`, with `vocabulary` and `money`; None: they are in our
    terms already, as in the common API). A provider with `fields` takes only their method."""

    create: Endpoint
    status: Endpoint  # by our reference
    cancel: Endpoint  # by our reference
    create_body: Callable[[PaymentRequest], Mapping[str, Any]]
    fields: Fields | None = None
    answer_at: tuple[str, ...] = ()  # where the payment is in an answer
    callback: Callback = Callback()

    def __post_init__(self) -> None:
        if self.fields is not None and self.vocabulary is None:
            raise TypeError("a provider with fields of its own needs its vocabulary")

    def outcome(self, answer: Any, provider: str) -> PaymentOutcome:
        """An answer about one payment in our terms (it raises when it cannot be read)."""
        fields, vocabulary = self.fields, self.vocabulary
        if fields is None or vocabulary is None:
            return PaymentOutcome.model_validate(answer)
        payment = _at(answer, self.answer_at)
        received = read(payment, fields.received)
        return PaymentOutcome(
            reference=read(payment, fields.reference),
            payment_id=read(payment, fields.payment_id),
            method=fields.method,
            status=vocabulary.status(read(payment, fields.status)),
            amount=self.money.decode(read(payment, fields.amount), _name(fields.amount)),
            currency=read(payment, fields.currency),
            amount_received=None
            if received is None
            else self.money.decode(received, _name(fields.received)),
            decline_code=vocabulary.reason(read(payment, fields.decline)),
            action=fields.action(payment, provider),
        )

    def callback_of(self, body: bytes) -> PaymentCallback:
        """A verified callback's body in our terms; CallbackNotUnderstood if it is not."""
        try:
            data = self.callback.body(body)
            fields, vocabulary = self.fields, self.vocabulary
            if fields is None or vocabulary is None:
                return PaymentCallback.model_validate(data)
            payment = _at(data, self.callback.at)
            paid = read(payment, fields.received)
            amount = paid if paid is not None else read(payment, fields.amount)
            event_id = self.callback.event_id
            return PaymentCallback(
                reference=read(payment, fields.reference),
                status=vocabulary.status(read(payment, fields.status)),
                amount=self.money.decode(amount, _name(fields.amount)),
                currency=read(payment, fields.currency),
                decline_code=vocabulary.reason(read(payment, fields.decline)),
                provider_payment_id=read(payment, fields.payment_id),
                event_id=None if event_id is None else read(data, event_id),
            )
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


def _name(key: Key) -> str:
    return key if isinstance(key, str) else ".".join(key)


def _create_body(payment: PaymentRequest) -> dict[str, Any]:
    passed = ("phone", "account", "return_url")
    return {
        "reference": payment.reference,
        "method": payment.method,
        "amount": payment.amount,
        "currency": payment.currency,
        "callback_url": payment.callback_url,
        "expires_in_seconds": payment.expires_in_seconds,
        **{k: v for k, v in payment.details.items() if k in passed},
    }


COMMON = PaymentConnector(
    create=Endpoint("POST", "/payments"),
    status=Endpoint("GET", "/payments/{reference}"),
    cancel=Endpoint("POST", "/payments/{reference}/cancel"),
    create_body=_create_body,
)


class PaymentProviderClient(ProviderHttp):
    spec: ClassVar[PaymentConnector] = COMMON

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
        """Raise `providers.signing.SignatureError` unless the callback is this provider's."""
        scheme = cls.spec.signature
        scheme.check(secret, headers, body, now=now, tolerance_seconds=tolerance_seconds)

    @classmethod
    def parse_callback(cls, body: bytes) -> PaymentCallback:
        """A verified callback's body in our terms; CallbackNotUnderstood if it is not."""
        return cls.spec.callback_of(body)

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
        spec = self.spec
        if spec.fields is not None and method != spec.fields.method:
            raise ProviderRejected(self.provider, "unsupported_method", method)
        payment = PaymentRequest(
            reference=reference,
            method=method,
            amount=spec.money.encode(amount),
            currency=currency,
            details=details,
            callback_url=callback_url,
            expires_in_seconds=expires_in_seconds,
        )
        response = await self._call(spec.create, reference, spec.create_body(payment))
        return self._answer(self._outcome, response)

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the payment."""
        return await self._inquiry(self.spec.status, reference, self._outcome)

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        return await self._inquiry(self.spec.cancel, reference, self._outcome)

    def _outcome(self, answer: Any) -> PaymentOutcome:
        return self.spec.outcome(answer, self.provider)
