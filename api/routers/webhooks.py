"""Providers' callbacks: `POST /v1/webhooks/{provider}`.

Verified before anything else, the way that provider signs (`providers.registry.payment_dialect`:
by default HMAC-SHA256 over `{timestamp}.{raw body}`; KazBank and the real providers' connectors
sign their own way) with that provider's secret, and a timestamp within the tolerance (5 minutes).
An unsigned, forged or replayed callback is 401 and changes nothing. A verified one becomes a
signal to the payment's workflow (id derived from our reference, the deposit id). The signal is a
hint: the workflow asks the provider, and only the provider's answer with the deposit's exact
amount and currency credits it (every provider, whatever its signature scheme). Each delivery is
taken once, by provider and event id (or the body's hash): the same delivery again is answered 200
`duplicate` and changes nothing. A success for a deposit that already expired or failed, or
succeeded at another provider, is never dropped: it starts the deposit's `LatePaymentWorkflow`,
which confirms it at the provider and applies the late-payment policy. A payment reported for
another amount or currency than the deposit's (a bank transfer of the wrong sum) is not credited;
it raises a critical `amount_mismatch` alert for the operators, since the money arrived at the
provider all the same."""

import hashlib
import inspect
import logging
import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.gateway_models import ProviderEvent
from api.deps import SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.state import AppState
from config import Settings
from db import deposits as deposit_store
from db import late_payments as late_store
from db import monitoring
from db import players as player_store
from db import risk as risk_store
from db.models import Deposit
from domain.fraud.geo import names_match
from domain.ids import deposit_workflow_id
from providers.payments import CallbackNotUnderstood
from providers.registry import callback_dialect
from providers.signing import SignatureError
from workflows.deposit import DepositWorkflow
from workflows.late_payment import LatePaymentInput, LatePaymentWorkflow, late_payment_workflow_id

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
logger = logging.getLogger("api.webhooks")


class WebhookAck(BaseModel):
    received: bool
    outcome: Literal["signalled", "already_final", "duplicate", "late_payment"]


@router.post(
    "/{provider}",
    response_model=WebhookAck,
    responses={
        401: {"description": "signature_missing / invalid_signature / stale_timestamp"},
        404: {"description": "unknown_provider / payment_not_found"},
    },
)
async def provider_callback(
    provider: str,
    request: Request,
    settings: SettingsDep,
    state: StateDep,
    session: SessionDep,
) -> Any:
    """Answered as the provider expects: our JSON ack, or the provider's own answer where its
    connector has one (`callback_ack`, e.g. CloudPayments `{"code": 0}`, Freedom Pay's signed
    XML)."""
    if settings.provider_rule(provider) is None or provider not in settings.provider_secrets:
        raise Problem(404, "unknown_provider", f"No provider {provider!r}")
    body = await request.body()
    dialect = callback_dialect(provider, settings)
    ack = await _take_callback(provider, body, request, settings, state, session, dialect)
    custom = getattr(dialect, "callback_ack", None)
    if custom is None:
        return ack
    wants_secret = bool(inspect.signature(custom).parameters)
    content, media_type = custom(settings.webhook_secret(provider)) if wants_secret else custom()
    return Response(content=content, media_type=media_type)


