"""Reconciliation cases and chargebacks (operator key).

- `GET /v1/recon/cases?status=&provider=&date=&kind=`: newest first, keyset pages.
- `GET /v1/recon/cases/{id}`: the case, the actions that fit it, and its trail.
- `POST /v1/recon/cases/{id}/resolve {action, note, player_id?, amount?, iban?, booking_date?}`:
  an allowed action for the case's kind, posted to the ledger with the operator and the note;
  at or above `PAY_RECON_FOUR_EYES_FROM_MINOR` the first operator's request is an approval
  (202) and a second, different operator executes it. Operators are people (`DeciderDep`, 403
  `operator_required` for a key of no active operator, admin keys included): the requester
  cannot approve their own request with another key, and the case records the person's id
  and name. A refund or a return to the sender
  finishes in CaseMoneyBackWorkflow (202, `resolving`).
- `POST /v1/recon/chargebacks`: a chargeback entered by hand (a provider's notice by mail or
  its back office), idempotent on the provider's chargeback id; `GET /v1/recon/chargebacks/{id}`
  and `POST /v1/recon/chargebacks/{id}/reversal`.
"""

import contextlib
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, StrictInt
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.refunds import refunds_supported
from api import listing
from api.deps import DeciderDep, OperatorDep, SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.schemas import StrictModel
from config import Settings
from db import chargebacks as chargeback_store
from db import finance
from db import operators as operator_store
from db import recon_cases as case_store
from domain.finance import business_day
from domain.recon.cases import CASE_KINDS, CaseRefused, held_minor
from providers.registry import connector_class
from workflows.recon_case import CaseMoneyBackInput, CaseMoneyBackWorkflow, case_workflow_id
from workflows.withdrawal_models import WithdrawalTimings

router = APIRouter(prefix="/v1/recon", tags=["reconciliation"])

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_PROVIDER = r"^[a-z0-9_]{1,64}$"

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthorized"},
    403: {"description": "forbidden / operator_required (decisions are made by people)"},
    404: {"description": "case_not_found / chargeback_not_found"},
    409: {
        "description": "case_resolved, case_resolving, same_operator (four eyes need a second "
        "operator), approval_mismatch, period_closed, chargeback_conflict"
    },
    422: {
        "description": "invalid_action (the action does not resolve this kind of case), "
        "invalid_amount, player_required, player_not_found, player_unknown, "
        "refund_not_possible, refunds_not_supported, iban_required, invalid_iban, "
        "invalid_booking_date, deposit_not_found, deposit_not_credited, ..."
    },
    503: {"description": "orchestrator_unavailable: POST the same resolution again"},
}


class ResolveBody(StrictModel):
    action: Literal[
        "credit_player",
        "assign_player",
        "refund",
        "return_to_sender",
        "charge_player",
        "write_off",
        "acknowledge",
    ] = Field(description="what fits depends on the case's kind: see the case's allowed_actions")
    note: str = Field(min_length=1, max_length=500, pattern=_PRINTABLE, description="why")
    player_id: str | None = Field(
        default=None, max_length=40, pattern=_PRINTABLE, description="assign_player: to whom"
    )
    amount: StrictInt | None = Field(
        default=None, gt=0, le=10**13, description="the case's money, as a confirmation"
    )
    iban: str | None = Field(
        default=None, max_length=40, pattern=_PRINTABLE, description="return_to_sender: to where"
    )
    booking_date: date | None = Field(
        default=None, description="the day to book it on (default today, Asia/Almaty)"
    )


class ApprovalOut(BaseModel):
    operator_id: str
    operator_name: str
    action: str
    amount: int
    player_id: str | None
    note: str | None
    at: str


class CaseActionOut(BaseModel):
    step: str
    action: str
    actor_id: str
    actor_name: str
    note: str | None
    transaction_key: str | None
    created_at: datetime


class CaseOut(BaseModel):
    id: int
    object: Literal["recon_case"] = "recon_case"
    run_id: int | None
    provider: str
    business_date: date
    kind: str
    reference: str | None
    amount: int
    currency: str
    held_amount: int = Field(
        description="the case's money in the provider's reconciliation-difference account: "
        "positive when received and not booked, negative when booked and not received"
    )
    details: dict[str, Any]
    status: Literal["open", "resolving", "resolved"]
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    approvals: list[ApprovalOut]
    approvals_needed: int
    allowed_actions: list[str]
    created_at: datetime
    actions: list[CaseActionOut] | None = None


class CaseList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CaseOut]
    next_cursor: str | None


