"""The operator's bank, speaking an HTTP API of its own, translated to the simulator's internal
`Payment` (so the player pages, behaviour and admin views work the same for every provider).

- KazBank (bank transfer): JSON transfer instructions under `/providers/{name}/v2/...`, money as
  decimal strings of tenge, states NEW / PAID / REJECTED / EXPIRED / CANCELLED, API key in
  `X-Api-Key`, callbacks signed `X-KazBank-Signature` over `{unix ms}:{body}`.
The adapter on the platform's side is `providers.kazbank`. The bank also pays out (to an IBAN,
a wallet account or a phone) through the simulator's common `/payouts` API.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from providers.amounts import InvalidAmount, from_decimal_string, to_decimal_string
from providers.signing import (
    KAZBANK_SIGNATURE_HEADER,
    KAZBANK_TIMESTAMP_HEADER,
    sign_kazbank,
)
from simulator.callbacks import Encoder
from simulator.faults import SimulatorError
from simulator.payments import AsyncProvider, Payment, PaymentRequest

if TYPE_CHECKING:
    from simulator.app import Registry

# connector type -> dialect (the platform's side: providers.registry.BUILT_IN_TYPES)
DIALECTS = {"kazbank": "kazbank"}

# -- KazBank ------------------------------------------------------------------------------------

_KAZBANK_STATES = {
    "pending": "NEW",
    "processing": "NEW",
    "succeeded": "PAID",
    "declined": "REJECTED",
    "expired": "EXPIRED",
    "cancelled": "CANCELLED",
}
_KAZBANK_REASONS = {
    "declined_by_payer": "PAYER_CANCELLED",
    "do_not_honor": "BANK_REJECTED",
    "expired": "TTL_EXCEEDED",
    "cancelled": "MERCHANT_CANCELLED",
}
_KAZBANK_ERRORS = {
    "not_found": "ORDER_NOT_FOUND",
    "reference_reused": "ORDER_CONFLICT",
    "outage": "SERVICE_UNAVAILABLE",
    "temporarily_unavailable": "SERVICE_UNAVAILABLE",
}


def _kazbank_reason(code: str | None) -> str | None:
    return None if code is None else _KAZBANK_REASONS.get(code, code.upper())


def kazbank_instruction(payment: Payment) -> dict[str, Any]:
    action = payment.action
    return {
        "instructionId": payment.payment_id.replace("pay_", "ti_", 1),
        "orderId": payment.reference,
        "state": _KAZBANK_STATES[payment.status],
        "sum": to_decimal_string(payment.amount),
        "paidSum": (
            to_decimal_string(payment.amount_received)
            if payment.amount_received is not None
            else None
        ),
        "currency": payment.currency,
        "rejectReason": _kazbank_reason(payment.decline_code),
        "beneficiary": {
            "bankName": action.get("bank_name"),
            "bic": action.get("bic"),
            "iban": action.get("iban"),
            "name": action.get("beneficiary"),
        },
        "paymentPurpose": f"Deposit {payment.reference}",
        "expiresAt": payment.expires_at.isoformat(),
        "payUrl": action.get("pay_url"),
    }


def kazbank_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    status = event["status"]
    paid = event["amount"] if status == "succeeded" else None
    body = json.dumps(
        {
            "eventType": "INSTRUCTION_STATE_CHANGED",
            "eventId": event["event_id"],
            "instructionId": str(event["provider_payment_id"]).replace("pay_", "ti_", 1),
            "orderId": event["reference"],
            "state": _KAZBANK_STATES.get(status, "NEW"),
            "sum": to_decimal_string(event.get("ordered_amount") or event["amount"]),
            "paidSum": to_decimal_string(paid) if paid is not None else None,
            "currency": event["currency"],
            "rejectReason": _kazbank_reason(event.get("decline_code")),
            "occurredAt": event["sent_at"],
        }
    ).encode()
    stamp_ms = int(time.time() * 1000)
    return body, {
        "content-type": "application/json",
        KAZBANK_SIGNATURE_HEADER: sign_kazbank(secret, stamp_ms, body),
        KAZBANK_TIMESTAMP_HEADER: str(stamp_ms),
    }


ENCODERS: dict[str, Encoder] = {"kazbank": kazbank_callback}


# -- routes -------------------------------------------------------------------------------------


def dialects_router(registry: "Registry") -> APIRouter:
    router = APIRouter(tags=["provider dialects"])
    settings = registry.settings

    def provider(name: str, dialect: str, key: str | None) -> AsyncProvider:
        if DIALECTS.get(registry.connector_type(name)) != dialect or name not in registry.payments:
            raise SimulatorError(404, "unknown_provider", f"no {dialect} provider {name!r}")
        if key != settings.provider_secret(name):
            raise SimulatorError(401, "unauthorized", "bad API key")
        found = registry.payments[name]
        found.behaviour.admit(name)
        return found

    async def answer(
        errors: Callable[[SimulatorError], dict[str, Any]],
        work: Callable[[], Awaitable[tuple[Any, int]]],
    ) -> JSONResponse:
        try:
            data, status = await work()
        except SimulatorError as exc:
            return JSONResponse(errors(exc), status_code=exc.status, headers=exc.headers)
        return JSONResponse(data, status_code=status)

    async def create(found: AsyncProvider, request: PaymentRequest, page_base: str) -> Payment:
        payment, answer_late = await found.create(request, page_base=page_base)
        if answer_late:
            await asyncio.sleep(found.behaviour.behaviour.timeout_seconds)
        return payment

    def money(text: object) -> int:
        try:
            return from_decimal_string(text)
        except InvalidAmount as exc:
            raise SimulatorError(422, "invalid_amount", str(exc)) from exc

    def existing(found: AsyncProvider, reference: str) -> Payment:
        payment = found.find(reference)
        if payment is None:
            raise SimulatorError(404, "not_found", f"no payment with reference {reference!r}")
        return payment

    # KazBank

    def kazbank_error(exc: SimulatorError) -> dict[str, Any]:
        code = _KAZBANK_ERRORS.get(exc.code, exc.code.upper())
        return {"errorCode": code, "errorMessage": exc.detail}

    @router.post("/providers/{name}/v2/transfer-instructions", status_code=201)
    async def kazbank_create(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "kazbank", request.headers.get("x-api-key"))
            try:
                body = json.loads(await request.body())
                order = PaymentRequest(
                    reference=body["orderId"],
                    method="bank_transfer",
                    amount=money(body["sum"]),
                    currency=body["currency"],
                    callback_url=body.get("callbackUrl"),
                    expires_in_seconds=body.get("ttlSeconds", 72 * 3600),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            payment = await create(found, order, str(request.base_url))
            return kazbank_instruction(payment), 201

        return await answer(kazbank_error, work)

    @router.get("/providers/{name}/v2/transfer-instructions/by-order/{order_id}")
    async def kazbank_status(name: str, order_id: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "kazbank", request.headers.get("x-api-key"))
            await found.behaviour.delay()
            return kazbank_instruction(existing(found, order_id)), 200

        return await answer(kazbank_error, work)

    @router.delete("/providers/{name}/v2/transfer-instructions/by-order/{order_id}")
    async def kazbank_cancel(name: str, order_id: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "kazbank", request.headers.get("x-api-key"))
            return kazbank_instruction(found.cancel(order_id)), 200

        return await answer(kazbank_error, work)

    return router
