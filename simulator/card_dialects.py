"""Card acquirers that speak an HTTP API of their own, translated to the simulator's internal
`Charge` (so 3-D Secure pages, behaviour, callbacks and admin views work the same).

- AltynCard: JSON under `/providers/{name}/gateway/...`: tokens {pan, expiry: "MM/YYYY",
  securityCode}, payments {merchantReference, cardToken, amount: {minor, currency}}, states
  APPROVED / REFUSED / CHALLENGE_REQUIRED / VOIDED, key in `X-Altyn-Key`, errors
  {fault: {code, text}}. Its 3-D Secure callbacks keep the common signed format.

The adapter on the platform's side is `providers.altyncard`.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from simulator.cards import CardProvider, Charge, ChargeRequest, SimulatorError, TokenizeRequest

if TYPE_CHECKING:
    from simulator.app import Registry

# provider name -> card dialect (the platform's side: providers.registry.CARD_DIALECTS)
CARD_DIALECTS = {"altyncard": "altyncard"}

_ALTYN_STATES = {
    "succeeded": "APPROVED",
    "declined": "REFUSED",
    "requires_action": "CHALLENGE_REQUIRED",
    "cancelled": "VOIDED",
}
_ALTYN_REASONS = {
    "insufficient_funds": "INSUFFICIENT_FUNDS",
    "expired_card": "CARD_EXPIRED",
    "do_not_honor": "DO_NOT_HONOR",
    "authentication_failed": "THREE_DS_FAILED",
    "expired": "CHALLENGE_TIMEOUT",
    "cancelled_by_merchant": "MERCHANT_VOID",
}
_ALTYN_ERRORS = {
    "not_found": "PAYMENT_NOT_FOUND",
    "reference_reused": "DUPLICATE_REFERENCE",
    "invalid_card_number": "INVALID_PAN",
    "unknown_token": "UNKNOWN_TOKEN",
    "bad_request": "INVALID_REQUEST",
    "outage": "SERVICE_UNAVAILABLE",
    "temporarily_unavailable": "SERVICE_UNAVAILABLE",
}


def _altyn_reason(code: str | None) -> str | None:
    return None if code is None else _ALTYN_REASONS.get(code, code.upper())


def altyn_payment(charge: Charge) -> dict[str, Any]:
    return {
        "paymentId": charge.charge_id.replace("ch_", "ap_", 1),
        "merchantReference": charge.reference,
        "state": _ALTYN_STATES[charge.status],
        "amount": {"minor": charge.amount, "currency": charge.currency},
        "refusalReason": _altyn_reason(charge.decline_code),
        "challengeUrl": charge.action_url,
    }


def card_dialects_router(registry: "Registry") -> APIRouter:
    router = APIRouter(tags=["card provider dialects"])
    settings = registry.settings

    def acquirer(name: str, key: str | None) -> CardProvider:
        if CARD_DIALECTS.get(name) != "altyncard" or name not in registry.cards:
            raise SimulatorError(404, "unknown_provider", f"no altyncard provider {name!r}")
        if key != settings.provider_secret(name):
            raise SimulatorError(401, "unauthorized", "bad API key")
        found = registry.cards[name]
        found.behaviour.admit(name)
        return found

    def fault(exc: SimulatorError) -> dict[str, Any]:
        code = _ALTYN_ERRORS.get(exc.code, exc.code.upper())
        return {"fault": {"code": code, "text": exc.detail}}

    async def answer(work: Callable[[], Awaitable[tuple[Any, int]]]) -> JSONResponse:
        try:
            data, status = await work()
        except SimulatorError as exc:
            return JSONResponse(fault(exc), status_code=exc.status, headers=exc.headers)
        return JSONResponse(data, status_code=status)

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise SimulatorError(400, "bad_request", str(exc)) from exc

    @router.post("/providers/{name}/gateway/tokens", status_code=201)
    async def altyn_tokenize(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request.headers.get("x-altyn-key"))
            body = await body_of(request)
            try:
                month, year = str(body["expiry"]).split("/", 1)
                tokenize = TokenizeRequest(
                    number=body["pan"],
                    exp_month=int(month),
                    exp_year=int(year),
                    cvc=body["securityCode"],
                    holder=body.get("cardholder"),
                )
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            token = card.tokenize(tokenize)
            return {
                "cardToken": token.token,
                "bin": token.bin,
                "lastFour": token.last4,
                "brand": token.scheme.upper(),
                "issuerCountry": token.issuer_country,
            }, 201

        return await answer(work)

    @router.post("/providers/{name}/gateway/payments")
    async def altyn_pay(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request.headers.get("x-altyn-key"))
            body = await body_of(request)
            try:
                amount = body["amount"]["minor"]
                if isinstance(amount, bool) or not isinstance(amount, int):
                    raise ValueError(f"amount.minor is not an integer: {amount!r}")
                order = ChargeRequest(
                    reference=body["merchantReference"],
                    token=body["cardToken"],
                    amount=amount,
                    currency=body["amount"]["currency"],
                    callback_url=body.get("notificationUrl"),
                )
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            charge, answer_late = await card.charge(order, page_base=str(request.base_url))
            if answer_late:
                await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
            return altyn_payment(charge), 200

        return await answer(work)

    @router.get("/providers/{name}/gateway/payments/{reference}")
    async def altyn_status(name: str, reference: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request.headers.get("x-altyn-key"))
            await card.behaviour.delay()
            found = card.find_charge(reference)
            if found is None:
                raise SimulatorError(404, "not_found", f"no payment {reference!r}")
            return altyn_payment(found), 200

        return await answer(work)

    @router.post("/providers/{name}/gateway/payments/{reference}/void")
    async def altyn_void(name: str, reference: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request.headers.get("x-altyn-key"))
            return altyn_payment(card.cancel(reference)), 200

        return await answer(work)

    return router