def _out(
    case: case_store.Case,
    settings: Settings,
    actions: list[case_store.CaseAction] | None = None,
) -> CaseOut:
    held = held_minor(case.facts)
    return CaseOut(
        id=case.id,
        run_id=case.run_id,
        provider=case.provider,
        business_date=case.business_date,
        kind=case.kind,
        reference=case.reference,
        amount=case.amount_minor,
        currency=case.currency,
        held_amount=held,
        details=case.details,
        status=case.status,
        resolution=case.resolution,
        resolved_by=case.resolved_by,
        resolved_at=case.resolved_at,
        approvals=[
            ApprovalOut(
                operator_id=str(a.get("operator_id")),
                operator_name=str(a.get("operator_name")),
                action=str(a.get("action")),
                amount=int(a.get("amount") or 0),
                player_id=a.get("player_id"),
                note=a.get("note"),
                at=str(a.get("at")),
            )
            for a in case.approvals
            if isinstance(a, dict)
        ],
        approvals_needed=2 if abs(held) >= settings.recon_four_eyes_from_minor else 1,
        allowed_actions=case_store.allowed_for(case),
        created_at=case.created_at,
        actions=None
        if actions is None
        else [
            CaseActionOut(
                step=a.step,
                action=a.action,
                actor_id=a.actor_id,
                actor_name=a.actor_name,
                note=a.note,
                transaction_key=a.transaction_key,
                created_at=a.created_at,
            )
            for a in actions
        ],
    )


@router.get("/cases", responses=_PROBLEMS)
async def list_cases(
    session: SessionDep,
    settings: SettingsDep,
    _: OperatorDep,
    status: Literal["open", "resolving", "resolved"] | None = None,
    provider: Annotated[str | None, Query(pattern=_PROVIDER)] = None,
    date: date | None = None,  # the business day
    kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    limit: listing.Limit = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
) -> CaseList:
    """Cases, newest first; `next_cursor` pages on."""
    if kind is not None and kind not in CASE_KINDS:
        raise Problem(422, "invalid_kind", f"kind is one of {', '.join(CASE_KINDS)}")
    rows = await case_store.list_cases(
        session,
        status=status,
        provider=provider,
        business_date=date,
        kind=kind,
        limit=limit + 1,
        before_id=int(cursor) if cursor else None,
    )
    page = rows[:limit]
    return CaseList(
        data=[_out(case, settings) for case in page],
        next_cursor=str(page[-1].id) if len(rows) > limit else None,
    )


def _case_id(case_id: int) -> int:
    if not 0 < case_id < 2**63:
        raise Problem(404, "case_not_found", f"No case {case_id}")
    return case_id


@router.get("/cases/{case_id}", responses=_PROBLEMS)
async def get_case(
    case_id: int, session: SessionDep, settings: SettingsDep, _: OperatorDep
) -> CaseOut:
    case = await case_store.get_case(session, case_id=_case_id(case_id))
    if case is None:
        raise Problem(404, "case_not_found", f"No case {case_id}")
    actions = await case_store.case_actions(session, case_id=case_id)
    return _out(case, settings, actions)


def resolve_policy(settings: Settings) -> case_store.ResolvePolicy:
    def refunds(provider: str) -> bool:
        try:
            client = connector_class(settings, provider)
        except ValueError:
            return False
        return refunds_supported(client) and settings.connector(provider).refunds

    ledger = settings.ledger_policy()
    return case_store.ResolvePolicy(
        four_eyes_from_minor=settings.recon_four_eyes_from_minor,
        shards=settings.ledger_house_shards,
        fee_bps=ledger.fee_bps,
        payout_provider=settings.payout_providers.get("bank_transfer", "kazbank"),
        refunds_supported=refunds,
    )


@router.post("/cases/{case_id}/resolve", responses=_PROBLEMS)
async def resolve_case(
    case_id: int,
    body: ResolveBody,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    operator: DeciderDep,
) -> CaseOut:
    """Resolve the case (200), record the first of two approvals (202), or send its money back
    through a provider (202, `resolving` until the provider has answered). Four eyes are two
    people: a second key of the requester's is `same_operator` (409)."""
    _case_id(case_id)
    now = datetime.now(UTC)
    if body.booking_date is not None and body.booking_date > business_day(now):
        raise Problem(422, "invalid_booking_date", "booking_date cannot be in the future")
    actor = case_store.Actor(id=operator.operator_id, name=operator.operator_name)
    try:
        async with session.begin():
            current = await case_store.get_case(session, case_id=case_id)
            if current is not None:
                await _not_approved_with_an_old_key(session, current, actor)
            if current is not None and current.status == "resolving":
                again = await case_store.money_back_of(session, current)
                if again is not None and body.action == current.resolution:
                    resolved = case_store.Resolved(
                        case=current, executed=True, approvals_needed=1, money_back=again
                    )
                else:
                    resolved = await _resolve(session, case_id, body, actor, settings, now)
            else:
                resolved = await _resolve(session, case_id, body, actor, settings, now)
    except case_store.CaseNotFound as exc:
        raise Problem(404, "case_not_found", f"No case {case_id}") from exc
    except case_store.CaseConflict as exc:
        raise Problem(409, exc.code, exc.detail) from exc
    except CaseRefused as exc:
        raise Problem(422, exc.code, exc.detail) from exc
    except chargeback_store.ChargebackRefused as exc:
        raise Problem(
            409 if exc.code == "chargeback_conflict" else 422, exc.code, exc.detail
        ) from exc
    except finance.PeriodClosed as exc:
        raise Problem(409, "period_closed", str(exc)) from exc
    if resolved.money_back is not None:
        await _start_money_back(state, settings, resolved.money_back)
    if not resolved.executed or resolved.case.status != "resolved":
        response.status_code = 202
    return _out(resolved.case, settings, await case_store.case_actions(session, case_id=case_id))


