"""A failed provider call in the terms activities hand to Temporal (providers.errors below it).

Two readings, by what the workflow does next:
- `call_failure`: a start call (charge, payment, payout) whose failure the workflow itself reads
  (`workflows.steps.read_failure`): non-retryable, typed by what happened at the provider;
- `retry_later`: an inquiry, cancel or payout try whose error decides nothing: retried by
  Temporal, after Retry-After when the provider throttled.
"""

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from providers.errors import (
    ProviderError,
    ProviderNotProcessed,
    ProviderRejected,
    ProviderThrottled,
)


def call_failure(exc: ProviderError) -> ApplicationError:
    """`ProviderRejected`, `ProviderThrottled` (with Retry-After as the second detail),
    `ProviderNotProcessed`, or `ProviderOutcomeUnknown`."""
    if isinstance(exc, ProviderRejected):
        kind = "ProviderRejected"
    elif isinstance(exc, ProviderThrottled):
        return ApplicationError(
            str(exc), exc.code, exc.retry_after or 0.0, non_retryable=True, type="ProviderThrottled"
        )
    elif isinstance(exc, ProviderNotProcessed):
        kind = "ProviderNotProcessed"
    else:
        kind = "ProviderOutcomeUnknown"
    return ApplicationError(str(exc), exc.code, non_retryable=True, type=kind)


def retry_later(exc: ProviderError) -> ApplicationError:
    """Whatever the provider answered, it decides nothing: try the activity again."""
    delay = exc.retry_after if isinstance(exc, ProviderThrottled) else None
    return ApplicationError(
        str(exc),
        exc.code,
        type=f"Retry{type(exc).__name__}",
        next_retry_delay=timedelta(seconds=delay) if delay else None,
    )
