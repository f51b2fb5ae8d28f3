"""Payout adapter: send money to a player's card, IBAN, wallet or phone, idempotent on our
reference, with status inquiry for outcomes lost to a timeout."""

from typing import Any, Literal

import httpx
from pydantic import BaseModel

from config import Settings
from providers.http import ProviderHttp


class PayoutOutcome(BaseModel):
    reference: str
    payout_id: str
    status: Literal["paid", "failed"]
    failure_code: str | None = None
    amount: int
    currency: str


class PayoutProviderClient(ProviderHttp):
    """One payout provider: `POST /payouts` and status inquiry `GET /payouts/{reference}`."""

    async def pay(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        method: str,
        destination: dict[str, Any],
    ) -> PayoutOutcome:
        body = {
            "reference": reference,
            "amount": amount,
            "currency": currency,
            "method": method,
            "destination": destination,
        }
        response = await self._request("POST", "/payouts", json=body)
        return PayoutOutcome.model_validate(response.json())

    async def get_payout(self, reference: str) -> PayoutOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the payout."""
        response = await self._lookup("GET", f"/payouts/{reference}")
        return None if response is None else PayoutOutcome.model_validate(response.json())

    async def cancel_payout(self, *, reference: str, amount: int, currency: str) -> PayoutOutcome:
        """Close the reference at the provider: the payout if it was made after all, otherwise
        a guarantee that no late request under this reference will ever be paid."""
        response = await self._request(
            "POST",
            f"/payouts/{reference}/cancel",
            json={"amount": amount, "currency": currency},
        )
        return PayoutOutcome.model_validate(response.json())


def payout_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[str, PayoutProviderClient]:
    """One client per provider named in `settings.payout_providers` (method -> provider)."""
    names = set(settings.payout_providers.values())
    return {
        name: PayoutProviderClient(
            http=http,
            base_url=settings.simulator_url,
            provider=name,
            secret=settings.provider_secret(name),
        )
        for name in names
    }
