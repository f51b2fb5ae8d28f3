"""The 3-D Secure TermUrl: `POST /v1/deposits/{deposit_id}/3ds`.

An acquirer that authenticates by form (CloudPayments: PaReq and MD posted to the issuer's ACS)
has the issuer's ACS send the payer's browser back here with PaRes and MD. The result goes to
that acquirer (`complete_3ds`), which decides; the deposit's workflow is then nudged to ask the
acquirer at once. Nothing here credits anything: the workflow's own inquiry does, as for any
callback. The route is public (the browser comes from the ACS, with no key), so MD must be the
acquirer's transaction for this very deposit, asked of the acquirer itself.
"""

import logging
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from temporalio.service import RPCError

from activities.gateway_models import ProviderEvent
from api.deps import SessionDep, StateDep
from api.errors import Problem
from db import deposits as deposit_store
from domain.ids import deposit_workflow_id
from providers.errors import ProviderError, ProviderRejected
from workflows.deposit import DepositWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/deposits", tags=["deposits"])

FIELD_MAX = 16 * 1024  # a PaRes is a few kilobytes of base64


def _fields(body: bytes) -> tuple[str, str]:
    try:
        form = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "invalid_3ds_result", "Expected a form with PaRes and MD") from exc
    pa_res, md = form.get("PaRes", ""), form.get("MD", "")
    for name, value in (("PaRes", pa_res), ("MD", md)):
        if not value or len(value) > FIELD_MAX or not value.isprintable():
            raise Problem(400, "invalid_3ds_result", f"{name}: required, printable, at most 16 KiB")
    return pa_res, md


def _page(deposit_id: str, status: str) -> HTMLResponse:
    text = {
        "succeeded": "Payment confirmed.",
        "failed": "The payment was not confirmed.",
    }.get(status, "Payment submitted: it is being confirmed.")
    return HTMLResponse(
        "<!doctype html><html><head><meta name='viewport' content='width=device-width'>"
        f"<title>{escape(text)}</title></head><body><h1>{escape(text)}</h1>"
        f"<p>Deposit {escape(deposit_id)}. You can return to the site.</p></body></html>"
    )


@router.post(
    "/{deposit_id}/3ds",
    response_class=HTMLResponse,
    summary="3-D Secure TermUrl: the issuer's ACS returns the payer here",
    responses={
        400: {"description": "invalid_3ds_result: PaRes or MD missing, or MD not this deposit's"},
        404: {"description": "payment_not_found"},
        409: {"description": "three_ds_not_expected: the deposit is not waiting for 3-D Secure"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["PaRes", "MD"],
                        "properties": {"PaRes": {"type": "string"}, "MD": {"type": "string"}},
                    }
                }
            }
        }
    },
)
async def three_ds_result(
    deposit_id: str, request: Request, state: StateDep, session: SessionDep
) -> HTMLResponse:
    pa_res, md = _fields(await request.body())
    view = await deposit_store.get_deposit_view(session, deposit_id=deposit_id)
    if view is None:
        raise Problem(404, "payment_not_found", f"No deposit {deposit_id!r}")
    deposit = view.deposit
    if deposit.status != "requires_action":  # a refresh, or the result came another way
        return _page(deposit_id, deposit.status)
    client: Any = state.card_providers.get(deposit.provider or "")
    complete = getattr(client, "complete_3ds", None)
    if deposit.method != "card" or complete is None:
        raise Problem(409, "three_ds_not_expected", "This deposit does not await a 3-D Secure form")
    try:
        charge = await client.get_charge(deposit_id)
    except ProviderError as exc:
        raise Problem(503, "provider_unavailable", "Post the form again in a moment") from exc
    if charge is None or charge.charge_id != md:
        raise Problem(400, "invalid_3ds_result", "MD is not this deposit's transaction")
    status = "processing"
    try:
        outcome = await complete(reference=deposit_id, charge_id=md, pa_res=pa_res)
        status = outcome.status
    except ProviderRejected as exc:
        logger.warning("3-D Secure result refused by %s: %s", deposit.provider, exc.code)
    except ProviderError as exc:  # outcome unknown: the workflow's inquiries settle it
        logger.warning("3-D Secure result to %s unanswered: %s", deposit.provider, exc.code)
    event = ProviderEvent(provider=deposit.provider or "", reference=deposit_id, status=status)
    temporal = await state.temporal()
    try:
        await temporal.get_workflow_handle(deposit_workflow_id(deposit_id)).signal(
            DepositWorkflow.provider_event, event
        )
    except RPCError:
        logger.warning("deposit %s: no workflow to nudge after 3-D Secure", deposit_id)
    shown = {"succeeded": "succeeded", "declined": "failed"}.get(status, "processing")
    return _page(deposit_id, shown)
