"""Withdrawals: the amount is held at once, in the request; the workflow does the rest.

Approve, reject and cancel are workflow updates: their validators refuse an invalid
transition before anything is written, which the API answers with 409 `invalid_state`. Each
carries an approval token the API signs for that withdrawal, decision and person
(api/approvals.py); approvals and rejections are a person's (`DeciderDep`): a key that belongs
to no active operator gets 403 `operator_required`, admin keys included, and four eyes are two
different people.
"""

import base64
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api import compliance, listing
from api.approvals import refused_token, signed_review
from api.closed_loop import check_closed_loop
from api.deps import DeciderDep, MerchantDep, ReaderDep, SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.idempotency import fingerprint, require_key
from api.schemas import RiskOut
from api.views import attempts_out, events_out, ledger_out
from api.withdrawal_schemas import (
    RejectBody,
    ReviewBody,
    ReviewOut,
    WithdrawalCreate,
    WithdrawalList,
    WithdrawalOut,
    WithdrawalSummaryOut,
)
from config import Settings
from db import compliance as compliance_store
from db import idempotency
from db import ledger as ledger_store
from db import operators as operator_store
from db import players as player_store
from db import withdrawals as withdrawal_store
from db.models import Deposit, Withdrawal
from domain.compliance.deadlines import deadline_state
from domain.iban import InvalidIBAN, parse_kz_iban
from domain.ids import new_id
from domain.ledger import withdrawal_hold
from domain.phone import is_kz_mobile
from domain.withdrawals import ReviewPolicy, WithdrawalStatus, destination_fingerprint
from workflows import search_attributes as sa
from workflows.withdrawal import (
    ReviewInput,
    WithdrawalTimings,
    WithdrawalWorkflow,
    WithdrawalWorkflowInput,
)

router = APIRouter(prefix="/v1/withdrawals", tags=["withdrawals"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "idempotency_key_required"},
    401: {"description": "unauthorized"},
    403: {"description": "forbidden / operator_required (decisions are made by people)"},
    404: {"description": "player_not_found / withdrawal_not_found"},
    409: {"description": "idempotency_key_reused / invalid_state"},
    422: {
        "description": "insufficient_funds, amount_out_of_range, invalid_iban, invalid_phone, "
        "card_not_owned, card_not_payable, destination_not_owned, invalid_destination, "
        "unsupported_currency, underage, debtor_excluded, civil_servant_excluded, "
        "military_excluded, closed_loop_required (with allowed_destinations), "
        "destination_not_in_player_name, withdrawals_blocked_by_review"
    },
    503: {
        "description": "orchestrator_unavailable: retry (with the same Idempotency-Key); "
        "approval_not_verified: the workers refused the API's approval token (configuration)"
    },
}


def withdrawal_workflow_id(withdrawal_id: str) -> str:
    return f"withdrawal-{withdrawal_id}"


async def _token_of_deposit(
    session: AsyncSession, player_id: str, deposit_id: str, payout_provider: str
) -> str | None:
    """Pay back to the card of a succeeded deposit: its token at the payout provider."""
    deposit = await session.get(Deposit, deposit_id)
    if deposit is None or deposit.player_id != player_id or deposit.status != "succeeded":
        return None
    tokens = dict((deposit.card or {}).get("tokens") or {})
    return tokens.get(payout_provider) or next(iter(tokens.values()), None)


def _holder(details: dict[str, Any]) -> dict[str, str]:
    """The account holder's name as given, for the "payout in the player's own name" rule."""
    name = details.get("holder_name")
    if name is None:
        return {}
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise Problem(422, "invalid_destination", "destination.holder_name: 1 to 200 characters")
    return {"holder_name": name.strip()}


