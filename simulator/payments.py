"""Simulated asynchronous providers: bank transfer, e-wallet, mobile banking app, QR, aggregator.

Each payment is created under our reference (idempotent: the same reference and amount return the
same payment), tells what the payer must do (`action`), and is completed by the payer on the
simulator's player-facing page or endpoints. The provider then sends a signed callback; a status
inquiry by reference always tells the truth, and `cancel` closes an unpaid payment.

Test data: e-wallet account `insufficient` declines for insufficient funds on confirmation;
a phone ending in `0000` has no account at the mobile bank.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from simulator.behaviour import BehaviourState
from simulator.cards import SimulatorError
from simulator.store import SimulatorStore

AsyncMethod = Literal["bank_transfer", "ewallet", "mobile_banking", "qr", "aggregator"]
PaymentStatus = Literal["pending", "succeeded", "declined", "expired", "cancelled"]
FINAL = ("succeeded", "declined", "expired", "cancelled")

# The collection account players transfer to (a valid KZ IBAN).
COLLECTION_IBAN = "KZ86125KZT5004100100"


class PaymentRequest(BaseModel):
    reference: str = Field(min_length=1, max_length=64)
    method: AsyncMethod
    amount: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    phone: str | None = None
    account: str | None = None
    callback_url: str | None = None
    return_url: str | None = None
    expires_in_seconds: int = Field(default=900, gt=0, le=30 * 86400)


class Payment(BaseModel):
    reference: str
    payment_id: str
    method: AsyncMethod
    status: PaymentStatus
    amount: int
    currency: str
    amount_received: int | None = None
    decline_code: str | None = None
    paid_with: str | None = None
    action: dict[str, Any]
    expires_at: datetime


class PayerAction(BaseModel):
    """What the payer does on the page: pay (confirm / scan / transfer) or decline."""

    amount: int | None = Field(default=None, gt=0, description="bank transfers: amount sent")
    method: str | None = Field(default=None, description="aggregators: the method picked")


@dataclass
class AsyncProvider:
    name: str
    method: AsyncMethod
    store: SimulatorStore
    notify: Callable[["AsyncProvider", Payment], None]
    behaviour: BehaviourState = field(default_factory=BehaviourState)
    calls: dict[str, int] = field(default_factory=dict)
    on_created: Callable[[str], None] = lambda _reference: None

    def find(self, reference: str) -> Payment | None:
        found = self.store.get_payment(self.name, reference)
        if found is None:
            return None
        payment = Payment.model_validate(found["payment"])
        if payment.status == "pending" and datetime.now(UTC) >= payment.expires_at:
            payment = payment.model_copy(update={"status": "expired", "decline_code": "expired"})
            self._save(payment, found.get("callback_url"))
        return payment

    def callback_url(self, reference: str) -> str | None:
        found = self.store.get_payment(self.name, reference)
        return found.get("callback_url") if found else None

    def _save(self, payment: Payment, callback_url: str | None) -> None:
        self.store.put_payment(
            self.name,
            payment.reference,
            {"payment": payment.model_dump(mode="json"), "callback_url": callback_url},
        )

    async def create(self, request: PaymentRequest, *, page_base: str) -> tuple[Payment, bool]:
        self.calls[request.reference] = self.calls.get(request.reference, 0) + 1
        await self.behaviour.delay()
        if self.behaviour.take_failure():
            raise SimulatorError(503, "temporarily_unavailable", f"{self.name} is unavailable")
        if request.method != self.method:
            raise SimulatorError(422, "unsupported_method", f"{self.name} serves {self.method}")
        existing = self.find(request.reference)
        if existing is not None:
            if (existing.amount, existing.currency) != (request.amount, request.currency):
                raise SimulatorError(409, "reference_reused", "reference used for another payment")
            return existing, False
        status: PaymentStatus = "pending"
        decline_code = None
        if self.method == "mobile_banking":
            if not request.phone:
                raise SimulatorError(422, "phone_required", "mobile banking needs the phone")
            if request.phone.endswith("0000"):
                status, decline_code = "declined", "not_a_customer"
        if self.method == "ewallet" and not request.account:
            raise SimulatorError(422, "account_required", "e-wallet payments need an account")
        expires_at = datetime.now(UTC) + timedelta(seconds=request.expires_in_seconds)
        page = f"{page_base}pay/{self.name}/{request.reference}"
        payment = Payment(
            reference=request.reference,
            payment_id=f"pay_{secrets.token_hex(10)}",
            method=self.method,
            status=status,
            decline_code=decline_code,
            amount=request.amount,
            currency=request.currency,
            action=self._action(request, page, expires_at),
            expires_at=expires_at,
        )
        self.store.put_payment(
            self.name,
            request.reference,
            {
                "payment": payment.model_dump(mode="json"),
                "callback_url": request.callback_url,
                "account": request.account,
            },
        )
        self.on_created(request.reference)
        return payment, self.behaviour.take_timeout()

    def _action(self, request: PaymentRequest, page: str, expires_at: datetime) -> dict[str, Any]:
        expires = expires_at.isoformat()
        if self.method == "bank_transfer":
            return {
                "type": "bank_transfer_instructions",
                "bank_name": "KazBank JSC",
                "bic": "KZBKKZKA",
                "iban": COLLECTION_IBAN,
                "beneficiary": "KZ Gaming Payments LLP",
                "reference": request.reference,
                "amount": request.amount,
                "currency": request.currency,
                "expires_at": expires,
                "pay_url": page,
            }
        if self.method == "mobile_banking":
            phone = request.phone or ""
            return {
                "type": "app_confirm",
                "app": self.name,
                "phone": phone[:5] + "***" + phone[-4:],
                "expires_at": expires,
                "confirm_url": page,
            }
        if self.method == "qr":
            return {"type": "qr", "payload": page, "expires_at": expires}
        return {"type": "redirect", "url": page, "expires_at": expires}

    def act(self, reference: str, *, pay: bool, action: PayerAction) -> Payment:
        """The payer confirms, scans, transfers or declines."""
        payment = self.find(reference)
        if payment is None:
            raise SimulatorError(404, "not_found", f"no payment with reference {reference!r}")
        if payment.status != "pending":
            raise SimulatorError(409, f"payment_{payment.status}", f"payment is {payment.status}")
        stored = self.store.get_payment(self.name, reference) or {}
        update: dict[str, Any]
        if not pay:
            update = {"status": "declined", "decline_code": "declined_by_payer"}
        elif self.method == "ewallet" and stored.get("account") == "insufficient":
            update = {"status": "declined", "decline_code": "insufficient_funds"}
        elif self.behaviour.roll_decline():
            update = {"status": "declined", "decline_code": "do_not_honor"}
        else:
            update = {
                "status": "succeeded",
                "amount_received": action.amount or payment.amount,
                "paid_with": action.method if self.method == "aggregator" else None,
            }
        settled = payment.model_copy(update=update)
        self._save(settled, stored.get("callback_url"))
        self.notify(self, settled)
        return settled

    def cancel(self, reference: str) -> Payment:
        payment = self.find(reference)
        if payment is None:
            raise SimulatorError(404, "not_found", f"no payment with reference {reference!r}")
        if payment.status != "pending":
            return payment
        cancelled = payment.model_copy(update={"status": "cancelled", "decline_code": "cancelled"})
        self._save(cancelled, self.callback_url(reference))
        return cancelled
