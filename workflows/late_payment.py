"""LatePaymentWorkflow: a provider reports a success for a deposit that already expired,
failed, or succeeded at another provider. Money is never dropped, and never moves on a
callback's word: the provider is asked; only its confirmation of the deposit's exact amount and
currency opens a case (critical alert), and the policy then applies it exactly once — credit
the player with the deposit's own credit posting (default), or ask a refund of the provider.

One workflow id per deposit and provider (`late-{deposit_id}-{provider}`): a callback resent
while it runs joins it; a later report (a short transfer topped up) runs it again, and every
step is idempotent (one case per deposit and provider, the deposit's own credit posting). A
payment of another amount opens the case for an operator (policy `manual`) instead of crediting.

Review (issue 18, gated by `late-review-hold`): a late payment is never credited past the
deposit's risk review. When the review holds the money (the engine's `review` under
`review_mode = "hold"`, or a cardholder the provider reports is not the player), the deposit
moves to `in_review` and a `LateReviewWorkflow` (the deposit workflow's review steps and its
`approve`/`reject` updates, workflows/deposit_review.py) waits under the deposit's own workflow id,
where `POST /v1/deposits/{id}/approve|reject` sends the decision: approved, it is credited here;
rejected, it is declined (`risk_review_rejected`) and the money refunded at the provider. Under
`review_mode = "credit"` it is credited and the review keeps the person's withdrawals blocked.
"""

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.deposits import DepositActivities
    from activities.gateway_models import InquiryInput, ProviderCallResult, ProviderEvent
    from activities.late_payments import (
        HoldLateInput,
        LatePaymentActivities,
        OpenLateInput,
        OpenLateResult,
        ResolveLateInput,
    )
    from activities.models import CreditDepositInput, RecordStatusInput, RiskCheckResult
    from activities.refunds import RefundActivities, RefundAtProviderInput
    from domain.ids import deposit_workflow_id
    from domain.risk import RiskVerdict
    from domain.statuses import DepositStatus
    from workflows.compliance_steps import ESU_REPORT_PATCH, start_compliance_report
    from workflows.deposit_models import DepositWorkflowInput
    from workflows.deposit_review import DepositReviewHold
    from workflows.steps import StuckGuard, reason

# Released change: a case to refund is refunded through the connector that took the money
# (before, it was only recorded as `refund_requested`). Older histories keep their path.
REFUND_AT_PROVIDER = "late-refund-at-provider"
# Released change: money a late request only held at an auth/capture acquirer is released by
# the inquiry, never taken (taking it would charge the payer twice).
RELEASE_HELD = "late-release-held"
# Released change (issue 18): a late payment whose deposit's review holds it waits for an
# operator's approval before it is credited (before, it was credited whatever the review said).
LATE_REVIEW_HOLD = "late-review-hold"
# While the deposit's own workflow has not closed yet, the review waits for it this long a try.
REVIEW_START_RETRY = timedelta(seconds=5)
REVIEW_START_TRIES = 720  # an hour


class LatePaymentInput(BaseModel):
    deposit_id: str
    provider: str
    method: str
    amount_minor: int  # the deposit's, from our database: the callback's figures decide nothing
    currency: str
    inquiry_seconds: float = 3600.0


class LatePaymentResult(BaseModel):
    # not_confirmed | not_late | credited | refunded | refund_requested | refund_pending
    # | manual | already_resolved | refund_refused (a rejected review's money too)
    outcome: str
    case_id: int | None = None


class LateReviewInput(BaseModel):
    deposit_id: str
    player_id: str
    provider: str
    method: str
    amount_minor: int
    currency: str
    score: int
    reasons: list[str]


class LateReviewResult(BaseModel):
    approved: bool
    actor_id: str


def late_payment_workflow_id(deposit_id: str, provider: str) -> str:
    return f"late-{deposit_id}-{provider}"


