"""Simulated asynchronous providers: bank transfer, e-wallet, mobile banking app, QR, aggregator.

Each payment is created under our reference (idempotent: the same reference and amount return the
same payment), tells what the payer must do (`action`), and is completed by the payer on the
simulator's player-facing page or endpoints. The provider then sends a signed callback; a status
inquiry by reference always tells the truth, and `cancel` closes an unpaid payment.

Test data: e-wallet account `insufficient` declines for insufficient funds on confirmation;
a phone ending in `0000` has no account at the mobile bank.

Bank transfers also arrive as bank statement lines (`credit_transfer`, the admin endpoint
`POST /admin/providers/{name}/statement-lines`): any amount, at any time (after the order
expired or was cancelled too), the reference written by the payer in a free-text purpose.
"""

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from simulator.behaviour import BehaviourState
from simulator.faults import SimulatorError
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


class StatementLine(BaseModel):
    """An incoming transfer as the bank's statement shows it."""

    amount: int = Field(gt=0, description="the amount credited, in minor units")
    currency: str = Field(default="KZT", min_length=3, max_length=3)
    purpose: str = Field(
        max_length=420,
        description="the payment purpose the payer typed; it names the order's reference "
        "somewhere, in any case, with other words around it (or not at all)",
    )
    payer_name: str | None = None
    payer_iban: str | None = None
    payer_iin: str | None = Field(default=None, description="the payer's IIN, if the bank has it")


