"""DepositWorkflow: risk check, route, start the payment at a provider with cascading failover,
wait for the player when the method needs it, credit the wallet; one status at a time.

- Routing (an activity: rules, circuits, success rates) gives the providers in failover order.
- At one provider the start call is tried a few times. A failure that is safe to retry
  elsewhere (5xx, unreachable, outage) moves on to the next provider. A timeout makes the
  outcome unknown: the next try there inquires first, and before leaving that provider a status
  inquiry under the same reference must say it never saw the payment; only then is another
  provider tried. So a charge is never made twice.
- Asynchronous methods and 3-D Secure wait in `requires_action` for the provider's verified
  callback (a signal from the webhook) while polling the provider's status with backoff, so a
  lost callback only delays the result. When the player's time is up the payment is cancelled
  at the provider (unless it was paid meanwhile) and the deposit expires.
"""

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout

with workflow.unsafe.imports_passed_through():
    from activities.deposits import DepositActivities
    from activities.gateway_models import (
        InquiryInput,
        PrepareDepositInput,
        ProviderCallInput,
        ProviderCallResult,
        ProviderEvent,
        RecordRouteInput,
        RouteCandidate,
        RouteDepositInput,
    )
    from activities.models import (
        CreditDepositInput,
        RecordStatusInput,
        RiskCheckInput,
    )
    from domain.risk import RiskVerdict
    from domain.statuses import DepositStatus
    from workflows import search_attributes as sa

    # The models live in their own module, passed through: the sandbox re-imports this module
    # for every workflow run, and building pydantic models there cost ~1 ms of CPU each time.
    from workflows.deposit_models import (
        FLOW_PREPARED,
        DepositTimings,
        DepositWorkflowInput,
        DepositWorkflowResult,
    )

__all__ = ["DepositTimings", "DepositWorkflow", "DepositWorkflowInput", "DepositWorkflowResult"]


# Database activities retry until the database answers; their writes are idempotent.
_DB_TIMEOUT = timedelta(seconds=30)
_DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
_ONCE = RetryPolicy(maximum_attempts=1)
_FINAL = ("succeeded", "declined", "expired", "cancelled")
_In = TypeVar("_In")
_Out = TypeVar("_Out")


