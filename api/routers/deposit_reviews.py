"""Deposits in review: `POST /v1/deposits/{id}/approve` and `/reject {reason}` (operator role).

A deposit the risk engine sends to review is, by the rule set's `review_mode`, either held (paid,
not credited: the deposit workflow waits in `in_review` and the decision is a workflow update whose
validator refuses an invalid one before anything is written) or credited with the person's
withdrawals blocked until the review (decided here, in one database transaction). Either way
approving twice is harmless, and the other decision after one was taken is 409 `invalid_state`.
The decision is a person's: the operator the API key belongs to (`DeciderDep`; 403
`operator_required` for a key of no active operator, admin keys included), recorded with their
id and name. The update to a held deposit's workflow carries an approval token the API signs for
that deposit, decision and person (api/approvals.py); its validator refuses anything else.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.approvals import refused_token, signed_review
from api.deps import DeciderDep, SessionDep, StateDep
from api.errors import Problem
from api.routers.deposits import deposit_out, load_view
from api.schemas import DepositOut
from api.withdrawal_schemas import RejectBody, ReviewBody
from db import risk as risk_store
from db.models import Deposit
from domain.fraud.review import InvalidReview, ReviewAction, ReviewStatus, check_review
from domain.statuses import DepositStatus
from workflows.deposit import DepositWorkflow
from workflows.deposit_review import ReviewInput

router = APIRouter(prefix="/v1/deposits", tags=["deposits"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthorized"},
    403: {
        "description": "forbidden: the operator role decides reviews; operator_required: "
        "the key belongs to no active operator (decisions are made by people)"
    },
    404: {"description": "deposit_not_found"},
    409: {"description": "invalid_state: not waiting for a review, or decided otherwise"},
    503: {"description": "orchestrator_unavailable: retry; approval_not_verified"},
}


async def _act(
    *,
    action: ReviewAction,
    deposit_id: str,
    review: ReviewInput,
    session: SessionDep,
    state: Any,
    request: Request,
) -> DepositOut:
    async with session.begin():
        held = await _decide_in_database(session, action, deposit_id, review)
    if held is not None:
        await _update_workflow(action, deposit_id, held, review, session, state, request)
    session.expire_all()
    return deposit_out(await load_view(session, deposit_id))


async def _decide_in_database(
    session: SessionDep, action: ReviewAction, deposit_id: str, review: ReviewInput
) -> ReviewStatus | None:
    """Decide a credited deposit's review here; for a held one, the review's status (the
    workflow decides)."""
    row = await risk_store.get_review(session, deposit_id=deposit_id, for_update=True)
    deposit = await session.get(Deposit, deposit_id, populate_existing=True)
    if deposit is None:
        raise Problem(404, "deposit_not_found", f"No deposit {deposit_id!r}")
    if row is None:
        if deposit.status == DepositStatus.IN_REVIEW.value:  # held on a provider's report
            return "pending"
        raise Problem(409, "invalid_state", f"deposit {deposit_id} is not waiting for a review")
    credited = deposit.status == DepositStatus.SUCCEEDED.value
    if row.mode == "hold" and not credited:
        return row.status  # type: ignore[return-value]
    try:  # credited already: the decision releases or keeps the person's withdrawals
        await risk_store.decide_review(
            session,
            deposit_id=deposit_id,
            action=action,
            actor_id=review.actor_id,
            actor_name=review.actor_name,
            reason=review.reason,
            at=datetime.now(UTC),
        )
    except InvalidReview as exc:
        raise Problem(409, "invalid_state", f"deposit {deposit_id}: {exc}") from exc
    return None


async def _update_workflow(
    action: ReviewAction,
    deposit_id: str,
    status: ReviewStatus,
    review: ReviewInput,
    session: SessionDep,
    state: Any,
    request: Request,
) -> None:
    """A held deposit: the workflow decides (its validator refuses an invalid decision)."""
    try:
        if not check_review(status, action):
            return  # the same decision again: harmless
    except InvalidReview as exc:
        raise Problem(409, "invalid_state", f"deposit {deposit_id}: {exc}") from exc
    view = await load_view(session, deposit_id)
    workflow_id = view.deposit.workflow_id
    signed = await signed_review(request, review, workflow_id=workflow_id, decision=action)
    handle = (await state.temporal()).get_workflow_handle(workflow_id)
    update = DepositWorkflow.approve if action == "approve" else DepositWorkflow.reject
    try:
        await handle.execute_update(update, signed)
    except WorkflowUpdateFailedError as exc:
        refused = refused_token(exc, f"deposit {deposit_id}")
        if refused is not None:
            raise refused from exc
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        detail = f"deposit {deposit_id} is {view.deposit.status}: {message}"
        raise Problem(409, "invalid_state", detail) from exc
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:  # the workflow finished meanwhile
            await session.rollback()
            async with session.begin():
                if await _decide_in_database(session, action, deposit_id, review) is None:
                    return
            raise Problem(409, "invalid_state", f"deposit {deposit_id} is not in review") from exc
        raise Problem(
            503, "orchestrator_unavailable", f"Deposit {deposit_id}: the workflow is unreachable"
        ) from exc


@router.post("/{deposit_id}/approve", responses=_PROBLEMS)
async def approve_deposit(
    deposit_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    operator: DeciderDep,
    body: ReviewBody | None = None,
) -> DepositOut:
    """An operator approves a deposit in review: a held one is credited, a credited one no
    longer blocks the person's withdrawals."""
    review = ReviewInput(
        actor_id=operator.operator_id,
        actor_name=operator.operator_name,
        reason=body.reason if body else None,
    )
    return await _act(
        action="approve",
        deposit_id=deposit_id,
        review=review,
        session=session,
        state=state,
        request=request,
    )


@router.post("/{deposit_id}/reject", responses=_PROBLEMS)
async def reject_deposit(
    deposit_id: str,
    body: RejectBody,
    request: Request,
    session: SessionDep,
    state: StateDep,
    operator: DeciderDep,
) -> DepositOut:
    """An operator rejects a deposit in review, with a reason: a held one is declined and the
    money returned through the provider; a credited one keeps the person's withdrawals blocked
    (refund it with `POST /v1/deposits/{id}/refunds`)."""
    review = ReviewInput(
        actor_id=operator.operator_id, actor_name=operator.operator_name, reason=body.reason
    )
    return await _act(
        action="reject",
        deposit_id=deposit_id,
        review=review,
        session=session,
        state=state,
        request=request,
    )