async def parse_destination(
    session: AsyncSession, body: WithdrawalCreate, *, player_phone: str, payout_provider: str
) -> tuple[dict[str, Any], str]:
    """The destination's display form and its normalized value; the player's own only."""
    details = body.destination
    if body.method == "card":
        token = details.get("card_token")
        if token is None and isinstance(details.get("deposit_id"), str):
            token = await _token_of_deposit(
                session, body.player_id, details["deposit_id"], payout_provider
            )
        cards = await withdrawal_store.player_card_tokens(session, player_id=body.player_id)
        if not isinstance(token, str) or token not in cards:
            raise Problem(
                422,
                "card_not_owned",
                "destination must name a card this player has deposited with: "
                "{card_token} or {deposit_id} of a succeeded card deposit",
            )
        card = cards[token]
        # Paid to the same card as the payout provider vaulted it: any of the card's tokens
        # names the card, but only the payout provider's own token can be paid.
        vaulted = dict(card.get("tokens") or {})
        if vaulted:
            if payout_provider not in vaulted:
                raise Problem(
                    422,
                    "card_not_payable",
                    f"this card was never vaulted at the card payout provider "
                    f"{payout_provider!r}: choose another card or method",
                )
            card = {**card, "token": str(vaulted[payout_provider])}
        keep = ("token", "bin", "last4", "scheme", "fingerprint")
        shown = {k: card[k] for k in keep if k in card}
        # Providers vault one card under several tokens: the card itself is its fingerprint
        # (HMAC of the PAN, issue 18), or BIN + last four for cards vaulted before.
        return {"card": shown}, str(
            card.get("fingerprint") or f"{card.get('bin')}:{card.get('last4')}"
        )
    if body.method == "bank_transfer":
        try:
            iban = parse_kz_iban(str(details.get("iban", "")))
        except InvalidIBAN as exc:
            raise Problem(422, "invalid_iban", f"destination.iban: {exc}") from exc
        return {"iban": iban, **_holder(details)}, iban
    if body.method == "ewallet":
        account = details.get("wallet_account")
        if not isinstance(account, str) or not 3 <= len(account.strip()) <= 64:
            raise Problem(
                422, "invalid_destination", "destination.wallet_account: 3 to 64 characters"
            )
        return {"wallet_account": account.strip(), **_holder(details)}, account.strip()
    phone = details.get("phone")
    if not isinstance(phone, str) or not is_kz_mobile(phone):
        raise Problem(
            422, "invalid_phone", "destination.phone must be a Kazakh mobile: +77 and 9 digits"
        )
    if phone != player_phone:
        raise Problem(
            422,
            "destination_not_owned",
            "mobile banking payouts go only to the player's own registered phone",
        )
    return {"phone": phone}, phone


def workflow_input(withdrawal: Withdrawal, settings: Settings) -> WithdrawalWorkflowInput:
    return WithdrawalWorkflowInput(
        withdrawal_id=withdrawal.id,
        player_id=withdrawal.player_id,
        amount_minor=withdrawal.amount_minor,
        currency=withdrawal.currency,
        method=withdrawal.method,
        destination=dict(withdrawal.destination),
        provider=withdrawal.provider,
        approvals_needed=withdrawal.approvals_needed,
        timings=WithdrawalTimings(
            escalate_after_seconds=settings.withdrawal_escalate_after_seconds,
            provider_call_seconds=settings.provider_http_timeout_seconds + 5,
            retry_initial_seconds=settings.payout_retry_initial_seconds,
            retry_max_seconds=settings.payout_retry_max_seconds,
            give_up_seconds=settings.payout_give_up_seconds,
            processing_window_seconds=settings.payout_processing_window_seconds,
            processing_poll_seconds=settings.payout_processing_poll_seconds,
        ),
    )


async def ensure_workflow(client: Client, withdrawal: Withdrawal, settings: Settings) -> None:
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            WithdrawalWorkflow.run,
            workflow_input(withdrawal, settings),
            id=withdrawal.workflow_id,
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.PAYMENT_STATUS, WithdrawalStatus.PENDING.value),
                    SearchAttributePair(sa.PAYMENT_METHOD, withdrawal.method),
                    SearchAttributePair(sa.PROVIDER, withdrawal.provider),
                    SearchAttributePair(sa.PLAYER_ID, withdrawal.player_id),
                    SearchAttributePair(sa.AMOUNT_MINOR, withdrawal.amount_minor),
                ]
            ),
        )