class _Failover(Exception):
    """Nothing happened at this provider; the next one may be tried."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# Every deposit runs this workflow, so it runs outside the sandbox: setting up a sandbox and
# re-importing this module for each run was ~10% of the worker's CPU (bench.payments c20:
# 19.1 -> 20.6 deposits/s with it off). What the sandbox would catch at run time is caught by
# test_deposit_replay (histories of every flow version) and by review: this module calls only
# workflow APIs (workflow.now, timers, activities), keeps no module state and imports its
# models through imports_passed_through like the sandboxed workflows.
@workflow.defn(sandboxed=False)
class DepositWorkflow:
    def __init__(self) -> None:
        self._status = DepositStatus.PENDING
        self._events: list[ProviderEvent] = []
        self._local_db = False
        self._lean = False
        self._prepared = False

    @workflow.query
    def status(self) -> DepositStatus:
        return self._status

    @workflow.signal
    def provider_event(self, event: ProviderEvent) -> None:
        """A verified callback. Duplicates and stale (non-final) ones change nothing."""
        self._events.append(event)

    @workflow.run
    async def run(self, inp: DepositWorkflowInput) -> DepositWorkflowResult:
        # Version 2 of the flow (FLOW_PREPARED, chosen at start) has every change below in
        # place; version 1 histories replay through the patches that introduced them.
        self._prepared = inp.flow_version >= FLOW_PREPARED
        self._local_db = self._patched("local-db-activities")
        # Since this patch the provider that took the payment is recorded with the next status
        # (one database step, not a route step of its own), and a card deposit that is already
        # `processing` is not moved to `processing` again. Earlier histories replay without it.
        self._lean = self._patched("route-with-status")
        route_input = RouteDepositInput(
            deposit_id=inp.deposit_id,
            method=inp.method,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            bin=inp.card.bin if inp.card else None,
            scheme=inp.card.scheme if inp.card else None,
            allowed=list(inp.card.tokens) if inp.card else None,
        )
        if self._prepared:
            prepared = await self._db_step(
                DepositActivities.prepare_deposit,
                PrepareDepositInput(
                    route=route_input,
                    processing_at=workflow.now() if inp.method == "card" else None,
                ),
            )
            risk, route = prepared.risk, prepared.route
            if route is not None and inp.method == "card":
                # Recorded by prepare_deposit; the search attribute goes with the provider's.
                self._status = DepositStatus.PROCESSING
        else:
            risk = await self._db_step(
                DepositActivities.assess_deposit_risk, RiskCheckInput(deposit_id=inp.deposit_id)
            )
            route = None
            if risk.decision is not RiskVerdict.DECLINE:
                route = await self._db_step(DepositActivities.route_deposit, route_input)
                if inp.method == "card":
                    await self._transition(inp, DepositStatus.PROCESSING, None)
        if route is None or risk.decision is RiskVerdict.DECLINE:
            return await self._finish(inp, DepositStatus.DECLINED, "risk:" + ",".join(risk.reasons))

        failures: list[str] = [f"{name}:circuit_open" for name in route.skipped]
        for candidate in route.candidates:
            try:
                started = await self._start_at(inp, candidate)
            except _Failover as failover:
                failures.append(f"{candidate.provider}:{failover.code}")
                continue
            except (ActivityError, ApplicationError) as err:  # the provider refused the request
                cause = _cause(err)
                code = (
                    cause.details[0]
                    if isinstance(cause, ApplicationError) and cause.details
                    else "rejected"
                )
                return await self._finish(inp, DepositStatus.FAILED, f"provider_rejected:{code}")
            return await self._settle(inp, candidate, started)
        reason = "no_provider_available" if not failures else "provider_error:" + ",".join(failures)
        return await self._finish(inp, DepositStatus.FAILED, reason[:200])

    # -- starting the payment at one provider ------------------------------------------------

    async def _start_at(
        self, inp: DepositWorkflowInput, candidate: RouteCandidate
    ) -> ProviderCallResult:
        """The provider's answer, or _Failover when it is safe to go elsewhere."""
        timings = inp.timings
        provider = candidate.provider
        attributes = [sa.PROVIDER.value_set(provider)]
        if self._prepared:  # one upsert for both: the status is recorded but not yet shown
            attributes.append(sa.PAYMENT_STATUS.value_set(self._status.value))
        workflow.upsert_search_attributes(attributes)
        call = ProviderCallInput(
            deposit_id=inp.deposit_id,
            provider=provider,
            method=inp.method,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            card_token=inp.card.tokens.get(provider) if inp.card else None,
            details=inp.details,
            expires_in_seconds=candidate.action_ttl_seconds,
        )
        activity = (
            DepositActivities.charge_card
            if inp.method == "card"
            else DepositActivities.create_payment
        )
        # Since `provider-call-local` each try is a local activity: it runs in the workflow task
        # (no activity task through the server, one marker instead of three events). Each try
        # is still one call, idempotent on the deposit id at the provider, and the workflow still
        # decides on retries, inquiries and failover.
        local = self._patched("provider-call-local")
        ambiguous = False
        last = "error"
        delay = timings.retry_initial_seconds
        for attempt in range(1, timings.provider_attempts + 1):
            call.attempt = attempt
            call.inquire_first = ambiguous
            try:
                if local:
                    return await workflow.execute_local_activity_method(
                        activity,
                        call,
                        start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                        retry_policy=_ONCE,
                    )
                return await workflow.execute_activity_method(
                    activity,
                    call,
                    start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                    retry_policy=_ONCE,
                )
            except (ActivityError, ApplicationError, TemporalTimeout) as err:
                cause = _cause(err)
                if isinstance(cause, ApplicationError) and cause.type in (
                    "ProviderRejected",
                    "UnknownProvider",
                ):
                    raise
                ambiguous = ambiguous or _leaves_outcome_unknown(cause, strict=self._prepared)
                last = _failure_code(cause)
            if attempt < timings.provider_attempts:
                await workflow.sleep(timedelta(seconds=delay))
                delay = min(delay * 2, timings.retry_max_seconds)
        if not ambiguous:
            raise _Failover(last)
        # A try timed out: only this provider can say whether it happened. Ask until it answers.
        settled = await workflow.execute_activity_method(
            DepositActivities.inquire_payment,
            InquiryInput(
                deposit_id=inp.deposit_id,
                provider=provider,
                method=inp.method,
                attempt=timings.provider_attempts + 1,
            ),
            start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                maximum_interval=timedelta(minutes=5),
                non_retryable_error_types=["ProviderRejected", "UnknownProvider"],
            ),
        )
        if not settled.found:
            if inp.method == "card" and self._patched("close-reference-before-failover"):
                # Close the reference here first: a charge request still in flight must not
                # succeed at this provider after another one has charged the card.
                closed = await workflow.execute_activity_method(
                    DepositActivities.cancel_payment,
                    InquiryInput(
                        deposit_id=inp.deposit_id,
                        provider=provider,
                        method=inp.method,
                        attempt=timings.provider_attempts + 2,
                    ),
                    start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                        maximum_interval=timedelta(minutes=5),
                        non_retryable_error_types=["ProviderRejected", "UnknownProvider"],
                    ),
                )
                if closed.found and closed.status != "cancelled":
                    return closed  # it arrived after all: this provider has the payment
            raise _Failover(last)
        return settled

    # -- after a provider took the payment ----------------------------------------------------

    async def _settle(
        self, inp: DepositWorkflowInput, candidate: RouteCandidate, started: ProviderCallResult
    ) -> DepositWorkflowResult:
        provider = candidate.provider
        outcome: ProviderCallResult | ProviderEvent = started
        if started.status not in _FINAL:
            await self._record_route(inp, provider, started.next_action)
            await self._transition(inp, DepositStatus.REQUIRES_ACTION, None)
            outcome = await self._await_player(inp, candidate)
        # Who served it; nothing is left for the player to do. Since `route-with-status` this
        # is written with the next status.
        served: str | None = provider
        if not self._lean:
            await self._record_route(inp, provider, None)
            served = None
        status = outcome.status
        if status == "succeeded":
            if not (self._lean and self._status is DepositStatus.PROCESSING):
                await self._transition(inp, DepositStatus.PROCESSING, None, provider=served)
                served = None
            # Since `credit-with-status` the credit also records `succeeded` (and the provider)
            # in its database transaction: one step, not two.
            together = self._lean and self._patched("credit-with-status")
            credit = await self._db_step(
                DepositActivities.credit_deposit,
                CreditDepositInput(
                    deposit_id=inp.deposit_id,
                    player_id=inp.player_id,
                    provider=provider,
                    amount_minor=inp.amount_minor,
                    currency=inp.currency,
                    succeeded_at=workflow.now() if together else None,
                ),
            )
            if together:
                self._status_is(DepositStatus.SUCCEEDED)
                result = DepositWorkflowResult(status=DepositStatus.SUCCEEDED)
            else:
                result = await self._finish(inp, DepositStatus.SUCCEEDED, None, provider=served)
            result.ledger_transaction_id = credit.transaction_id
            result.provider = provider
            return result
        if status in ("expired", "cancelled"):
            result = await self._finish(
                inp, DepositStatus.EXPIRED, "expired:player_did_not_finish", provider=served
            )
        else:
            reason = f"provider_declined:{outcome.decline_code or 'unknown'}"
            result = await self._finish(inp, DepositStatus.FAILED, reason, provider=served)
        result.provider = provider
        return result

    def _final_event(self, provider: str, amount_minor: int) -> ProviderEvent | None:
        for event in self._events:
            if event.provider != provider or event.status not in _FINAL:
                continue  # another provider's, or a stale 'processing' arriving late
            if event.status == "succeeded" and event.amount_minor not in (None, amount_minor):
                continue  # a transfer of another amount does not pay this deposit
            return event
        return None

    async def _await_player(
        self, inp: DepositWorkflowInput, candidate: RouteCandidate
    ) -> ProviderCallResult | ProviderEvent:
        """The callback, or a poll that finds a final status, or expiry (cancel at provider)."""
        timings = inp.timings
        provider = candidate.provider
        deadline = workflow.now() + timedelta(seconds=candidate.action_ttl_seconds)
        interval = timings.poll_initial_seconds
        poll_max = max(timings.poll_max_seconds, candidate.action_ttl_seconds / 24)
        polls = 0
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):  # no callback yet: poll the provider
                await workflow.wait_condition(
                    lambda: self._final_event(provider, inp.amount_minor) is not None,
                    timeout=timedelta(seconds=min(interval, remaining)),
                )
            event = self._final_event(provider, inp.amount_minor)
            if event is not None:
                return event
            polls += 1
            polled = await self._poll(inp, provider, polls)
            if polled is not None:
                return polled
            interval = min(interval * 2, poll_max)
        # Time is up. Cancel at the provider; it answers with the payment if it was paid.
        closed = await workflow.execute_activity_method(
            DepositActivities.cancel_payment,
            InquiryInput(deposit_id=inp.deposit_id, provider=provider, method=inp.method),
            start_to_close_timeout=timedelta(seconds=timings.provider_call_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=timings.retry_initial_seconds),
                maximum_interval=timedelta(minutes=5),
                non_retryable_error_types=["ProviderRejected", "UnknownProvider"],
            ),
        )
        event = self._final_event(provider, inp.amount_minor)
        if event is not None and event.status == "succeeded":
            return event
        if closed.status == "succeeded" and closed.amount_minor in (None, inp.amount_minor):
            return closed
        return ProviderCallResult(found=closed.found, status="expired", decline_code="expired")

    async def _poll(
        self, inp: DepositWorkflowInput, provider: str, number: int
    ) -> ProviderCallResult | None:
        """One status inquiry; a provider that does not answer is asked again at the next poll."""
        try:
            polled = await workflow.execute_activity_method(
                DepositActivities.inquire_payment,
                InquiryInput(
                    deposit_id=inp.deposit_id, provider=provider, method=inp.method, attempt=number
                ),
                start_to_close_timeout=timedelta(seconds=inp.timings.provider_call_seconds),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except ActivityError:
            return None
        if polled.status in _FINAL:
            if polled.status == "succeeded" and polled.amount_minor not in (None, inp.amount_minor):
                return None
            return polled
        return None

    # -- bookkeeping ---------------------------------------------------------------------------

    def _patched(self, patch_id: str) -> bool:
        """A change gated for version 1 histories; version 2 has them all, without markers."""
        return True if self._prepared else workflow.patched(patch_id)

    async def _db_step(
        self, activity: Callable[[DepositActivities, _In], Awaitable[_Out]], arg: _In
    ) -> _Out:
        """A short, idempotent database step. Since the `local-db-activities` patch it runs as a
        local activity inside the workflow task (no task round trip through the server; one
        marker event instead of three); earlier deposits' histories replay with activities."""
        if self._local_db:
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=_DB_TIMEOUT, retry_policy=_DB_RETRY
            )
        return await workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=_DB_TIMEOUT, retry_policy=_DB_RETRY
        )

    async def _record_route(
        self, inp: DepositWorkflowInput, provider: str, next_action: dict[str, Any] | None
    ) -> None:
        await self._db_step(
            DepositActivities.record_deposit_route,
            RecordRouteInput(
                deposit_id=inp.deposit_id,
                provider=provider,
                next_action=next_action,
                occurred_at=workflow.now(),
            ),
        )

    async def _finish(
        self,
        inp: DepositWorkflowInput,
        status: DepositStatus,
        reason: str | None,
        *,
        provider: str | None = None,
    ) -> DepositWorkflowResult:
        await self._transition(inp, status, reason, provider=provider)
        return DepositWorkflowResult(status=status, reason=reason)

    async def _transition(
        self,
        inp: DepositWorkflowInput,
        status: DepositStatus,
        reason: str | None,
        *,
        provider: str | None = None,
    ) -> None:
        """Record the status; with `provider`, also the provider that served the deposit (and
        no action left for the player), in the same database transaction."""
        await self._db_step(
            DepositActivities.record_deposit_status,
            RecordStatusInput(
                deposit_id=inp.deposit_id,
                status=status,
                reason=reason,
                occurred_at=workflow.now(),
                provider=provider,
            ),
        )
        self._status_is(status)

    def _status_is(self, status: DepositStatus) -> None:
        """The status the database now has, for queries and the PaymentStatus attribute."""
        self._status = status
        workflow.upsert_search_attributes([sa.PAYMENT_STATUS.value_set(status.value)])


