"""Refunds of deposits: `POST /v1/deposits/{id}/refunds` (operator key, `Idempotency-Key`),
full or partial, through the connector that took the payment; `GET` lists them.

The amount is held on the player's wallet in the same database transaction that records the
refund (a player who has already spent it gets 422 `insufficient_funds`), then
`RefundWorkflow` asks the provider and posts or releases the hold.
"""

import contextlib
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field, StrictInt
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.refunds import refunds_supported
from api.deps import OperatorDep, SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.idempotency import fingerprint, require_key
from api.schemas import StrictModel
from db import deposits as deposit_store
from db import idempotency
from db import ledger as ledger_store
from db import refunds as refund_store
from db.idempotency import StoredResponse
from domain.ids import new_id
from domain.ledger import refund_hold
from providers.registry import connector_class
from workflows.refund import RefundWorkflow, RefundWorkflowInput, refund_workflow_id

router = APIRouter(prefix="/v1/deposits", tags=["refunds"])

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class RefundCreate(StrictModel):
    amount: StrictInt = Field(gt=0, le=10**13, description="minor units (tiyn); partial allowed")
    reason: str = Field(min_length=1, max_length=200, pattern=_PRINTABLE)


class RefundOut(BaseModel):
    id: str
    object: Literal["refund"] = "refund"
    deposit_id: str
    provider: str
    amount: int
    currency: str
    reason: str
    status: Literal["pending", "succeeded", "failed"]
    status_reason: str | None
    stuck_reason: str | None
    workflow_id: str
    created_at: datetime
    updated_at: datetime


class RefundList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RefundOut]


def _out(row: dict[str, Any]) -> RefundOut:
    return RefundOut(
        amount=row["amount_minor"], **{k: v for k, v in row.items() if k != "amount_minor"}
    )


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "idempotency_key_missing"},
    404: {"description": "deposit_not_found"},
    409: {"description": "idempotency_key_reused / invalid_state (the deposit did not succeed)"},
    422: {
        "description": "refund_exceeds_deposit, insufficient_funds, refunds_not_supported "
        "(the provider's connector takes no refunds)"
    },
    503: {"description": "orchestrator_unavailable: retry with the same Idempotency-Key"},
}


@router.post("/{deposit_id}/refunds", status_code=202, responses=_PROBLEMS)
async def create_refund(
    deposit_id: str,
    body: RefundCreate,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    _: OperatorDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> RefundOut:
    """Refund a succeeded deposit, in full or in part."""
    key = require_key(idempotency_key)
    refund_id = new_id("ref")
    async with session.begin():
        view = await deposit_store.get_deposit_view(session, deposit_id=deposit_id)
        if view is None:
            raise Problem(404, "deposit_not_found", f"No deposit {deposit_id!r}")
        deposit = view.deposit
        stored = await idempotency.claim(
            session,
            scope="refunds",
            key=f"{deposit_id}:{key}"[:255],
            request_hash=fingerprint(body, secret=settings.idempotency_secret.get_secret_value()),
            response=StoredResponse(resource_id=refund_id, status_code=202),
        )
        if stored is not None:
            refund_id = stored.resource_id
        else:
            if deposit.status != "succeeded" or deposit.provider is None:
                raise Problem(409, "invalid_state", f"deposit {deposit_id} is {deposit.status}")
            client = connector_class(settings, deposit.provider)
            if not refunds_supported(client) or not settings.connector(deposit.provider).refunds:
                raise Problem(
                    422,
                    "refunds_not_supported",
                    f"{deposit.provider} takes no refunds through its connector: refund it in "
                    "the provider's back office",
                )
            already = await refund_store.refunded_or_pending(session, deposit_id=deposit_id)
            if already + body.amount > deposit.amount_minor:
                raise Problem(
                    422,
                    "refund_exceeds_deposit",
                    f"{deposit.amount_minor - already} {deposit.currency} is left to refund",
                )
            await refund_store.create_refund(
                session,
                refund_id=refund_id,
                deposit_id=deposit_id,
                provider=deposit.provider,
                amount_minor=body.amount,
                currency=deposit.currency,
                reason=body.reason,
                workflow_id=refund_workflow_id(refund_id),
            )
            try:
                await ledger_store.post_transaction(
                    session,
                    spec=refund_hold(
                        refund_id=refund_id,
                        deposit_id=deposit_id,
                        player_id=deposit.player_id,
                        provider=deposit.provider,
                        amount_minor=body.amount,
                        currency=deposit.currency,
                        shards=settings.ledger_house_shards,
                    ),
                )
            except ledger_store.InsufficientFunds as exc:
                raise Problem(
                    422,
                    "insufficient_funds",
                    "the player's available balance no longer covers the refund",
                ) from exc
    row = await refund_store.get_refund(session, refund_id=refund_id)
    assert row is not None
    try:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await (await state.temporal()).start_workflow(
                RefundWorkflow.run,
                RefundWorkflowInput(
                    refund_id=refund_id,
                    deposit_id=deposit_id,
                    provider=row["provider"],
                    amount_minor=row["amount_minor"],
                    currency=row["currency"],
                    provider_call_seconds=settings.provider_http_timeout_seconds + 5,
                ),
                id=row["workflow_id"],
                task_queue=settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
    except RPCError as exc:
        raise Problem(
            503, "orchestrator_unavailable", "Retry with the same Idempotency-Key"
        ) from exc
    return _out(row)


@router.get("/{deposit_id}/refunds", responses={404: {"description": "deposit_not_found"}})
async def list_refunds(deposit_id: str, session: SessionDep, _: OperatorDep) -> RefundList:
    """The deposit's refunds, oldest first."""
    if await deposit_store.get_deposit_view(session, deposit_id=deposit_id) is None:
        raise Problem(404, "deposit_not_found", f"No deposit {deposit_id!r}")
    rows = await refund_store.list_refunds(session, deposit_id=deposit_id)
    return RefundList(data=[_out(row) for row in rows])
