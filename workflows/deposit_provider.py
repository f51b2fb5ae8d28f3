"""A deposit at one provider: start the payment, settle an unknown outcome there, wait for the
player. Workflow-side code (deterministic), used by `workflows.deposit`.

The rules it keeps:
- A failed try is read once (`steps.read_failure`). Only the provider's clear "not processed"
  (a documented refusal, throttling, a request that never left) lets the deposit move on.
- Anything else leaves the outcome unknown, and only this provider, under the same reference,
  settles it: inquire; if it never saw the payment, close the reference (a cancel it confirms)
  or, when it cannot cancel what it never saw, wait out its processing window and inquire
  again. Still unsettled: the deposit stays here as `unknown`, flagged stuck, never elsewhere.
- A callback is only a hint: what the provider answers to an inquiry decides, and only a
  success for the deposit's exact amount and currency pays it.
"""

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from activities.deposits import DepositActivities
from activities.gateway_models import InquiryInput, ProviderCallInput, ProviderCallResult
from workflows.deposit_models import DepositWorkflowInput
from workflows.steps import ONE_TRY, EventBuffer, StuckGuard, read_failure

FINAL = ("succeeded", "declined", "expired", "cancelled")


@dataclass(frozen=True)
class Settled:
    """Where the deposit stands with this provider once it is done there."""

    kind: Literal["paid", "declined", "expired", "moved", "unknown"]
    code: str | None = None
    result: ProviderCallResult | None = None


