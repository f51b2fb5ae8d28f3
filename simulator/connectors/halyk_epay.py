"""Halyk ePay simulated over the common card model (`simulator.cards.CardProvider`), so that the
3-D Secure page, every behaviour knob and the admin views work as for any acquirer. Served under
`/providers/{name}/...` for each provider whose connector type is `halyk_epay` (its routes are
registered per provider, so that no other module's `{name}` route is shadowed by them):

- `POST /oauth2/token` (form): the client's credentials (`providers.connectors.halyk_epay.
  credentials`) -> {access_token, token_type, expires_in: 7200, scope}; with invoiceID, amount,
  currency, postLink and secret_hash it is a payment's token, good for that payment only.
  Outage answers 503 here too; the other knobs (expired credentials, throttling) apply to the
  calls made with a token.
- `POST /cards/save` {hpan, expDate: MMYY, cvc, name} -> {cardID, cardMask, cardType,
  issuerCountry}: the common tokenization.
- `POST /payments/cards/auth` (a payment's token) {amount, currency, invoiceId, description (the
  merchant's reference: the common charge's key), paymentType: cardId, cardId: {id}} -> the
  payment {id, invoiceID, status AUTH | 3D | REJECT | FAILED, secure3D: {action}, ...}.
  An approved payment is held (AUTH) until the charge operation; an invoice id already used by
  another description is 409 (1009).
- `GET /check-status/payment/transaction/{invoiceId}` -> {resultCode: "100" (found), "101"
  (found, rejected) or "102" (not found), resultMessage, transaction}.
- `POST /operation/{id}/charge|cancel|refund` (refund `?amount=` in tenge, default all that is
  left) -> 200 with no body; a status the operation does not apply to is 400 (1007), a refund
  above what is left 400 (1008). After refunds `amount` is what is left, `orgAmount` what was
  charged, statusName REFUND once nothing is left.

Errors are {code, message} (numeric codes, `_CODES`). Callbacks are JSON to the payment's
postLink (code ok | error, invoiceId, amount, currency, cardMask, reference, reason, reasonCode,
description, secret_hash as the payment's token carried it), with no signature.

Halyk's own state beside the common charge is kept in the simulator's store (so it survives a
restart like the charges do), per provider: the invoice (our reference, card id, secret_hash,
postLink, captured, refunded), and which invoice a transaction id and a reference belong to.
"""

import asyncio
import secrets
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from providers.connectors.halyk_epay import credentials, dumps, loads
from simulator.cards import Charge, ChargeRequest, SimulatorError, TokenizeRequest

if TYPE_CHECKING:
    from simulator.app import Registry

CONNECTOR_TYPE = "halyk_epay"

TOKEN_LIFETIME_SECONDS = 7200
_NAMESPACE = uuid.UUID("6f1c1b7e-5d2a-4c8e-9a49-1f0e8f6c2b10")  # transaction ids

_CODES = {
    "not_found": 102,
    "bad_request": 1001,
    "unauthorized": 1002,
    "token_expired": 1003,
    "invalid_card_number": 1004,
    "unknown_token": 1005,
    "reference_reused": 1006,
    "invalid_status": 1007,
    "refund_exceeds_amount": 1008,
    "invoice_reused": 1009,
    "rate_limited": 1010,
    "outage": 1011,
    "temporarily_unavailable": 1011,
    "internal_error": 1012,
    "bad_gateway": 1012,
    "gateway_timeout": 1012,
}
# our decline codes -> (reasonCode, reason)
_REASONS = {
    "do_not_honor": ("05", "Do not honor"),
    "insufficient_funds": ("51", "Insufficient funds"),
    "expired_card": ("54", "Expired card"),
    "authentication_failed": ("455", "3-D Secure authentication failed"),
    "expired": ("456", "3-D Secure was not completed in time"),
    "cancelled_by_merchant": ("457", "Cancelled by the merchant"),
}

