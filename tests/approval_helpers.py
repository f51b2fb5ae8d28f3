"""Signing a decision update the way the API does (api/approvals.py), for tests that send it
straight to Temporal: the token is valid for `ttl` in the time-skipping server's time."""

import uuid
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db.api_keys import IssuedKey, issue_key
from db.operators import create_operator
from domain.approvals import Decision, sign
from domain.roles import Role

R = TypeVar("R", bound=BaseModel)


async def signed(
    review: R,
    *,
    settings: Settings,
    env: WorkflowEnvironment,
    workflow_id: str,
    decision: Decision,
    ttl: timedelta = timedelta(minutes=2),
    secret: str | None = None,
) -> R:
    """`review` (a withdrawal's or a deposit's ReviewInput) with the API's approval token."""
    now = await env.get_current_time()
    data = review.model_dump()
    token = sign(
        (secret or settings.approval_token_secret.get_secret_value()).encode(),
        workflow_id=workflow_id,
        decision=decision,
        operator_id=data["actor_id"],
        actor_name=data["actor_name"],
        reason=data.get("reason"),
        expires_at=now + ttl,
    )
    return review.model_copy(update={"approval_token": token})


async def person_key(
    session: AsyncSession, name: str, *, role: Role = Role.OPERATOR, operator_id: str | None = None
) -> IssuedKey:
    """A key of a new person called `name` (or of `operator_id`), as `python -m api.keys
    create-operator` and `create --operator` issue it."""
    if operator_id is None:
        email = f"{uuid.uuid4().hex[:12]}@test.invalid"
        operator_id = (await create_operator(session, name=name, email=email)).id
    return await issue_key(session, name=name, role=role, operator_id=operator_id)