@workflow.defn
class LatePaymentWorkflow:
    @workflow.run
    async def run(self, inp: LatePaymentInput) -> LatePaymentResult:
        guard = StuckGuard("deposit", inp.deposit_id)
        try:
            answer = await workflow.execute_activity_method(
                DepositActivities.inquire_payment,
                InquiryInput(
                    deposit_id=inp.deposit_id,
                    provider=inp.provider,
                    method=inp.method,
                    release_held=workflow.patched(RELEASE_HELD),
                ),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(seconds=inp.inquiry_seconds),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            )
        except ActivityError:
            await guard.flag(f"late_payment_inquiry_at:{inp.provider}", "no answer")
            return LatePaymentResult(outcome="not_confirmed")
        if not (answer.found and answer.status == "succeeded"):
            return LatePaymentResult(outcome="not_confirmed")
        # Money arrived, of whatever amount: it opens (or updates) the case, never dropped.
        case = await guard.run(
            LatePaymentActivities.open_late_payment,
            OpenLateInput(
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                amount_minor=answer.amount_minor or 0,
                currency=answer.currency or "",
            ),
        )
        if case.resolution == "not_late":
            return LatePaymentResult(outcome="not_late")
        if case.resolution != "open":
            return LatePaymentResult(outcome="already_resolved", case_id=case.case_id)
        if case.policy == "manual":  # another amount: an operator decides (critical alert)
            return LatePaymentResult(outcome="manual", case_id=case.case_id)
        if case.policy == "credit" and case.review_hold and workflow.patched(LATE_REVIEW_HOLD):
            review = await self._review(inp, guard, case)
            if not review.approved:
                return await self._rejected(inp, guard, case.case_id, answer, review.actor_id)
        transaction_id = None
        if case.policy == "credit":
            credit = await guard.run(
                DepositActivities.credit_deposit,
                CreditDepositInput(
                    deposit_id=inp.deposit_id,
                    player_id=case.player_id,
                    provider=inp.provider,
                    amount_minor=inp.amount_minor,
                    currency=inp.currency,
                    succeeded_at=workflow.now(),
                    late=True,
                ),
            )
            transaction_id = credit.transaction_id
            if workflow.patched(ESU_REPORT_PATCH):  # a deposit credited late is reported too
                await start_compliance_report(guard, "deposit", inp.deposit_id)
        resolution = "credited" if case.policy == "credit" else "refund_requested"
        if case.policy == "refund" and workflow.patched(REFUND_AT_PROVIDER):
            outcome = await self._refund(inp, guard, case.case_id, answer)
            if outcome != "refunded":  # the case stays open for reconciliation or an operator
                return LatePaymentResult(outcome=outcome, case_id=case.case_id)
            resolution = "refunded"
        await guard.run(
            LatePaymentActivities.resolve_late_payment,
            ResolveLateInput(
                case_id=case.case_id,
                resolution=resolution,
                ledger_transaction_id=transaction_id,
                occurred_at=workflow.now(),
            ),
        )
        return LatePaymentResult(outcome=resolution, case_id=case.case_id)

    async def _review(
        self, inp: LatePaymentInput, guard: StuckGuard, case: OpenLateResult
    ) -> LateReviewResult:
        """Held: the review's workflow, under the deposit's own id (the API's approve/reject
        reach it there), moves the deposit to `in_review` once it waits for an operator (a
        decision sent before would find no review waiting) and answers the decision."""
        review = LateReviewInput(
            deposit_id=inp.deposit_id,
            player_id=case.player_id,
            provider=inp.provider,
            method=inp.method,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            score=case.review_score,
            reasons=case.review_reasons,
        )
        child_id = case.workflow_id or deposit_workflow_id(inp.deposit_id)
        for _ in range(REVIEW_START_TRIES):
            try:
                handle = await workflow.start_child_workflow(
                    LateReviewWorkflow.run, review, id=child_id
                )
            except WorkflowAlreadyStartedError:
                # The deposit's workflow is closing (it recorded the deposit's end just now).
                await workflow.sleep(REVIEW_START_RETRY)
                continue
            return await handle
        raise ApplicationError(
            f"deposit {inp.deposit_id}: its workflow {child_id} never closed for the review",
            type="ReviewNotStarted",
            non_retryable=True,
        )

    async def _rejected(
        self,
        inp: LatePaymentInput,
        guard: StuckGuard,
        case_id: int,
        answer: ProviderCallResult,
        actor_id: str,
    ) -> LatePaymentResult:
        """Rejected by an operator: the deposit declined first, then the money goes back
        through the provider that took it (the case resolved `refunded` once it has)."""
        await guard.run(
            DepositActivities.record_deposit_status,
            RecordStatusInput(
                deposit_id=inp.deposit_id,
                status=DepositStatus.DECLINED,
                reason=reason("risk_review_rejected", actor_id),
                occurred_at=workflow.now(),
                provider=inp.provider,
            ),
        )
        outcome = await self._refund(inp, guard, case_id, answer)
        if outcome != "refunded":  # the case stays open for reconciliation or an operator
            return LatePaymentResult(outcome=outcome, case_id=case_id)
        await guard.run(
            LatePaymentActivities.resolve_late_payment,
            ResolveLateInput(case_id=case_id, resolution="refunded", occurred_at=workflow.now()),
        )
        return LatePaymentResult(outcome="refunded", case_id=case_id)

    async def _refund(
        self, inp: LatePaymentInput, guard: StuckGuard, case_id: int, answer: ProviderCallResult
    ) -> str:
        """The money goes back through the provider that took it, under a key of the case: asked
        again only while the request never reached it; a refusal or an unknown outcome is flagged
        stuck (refunding twice is worse than waiting for the provider's report)."""
        try:
            await workflow.execute_activity_method(
                RefundActivities.refund_at_provider,
                RefundAtProviderInput(
                    refund_id=f"late-{case_id}",
                    deposit_id=inp.deposit_id,
                    provider=inp.provider,
                    amount_minor=answer.amount_minor or inp.amount_minor,
                    currency=answer.currency or inp.currency,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    maximum_attempts=5,
                    non_retryable_error_types=[
                        "RefundRefused",
                        "RefundOutcomeUnknown",
                        "NoRefunds",
                    ],
                ),
            )
        except ActivityError as err:
            cause = err.cause
            kind = cause.type if isinstance(cause, ApplicationError) else "timeout"
            if kind in ("RefundRefused", "NoRefunds", "RefundNotSent"):
                code = (
                    str(cause.details[0])
                    if isinstance(cause, ApplicationError) and cause.details
                    else str(kind)
                )
                await guard.flag(f"late_refund_refused_at:{inp.provider}", reason("refused", code))
                return "refund_refused"
            await guard.flag(f"late_refund_outcome_unknown_at:{inp.provider}", kind or "unknown")
            return "refund_pending"
        return "refunded"


