"""CloudPayments KZ as the simulator speaks it (`providers.connectors.cloudpayments` on the
platform's side), over the common card model (`simulator.cards.CardProvider`: test cards,
3-D Secure page, behaviour knobs, admin views) and the provider's payout desk
(`simulator.payouts.PayoutDesk`, opened the way the payout router opens it, so
`PUT /admin/payouts/{name}/behaviour` steers it).

Under `/providers/{name}/` for providers of connector type `cloudpayments`, every call a `POST`
of JSON with HTTP Basic `public id : API secret` (the public id is the connector's `merchant_id`,
else the provider's name; the secret its provider secret), answered `{Success, Message, Model}`:

- `payments/cards/tokenize` {CardNumber, CardExpDate: "MM/YY", CardCvv, Name} -> Model {Token,
  CardFirstSix, CardLastFour, CardType, CardExpDate, IssuerBankCountry} (an assumption of the
  connector: CloudPayments takes card data only as a cryptogram)
- `payments/tokens/charge` {Amount, Currency, AccountId, Token, InvoiceId, TrInitiatorCode} ->
  a transaction (Completed: Success true; Declined with Reason and ReasonCode: Success false), or
  for 4000000000003220 the 3-D Secure request: Success false, Model {TransactionId, PaReq,
  AcsUrl}. AcsUrl is the simulator's 3-D Secure page `/pay/{name}/{reference}`: POSTed PaReq,
  MD and TermUrl as a browser does, it is the issuer's ACS, whose buttons post PaRes and MD to
  TermUrl (the platform then calls `post3ds`); its GET page and `/confirm` stand for the ACS,
  TermUrl and `post3ds` at once (passing or failing it there settles the payment).
- `payments/cards/post3ds` {TransactionId, PaRes}: the simulator's ACS answers a passed challenge
  with PaRes = base64 of `{TransactionId}:Y` (`pa_res`); any other PaRes fails authentication
  (Declined, 5206). A payment already settled on the page is answered as it is.
- `payments/find` {InvoiceId}: the charge, else the payout under that reference; else Success
  false, Message `Not found`
- `payments/void` {TransactionId}: a payment awaiting 3-D Secure is Cancelled; `payments/refund`
  {TransactionId, Amount}: partial refunds up to the amount paid, each new X-Request-ID a new
  refund, the same one answered again as the first time
- `payments/token/topup` {Token, Amount, AccountId, Currency, InvoiceId}: a payout to a token of
  this provider, `OperationType: CardPayout` (a card ending 0002 is Declined 5057; a payout still
  processing, `payout_processing_seconds`, shows as Authorized)

Errors: Success false with a Message and no Model, in an HTTP 200, for validation (`... is
required`, `Invalid ... value`), unknown ids (`Not found`, `Token not found`); the gateway's own
failures keep their HTTP status with `{Success: false, Message}`: 401 credentials, 429 throttled
(Retry-After), 503 down or failing, 409 InvoiceId reused for another amount (the common model
keeps one charge per reference), 5xx after processing. Amounts are JSON numbers of tenge, read
from their literal digits (more than two decimals: `Invalid Amount value`).

Notifications (`encode_callback`) are JSON, `X-Content-HMAC` (and `Content-HMAC`) base64
HMAC-SHA256 of the body with the webhook secret: Pay (Completed, with GatewayName and TotalFee),
Fail (Reason, ReasonCode), Cancel (no Status), Refund (`OperationType: Refund`), and Check (a
payment not settled yet). They go to the back office's notification URL, which here is
`{api_url}/v1/webhooks/{name}` of the simulator's settings (CloudPayments takes no callback URL
per payment).

CloudPayments' TransactionIds are integers: a charge's or payout's is read from its id here
(`transaction_id`); which reference each one belongs to, and the refunds, are kept in the
simulator's store (its token vault, under keys no card token takes), so they survive a restart.
"""

import asyncio
import base64
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError

from providers.amounts import InvalidAmount
from providers.connectors.cloudpayments import (
    ACCOUNT_ID,
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    decode_amount,
    encode_amount,
    sign,
)
from simulator.cards import CardProvider, Charge, ChargeRequest, TokenizeRequest
from simulator.faults import SimulatorError
from simulator.payouts import Payout, PayoutDesk, PayoutRequest

