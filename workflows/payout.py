"""A withdrawal's payout at its provider: pay, settle an unknown outcome there, follow a payout
that is processing (bank rails take hours). Workflow-side code, used by `workflows.withdrawal`.

The hold is released only on the provider's word: a payout it reports failed, or a reference it
confirms closed (or, where it cannot cancel what it never saw, that it still has not seen after
its processing window). Until then the withdrawal waits, flagged stuck when the bounds run out.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from activities.withdrawal_models import PayoutInput, PayoutResult
from activities.withdrawals import WithdrawalActivities
from workflows.steps import STUCK_RETRY, StuckGuard
from workflows.withdrawal_models import WithdrawalTimings, WithdrawalWorkflowInput


class Payout:
    def __init__(self, inp: WithdrawalWorkflowInput, guard: StuckGuard) -> None:
        self._timings: WithdrawalTimings = inp.timings
        self._guard = guard
        self._input = PayoutInput(
            withdrawal_id=inp.withdrawal_id,
            provider=inp.provider,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            method=inp.method,
            destination=dict(inp.destination),
        )

    async def run(self) -> PayoutResult:
        """The provider's final word: paid, failed, or never received (found False)."""
        timings = self._timings
        result: PayoutResult | None = None
        try:
            result = await workflow.execute_activity_method(
                WithdrawalActivities.pay_out,
                self._input,
                start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                schedule_to_close_timeout=timedelta(seconds=timings.give_up_seconds),
                retry_policy=self._retry(["PayoutRejected", "Config"]),
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "Config":
                raise
            workflow.logger.warning("payout not confirmed (%s): settling it at the provider", err)
        if result is None:
            result = await self._settle()
        return await self._until_final(result)

    async def _settle(self) -> PayoutResult:
        """Ask, closing the reference if the provider never saw it; if it cannot close what it
        never saw, wait out its processing window and ask again."""
        result = await self._ask(close=True)
        if result.found:
            return result
        await workflow.sleep(timedelta(seconds=self._timings.processing_window_seconds))
        return await self._ask(close=True)

    async def _until_final(self, result: PayoutResult) -> PayoutResult:
        """A payout in processing is normal: poll it with backoff until paid or failed."""
        interval = self._timings.processing_poll_seconds
        while result.found and result.status == "processing":
            await workflow.sleep(timedelta(seconds=interval))
            interval = min(interval * 2, self._timings.processing_poll_max_seconds)
            result = await self._ask(close=False)
        return result

    async def _ask(self, *, close: bool) -> PayoutResult:
        """An inquiry (and, with `close`, a cancel of a reference never seen), retried for
        give_up_seconds; when that runs out the withdrawal is flagged stuck and asked again
        every STUCK_RETRY. Errors never decide the payout."""
        flagged = False
        while True:
            try:
                result = await workflow.execute_activity_method(
                    WithdrawalActivities.inquire_payout
                    if close
                    else WithdrawalActivities.get_payout_status,
                    self._input,
                    start_to_close_timeout=timedelta(seconds=self._timings.provider_call_seconds),
                    schedule_to_close_timeout=timedelta(seconds=self._timings.give_up_seconds),
                    retry_policy=self._retry(["Config"]),
                )
            except ActivityError as err:
                flagged = True
                await self._guard.flag(f"payout_inquiry_at:{self._input.provider}", str(err))
                await workflow.sleep(STUCK_RETRY)
                continue
            if flagged:
                await self._guard.clear()
            return result

    def _retry(self, non_retryable: list[str]) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._timings.retry_initial_seconds),
            maximum_interval=timedelta(seconds=self._timings.retry_max_seconds),
            non_retryable_error_types=non_retryable,
        )
