"""Card acquirer adapter: tokenize, charge and status inquiry, all idempotent on our reference."""

from typing import Literal

import httpx
from pydantic import BaseModel

from providers.errors import (
    CardRejected,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)


class CardData(BaseModel):
    number: str
    exp_month: int
    exp_year: int
    cvc: str
    holder: str | None = None


class CardToken(BaseModel):
    token: str
    bin: str
    last4: str
    scheme: str
    issuer_country: str


class ChargeOutcome(BaseModel):
    reference: str
    charge_id: str
    status: Literal["succeeded", "declined"]
    decline_code: str | None = None
    amount: int
    currency: str


class CardProviderClient:
    """One acquirer reached over HTTP. `http` is shared and owned by the caller."""

    def __init__(self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str):
        self._http = http
        self._base = f"{base_url.rstrip('/')}/providers/{provider}"
        self._headers = {"Authorization": f"Bearer {secret}"}
        self.provider = provider

    async def tokenize(self, card: CardData) -> CardToken:
        response = await self._send("POST", "/tokens", json=card.model_dump(), tokenizing=True)
        return CardToken.model_validate(response.json())

    async def charge(
        self, *, reference: str, token: str, amount: int, currency: str
    ) -> ChargeOutcome:
        body = {"reference": reference, "token": token, "amount": amount, "currency": currency}
        response = await self._send("POST", "/charges", json=body)
        return ChargeOutcome.model_validate(response.json())

    async def get_charge(self, reference: str) -> ChargeOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the charge."""
        try:
            response = await self._send("GET", f"/charges/{reference}")
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise
        return ChargeOutcome.model_validate(response.json())

    async def _send(
        self, method: str, path: str, *, json: object = None, tokenizing: bool = False
    ) -> httpx.Response:
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
            code = _error_code(response)
            if tokenizing and response.status_code == 422:
                raise CardRejected(self.provider, code)
            raise ProviderRejected(self.provider, code)
        return response


def _error_code(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    code = payload.get("code") if isinstance(payload, dict) else None
    return str(code) if code else f"http_{response.status_code}"
