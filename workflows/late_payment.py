"""LatePaymentWorkflow: a provider reports a success for a deposit that already expired,
failed, or succeeded at another provider. Money is never dropped, and never moves on a
callback's word: the provider is asked; only its confirmation of the deposit's exact amount and
currency opens a case (critical alert), and the policy then applies it exactly once — credit
the player with the deposit's own credit posting (default), or ask a refund of the provider.

One workflow id per deposit and provider (`late-{deposit_id}-{provider}`): a callback resent
while it runs joins it; a later report (a short transfer topped up) runs it again, and every
step is idempotent (one case per deposit and provider, the deposit's own credit posting). A
payment of another amount opens the case for an operator (policy `manual`) instead of crediting.
"""

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.deposits import DepositActivities
    from activities.gateway_models import InquiryInput
    from activities.late_payments import (
        LatePaymentActivities,
        OpenLateInput,
        ResolveLateInput,
    )
    from activities.models import CreditDepositInput
    from workflows.steps import StuckGuard


class LatePaymentInput(BaseModel):
    deposit_id: str
    provider: str
    method: str
    amount_minor: int  # the deposit's, from our database: the callback's figures decide nothing
    currency: str
    inquiry_seconds: float = 3600.0


class LatePaymentResult(BaseModel):
    # not_confirmed | not_late | credited | refund_requested | manual | already_resolved
    outcome: str
    case_id: int | None = None


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
                InquiryInput(deposit_id=inp.deposit_id, provider=inp.provider, method=inp.method),
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
        resolution = "credited" if case.policy == "credit" else "refund_requested"
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
