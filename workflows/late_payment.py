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
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deposits import DepositActivities
    from activities.gateway_models import InquiryInput, ProviderCallResult
    from activities.late_payments import (
        LatePaymentActivities,
        OpenLateInput,
        ResolveLateInput,
    )
    from activities.models import CreditDepositInput
    from activities.refunds import RefundActivities, RefundAtProviderInput
    from workflows.compliance_steps import ESU_REPORT_PATCH, start_compliance_report
    from workflows.steps import StuckGuard, reason

# Released change: a case to refund is refunded through the connector that took the money
# (before, it was only recorded as `refund_requested`). Older histories keep their path.
REFUND_AT_PROVIDER = "late-refund-at-provider"
# Released change: money a late request only held at an auth/capture acquirer is released by
# the inquiry, never taken (taking it would charge the payer twice).
RELEASE_HELD = "late-release-held"


class LatePaymentInput(BaseModel):
    deposit_id: str
    provider: str
    method: str
    amount_minor: int  # the deposit's, from our database: the callback's figures decide nothing
    currency: str
    inquiry_seconds: float = 3600.0


class LatePaymentResult(BaseModel):
    # not_confirmed | not_late | credited | refunded | refund_requested | refund_pending
    # | manual | already_resolved
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
