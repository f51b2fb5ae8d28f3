"""A simulated card acquirer: tokenize, charge, status inquiry; idempotent on our reference.

Test cards behave like acquirers' sandboxes: 4000000000000002 is declined for insufficient funds,
4000000000000069 as expired, 4000000000003220 asks for 3-D Secure (the charge `requires_action`
until the payer passes or fails the challenge on the simulator's page, then a signed callback),
every other Luhn-valid number is approved unless the behaviour says otherwise.
"""

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from domain.cards import card_scheme, luhn_valid
from simulator.behaviour import BehaviourState
from simulator.faults import SimulatorError
from simulator.store import SimulatorStore

__all__ = ["CardProvider", "Charge", "ChargeRequest", "SimulatorError", "TokenizeRequest"]

DECLINING_CARDS = {"4000000000000002": "insufficient_funds", "4000000000000069": "expired_card"}
THREE_DS_CARDS = {"4000000000003220"}
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
    callback_url: str | None = None
    return_url: str | None = None


class Charge(BaseModel):
    reference: str
    charge_id: str
    status: Literal["succeeded", "declined", "requires_action", "cancelled"]
    decline_code: str | None = None
    amount: int
    currency: str
    action_url: str | None = None


@dataclass
class CardProvider:
    name: str
    store: SimulatorStore
    behaviour: BehaviourState = field(default_factory=BehaviourState)
    charge_calls: dict[str, int] = field(default_factory=dict)
    on_created: Callable[[str], None] = lambda _reference: None
    callback_urls: dict[str, str] = field(default_factory=dict)
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
        vaulted = {
            "decline_code": DECLINING_CARDS.get(request.number),
            "three_ds": request.number in THREE_DS_CARDS,
            **response.model_dump(),
        }
        self.store.put_token(self.name, response.token, vaulted)
        return response

    def find_charge(self, reference: str) -> Charge | None:
        found = self.store.get_charge(self.name, reference)
        return Charge.model_validate(found) if found else None

    async def charge(self, request: ChargeRequest, *, page_base: str = "") -> tuple[Charge, bool]:
        """The charge for this reference, and whether to answer too late (a timeout).

        Once processed, the behaviour may still turn the answer into a 5xx or a dropped
        connection (`BehaviourState.after_processing`): the card is charged all the same."""
        self.charge_calls[request.reference] = self.charge_calls.get(request.reference, 0) + 1
        late = self.behaviour.take_late()
        if late:  # stuck in the network; it must not consume faults set up for later calls
            await asyncio.sleep(self.behaviour.behaviour.timeout_seconds)
        await self.behaviour.delay()
        if not late and self.behaviour.take_failure():
            raise SimulatorError(503, "temporarily_unavailable", "acquirer is unavailable")
        async with self._lock:
            charge = self._charge_once(request, page_base)
        if late:
            return charge, False
        self.behaviour.after_processing()
        return charge, self.behaviour.take_timeout()

    def _charge_once(self, request: ChargeRequest, page_base: str) -> Charge:
        existing = self.find_charge(request.reference)
        if existing is not None:
            if existing.status == "cancelled":
                return existing  # closed by the merchant: never charged
            if (existing.amount, existing.currency) != (request.amount, request.currency):
                raise SimulatorError(409, "reference_reused", "reference used for another charge")
            return existing
        card = self.store.get_token(self.name, request.token)
        if card is None:
            raise SimulatorError(422, "unknown_token", "token is not known to this provider")
        decline_code: str | None = card["decline_code"]
        if decline_code is None and self.behaviour.roll_decline():
            decline_code = "do_not_honor"
        three_ds = bool(card.get("three_ds")) and decline_code is None
        charge = Charge(
            reference=request.reference,
            charge_id=f"ch_{secrets.token_hex(10)}",
            status="requires_action" if three_ds else ("declined" if decline_code else "succeeded"),
            decline_code=decline_code,
            amount=request.amount,
            currency=request.currency,
            action_url=f"{page_base}pay/{self.name}/{request.reference}" if three_ds else None,
        )
        self.store.put_charge(self.name, request.reference, charge.model_dump())
        if request.callback_url:
            self.callback_urls[request.reference] = request.callback_url
        self.on_created(request.reference)
        return charge

    def finish_challenge(self, reference: str, *, passed: bool) -> Charge:
        """The payer passed or failed 3-D Secure; a charge already settled stays as it is."""
        charge = self.find_charge(reference)
        if charge is None:
            raise SimulatorError(404, "not_found", f"no charge with reference {reference!r}")
        if charge.status != "requires_action":
            return charge
        settled = charge.model_copy(
            update={
                "status": "succeeded" if passed else "declined",
                "decline_code": None if passed else "authentication_failed",
            }
        )
        self.store.put_charge(self.name, reference, settled.model_dump())
        return settled

    def cancel(self, reference: str) -> Charge:
        """Close a reference. Unknown to us, as the behaviour's `unknown_cancel` says: 404 and
        nothing recorded (a charge request still in flight under it is processed when it lands,
        as at real acquirers), or a tombstone: remembered as cancelled, so that such a request
        is refused when it arrives."""
        charge = self.find_charge(reference)
        if charge is None:
            if self.behaviour.behaviour.unknown_cancel == "not_found":
                raise SimulatorError(404, "not_found", f"no charge with reference {reference!r}")
            tombstone = Charge(
                reference=reference,
                charge_id=f"ch_void_{secrets.token_hex(6)}",
                status="cancelled",
                decline_code="cancelled_by_merchant",
                amount=0,
                currency="",
            )
            self.store.put_charge(self.name, reference, tombstone.model_dump())
            return tombstone
        if charge.status != "requires_action":
            return charge
        cancelled = charge.model_copy(update={"status": "cancelled", "decline_code": "expired"})
        self.store.put_charge(self.name, reference, cancelled.model_dump())
        return cancelled
