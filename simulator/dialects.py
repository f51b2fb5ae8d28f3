"""Providers that speak an HTTP API of their own, translated to the simulator's internal
`Payment` (so the player pages, behaviour and admin views work the same for every provider).

- KazBank (bank transfer): JSON transfer instructions under `/providers/{name}/v2/...`, money as
  decimal strings of tenge, states NEW / PAID / REJECTED / EXPIRED / CANCELLED, API key in
  `X-Api-Key`, callbacks signed `X-KazBank-Signature` over `{unix ms}:{body}`.
- TengeWallet (e-wallet): form-encoded invoices under `/providers/{name}/api/invoice/...`,
  statuses AWAITING / COMPLETED / REJECTED / EXPIRED / REVOKED, key in `X-TW-Key`, form callbacks
  signed (base64) `X-TW-Signature` over `{ISO timestamp}\\n{body}`.
- BankApp (mobile banking): JSON push requests under `/providers/{name}/api/v1/push-requests`,
  money as integer tiyn (`amountTiyn`), statuses SENT / ACCEPTED / DECLINED / TIMEOUT / WITHDRAWN,
  key in `X-BankApp-Key`, callbacks signed `X-BankApp-Signature: t=<unix s>,v1=<hex>` over
  `{t}.{body}`.
- KZQR (QR): JSON QR orders under `/providers/{name}/merchant/v3/qr`, answers in an envelope
  {result: OK|ERROR, data | error: {code: 1404, text}}, money as {value: "2500.00", currency},
  states ACTIVE / PAID / FAILED / EXPIRED / CLOSED, token in `X-KZQR-Token`, callbacks signed
  (hex HMAC-SHA512) `X-KZQR-Signature` over `{X-KZQR-Nonce}|{X-KZQR-Timestamp}|{body}`.
- PayHub (aggregator): JSON hosted-checkout sessions under `/providers/{name}/checkout/sessions`,
  money as integer minor units (`amount_minor`), statuses OPEN / COMPLETED / FAILED / EXPIRED /
  CANCELED, errors {errors: [{code, detail}]}, key in `X-PayHub-Key`, callbacks signed
  `X-PayHub-Signature: ts=<unix s>;sig=<base64>` over `{ts}:{hex SHA-256 of body}`.

The adapters on the platform's side are `providers.kazbank`, `providers.tengewallet`,
`providers.bankapp`, `providers.kzqr` and `providers.payhub`.
"""

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from providers.amounts import InvalidAmount, from_decimal_string, to_decimal_string
from providers.signing import (
    BANKAPP_SIGNATURE_HEADER,
    KAZBANK_SIGNATURE_HEADER,
    KAZBANK_TIMESTAMP_HEADER,
    KZQR_NONCE_HEADER,
    KZQR_SIGNATURE_HEADER,
    KZQR_TIMESTAMP_HEADER,
    PAYHUB_SIGNATURE_HEADER,
    TENGEWALLET_SIGNATURE_HEADER,
    TENGEWALLET_TIMESTAMP_HEADER,
    sign_bankapp,
    sign_kazbank,
    sign_kzqr,
    sign_payhub,
    sign_tengewallet,
    tengewallet_timestamp,
)
from simulator.callbacks import Encoder
from simulator.faults import SimulatorError
from simulator.payments import AsyncProvider, Payment, PaymentRequest

if TYPE_CHECKING:
    from simulator.app import Registry

# provider name -> dialect (the platform's side: providers.registry.PAYMENT_DIALECTS)
DIALECTS = {
    "kazbank": "kazbank",
    "tengewallet": "tengewallet",
    "bankapp": "bankapp",
    "kzqr": "kzqr",
    "payhub": "payhub",
}

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


# -- TengeWallet --------------------------------------------------------------------------------

_TW_STATUSES = {
    "pending": "AWAITING",
    "processing": "AWAITING",
    "succeeded": "COMPLETED",
    "declined": "REJECTED",
    "expired": "EXPIRED",
    "cancelled": "REVOKED",
}
_TW_REASONS = {
    "insufficient_funds": "NO_FUNDS",
    "declined_by_payer": "USER_DECLINED",
    "do_not_honor": "WALLET_REJECTED",
    "expired": "LIFETIME_EXCEEDED",
    "cancelled": "MERCHANT_REVOKED",
}
_TW_ERRORS = {"not_found": "invoice_not_found", "reference_reused": "duplicate_order"}


