"""Freedom Pay's e-wallet payments as the simulator speaks them (`providers.connectors.
freedom_pay_wallet` on the platform's side), over the common asynchronous model
(`simulator.payments.AsyncProvider`, method ewallet), so the wallet's page
(`/pay/{name}/{reference}/confirm|decline`), every behaviour knob, expiry and the admin views
apply. Forms, signatures, errors and the result callback are those of the Freedom Pay simulator
(`simulator.connectors.freedom_pay`), reused here.

Under `/providers/{name}/`, for providers of connector type `freedom_pay_wallet` only (the card
twin answers the same paths for its own): `init_payment.php` (pg_order_id, pg_amount,
pg_description, pg_payment_system, pg_user_phone: the wallet's account, pg_lifetime: 300 to
604800 seconds, default a day, pg_result_url) -> pg_payment_id and pg_redirect_url, the wallet's
page (the account `insufficient` is declined for insufficient funds when the payer confirms,
as on every simulated wallet);
`get_status.php` by pg_order_id (or a pg_payment_id answered before): pending, ok (refunded
once refunded in full), failed, incomplete (the lifetime ran out), revoked (cancelled);
`cancel.php` (an unpaid payment; else error 490); `revoke.php` (refunds of a paid payment,
partial or full, kept with the payment in the store). Errors as the card twin's: 100 wrong
signature, 9998 unknown merchant, 200 bad or missing parameter, 340 not found, 490 cannot
cancel / refund; the behaviour's own failures keep their HTTP status with an XML body.

The result callback is the card twin's signed form (`encode_callback`), without card fields,
signed for the script of the order's `pg_result_url` (kept in memory: after a restart of the
simulator, the script `result`).
"""

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from simulator.connectors import freedom_pay
from simulator.connectors.freedom_pay import (
    Work,
    find_named,
    merchant_of,
    minor_amount,
    only_for,
    payment_id,
    refund_amount,
    remember_order,
    required,
    serve_form,
    status_fields,
)
from simulator.faults import SimulatorError
from simulator.payments import AsyncProvider, Payment, PaymentRequest

if TYPE_CHECKING:
    from simulator.app import Registry

CONNECTOR_TYPE = "freedom_pay_wallet"

# The card twin's signed result form (no card fields for a wallet's order), signed for the
# script of the order's result URL (`remember_order`).
encode_callback = freedom_pay.encode_callback

DEFAULT_LIFETIME_SECONDS = 86_400

# The model's statuses in Freedom Pay's (get_status.php).
_STATUSES = {
    "pending": "pending",
    "succeeded": "ok",
    "declined": "failed",
    "expired": "incomplete",
    "cancelled": "revoked",
}


def _lifetime(fields: Mapping[str, str]) -> int:
    text = fields.get("pg_lifetime") or str(DEFAULT_LIFETIME_SECONDS)
    if not (text.isascii() and text.isdigit() and 300 <= int(text) <= 604_800):
        raise SimulatorError(400, "bad_request", "pg_lifetime: 300 to 604800 seconds")
    return int(text)


def router(registry: "Registry") -> APIRouter:
    api = APIRouter(tags=["freedom pay wallet"], route_class=only_for(registry, CONNECTOR_TYPE))
    settings = registry.settings
    by_payment_id: dict[str, str] = {}  # pg_payment_id -> pg_order_id, as answered

    def wallet(name: str) -> AsyncProvider:
        if not registry.speaks(name, CONNECTOR_TYPE) or name not in registry.payments:
            raise SimulatorError(404, "unknown_provider", f"no Freedom Pay wallet {name!r}")
        return registry.payments[name]

    def refunded(found: AsyncProvider, reference: str) -> int:
        return int((found.store.get_payment(found.name, reference) or {}).get("refunded", 0))

    def described(found: AsyncProvider, payment: Payment) -> dict[str, str]:
        """get_status.php's answer about the payment."""
        pid = payment_id(payment.payment_id)
        by_payment_id[pid] = payment.reference
        return status_fields(
            pid=pid,
            reference=payment.reference,
            amount=payment.amount,
            currency=payment.currency,
            status=_STATUSES[payment.status],
            refunded=refunded(found, payment.reference),
            failure_code=payment.decline_code,
            redirect_url=payment.action.get("url"),
        )

    def find(found: AsyncProvider, fields: Mapping[str, str]) -> Payment:
        return find_named(fields, by_payment_id, found.find, lambda p: p.payment_id)

    async def serve(request: Request, name: str, script: str, work: Work) -> Response:
        found = wallet(name)
        return await serve_form(
            request,
            script=script,
            secret=settings.provider_secret(name),
            merchant=merchant_of(settings, name),
            guard=found.behaviour,
            label=name,
            work=work,
        )

    @api.post("/providers/{name}/init_payment.php")
    async def init_payment(name: str, request: Request) -> Response:
        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(
                fields,
                "pg_order_id",
                "pg_amount",
                "pg_description",
                "pg_payment_system",
                "pg_user_phone",
            )
            found = wallet(name)
            try:
                order = PaymentRequest(
                    reference=fields["pg_order_id"],
                    method="ewallet",
                    amount=minor_amount(fields["pg_amount"]),
                    currency=fields.get("pg_currency") or "KZT",
                    account=fields["pg_user_phone"],
                    callback_url=fields.get("pg_result_url") or None,
                    expires_in_seconds=_lifetime(fields),
                )
            except ValidationError as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            remember_order(order.reference, None, order.callback_url)
            payment, answer_late = await found.create(order, page_base=str(request.base_url))
            if answer_late:
                await asyncio.sleep(found.behaviour.behaviour.timeout_seconds)
            pid = payment_id(payment.payment_id)
            by_payment_id[pid] = payment.reference
            return {
                "pg_payment_id": pid,
                "pg_redirect_url": str(payment.action.get("url", "")),
                "pg_redirect_url_type": "need data",
            }

        return await serve(request, name, "init_payment.php", work)

    @api.post("/providers/{name}/get_status.php")
    async def get_status(name: str, request: Request) -> Response:
        async def work(fields: dict[str, str]) -> dict[str, str]:
            found = wallet(name)
            await found.behaviour.delay()
            return described(found, find(found, fields))

        return await serve(request, name, "get_status.php", work)

    @api.post("/providers/{name}/cancel.php")
    async def cancel(name: str, request: Request) -> Response:
        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_payment_id")
            found = wallet(name)
            payment = find(found, fields)
            if payment.status != "pending":
                raise SimulatorError(400, "cannot_revoke", f"payment is {payment.status}")
            found.cancel(payment.reference)
            return {}

        return await serve(request, name, "cancel.php", work)

    @api.post("/providers/{name}/revoke.php")
    async def revoke(name: str, request: Request) -> Response:
        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_payment_id")
            found = wallet(name)
            payment = find(found, fields)
            before = refunded(found, payment.reference)
            asked = refund_amount(
                fields,
                paid=payment.status == "succeeded",
                amount=payment.amount,
                refunded=before,
            )
            stored = found.store.get_payment(found.name, payment.reference) or {}
            found.store.put_payment(
                found.name, payment.reference, {**stored, "refunded": before + asked}
            )
            return {}

        return await serve(request, name, "revoke.php", work)

    return api
