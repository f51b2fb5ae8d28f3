"""The check every decision update's validator makes first: the API's signed approval token.

See `domain/approvals.py` for the token. Why this is deterministic and replay-safe:

* A validator runs only when the update first arrives, never on replay (the SDK replays an
  accepted update's handler without its validator), and a refused update is not written to
  the history at all. So the secret, the clock and the outcome of this check never take part
  in replaying a history: recorded histories replay unchanged, without a `workflow.patched`
  (which a validator may not call anyway: it is read-only).
* The check itself is a pure function of the update's input, the workflow id, `workflow.now()`
  (the workflow task's time, never the host's clock) and the secret the worker was configured
  with before it started (`domain.approvals.configure_worker_secret`, keyed by task queue).
* The secret is not an input of the workflow or the update, so no history holds it.

A refusal is an `ApplicationError` of type `ApprovalRefused`: the update fails, nothing is
recorded and no money moves.
"""

from typing import Protocol

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from domain.approvals import ApprovalRefused, Decision, verify, worker_secret

REFUSED = "ApprovalRefused"


class SignedReview(Protocol):
    @property
    def actor_id(self) -> str: ...

    @property
    def actor_name(self) -> str: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def approval_token(self) -> str | None: ...


def require_token(review: SignedReview, decision: Decision) -> None:
    """Refuse the update unless its token is the API's, for this workflow, this decision and
    this operator's name and reason, and still valid at workflow time."""
    info = workflow.info()
    try:
        verify(
            worker_secret(info.task_queue),
            review.approval_token,
            workflow_id=info.workflow_id,
            decision=decision,
            operator_id=review.actor_id,
            actor_name=review.actor_name,
            reason=review.reason,
            now=workflow.now(),
        )
    except ApprovalRefused as exc:
        raise ApplicationError(str(exc), exc.reason, type=REFUSED, non_retryable=True) from exc