async def _not_approved_with_an_old_key(
    session: Any, case: case_store.Case, actor: case_store.Actor
) -> None:
    """A pending approval recorded under one of this person's key ids (before decisions were
    recorded by person, migration 0200) is theirs: they cannot give the second one."""
    approvers = {str(a.get("operator_id")) for a in case.approvals if isinstance(a, dict)}
    if case.status != "open" or not approvers or actor.id in approvers:
        return
    if approvers & await operator_store.key_ids_of(session, operator_id=actor.id):
        raise Problem(
            409,
            "same_operator",
            f"case {case.id}: you asked for this resolution (with another of your keys); "
            "a second, different operator must approve it",
        )


async def _resolve(
    session: Any,
    case_id: int,
    body: ResolveBody,
    actor: case_store.Actor,
    settings: Settings,
    now: datetime,
) -> case_store.Resolved:
    return await case_store.resolve(
        session,
        case_id=case_id,
        request=case_store.ResolveRequest(
            action=body.action,
            note=body.note,
            player_id=body.player_id,
            amount_minor=body.amount,
            iban=body.iban,
            booking_date=body.booking_date,
        ),
        actor=actor,
        policy=resolve_policy(settings),
        now=now,
    )


async def _start_money_back(
    state: Any, settings: Settings, money_back: case_store.MoneyBack
) -> None:
    """Start the workflow that gives the money back; the same case never gets two."""
    try:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await (await state.temporal()).start_workflow(
                CaseMoneyBackWorkflow.run,
                CaseMoneyBackInput(
                    case_id=money_back.case_id,
                    action=money_back.action,
                    provider=money_back.provider,
                    amount_minor=money_back.amount_minor,
                    currency=money_back.currency,
                    refund_id=money_back.refund_id,
                    deposit_id=money_back.deposit_id,
                    payout_reference=money_back.payout_reference,
                    iban=money_back.iban,
                    provider_call_seconds=settings.provider_http_timeout_seconds + 5,
                    timings=WithdrawalTimings(
                        provider_call_seconds=settings.provider_http_timeout_seconds + 5,
                        retry_initial_seconds=settings.payout_retry_initial_seconds,
                        retry_max_seconds=settings.payout_retry_max_seconds,
                        give_up_seconds=settings.payout_give_up_seconds,
                        processing_window_seconds=settings.payout_processing_window_seconds,
                        processing_poll_seconds=settings.payout_processing_poll_seconds,
                    ),
                ),
                id=case_workflow_id(money_back.case_id),
                task_queue=settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
    except RPCError as exc:
        raise Problem(
            503,
            "orchestrator_unavailable",
            "The case is resolving but its workflow did not start: POST the same resolution again",
        ) from exc


# -- chargebacks ------------------------------------------------------------------------------


class ChargebackCreate(StrictModel):
    provider: str = Field(pattern=_PROVIDER)
    provider_chargeback_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$", description="the provider's id"
    )
    deposit_id: str = Field(min_length=1, max_length=40, pattern=_PRINTABLE)
    amount: StrictInt = Field(gt=0, le=10**13, description="minor units (tiyn)")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: str | None = Field(default=None, max_length=200, pattern=_PRINTABLE)
    business_date: date | None = None


class ReversalCreate(StrictModel):
    amount: StrictInt | None = Field(default=None, gt=0, le=10**13, description="default: all")
    note: str = Field(min_length=1, max_length=200, pattern=_PRINTABLE)