def _tw_reason(code: str | None) -> str | None:
    return None if code is None else _TW_REASONS.get(code, code.upper())


def tengewallet_invoice(payment: Payment) -> dict[str, Any]:
    return {
        "invoice_id": payment.payment_id.replace("pay_", "inv_", 1),
        "merchant_order": payment.reference,
        "status": _TW_STATUSES[payment.status],
        "total": to_decimal_string(payment.amount),
        "paid_total": (
            to_decimal_string(payment.amount_received)
            if payment.amount_received is not None
            else None
        ),
        "currency": payment.currency,
        "reject_reason": _tw_reason(payment.decline_code),
        "confirm_url": payment.action.get("url"),
        "valid_until": int(payment.expires_at.timestamp()),
    }


def tengewallet_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    status = event["status"]
    form = {
        "notification_id": event["event_id"],
        "invoice_id": str(event["provider_payment_id"]).replace("pay_", "inv_", 1),
        "merchant_order": event["reference"],
        "status": _TW_STATUSES.get(status, "AWAITING"),
        "total": to_decimal_string(event.get("ordered_amount") or event["amount"]),
        "paid_total": to_decimal_string(event["amount"]) if status == "succeeded" else "",
        "currency": event["currency"],
        "reject_reason": _tw_reason(event.get("decline_code")) or "",
    }
    body = urlencode(form).encode()
    stamp = tengewallet_timestamp(time.time())
    return body, {
        "content-type": "application/x-www-form-urlencoded",
        TENGEWALLET_SIGNATURE_HEADER: sign_tengewallet(secret, stamp, body),
        TENGEWALLET_TIMESTAMP_HEADER: stamp,
    }


# -- BankApp ------------------------------------------------------------------------------------

_BANKAPP_STATUSES = {
    "pending": "SENT",
    "processing": "SENT",
    "succeeded": "ACCEPTED",
    "declined": "DECLINED",
    "expired": "TIMEOUT",
    "cancelled": "WITHDRAWN",
}
_BANKAPP_REASONS = {
    "declined_by_payer": "USER_DECLINED",
    "do_not_honor": "BANK_DECLINED",
    "not_a_customer": "NO_ACCOUNT",
    "expired": "NO_RESPONSE",
    "cancelled": "MERCHANT_WITHDREW",
}
_BANKAPP_ERRORS = {
    "not_found": "PUSH_NOT_FOUND",
    "reference_reused": "DUPLICATE_REQUEST",
    "outage": "SERVICE_UNAVAILABLE",
    "temporarily_unavailable": "SERVICE_UNAVAILABLE",
}


def _bankapp_reason(code: str | None) -> str | None:
    return None if code is None else _BANKAPP_REASONS.get(code, code.upper())


def bankapp_push(payment: Payment) -> dict[str, Any]:
    return {
        "pushId": payment.payment_id.replace("pay_", "push_", 1),
        "requestId": payment.reference,
        "status": _BANKAPP_STATUSES[payment.status],
        "amountTiyn": payment.amount,
        "paidTiyn": payment.amount_received,
        "currency": payment.currency,
        "declineReason": _bankapp_reason(payment.decline_code),
        "phoneMasked": payment.action.get("phone"),
        "confirmUrl": payment.action.get("confirm_url"),
        "expiresAt": payment.expires_at.isoformat(),
    }


def bankapp_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    status = event["status"]
    body = json.dumps(
        {
            "event": "push.updated",
            "eventId": event["event_id"],
            "pushId": str(event["provider_payment_id"]).replace("pay_", "push_", 1),
            "requestId": event["reference"],
            "status": _BANKAPP_STATUSES.get(status, "SENT"),
            "amountTiyn": event.get("ordered_amount") or event["amount"],
            "paidTiyn": event["amount"] if status == "succeeded" else None,
            "currency": event["currency"],
            "declineReason": _bankapp_reason(event.get("decline_code")),
            "occurredAt": event["sent_at"],
        }
    ).encode()
    return body, {
        "content-type": "application/json",
        BANKAPP_SIGNATURE_HEADER: sign_bankapp(secret, int(time.time()), body),
    }


