"""What the payment workflows start for compliance, and the patches that gate it (README,
"Changing a workflow"). Deterministic workflow code only; passed through the sandbox.

Patch ids (added in issue 17; deprecate once no run older than them is open):
- `compliance-esu-report`: deposits (when credited, late ones too), withdrawals (when asked)
  and payouts (when paid) start a `ComplianceReportWorkflow` that reports them to the ESU (a
  paid one is screened for financial monitoring first);
- `compliance-payout-deadline`: a withdrawal starts its `PayoutDeadlineWorkflow`;
- `compliance-credit-funds`: a deposit the provider reports as paid with credit money is not
  credited: failed `credit_funds_not_allowed`, a case opened and the money refunded.

Each is started by a local activity (`ComplianceActivities.start_compliance_workflow`) as a
workflow of its own, under an id of the payment, rejected if it ran before: the payment's
workflow is never held up by the ESU or the deadline, and a replayed start never starts a
second one.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from activities.compliance import ComplianceActivities, StartComplianceInput
from activities.refunds import RefundActivities, RefundAtProviderInput
from domain.compliance.esu import OperationKind
from workflows.steps import StuckGuard, reason

ESU_REPORT_PATCH = "compliance-esu-report"
PAYOUT_DEADLINE_PATCH = "compliance-payout-deadline"
CREDIT_FUNDS_PATCH = "compliance-credit-funds"

# The ESU not answering is retried without end (its outage must not lose a report), backing
# off to ten minutes between tries; a DB step's own retries are bounded inside each try.
ESU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["EsuRejected", "NotFound"],
)
DB_STEP_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=5), non_retryable_error_types=["NotFound"]
)


async def start_compliance_report(guard: StuckGuard, kind: OperationKind, payment_id: str) -> None:
    await guard.run(
        ComplianceActivities.start_compliance_workflow,
        StartComplianceInput(workflow="report", kind=kind, payment_id=payment_id),
    )


async def start_payout_deadline(guard: StuckGuard, withdrawal_id: str) -> None:
    await guard.run(
        ComplianceActivities.start_compliance_workflow,
        StartComplianceInput(workflow="payout_deadline", payment_id=withdrawal_id),
    )


async def refund_at_provider(
    guard: StuckGuard,
    *,
    refund_id: str,
    deposit_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
) -> str:
    """Money that must not be kept goes back through the provider that took it, under a key of
    its case: asked again only while the request never reached the provider; a refusal or an
    unknown outcome flags the deposit stuck (refunding twice is worse than waiting for the
    provider's report). `refunded`, `refund_refused` or `refund_pending`."""
    try:
        await workflow.execute_activity_method(
            RefundActivities.refund_at_provider,
            RefundAtProviderInput(
                refund_id=refund_id,
                deposit_id=deposit_id,
                provider=provider,
                amount_minor=amount_minor,
                currency=currency,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                maximum_attempts=5,
                non_retryable_error_types=["RefundRefused", "RefundOutcomeUnknown", "NoRefunds"],
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
            await guard.flag(f"credit_refund_refused_at:{provider}", reason("refused", code))
            return "refund_refused"
        await guard.flag(f"credit_refund_outcome_unknown_at:{provider}", kind or "unknown")
        return "refund_pending"
    return "refunded"
