"""ioka (cards on its hosted checkout: the `aggregator` method) as the simulator speaks it, over
the common asynchronous model (`simulator.payments.AsyncProvider`), so that the player's page,
every behaviour knob, expiry and the admin views work as for any provider. The platform's side is
`providers.connectors.ioka`, which documents the API.

Under `/providers/{name}/` for providers of connector type `ioka`, key in `API-KEY`:
- `POST v2/orders` -> 201 {order, order_access_token}; a second order under an `external_id` is
  409 `OrderExists`; AUTO capture and KZT only (400 `InvalidRequest` otherwise), payable until
  `due_date` (default 30 minutes)
- `GET v2/orders?external_id=` -> [order]; `GET v2/orders/{order_id}` -> order or 404
  `OrderNotFound`
- `POST v2/orders/{order_id}/cancel` -> the order's payment, CANCELLED; an order that is not
  UNPAID any more is 400 `OrderHasNoApprovedPayment`
- `POST v2/orders/{order_id}/refunds` {amount >= 100, reason} -> 200 refund, APPROVED at once
  (400 `OrderUnpaid` before PAID, 400 `PaymentRefundAmountExceededError` beyond what was
  captured); `GET` the same path lists them. Refunds are kept with the payment in the store
  (`ioka.refunds`), so they survive a restart like the order.
- `POST / GET v2/webhooks`, `DELETE v2/webhooks/{id}`: the shop's webhook (one per provider
  here) for orders created after it; its `key` is the provider's webhook secret. Without one,
  webhooks go where the operator registers them: the platform's `/v1/webhooks/{name}`.

Statuses: pending UNPAID, succeeded PAID, expired EXPIRED, cancelled CANCELLED; a declined card
leaves the order UNPAID (until its `due_date`: EXPIRED), as at ioka, where the player may try
again. The order id is `ord_` and the base64url of the reference, so every route finds the
payment in the store without an index of its own. Webhooks are {event, order, payment} signed
`X-Signature` (hex HMAC-SHA256 over `{X-Timestamp}.{body}`); ioka's body has no event id, and the
simulated one leaves out the `created_at` times the event does not carry.
"""

import asyncio
import base64
import binascii
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from providers.connectors.ioka import SIGNATURE_HEADER, TIMESTAMP_HEADER, ioka_time, sign
from simulator.faults import SimulatorError
from simulator.payments import AsyncProvider, Payment, PaymentRequest

if TYPE_CHECKING:
    from simulator.app import Registry

CONNECTOR_TYPE = "ioka"

_ORDER_STATUSES = {
    "pending": "UNPAID",
    "processing": "UNPAID",
    "succeeded": "PAID",
    "declined": "UNPAID",  # the player may try again; EXPIRED once due
    "expired": "EXPIRED",
    "cancelled": "CANCELLED",
}
_PAYMENT_STATUSES = {
    "pending": "PENDING",
    "processing": "PENDING",
    "succeeded": "CAPTURED",
    "declined": "DECLINED",
    "expired": "CANCELLED",
    "cancelled": "CANCELLED",
}
_EVENTS = {
    "pending": "PAYMENT_PENDING",
    "processing": "PAYMENT_PENDING",
    "succeeded": "PAYMENT_CAPTURED",
    "declined": "PAYMENT_DECLINED",
    "expired": "PAYMENT_CANCELLED",
    "cancelled": "PAYMENT_CANCELLED",
}
_ERRORS = {
    "not_found": "OrderNotFound",
    "reference_reused": "OrderExists",
    "unauthorized": "Unauthorized",
    "token_expired": "Unauthorized",
    "rate_limited": "TooManyRequests",
    "outage": "ServiceUnavailable",
    "temporarily_unavailable": "ServiceUnavailable",
    "bad_request": "InvalidRequest",
    "invalid_amount": "InvalidRequest",
    "unsupported_method": "InvalidRequest",
    "internal_error": "InternalError",
    "bad_gateway": "BadGateway",
    "gateway_timeout": "GatewayTimeout",
    "unknown_provider": "NotFound",
}
_DEFAULT_TTL_SECONDS = 1800


