"""Card acquirer adapter: tokenize, charge (with 3-D Secure), status inquiry and cancel, all
idempotent on our reference."""

from typing import Literal

from pydantic import BaseModel

from providers.errors import CardRejected, ProviderRejected
from providers.http import ProviderHttp


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
    status: Literal["succeeded", "declined", "requires_action", "cancelled"]
    decline_code: str | None = None
    amount: int
    currency: str
    action_url: str | None = None


class CardProviderClient(ProviderHttp):
    async def tokenize(self, card: CardData) -> CardToken:
        try:
            response = await self._request("POST", "/tokens", json=card.model_dump())
        except ProviderRejected as exc:
            raise CardRejected(exc.provider, exc.code, exc.detail) from exc
        return CardToken.model_validate(response.json())

    async def charge(
        self,
        *,
        reference: str,
        token: str,
        amount: int,
        currency: str,
        callback_url: str | None = None,
    ) -> ChargeOutcome:
        body = {
            "reference": reference,
            "token": token,
            "amount": amount,
            "currency": currency,
            "callback_url": callback_url,
        }
        response = await self._request("POST", "/charges", json=body)
        return ChargeOutcome.model_validate(response.json())

    async def get_charge(self, reference: str) -> ChargeOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the charge."""
        response = await self._lookup("GET", f"/charges/{reference}")
        return None if response is None else ChargeOutcome.model_validate(response.json())

    async def cancel_charge(self, reference: str) -> ChargeOutcome | None:
        """Abandon a charge waiting for 3-D Secure; a settled one is returned as it is."""
        response = await self._lookup("POST", f"/charges/{reference}/cancel")
        return None if response is None else ChargeOutcome.model_validate(response.json())