if TYPE_CHECKING:
    from simulator.app import Registry

CONNECTOR_TYPE = "cloudpayments"

STATUSES = {
    "requires_action": "AwaitingAuthentication",
    "succeeded": "Completed",
    "cancelled": "Cancelled",
    "declined": "Declined",
}
STATUS_CODES = {
    "AwaitingAuthentication": 1,
    "Authorized": 2,
    "Completed": 3,
    "Cancelled": 4,
    "Declined": 5,
}
# Our decline and failure codes -> CloudPayments' (ReasonCode, Reason).
REASONS = {
    "insufficient_funds": (5051, "InsufficientFunds"),
    "expired_card": (5054, "ExpiredCard"),
    "do_not_honor": (5005, "DoNotHonor"),
    "authentication_failed": (5206, "AuthenticationFailed"),
    "card_not_eligible": (5057, "TransactionNotPermitted"),
    "declined_by_bank": (5005, "DoNotHonor"),
}
OTHER_REASON = (5204, "UnableToProcess")
CARD_TYPES = {"visa": "Visa", "mastercard": "MasterCard", "unionpay": "UnionPay"}
# A refusal of the request itself, answered in an HTTP 200 (everything else keeps its status).
REFUSALS = {
    "not_found": "Not found",
    "unknown_token": "Token not found",
    "invalid_card_number": "Invalid card number",
}


def transaction_id(provider_id: str) -> int:
    """The integer TransactionId of a simulated charge, payout or refund (`ch_`/`po_`/`rf_` and
    hex): its first 12 hex digits, so that it stays a safe integer everywhere."""
    return int(provider_id.split("_")[-1][:12], 16)


def pa_res(transaction: int, *, passed: bool = True) -> str:
    """The PaRes the simulator's ACS gives for a challenge passed (or not)."""
    return base64.b64encode(f"{transaction}:{'Y' if passed else 'N'}".encode()).decode()


def _reason(code: str | None) -> tuple[int, str]:
    if code is None:
        return 0, "Approved"
    return REASONS.get(code, OTHER_REASON)


