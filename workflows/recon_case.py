"""CaseMoneyBackWorkflow: a reconciliation case resolved by giving its money back.

- `refund`: the provider refunds the payment it took. RefundWorkflow does it as a child, exactly
  as for a refund an operator asks for (asked once; posted on confirmation, released on refusal,
  flagged stuck when the outcome is unknown).
- `return_to_sender`: the operator's bank pays the money back to the payer's account, through
  the same payout steps as a withdrawal (idempotent on the case's payout reference, settled by
  inquiry when an answer is lost, polled while the bank is processing).

Either way the hold the API posted is posted when the money left and released when it did not;
the case is then resolved, or open again for another resolution. An unknown refund outcome
leaves the case `resolving` (its refund is stuck and alerted): giving money back twice is worse
than waiting.
"""

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.recon_cases import CaseActivities, FinishCaseInput, SettleReturnInput
    from workflows.payout import Payout
    from workflows.refund import RefundWorkflow, RefundWorkflowInput, refund_workflow_id
    from workflows.steps import DB_TIMEOUT, StuckGuard, reason
    from workflows.withdrawal_models import WithdrawalTimings, WithdrawalWorkflowInput

_DB_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=1), non_retryable_error_types=["HoldAlreadyResolved"]
)


class CaseMoneyBackInput(BaseModel):
    case_id: int
    action: Literal["refund", "return_to_sender"]
    provider: str  # the provider that refunds, or the operator's bank that pays back
    amount_minor: int
    currency: str
    refund_id: str | None = None
    deposit_id: str | None = None
    payout_reference: str | None = None
    iban: str | None = None
    provider_call_seconds: float = 30.0
    timings: WithdrawalTimings = WithdrawalTimings()


class CaseMoneyBackResult(BaseModel):
    status: Literal["resolved", "open", "resolving"]
    reason: str | None = None


def case_workflow_id(case_id: int) -> str:
    return f"recon-case-{case_id}"


@workflow.defn
class CaseMoneyBackWorkflow:
    @workflow.run
    async def run(self, inp: CaseMoneyBackInput) -> CaseMoneyBackResult:
        if inp.action == "refund":
            return await self._refund(inp)
        return await self._return(inp)

    async def _refund(self, inp: CaseMoneyBackInput) -> CaseMoneyBackResult:
        assert inp.refund_id is not None
        assert inp.deposit_id is not None
        result = await workflow.execute_child_workflow(
            RefundWorkflow.run,
            RefundWorkflowInput(
                refund_id=inp.refund_id,
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                amount_minor=inp.amount_minor,
                currency=inp.currency,
                provider_call_seconds=inp.provider_call_seconds,
            ),
            id=refund_workflow_id(inp.refund_id),
        )
        if result.status == "pending":
            return CaseMoneyBackResult(status="resolving", reason=result.reason)
        return await self._finish(inp, result.status == "succeeded", result.reason)

    async def _return(self, inp: CaseMoneyBackInput) -> CaseMoneyBackResult:
        assert inp.payout_reference is not None
        assert inp.iban is not None
        payout = Payout(
            WithdrawalWorkflowInput(
                withdrawal_id=inp.payout_reference,
                player_id="",
                amount_minor=inp.amount_minor,
                currency=inp.currency,
                method="bank_transfer",
                destination={"iban": inp.iban},
                provider=inp.provider,
                approvals_needed=0,
                timings=inp.timings,
            ),
            StuckGuard("withdrawal", inp.payout_reference),
        )
        result = await payout.run()
        paid = result.found and result.status == "paid"
        await workflow.execute_activity_method(
            CaseActivities.settle_return_hold,
            SettleReturnInput(
                case_id=inp.case_id,
                payout_reference=inp.payout_reference,
                action="post" if paid else "void",
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        why = None if paid else reason("return_failed", result.failure_code or "not_paid")
        return await self._finish(inp, paid, why)

    async def _finish(
        self, inp: CaseMoneyBackInput, succeeded: bool, why: str | None
    ) -> CaseMoneyBackResult:
        finished = await workflow.execute_activity_method(
            CaseActivities.finish_case,
            FinishCaseInput(
                case_id=inp.case_id, succeeded=succeeded, reason=why, occurred_at=workflow.now()
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        status = "resolved" if finished.status == "resolved" else "open"
        return CaseMoneyBackResult(status=status, reason=why)
