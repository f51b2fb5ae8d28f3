"""Adapter for asynchronous providers (bank transfer, e-wallet, mobile banking, QR, aggregator):
create a payment under our reference, inquire its status, cancel it while unpaid."""

from typing import Any, Literal

from pydantic import BaseModel

from providers.errors import ProviderRejected
from providers.http import ProviderHttp


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


class PaymentProviderClient(ProviderHttp):
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
        try:
            response = await self._request("GET", f"/payments/{reference}")
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise
        return PaymentOutcome.model_validate(response.json())

    async def cancel_payment(self, reference: str) -> PaymentOutcome | None:
        try:
            response = await self._request("POST", f"/payments/{reference}/cancel")
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise
        return PaymentOutcome.model_validate(response.json())