async def _take_callback(
    provider: str,
    body: bytes,
    request: Request,
    settings: Settings,
    state: AppState,
    session: AsyncSession,
    dialect: Any,
) -> WebhookAck:
    if not all(value.isascii() for value in request.headers.values()):
        # Signatures and timestamps are ASCII; comparing other bytes would only fail later.
        raise Problem(401, "invalid_signature", "A header holds non-ASCII characters")
    try:
        dialect.verify_callback(
            settings.webhook_secret(provider),
            request.headers,
            body,
            now=time.time(),
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        logger.warning("refused callback from %s: %s", provider, exc.code)
        raise Problem(401, exc.code, exc.detail) from exc
    try:
        callback = dialect.parse_callback(body)
    except CallbackNotUnderstood as exc:
        raise Problem(400, "invalid_callback", "The callback body is not understood") from exc
    event = ProviderEvent(
        provider=provider,
        reference=callback.reference,
        status=callback.status,
        amount_minor=callback.amount,
        currency=callback.currency,
        decline_code=callback.decline_code,
        provider_payment_id=callback.provider_payment_id,
    )
    view = await deposit_store.get_deposit_view(session, deposit_id=callback.reference)
    if view is None:
        raise Problem(404, "payment_not_found", f"No payment {callback.reference!r}")
    deposit = view.deposit
    event_key = callback.event_id or hashlib.sha256(body).hexdigest()
    fresh = await late_store.first_receipt(
        session, provider=provider, event_key=event_key[:128], reference=deposit.id
    )
    if not fresh:  # committed by an earlier delivery of the same event
        if callback.status == "succeeded" and await _is_late(session, deposit.id, provider):
            # The earlier delivery was recorded but the late payment's workflow may not have
            # started (the orchestrator was down): start it now, never twice.
            client = await state.temporal()
            await _start_late_payment(
                client, deposit, provider, settings.temporal_task_queue, again=False
            )
        return WebhookAck(received=True, outcome="duplicate")
    holder = getattr(callback, "card_owner", None)  # providers that report it (Freedom Pay)
    if isinstance(holder, str) and holder.strip():
        event.card_holder_matches = await _judge_card_holder(session, deposit, provider, holder)
    if callback.status == "succeeded" and (
        (callback.amount is not None and callback.amount != deposit.amount_minor)
        or (callback.currency is not None and callback.currency != deposit.currency)
    ):
        # The workflow does not take it as payment; the money still arrived somewhere.
        await monitoring.raise_alert(
            session,
            dedupe_key=f"amount_mismatch:{deposit.id}",
            kind="amount_mismatch",
            severity="critical",
            subject=deposit.player_id,
            message=f"{provider} reports {callback.amount} {callback.currency or ''} paid for "
            f"deposit {deposit.id} of {deposit.amount_minor} {deposit.currency}: the deposit "
            "is not credited; return or reconcile the money at the provider",
            details={
                "payment_id": deposit.id,
                "provider": provider,
                "reported_amount_minor": callback.amount,
                "reported_currency": callback.currency,
                "expected_amount_minor": deposit.amount_minor,
                "expected_currency": deposit.currency,
            },
        )
    client = await state.temporal()
    late = callback.status == "succeeded" and _late(deposit.status, deposit.provider, provider)
    if not late:
        handle = client.get_workflow_handle(deposit_workflow_id(callback.reference))
        try:
            await handle.signal(DepositWorkflow.provider_event, event)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise Problem(503, "orchestrator_unavailable", "Retry the callback later") from exc
            # The workflow has finished: judge by the deposit as it is now, not as read above
            # (it may have been credited in between, by this very payment).
            late = callback.status == "succeeded" and await _is_late(session, deposit.id, provider)
            if not late:
                await session.commit()
                return WebhookAck(received=True, outcome="already_final")
        else:
            await session.commit()
            return WebhookAck(received=True, outcome="signalled")
    # Committed first, so the late payment's workflow reads the cardholder verdict; should the
    # start fail, the provider's resend of this event starts it (the duplicate branch above).
    await session.commit()
    await _start_late_payment(client, deposit, provider, settings.temporal_task_queue)
    return WebhookAck(received=True, outcome="late_payment")


def _late(status: str, served_by: str | None, provider: str) -> bool:
    """A success `provider` reports for a deposit in this state is a late payment: the deposit
    expired or failed, or was credited through another provider."""
    return status in ("expired", "failed") or (
        status == "succeeded" and served_by not in (None, provider)
    )


async def _is_late(session: AsyncSession, deposit_id: str, provider: str) -> bool:
    """`_late`, judged on the deposit as it is now in the database."""
    status, served_by = await deposit_store.current_status(session, deposit_id=deposit_id)
    return _late(status, served_by, provider)


async def _judge_card_holder(
    session: AsyncSession, deposit: Deposit, provider: str, holder: str
) -> bool | None:
    """The cardholder name the provider reports, for the risk engine: whether it is the
    player's (`risk.card_holder_matches`; when not, a `card_holder_mismatch` reason on the
    deposit and its decision, a high alert and a review: a deposit not yet credited is held,
    one already credited blocks the person's withdrawals until an operator decides). The name
    itself is not kept."""
    player = await player_store.get_player(session, player_id=deposit.player_id)
    if player is None:
        return None
    matches = names_match(player.full_name, holder)
    risk = dict(deposit.risk or {})
    risk["card_holder_matches"] = matches
    if not matches and "card_holder_mismatch" not in risk.get("reasons", []):
        risk["reasons"] = [*risk.get("reasons", []), "card_holder_mismatch"]
        await monitoring.raise_alert(
            session,
            dedupe_key=f"card_holder_mismatch:{deposit.id}",
            kind="card_holder_mismatch",
            severity="high",
            subject=deposit.player_id,
            message=f"{provider} reports deposit {deposit.id} paid with a card whose holder is "
            "not the player: someone else's card?",
            details={"payment_id": deposit.id, "provider": provider},
        )
        review = await risk_store.card_holder_reported(
            session, deposit=deposit, credited=deposit.status == "succeeded"
        )
        if review is not None:
            risk["review"] = review
    deposit.risk = risk
    return matches


async def _start_late_payment(
    client: Client, deposit: Deposit, provider: str, task_queue: str, *, again: bool = True
) -> None:
    """Once per deposit and provider, however often the provider repeats itself. A new event
    (`again`) runs a finished one again; a resent event only starts one that never ran."""
    try:
        await client.start_workflow(
            LatePaymentWorkflow.run,
            LatePaymentInput(
                deposit_id=deposit.id,
                provider=provider,
                method=deposit.method,
                amount_minor=deposit.amount_minor,
                currency=deposit.currency,
            ),
            id=late_payment_workflow_id(deposit.id, provider),
            task_queue=task_queue,
            # A later report (a top-up of a short transfer) runs it again: every step is
            # idempotent on the deposit and the provider.
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if again
                else WorkflowIDReusePolicy.REJECT_DUPLICATE
            ),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        return
    except RPCError as exc:
        raise Problem(503, "orchestrator_unavailable", "Retry the callback later") from exc
