"""DepositWorkflow: risk check, charge at the provider, credit the wallet, one status at a time.

An unknown charge outcome is never treated as a failure: when retries are exhausted the workflow
asks the provider under the same reference, and only a provider that never saw the charge lets
the deposit fail.
"""

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.deposits import DepositActivities
    from activities.models import (
        ChargeCardInput,
        ChargeCardResult,
        CreditDepositInput,
        RecordStatusInput,
        RiskCheckInput,
    )
    from domain.risk import RiskVerdict
    from domain.statuses import DepositStatus
    from workflows import search_attributes as sa


class DepositTimings(BaseModel):
    provider_call_seconds: float = 15.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    give_up_seconds: float = 600.0


class DepositWorkflowInput(BaseModel):
    deposit_id: str
    player_id: str
    amount_minor: int
    currency: str
    provider: str
    card_token: str
    timings: DepositTimings = DepositTimings()


class DepositWorkflowResult(BaseModel):
    status: DepositStatus
    reason: str | None = None
    ledger_transaction_id: int | None = None


# Database activities retry until the database answers; their writes are idempotent.
_DB_TIMEOUT = timedelta(seconds=30)
_DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


@workflow.defn
class DepositWorkflow:
    def __init__(self) -> None:
        self._status = DepositStatus.PENDING

    @workflow.query
    def status(self) -> DepositStatus:
        return self._status

    @workflow.run
    async def run(self, inp: DepositWorkflowInput) -> DepositWorkflowResult:
        risk = await workflow.execute_activity_method(
            DepositActivities.assess_deposit_risk,
            RiskCheckInput(deposit_id=inp.deposit_id),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        if risk.decision is RiskVerdict.DECLINE:
            return await self._finish(inp, DepositStatus.DECLINED, "risk:" + ",".join(risk.reasons))

        await self._transition(inp, DepositStatus.PROCESSING, None)
        charge, failure = await self._charge(inp)
        if not charge.found:
            return await self._finish(inp, DepositStatus.FAILED, f"provider_error:{failure}")
        if charge.status != "succeeded":
            reason = f"provider_declined:{charge.decline_code or 'unknown'}"
            return await self._finish(inp, DepositStatus.FAILED, reason)

        credit = await workflow.execute_activity_method(
            DepositActivities.credit_deposit,
            CreditDepositInput(
                deposit_id=inp.deposit_id,
                player_id=inp.player_id,
                provider=inp.provider,
                amount_minor=inp.amount_minor,
                currency=inp.currency,
            ),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        result = await self._finish(inp, DepositStatus.SUCCEEDED, None)
        result.ledger_transaction_id = credit.transaction_id
        return result

    async def _charge(self, inp: DepositWorkflowInput) -> tuple[ChargeCardResult, str]:
        """The charge's outcome, and when the provider never saw it, why the calls failed."""
        timings = inp.timings
        charge_input = ChargeCardInput(
            deposit_id=inp.deposit_id,
            provider=inp.provider,
            card_token=inp.card_token,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
        )
        try:
            result = await workflow.execute_activity_method(
                DepositActivities.charge_card,
                charge_input,
                start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                schedule_to_close_timeout=timedelta(seconds=timings.give_up_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                    maximum_interval=timedelta(seconds=timings.retry_max_seconds),
                    non_retryable_error_types=["ProviderRejected", "UnknownProvider"],
                ),
            )
            return result, ""
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "UnknownProvider":
                raise
            failure = _failure_code(cause)
            workflow.logger.warning("charge gave up (%s); asking the provider", failure)
        # Unknown outcome: only the provider can say. Ask until it answers.
        settled = await workflow.execute_activity_method(
            DepositActivities.inquire_card_charge,
            charge_input,
            start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                maximum_interval=timedelta(minutes=5),
            ),
        )
        return settled, failure

    async def _finish(
        self, inp: DepositWorkflowInput, status: DepositStatus, reason: str | None
    ) -> DepositWorkflowResult:
        await self._transition(inp, status, reason)
        return DepositWorkflowResult(status=status, reason=reason)

    async def _transition(
        self, inp: DepositWorkflowInput, status: DepositStatus, reason: str | None
    ) -> None:
        await workflow.execute_activity_method(
            DepositActivities.record_deposit_status,
            RecordStatusInput(
                deposit_id=inp.deposit_id, status=status, reason=reason, occurred_at=workflow.now()
            ),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_DB_RETRY,
        )
        self._status = status
        workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(status.value)])


def _failure_code(cause: BaseException | None) -> str:
    if isinstance(cause, ApplicationError):
        details = cause.details
        if cause.type == "ProviderRejected" and details:
            return f"rejected:{details[0]}"
        return cause.type or "error"
    if isinstance(cause, TimeoutError):
        return "timeout"
    return type(cause).__name__ if cause else "unknown"
