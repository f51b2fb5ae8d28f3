"""Adapter for asynchronous providers (bank transfer, e-wallet, mobile banking, QR, aggregator):
create a payment under our reference, inquire its status, cancel it while unpaid; verify and read
the provider's callbacks.

`PaymentProviderClient` runs a `PaymentConnector` spec; its default is the simulator's common
`/payments` API and its callbacks (`providers.signing.sign`). Providers with an API of their own
are specs of their own (`providers.kazbank`, `providers.tengewallet`, `providers.bankapp`,
`providers.kzqr`, `providers.payhub`), translated at this boundary, so the activities see one
interface.
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


class PaymentCallback(BaseModel):
    """A provider's callback in our terms (integer minor units, unified statuses and codes)."""

    reference: str = Field(min_length=1, max_length=64)
    status: str = Field(min_length=1, max_length=32)
    amount: int | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, max_length=3)
    decline_code: str | None = Field(default=None, max_length=64)
    provider_payment_id: str | None = Field(default=None, max_length=64)
    event_id: str | None = Field(default=None, max_length=64)


class CallbackNotUnderstood(ValueError):
    pass


@dataclass(frozen=True)
class Callback:
    """A provider's callback body: JSON or a form (the last value of a repeated field), read in
    our terms by `parse`."""

    encoding: Literal["json", "form"]
    parse: Callable[[Any], PaymentCallback]

    def read(self, body: bytes) -> PaymentCallback:
        try:
            if self.encoding == "form":
                form = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
                return self.parse({key: values[-1] for key, values in form.items()})
            return self.parse(json.loads(body))
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            raise CallbackNotUnderstood(str(exc)) from exc


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
    """An asynchronous provider: its endpoints, request body, answer and callback parsers."""

    methods: frozenset[str] | None = None  # the methods it takes; None: any
    create: Endpoint
    status: Endpoint  # by our reference
    cancel: Endpoint  # by our reference
    create_body: Callable[[PaymentRequest], Mapping[str, Any]]
    outcome: Callable[[Any, str], PaymentOutcome]  # (answer, provider name)
    callback: Callback


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


def _outcome(answer: Any, provider: str) -> PaymentOutcome:
    return PaymentOutcome.model_validate(answer)


COMMON = PaymentConnector(
    create=Endpoint("POST", "/payments"),
    status=Endpoint("GET", "/payments/{reference}"),
    cancel=Endpoint("POST", "/payments/{reference}/cancel"),
    create_body=_create_body,
    outcome=_outcome,
    callback=Callback("json", PaymentCallback.model_validate),
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
        return cls.spec.callback.read(body)

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
        if spec.methods is not None and method not in spec.methods:
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