def order_id(reference: str) -> str:
    return "ord_" + base64.urlsafe_b64encode(reference.encode()).decode().rstrip("=")


def reference_of(ioka_id: str) -> str | None:
    if not ioka_id.startswith("ord_"):
        return None
    encoded = ioka_id[4:]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """ioka leaves absent fields out (includeIfNull: false)."""
    return {k: v for k, v in data.items() if v is not None}


def _order_status(payment: Payment) -> str:
    if payment.status == "declined" and datetime.now(UTC) >= payment.expires_at:
        return "EXPIRED"
    return _ORDER_STATUSES[payment.status]


def _error(code: str | None) -> dict[str, str] | None:
    if code is None:
        return None
    return {"code": code.upper(), "message": f"payment declined: {code}"}


def ioka_order(payment: Payment, extra: dict[str, Any]) -> dict[str, Any]:
    return _compact(
        {
            "id": order_id(payment.reference),
            "status": _order_status(payment),
            "created_at": extra.get("created_at"),
            "amount": payment.amount,
            "currency": payment.currency,
            "capture_method": "AUTO",
            "external_id": payment.reference,
            "description": extra.get("description"),
            "attempts": 10,
            "due_date": ioka_time(payment.expires_at),
            "back_url": extra.get("back_url"),
            "checkout_url": payment.action.get("url"),
        }
    )


def _refunded(extra: dict[str, Any]) -> int:
    return sum(r["amount"] for r in extra.get("refunds", []) if r["status"] == "APPROVED")


def ioka_payment(payment: Payment, extra: dict[str, Any]) -> dict[str, Any]:
    paid = payment.status == "succeeded"
    captured = (payment.amount_received or payment.amount) if paid else 0
    return _compact(
        {
            "id": payment.payment_id,
            "order_id": order_id(payment.reference),
            "status": _PAYMENT_STATUSES[payment.status],
            "created_at": extra.get("created_at"),
            "approved_amount": captured,
            "captured_amount": captured,
            "refunded_amount": _refunded(extra),
            "processing_fee": 0,
            "error": _error(payment.decline_code) if payment.status == "declined" else None,
        }
    )


def encode_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A webhook {event, order, payment} about the payment's new state, signed."""
    status = event["status"]
    succeeded = status == "succeeded"
    reference = event["reference"]
    payment = {
        "id": event["provider_payment_id"],
        "order_id": order_id(reference),
        "status": _PAYMENT_STATUSES.get(status, "PENDING"),
        "approved_amount": event["amount"] if succeeded else 0,
        "captured_amount": event["amount"] if succeeded else 0,
        "refunded_amount": 0,
        "processing_fee": 0,
        "error": _error(event.get("decline_code")) if status == "declined" else None,
    }
    body = json.dumps(
        {
            "event": _EVENTS.get(status, "PAYMENT_PENDING"),
            "order": {
                "id": order_id(reference),
                "shop_id": "shop_simulated",
                "status": _ORDER_STATUSES.get(status, "UNPAID"),
                "amount": event.get("ordered_amount") or event["amount"],
                "currency": event["currency"],
                "capture_method": "AUTO",
                "external_id": reference,
            },
            "payment": _compact(payment),
        }
    ).encode()
    stamp = int(time.time())
    return body, {
        "content-type": "application/json",
        SIGNATURE_HEADER: sign(secret, stamp, body),
        TIMESTAMP_HEADER: str(stamp),
    }