class ChargebackOut(BaseModel):
    id: str
    object: Literal["chargeback"] = "chargeback"
    provider: str
    provider_chargeback_id: str
    deposit_id: str | None
    player_id: str
    amount: int
    currency: str
    reason: str | None
    source: str
    business_date: date | None
    from_wallet: int = Field(description="what the player's wallet covered")
    receivable: int = Field(description="what the wallet could not cover: owed by the player")
    transaction_key: str
    status: Literal["charged_back", "reversed"]
    reversal: dict[str, Any] | None
    created_by: str
    created_at: datetime


def _chargeback_out(chargeback: chargeback_store.Chargeback) -> ChargebackOut:
    reversal = None
    if chargeback.status == "reversed":
        reversal = {
            "amount": chargeback.reversal_amount_minor,
            "to_receivable": chargeback.reversal_receivable_minor,
            "to_wallet": chargeback.reversal_wallet_minor,
            "transaction_key": chargeback.reversal_transaction_key,
            "reversed_at": chargeback.reversed_at,
        }
    return ChargebackOut(
        id=chargeback.id,
        provider=chargeback.provider,
        provider_chargeback_id=chargeback.provider_chargeback_id,
        deposit_id=chargeback.deposit_id,
        player_id=chargeback.player_id,
        amount=chargeback.amount_minor,
        currency=chargeback.currency,
        reason=chargeback.reason,
        source=chargeback.source,
        business_date=chargeback.business_date,
        from_wallet=chargeback.wallet_minor,
        receivable=chargeback.receivable_minor,
        transaction_key=chargeback.transaction_key,
        status=chargeback.status,
        reversal=reversal,
        created_by=chargeback.created_by,
        created_at=chargeback.created_at,
    )


def _chargeback_problem(exc: chargeback_store.ChargebackRefused) -> Problem:
    if exc.code == "chargeback_conflict":
        return Problem(409, exc.code, exc.detail)
    if exc.code == "chargeback_not_found":
        return Problem(404, exc.code, exc.detail)
    return Problem(422, exc.code, exc.detail)


@router.post("/chargebacks", status_code=201, responses=_PROBLEMS)
async def create_chargeback(
    body: ChargebackCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: OperatorDep,
) -> ChargebackOut:
    """Take a chargeback: the wallet pays what it can, the rest is owed by the player, who is
    flagged for risk. The same provider's id again returns the first (200)."""
    if body.currency not in settings.currencies:
        raise Problem(422, "unsupported_currency", f"{body.currency} is not configured")
    try:
        async with session.begin():
            recorded = await chargeback_store.record_chargeback(
                session,
                chargeback_store.ChargebackIn(
                    provider=body.provider,
                    provider_chargeback_id=body.provider_chargeback_id,
                    deposit_id=body.deposit_id,
                    amount_minor=body.amount,
                    currency=body.currency,
                    source="manual",
                    actor=principal.key_id,
                    reason=body.reason,
                    business_date=body.business_date,
                ),
                shards=settings.ledger_house_shards,
                now=datetime.now(UTC),
            )
    except chargeback_store.ChargebackRefused as exc:
        raise _chargeback_problem(exc) from exc
    if not recorded.created:
        response.status_code = 200
    return _chargeback_out(recorded.chargeback)


@router.get("/chargebacks/{chargeback_id}", responses=_PROBLEMS)
async def get_chargeback(
    chargeback_id: Annotated[str, Field(max_length=40)], session: SessionDep, _: OperatorDep
) -> ChargebackOut:
    chargeback = await chargeback_store.get_by_id(session, chargeback_id=chargeback_id)
    if chargeback is None:
        raise Problem(404, "chargeback_not_found", f"No chargeback {chargeback_id!r}")
    return _chargeback_out(chargeback)


@router.post("/chargebacks/{chargeback_id}/reversal", responses=_PROBLEMS)
async def reverse_chargeback(
    chargeback_id: str,
    body: ReversalCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: OperatorDep,
) -> ChargebackOut:
    """The chargeback won back: first what the player still owes is paid off, then the wallet
    is credited; the risk flag is cleared. Once per chargeback (again: 200, the same)."""
    try:
        async with session.begin():
            chargeback = await chargeback_store.get_by_id(session, chargeback_id=chargeback_id)
            if chargeback is None:
                raise Problem(404, "chargeback_not_found", f"No chargeback {chargeback_id!r}")
            recorded = await chargeback_store.record_reversal(
                session,
                provider=chargeback.provider,
                provider_chargeback_id=chargeback.provider_chargeback_id,
                amount_minor=body.amount,
                actor=principal.key_id,
                shards=settings.ledger_house_shards,
                now=datetime.now(UTC),
            )
    except chargeback_store.ChargebackRefused as exc:
        raise _chargeback_problem(exc) from exc
    response.status_code = 201 if recorded.created else 200
    return _chargeback_out(recorded.chargeback)
