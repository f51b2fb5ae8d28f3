"""Simulated payouts (card credit, bank transfer to an IBAN, wallet, mobile banking).

Idempotent on our reference like a real payout API: the same reference is paid once, and a
status inquiry by reference tells what became of a call whose answer was lost. Payouts are kept
in the simulator's store (SQLite in the data directory), so they survive a restart.
Test destinations that fail: an IBAN whose account starts with `999` (account closed), a card
ending `0002` (not eligible for credits), the phone `+77000000000` (no such customer).
"""

import asyncio
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from config import Settings
from simulator.behaviour import Behaviour, BehaviourState
from simulator.cards import SimulatorError
from simulator.store import SimulatorStore


class PayoutRequest(BaseModel):
    reference: str = Field(min_length=1, max_length=80)
    amount: int = Field(gt=0)
    currency: str
    method: Literal["card", "bank_transfer", "ewallet", "mobile_banking"]
    destination: dict[str, Any]


class PayoutCancelRequest(BaseModel):
    amount: int = Field(gt=0)
    currency: str


class Payout(BaseModel):
    reference: str
    payout_id: str
    status: Literal["paid", "failed"]
    failure_code: str | None = None
    amount: int
    currency: str


class PayoutLog(BaseModel):
    reference: str
    calls: int
    payout: Payout | None


def _failure(request: PayoutRequest) -> str | None:
    destination = request.destination
    iban = str(destination.get("iban", ""))
    if iban[7:10] == "999":
        return "account_closed"
    card = destination.get("card")
    if isinstance(card, dict) and card.get("last4") == "0002":
        return "card_not_eligible"
    if destination.get("phone") == "+77000000000":
        return "unknown_customer"
    return None


class PayoutDesk:
    """One provider's payouts, kept in memory by reference."""

    def __init__(self, name: str, store: SimulatorStore) -> None:
        self.name = name
        self.behaviour = BehaviourState()
        self.store = store
        self.calls: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def find(self, reference: str) -> Payout | None:
        data = self.store.get_payout(self.name, reference)
        return Payout.model_validate(data) if data else None

    def _save(self, payout: Payout) -> Payout:
        self.store.put_payout(self.name, payout.reference, payout.model_dump())
        return payout

    async def pay(self, request: PayoutRequest) -> Payout:
        self.calls[request.reference] = self.calls.get(request.reference, 0) + 1
        await self.behaviour.delay()
        if self.behaviour.take_failure():
            raise SimulatorError(503, "unavailable", "payout gateway unavailable")
        async with self._lock:
            payout = self.find(request.reference)
            if payout is None:
                failure = _failure(request) or (
                    "declined_by_bank" if self.behaviour.roll_decline() else None
                )
                payout = self._save(
                    Payout(
                        reference=request.reference,
                        payout_id=f"po_{secrets.token_hex(8)}",
                        status="failed" if failure else "paid",
                        failure_code=failure,
                        amount=request.amount,
                        currency=request.currency,
                    )
                )
            elif payout.failure_code == "cancelled":
                pass  # closed by the merchant: a late request is never paid
            elif (payout.amount, payout.currency) != (request.amount, request.currency):
                raise SimulatorError(409, "reference_reused", "reference used for another payout")
        if self.behaviour.take_timeout():
            await asyncio.sleep(self.behaviour.behaviour.timeout_seconds)
        return payout

    async def cancel(self, reference: str, amount: int, currency: str) -> Payout:
        """Void a reference: a payout already made is returned as it is; otherwise any late
        request under this reference will be refused, so the caller may release its funds."""
        await self.behaviour.delay()
        async with self._lock:
            payout = self.find(reference)
            if payout is None:
                payout = self._save(
                    Payout(
                        reference=reference,
                        payout_id=f"po_{secrets.token_hex(8)}",
                        status="failed",
                        failure_code="cancelled",
                        amount=amount,
                        currency=currency,
                    )
                )
            return payout


def payout_router(settings: Settings, store: SimulatorStore) -> APIRouter:
    router = APIRouter(tags=["payouts"])
    desks: dict[str, PayoutDesk] = {}

    def desk(name: str) -> PayoutDesk:
        if name not in settings.provider_secrets:
            raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")
        if name not in desks:
            desks[name] = PayoutDesk(name, store)
        return desks[name]

    def authorized(name: str, authorization: str = Header(default="")) -> PayoutDesk:
        found = desk(name)
        if authorization != f"Bearer {settings.provider_secret(name)}":
            raise SimulatorError(401, "unauthorized", "bad API key")
        return found

    Authorized = Annotated[PayoutDesk, Depends(authorized)]
    Admin = Annotated[PayoutDesk, Depends(desk)]

    @router.post("/providers/{name}/payouts", status_code=201)
    async def create_payout(body: PayoutRequest, payouts: Authorized) -> Payout:
        return await payouts.pay(body)

    @router.post("/providers/{name}/payouts/{reference}/cancel")
    async def cancel_payout(
        reference: str, body: PayoutCancelRequest, payouts: Authorized
    ) -> Payout:
        return await payouts.cancel(reference, body.amount, body.currency)

    @router.get("/providers/{name}/payouts/{reference}")
    async def payout_status(reference: str, payouts: Authorized) -> Payout:
        await payouts.behaviour.delay()
        found = payouts.find(reference)
        if found is None:
            raise SimulatorError(404, "not_found", f"no payout {reference!r}")
        return found

    @router.get("/admin/payouts/{name}/behaviour")
    async def get_payout_behaviour(payouts: Admin) -> Behaviour:
        return payouts.behaviour.behaviour

    @router.put("/admin/payouts/{name}/behaviour")
    async def set_payout_behaviour(body: Behaviour, payouts: Admin) -> Behaviour:
        payouts.behaviour.behaviour = body
        return body

    @router.get("/admin/payouts/{name}/{reference}")
    async def payout_log(reference: str, payouts: Admin) -> PayoutLog:
        return PayoutLog(
            reference=reference,
            calls=payouts.calls.get(reference, 0),
            payout=payouts.find(reference),
        )

    return router
