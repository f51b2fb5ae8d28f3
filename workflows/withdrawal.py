"""WithdrawalWorkflow: the amount is already held; risk, an operator's review where the rules
ask for one, the payout, then exactly one of post (paid) or void (anything else).

Operators and the player act through workflow updates whose validators refuse an invalid
transition before anything is written, so the API can answer 409 at once. Each update carries
the API's signed approval token for that withdrawal, decision and person
(`workflows/approval_gate.py`): one sent straight to Temporal without it is refused before it is
written. Four eyes count people: `actor_id` is the operator's id, never a key's. The first
decision (approved, rejected, cancelled) stands: a later one is refused, never written over it.
A review that waits too long is escalated (search attribute and database), never dropped.

Compliance (issue 17, gated by patches): the withdrawal starts its payout-deadline workflow
(winnings within 3 calendar days) and is reported to the unified accounting system when asked;
a paid one is reported again as a payout, after it is screened for financial monitoring.
"""

import builtins
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.withdrawal_models import (
        EscalateInput,
        RecordReviewInput,
        RecordWithdrawalStatusInput,
        SettleHoldInput,
        WithdrawalRiskInput,
    )
    from activities.withdrawals import WithdrawalActivities
    from domain.withdrawals import (
        InvalidTransition,
        WithdrawalStatus,
        check_approve,
        check_cancel,
        check_reject,
    )
    from workflows import search_attributes as sa
    from workflows.approval_gate import require_token
    from workflows.compliance_steps import (
        ESU_REPORT_PATCH,
        PAYOUT_DEADLINE_PATCH,
        start_compliance_report,
        start_payout_deadline,
    )
    from workflows.payout import Payout
    from workflows.steps import StuckGuard, reason
    from workflows.withdrawal_models import (
        ReviewInput,
        ReviewResult,
        WithdrawalTimings,
        WithdrawalWorkflowInput,
        WithdrawalWorkflowResult,
    )

__all__ = [
    "ReviewInput",
    "ReviewResult",
    "WithdrawalTimings",
    "WithdrawalWorkflow",
    "WithdrawalWorkflowInput",
    "WithdrawalWorkflowResult",
]

Decision = Literal["approved", "rejected", "cancelled"]
_DECIDED = {
    "approved": WithdrawalStatus.APPROVED,
    "rejected": WithdrawalStatus.REJECTED,
    "cancelled": WithdrawalStatus.CANCELLED,
}


