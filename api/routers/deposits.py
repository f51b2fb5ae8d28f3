"""Deposits: accepted with an Idempotency-Key, card data tokenized in the request, then a workflow.

The PAN exists only inside this request: the provider returns a token, and only the token, BIN and
last four digits are stored or passed to the workflow.
"""

import contextlib
import io
from datetime import UTC, datetime
from typing import Annotated

import segno
from fastapi import APIRouter, Header, Response
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.gateway_models import CardRoute
from api import compliance, listing
from api.deposit_methods import (
    card_identity,
    parse_card,
    parse_details,
    require_route,
    tokenize_everywhere,
)
from api.deps import SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.idempotency import fingerprint, require_key
from api.schemas import (
    CardSummary,
    DepositCreate,
    DepositList,
    DepositOut,
    DepositSummaryOut,
    RiskOut,
)
from api.views import attempts_out, events_out, ledger_out
from config import Settings
from db import compliance as compliance_store
from db import deposits as deposit_store
from db import idempotency, responsible_gaming
from db import players as player_store
from db.models import Deposit
from domain.ids import deposit_workflow_id, new_id
from domain.statuses import DepositStatus
from workflows import search_attributes as sa
from workflows.deposit import DepositTimings, DepositWorkflow, DepositWorkflowInput

router = APIRouter(prefix="/v1/deposits", tags=["deposits"])

_PROBLEMS = {
    400: {"description": "idempotency_key_required"},
    404: {"description": "player_not_found / deposit_not_found"},
    409: {"description": "idempotency_key_reused"},
    422: {
        "description": "validation_error, unsupported_currency, invalid_card_number, "
        "self_excluded, cooling_off, deposit_limit_exceeded, underage, debtor_excluded, "
        "civil_servant_excluded, military_excluded, credit_funds_not_allowed, esu_refused, "
        "esu_monthly_limit_exceeded, ..."
    },
    502: {"description": "provider_error: the card provider could not tokenize"},
    503: {
        "description": "orchestrator_unavailable, exclusion_check_unavailable, "
        "esu_unavailable: retry with the same Idempotency-Key"
    },
}


def workflow_input(deposit: Deposit, settings: Settings) -> DepositWorkflowInput:
    card = deposit.card
    return DepositWorkflowInput(
        deposit_id=deposit.id,
        player_id=deposit.player_id,
        amount_minor=deposit.amount_minor,
        currency=deposit.currency,
        method=deposit.method,
        card=CardRoute(bin=card["bin"], scheme=card["scheme"], tokens=card["tokens"])
        if card
        else None,
        details=dict(deposit.details or {}),
        timings=DepositTimings(
            provider_call_seconds=settings.provider_http_timeout_seconds + 5,
            retry_initial_seconds=settings.charge_retry_initial_seconds,
            retry_max_seconds=settings.charge_retry_max_seconds,
            give_up_seconds=settings.charge_give_up_seconds,
            provider_attempts=settings.provider_attempts,
            poll_initial_seconds=settings.callback_poll_initial_seconds,
            poll_max_seconds=settings.callback_poll_max_seconds,
        ),
    )


async def ensure_workflow(client: Client, deposit: Deposit, settings: Settings) -> None:
    """Start the deposit's workflow unless it exists; safe to call on every replay."""
    with contextlib.suppress(
        WorkflowAlreadyStartedError
    ):  # it ran already; the row has the outcome
        await client.start_workflow(
            DepositWorkflow.run,
            workflow_input(deposit, settings),
            id=deposit.workflow_id,
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.PAYMENT_STATUS, DepositStatus.PENDING.value),
                    SearchAttributePair(sa.PAYMENT_METHOD, deposit.method),
                    SearchAttributePair(sa.PROVIDER, deposit.provider or ""),
                    SearchAttributePair(sa.PLAYER_ID, deposit.player_id),
                    SearchAttributePair(sa.AMOUNT_MINOR, deposit.amount_minor),
                ]
            ),
        )


def deposit_out(view: deposit_store.DepositView) -> DepositOut:
    deposit = view.deposit
    return DepositOut(
        id=deposit.id,
        player_id=deposit.player_id,
        amount=deposit.amount_minor,
        currency=deposit.currency,
        method=deposit.method,
        status=deposit.status,
        status_reason=deposit.status_reason,
        provider=deposit.provider,
        card=CardSummary.model_validate(
            {k: deposit.card[k] for k in ("bin", "last4", "scheme", "issuer_country")}
        )
        if deposit.card
        else None,
        next_action=deposit.next_action
        if deposit.status == DepositStatus.REQUIRES_ACTION.value
        else None,
        attempts=attempts_out(view.attempts),
        risk=RiskOut.model_validate(deposit.risk) if deposit.risk else None,
        funding=(deposit.details or {}).get("funding"),
        ledger=ledger_out(view.ledger),
        events=events_out(view.events),
        workflow_id=deposit.workflow_id,
        created_at=deposit.created_at,
        updated_at=deposit.updated_at,
    )


async def load_view(session: AsyncSession, deposit_id: str) -> deposit_store.DepositView:
    view = await deposit_store.get_deposit_view(session, deposit_id=deposit_id)
    if view is None:
        raise Problem(404, "deposit_not_found", f"No deposit {deposit_id!r}")
    return view


