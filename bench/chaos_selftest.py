"""`python -m bench.chaos --self-test`: the chaos run's end checks must be able to fail.

A short run (a few payments under light faults) settles, then breaches are planted on purpose,
behind the platform's back, the way a broken platform or a provider would leave them:

(a) a second charge for a succeeded deposit, made directly at another card acquirer of the
    default routing under the deposit's reference (the card saved and charged on that
    acquirer's own API through its connector, Halyk ePay's or Freedom Pay's, as the platform
    would, but without telling the platform);
(b) the deposit credit of a succeeded deposit posted twice in the ledger (a second posting
    under another key);
(c) a hung workflow: a bank-transfer deposit waiting for its player whose workflow is replaced
    by one that never runs (a DepositWorkflow on a task queue no worker polls): it stays open
    with nothing flagged;
(d) a payout made behind the platform's back: a paid withdrawal paid a second time, at the
    other payout desk of the default routing, on that desk's own API (KazBank's transfers to an
    IBAN, or Freedom Pay's reg2reg to the player's card saved there);
(e) a fault that does not apply (a behaviour knob the simulator does not know: 422);
(f) a dropped late payment: money moved at an acquirer for a deposit that did not succeed
    (a declined card's: charged at another acquirer on its own API, as in (a)), and nobody
    told the platform;
(g) a lost payment: an accepted deposit whose workflow is deleted from Temporal;
(h) a payout for a withdrawal the platform did not pay (failed, rejected or cancelled by the
    player), made at a payout desk that holds nothing for it, as in (d);
(i) a payment flagged stuck whose reason only echoes its status (`stuck_reason` set to the
    status in the database);
(j) unexplained clearing: after the day's reconciliation settled a provider's clearing, money
    posted into it that no report, settlement or case accounts for (a ledger posting made
    directly, provider clearing against the write-off account, at a provider no other plant
    touches).

Then the ordinary end checks run. It exits 0 only when each planted breach is reported by a
check that names it, and prints which check caught which breach.
"""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from db import ledger as ledger_store
from db.engine import make_engine, make_sessionmaker
from domain.ledger import (
    Entry,
    Side,
    TransactionSpec,
    deposit_credit,
    provider_clearing,
    recon_write_off,
)
from providers.card import CardData, CardProviderClient
from providers.registry import build_client, card_dialect, payout_class

if TYPE_CHECKING:
    from bench.chaos import Chaos, Payment, Player

UNKNOWN_KNOB = "chaos_selftest_no_such_knob"
# Card acquirers of the default routing whose own API saves a card server to server.
CARD_ACQUIRERS = ("halyk", "freedom")
NOBODY_POLLS = "chaos-selftest-nobody-polls"
STRAY_CLEARING = 1_234_56  # (j): what is posted into a settled provider's clearing


@dataclass
class Planted:
    name: str
    expect: dict[str, str]  # end check -> what its line must name (a payment or player id)
    what: str = ""
    error: str | None = None  # could not be planted: counts as not caught
    caught_by: dict[str, str] = field(default_factory=dict)  # check -> the line that caught it