def _date_time(iso: str | None) -> str:
    moment = datetime.fromisoformat(iso) if iso else datetime.now(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def refusal(message: str) -> SimulatorError:
    """Success false with this Message and no Model, in an HTTP 200."""
    return SimulatorError(200, "refused", message)


def encode_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A CloudPayments notification of the event, as JSON, signed over the raw body."""
    status = event["status"]
    amount = encode_amount(int(event["amount"]))
    common = {
        "TransactionId": transaction_id(str(event["provider_payment_id"])),
        "Amount": amount,
        "Currency": event["currency"],
        "DateTime": _date_time(event.get("sent_at")),
        "InvoiceId": event["reference"],
        "AccountId": ACCOUNT_ID,
    }
    payment = {**common, "TestMode": True, "OperationType": "Payment"}
    if status == "succeeded":  # Pay
        data: dict[str, Any] = {
            **payment,
            "PaymentAmount": amount,
            "PaymentCurrency": event["currency"],
            "Status": "Completed",
            "GatewayName": "Simulator",
            "TotalFee": 0,
        }
    elif status == "declined":  # Fail
        code, name = _reason(event.get("decline_code"))
        data = {**payment, "Reason": name, "ReasonCode": code}
    elif status == "cancelled":  # Cancel
        data = common
    elif status == "refunded":  # Refund
        data = {
            **common,
            "PaymentTransactionId": event["payment_transaction_id"],
            "OperationType": "Refund",
        }
    else:  # Check: a payment about to be made (or a stale, out-of-order repeat)
        data = {**payment, "Status": "Completed"}
    body = json.dumps(data).encode()
    signature = sign(secret, body)
    return body, {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature,
        "Content-HMAC": signature,
    }


def router(registry: "Registry") -> APIRouter:
    api = APIRouter(tags=["CloudPayments (simulated)"])
    settings = registry.settings
    store = registry.store

    def authenticated(name: str, request: Request) -> None:
        if not registry.speaks(name, CONNECTOR_TYPE) or name not in registry.cards:
            raise SimulatorError(404, "unknown_provider", f"no cloudpayments provider {name!r}")
        public_id = settings.connector(name).merchant_id or name
        expected = f"{public_id}:{settings.provider_secret(name)}"
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            given = ""
        if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
            raise SimulatorError(401, "unauthorized", "Unauthorized")

    def acquirer(name: str, request: Request) -> CardProvider:
        authenticated(name, request)
        card = registry.cards[name]
        card.behaviour.admit(name)
        return card

    def desk(name: str) -> PayoutDesk:
        if name not in registry.payouts:
            registry.payouts[name] = PayoutDesk(name, store)
        return registry.payouts[name]

    async def answer(work: Callable[[], Awaitable[tuple[Any, int]]]) -> JSONResponse:
        try:
            data, status = await work()
        except SimulatorError as exc:
            message = REFUSALS.get(exc.code)
            if message is not None or exc.status == 200:
                refused = {"Success": False, "Message": message or exc.detail, "Model": None}
                return JSONResponse(refused)
            failed = {"Success": False, "Message": exc.detail}
            return JSONResponse(failed, status_code=exc.status, headers=exc.headers)
        return JSONResponse(data, status_code=status)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body(), parse_float=str)
        except ValueError as exc:
            raise refusal("Invalid request") from exc
        if not isinstance(body, dict):
            raise refusal("Invalid request")
        return body

    def required(body: dict[str, Any], field: str) -> Any:
        value = body.get(field)
        if value is None or value == "":
            raise refusal(f"{field} is required")
        return value

    def amount_of(body: dict[str, Any]) -> int:
        try:
            amount = decode_amount(required(body, "Amount"))
        except InvalidAmount as exc:
            raise refusal("Invalid Amount value") from exc
        if amount <= 0:
            raise refusal("Invalid Amount value")
        return amount

    # -- where each TransactionId belongs, and the refunds (kept in the store's vault) ---------

    def remember(name: str, kind: str, provider_id: str, reference: str) -> int:
        number = transaction_id(provider_id)
        key = f"cloudpayments-transaction:{number}"
        if store.get_token(name, key) is None:
            store.put_token(name, key, {"kind": kind, "reference": reference})
        return number

    def charge_of(name: str, card: CardProvider, body: dict[str, Any]) -> Charge:
        number = required(body, "TransactionId")
        held = store.get_token(name, f"cloudpayments-transaction:{number}")
        found = card.find_charge(held["reference"]) if held and held["kind"] == "charge" else None
        if found is None:
            raise SimulatorError(404, "not_found", f"no transaction {number}")
        return found

    def refunds_key(reference: str) -> str:
        return f"cloudpayments-refunds:{reference}"

    def refunds_of(name: str, reference: str) -> list[dict[str, Any]]:
        kept = store.get_token(name, refunds_key(reference))
        return list(kept["refunds"]) if kept else []

    # -- answers -------------------------------------------------------------------------------

    def transaction(name: str, charge: Charge) -> dict[str, Any]:
        status = STATUSES[charge.status]
        code, reason = _reason(charge.decline_code if charge.status == "declined" else None)
        return {
            "TransactionId": remember(name, "charge", charge.charge_id, charge.reference),
            "Amount": encode_amount(charge.amount),
            "Currency": charge.currency,
            "InvoiceId": charge.reference,
            "AccountId": ACCOUNT_ID,
            "TestMode": True,
            "OperationType": "Payment",
            "Status": status,
            "StatusCode": STATUS_CODES[status],
            "Reason": reason,
            "ReasonCode": code,
        }

    def payment_answer(name: str, charge: Charge) -> dict[str, Any]:
        if charge.status == "requires_action":
            number = remember(name, "charge", charge.charge_id, charge.reference)
            challenge = {
                "TransactionId": number,
                "PaReq": base64.b64encode(f"{number}:{charge.reference}".encode()).decode(),
                "AcsUrl": charge.action_url,
            }
            return {"Success": False, "Message": None, "Model": challenge}
        model = transaction(name, charge)
        return {"Success": charge.status == "succeeded", "Message": None, "Model": model}

    def payout_answer(name: str, payout: Payout) -> dict[str, Any]:
        if payout.status == "failed" and payout.failure_code == "cancelled":
            status = "Cancelled"
        else:
            status = {"paid": "Completed", "failed": "Declined", "processing": "Authorized"}[
                payout.status
            ]
        code, reason = _reason(payout.failure_code if status == "Declined" else None)
        model = {
            "TransactionId": remember(name, "payout", payout.payout_id, payout.reference),
            "Amount": encode_amount(payout.amount),
            "Currency": payout.currency,
            "InvoiceId": payout.reference,
            "AccountId": ACCOUNT_ID,
            "TestMode": True,
            "OperationType": "CardPayout",
            "Status": status,
            "StatusCode": STATUS_CODES[status],
            "Reason": reason,
            "ReasonCode": code,
        }
        return {"Success": status != "Declined", "Message": None, "Model": model}

    # -- endpoints -----------------------------------------------------------------------------

    prefix = "/providers/{name}/payments"

    @api.post(prefix + "/cards/tokenize")
    async def tokenize(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request)
            body = await body_of(request)
            expiry = str(required(body, "CardExpDate"))
            try:
                month, year = expiry.split("/", 1)
                asked = TokenizeRequest(
                    number=str(required(body, "CardNumber")),
                    exp_month=int(month),
                    exp_year=2000 + int(year),
                    cvc=str(required(body, "CardCvv")),
                    holder=body.get("Name"),
                )
            except (ValueError, ValidationError) as exc:
                raise refusal("Invalid card data") from exc
            token = card.tokenize(asked)
            model = {
                "Token": token.token,
                "CardFirstSix": token.bin,
                "CardLastFour": token.last4,
                "CardType": CARD_TYPES.get(token.scheme, token.scheme.title()),
                "CardExpDate": f"{asked.exp_month:02d}/{asked.exp_year % 100:02d}",
                "IssuerBankCountry": token.issuer_country,
            }
            return {"Success": True, "Message": None, "Model": model}, 200

        return await answer(work)

    @api.post(prefix + "/tokens/charge")
    async def charge(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request)
            body = await body_of(request)
            required(body, "AccountId")
            required(body, "TrInitiatorCode")
            try:
                order = ChargeRequest(
                    reference=str(required(body, "InvoiceId")),
                    token=str(required(body, "Token")),
                    amount=amount_of(body),
                    currency=str(body.get("Currency") or "RUB"),
                    callback_url=f"{settings.api_url}/v1/webhooks/{name}",
                )
            except ValidationError as exc:
                raise refusal("Invalid request") from exc
            made, answer_late = await card.charge(order, page_base=str(request.base_url))
            if answer_late:
                await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
            return payment_answer(name, made), 200

        return await answer(work)

    @api.post("/pay/{name}/{reference}", response_model=None)
    async def acs(name: str, reference: str, request: Request) -> HTMLResponse | JSONResponse:
        """The issuer's ACS as a browser reaches it: PaReq, MD and TermUrl POSTed as a form. Its
        buttons post PaRes (passed or failed) and MD to TermUrl; JSON clients get both forms."""
        if not registry.speaks(name, CONNECTOR_TYPE) or name not in registry.cards:
            raise SimulatorError(404, "unknown_provider", f"no cloudpayments provider {name!r}")
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        charge = registry.cards[name].find_charge(reference)
        md, term_url = form.get("MD", ""), form.get("TermUrl", "")
        if charge is None or charge.status != "requires_action" or not md.isdigit():
            raise SimulatorError(404, "not_found", f"no challenge for {reference!r}")
        expected = base64.b64encode(f"{md}:{reference}".encode()).decode()
        if transaction_id(charge.charge_id) != int(md) or form.get("PaReq") != expected:
            raise SimulatorError(400, "bad_request", "PaReq and MD are not this challenge's")
        if not term_url.startswith(("http://", "https://")):
            raise SimulatorError(400, "bad_request", "TermUrl is required")
        results = {
            outcome: {"PaRes": pa_res(int(md), passed=outcome == "pass"), "MD": md}
            for outcome in ("pass", "fail")
        }
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"term_url": term_url, **results})
        buttons = "".join(
            f"<form method='post' action='{escape(term_url)}'>"
            + "".join(
                f"<input type='hidden' name='{k}' value='{escape(v)}'>" for k, v in fields.items()
            )
            + f"<button>{'Pass' if outcome == 'pass' else 'Fail'} the challenge</button></form>"
            for outcome, fields in results.items()
        )
        return HTMLResponse(
            "<!doctype html><html><head><title>3-D Secure</title></head><body>"
            f"<h1>3-D Secure (simulated ACS)</h1><p>{escape(reference)}</p>{buttons}</body></html>"
        )

    @api.post(prefix + "/cards/post3ds")
    async def post3ds(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request)
            body = await body_of(request)
            found = charge_of(name, card, body)
            given = str(required(body, "PaRes"))
            if found.status == "requires_action":
                number = transaction_id(found.charge_id)
                passed = hmac.compare_digest(given, pa_res(number))
                found = card.finish_challenge(found.reference, passed=passed)
                registry.notify_charge(card, found)
            return payment_answer(name, found), 200

        return await answer(work)

    @api.post(prefix + "/find")
    async def find(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request)
            body = await body_of(request)
            reference = str(required(body, "InvoiceId"))
            await card.behaviour.delay()
            found = card.find_charge(reference)
            if found is not None:
                return {"Success": True, "Message": None, "Model": transaction(name, found)}, 200
            payout = desk(name).find(reference)
            if payout is not None:
                return payout_answer(name, payout), 200
            raise SimulatorError(404, "not_found", f"no payment {reference!r}")

        return await answer(work)

    @api.post(prefix + "/void")
    async def void(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request)
            found = charge_of(name, card, await body_of(request))
            if found.status == "requires_action":
                registry.notify_charge(card, card.cancel(found.reference))
            elif found.status != "cancelled":
                raise refusal("Invalid transaction state")
            return {"Success": True, "Message": None}, 200

        return await answer(work)

    @api.post(prefix + "/refund")
    async def refund(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            card = acquirer(name, request)
            body = await body_of(request)
            found = charge_of(name, card, body)
            amount = amount_of(body)
            key = request.headers.get(REQUEST_ID_HEADER.lower())
            refunds = refunds_of(name, found.reference)
            for earlier in refunds:
                if key and earlier["request_id"] == key:
                    return {"Success": True, "Message": None, "Model": earlier["model"]}, 200
            if found.status != "succeeded":
                raise refusal("Invalid transaction state")
            refunded = sum(int(earlier["amount"]) for earlier in refunds)
            if amount > found.amount - refunded:
                raise refusal("Invalid Amount value")
            refund_id = f"rf_{secrets.token_hex(6)}"
            model = {"TransactionId": transaction_id(refund_id)}
            refunds.append({"request_id": key, "amount": amount, "model": model})
            store.put_token(name, refunds_key(found.reference), {"refunds": refunds})
            registry.sender.notify(
                name,
                card.callback_urls.get(found.reference),
                {
                    "type": "refund",
                    "reference": found.reference,
                    "provider_payment_id": refund_id,
                    "payment_transaction_id": transaction_id(found.charge_id),
                    "status": "refunded",
                    "amount": amount,
                    "currency": found.currency,
                    "decline_code": None,
                },
                card.behaviour.behaviour,
                encode=encode_callback,
            )
            return {"Success": True, "Message": None, "Model": model}, 200

        return await answer(work)

    @api.post(prefix + "/token/topup")
    async def topup(name: str, request: Request) -> JSONResponse:
        async def work() -> tuple[Any, int]:
            authenticated(name, request)
            payouts = desk(name)
            payouts.behaviour.admit(f"{name} payouts")
            body = await body_of(request)
            required(body, "AccountId")
            token = str(required(body, "Token"))
            vaulted = store.get_token(name, token)
            if vaulted is None or token.startswith("cloudpayments-"):
                raise SimulatorError(422, "unknown_token", "token is not known to this provider")
            try:
                asked = PayoutRequest(
                    reference=str(required(body, "InvoiceId")),
                    amount=amount_of(body),
                    currency=str(body.get("Currency") or "RUB"),
                    method="card",
                    destination={"card": {"token": token, "last4": vaulted["last4"]}},
                )
            except ValidationError as exc:
                raise refusal("Invalid request") from exc
            return payout_answer(name, await payouts.pay(asked)), 200

        return await answer(work)

    return api