@router.post("", status_code=202, responses=_PROBLEMS)  # type: ignore[arg-type]
async def create_deposit(
    body: DepositCreate,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> DepositOut:
    key = require_key(idempotency_key)
    if body.currency not in settings.currencies:
        raise Problem(
            422,
            "unsupported_currency",
            f"currency {body.currency!r} is not supported; "
            f"use one of {', '.join(sorted(settings.currencies))}",
        )
    card = parse_card(body, today=datetime.now(UTC).date()) if body.method == "card" else None
    eligible_providers = require_route(body, settings, card=card)
    created: deposit_store.DepositView | None = None
    minted = new_id("dep")  # stored with the key: a replay gets the id the first request got
    async with session.begin():
        stored = await idempotency.claim(
            session,
            scope="deposits",
            key=key,
            request_hash=fingerprint(body, secret=settings.idempotency_secret.get_secret_value()),
            response=idempotency.StoredResponse(resource_id=minted, status_code=202),
        )
        if stored is not None:
            deposit_id = stored.resource_id
        else:
            player = await player_store.get_player(session, player_id=body.player_id)
            if player is None:
                raise Problem(404, "player_not_found", f"No player {body.player_id!r}")
            details = (
                parse_details(body, player_phone=player.phone) if body.method != "card" else {}
            )
            now = datetime.now(UTC)
            subject = compliance.Subject(
                "deposit", player.iin, player, minted, body.amount, body.currency
            )
            refusal = await responsible_gaming.deposit_refusal(
                session,
                player_id=body.player_id,
                amount_minor=body.amount,
                currency=body.currency,
                now=now,
            )
            if refusal is not None:
                problem = Problem(422, refusal.code, refusal.detail)
                raise await compliance.refused(state, subject, problem)
            await compliance.check_deposit(
                state,
                player=player,
                deposit_id=minted,
                amount_minor=body.amount,
                currency=body.currency,
                card_bin=card.number[:6] if card else None,
                person_month_minor=await compliance_store.person_month_deposits(
                    session, player_id=player.id, currency=body.currency, now=now
                ),
            )
            vaulted = (
                await tokenize_everywhere(state.card_providers, eligible_providers, card)
                if card
                else None
            )
            if vaulted is not None and card is not None:  # fingerprint, holder name: issue 18
                vaulted |= card_identity(card, player_name=player.full_name, settings=settings)
            deposit_id = minted
            now = datetime.now(UTC)
            deposit = await deposit_store.create_deposit(
                session,
                deposit_id=deposit_id,
                player_id=body.player_id,
                amount_minor=body.amount,
                currency=body.currency,
                method=body.method,
                provider=None,
                card=vaulted,
                client=body.client.model_dump() if body.client else None,
                workflow_id=deposit_workflow_id(deposit_id),
                created_at=now,
                details=details,
            )
            # What was just written is the whole view: no attempts, no ledger, one event.
            created = deposit_store.created_view(deposit)
    view = created if created is not None else await load_view(session, deposit_id)
    try:
        await ensure_workflow(await state.temporal(), view.deposit, settings)
    except (RPCError, RuntimeError, OSError) as exc:
        raise Problem(
            503,
            "orchestrator_unavailable",
            f"Deposit {deposit_id} is recorded but could not be started; "
            "retry with the same Idempotency-Key",
        ) from exc
    return deposit_out(view)


@router.get("/{deposit_id}", responses=_PROBLEMS)  # type: ignore[arg-type]
async def get_deposit(deposit_id: str, session: SessionDep) -> DepositOut:
    return deposit_out(await load_view(session, deposit_id))


@router.get(
    "/{deposit_id}/qr.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "no QR to show"}},
)
async def deposit_qr(deposit_id: str, session: SessionDep) -> Response:
    """The QR of a `qr` deposit's `next_action.payload`, as a PNG to show the player."""
    deposit = (await load_view(session, deposit_id)).deposit
    payload = (deposit.next_action or {}).get("payload")
    if deposit.method != "qr" or not payload:
        raise Problem(404, "qr_not_available", "This deposit has no QR code to scan")
    buffer = io.BytesIO()
    segno.make(str(payload), error="m").save(buffer, kind="png", scale=6, border=4)
    return Response(buffer.getvalue(), media_type="image/png")


@router.get("", responses=_PROBLEMS)  # type: ignore[arg-type]
async def list_deposits(
    session: SessionDep,
    player_id: str | None = None,
    status: DepositStatus | None = None,
    method: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: listing.Limit = 50,
    cursor: str | None = None,
) -> DepositList:
    async def fetch(rows: int, before: listing.Before | None) -> list[Deposit]:
        return await deposit_store.list_deposits(
            session,
            player_id=player_id,
            status=status.value if status else None,
            method=method,
            created_from=created_from,
            created_to=created_to,
            limit=rows,
            before=before,
        )

    page, next_cursor = await listing.page(fetch, limit=limit, cursor=cursor)
    return DepositList(
        data=[DepositSummaryOut(**listing.summary(d), provider=d.provider) for d in page],
        next_cursor=next_cursor,
    )
