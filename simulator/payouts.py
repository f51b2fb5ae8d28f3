"""Simulated payouts (card credit, bank transfer to an IBAN, wallet, mobile banking).

Idempotent on our reference like a real payout API: the same reference is paid once, and a
status inquiry by reference tells what became of a call whose answer was lost. Payouts are kept
in the simulator's store (SQLite in the data directory), so they survive a restart.
Test destinations that fail: an IBAN whose account starts with `999` (account closed), a card
ending `0002` (not eligible for credits), the phone `+77000000000` (no such customer).

With the desk's `payout_processing_seconds`, a payout answers and inquires `processing` for that
long, then shows its outcome (paid, or failed for the destinations above).
"""

import asyncio
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from config import Settings
from simulator.behaviour import Behaviour, BehaviourState
from simulator.faults import SimulatorError
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
    status: Literal["processing", "paid", "failed"]
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
    """One provider's payouts, kept in the simulator's store by reference."""

    def __init__(self, name: str, store: SimulatorStore) -> None:
        self.name = name
        # A void of a reference never seen keeps a tombstone here (what the withdrawal flow's
        # "void, then release the funds" relies on), unless the behaviour says otherwise.
        self.behaviour = BehaviourState(defaults={"unknown_cancel": "tombstone"})
        self.store = store
        self.calls: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def find(self, reference: str) -> Payout | None:
        data = self.store.get_payout(self.name, reference)
        if data is None:
            return None
        payout = Payout.model_validate(data)
        settles = data.get("settles_at")
        if payout.status == "processing" and settles is not None and time.time() >= settles:
            payout = payout.model_copy(
                update={"status": data["final_status"], "failure_code": data["final_failure"]}
            )
            self._save(payout)
        return payout

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
                payout = self._open(request)
            elif payout.failure_code == "cancelled":
                pass  # closed by the merchant: a late request is never paid
            elif (payout.amount, payout.currency) != (request.amount, request.currency):
                raise SimulatorError(409, "reference_reused", "reference used for another payout")
        self.behaviour.after_processing()
        if self.behaviour.take_timeout():
            await asyncio.sleep(self.behaviour.behaviour.timeout_seconds)
        return payout

    def _open(self, request: PayoutRequest) -> Payout:
        failure = _failure(request) or (
            "declined_by_bank" if self.behaviour.roll_decline() else None
        )
        payout = Payout(
            reference=request.reference,
            payout_id=f"po_{secrets.token_hex(8)}",
            status="failed" if failure else "paid",
            failure_code=failure,
            amount=request.amount,
            currency=request.currency,
        )
        processing = self.behaviour.behaviour.payout_processing_seconds
        if not processing:
            return self._save(payout)
        shown = payout.model_copy(update={"status": "processing", "failure_code": None})
        self.store.put_payout(
            self.name,
            payout.reference,
            {
                **shown.model_dump(),
                "settles_at": time.time() + processing,
                "final_status": payout.status,
                "final_failure": payout.failure_code,
            },
        )
        return shown

    async def cancel(self, reference: str, amount: int, currency: str) -> Payout:
        """Void a reference: a payout already made (or processing) is returned as it is.
        Never seen, as the behaviour's `unknown_cancel` says: by default a tombstone, so any
        late request under this reference is refused and the caller may release its funds;
        or 404 and nothing recorded."""
        await self.behaviour.delay()
        async with self._lock:
            payout = self.find(reference)
            if payout is None:
                if self.behaviour.behaviour.unknown_cancel == "not_found":
                    raise SimulatorError(404, "not_found", f"no payout {reference!r}")
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


def payout_router(
    settings: Settings, store: SimulatorStore, desks: dict[str, PayoutDesk] | None = None
) -> APIRouter:
    router = APIRouter(tags=["payouts"])
    desks = {} if desks is None else desks

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
        found.behaviour.admit(f"{name} payouts")
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
        return payouts.behaviour.behaviour

    @router.get("/admin/payouts/{name}/{reference}")
    async def payout_log(reference: str, payouts: Admin) -> PayoutLog:
        return PayoutLog(
            reference=reference,
            calls=payouts.calls.get(reference, 0),
            payout=payouts.find(reference),
        )

    return router