class CreditedLine(BaseModel):
    """A statement line and what the bank made of it."""

    line_id: str
    amount: int
    currency: str
    purpose: str
    payer_name: str | None = None
    payer_iban: str | None = None
    payer_iin: str | None = None
    booked_at: datetime
    matched_reference: str | None = Field(
        description="the order the purpose names; null: unmatched (nobody is told)"
    )
    ordered_amount: int | None = None
    received_total: int | None = Field(
        default=None, description="all the order received so far, this line included"
    )
    amount_check: Literal["exact", "short", "over"] | None = Field(
        default=None, description="received_total against the ordered amount"
    )
    late: bool = Field(
        default=False, description="the order had expired, was cancelled or declined"
    )
    repeat: bool = Field(default=False, description="the order had already been paid")
    payment: Payment | None = None


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
    statement: list[CreditedLine] = field(default_factory=list)
    _tasks: set["asyncio.Task[None]"] = field(default_factory=set)

    def find(self, reference: str) -> Payment | None:
        found = self.store.get_payment(self.name, reference)
        if found is None:
            return None
        payment = Payment.model_validate(found["payment"])
        if payment.status == "pending" and datetime.now(UTC) >= payment.expires_at:
            payment = payment.model_copy(update={"status": "expired", "decline_code": "expired"})
            self._save(payment)
            self._closed(reference)
        return payment

    def callback_url(self, reference: str) -> str | None:
        found = self.store.get_payment(self.name, reference)
        return found.get("callback_url") if found else None

    def _save(self, payment: Payment) -> None:
        """Store the payment's new state, keeping what else we hold (callback URL, account)."""
        stored = self.store.get_payment(self.name, payment.reference) or {}
        stored["payment"] = payment.model_dump(mode="json")
        self.store.put_payment(self.name, payment.reference, stored)

    def _closed(self, reference: str) -> None:
        """A pending payment just expired or was cancelled: with `late_success_after_expiry`,
        it is reported paid all the same, at once or `late_success_delay_ms` later."""
        b = self.behaviour.behaviour
        if not b.late_success_after_expiry:
            return
        if not b.late_success_delay_ms:
            self._pay_late(reference)
            return

        async def later() -> None:
            await asyncio.sleep(b.late_success_delay_ms / 1000)
            self._pay_late(reference)

        self._spawn(later())

    def _pay_late(self, reference: str) -> None:
        found = self.store.get_payment(self.name, reference)
        if found is None:
            return
        payment = Payment.model_validate(found["payment"])
        if payment.status not in ("expired", "cancelled"):
            return
        settled = payment.model_copy(
            update={
                "status": "succeeded",
                "decline_code": None,
                "amount_received": payment.amount_received or payment.amount,
            }
        )
        self._save(settled)
        self.notify(self, settled)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _watch_expiry(self, reference: str) -> None:
        """With `late_success_after_expiry` on, the provider notices the expiry itself (without
        it, a payment is found expired when next looked at)."""
        found = self.store.get_payment(self.name, reference)
        if found is None:
            return
        expires_at = Payment.model_validate(found["payment"]).expires_at
        delay = (expires_at - datetime.now(UTC)).total_seconds() + 0.05
        loop = asyncio.get_running_loop()
        if delay > 0:
            loop.call_later(delay, self._check_expiry, reference)
        else:
            loop.call_soon(self._check_expiry, reference)

    def _check_expiry(self, reference: str) -> None:
        payment = self.find(reference)  # marks it expired (and pays it late) when due
        if payment is not None and payment.status == "pending":
            self._watch_expiry(reference)  # the deadline moved (or the clock ran early)

    def expire(self, reference: str) -> Payment:
        """Admin: the order's time is up now (instead of waiting for its expiry)."""
        payment = self.find(reference)
        if payment is None:
            raise SimulatorError(404, "not_found", f"no payment with reference {reference!r}")
        if payment.status == "pending":
            self._save(payment.model_copy(update={"expires_at": datetime.now(UTC)}))
            payment = self.find(reference) or payment
        return payment

    async def create(self, request: PaymentRequest, *, page_base: str) -> tuple[Payment, bool]:
        self.calls[request.reference] = self.calls.get(request.reference, 0) + 1
        await self.behaviour.delay()
        if self.behaviour.take_failure():
            raise SimulatorError(503, "temporarily_unavailable", f"{self.name} is unavailable")
        if request.method != self.method:
            raise SimulatorError(422, "unsupported_method", f"{self.name} serves {self.method}")
        payment = self._create_once(request, page_base)
        self.behaviour.after_processing()
        return payment, self.behaviour.take_timeout()

    def _create_once(self, request: PaymentRequest, page_base: str) -> Payment:
        existing = self.find(request.reference)
        if existing is not None:
            if existing.payment_id.startswith("pay_void_"):
                return existing  # closed by the merchant before it arrived: never opened
            if (existing.amount, existing.currency) != (request.amount, request.currency):
                raise SimulatorError(409, "reference_reused", "reference used for another payment")
            return existing
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
        if self.behaviour.behaviour.late_success_after_expiry and status == "pending":
            self._watch_expiry(request.reference)
        return payment

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
        late = payment.status in ("expired", "cancelled") and pay
        if payment.status != "pending" and not (
            late and self.behaviour.behaviour.late_success_after_expiry
        ):
            raise SimulatorError(409, f"payment_{payment.status}", f"payment is {payment.status}")
        stored = self.store.get_payment(self.name, reference) or {}
        update: dict[str, Any]
        if not pay:
            update = {"status": "declined", "decline_code": "declined_by_payer"}
        elif self.method == "ewallet" and stored.get("account") == "insufficient":
            update = {"status": "declined", "decline_code": "insufficient_funds"}
        elif not late and self.behaviour.roll_decline():
            update = {"status": "declined", "decline_code": "do_not_honor"}
        else:
            update = {
                "status": "succeeded",
                "decline_code": None,
                "amount_received": action.amount or payment.amount,
                "paid_with": action.method if self.method == "aggregator" else None,
            }
        settled = payment.model_copy(update=update)
        self._save(settled)
        self.notify(self, settled)
        return settled

    def cancel(self, reference: str) -> Payment:
        """Close an unpaid payment. Unknown to us, as the behaviour's `unknown_cancel` says:
        404 (nothing recorded), or a tombstone that a later create under it gets back."""
        payment = self.find(reference)
        if payment is None:
            if self.behaviour.behaviour.unknown_cancel == "not_found":
                raise SimulatorError(404, "not_found", f"no payment with reference {reference!r}")
            now = datetime.now(UTC)
            tombstone = Payment(
                reference=reference,
                payment_id=f"pay_void_{secrets.token_hex(6)}",
                method=self.method,
                status="cancelled",
                decline_code="cancelled",
                amount=0,
                currency="",
                action={},
                expires_at=now,
            )
            self.store.put_payment(
                self.name, reference, {"payment": tombstone.model_dump(mode="json")}
            )
            return tombstone
        if payment.status != "pending":
            return payment
        cancelled = payment.model_copy(update={"status": "cancelled", "decline_code": "cancelled"})
        self._save(cancelled)
        self._closed(reference)
        return cancelled

    def credit_transfer(self, line: StatementLine) -> CreditedLine:
        """A transfer lands on the collection account. The bank matches it to the order its
        purpose names and reports it whatever the amount, and even if the order expired or was
        cancelled (the money is there); a second transfer adds to what the order received.
        A line naming no order stays unmatched: nobody is told."""
        if self.method != "bank_transfer":
            raise SimulatorError(422, "not_a_bank", f"{self.name} takes no bank transfers")
        booked = CreditedLine(
            line_id=f"stl_{secrets.token_hex(8)}",
            booked_at=datetime.now(UTC),
            matched_reference=None,
            **line.model_dump(),
        )
        reference = self.store.payment_named_in(self.name, line.purpose)
        payment = self.find(reference) if reference else None
        if payment is None or payment.payment_id.startswith("pay_void_"):
            self.statement.append(booked)
            return booked
        if payment.currency != line.currency:
            self.statement.append(booked)  # another currency cannot pay this order
            return booked
        repeat = payment.status == "succeeded"
        total = (payment.amount_received or 0) + line.amount if repeat else line.amount
        settled = payment.model_copy(
            update={"status": "succeeded", "decline_code": None, "amount_received": total}
        )
        self._save(settled)
        self.notify(self, settled)
        booked = booked.model_copy(
            update={
                "matched_reference": payment.reference,
                "ordered_amount": payment.amount,
                "received_total": total,
                "amount_check": "exact"
                if total == payment.amount
                else ("short" if total < payment.amount else "over"),
                "late": payment.status in ("expired", "cancelled", "declined"),
                "repeat": repeat,
                "payment": settled,
            }
        )
        self.statement.append(booked)
        return booked
