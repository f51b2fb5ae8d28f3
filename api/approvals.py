"""The API's side of approval tokens (domain/approvals.py): sign each decision it sends to a
workflow, for that workflow, decision and person, valid `PAY_APPROVAL_TOKEN_TTL_SECONDS`.

The expiry is checked by the workflow against workflow time, so it is set from the
orchestrator's clock: the host's clock in production (Temporal's server keeps real time), or
`app.state.orchestrator_clock` when one is set (the tests' time-skipping server runs ahead of
the host once it skips time).
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.errors import Problem
from config import Settings
from domain.approvals import Decision, sign
from workflows.approval_gate import REFUSED

OrchestratorClock = Callable[[], Awaitable[datetime]]
# A decision update's input (workflows' `ReviewInput`s): actor_id, actor_name, reason and
# approval_token fields.
Review = TypeVar("Review", bound=BaseModel)


async def orchestrator_now(request: Request) -> datetime:
    clock: OrchestratorClock | None = getattr(request.app.state, "orchestrator_clock", None)
    return await clock() if clock is not None else datetime.now(UTC)


async def approval_token(
    request: Request,
    *,
    workflow_id: str,
    decision: Decision,
    actor_id: str,
    actor_name: str,
    reason: str | None,
) -> str:
    settings: Settings = request.app.state.payments.settings
    now = await orchestrator_now(request)
    return sign(
        settings.approval_token_secret.get_secret_value().encode(),
        workflow_id=workflow_id,
        decision=decision,
        operator_id=actor_id,
        actor_name=actor_name,
        reason=reason,
        expires_at=now + timedelta(seconds=settings.approval_token_ttl_seconds),
    )


async def signed_review(
    request: Request, review: Review, *, workflow_id: str, decision: Decision
) -> Review:
    """The decision as the workflow's update takes it: with its token for that workflow."""
    who = review.model_dump(include={"actor_id", "actor_name", "reason"})
    token = await approval_token(
        request,
        workflow_id=workflow_id,
        decision=decision,
        actor_id=str(who["actor_id"]),
        actor_name=str(who["actor_name"]),
        reason=who.get("reason"),
    )
    return review.model_copy(update={"approval_token": token})


def refused_token(exc: WorkflowUpdateFailedError, what: str) -> Problem | None:
    """The workflow refused the API's own token: the workers' secret or clock differs."""
    cause = exc.cause
    if not (isinstance(cause, ApplicationError) and cause.type == REFUSED):
        return None
    return Problem(
        503,
        "approval_not_verified",
        f"{what}: the workflow refused this decision's approval token ({cause.message}). The "
        "API's and the workers' PAY_APPROVAL_TOKEN_SECRET or clocks differ; nothing was decided",
    )