# -- KZQR ---------------------------------------------------------------------------------------

_KZQR_STATES = {
    "pending": "ACTIVE",
    "processing": "ACTIVE",
    "succeeded": "PAID",
    "declined": "FAILED",
    "expired": "EXPIRED",
    "cancelled": "CLOSED",
}
_KZQR_FAIL_CODES = {
    "declined_by_payer": "PAYER_REFUSED",
    "do_not_honor": "ISSUER_DECLINED",
    "expired": "QR_EXPIRED",
    "cancelled": "MERCHANT_CLOSED",
}
_KZQR_ERRORS = {"not_found": 1404, "reference_reused": 1409, "invalid_amount": 1422}


def _kzqr_fail_code(code: str | None) -> str | None:
    return None if code is None else _KZQR_FAIL_CODES.get(code, code.upper())


def _kzqr_money(minor: int, currency: str) -> dict[str, str]:
    return {"value": to_decimal_string(minor), "currency": currency}


def kzqr_order(payment: Payment) -> dict[str, Any]:
    return {
        "qr_id": payment.payment_id.replace("pay_", "qr_", 1),
        "merchant_ref": payment.reference,
        "state": _KZQR_STATES[payment.status],
        "amount": _kzqr_money(payment.amount, payment.currency),
        "paid": (
            _kzqr_money(payment.amount_received, payment.currency)
            if payment.amount_received is not None
            else None
        ),
        "fail_code": _kzqr_fail_code(payment.decline_code),
        "qr_string": payment.action.get("payload"),
        "expire_at": payment.expires_at.isoformat(),
    }


def kzqr_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    status = event["status"]
    currency = event["currency"]
    body = json.dumps(
        {
            "type": "qr.state",
            "notification_id": event["event_id"],
            "data": {
                "qr_id": str(event["provider_payment_id"]).replace("pay_", "qr_", 1),
                "merchant_ref": event["reference"],
                "state": _KZQR_STATES.get(status, "ACTIVE"),
                "amount": _kzqr_money(event.get("ordered_amount") or event["amount"], currency),
                "paid": _kzqr_money(event["amount"], currency) if status == "succeeded" else None,
                "fail_code": _kzqr_fail_code(event.get("decline_code")),
            },
        }
    ).encode()
    nonce = secrets.token_hex(8)
    stamp = int(time.time())
    return body, {
        "content-type": "application/json",
        KZQR_SIGNATURE_HEADER: sign_kzqr(secret, nonce, stamp, body),
        KZQR_NONCE_HEADER: nonce,
        KZQR_TIMESTAMP_HEADER: str(stamp),
    }


# -- PayHub -------------------------------------------------------------------------------------

_PAYHUB_STATUSES = {
    "pending": "OPEN",
    "processing": "OPEN",
    "succeeded": "COMPLETED",
    "declined": "FAILED",
    "expired": "EXPIRED",
    "cancelled": "CANCELED",
}
_PAYHUB_REASONS = {
    "declined_by_payer": "CUSTOMER_ABANDONED",
    "do_not_honor": "PAYMENT_REFUSED",
    "expired": "SESSION_EXPIRED",
    "cancelled": "MERCHANT_CANCELED",
}
_PAYHUB_ERRORS = {
    "not_found": "SESSION_NOT_FOUND",
    "reference_reused": "ORDER_ID_REUSED",
    "outage": "SERVICE_UNAVAILABLE",
    "temporarily_unavailable": "SERVICE_UNAVAILABLE",
}


def _payhub_reason(code: str | None) -> str | None:
    return None if code is None else _PAYHUB_REASONS.get(code, code.upper())


def payhub_session(payment: Payment) -> dict[str, Any]:
    return {
        "session_id": payment.payment_id.replace("pay_", "cs_", 1),
        "order_id": payment.reference,
        "status": _PAYHUB_STATUSES[payment.status],
        "amount_minor": payment.amount,
        "captured_minor": payment.amount_received,
        "currency": payment.currency,
        "failure_reason": _payhub_reason(payment.decline_code),
        "paid_with": payment.paid_with,
        "checkout_url": payment.action.get("url"),
        "expires_at": payment.expires_at.isoformat(),
    }


