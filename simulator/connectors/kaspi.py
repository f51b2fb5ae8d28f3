"""Kaspi QR / Kaspi Pay as the simulator speaks it (`providers.connectors.kaspi` on the platform's
side), over the common asynchronous model (`simulator.payments.AsyncProvider`), so the player
pages (`/pay/{name}/{reference}/confirm|decline`), behaviour knobs, expiry and admin views apply.

Under `/providers/{name}/` for providers of connector type `kaspi`: `qr/create`,
`qr/create-link`, `remote/create`, `payment/status/{QrPaymentId}`, the lookup by our reference
`payment/status?ExternalId=` (an assumption, see the connector), `payment/details`,
`payment/return`, `remote/cancel`, and Kaspi's test emulator `test/payment/scan|confirm|
scanerror|confirmerror` {QrPaymentId} (confirm also takes ProductType, LoanOfferName, LoanTerm:
how the customer funded it). Key in `Api-Key`; DeviceToken and OrganizationBin as the connector
configures them (else the development defaults).

Answers are `{StatusCode, Data, Message}`. Kaspi's errors are StatusCodes in an HTTP 200: -1501
(device), -99000002 (BIN of no trade point here), -1601 (no such purchase, or one not paid for
`payment/details`), -99000005 (return above what is left), -99000011 (return of an unpaid
payment), 990000028 (wrong amount), 990000026 (a QR at a remote-only trade point), 990000033
(a remote payment at a QR-only one), -999 (service unavailable: the behaviour's `fail_next` /
`error_rate`). The gateway's own failures keep their HTTP status: 400 malformed, 401 key,
409 ExternalId reused for another amount, 429 throttled, 503 outage (with StatusCode -999), and
5xx after processing without any StatusCode (processed: the outcome is unknown). No callbacks.

Statuses: pending QrTokenCreated (QR) or RemotePaymentCreated (remote), Wait once scanned;
Processed; Error (declined: by the customer, or a phone ending in 0000 with no Kaspi account,
declined at once); Expired; RemotePaymentCanceled. Returns are kept here, beside the payment.
"""

import asyncio
import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from providers.amounts import InvalidAmount
from providers.connectors.kaspi import (
    CURRENCY,
    device_token,
    from_tenge,
    national_phone,
    organization_bin,
    to_tenge,
)
from simulator.faults import SimulatorError
from simulator.payments import AsyncProvider, PayerAction, Payment, PaymentRequest

if TYPE_CHECKING:
    from simulator.app import Registry

CONNECTOR_TYPE = "kaspi"
CALLBACKS = False

LIFETIME_SECONDS = 900  # how long a QR or a payment request stays open
PAYMENT_METHODS = ["Gold", "Red", "Loan"]

DEVICE_NOT_FOUND = -1501
PURCHASE_NOT_FOUND = -1601
TRADE_POINT_NOT_FOUND = -99000002
RETURN_EXCEEDS_PURCHASE = -99000005
WRONG_PURCHASE_STATUS = -99000011
TRADE_POINT_REFUSES_QR = 990000026
WRONG_AMOUNT = 990000028
NO_PAYMENT_METHODS = 990000033
UNAVAILABLE = -999

_STATUSES = {
    "succeeded": "Processed",
    "declined": "Error",
    "expired": "Expired",
    "cancelled": "RemotePaymentCanceled",
}


def kaspi_error(code: int, message: str) -> SimulatorError:
    """One of Kaspi's StatusCodes, answered inside an HTTP 200."""
    return SimulatorError(200, str(code), message)


def qr_payment_id(payment: Payment) -> int:
    """Kaspi's integer id, fixed by the payment's own id (60 bits)."""
    return int(payment.payment_id.removeprefix("pay_")[:15], 16)


def _render(exc: SimulatorError) -> JSONResponse:
    if exc.status == 200:
        body: dict[str, Any] = {"StatusCode": int(exc.code), "Message": exc.detail}
    elif exc.code in ("outage", "temporarily_unavailable"):
        body = {"StatusCode": UNAVAILABLE, "Message": exc.detail}
        if exc.code == "temporarily_unavailable":  # Kaspi's "try later": nothing was processed
            return JSONResponse(body, status_code=200)
    else:
        body = {"Message": exc.detail}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"StatusCode": 0, "Data": data, "Message": None})