def router(registry: "Registry") -> APIRouter:
    api = APIRouter(tags=["ioka"])
    settings = registry.settings
    webhooks: dict[str, dict[str, Any]] = {}  # provider -> its registered webhook

    def provider(name: str, request: Request) -> AsyncProvider:
        if not registry.speaks(name, CONNECTOR_TYPE) or name not in registry.payments:
            raise SimulatorError(404, "unknown_provider", f"no ioka provider {name!r}")
        if request.headers.get("api-key") != settings.provider_secret(name):
            raise SimulatorError(401, "unauthorized", "bad API key")
        found = registry.payments[name]
        found.behaviour.admit(name)
        return found

    async def answer(work: Callable[[], Awaitable[tuple[Any, int]]]) -> Response:
        try:
            data, status = await work()
        except SimulatorError as exc:
            body = {"code": _ERRORS.get(exc.code, exc.code), "message": exc.detail}
            return JSONResponse(body, status_code=exc.status, headers=exc.headers)
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(data, status_code=status)

    def stored(found: AsyncProvider, reference: str) -> dict[str, Any]:
        return found.store.get_payment(found.name, reference) or {}

    def extra(found: AsyncProvider, reference: str) -> dict[str, Any]:
        ioka: dict[str, Any] = stored(found, reference).get("ioka") or {}
        return ioka

    def keep(found: AsyncProvider, reference: str, ioka: dict[str, Any]) -> None:
        record = stored(found, reference)
        if record:
            record["ioka"] = ioka
            found.store.put_payment(found.name, reference, record)

    def existing(found: AsyncProvider, ioka_id: str) -> Payment:
        reference = reference_of(ioka_id)
        payment = found.find(reference) if reference else None
        if payment is None:
            raise SimulatorError(404, "not_found", f"no order {ioka_id!r}")
        return payment

    def invalid(detail: str) -> SimulatorError:
        return SimulatorError(400, "bad_request", detail)

    def whole(value: object, *, least: int, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise invalid(f"{what} must be an integer of at least {least}, got {value!r}")
        return value

    def ttl(due_date: object) -> int:
        if due_date is None:
            return _DEFAULT_TTL_SECONDS
        try:
            due = datetime.fromisoformat(str(due_date))
        except ValueError as exc:
            raise invalid(f"due_date is not a date-time: {due_date!r}") from exc
        due = due if due.tzinfo else due.replace(tzinfo=UTC)
        seconds = (due - datetime.now(UTC)).total_seconds()
        if seconds <= 0:
            raise invalid("due_date is in the past")
        return min(math.ceil(seconds), 30 * 86400)

    def webhook_url(name: str) -> str:
        hook = webhooks.get(name)
        return str(hook["url"]) if hook else f"{settings.api_url}/v1/webhooks/{name}"

    @api.post("/providers/{name}/v2/orders")
    async def create_order(name: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            found = provider(name, request)
            try:
                body = json.loads(await request.body())
                reference = body["external_id"]
                if not isinstance(reference, str) or not reference:
                    raise invalid("external_id is required")
                amount = whole(body["amount"], least=1, what="amount")
                currency = body.get("currency", "KZT")
                expires = ttl(body.get("due_date"))
            except (ValueError, KeyError, TypeError) as exc:
                raise invalid(str(exc)) from exc
            if currency != "KZT":
                raise invalid(f"currency {currency!r}: KZT only")
            if body.get("capture_method", "AUTO") != "AUTO":
                raise invalid("the simulated ioka captures AUTO only")
            if found.find(reference) is not None:
                raise SimulatorError(409, "reference_reused", "an order with this external_id")
            order = PaymentRequest(
                reference=reference,
                method="aggregator",
                amount=amount,
                currency=currency,
                callback_url=webhook_url(name),
                return_url=body.get("back_url"),
                expires_in_seconds=expires,
            )
            details = {
                "created_at": ioka_time(datetime.now(UTC)),
                "description": body.get("description"),
                "back_url": body.get("back_url"),
                "refunds": [],
            }
            try:
                payment, answer_late = await found.create(order, page_base=str(request.base_url))
            finally:  # processed, whatever the answer: it is ioka's order now
                if not extra(found, reference):
                    keep(found, reference, details)
            if answer_late:
                await asyncio.sleep(found.behaviour.behaviour.timeout_seconds)
            token = f"oat_{secrets.token_hex(12)}"
            answer = {"order": ioka_order(payment, extra(found, reference))}
            return {**answer, "order_access_token": token}, 201

        return await answer(work)

    @api.get("/providers/{name}/v2/orders")
    async def find_orders(name: str, request: Request, external_id: str | None = None) -> Response:
        async def work() -> tuple[Any, int]:
            found = provider(name, request)
            await found.behaviour.delay()
            if not external_id:
                raise invalid("the simulated ioka searches by external_id only")
            payment = found.find(external_id)
            if payment is None:
                return [], 200
            return [ioka_order(payment, extra(found, external_id))], 200

        return await answer(work)

    @api.get("/providers/{name}/v2/orders/{ioka_id}")
    async def get_order(name: str, ioka_id: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            found = provider(name, request)
            await found.behaviour.delay()
            payment = existing(found, ioka_id)
            return ioka_order(payment, extra(found, payment.reference)), 200

        return await answer(work)

    @api.post("/providers/{name}/v2/orders/{ioka_id}/cancel")
    async def cancel_order(name: str, ioka_id: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            found = provider(name, request)
            payment = existing(found, ioka_id)
            if payment.status != "pending":
                status = _order_status(payment)
                raise SimulatorError(400, "OrderHasNoApprovedPayment", f"the order is {status}")
            cancelled = found.cancel(payment.reference)
            return ioka_payment(cancelled, extra(found, payment.reference)), 200

        return await answer(work)

    @api.post("/providers/{name}/v2/orders/{ioka_id}/refunds")
    async def refund_order(name: str, ioka_id: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            found = provider(name, request)
            payment = existing(found, ioka_id)
            try:
                body = json.loads(await request.body())
                amount = whole(body["amount"], least=100, what="amount")
                reason = body.get("reason")
            except (ValueError, KeyError, TypeError) as exc:
                raise invalid(str(exc)) from exc
            if payment.status != "succeeded":
                raise SimulatorError(400, "OrderUnpaid", "the order is not paid")
            ioka = extra(found, payment.reference)
            captured = payment.amount_received or payment.amount
            if _refunded(ioka) + amount > captured:
                detail = f"{_refunded(ioka)} of {captured} refunded already"
                raise SimulatorError(400, "PaymentRefundAmountExceededError", detail)
            refund = _compact(
                {
                    "id": f"rfnd_{secrets.token_hex(8)}",
                    "payment_id": payment.payment_id,
                    "order_id": order_id(payment.reference),
                    "status": "APPROVED",
                    "created_at": ioka_time(datetime.now(UTC)),
                    "amount": amount,
                    "reason": reason,
                }
            )
            ioka["refunds"] = [*ioka.get("refunds", []), refund]
            keep(found, payment.reference, ioka)
            return refund, 200

        return await answer(work)

    @api.get("/providers/{name}/v2/orders/{ioka_id}/refunds")
    async def order_refunds(name: str, ioka_id: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            found = provider(name, request)
            await found.behaviour.delay()
            payment = existing(found, ioka_id)
            return extra(found, payment.reference).get("refunds", []), 200

        return await answer(work)

    @api.post("/providers/{name}/v2/webhooks")
    async def create_webhook(name: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            provider(name, request)
            try:
                body = json.loads(await request.body())
                url = body["url"]
                events = list(body["events"])
            except (ValueError, KeyError, TypeError) as exc:
                raise invalid(str(exc)) from exc
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise invalid(f"url is not an http(s) URL: {url!r}")
            hook = {
                "id": f"wh_{secrets.token_hex(6)}",
                "url": url,
                "events": events,
                "created_at": ioka_time(datetime.now(UTC)),
                "active": True,
                "key": settings.webhook_secret(name),
            }
            webhooks[name] = hook
            return hook, 201

        return await answer(work)

    @api.get("/providers/{name}/v2/webhooks")
    async def list_webhooks(name: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            provider(name, request)
            return [webhooks[name]] if name in webhooks else [], 200

        return await answer(work)

    @api.delete("/providers/{name}/v2/webhooks/{webhook_id}")
    async def delete_webhook(name: str, webhook_id: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            provider(name, request)
            if webhooks.get(name, {}).get("id") != webhook_id:
                raise SimulatorError(404, "WebhookNotFound", f"no webhook {webhook_id!r}")
            del webhooks[name]
            return None, 204

        return await answer(work)

    return api