# The registries this module serves, for the callback encoder (which is given only the event).
_REGISTRIES: "weakref.WeakSet[Registry]" = weakref.WeakSet()


@dataclass
class _Access:
    expires_at: float
    invoice: dict[str, str] | None  # a payment's token: the invoice fields it was issued with


# (id of the registry, provider) -> its access tokens: the reports API
# (`simulator.reports.routes`) takes the same client tokens as the payment API.
_TOKENS: dict[tuple[int, str], dict[str, _Access]] = {}


def client_token_valid(registry: "Registry", name: str, authorization: str) -> bool:
    """Whether `authorization` is `Bearer <a live client token>` of this terminal (a payment's
    own token names an invoice and is no client token)."""
    tokens = _TOKENS.get((id(registry), name), {})
    token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else ""
    access = tokens.get(token)
    return access is not None and access.invoice is None and access.expires_at > time.monotonic()


def _invoice_key(invoice: str) -> str:
    return f"halyk:invoice:{invoice}"


def _transaction_key(transaction: str) -> str:
    return f"halyk:transaction:{transaction}"


def _reference_key(reference: str) -> str:
    return f"halyk:reference:{reference}"


def transaction_id(name: str, invoice: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{name}:{invoice}"))


def _minor(value: object, name: str = "amount") -> int:
    """Tenge (a JSON number read as int or Decimal, or a decimal string) in tiyn."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise SimulatorError(400, "bad_request", f"{name} is not an amount: {value!r}")
    try:
        tenge = Decimal(value)
    except InvalidOperation as exc:
        raise SimulatorError(400, "bad_request", f"{name} is not an amount: {value!r}") from exc
    tiyn = tenge * 100
    if not tenge.is_finite() or tenge < 0 or tiyn != tiyn.to_integral_value():
        raise SimulatorError(400, "bad_request", f"{name} is not tenge with 2 decimals: {value!r}")
    return int(tiyn)


def _tenge(minor: int) -> int | Decimal:
    return minor // 100 if minor % 100 == 0 else Decimal(minor) / 100


def _status_name(charge: Charge, invoice: dict[str, Any]) -> str:
    if charge.status == "requires_action":
        return "3D"
    if charge.status == "cancelled":
        return "CANCEL"
    if charge.status == "declined":
        return "FAILED" if charge.decline_code == "authentication_failed" else "REJECT"
    if not invoice.get("captured"):
        return "AUTH"
    return "REFUND" if invoice.get("refunded", 0) >= charge.amount else "CHARGE"


def _reason(charge: Charge, status_name: str) -> tuple[str | None, str]:
    if status_name in ("AUTH", "CHARGE", "REFUND"):
        return "00", "success"
    if charge.decline_code is None:
        return None, ""
    return _REASONS.get(charge.decline_code, ("999", charge.decline_code))


def _card(vaulted: dict[str, Any] | None) -> dict[str, Any]:
    if vaulted is None:
        return {"cardMask": "", "cardType": "", "issuer": ""}
    return {
        "cardMask": f"{vaulted['bin']}******{vaulted['last4']}",
        "cardType": str(vaulted["scheme"]).upper(),
        "issuer": f"Issuer ({vaulted['issuer_country']})",
    }


def _payment_fields(
    name: str, invoice: str, record: dict[str, Any], charge: Charge
) -> dict[str, Any]:
    """What the cards/auth answer and the check-status transaction share."""
    status = _status_name(charge, record)
    code, reason = _reason(charge, status)
    left = charge.amount - int(record.get("refunded", 0)) if record.get("captured") else None
    return {
        "id": transaction_id(name, invoice),
        "invoiceID": invoice,
        "amount": _tenge(charge.amount if left is None else left),
        "amountBonus": 0,
        "currency": charge.currency,
        "description": charge.reference,
        "accountId": "",
        "reference": invoice[-12:],  # the bank's retrieval reference
        "intReference": charge.charge_id,
        "cardID": record.get("card_id", ""),
        "reason": reason,
        "reasonCode": code,
        "status": status,
    }


def _error(exc: SimulatorError) -> Response:
    body = {"code": _CODES.get(exc.code, 1001), "message": exc.detail}
    return Response(
        dumps(body), status_code=exc.status, headers=exc.headers, media_type="application/json"
    )


async def _answer(work: Callable[[], Awaitable[tuple[Any, int]]]) -> Response:
    try:
        data, status = await work()
    except SimulatorError as exc:
        return _error(exc)
    if data is None:
        return Response(status_code=status)
    return Response(dumps(data), status_code=status, media_type="application/json")


async def _json(request: Request) -> Any:
    try:
        return loads(await request.body())
    except ValueError as exc:
        raise SimulatorError(400, "bad_request", str(exc)) from exc


def _invoice_number(value: object) -> str:
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 6 <= len(text) <= 15:
        raise SimulatorError(400, "bad_request", f"invoiceId must be 6-15 digits: {value!r}")
    return text


def router(registry: "Registry") -> APIRouter:
    _REGISTRIES.add(registry)
    root = APIRouter(tags=["halyk epay"])
    for name in registry.cards:
        if registry.speaks(name, CONNECTOR_TYPE):
            root.include_router(_provider_router(registry, name))
    return root


def _provider_router(registry: "Registry", name: str) -> APIRouter:
    router = APIRouter(prefix=f"/providers/{name}")
    card = registry.cards[name]
    store = registry.store
    settings = registry.settings
    tokens: dict[str, _Access] = {}
    _TOKENS[(id(registry), name)] = tokens
    lock = asyncio.Lock()

    def invoice_record(invoice: str) -> dict[str, Any] | None:
        return store.get_token(name, _invoice_key(invoice))

    def authorized(request: Request) -> _Access:
        header = request.headers.get("authorization", "")
        access = (
            tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        )
        if access is None or access.expires_at <= time.monotonic():
            raise SimulatorError(401, "unauthorized", "unknown or expired access token")
        card.behaviour.admit(name)
        return access

    @router.post("/oauth2/token")
    async def issue_token(request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            if card.behaviour.behaviour.outage:
                raise SimulatorError(503, "outage", f"{name} is down")
            form = {
                key: values[-1]
                for key, values in parse_qs(
                    (await request.body()).decode(), keep_blank_values=True
                ).items()
            }
            if form.get("grant_type") != "client_credentials":
                raise SimulatorError(400, "bad_request", "grant_type must be client_credentials")
            expected = credentials(name, settings.provider_secret(name), settings.connector(name))
            given = (form.get("client_id"), form.get("client_secret"), form.get("terminal"))
            if given != (expected.client_id, expected.client_secret, expected.terminal):
                raise SimulatorError(401, "unauthorized", "unknown client or terminal")
            invoice = None
            if "invoiceID" in form:
                _invoice_number(form["invoiceID"])
                _minor(form.get("amount"))
                if len(form.get("currency", "")) != 3:
                    raise SimulatorError(400, "bad_request", "currency required")
                invoice = form
            now = time.monotonic()
            for stale in [t for t, a in tokens.items() if a.expires_at <= now]:
                del tokens[stale]
            token = secrets.token_urlsafe(24)
            tokens[token] = _Access(now + TOKEN_LIFETIME_SECONDS, invoice)
            return {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "scope": form.get("scope", ""),
                "refresh_token": "",
            }, 200

        return await _answer(work)

    @router.post("/cards/save")
    async def save_card(request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            authorized(request)
            body = await _json(request)
            try:
                expiry = str(body["expDate"])
                if len(expiry) != 4 or not expiry.isdigit():
                    raise ValueError(f"expDate must be MMYY: {expiry!r}")
                saved = card.tokenize(
                    TokenizeRequest(
                        number=body["hpan"],
                        exp_month=int(expiry[:2]),
                        exp_year=2000 + int(expiry[2:]),
                        cvc=body["cvc"],
                        holder=body.get("name"),
                    )
                )
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            return {
                "cardID": saved.token,
                "cardMask": f"{saved.bin}******{saved.last4}",
                "cardType": saved.scheme.upper(),
                "issuerCountry": saved.issuer_country,
            }, 200

        return await _answer(work)

    @router.post("/payments/cards/auth")
    async def authorize_payment(request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            access = authorized(request)
            body = await _json(request)
            try:
                invoice = _invoice_number(body["invoiceId"])
                reference = body["description"]
                if body.get("paymentType") != "cardId":
                    raise ValueError("paymentType must be cardId")
                card_id = body["cardId"]["id"]
                amount, currency = _minor(body["amount"]), body["currency"]
            except (KeyError, TypeError, ValueError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            bound = access.invoice
            if bound is None or bound.get("invoiceID") != invoice:
                raise SimulatorError(400, "bad_request", "the token is not this invoice's")
            if (_minor(bound.get("amount")), bound.get("currency")) != (amount, currency):
                raise SimulatorError(400, "bad_request", "amount or currency is not the token's")
            post_link = bound.get("postLink") or body.get("postLink")
            try:
                order = ChargeRequest(
                    reference=reference,
                    token=card_id,
                    amount=amount,
                    currency=currency,
                    callback_url=post_link,
                )
            except ValidationError as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            async with lock:
                record = invoice_record(invoice)
                if record is not None and record["reference"] != reference:
                    raise SimulatorError(409, "invoice_reused", f"invoice {invoice} is taken")
                record = {
                    "captured": False,
                    "refunded": 0,
                    "created": datetime.now(UTC).isoformat(),
                    **(record or {}),
                    "reference": reference,
                    "card_id": card_id,
                    "secret_hash": bound.get("secret_hash"),
                    "post_link": post_link,
                }
                store.put_token(name, _invoice_key(invoice), record)
                link = {"invoice": invoice}
                store.put_token(name, _transaction_key(transaction_id(name, invoice)), link)
                store.put_token(name, _reference_key(reference), link)
            charge, answer_late = await card.charge(order, page_base=str(request.base_url))
            if answer_late:
                await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
            answer = _payment_fields(name, invoice, record, charge)
            action = charge.action_url if answer["status"] == "3D" else None
            return {
                **answer,
                **_card(store.get_token(name, card_id)),
                "secure3D": None if action is None else {"action": action},
                "code": 0,
            }, 200

        return await _answer(work)

    @router.get("/check-status/payment/transaction/{invoice}")
    async def check_status(invoice: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            authorized(request)
            await card.behaviour.delay()
            record = invoice_record(invoice)
            charge = None if record is None else card.find_charge(record["reference"])
            if record is None or charge is None:
                return {"resultCode": "102", "resultMessage": "Invoice not found"}, 200
            fields = _payment_fields(name, invoice, record, charge)
            status = fields.pop("status")
            rejected = status in ("REJECT", "FAILED")
            vaulted = store.get_token(name, record.get("card_id", ""))
            return {
                "resultCode": "101" if rejected else "100",
                "resultMessage": "Rejected" if rejected else "Success",
                "transaction": {
                    **fields,
                    **_card(vaulted),
                    "createdDate": record.get("created", ""),
                    "orgAmount": _tenge(charge.amount),
                    "payoutAmount": fields["amount"],
                    "approvalCode": "" if rejected else invoice[-6:],
                    "terminal": credentials(
                        name, settings.provider_secret(name), settings.connector(name)
                    ).terminal,
                    "language": "rus",
                    "secure": vaulted is not None and bool(vaulted.get("three_ds")),
                    "secureDetails": "",
                    "statusName": status,
                    "name": "",
                    "email": "",
                    "phone": "",
                },
            }, 200

        return await _answer(work)

    @router.post("/operation/{transaction}/{operation}")
    async def operate(transaction: str, operation: str, request: Request) -> Response:
        async def work() -> tuple[Any, int]:
            authorized(request)
            if operation not in ("charge", "cancel", "refund"):
                raise SimulatorError(404, "not_found", f"no operation {operation!r}")
            async with lock:
                link = store.get_token(name, _transaction_key(transaction))
                record = None if link is None else invoice_record(link["invoice"])
                charge = None if record is None else card.find_charge(record["reference"])
                if link is None or record is None or charge is None:
                    raise SimulatorError(404, "not_found", f"no transaction {transaction!r}")
                status = _status_name(charge, record)
                refuse = SimulatorError(400, "invalid_status", f"{operation} of a {status} payment")
                if operation == "charge":
                    if status not in ("AUTH", "CHARGE"):
                        raise refuse
                    record["captured"] = True
                elif operation == "cancel":
                    if status == "3D":
                        card.cancel(charge.reference)
                    elif status == "AUTH":
                        voided = charge.model_copy(
                            update={"status": "cancelled", "decline_code": "cancelled_by_merchant"}
                        )
                        store.put_charge(name, charge.reference, voided.model_dump())
                    elif status != "CANCEL":
                        raise refuse
                else:
                    if status != "CHARGE":
                        raise refuse
                    left = charge.amount - int(record["refunded"])
                    asked = request.query_params.get("amount")
                    amount = left if asked is None else _minor(asked)
                    if amount <= 0:
                        raise SimulatorError(400, "bad_request", "a refund of nothing")
                    if amount > left:
                        raise SimulatorError(
                            400, "refund_exceeds_amount", f"{amount} asked, {left} left"
                        )
                    record["refunded"] = int(record["refunded"]) + amount
                store.put_token(name, _invoice_key(link["invoice"]), record)
            return None, 200

        return await _answer(work)

    return router


def _held_by(reference: str, charge_id: str) -> tuple["Registry", str, str, dict[str, Any]] | None:
    """(registry, provider, invoice, invoice record) of a Halyk payment under our reference."""
    for registry in list(_REGISTRIES):
        for name, card in registry.cards.items():
            if not registry.speaks(name, CONNECTOR_TYPE):
                continue
            link = registry.store.get_token(name, _reference_key(reference))
            if link is None:
                continue
            record = registry.store.get_token(name, _invoice_key(link["invoice"]))
            charge = card.find_charge(reference)
            if record is not None and charge is not None and charge.charge_id == charge_id:
                return registry, name, link["invoice"], record
    return None


def encode_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The postLink callback: JSON, no signature; the payment's secret_hash as it was given."""
    succeeded = event["status"] == "succeeded"
    code, reason = (
        ("00", "success")
        if succeeded
        else _REASONS.get(event.get("decline_code") or "", ("999", str(event["status"])))
    )
    body: dict[str, Any] = {
        "code": "ok" if succeeded else "error",
        "amount": _tenge(int(event["amount"])),
        "currency": event["currency"],
        "description": event["reference"],
        "reason": reason,
        "reasonCode": code,
        "dateTime": event.get("sent_at", ""),
        "language": "rus",
        "accountId": "",
        "email": "",
        "phone": "",
        "name": "",
    }
    found = _held_by(event["reference"], str(event.get("provider_payment_id")))
    if found is not None:
        registry, name, invoice, record = found
        settings = registry.settings
        terminal = credentials(name, settings.provider_secret(name), settings.connector(name))
        body |= {
            "id": transaction_id(name, invoice),
            "invoiceId": invoice,
            "reference": invoice[-12:],
            "approvalCode": invoice[-6:] if succeeded else "",
            "cardId": record.get("card_id", ""),
            "terminal": terminal.terminal,
            "secret_hash": record.get("secret_hash") or "",
            **_card(registry.store.get_token(name, record.get("card_id", ""))),
        }
    return dumps(body), {"content-type": "application/json"}
