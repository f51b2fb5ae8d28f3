"""`POST /v1/ops/reconcile`: start the workflow of any payment whose row was written but whose
workflow never started (the API died between its commit and `start_workflow`).

Safe to run at any time and as often as wanted: the workflow id is derived from the payment id
with reuse policy *reject duplicate* and conflict policy *use existing*, so a payment whose
workflow runs or ran is left alone.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.deps import OperatorDep, SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.routers import deposits as deposit_routes
from api.routers import withdrawals as withdrawal_routes
from api.routers.ops import parse_duration
from db.models import Deposit, Withdrawal

router = APIRouter(prefix="/v1/ops", tags=["ops"])


class ReconcileResult(BaseModel):
    object: str = "reconciliation"
    checked: int
    started: list[str]
    """Payments whose workflow did not exist and has now been started."""


@router.post(
    "/reconcile",
    responses={
        401: {"description": "unauthorized"},
        403: {"description": "forbidden"},
        422: {"description": "invalid_duration"},
        503: {"description": "orchestrator_unavailable"},
    },
)
async def reconcile(
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    _: OperatorDep,
    older_than: str = "2m",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ReconcileResult:
    """Pending payments older than `older_than` without a workflow get one."""
    cutoff = datetime.now(UTC) - parse_duration(older_than)
    deposits = (
        await session.scalars(
            select(Deposit)
            .where(Deposit.status == "pending", Deposit.created_at < cutoff)
            .order_by(Deposit.created_at)
            .limit(limit)
        )
    ).all()
    withdrawals = (
        await session.scalars(
            select(Withdrawal)
            .where(Withdrawal.status == "pending", Withdrawal.created_at < cutoff)
            .order_by(Withdrawal.created_at)
            .limit(limit)
        )
    ).all()
    client = await state.temporal()
    started: list[str] = []
    try:
        for deposit in deposits:
            if not await _exists(client, deposit.workflow_id):
                await deposit_routes.ensure_workflow(client, deposit, settings)
                started.append(deposit.id)
        for withdrawal in withdrawals:
            if not await _exists(client, withdrawal.workflow_id):
                await withdrawal_routes.ensure_workflow(client, withdrawal, settings)
                started.append(withdrawal.id)
    except RPCError as exc:
        raise Problem(
            503, "orchestrator_unavailable", "Temporal did not answer; run the reconciliation again"
        ) from exc
    return ReconcileResult(checked=len(deposits) + len(withdrawals), started=started)


async def _exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