@workflow.defn
class WithdrawalWorkflow:
    @workflow.init
    def __init__(self, inp: WithdrawalWorkflowInput) -> None:
        self._input = inp
        self._status = WithdrawalStatus.PENDING
        self._approvals: list[str] = []
        self._decided: Decision | None = None
        self._reason: str | None = None
        self._guard = StuckGuard("withdrawal", inp.withdrawal_id)

    @workflow.query
    def status(self) -> WithdrawalStatus:
        return self._status

    @workflow.run
    async def run(self, inp: WithdrawalWorkflowInput) -> WithdrawalWorkflowResult:
        if workflow.patched(PAYOUT_DEADLINE_PATCH):
            await start_payout_deadline(self._guard, inp.withdrawal_id)
        if workflow.patched(ESU_REPORT_PATCH):
            await start_compliance_report(self._guard, "withdrawal", inp.withdrawal_id)
        risk = await self._guard.run(
            WithdrawalActivities.assess_withdrawal_risk,
            WithdrawalRiskInput(withdrawal_id=inp.withdrawal_id),
        )
        if self._decided is None:
            if risk.decision == "decline":
                self._decide("rejected", reason("risk_declined", ",".join(risk.reasons)))
            elif risk.decision == "approve" and inp.approvals_needed <= 1:
                self._decide("approved", "auto_approved")
            else:
                self._status = WithdrawalStatus.IN_REVIEW  # reviewers may act from now on
                why = reason(",".join(risk.reasons)) if risk.reasons else None
                await self._record(WithdrawalStatus.IN_REVIEW, why)
                await self._await_review()

        if self._decided != "approved":
            await self._settle("void")
            status = _DECIDED[self._decided or "rejected"]
            return await self._finish(status, self._reason)
        await self._record(WithdrawalStatus.APPROVED, self._reason)
        self._status = WithdrawalStatus.PROCESSING
        await self._record(WithdrawalStatus.PROCESSING, None)
        payout = await Payout(inp, self._guard).run()
        if payout.found and payout.status == "paid":
            await self._settle("post")
            paid = await self._finish(WithdrawalStatus.PAID, None)
            if workflow.patched(ESU_REPORT_PATCH):  # screened, then reported to the ESU
                await start_compliance_report(self._guard, "payout", inp.withdrawal_id)
            return paid
        await self._settle("void")
        code = (payout.failure_code or "unknown") if payout.found else "provider_never_received"
        return await self._finish(WithdrawalStatus.FAILED, reason("payout_failed", code))

    # -- operator and player actions ------------------------------------------------------

    @workflow.update
    async def approve(self, review: ReviewInput) -> ReviewResult:
        await self._risk_decided()
        if not self._check(
            lambda: check_approve(self._status, tuple(self._approvals), review.actor_id)
        ):
            return self._review_result(changed=False)
        self._approvals.append(review.actor_id)
        if len(self._approvals) >= self._input.approvals_needed:
            self._decide("approved", reason("approved_by", ",".join(self._approvals)))
        await self._record_review("approve", review)
        return self._review_result(changed=True)

    @approve.validator
    def _validate_approve(self, review: ReviewInput) -> None:
        require_token(review, "approve")  # first: nothing forged gets further
        if self._status is not WithdrawalStatus.PENDING:  # pending: decided after risk
            self._check(
                lambda: check_approve(self._status, tuple(self._approvals), review.actor_id)
            )

    @workflow.update
    async def reject(self, review: ReviewInput) -> ReviewResult:
        await self._risk_decided()
        if not self._check(lambda: check_reject(self._status)):
            return self._review_result(changed=False)
        self._decide("rejected", reason("rejected_by", review.actor_id))
        await self._record_review("reject", review)
        return self._review_result(changed=True)

    @reject.validator
    def _validate_reject(self, review: ReviewInput) -> None:
        require_token(review, "reject")
        if self._status is not WithdrawalStatus.PENDING:
            self._check(lambda: check_reject(self._status))

    @workflow.update
    async def cancel(self, review: ReviewInput) -> ReviewResult:
        if not self._check(lambda: check_cancel(self._status)):
            return self._review_result(changed=False)
        self._decide("cancelled", "cancelled_by_player")
        await self._record_review("cancel", review)
        return self._review_result(changed=True)

    @cancel.validator
    def _validate_cancel(self, review: ReviewInput) -> None:
        require_token(review, "cancel")
        self._check(lambda: check_cancel(self._status))

    @staticmethod
    def _check(check: Callable[[], bool]) -> bool:
        """Run a domain check; an invalid transition fails the update (409), not the workflow."""
        try:
            return check()
        except InvalidTransition as exc:
            raise ApplicationError(str(exc), type="InvalidTransition") from exc

    async def _risk_decided(self) -> None:
        """An operator acting while risk still runs waits for its verdict, then is judged."""
        await workflow.wait_condition(
            lambda: self._status is not WithdrawalStatus.PENDING or self._decided is not None
        )

    def _decide(self, decision: Decision, why: str) -> None:
        """The first decision stands; another one is an invalid transition (409)."""
        if self._decided is not None and self._decided != decision:
            raise ApplicationError(
                f"a withdrawal that is {self._decided} cannot be {decision}",
                type="InvalidTransition",
            )
        self._decided = decision
        self._reason = why
        self._status = _DECIDED[decision]

    def _review_result(self, *, changed: bool) -> ReviewResult:
        return ReviewResult(
            status=self._status,
            approvals=list(self._approvals),
            approvals_needed=self._input.approvals_needed,
            changed=changed,
        )

    # -- steps ------------------------------------------------------------------------------

    async def _await_review(self) -> None:
        timeout = timedelta(seconds=self._input.timings.escalate_after_seconds)
        try:
            await workflow.wait_condition(lambda: self._decided is not None, timeout=timeout)
            return
        except builtins.TimeoutError:
            pass
        workflow.logger.warning(
            "review of %s waited too long: escalated", self._input.withdrawal_id
        )
        await self._guard.run(
            WithdrawalActivities.escalate_review,
            EscalateInput(withdrawal_id=self._input.withdrawal_id, occurred_at=workflow.now()),
        )
        workflow.upsert_search_attributes([sa.ESCALATED.value_set(True)])
        await workflow.wait_condition(lambda: self._decided is not None)

    async def _settle(self, action: Literal["post", "void"]) -> None:
        await self._guard.run(
            WithdrawalActivities.settle_hold,
            SettleHoldInput(withdrawal_id=self._input.withdrawal_id, action=action),
        )

    async def _finish(self, status: WithdrawalStatus, why: str | None) -> WithdrawalWorkflowResult:
        self._status = status
        await self._record(status, why)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return WithdrawalWorkflowResult(status=status, reason=why)

    async def _record(self, status: WithdrawalStatus, why: str | None) -> None:
        await self._guard.run(
            WithdrawalActivities.record_withdrawal_status,
            RecordWithdrawalStatusInput(
                withdrawal_id=self._input.withdrawal_id,
                status=status,
                reason=why,
                occurred_at=workflow.now(),
            ),
        )
        workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(status.value)])

    async def _record_review(
        self, action: Literal["approve", "reject", "cancel"], review: ReviewInput
    ) -> None:
        await self._guard.run(
            WithdrawalActivities.record_review,
            RecordReviewInput(
                withdrawal_id=self._input.withdrawal_id,
                action=action,
                operator_id=review.actor_id,
                operator_name=reason(review.actor_name, limit=100),
                reason=reason(review.reason, limit=500) if review.reason else None,
                occurred_at=workflow.now(),
            ),
        )
