"""Payout adapter: send money to a player's card, IBAN, wallet or phone, idempotent on our
reference, with status inquiry for outcomes lost to a timeout."""

from typing import Any, Literal

import httpx
from pydantic import BaseModel

from config import Settings
from providers.errors import ProviderRejected, ProviderTimeout, ProviderUnavailable


class PayoutOutcome(BaseModel):
    reference: str
    payout_id: str
    status: Literal["paid", "failed"]
    failure_code: str | None = None
    amount: int
    currency: str


class PayoutProviderClient:
    """One payout provider reached over HTTP. `http` is shared and owned by the caller."""

    def __init__(self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str):
        self._http = http
        self._base = f"{base_url.rstrip('/')}/providers/{provider}/payouts"
        self._headers = {"Authorization": f"Bearer {secret}"}
        self.provider = provider

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
        response = await self._send("POST", "", json=body)
        return PayoutOutcome.model_validate(response.json())

    async def get_payout(self, reference: str) -> PayoutOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the payout."""
        try:
            response = await self._send("GET", f"/{reference}")
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise
        return PayoutOutcome.model_validate(response.json())

    async def _send(self, method: str, path: str, *, json: object = None) -> httpx.Response:
        try:
            response = await self._http.request(
                method, self._base + path, json=json, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(self.provider, "timeout", type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, "unreachable", type(exc).__name__) from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(self.provider, f"http_{response.status_code}")
        if response.status_code >= 400:
            try:
                code = str(response.json().get("code") or f"http_{response.status_code}")
            except (ValueError, AttributeError):
                code = f"http_{response.status_code}"
            raise ProviderRejected(self.provider, code)
        return response


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