def _cause(err: BaseException) -> BaseException | None:
    """What went wrong in an activity: an ActivityError carries it as its cause; a local
    activity's failure can arrive as the ApplicationError or TimeoutError itself."""
    return err.cause if isinstance(err, ActivityError) else err


def _leaves_outcome_unknown(cause: BaseException | None, *, strict: bool) -> bool:
    """Whether a failed try may have reached the provider, so that only an inquiry there may
    decide before another provider is tried.

    A timeout may have. So may anything that is not the provider's own clear failure: the
    call can succeed and the activity still fail afterwards (the attempt record hit a database
    outage, a bug). Flow version 1 (`strict` False) counted only timeouts; a database outage
    longer than the tries there could then fail over from a charged card.
    """
    if isinstance(cause, TemporalTimeout):
        return True
    if isinstance(cause, ApplicationError) and cause.type == "ProviderTimeout":
        return True
    if not strict:
        return False
    return not (isinstance(cause, ApplicationError) and cause.type == "ProviderUnavailable")


def _failure_code(cause: BaseException | None) -> str:
    if isinstance(cause, ApplicationError):
        if cause.details:
            return str(cause.details[0])
        return cause.type or "error"
    if isinstance(cause, TemporalTimeout):
        return "timeout"
    return type(cause).__name__ if cause else "unknown"