class SelfTest:
    def __init__(self) -> None:
        self.planted: list[Planted] = []
        self.http = httpx.AsyncClient(timeout=15.0)

    # -- planting -----------------------------------------------------------------------------

    async def plant(self, chaos: "Chaos") -> None:
        """Every breach in turn; one that cannot be planted is recorded, and fails the test."""
        from bench.chaos import say

        plants: list[tuple[str, Callable[[Chaos], Awaitable[Planted]]]] = [
            ("(a) a second charge made directly at another acquirer", self.second_charge),
            ("(b) a deposit credit posted twice in the ledger", self.credit_twice),
            ("(c) a hung workflow (a payment left open, nothing flagged)", self.hung_workflow),
            ("(d) a second payout behind the platform's back", self.second_payout),
            ("(e) a fault that fails to apply (unknown knob)", self.bad_fault),
            ("(f) a late payment dropped (money moved, deposit not succeeded)", self.dropped_late),
            ("(g) an accepted payment lost (its workflow deleted)", self.lost_payment),
            ("(h) a payout for a withdrawal the platform did not pay", self.unpaid_payout),
            ("(i) a stuck payment whose reason echoes its status", self.echoed_reason),
            ("(j) money in a settled provider's clearing nothing explains", self.stray_clearing),
        ]
        say("SELF-TEST: planting breaches")
        for payment in chaos.payments:
            await chaos.refresh(payment)  # providers and statuses as the platform has them now
        try:
            for name, plant in plants:
                try:
                    planted = await plant(chaos)
                    planted.name = name
                except Exception as exc:
                    planted = Planted(name, {}, error=f"{type(exc).__name__}: {exc}")
                self.planted.append(planted)
                say(f"SELF-TEST planted {name}: {planted.error or planted.what}")
        finally:
            await self.http.aclose()

    def other_card_provider(self, chaos: "Chaos", payment: "Payment", held: list[Any]) -> str:
        """A card acquirer of the routing that holds nothing under this payment's reference
        (Halyk ePay or Freedom Pay first: their own APIs save a card server to server)."""
        busy = {row["provider"] for row in held}
        for name in (*CARD_ACQUIRERS, *chaos.faults.by_method("card")):
            if name != payment.provider and name not in busy:
                return name
        raise RuntimeError(f"every card acquirer already holds {payment.id}")

    async def held(self, chaos: "Chaos", reference: str) -> list[Any]:
        from bench.chaos import sim_call

        found: list[Any] = (
            await sim_call(chaos.sim, "GET", f"/admin/charges?reference={reference}")
        ).json()
        return found

    def card_client(self, chaos: "Chaos", provider: str) -> CardProviderClient:
        """The platform's own connector for this acquirer (its API, credentials, signatures)."""
        settings = chaos.stack.settings
        return build_client(settings, self.http, provider, card_dialect(provider, settings))

    async def save_card(self, chaos: "Chaos", provider: str, number: str) -> str:
        """The card saved at `provider` on its own API: that acquirer's token for it."""
        client = self.card_client(chaos, provider)
        token = await client.tokenize(
            CardData(number=number, exp_month=12, exp_year=2031, cvc="123")
        )
        return token.token

    async def charge_directly(
        self, chaos: "Chaos", payment: "Payment", provider: str, number: str
    ) -> str:
        """Save the card and charge it at `provider` on that acquirer's own API (the
        platform's connector for it), under the payment's reference, without a callback URL:
        the platform is not told."""
        token = await self.save_card(chaos, provider, number)
        assert payment.id
        charge = await self.card_client(chaos, provider).charge(
            reference=payment.id, token=token, amount=payment.amount, currency="KZT"
        )
        if charge.status != "succeeded":
            raise RuntimeError(f"the direct charge at {provider} is {charge.status}")
        return charge.charge_id

    def succeeded_cards(self, chaos: "Chaos", taken: int) -> "Payment":
        found = [
            p
            for p in chaos.payments
            if p.kind == "deposit" and p.method == "card" and p.status == "succeeded"
        ]
        if len(found) <= taken:
            raise RuntimeError("not enough succeeded card deposits to plant on")
        return found[taken]

    async def second_charge(self, chaos: "Chaos") -> Planted:
        payment = self.succeeded_cards(chaos, 0)
        assert payment.id
        other = self.other_card_provider(chaos, payment, await self.held(chaos, payment.id))
        charge_id = await self.charge_directly(chaos, payment, other, payment.player.card)
        return Planted(
            "",
            {"double_charges": payment.id},
            what=f"{payment.id} (credited for {payment.provider}) charged again at {other} "
            f"({charge_id})",
        )

    async def credit_twice(self, chaos: "Chaos") -> Planted:
        payment = self.succeeded_cards(chaos, 1)
        assert payment.id
        assert payment.provider
        assert chaos.stack.database_url
        spec = deposit_credit(
            deposit_id=payment.id,
            player_id=payment.player.id,
            provider=payment.provider,
            amount_minor=payment.amount,
            currency="KZT",
        )
        spec = dataclasses.replace(spec, key=f"{spec.key}:selftest-again")
        engine = make_engine(chaos.stack.database_url, pool_size=1)
        try:
            posted = await ledger_store.post(make_sessionmaker(engine), spec)
        finally:
            await engine.dispose()
        return Planted(
            "",
            {"ledger_postings_wrong": payment.id, "wallets_wrong": payment.player.id},
            what=f"{payment.id}: a second deposit_credit (transaction {posted.id}, key "
            f"{spec.key}) for player {payment.player.id}",
        )

    async def new_payment(
        self,
        chaos: "Chaos",
        kind: str,
        method: str,
        amount: int,
        details: dict[str, Any] | Callable[["Player"], dict[str, Any]],
        *,
        among: Callable[["Player"], bool] = lambda player: True,
        cancel: bool = False,
    ) -> "Payment":
        """A new payment of the funded player (`among` those it accepts) with the most left;
        `details` may depend on the player (their own card). A withdrawal that `cancel`s is
        cancelled by the player as soon as it is accepted, and rejected if it waits for an
        operator."""
        from bench.chaos import Payment

        funded = [p for p in chaos.players if p.funded and among(p)]
        if not funded:
            raise RuntimeError(f"no funded player for a {method} {kind}")
        player = max(funded, key=lambda p: p.funded - p.committed)
        if callable(details):
            details = details(player)
        payment = Payment(kind, method, player, amount, f"selftest_{kind}")
        payment.cancel = cancel
        payment.review = "reject" if cancel else "approve"
        if kind == "deposit":
            payment.body = chaos.deposit_body(payment, details)
        else:
            player.committed += amount
            payment.body = {
                "player_id": player.id,
                "amount": amount,
                "currency": "KZT",
                "method": method,
                "destination": details,
            }
        await chaos.create(payment)
        if payment.id is None:
            raise RuntimeError(f"the API refused the {kind}: {payment.refused}")
        return payment

    async def until(
        self, chaos: "Chaos", payment: "Payment", done: Callable[[str | None], bool]
    ) -> str | None:
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline:
            status = await chaos.refresh(payment)
            if done(status):
                return status
            if payment.kind == "withdrawal" and status == "in_review":
                await chaos.operator_reviews(payment)
            await asyncio.sleep(1.0)
        raise RuntimeError(f"{payment.id} still {payment.status} after 120 s")

    async def temporal(self, chaos: "Chaos") -> Client:
        settings = chaos.stack.settings
        return await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)

    async def echoed_reason(self, chaos: "Chaos") -> Planted:
        from bench.chaos import TENGE

        payment = await self.new_payment(chaos, "deposit", "bank_transfer", 11_000 * TENGE, {})
        await self.until(chaos, payment, lambda s: s == "requires_action")
        assert chaos.stack.database_url
        engine = make_engine(chaos.stack.database_url, pool_size=1)
        try:
            async with make_sessionmaker(engine).begin() as session:
                await session.execute(
                    text(
                        "UPDATE deposits SET stuck_reason = status, stuck_since = now() "
                        "WHERE id = :id"
                    ),
                    {"id": payment.id},
                )
        finally:
            await engine.dispose()
        return Planted(
            "",
            {"open_without_reason": str(payment.id)},
            what=f"{payment.id}: stuck_reason set to its status, {payment.status!r}",
        )

    async def hung_workflow(self, chaos: "Chaos") -> Planted:
        from bench.chaos import TENGE

        payment = await self.new_payment(chaos, "deposit", "bank_transfer", 10_000 * TENGE, {})
        await self.until(chaos, payment, lambda s: s == "requires_action")
        assert payment.workflow_id
        client = await self.temporal(chaos)
        await client.get_workflow_handle(payment.workflow_id).terminate(
            reason="chaos self-test: replaced by a workflow that never runs"
        )
        await client.start_workflow(
            "DepositWorkflow", id=payment.workflow_id, task_queue=NOBODY_POLLS
        )
        return Planted(
            "",
            {"open_without_reason": str(payment.id)},
            what=f"{payment.id} waits for its player; its workflow {payment.workflow_id} now "
            f"runs on task queue {NOBODY_POLLS}, which no worker polls",
        )

    async def finished_withdrawal(
        self, chaos: "Chaos", wanted: Callable[["Payment"], bool], paid: bool
    ) -> "Payment":
        """A withdrawal of the run that `wanted` accepts, or new ones until one ends so: to
        the deposit card of one player whose card the card payout provider vaulted (the closed
        loop sends a withdrawal back to the deposit card first). `paid`: one is enough; else
        the player cancels each at once and the operator rejects any that waits for one, the
        smallest amount each time, until one is not paid (a cancel can come too late; the
        risk engine sends a player's withdrawals to review past its 24-hour count)."""
        from bench.chaos import WITHDRAWAL_MIN, WITHDRAWAL_TERMINAL

        for p in chaos.payments:
            if p.kind == "withdrawal" and p.id and p.status in WITHDRAWAL_TERMINAL and wanted(p):
                return p
        vaulted = [p for p in chaos.players if p.funded and p.card_token]
        if not vaulted:
            raise RuntimeError("no player's card is vaulted where card payouts are made")
        player = max(vaulted, key=lambda p: p.funded - p.committed)
        ended: list[str] = []
        for _ in range(1 if paid else 8):
            payment = await self.new_payment(
                chaos,
                "withdrawal",
                "card",
                WITHDRAWAL_MIN,
                {"card_token": player.card_token},
                among=lambda p: p is player,
                cancel=not paid,
            )
            await self.until(chaos, payment, lambda s: s in WITHDRAWAL_TERMINAL)
            if wanted(payment):
                return payment
            ended.append(f"{payment.id} {payment.status}")
        raise RuntimeError(f"the new withdrawals ended {', '.join(ended)}")

    async def pay_out(self, chaos: "Chaos", payment: "Payment", desk: str) -> str:
        """Pay the withdrawal's amount under its reference at the payout `desk`, on that desk's
        own API through the platform's payout connector for it: to an open IBAN at KazBank
        (the common payout API is KazBank's own), to the player's card saved at Freedom Pay
        (reg2reg pays only to a card it vaulted)."""
        settings = chaos.stack.settings
        client = build_client(settings, self.http, desk, payout_class(settings, desk))
        from bench.chaos import make_iban

        method, destination = "bank_transfer", {"iban": make_iban(chaos.rng)}
        if desk in CARD_ACQUIRERS:
            token = await self.save_card(chaos, desk, payment.player.card)
            method, destination = "card", {"card_token": token}
        assert payment.id
        outcome = await client.pay(
            reference=payment.id,
            amount=payment.amount,
            currency="KZT",
            method=method,
            destination=destination,
        )
        if outcome.status != "paid":
            raise RuntimeError(f"the payout at {desk} is {outcome.status}")
        return str(outcome.payout_id)

    def free_desk(self, chaos: "Chaos", held: list[Any]) -> str:
        """A payout desk of the default routing that holds no payout under this reference."""
        busy = {row["provider"] for row in held if row["kind"] == "payout"}
        desks = dict.fromkeys(chaos.stack.settings.payout_providers.values())
        for name in desks:
            if name not in busy:
                return name
        raise RuntimeError("every payout desk holds this reference")

    async def second_payout(self, chaos: "Chaos") -> Planted:
        payment = await self.finished_withdrawal(chaos, lambda p: p.status == "paid", True)
        assert payment.id
        desk = self.free_desk(chaos, await self.held(chaos, payment.id))
        payout_id = await self.pay_out(chaos, payment, desk)
        return Planted(
            "",
            {"double_payouts": payment.id},
            what=f"{payment.id} (paid by {payment.provider}) paid again at {desk} ({payout_id})",
        )

    async def unpaid_payout(self, chaos: "Chaos") -> Planted:
        payment = await self.finished_withdrawal(chaos, lambda p: p.status != "paid", False)
        assert payment.id
        desk = self.free_desk(chaos, await self.held(chaos, payment.id))
        # To an account that is open (the platform's destination may be closed).
        payout_id = await self.pay_out(chaos, payment, desk)
        return Planted(
            "",
            {"payout_mismatch": payment.id},
            what=f"{payment.id} ({payment.status}) paid at {desk} ({payout_id})",
        )

    async def bad_fault(self, chaos: "Chaos") -> Planted:
        label = f"self-test: halyk knob {UNKNOWN_KNOB}"
        applied = await chaos.faults.apply(
            label, lambda f: f.set_behaviour("halyk", **{UNKNOWN_KNOB: 1})
        )
        return Planted(
            "",
            {"faults_failed": UNKNOWN_KNOB},
            what=f"PUT /admin/providers/halyk/behaviour with {UNKNOWN_KNOB}: "
            + ("accepted?!" if applied else "refused"),
        )

    async def dropped_late(self, chaos: "Chaos") -> Planted:
        from bench.chaos import DECLINED_CARD, DEPOSIT_TERMINAL, TENGE, card_details

        payment = await self.new_payment(
            chaos, "deposit", "card", 7_000 * TENGE, card_details(DECLINED_CARD)
        )
        status = await self.until(chaos, payment, lambda s: s in DEPOSIT_TERMINAL)
        if status == "succeeded":
            raise RuntimeError(f"the declined card's deposit {payment.id} succeeded")
        assert payment.id
        other = self.other_card_provider(chaos, payment, await self.held(chaos, payment.id))
        charge_id = await self.charge_directly(chaos, payment, other, payment.player.card)
        return Planted(
            "",
            {"dropped_late_payments": payment.id},
            what=f"{payment.id} ({status}) charged at {other} ({charge_id}), platform not told",
        )

    async def lost_payment(self, chaos: "Chaos") -> Planted:
        from bench.chaos import DEPOSIT_TERMINAL, TENGE, card_details

        payment = await self.new_payment(
            chaos, "deposit", "card", 6_000 * TENGE, lambda player: card_details(player.card)
        )
        await self.until(chaos, payment, lambda s: s in DEPOSIT_TERMINAL)
        assert payment.workflow_id
        client = await self.temporal(chaos)
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=chaos.stack.settings.temporal_namespace,
                workflow_execution=WorkflowExecution(workflow_id=payment.workflow_id),
            )
        )
        deadline = time.monotonic() + 120.0  # deleted in the background: slow under load
        while time.monotonic() < deadline:
            try:
                await client.get_workflow_handle(payment.workflow_id).describe()
            except RPCError:
                break
            await asyncio.sleep(1.0)
        else:
            raise RuntimeError(f"workflow {payment.workflow_id} still there after deletion")
        return Planted(
            "",
            {"lost": str(payment.id)},
            what=f"{payment.id} ({payment.status}): workflow {payment.workflow_id} deleted",
        )

    async def stray_clearing(self, chaos: "Chaos") -> Planted:
        """Into the clearing of a provider the day's reconciliation left at zero, and that
        no other plant moves money at (not a card acquirer, not the bank's payout desk)."""
        day = max(chaos.business_days())
        rows = {row["provider"]: row for row in await chaos.provider_days(day)}
        busy = {*CARD_ACQUIRERS, *chaos.faults.by_method("card"), "kazbank"}
        settled = [
            provider
            for (provider, on), how in sorted(chaos.reconciled.items())
            if on == day
            and how.startswith("completed")
            and provider not in busy
            and int(rows.get(provider, {}).get("clearing_balance", 0)) == 0
        ]
        if not settled:
            raise RuntimeError(f"no settled provider day of {day} to plant on")
        provider = settled[0]
        assert chaos.stack.database_url
        spec = TransactionSpec(
            key=f"chaos-selftest:stray-clearing:{provider}:{day}",
            kind="chaos_selftest_stray",
            payment_id=None,
            entries=(
                Entry(provider_clearing(provider, "KZT"), Side.DEBIT, STRAY_CLEARING),
                Entry(recon_write_off("KZT"), Side.CREDIT, STRAY_CLEARING),
            ),
        )
        engine = make_engine(chaos.stack.database_url, pool_size=1)
        try:
            posted = await ledger_store.post(make_sessionmaker(engine), spec)
        finally:
            await engine.dispose()
        return Planted(
            "",
            {"unexplained_clearing": f"{provider} {day} KZT: clearing {STRAY_CLEARING},"},
            what=f"{STRAY_CLEARING} posted into {provider}'s clearing after its {day} was "
            f"settled (transaction {posted.id}, key {spec.key})",
        )

    # -- judging ------------------------------------------------------------------------------

    def judge(self, report: dict[str, Any]) -> int:
        """Which check caught which planted breach; 0 only when every one was caught."""
        for planted in self.planted:
            for check, ident in planted.expect.items():
                line = next((line for line in report.get(check, []) if ident in line), None)
                if line is not None:
                    planted.caught_by[check] = line
        print("\n=== self-test: every planted breach must be reported by an end check ===")
        for planted in self.planted:
            if planted.caught_by:
                print(f"  CAUGHT  {planted.name}")
                print(f"          planted: {planted.what}")
                for check, line in planted.caught_by.items():
                    print(f"          by {check}: {line}")
            else:
                print(f"  MISSED  {planted.name}")
                print(f"          planted: {planted.error or planted.what}")
                print(f"          expected in: {', '.join(planted.expect) or '(not planted)'}")
        from bench.chaos import CHECKS

        idents = [ident for p in self.planted for ident in p.expect.values()]
        others = [
            f"{check}: {line}"
            for check in CHECKS
            for line in report.get(check, [])
            if not any(ident in line for ident in idents)
        ]
        for line in others:
            print(f"  also reported (not planted): {line}")
        caught = sum(1 for p in self.planted if p.caught_by)
        ok = caught == len(self.planted) and bool(self.planted)
        print(
            f"SELF-TEST: {'PASS' if ok else 'FAIL'} ({caught}/{len(self.planted)} planted "
            "breaches reported)",
            flush=True,
        )
        report["self_test"] = [dataclasses.asdict(p) for p in self.planted]
        return 0 if ok else 1
