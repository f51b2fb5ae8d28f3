"""Payout adapter: send money to a player's card, IBAN, wallet or phone, idempotent on our
reference, with status inquiry for outcomes lost to a timeout.

`PayoutProviderClient` runs a `PayoutConnector` spec; its default is the simulator's common
`/payouts` API."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel

from config import Settings
from providers.connector import Connector, Endpoint
from providers.http import ProviderHttp


class PayoutOutcome(BaseModel):
    reference: str
    payout_id: str
    status: Literal["paid", "failed", "processing"]  # processing: bank rails, hours at times
    failure_code: str | None = None
    amount: int
    currency: str


@dataclass(frozen=True)
class PayoutRequest:
    reference: str
    amount: Any  # in the provider's money format (`Connector.money`)
    currency: str
    method: str
    destination: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class PayoutConnector(Connector):
    """A payout provider: its endpoints, request bodies and answer parser."""

    pay: Endpoint
    status: Endpoint  # by our reference
    cancel: Endpoint  # by our reference, with the amount and currency
    pay_body: Callable[[PayoutRequest], Mapping[str, Any]]
    cancel_body: Callable[[PayoutRequest], Mapping[str, Any]]
    outcome: Callable[[Any], PayoutOutcome]


def _pay_body(payout: PayoutRequest) -> dict[str, Any]:
    return {
        "reference": payout.reference,
        "amount": payout.amount,
        "currency": payout.currency,
        "method": payout.method,
        "destination": payout.destination,
    }


def _cancel_body(payout: PayoutRequest) -> dict[str, Any]:
    return {"amount": payout.amount, "currency": payout.currency}


COMMON = PayoutConnector(
    pay=Endpoint("POST", "/payouts"),
    status=Endpoint("GET", "/payouts/{reference}"),
    cancel=Endpoint("POST", "/payouts/{reference}/cancel"),
    pay_body=_pay_body,
    cancel_body=_cancel_body,
    outcome=PayoutOutcome.model_validate,
)


class PayoutProviderClient(ProviderHttp):
    """One payout provider: pay, status inquiry by our reference, and closing the reference."""

    spec: ClassVar[PayoutConnector] = COMMON

    async def pay(
        self,
        *,
        reference: str,
        amount: int,
        currency: str,
        method: str,
        destination: dict[str, Any],
    ) -> PayoutOutcome:
        payout = self._payout(reference, amount, currency, method, destination)
        response = await self._call(self.spec.pay, reference, self.spec.pay_body(payout))
        return self._answer(self.spec.outcome, response)

    async def get_payout(self, reference: str) -> PayoutOutcome | None:
        """Status inquiry by our reference; None means the provider never saw the payout."""
        return await self._inquiry(self.spec.status, reference, self.spec.outcome)

    async def cancel_payout(self, *, reference: str, amount: int, currency: str) -> PayoutOutcome:
        """Close the reference at the provider: the payout if it was made after all, otherwise
        a guarantee that no late request under this reference will ever be paid."""
        payout = self._payout(reference, amount, currency, "", {})
        response = await self._call(self.spec.cancel, reference, self.spec.cancel_body(payout))
        return self._answer(self.spec.outcome, response)

    def _payout(
        self, reference: str, amount: int, currency: str, method: str, destination: dict[str, Any]
    ) -> PayoutRequest:
        return PayoutRequest(
            reference=reference,
            amount=self.spec.money.encode(amount),
            currency=currency,
            method=method,
            destination=destination,
        )


def payout_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[str, PayoutProviderClient]:
    """One client per provider named in `settings.payout_providers` (method -> provider): the
    payout client of its connector (a connector module's `PAYOUT_CLIENT`), else the common one."""
    from providers.registry import build_client, payout_class  # the registry imports this module

    names = set(settings.payout_providers.values())
    return {
        name: build_client(settings, http, name, payout_class(settings, name)) for name in names
    }
