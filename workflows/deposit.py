"""DepositWorkflow: the story of one deposit, top to bottom.

1. Prepare (one database step): the risk check, the route (the providers in failover order,
   decided once and kept in history before any provider is called) and, for a card,
   `processing`. A declined risk check ends it here.
2. At each provider in turn (`workflows.deposit_provider.AtProvider`): start the payment. Only
   the provider's clear "not processed" moves the deposit on to the next one; an unknown
   outcome is settled at the same provider, or the deposit stays there flagged stuck.
3. Asynchronous methods and 3-D Secure wait in `requires_action` for the player, polling the
   provider (a callback only makes the next poll come now).
4. A success for the exact amount and currency credits the wallet and records `succeeded` in
   one database transaction; anything else records the final status with a bounded reason.
5. Compliance (issue 17, gated by patches): a credited deposit is reported to the unified
   accounting system (a child `ComplianceReportWorkflow`); a success the provider reports as
   paid with credit money is not credited: the deposit fails `credit_funds_not_allowed`, a case
   is opened and the money refunded at the provider.
6. Review (issue 18, gated by `fraud-review-hold`): a deposit the risk engine sends to review is
   paid but not credited: it waits in `in_review` for an operator's `approve` (credited) or
   `reject` (declined, refunded at the provider): workflows/deposit_review.py.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.compliance import ComplianceActivities, CreditFundsInput
    from activities.deposits import DepositActivities
    from activities.gateway_models import (
        PrepareDepositInput,
        ProviderCallResult,
        ProviderEvent,
        RecordRouteInput,
        RouteCandidate,
        RouteDepositInput,
    )
    from activities.late_payments import LatePaymentActivities, OpenLateInput, ResolveLateInput
    from activities.models import CreditDepositInput, RecordStatusInput
    from domain.compliance.credit import REFUSAL_CODE, funding_is_credit, funding_label
    from domain.risk import RiskVerdict
    from domain.statuses import DepositStatus
    from workflows import search_attributes as sa
    from workflows.compliance_steps import (
        CREDIT_FUNDS_PATCH,
        ESU_REPORT_PATCH,
        refund_at_provider,
        start_compliance_report,
    )
    from workflows.deposit_models import (
        DepositTimings,
        DepositWorkflowInput,
        DepositWorkflowResult,
    )
    from workflows.deposit_provider import AtProvider, Settled
    from workflows.deposit_review import DepositReviewHold
    from workflows.steps import EventBuffer, StuckGuard, reason

__all__ = ["DepositTimings", "DepositWorkflow", "DepositWorkflowInput", "DepositWorkflowResult"]


@workflow.defn
class DepositWorkflow(DepositReviewHold):  # review steps and updates: workflows/deposit_review.py
    def __init__(self) -> None:
        self._status = DepositStatus.PENDING
        self._events = EventBuffer()

    @workflow.query
    def status(self) -> DepositStatus:
        return self._status

    @workflow.signal
    def provider_event(self, event: ProviderEvent) -> None:
        """A verified callback: a hint to ask the provider now. Bounded and deduplicated."""
        self._events.add(event)
        self._note_provider_event(event)  # someone else's card: held for review

    @workflow.run
    async def run(self, inp: DepositWorkflowInput) -> DepositWorkflowResult:
        self._guard = StuckGuard("deposit", inp.deposit_id)
        card = inp.card
        prepared = await self._guard.run(
            DepositActivities.prepare_deposit,
            PrepareDepositInput(
                route=RouteDepositInput(
                    deposit_id=inp.deposit_id,
                    method=inp.method,
                    amount_minor=inp.amount_minor,
                    currency=inp.currency,
                    bin=card.bin if card else None,
                    scheme=card.scheme if card else None,
                    allowed=list(card.tokens) if card else None,
                ),
                processing_at=workflow.now() if inp.method == "card" else None,
            ),
        )
        route = prepared.route
        self._risk = prepared.risk
        if route is None or prepared.risk.decision is RiskVerdict.DECLINE:
            codes = ",".join(prepared.risk.reasons)
            return await self._finish(inp, DepositStatus.DECLINED, reason("risk", codes))
        if inp.method == "card":
            self._status = DepositStatus.PROCESSING  # recorded by prepare_deposit

        moved_on = [f"{name}:circuit_open" for name in route.skipped]
        for candidate in route.candidates:
            settled = await self._at(inp, candidate)
            if settled.kind != "moved":
                return await self._conclude(inp, candidate.provider, settled)
            moved_on.append(f"{candidate.provider}:{settled.code}")
        code = "provider_error" if moved_on else "no_provider_available"
        return await self._finish(inp, DepositStatus.FAILED, reason(code, ",".join(moved_on)))

    async def _at(self, inp: DepositWorkflowInput, candidate: RouteCandidate) -> Settled:
        """Everything that happens at one provider, until it is done with the deposit."""
        provider = candidate.provider
        workflow.upsert_search_attributes(
            [sa.PROVIDER.value_set(provider), sa.PAYMENT_STATUS.value_set(self._status.value)]
        )
        at = AtProvider(
            inp,
            provider,
            action_ttl_seconds=candidate.action_ttl_seconds,
            processing_window_seconds=candidate.processing_window_seconds,
            events=self._events,
            guard=self._guard,
        )
        started = await at.start()
        if isinstance(started, Settled):
            settled = started
        else:
            if started.status not in ("succeeded", "declined", "expired", "cancelled"):
                await self._wait_for_player(inp, provider, started)
            settled = await at.outcome(started)
        if settled.kind == "unknown":
            settled = await at.hold_unknown(settled.code or "unknown")
        return settled

    async def _wait_for_player(
        self, inp: DepositWorkflowInput, provider: str, started: ProviderCallResult
    ) -> None:
        await self._guard.run(
            DepositActivities.record_deposit_route,
            RecordRouteInput(
                deposit_id=inp.deposit_id,
                provider=provider,
                next_action=started.next_action,
                occurred_at=workflow.now(),
            ),
        )
        await self._transition(inp, DepositStatus.REQUIRES_ACTION, None)

    async def _conclude(
        self, inp: DepositWorkflowInput, provider: str, settled: Settled
    ) -> DepositWorkflowResult:
        if settled.kind == "paid":
            funding = settled.result.funding if settled.result else None
            if funding_is_credit(funding) and workflow.patched(CREDIT_FUNDS_PATCH):
                return await self._refuse_credit_funds(inp, provider, settled)
            if self._status is not DepositStatus.PROCESSING:
                await self._transition(inp, DepositStatus.PROCESSING, None, provider=provider)
            if self._holds_for_review() and not await self._await_review(inp, provider):
                paid = settled.result
                amount = (paid.amount_minor if paid else None) or inp.amount_minor
                currency = (paid.currency if paid else None) or inp.currency
                return await self._review_rejected(inp, provider, amount, currency)
            credit = await self._guard.run(
                DepositActivities.credit_deposit,
                CreditDepositInput(
                    deposit_id=inp.deposit_id,
                    player_id=inp.player_id,
                    provider=provider,
                    amount_minor=inp.amount_minor,
                    currency=inp.currency,
                    succeeded_at=workflow.now(),
                    funding=settled.result.funding if settled.result else None,
                ),
            )
            self._status_is(DepositStatus.SUCCEEDED)
            if workflow.patched(ESU_REPORT_PATCH):
                await start_compliance_report(self._guard, "deposit", inp.deposit_id)
            return DepositWorkflowResult(
                status=DepositStatus.SUCCEEDED,
                provider=provider,
                ledger_transaction_id=credit.transaction_id,
            )
        if settled.kind == "unknown":  # flagged stuck; reconciliation settles it
            why = reason("outcome_unknown", settled.code)
            return DepositWorkflowResult(status=self._status, reason=why, provider=provider)
        if settled.kind == "expired" and settled.code == "amount_mismatch" and settled.result:
            # Money of another amount arrived: the deposit expires, the money becomes a case.
            result = await self._finish(inp, DepositStatus.EXPIRED, "expired:amount_mismatch")
            paid = settled.result
            await self._guard.run(
                LatePaymentActivities.open_late_payment,
                OpenLateInput(
                    deposit_id=inp.deposit_id,
                    provider=provider,
                    amount_minor=paid.amount_minor or 0,
                    currency=paid.currency or "",
                ),
            )
            await self._guard.clear()
            result.provider = provider
            return result
        if settled.kind == "expired":
            status, why = DepositStatus.EXPIRED, reason("expired", settled.code)
        else:
            status, why = DepositStatus.FAILED, reason("provider_declined", settled.code)
        result = await self._finish(inp, status, why, provider=provider)
        result.provider = provider
        return result

    async def _refuse_credit_funds(
        self, inp: DepositWorkflowInput, provider: str, settled: Settled
    ) -> DepositWorkflowResult:
        """Money from credit is not credited: the case (and the refusal, and an alert) first,
        then the deposit fails, then the money goes back through the provider that took it."""
        paid = settled.result
        assert paid is not None
        funding = paid.funding or {}
        amount = paid.amount_minor or inp.amount_minor
        currency = paid.currency or inp.currency
        case = await self._guard.run(
            ComplianceActivities.refuse_credit_funds,
            CreditFundsInput(
                deposit_id=inp.deposit_id,
                provider=provider,
                amount_minor=amount,
                currency=currency,
                funding=funding,
            ),
        )
        why = reason(REFUSAL_CODE, funding_label(funding))
        result = await self._finish(inp, DepositStatus.FAILED, why, provider=provider)
        result.provider = provider
        if case.resolution != "open":
            return result  # refunded already (a run replayed from a reset)
        outcome = await refund_at_provider(
            self._guard,
            refund_id=f"credit-{case.case_id}",
            deposit_id=inp.deposit_id,
            provider=provider,
            amount_minor=amount,
            currency=currency,
        )
        if outcome == "refunded":
            await self._guard.run(
                LatePaymentActivities.resolve_late_payment,
                ResolveLateInput(
                    case_id=case.case_id, resolution="refunded", occurred_at=workflow.now()
                ),
            )
        return result

    async def _finish(
        self,
        inp: DepositWorkflowInput,
        status: DepositStatus,
        why: str | None,
        *,
        provider: str | None = None,
    ) -> DepositWorkflowResult:
        await self._transition(inp, status, why, provider=provider)
        return DepositWorkflowResult(status=status, reason=why)

    async def _transition(
        self,
        inp: DepositWorkflowInput,
        status: DepositStatus,
        why: str | None,
        *,
        provider: str | None = None,
    ) -> None:
        """Record the status (with `provider`: the provider that served it, no action left)."""
        await self._guard.run(
            DepositActivities.record_deposit_status,
            RecordStatusInput(
                deposit_id=inp.deposit_id,
                status=status,
                reason=why,
                occurred_at=workflow.now(),
                provider=provider,
            ),
        )
        self._status_is(status)

    def _status_is(self, status: DepositStatus) -> None:
        """The status the database now has, for queries and the PaymentStatus attribute."""
        self._status = status
        workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(status.value)])