class AtProvider:
    def __init__(
        self,
        inp: DepositWorkflowInput,
        provider: str,
        *,
        action_ttl_seconds: int,
        processing_window_seconds: int,
        events: EventBuffer,
        guard: StuckGuard,
    ) -> None:
        self._inp = inp
        self.provider = provider
        self._ttl = action_ttl_seconds
        self._window = processing_window_seconds
        self._events = events
        self._guard = guard
        self._asks = 0  # numbers the inquiries and cancels recorded as attempts
        self._mismatch_flagged = False

    # -- starting --------------------------------------------------------------------------

    async def start(self) -> ProviderCallResult | Settled:
        """The provider's answer to the start call, or where the deposit stands if none came."""
        timings = self._inp.timings
        unknown = False
        last = "error"
        delay = timings.retry_initial_seconds
        for attempt in range(1, timings.provider_attempts + 1):
            try:
                return await workflow.execute_activity_method(
                    DepositActivities.charge_card
                    if self._inp.method == "card"
                    else DepositActivities.create_payment,
                    self._call(attempt, inquire_first=unknown),
                    start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                    retry_policy=ONE_TRY,
                )
            except ActivityError as err:
                failure = read_failure(err)
            last = failure.code
            unknown = unknown or failure.kind == "unknown"
            if failure.kind == "rejected" and not unknown:
                return Settled("moved", f"rejected:{failure.code}")
            if failure.kind == "rejected":
                break  # refused now, but an earlier try may have gone through: settle it
            if attempt < timings.provider_attempts:
                await workflow.sleep(timedelta(seconds=failure.retry_after or delay))
                delay = min(delay * 2, timings.retry_max_seconds)
        if not unknown:
            return Settled("moved", last)
        return await self._settle_unknown(last)

    def _call(self, attempt: int, *, inquire_first: bool) -> ProviderCallInput:
        inp = self._inp
        return ProviderCallInput(
            deposit_id=inp.deposit_id,
            provider=self.provider,
            method=inp.method,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            card_token=inp.card.tokens.get(self.provider) if inp.card else None,
            details=inp.details,
            expires_in_seconds=self._ttl,
            attempt=attempt,
            inquire_first=inquire_first,
        )

    async def _settle_unknown(self, last: str) -> ProviderCallResult | Settled:
        found = await self._ask(DepositActivities.inquire_payment)
        if found is None or found.found:
            return found or Settled("unknown", "inquiry_gave_up")
        closed = await self._ask(DepositActivities.cancel_payment)
        if closed is None:
            return Settled("unknown", "cancel_gave_up")
        if closed.found:  # the provider closed it, or the payment arrived meanwhile
            return Settled("moved", last) if closed.status == "cancelled" else closed
        # It cannot cancel what it never saw: a request in flight may still land. Wait that
        # out, then ask once more.
        await workflow.sleep(timedelta(seconds=self._window))
        again = await self._ask(DepositActivities.inquire_payment)
        if again is None:
            return Settled("unknown", "inquiry_gave_up")
        return again if again.found else Settled("moved", last)

    async def _ask(
        self,
        activity: Callable[[DepositActivities, InquiryInput], Awaitable[ProviderCallResult]],
    ) -> ProviderCallResult | None:
        """An inquiry or cancel, retried with backoff for up to give_up_seconds (a 429 waits
        its Retry-After); None when the provider did not answer by then."""
        timings = self._inp.timings
        self._asks += 1
        try:
            result: ProviderCallResult = await workflow.execute_activity_method(
                activity,
                InquiryInput(
                    deposit_id=self._inp.deposit_id,
                    provider=self.provider,
                    method=self._inp.method,
                    attempt=timings.provider_attempts + self._asks,
                ),
                start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                schedule_to_close_timeout=timedelta(seconds=timings.give_up_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                    maximum_interval=timedelta(seconds=timings.retry_max_seconds),
                    non_retryable_error_types=["UnknownProvider"],
                ),
            )
        except ActivityError:
            return None
        return result

    # -- after the start ---------------------------------------------------------------------

    async def outcome(self, started: ProviderCallResult) -> Settled:
        """A final answer from this provider. An unknown one is asked again slowly, flagged
        stuck, for unknown_give_up_seconds; reconciliation settles what is left."""
        if started.status not in FINAL:
            return await self._await_player()
        return self._judge(started)

    async def hold_unknown(self, code: str) -> Settled:
        timings = self._inp.timings
        await self._guard.flag(f"outcome_unknown_at:{self.provider}", code)
        deadline = workflow.now() + timedelta(seconds=timings.unknown_give_up_seconds)
        while workflow.now() < deadline:
            await workflow.sleep(timedelta(seconds=timings.unknown_poll_seconds))
            polled = await self._poll()
            if polled is not None and polled.status in FINAL:
                await self._guard.clear()
                return self._judge(polled)
        return Settled("unknown", code)

    def _judge(self, result: ProviderCallResult) -> Settled:
        inp = self._inp
        if result.status == "succeeded":
            if result.pays(inp.amount_minor, inp.currency):
                return Settled("paid", None, result)
            return Settled("unknown", "amount_mismatch", result)
        if result.status in ("expired", "cancelled"):
            return Settled("expired", "player_did_not_finish", result)
        return Settled("declined", result.decline_code or "unknown", result)

    async def _await_player(self) -> Settled:
        """Poll with backoff until a final answer; a callback only makes the next poll now.
        When the player's time is up, cancel there: it answers with the payment if paid."""
        timings = self._inp.timings
        deadline = workflow.now() + timedelta(seconds=self._ttl)
        interval = timings.poll_initial_seconds
        poll_max = max(timings.poll_max_seconds, self._ttl / 24)
        while (remaining := (deadline - workflow.now()).total_seconds()) > 0:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._events.final_from(self.provider, FINAL) is not None,
                    timeout=timedelta(seconds=min(interval, remaining)),
                )
            hinted = self._events.final_from(self.provider, FINAL)
            if hinted is not None:
                self._events.consume(hinted)
            polled = await self._poll()
            if polled is not None and polled.status in FINAL:
                settled = self._judge(polled)
                if settled.kind != "unknown":
                    return settled
                # Another amount does not pay it (a short transfer may still be topped up):
                # wait on, but visibly.
                await self._flag_mismatch(polled)
            if hinted is None:
                interval = min(interval * 2, poll_max)
        closed = await self._ask(DepositActivities.cancel_payment)
        if closed is None:
            return Settled("unknown", "cancel_gave_up")
        if closed.found and closed.status == "succeeded":
            paid = self._judge(closed)  # another amount: not paid, the money is an alert's case
            return paid if paid.kind == "paid" else Settled("expired", "amount_mismatch", closed)
        return Settled("expired", "player_did_not_finish", closed)

    async def _flag_mismatch(self, paid: ProviderCallResult) -> None:
        if self._mismatch_flagged:
            return
        self._mismatch_flagged = True
        inp = self._inp
        await self._guard.flag(
            f"amount_mismatch_at:{self.provider}",
            f"paid {paid.amount_minor} {paid.currency} of {inp.amount_minor} {inp.currency}",
        )

    async def _poll(self) -> ProviderCallResult | None:
        """One status inquiry; a provider that does not answer is asked at the next poll."""
        self._asks += 1
        try:
            return await workflow.execute_activity_method(
                DepositActivities.inquire_payment,
                InquiryInput(
                    deposit_id=self._inp.deposit_id,
                    provider=self.provider,
                    method=self._inp.method,
                    attempt=self._asks,
                ),
                start_to_close_timeout=timedelta(seconds=self._inp.timings.provider_call_seconds),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except ActivityError:
            return None