def withdrawal_out(view: withdrawal_store.WithdrawalView) -> WithdrawalOut:
    w = view.withdrawal
    paid_at = next((e.occurred_at for e in view.events if e.status == "paid"), None)
    return WithdrawalOut(
        id=w.id,
        player_id=w.player_id,
        amount=w.amount_minor,
        currency=w.currency,
        method=w.method,
        destination=w.destination,
        status=w.status,
        status_reason=w.status_reason,
        provider=w.provider,
        risk=RiskOut.model_validate(w.risk) if w.risk else None,
        approvals_needed=w.approvals_needed,
        reviews=[
            ReviewOut(
                action=r.action,
                operator_id=r.operator_id,
                operator_name=r.operator_name,
                reason=r.reason,
                at=r.created_at,
            )
            for r in view.reviews
        ],
        escalated_at=w.escalated_at,
        attempts=attempts_out(view.attempts),
        ledger=ledger_out(view.ledger),
        events=events_out(view.events),
        workflow_id=w.workflow_id,
        created_at=w.created_at,
        updated_at=w.updated_at,
        payout_deadline=w.payout_deadline,
        deadline_state=deadline_state(
            w.payout_deadline, status=w.status, paid_at=paid_at, now=datetime.now(UTC)
        ),
        deadline_warned_at=w.deadline_warned_at,
        deadline_escalated_at=w.deadline_escalated_at,
    )


async def load_view(session: AsyncSession, withdrawal_id: str) -> withdrawal_store.WithdrawalView:
    view = await withdrawal_store.get_withdrawal_view(session, withdrawal_id=withdrawal_id)
    if view is None:
        raise Problem(404, "withdrawal_not_found", f"No withdrawal {withdrawal_id!r}")
    return view


def _unavailable(withdrawal_id: str, exc: BaseException) -> Problem:
    return Problem(
        503,
        "orchestrator_unavailable",
        f"Withdrawal {withdrawal_id} is recorded but its workflow could not be reached; retry",
    )