@workflow.defn
class LateReviewWorkflow(DepositReviewHold):
    """The review of a deposit paid late, run by its LatePaymentWorkflow under the deposit's own
    workflow id (its DepositWorkflow has ended): the deposit workflow's review steps and its
    `approve`/`reject` updates with their validators, as they are (workflows/deposit_review.py).
    It records the decision and answers it; the late payment's workflow credits or refunds."""

    @workflow.signal
    def provider_event(self, event: ProviderEvent) -> None:
        """A callback for the held deposit: the money is held already; noted, nothing more."""
        self._note_provider_event(event)

    @workflow.run
    async def run(self, inp: LateReviewInput) -> LateReviewResult:
        self._guard = StuckGuard("deposit", inp.deposit_id)
        self._risk = RiskCheckResult(
            decision=RiskVerdict.REVIEW, score=inp.score, reasons=inp.reasons, review_mode="hold"
        )
        deposit = DepositWorkflowInput(
            deposit_id=inp.deposit_id,
            player_id=inp.player_id,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            method=inp.method,
        )
        approved = await self._await_review(deposit, inp.provider)
        await workflow.wait_condition(workflow.all_handlers_finished)
        by = self._review_by
        return LateReviewResult(approved=approved, actor_id=by.actor_id if by else "operator")

    async def _transition(
        self,
        inp: DepositWorkflowInput,
        status: DepositStatus,
        why: str | None,
        *,
        provider: str | None = None,
    ) -> None:
        """The review's only move here: the expired (or failed) deposit into `in_review`, with
        the provider that took the money; repeated, it changes nothing."""
        await self._guard.run(
            LatePaymentActivities.hold_late_payment,
            HoldLateInput(
                deposit_id=inp.deposit_id,
                provider=provider or "",
                reason=why,
                occurred_at=workflow.now(),
            ),
        )
