"""A simulated card acquirer: tokenize, charge, status inquiry; idempotent on our reference.

Test cards behave like acquirers' sandboxes: 4000000000000002 is declined for insufficient funds,
4000000000000069 as expired, every other Luhn-valid number is approved unless the behaviour says
otherwise.
"""

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from domain.cards import card_scheme, luhn_valid
from simulator.behaviour import BehaviourState
from simulator.store import SimulatorStore

DECLINING_CARDS = {"4000000000000002": "insufficient_funds", "4000000000000069": "expired_card"}
FOREIGN_BINS = {"411111": "US", "555555": "RU"}


class TokenizeRequest(BaseModel):
    number: str = Field(min_length=12, max_length=19)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(min_length=3, max_length=4)
    holder: str | None = None


class TokenResponse(BaseModel):
    token: str
    bin: str
    last4: str
    scheme: str
    issuer_country: str


class ChargeRequest(BaseModel):
    reference: str = Field(min_length=1, max_length=64)
    token: str
    amount: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)


class Charge(BaseModel):
    reference: str
    charge_id: str
    status: Literal["succeeded", "declined"]
    decline_code: str | None = None
    amount: int
    currency: str


class SimulatorError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass
class CardProvider:
    name: str
    store: SimulatorStore
    behaviour: BehaviourState = field(default_factory=BehaviourState)
    charge_calls: dict[str, int] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def tokenize(self, request: TokenizeRequest) -> TokenResponse:
        if not luhn_valid(request.number):
            raise SimulatorError(422, "invalid_card_number", "card number fails the Luhn check")
        response = TokenResponse(
            token=f"tok_{self.name}_{secrets.token_hex(10)}",
            bin=request.number[:6],
            last4=request.number[-4:],
            scheme=card_scheme(request.number),
            issuer_country=FOREIGN_BINS.get(request.number[:6], "KZ"),
        )
        vaulted = {"decline_code": DECLINING_CARDS.get(request.number), **response.model_dump()}
        self.store.put_token(self.name, response.token, vaulted)
        return response

    def find_charge(self, reference: str) -> Charge | None:
        found = self.store.get_charge(self.name, reference)
        return Charge.model_validate(found) if found else None

    async def charge(self, request: ChargeRequest) -> tuple[Charge, bool]:
        """The charge for this reference, and whether to answer too late (a timeout)."""
        self.charge_calls[request.reference] = self.charge_calls.get(request.reference, 0) + 1
        await self.behaviour.delay()
        if self.behaviour.take_failure():
            raise SimulatorError(503, "temporarily_unavailable", "acquirer is unavailable")
        async with self._lock:
            existing = self.find_charge(request.reference)
            if existing is not None:
                if (existing.amount, existing.currency) != (request.amount, request.currency):
                    raise SimulatorError(
                        409, "reference_reused", "reference used for another charge"
                    )
                return existing, False
            card = self.store.get_token(self.name, request.token)
            if card is None:
                raise SimulatorError(422, "unknown_token", "token is not known to this provider")
            decline_code: str | None = card["decline_code"]
            if decline_code is None and self.behaviour.roll_decline():
                decline_code = "do_not_honor"
            charge = Charge(
                reference=request.reference,
                charge_id=f"ch_{secrets.token_hex(10)}",
                status="declined" if decline_code else "succeeded",
                decline_code=decline_code,
                amount=request.amount,
                currency=request.currency,
            )
            self.store.put_charge(self.name, request.reference, charge.model_dump())
        return charge, self.behaviour.take_timeout()
