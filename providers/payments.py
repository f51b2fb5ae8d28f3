"""Adapter for asynchronous providers (bank transfer, e-wallet, mobile banking, QR, aggregator):
create a payment under our reference, inquire its status, cancel it while unpaid.

`PaymentProviderClient` speaks the simulator's common `/payments` API and its callbacks
(`providers.signing.sign`); providers with an API of their own subclass it (`providers.kazbank`,
`providers.tengewallet`, `providers.bankapp`, `providers.kzqr`, `providers.payhub`) and translate
at this boundary, so the activities see one interface.
"""

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from providers.http import ProviderHttp
from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


class PaymentOutcome(BaseModel):
    reference: str
    payment_id: str
    method: str
    status: Literal["pending", "succeeded", "declined", "expired", "cancelled"]
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


class PaymentProviderClient(ProviderHttp):
    @staticmethod
    def verify_callback(
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        """Raise `providers.signing.SignatureError` unless the callback is this provider's."""
        verify(
            secret,
            body=body,
            signature=headers.get(SIGNATURE_HEADER),
            timestamp=headers.get(TIMESTAMP_HEADER),
            now=now,
            tolerance_seconds=tolerance_seconds,
        )

    @staticmethod
    def parse_callback(body: bytes) -> PaymentCallback:
        """A verified callback's body in our terms; CallbackNotUnderstood if it is not."""
        try:
            return PaymentCallback.model_validate_json(body)
        except ValidationError as exc:
            raise CallbackNotUnderstood(str(exc)) from exc

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
        body = {
            "reference": reference,
            "method": method,
            "amount": amount,
            "currency": currency,
            "callback_url": callback_url,
            "expires_in_seconds": expires_in_seconds,
            **{k: v for k, v in details.items() if k in ("phone", "account", "return_url")},
        }
        response = await self._request("POST", "/payments", json=body)
        return PaymentOutcome.model_validate(response.json())

    async def get_payment(self, reference: str) -> PaymentOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the payment."""
        response = await self._lookup("GET", f"/payments/{reference}")
        return None if response is None else PaymentOutcome.model_validate(response.json())

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        response = await self._lookup("POST", f"/payments/{reference}/cancel")
        return None if response is None else PaymentOutcome.model_validate(response.json())