@router.post("", status_code=202, responses=_PROBLEMS)
async def create_withdrawal(
    body: WithdrawalCreate,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    _: MerchantDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> WithdrawalOut:
    """Hold the amount on the player's wallet and start the withdrawal's workflow."""
    key = require_key(idempotency_key)
    if body.currency not in settings.currencies:
        raise Problem(
            422,
            "unsupported_currency",
            f"currency {body.currency!r} is not supported; "
            f"use one of {', '.join(sorted(settings.currencies))}",
        )
    if body.amount < settings.withdrawal_min_minor:
        raise Problem(
            422,
            "amount_out_of_range",
            f"the smallest withdrawal is {settings.withdrawal_min_minor} minor units",
        )
    async with session.begin():
        stored = await idempotency.claim(
            session,
            scope="withdrawals",
            key=key,
            request_hash=fingerprint(body, secret=settings.idempotency_secret.get_secret_value()),
        )
        if stored is not None:
            withdrawal_id = stored.resource_id
        else:
            player = await player_store.get_player(session, player_id=body.player_id)
            if player is None:
                raise Problem(404, "player_not_found", f"No player {body.player_id!r}")
            await compliance.check_withdrawal(
                state, player=player, amount_minor=body.amount, currency=body.currency
            )
            provider = settings.payout_providers[body.method]
            shown, normalized = await parse_destination(
                session, body, player_phone=player.phone, payout_provider=provider
            )
            await check_closed_loop(  # issue 18: reviews that hold payouts back, closed loop
                session,
                player=player,
                method=body.method,
                destination=shown,
                destination_key=destination_fingerprint(body.method, normalized),
                amount_minor=body.amount,
                currency=body.currency,
            )
            withdrawal_id = new_id("wd")
            await withdrawal_store.create_withdrawal(
                session,
                withdrawal_id=withdrawal_id,
                player_id=body.player_id,
                amount_minor=body.amount,
                currency=body.currency,
                method=body.method,
                destination=shown,
                destination_fingerprint=destination_fingerprint(body.method, normalized),
                provider=provider,
                approvals_needed=ReviewPolicy(
                    settings.withdrawal_four_eyes_from_minor
                ).approvals_needed(body.amount),
                workflow_id=withdrawal_workflow_id(withdrawal_id),
                created_at=datetime.now(UTC),
                client=body.client.model_dump() if body.client else None,
            )
            try:
                await ledger_store.post_transaction(
                    session,
                    spec=withdrawal_hold(
                        withdrawal_id=withdrawal_id,
                        player_id=body.player_id,
                        provider=provider,
                        amount_minor=body.amount,
                        currency=body.currency,
                        shards=settings.ledger_house_shards,
                    ),
                )
            except ledger_store.InsufficientFunds as exc:
                raise Problem(
                    422,
                    "insufficient_funds",
                    f"the player's available balance is below {body.amount} {body.currency}",
                ) from exc
            await idempotency.complete(
                session, scope="withdrawals", key=key, resource_id=withdrawal_id, status_code=202
            )
    assert withdrawal_id is not None
    view = await load_view(session, withdrawal_id)
    try:
        await ensure_workflow(await state.temporal(), view.withdrawal, settings)
    except (RPCError, RuntimeError, OSError) as exc:
        raise _unavailable(withdrawal_id, exc) from exc
    return withdrawal_out(view)


@router.get("/{withdrawal_id}", responses=_PROBLEMS)
async def get_withdrawal(withdrawal_id: str, session: SessionDep, _: ReaderDep) -> WithdrawalOut:
    return withdrawal_out(await load_view(session, withdrawal_id))


@router.get("", responses=_PROBLEMS)
async def list_withdrawals(
    session: SessionDep,
    _: ReaderDep,
    player_id: str | None = None,
    status: WithdrawalStatus | None = None,
    escalated: bool | None = None,
    order: Literal["newest", "deadline"] = "newest",
    limit: listing.Limit = 50,
    cursor: str | None = None,
) -> WithdrawalList:
    """The approval queue is `?status=in_review&order=deadline` (the nearest payout deadline
    first); `&escalated=true` shows the overdue reviews. By default the newest come first."""
    if order == "deadline":
        rows = await withdrawal_store.list_by_deadline(
            session,
            player_id=player_id,
            status=status.value if status else None,
            escalated=escalated,
            limit=limit + 1,
            after=_deadline_cursor(cursor),
        )
        page: Sequence[Withdrawal] = rows[:limit]
        next_cursor = _encode_deadline_cursor(page[-1]) if len(rows) > limit else None
    else:

        async def fetch(rows: int, before: listing.Before | None) -> list[Withdrawal]:
            return await withdrawal_store.list_withdrawals(
                session,
                player_id=player_id,
                status=status.value if status else None,
                escalated=escalated,
                limit=rows,
                before=before,
            )

        page, next_cursor = await listing.page(fetch, limit=limit, cursor=cursor)
    paid = await compliance_store.paid_at(
        session, payment_ids=[w.id for w in page if w.status == "paid"]
    )
    now = datetime.now(UTC)
    return WithdrawalList(
        data=[
            WithdrawalSummaryOut(
                **listing.summary(w),
                escalated_at=w.escalated_at,
                payout_deadline=w.payout_deadline,
                deadline_state=deadline_state(
                    w.payout_deadline, status=w.status, paid_at=paid.get(w.id), now=now
                ),
                risk=RiskOut.model_validate(w.risk) if w.risk else None,
            )
            for w in page
        ],
        next_cursor=next_cursor,
    )


def _encode_deadline_cursor(row: Withdrawal) -> str:
    assert row.payout_deadline is not None
    raw = f"deadline|{row.payout_deadline.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _deadline_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        kind, stamp, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 2)
        if kind != "deadline":
            raise ValueError(kind)
        return datetime.fromisoformat(stamp), ident
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc


Action = Literal["approve", "reject", "cancel"]
_REPEATS: dict[Action, WithdrawalStatus] = {
    "approve": WithdrawalStatus.PAID,  # approving again after it was paid: contract says 409
    "reject": WithdrawalStatus.REJECTED,
    "cancel": WithdrawalStatus.CANCELLED,
}


async def _act(
    *,
    action: Action,
    withdrawal_id: str,
    review: ReviewInput,
    session: AsyncSession,
    state: Any,
    request: Request,
) -> WithdrawalOut:
    view = await load_view(session, withdrawal_id)
    current = WithdrawalStatus(view.withdrawal.status)
    if current.terminal:
        if action != "approve" and current is _REPEATS[action]:
            return withdrawal_out(view)  # the same decision again: harmless
        raise Problem(
            409, "invalid_state", f"withdrawal {withdrawal_id} is {current}; it cannot be {action}d"
        )
    workflow_id = view.withdrawal.workflow_id
    review = await signed_review(request, review, workflow_id=workflow_id, decision=action)
    handle = (await state.temporal()).get_workflow_handle(workflow_id)
    update = {
        "approve": WithdrawalWorkflow.approve,
        "reject": WithdrawalWorkflow.reject,
        "cancel": WithdrawalWorkflow.cancel,
    }[action]
    try:
        await handle.execute_update(update, review)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "InvalidTransition":
            raise Problem(409, "invalid_state", cause.message) from exc
        refused = refused_token(exc, f"withdrawal {withdrawal_id}")
        if refused is not None:
            raise refused from exc
        raise
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:  # the workflow finished meanwhile
            session.expire_all()
            done = await load_view(session, withdrawal_id)
            if WithdrawalStatus(done.withdrawal.status) is _REPEATS[action]:
                return withdrawal_out(done)
            raise Problem(
                409, "invalid_state", f"withdrawal {withdrawal_id} is {done.withdrawal.status}"
            ) from exc
        raise _unavailable(withdrawal_id, exc) from exc
    session.expire_all()
    return withdrawal_out(await load_view(session, withdrawal_id))


async def _approved_with_an_old_key(
    session: AsyncSession, view: withdrawal_store.WithdrawalView, operator_id: str
) -> bool:
    """An approval recorded under one of this person's key ids, before decisions were recorded
    by person (migration 0200): the workflow counts it under the key, so a second approval by
    the same person would count twice there."""
    approvers = {r.operator_id for r in view.reviews if r.action == "approve"}
    if not approvers or operator_id in approvers:
        return False
    return bool(approvers & await operator_store.key_ids_of(session, operator_id=operator_id))


@router.post("/{withdrawal_id}/approve", responses=_PROBLEMS)
async def approve_withdrawal(
    withdrawal_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    operator: DeciderDep,
    body: ReviewBody | None = None,
) -> WithdrawalOut:
    """An operator approves; large amounts need a second, different person (another key of the
    same operator does not count)."""
    view = await load_view(session, withdrawal_id)
    if await _approved_with_an_old_key(session, view, operator.operator_id):
        return withdrawal_out(view)  # this person approved already: it counts once
    review = ReviewInput(
        actor_id=operator.operator_id,
        actor_name=operator.operator_name,
        reason=body.reason if body else None,
    )
    return await _act(
        action="approve",
        withdrawal_id=withdrawal_id,
        review=review,
        session=session,
        state=state,
        request=request,
    )


@router.post("/{withdrawal_id}/reject", responses=_PROBLEMS)
async def reject_withdrawal(
    withdrawal_id: str,
    body: RejectBody,
    request: Request,
    session: SessionDep,
    state: StateDep,
    operator: DeciderDep,
) -> WithdrawalOut:
    """An operator rejects with a reason; the hold is released."""
    review = ReviewInput(
        actor_id=operator.operator_id, actor_name=operator.operator_name, reason=body.reason
    )
    return await _act(
        action="reject",
        withdrawal_id=withdrawal_id,
        review=review,
        session=session,
        state=state,
        request=request,
    )


@router.post("/{withdrawal_id}/cancel", responses=_PROBLEMS)
async def cancel_withdrawal(
    withdrawal_id: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    merchant: MerchantDep,
) -> WithdrawalOut:
    """The player cancels (through the casino's key) before the payout is processing."""
    review = ReviewInput(actor_id=merchant.key_id, actor_name=f"player via {merchant.name}")
    return await _act(
        action="cancel",
        withdrawal_id=withdrawal_id,
        review=review,
        session=session,
        state=state,
        request=request,
    )
