"""WithdrawalWorkflow: the amount is already held; risk, an operator's review where the rules
ask for one, the payout, then exactly one of post (paid) or void (anything else).

Operators and the player act through workflow updates whose validators refuse an invalid
transition before anything is written, so the API can answer 409 at once. A review that
waits too long is escalated (search attribute and database), never dropped.
"""

import builtins
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.withdrawal_models import (
        EscalateInput,
        PayoutInput,
        PayoutResult,
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


class WithdrawalTimings(BaseModel):
    escalate_after_seconds: float = 4 * 3600.0
    provider_call_seconds: float = 15.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    give_up_seconds: float = 1800.0


class WithdrawalWorkflowInput(BaseModel):
    withdrawal_id: str
    player_id: str
    amount_minor: int
    currency: str
    method: str
    destination: dict[str, object]
    provider: str
    approvals_needed: int
    timings: WithdrawalTimings = WithdrawalTimings()


class WithdrawalWorkflowResult(BaseModel):
    status: WithdrawalStatus
    reason: str | None = None


class ReviewInput(BaseModel):
    """Who acts (operator key id and name, or the player via the merchant's key) and why."""

    actor_id: str
    actor_name: str
    reason: str | None = None


class ReviewResult(BaseModel):
    status: WithdrawalStatus
    approvals: list[str]
    approvals_needed: int
    changed: bool


_DB_TIMEOUT = timedelta(seconds=30)
_DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


@workflow.defn
class WithdrawalWorkflow:
    @workflow.init
    def __init__(self, inp: WithdrawalWorkflowInput) -> None:
        self._input = inp
        self._status = WithdrawalStatus.PENDING
        self._approvals: list[str] = []
        self._decided: Literal["approved", "rejected", "cancelled"] | None = None
        self._reason: str | None = None

    @workflow.query
    def status(self) -> WithdrawalStatus:
        return self._status

    @workflow.run
    async def run(self, inp: WithdrawalWorkflowInput) -> WithdrawalWorkflowResult:
        risk = await workflow.execute_activity_method(
            WithdrawalActivities.assess_withdrawal_risk,
            WithdrawalRiskInput(withdrawal_id=inp.withdrawal_id),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        if self._decided is None:
            if risk.decision == "decline":
                self._decide("rejected", "risk_declined:" + ",".join(risk.reasons))
            elif risk.decision == "approve" and inp.approvals_needed <= 1:
                self._decide("approved", "auto_approved")
            else:
                await self._record(WithdrawalStatus.IN_REVIEW, ",".join(risk.reasons) or None)
                await self._await_review()

        if self._decided == "approved":
            await self._record(WithdrawalStatus.APPROVED, self._reason)
        if self._decided != "approved":  # rejected or cancelled, possibly while recording
            return await self._release(
                WithdrawalStatus.REJECTED
                if self._decided == "rejected"
                else WithdrawalStatus.CANCELLED
            )

        self._status = WithdrawalStatus.PROCESSING
        await self._record(WithdrawalStatus.PROCESSING, None)
        payout = await self._pay_out(inp)
        if payout.found and payout.status == "paid":
            await self._settle("post")
            return await self._finish(WithdrawalStatus.PAID, None)
        await self._settle("void")
        reason = (
            f"payout_failed:{payout.failure_code or 'unknown'}"
            if payout.found
            else "payout_failed:provider_never_received"  # inquiry cancels, so not expected
        )
        return await self._finish(WithdrawalStatus.FAILED, reason)

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
            self._decide("approved", f"approved_by:{','.join(self._approvals)}")
        await self._record_review("approve", review)
        return self._review_result(changed=True)

    @approve.validator
    def _validate_approve(self, review: ReviewInput) -> None:
        if self._status is not WithdrawalStatus.PENDING:  # pending: decided after risk
            self._check(
                lambda: check_approve(self._status, tuple(self._approvals), review.actor_id)
            )

    @workflow.update
    async def reject(self, review: ReviewInput) -> ReviewResult:
        await self._risk_decided()
        if not self._check(lambda: check_reject(self._status)):
            return self._review_result(changed=False)
        self._decide("rejected", f"rejected_by:{review.actor_id}")
        await self._record_review("reject", review)
        return self._review_result(changed=True)

    @reject.validator
    def _validate_reject(self, review: ReviewInput) -> None:
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

    def _decide(self, decision: Literal["approved", "rejected", "cancelled"], reason: str) -> None:
        self._decided = decision
        self._reason = reason
        self._status = {
            "approved": WithdrawalStatus.APPROVED,
            "rejected": WithdrawalStatus.REJECTED,
            "cancelled": WithdrawalStatus.CANCELLED,
        }[decision]

    def _review_result(self, *, changed: bool) -> ReviewResult:
        return ReviewResult(
            status=self._status,
            approvals=list(self._approvals),
            approvals_needed=self._input.approvals_needed,
            changed=changed,
        )

    # -- steps ------------------------------------------------------------------------------

    async def _await_review(self) -> None:
        self._status = WithdrawalStatus.IN_REVIEW
        timeout = timedelta(seconds=self._input.timings.escalate_after_seconds)
        try:
            await workflow.wait_condition(lambda: self._decided is not None, timeout=timeout)
            return
        except builtins.TimeoutError:
            pass
        workflow.logger.warning(
            "review of %s waited too long: escalated", self._input.withdrawal_id
        )
        await workflow.execute_activity_method(
            WithdrawalActivities.escalate_review,
            EscalateInput(withdrawal_id=self._input.withdrawal_id, occurred_at=workflow.now()),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        workflow.upsert_search_attributes([sa.ESCALATED.value_set(True)])
        await workflow.wait_condition(lambda: self._decided is not None)

    async def _pay_out(self, inp: WithdrawalWorkflowInput) -> PayoutResult:
        timings = inp.timings
        payout_input = PayoutInput(
            withdrawal_id=inp.withdrawal_id,
            provider=inp.provider,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            method=inp.method,
            destination=dict(inp.destination),
        )
        try:
            return await workflow.execute_activity_method(
                WithdrawalActivities.pay_out,
                payout_input,
                start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                schedule_to_close_timeout=timedelta(seconds=timings.give_up_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                    maximum_interval=timedelta(seconds=timings.retry_max_seconds),
                    non_retryable_error_types=["PayoutRejected", "Config"],
                ),
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "PayoutRejected":
                return PayoutResult(found=True, status="failed", failure_code="rejected")
            if isinstance(cause, ApplicationError) and cause.type == "Config":
                raise
            kind = "timeout" if isinstance(cause, TimeoutError) else type(cause).__name__
            workflow.logger.warning("payout gave up (%s); asking the provider", kind)
        # Unknown outcome: only the provider can say, so ask it before deciding anything.
        return await workflow.execute_activity_method(
            WithdrawalActivities.inquire_payout,
            payout_input,
            start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                maximum_interval=timedelta(minutes=5),
            ),
        )

    async def _release(self, status: WithdrawalStatus) -> WithdrawalWorkflowResult:
        await self._settle("void")
        return await self._finish(status, self._reason)

    async def _settle(self, action: Literal["post", "void"]) -> None:
        await workflow.execute_activity_method(
            WithdrawalActivities.settle_hold,
            SettleHoldInput(withdrawal_id=self._input.withdrawal_id, action=action),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=30),
                non_retryable_error_types=["HoldAlreadyResolved"],
            ),
        )

    async def _finish(
        self, status: WithdrawalStatus, reason: str | None
    ) -> WithdrawalWorkflowResult:
        self._status = status
        await self._record(status, reason)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return WithdrawalWorkflowResult(status=status, reason=reason)

    async def _record(self, status: WithdrawalStatus, reason: str | None) -> None:
        await workflow.execute_activity_method(
            WithdrawalActivities.record_withdrawal_status,
            RecordWithdrawalStatusInput(
                withdrawal_id=self._input.withdrawal_id,
                status=status,
                reason=reason,
                occurred_at=workflow.now(),
            ),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(status.value)])

    async def _record_review(
        self, action: Literal["approve", "reject", "cancel"], review: ReviewInput
    ) -> None:
        await workflow.execute_activity_method(
            WithdrawalActivities.record_review,
            RecordReviewInput(
                withdrawal_id=self._input.withdrawal_id,
                action=action,
                operator_id=review.actor_id,
                operator_name=review.actor_name,
                reason=review.reason,
                occurred_at=workflow.now(),
            ),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
