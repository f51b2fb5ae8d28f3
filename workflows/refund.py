"""RefundWorkflow: a deposit refunded, in full or in part, through the connector that took it.

The amount is already held on the player's wallet (`refund:{id}:hold`). The provider is asked
once (again only if the request never reached it); a refund it confirms posts the hold, one it
refuses releases it. One whose outcome it left unknown keeps the hold and is flagged stuck, for
reconciliation with the provider's report: refunding twice is worse than waiting.
"""

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.refunds import (
        RecordRefundInput,
        RefundActivities,
        RefundAtProviderInput,
        SettleRefundInput,
    )
    from workflows.steps import StuckGuard, reason


class RefundWorkflowInput(BaseModel):
    refund_id: str
    deposit_id: str
    provider: str
    amount_minor: int
    currency: str
    provider_call_seconds: float = 30.0


class RefundWorkflowResult(BaseModel):
    status: str  # succeeded | failed | pending (outcome unknown, flagged stuck)
    reason: str | None = None


def refund_workflow_id(refund_id: str) -> str:
    return f"refund-{refund_id}"


@workflow.defn
class RefundWorkflow:
    @workflow.run
    async def run(self, inp: RefundWorkflowInput) -> RefundWorkflowResult:
        guard = StuckGuard("refund", inp.refund_id)
        try:
            await workflow.execute_activity_method(
                RefundActivities.refund_at_provider,
                RefundAtProviderInput(
                    refund_id=inp.refund_id,
                    deposit_id=inp.deposit_id,
                    provider=inp.provider,
                    amount_minor=inp.amount_minor,
                    currency=inp.currency,
                ),
                start_to_close_timeout=timedelta(seconds=inp.provider_call_seconds),
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
                    else kind
                )
                return await self._finish(inp, guard, "failed", reason("refund_refused", code))
            # The provider may have refunded: never ask again, never release the hold.
            await guard.flag(f"refund_outcome_unknown_at:{inp.provider}", kind or "unknown")
            return RefundWorkflowResult(status="pending", reason="outcome_unknown")
        return await self._finish(inp, guard, "succeeded", None)

    async def _finish(
        self, inp: RefundWorkflowInput, guard: StuckGuard, status: str, why: str | None
    ) -> RefundWorkflowResult:
        await guard.run(
            RefundActivities.settle_refund_hold,
            SettleRefundInput(
                refund_id=inp.refund_id,
                deposit_id=inp.deposit_id,
                action="post" if status == "succeeded" else "void",
            ),
        )
        await guard.run(
            RefundActivities.record_refund_status,
            RecordRefundInput(
                refund_id=inp.refund_id,
                status="succeeded" if status == "succeeded" else "failed",
                reason=why,
                occurred_at=workflow.now(),
            ),
        )
        return RefundWorkflowResult(status=status, reason=why)