def payhub_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    status = event["status"]
    body = json.dumps(
        {
            "event": "checkout.session.updated",
            "id": event["event_id"],
            "session": {
                "session_id": str(event["provider_payment_id"]).replace("pay_", "cs_", 1),
                "order_id": event["reference"],
                "status": _PAYHUB_STATUSES.get(status, "OPEN"),
                "amount_minor": event.get("ordered_amount") or event["amount"],
                "captured_minor": event["amount"] if status == "succeeded" else None,
                "currency": event["currency"],
                "failure_reason": _payhub_reason(event.get("decline_code")),
            },
            "created_at": event["sent_at"],
        }
    ).encode()
    return body, {
        "content-type": "application/json",
        PAYHUB_SIGNATURE_HEADER: sign_payhub(secret, int(time.time()), body),
    }


ENCODERS: dict[str, Encoder] = {
    "kazbank": kazbank_callback,
    "tengewallet": tengewallet_callback,
    "bankapp": bankapp_callback,
    "kzqr": kzqr_callback,
    "payhub": payhub_callback,
}


# -- routes -------------------------------------------------------------------------------------


def dialects_router(registry: "Registry") -> APIRouter:
    router = APIRouter(tags=["provider dialects"])
    settings = registry.settings

    def provider(name: str, dialect: str, key: str | None) -> AsyncProvider:
        if DIALECTS.get(name) != dialect or name not in registry.payments:
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

    # TengeWallet

    def tw_error(exc: SimulatorError) -> dict[str, Any]:
        return {"error": _TW_ERRORS.get(exc.code, exc.code), "error_description": exc.detail}

    async def form_of(request: Request) -> dict[str, str]:
        try:
            parsed = parse_qs((await request.body()).decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SimulatorError(400, "bad_request", "not a form") from exc
        return {k: v[-1] for k, v in parsed.items()}

    @router.post("/providers/{name}/api/invoice/create")
    async def tw_create(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "tengewallet", request.headers.get("x-tw-key"))
            form = await form_of(request)
            try:
                order = PaymentRequest(
                    reference=form["merchant_order"],
                    method="ewallet",
                    amount=money(form["total"]),
                    currency=form["currency"],
                    account=form.get("wallet") or None,
                    callback_url=form.get("notify_url") or None,
                    return_url=form.get("return_url") or None,
                    expires_in_seconds=int(form.get("lifetime") or 900),
                )
            except (ValueError, KeyError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            payment = await create(found, order, str(request.base_url))
            return tengewallet_invoice(payment), 200

        return await answer(tw_error, work)

    @router.post("/providers/{name}/api/invoice/status")
    async def tw_status(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "tengewallet", request.headers.get("x-tw-key"))
            form = await form_of(request)
            await found.behaviour.delay()
            return tengewallet_invoice(existing(found, form.get("merchant_order", ""))), 200

        return await answer(tw_error, work)

    @router.post("/providers/{name}/api/invoice/revoke")
    async def tw_revoke(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "tengewallet", request.headers.get("x-tw-key"))
            form = await form_of(request)
            return tengewallet_invoice(found.cancel(form.get("merchant_order", ""))), 200

        return await answer(tw_error, work)

    # BankApp

    def bankapp_error(exc: SimulatorError) -> dict[str, Any]:
        code = _BANKAPP_ERRORS.get(exc.code, exc.code.upper())
        return {"error": {"code": code, "message": exc.detail}}

    def tiyn(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SimulatorError(422, "invalid_amount", f"amountTiyn is not an integer: {value!r}")
        return value

    @router.post("/providers/{name}/api/v1/push-requests", status_code=201)
    async def bankapp_create(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "bankapp", request.headers.get("x-bankapp-key"))
            try:
                body = json.loads(await request.body())
                order = PaymentRequest(
                    reference=body["requestId"],
                    method="mobile_banking",
                    amount=tiyn(body["amountTiyn"]),
                    currency=body["currency"],
                    phone=body.get("phone") or None,
                    callback_url=body.get("hookUrl"),
                    expires_in_seconds=body.get("expiresInSec", 900),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            payment = await create(found, order, str(request.base_url))
            return bankapp_push(payment), 201

        return await answer(bankapp_error, work)

    @router.get("/providers/{name}/api/v1/push-requests/{request_id}")
    async def bankapp_status(name: str, request_id: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "bankapp", request.headers.get("x-bankapp-key"))
            await found.behaviour.delay()
            return bankapp_push(existing(found, request_id)), 200

        return await answer(bankapp_error, work)

    @router.post("/providers/{name}/api/v1/push-requests/{request_id}/withdraw")
    async def bankapp_withdraw(name: str, request_id: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "bankapp", request.headers.get("x-bankapp-key"))
            return bankapp_push(found.cancel(request_id)), 200

        return await answer(bankapp_error, work)

    # KZQR

    def kzqr_error(exc: SimulatorError) -> dict[str, Any]:
        code = _KZQR_ERRORS.get(exc.code, 1000 + exc.status)
        return {"result": "ERROR", "error": {"code": code, "text": exc.detail}}

    def kzqr_ok(payment: Payment) -> dict[str, Any]:
        return {"result": "OK", "data": kzqr_order(payment)}

    @router.post("/providers/{name}/merchant/v3/qr")
    async def kzqr_create(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "kzqr", request.headers.get("x-kzqr-token"))
            try:
                body = json.loads(await request.body())
                order = PaymentRequest(
                    reference=body["merchant_ref"],
                    method="qr",
                    amount=money(body["amount"]["value"]),
                    currency=body["amount"]["currency"],
                    callback_url=body.get("notify_url"),
                    expires_in_seconds=body.get("ttl_sec", 900),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            payment = await create(found, order, str(request.base_url))
            return kzqr_ok(payment), 200

        return await answer(kzqr_error, work)

    @router.get("/providers/{name}/merchant/v3/qr")
    async def kzqr_status(name: str, merchant_ref: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "kzqr", request.headers.get("x-kzqr-token"))
            await found.behaviour.delay()
            return kzqr_ok(existing(found, merchant_ref)), 200

        return await answer(kzqr_error, work)

    @router.post("/providers/{name}/merchant/v3/qr/close")
    async def kzqr_close(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "kzqr", request.headers.get("x-kzqr-token"))
            try:
                reference = str(json.loads(await request.body())["merchant_ref"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            return kzqr_ok(found.cancel(reference)), 200

        return await answer(kzqr_error, work)

    # PayHub

    def payhub_error(exc: SimulatorError) -> dict[str, Any]:
        code = _PAYHUB_ERRORS.get(exc.code, exc.code.upper())
        return {"errors": [{"code": code, "detail": exc.detail}]}

    def minor(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            detail = f"amount_minor is not an integer: {value!r}"
            raise SimulatorError(422, "invalid_amount", detail)
        return value

    @router.post("/providers/{name}/checkout/sessions", status_code=201)
    async def payhub_create(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "payhub", request.headers.get("x-payhub-key"))
            try:
                body = json.loads(await request.body())
                order = PaymentRequest(
                    reference=body["order_id"],
                    method="aggregator",
                    amount=minor(body["amount_minor"]),
                    currency=body["currency"],
                    callback_url=body.get("webhook_url"),
                    return_url=body.get("success_url"),
                    expires_in_seconds=body.get("ttl_seconds", 1800),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            payment = await create(found, order, str(request.base_url))
            return payhub_session(payment), 201

        return await answer(payhub_error, work)

    @router.get("/providers/{name}/checkout/sessions/by-order/{order_id}")
    async def payhub_status(name: str, order_id: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "payhub", request.headers.get("x-payhub-key"))
            await found.behaviour.delay()
            return payhub_session(existing(found, order_id)), 200

        return await answer(payhub_error, work)

    @router.post("/providers/{name}/checkout/sessions/by-order/{order_id}/cancel")
    async def payhub_cancel(name: str, order_id: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            found = provider(name, "payhub", request.headers.get("x-payhub-key"))
            return payhub_session(found.cancel(order_id)), 200

        return await answer(payhub_error, work)

    return router
