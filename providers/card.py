"""Card acquirer adapter: tokenize, charge (with 3-D Secure), status inquiry and cancel, all
idempotent on our reference.

`CardProviderClient` runs a `CardConnector` spec; its default is the simulator's common
`/tokens` and `/charges` API. An acquirer with an API of its own is a spec of its own
(`providers.connectors.*`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from providers.connector import Connector, Endpoint
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
    # Fields the payer's browser POSTs to `action_url` (3-D Secure v1: PaReq and MD); the
    # platform adds TermUrl, where the issuer's ACS posts the result back.
    action_form: dict[str, str] | None = None


@dataclass(frozen=True)
class ChargeRequest:
    reference: str
    token: str
    amount: Any  # in the provider's money format (`Connector.money`)
    currency: str
    callback_url: str | None


@dataclass(frozen=True, kw_only=True)
class CardConnector(Connector):
    """A card acquirer: its endpoints, request bodies and answer parsers."""

    tokens: Endpoint
    charges: Endpoint
    status: Endpoint  # by our reference
    cancel: Endpoint  # by our reference
    token_body: Callable[[CardData], Mapping[str, Any]]
    charge_body: Callable[[ChargeRequest], Mapping[str, Any]]
    token: Callable[[Any], CardToken]
    outcome: Callable[[Any], ChargeOutcome]


def _charge_body(charge: ChargeRequest) -> dict[str, Any]:
    return {
        "reference": charge.reference,
        "token": charge.token,
        "amount": charge.amount,
        "currency": charge.currency,
        "callback_url": charge.callback_url,
    }


COMMON = CardConnector(
    tokens=Endpoint("POST", "/tokens"),
    charges=Endpoint("POST", "/charges"),
    status=Endpoint("GET", "/charges/{reference}"),
    cancel=Endpoint("POST", "/charges/{reference}/cancel"),
    token_body=CardData.model_dump,
    charge_body=_charge_body,
    token=CardToken.model_validate,
    outcome=ChargeOutcome.model_validate,
)


class CardProviderClient(ProviderHttp):
    spec: ClassVar[CardConnector] = COMMON

    async def tokenize(self, card: CardData) -> CardToken:
        try:
            response = await self._call(self.spec.tokens, body=self.spec.token_body(card))
        except ProviderRejected as exc:
            raise CardRejected(exc.provider, exc.code, exc.detail) from exc
        return self._answer(self.spec.token, response)

    async def charge(
        self,
        *,
        reference: str,
        token: str,
        amount: int,
        currency: str,
        callback_url: str | None = None,
    ) -> ChargeOutcome:
        charge = ChargeRequest(
            reference=reference,
            token=token,
            amount=self.spec.money.encode(amount),
            currency=currency,
            callback_url=callback_url,
        )
        response = await self._call(self.spec.charges, reference, self.spec.charge_body(charge))
        return self._answer(self.spec.outcome, response)

    async def get_charge(self, reference: str) -> ChargeOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the charge."""
        return await self._inquiry(self.spec.status, reference, self.spec.outcome)

    async def cancel_charge(self, reference: str) -> ChargeOutcome | None:
        """Abandon a charge waiting for 3-D Secure; a settled one is returned as it is."""
        return await self._inquiry(self.spec.cancel, reference, self.spec.outcome)