def router(registry: "Registry") -> APIRouter:
    api = APIRouter(tags=["kaspi"])
    settings = registry.settings
    store = registry.store

    def provider(name: str, request: Request, *, admit: bool = True) -> AsyncProvider:
        if not registry.speaks(name, CONNECTOR_TYPE) or name not in registry.payments:
            raise SimulatorError(404, "unknown_provider", f"no kaspi provider {name!r}")
        if request.headers.get("api-key") != settings.provider_secret(name):
            raise SimulatorError(401, "unauthorized", "bad Api-Key")
        found = registry.payments[name]
        if admit:
            found.behaviour.admit(name)
        return found

    def device(name: str, token: object) -> None:
        if token != device_token(settings.connector(name), name):
            raise kaspi_error(DEVICE_NOT_FOUND, "Device with this identifier not found")

    def merchant(name: str, body: dict[str, Any]) -> None:
        device(name, body.get("DeviceToken"))
        if body.get("OrganizationBin") != organization_bin(settings.connector(name)):
            raise kaspi_error(TRADE_POINT_NOT_FOUND, "Trade point not found")

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body(), parse_float=Decimal)
        except ValueError as exc:
            raise SimulatorError(400, "bad_request", "not JSON") from exc
        if not isinstance(body, dict):
            raise SimulatorError(400, "bad_request", "not a JSON object")
        return body

    def amount_of(value: object) -> int:
        try:
            minor = from_tenge(value)
        except InvalidAmount as exc:
            raise kaspi_error(WRONG_AMOUNT, f"Wrong operation amount: {exc}") from exc
        if minor <= 0:
            raise kaspi_error(WRONG_AMOUNT, "Wrong operation amount")
        return minor

    # -- what Kaspi keeps beside a payment --------------------------------------------------

    def stored(found: AsyncProvider, reference: str) -> dict[str, Any]:
        return store.get_payment(found.name, reference) or {}

    def extras(found: AsyncProvider, reference: str) -> dict[str, Any]:
        kept: dict[str, Any] = stored(found, reference).get("kaspi") or {}
        return kept

    def keep(found: AsyncProvider, reference: str, **changes: Any) -> None:
        record = stored(found, reference)
        if "payment" not in record:
            return
        record["kaspi"] = {**(record.get("kaspi") or {}), **changes}
        store.put_payment(found.name, reference, record)

    def index(found: AsyncProvider, payment: Payment) -> int:
        """QrPaymentId -> our reference, kept in the store's vault (persistent, like the
        payment): Kaspi's ids are looked up by the cancel, details, return and test calls."""
        qr_id = qr_payment_id(payment)
        store.put_token(f"{found.name}:kaspi-id", str(qr_id), {"reference": payment.reference})
        return qr_id

    def by_id(found: AsyncProvider, value: object) -> Payment:
        reference = None
        if isinstance(value, int | str) and not isinstance(value, bool):
            held = store.get_token(f"{found.name}:kaspi-id", str(value))
            reference = held.get("reference") if held else None
        payment = found.find(reference) if reference else None
        if payment is None:
            raise kaspi_error(PURCHASE_NOT_FOUND, "Purchase not found")
        return payment

    def status(found: AsyncProvider, payment: Payment) -> str:
        if payment.status == "pending":
            if extras(found, payment.reference).get("scanned"):
                return "Wait"
            return "QrTokenCreated" if payment.method == "qr" else "RemotePaymentCreated"
        return _STATUSES[payment.status]

    def funding(found: AsyncProvider, payment: Payment) -> dict[str, Any]:
        if payment.status != "succeeded":
            return {}
        kept = extras(found, payment.reference)
        if "paid_at" not in kept:  # first seen paid (the payer pages know nothing of Kaspi)
            kept = {**kept, "paid_at": datetime.now(UTC).isoformat()}
            keep(found, payment.reference, paid_at=kept["paid_at"])
        product = kept.get("product") or {"ProductType": "Gold"}
        return {
            "ProductType": product.get("ProductType"),
            "LoanOfferName": product.get("LoanOfferName"),
            "LoanTerm": product.get("LoanTerm"),
            "TransactionDate": kept["paid_at"],
        }

    def returned(found: AsyncProvider, payment: Payment) -> int:
        return sum(int(r["amount"]) for r in extras(found, payment.reference).get("returns", []))

    def described(found: AsyncProvider, payment: Payment) -> dict[str, Any]:
        """The lookup's answer: the payment as Kaspi holds it."""
        data: dict[str, Any] = {
            "QrPaymentId": index(found, payment),
            "ExternalId": payment.reference,
            "Status": status(found, payment),
            "Amount": to_tenge(payment.amount),
            "ExpireDate": payment.expires_at.isoformat(),
            **funding(found, payment),
        }
        if payment.method == "qr":
            key = "PaymentLink" if extras(found, payment.reference).get("link") else "QrToken"
            data[key] = payment.action.get("payload")
        return data

    async def create(
        found: AsyncProvider, request: Request, *, method: str, link: bool = False
    ) -> Payment:
        body = await json_body(request)
        merchant(found.name, body)
        reference = body.get("ExternalId")
        if not isinstance(reference, str) or not reference or len(reference) > 64:
            raise SimulatorError(400, "bad_request", "ExternalId required (1-64 characters)")
        phone = None
        if method == "mobile_banking":
            try:
                phone = "+7" + national_phone("+7" + str(body.get("PhoneNumber")))
            except ValueError as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
        if found.method != method:
            if method == "qr":
                raise kaspi_error(TRADE_POINT_REFUSES_QR, "Trade point takes no QR payments")
            raise kaspi_error(NO_PAYMENT_METHODS, "No payment methods available")
        order = PaymentRequest(
            reference=reference,
            method=found.method,
            amount=amount_of(body.get("Amount")),
            currency=CURRENCY,
            phone=phone,
            expires_in_seconds=LIFETIME_SECONDS,
        )
        try:
            payment, answer_late = await found.create(order, page_base=str(request.base_url))
        finally:  # processed, even when answered with an error after that (or not at all)
            if "kaspi" not in stored(found, reference) and found.find(reference) is not None:
                keep(found, reference, link=link, returns=[])
        index(found, payment)
        if answer_late:
            await asyncio.sleep(found.behaviour.behaviour.timeout_seconds)
        return payment

    def remaining(payment: Payment) -> int:
        return max(0, int((payment.expires_at - datetime.now(UTC)).total_seconds()))

    async def answer(work: Any) -> JSONResponse:
        try:
            result: JSONResponse = await work()
        except SimulatorError as exc:
            return _render(exc)
        return result

    # -- payments ----------------------------------------------------------------------------

    @api.post("/providers/{name}/qr/create")
    async def qr_create(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            payment = await create(found, request, method="qr")
            return _ok(
                {
                    "QrToken": payment.action.get("payload"),
                    "ExpireDate": payment.expires_at.isoformat(),
                    "QrPaymentId": qr_payment_id(payment),
                    "PaymentMethods": PAYMENT_METHODS,
                    "QrPaymentBehaviorOptions": {
                        "StatusPollingInterval": 5,
                        "QrCodeScanWaitTimeout": remaining(payment),
                        "PaymentConfirmationTimeout": 65,
                    },
                }
            )

        return await answer(work)

    @api.post("/providers/{name}/qr/create-link")
    async def qr_create_link(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            payment = await create(found, request, method="qr", link=True)
            return _ok(
                {
                    "PaymentLink": payment.action.get("payload"),
                    "ExpireDate": payment.expires_at.isoformat(),
                    "PaymentId": qr_payment_id(payment),
                    "PaymentMethods": PAYMENT_METHODS,
                    "PaymentBehaviorOptions": {
                        "StatusPollingInterval": 5,
                        "LinkActivationWaitTimeout": remaining(payment),
                        "PaymentConfirmationTimeout": 65,
                    },
                }
            )

        return await answer(work)

    @api.post("/providers/{name}/remote/create")
    async def remote_create(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            payment = await create(found, request, method="mobile_banking")
            return _ok(
                {
                    "QrPaymentId": qr_payment_id(payment),
                    "Status": status(found, payment),
                    "ExpireDate": payment.expires_at.isoformat(),
                }
            )

        return await answer(work)

    @api.get("/providers/{name}/payment/status")
    async def status_by_external_id(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            device(name, request.query_params.get("DeviceToken"))
            await found.behaviour.delay()
            payment = found.find(request.query_params.get("ExternalId", ""))
            if payment is None:
                raise kaspi_error(PURCHASE_NOT_FOUND, "Purchase not found")
            return _ok(described(found, payment))

        return await answer(work)

    @api.get("/providers/{name}/payment/status/{qr_payment_id}")
    async def status_by_id(name: str, qr_payment_id: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            await found.behaviour.delay()
            return _ok(described(found, by_id(found, qr_payment_id)))

        return await answer(work)

    @api.get("/providers/{name}/payment/details")
    async def details(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            device(name, request.query_params.get("DeviceToken"))
            await found.behaviour.delay()
            payment = by_id(found, request.query_params.get("QrPaymentId"))
            if payment.status != "succeeded":
                raise kaspi_error(PURCHASE_NOT_FOUND, "Purchase not found")
            paid = payment.amount_received or payment.amount
            return _ok(
                {
                    "QrPaymentId": qr_payment_id(payment),
                    "TotalAmount": to_tenge(paid),
                    "AvailableReturnAmount": to_tenge(paid - returned(found, payment)),
                    **funding(found, payment),
                }
            )

        return await answer(work)

    @api.post("/providers/{name}/remote/cancel")
    async def remote_cancel(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            body = await json_body(request)
            merchant(name, body)
            payment = found.cancel(by_id(found, body.get("QrPaymentId")).reference)
            return _ok({"Status": status(found, payment)})

        return await answer(work)

    @api.post("/providers/{name}/payment/return")
    async def payment_return(name: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request)
            body = await json_body(request)
            merchant(name, body)
            payment = by_id(found, body.get("QrPaymentId"))
            amount = amount_of(body.get("Amount"))
            if payment.status != "succeeded":
                raise kaspi_error(
                    WRONG_PURCHASE_STATUS,
                    "The purchase cannot be returned (wrong purchase status)",
                )
            paid = payment.amount_received or payment.amount
            if returned(found, payment) + amount > paid:
                raise kaspi_error(RETURN_EXCEEDS_PURCHASE, "The return cannot exceed the purchase")
            operation = secrets.randbelow(10**11) + 10**10
            returns = extras(found, payment.reference).get("returns", [])
            keep(
                found,
                payment.reference,
                returns=[*returns, {"id": operation, "amount": amount}],
            )
            return _ok({"ReturnOperationId": operation})

        return await answer(work)

    # -- Kaspi's test emulator: what the customer does in the app ---------------------------

    @api.post("/providers/{name}/test/payment/{step}")
    async def emulate(name: str, step: str, request: Request) -> JSONResponse:
        async def work() -> JSONResponse:
            found = provider(name, request, admit=False)
            body = await json_body(request)
            payment = by_id(found, body.get("QrPaymentId") or body.get("qrPaymentId"))
            if step == "scan":
                if payment.status != "pending":
                    raise kaspi_error(WRONG_PURCHASE_STATUS, f"payment is {payment.status}")
                keep(found, payment.reference, scanned=True)
            elif step == "confirm":
                product = {
                    key: body.get(key)
                    for key in ("ProductType", "LoanOfferName", "LoanTerm")
                    if body.get(key) is not None
                }
                keep(found, payment.reference, product=product or None)
                payment = found.act(payment.reference, pay=True, action=PayerAction())
            elif step in ("scanerror", "confirmerror"):
                payment = found.act(payment.reference, pay=False, action=PayerAction())
            else:
                raise SimulatorError(404, "not_found", f"no test step {step!r}")
            return _ok({"Status": status(found, payment)})

        return await answer(work)

    return api
