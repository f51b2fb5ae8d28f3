"""Workflow-side building blocks the payment workflows share: bounded steps, the reading of a
failed provider call, reasons that fit their column, and a bounded buffer of callbacks.

Deterministic code only (workflow APIs, no I/O): it runs inside the workflows' sandbox, passed
through so that it is imported once per worker rather than once per run.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout

from activities.gateway_models import ProviderEvent
from activities.stuck import ClearStuckInput, FlagStuckInput, PaymentKind, StuckActivities

Out = TypeVar("Out")

REASON_MAX = 200  # deposits.status_reason, withdrawals.status_reason, payment_events.reason

# Errors no retry can cure: the row is not there, the posting is refused, the input is invalid.
PERMANENT_ERRORS = [
    "NotFound",
    "InvalidInput",
    "UnknownProvider",
    "HoldAlreadyResolved",
    "InsufficientFunds",
    "LedgerError",
    "DuplicateKeyConflict",
]
DB_TIMEOUT = timedelta(seconds=30)
# About four minutes of tries: a database restart or failover fits; a longer outage flags the
# payment stuck and is tried again every STUCK_RETRY.
DB_RETRY = RetryPolicy(
    maximum_attempts=10,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT_ERRORS,
)
STUCK_RETRY = timedelta(minutes=10)
ONE_TRY = RetryPolicy(maximum_attempts=1)


def reason(code: str, detail: str | None = None, *, limit: int = REASON_MAX) -> str:
    """A status reason: a code plus a bounded, printable detail; it always fits its column
    (no NUL or control character reaches PostgreSQL, which refuses NUL in text)."""
    text = code if not detail else f"{code}:{detail}"
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"


FailureKind = Literal["rejected", "not_processed", "throttled", "unknown"]


@dataclass(frozen=True)
class CallFailure:
    """How a failed provider call reads: only `unknown` may have reached the provider."""

    kind: FailureKind
    code: str
    retry_after: float | None = None


_KINDS: dict[str, FailureKind] = {
    "ProviderRejected": "rejected",
    "ProviderNotProcessed": "not_processed",
    "ProviderThrottled": "throttled",
}


def read_failure(err: BaseException) -> CallFailure:
    """The one reading of a failed provider-call activity. The activity translates the
    provider's answer (providers.errors); anything else (a timeout of the activity itself, a
    database error after the call, a bug) may have followed a processed call: unknown."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        code = str(cause.details[0]) if cause.details else (cause.type or "error")
        kind = _KINDS.get(cause.type or "", "unknown")
        retry_after = None
        if kind == "throttled" and len(cause.details) > 1:
            retry_after = float(cause.details[1])
        return CallFailure(kind, code, retry_after)
    if isinstance(cause, TemporalTimeout):
        return CallFailure("unknown", "timeout")
    return CallFailure("unknown", type(cause).__name__ if cause else "unknown")


class EventBuffer:
    """The callbacks a workflow was signalled, bounded and deduplicated: a provider resending
    the same event, or a flood of signals, cannot grow the workflow's state."""

    LIMIT = 16

    def __init__(self) -> None:
        self._events: list[ProviderEvent] = []
        self._seen: set[tuple[str, str, str | None, int | None]] = set()

    def add(self, event: ProviderEvent) -> bool:
        key = (event.provider, event.status, event.provider_payment_id, event.amount_minor)
        if key in self._seen or len(self._events) >= self.LIMIT:
            return False
        self._seen.add(key)
        self._events.append(event)
        return True

    def final_from(self, provider: str, finals: tuple[str, ...]) -> ProviderEvent | None:
        """The first final event of this provider not yet consumed."""
        for event in self._events:
            if event.provider == provider and event.status in finals:
                return event
        return None

    def consume(self, event: ProviderEvent) -> None:
        self._events.remove(event)


class StuckGuard:
    """Runs short database steps with bounded retries. When they run out the payment is flagged
    stuck (alert, and `/v1/ops/stuck` shows the step and error) and the step is tried again
    every STUCK_RETRY until it works; a permanent error flags it and fails the workflow."""

    def __init__(self, kind: PaymentKind, payment_id: str) -> None:
        self._kind = kind
        self._payment_id = payment_id
        self._flagged = False

    async def run(self, activity: Callable[..., Awaitable[Out]], arg: object) -> Out:
        while True:
            try:
                result: Out = await workflow.execute_local_activity_method(
                    activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY
                )
            except ActivityError as err:
                failure = read_failure(err)
                await self.flag(getattr(activity, "__name__", "step"), failure.code)
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    raise ApplicationError(
                        f"{self._kind} {self._payment_id}: {failure.code}",
                        type="PermanentStepFailure",
                        non_retryable=True,
                    ) from err
                await workflow.sleep(STUCK_RETRY)
                continue
            if self._flagged:
                await self.clear()
            return result

    async def flag(self, step: str, why: str) -> None:
        """Mark the payment stuck at `step`; bounded itself (a day of tries)."""
        self._flagged = True
        await workflow.execute_activity_method(
            StuckActivities.flag_stuck,
            FlagStuckInput(
                kind=self._kind,
                payment_id=self._payment_id,
                step=step,
                reason=reason(why),
                occurred_at=workflow.now(),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )

    async def clear(self) -> None:
        self._flagged = False
        await workflow.execute_activity_method(
            StuckActivities.clear_stuck,
            ClearStuckInput(kind=self._kind, payment_id=self._payment_id),
            start_to_close_timeout=DB_TIMEOUT,
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
