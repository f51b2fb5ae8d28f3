"""Freedom Pay (ex-PayBox), simulated over the common card model (`simulator.cards`: 3-D Secure
page, behaviour knobs, admin views) and the provider's payout desk (`simulator.payouts`).

Forms of `pg_*` fields in, XML `<response>` out, both signed `pg_sig = md5(script;values sorted
by name;secret)` with a random `pg_salt`, checked here independently of the platform's adapter
(`providers.connectors.freedom_pay`). Under `/providers/{name}/`, for providers of connector type
`freedom_pay` only: `g2g/cardstorage/add` (save a card), `v1/merchant/{id}/card/direct` (charge a
saved card by `pg_order_id`), `init_payment.php` (a payment on the page, paid with the 3-D Secure
test card), `get_status.php`, `cancel.php`, `revoke.php` (refunds, partial or full, kept with the
charge), and payouts to a saved card `api/reg2reg` and `api/status`, signed with the payout
secret. The merchant id is the connector's (`"500000"` when unset). These routes match only
providers of this type (`only_for`): the e-wallet twin (`simulator.connectors.
freedom_pay_wallet`) answers the same script paths for its own, with this module's forms,
signatures, errors and result callback.

Errors answer HTTP 200 `pg_status` error with a code: 100 wrong signature (also a wrong secret),
9998 unknown merchant (unsigned), 200 bad or missing parameter (or an unknown card token), 340
not found, 490 cannot cancel / refund, 700 card number refused; the behaviour's own failures keep
their HTTP status (429 with Retry-After, 401 expired credentials as code 100, 5xx as code 1000,
409 for a reference reused for another amount) with an XML body. The result callback is a signed
form (`encode_callback`) with the card's masked PAN and holder, signed for the script of the
order's `pg_result_url`; for orders made before a restart of the simulator, those (kept in
memory) are lost: no card fields, and the script `result`.
"""

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.etree.ElementTree import Element, SubElement, tostring

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import Match
from starlette.types import Scope

from config import Settings
from providers.amounts import from_decimal_string, to_decimal_string
from simulator.behaviour import BehaviourState
from simulator.cards import CardProvider, Charge, ChargeRequest, SimulatorError, TokenizeRequest
from simulator.payouts import Payout, PayoutDesk, PayoutRequest

if TYPE_CHECKING:
    from simulator.app import Registry

CONNECTOR_TYPE = "freedom_pay"

DEV_MERCHANT_ID = "500000"
PAGE_CARD = "4000000000003220"  # what the payer "enters" on the payment page: 3-D Secure
PAGE_HOLDER = "PAGE PAYER"
KAZAKHSTAN_TIME = timezone(timedelta(hours=5))

# Our error codes -> Freedom Pay's, answered inside HTTP 200.
_DOCUMENTED = {
    "invalid_signature": "100",
    "unknown_merchant": "9998",
    "bad_request": "200",
    "unknown_token": "200",
    "not_found": "340",
    "cannot_revoke": "490",
    "invalid_card_number": "700",
}
_STATUSES = {
    "requires_action": "pending",
    "succeeded": "ok",
    "declined": "failed",
    "cancelled": "revoked",
}
_PAYOUT_STATUSES = {"processing": "pending", "paid": "ok", "failed": "failed"}

# reference -> what its result callback tells of the card (masked PAN, holder) and the script
# of its result URL; kept in memory only
_ORDERS: dict[str, dict[str, str]] = {}
_ORDERS_KEPT = 100_000


def _sig(script: str, pairs: Iterable[tuple[str, str]], secret: str) -> str:
    values = [value for _name, value in sorted(pairs, key=lambda pair: pair[0])]
    return hashlib.md5(";".join([script, *values, secret]).encode()).hexdigest()  # noqa: S324


def payment_id(charge_id: str) -> str:
    """Freedom Pay's numeric payment id for one of the model's charge or payout ids."""
    return str(int(hashlib.sha256(charge_id.encode()).hexdigest()[:12], 16))


def _mask(bin_: str, last4: str) -> str:
    return f"{bin_[:4]}-{bin_[4:6]}XX-XXXX-{last4}"


def _script_of(url: str | None) -> str:
    path = urlsplit(url or "").path.rstrip("/")
    return path.rsplit("/", 1)[-1] or "result"


def remember_order(reference: str, vaulted: dict[str, Any] | None, result_url: str | None) -> None:
    """What the order's result callback tells of the card, if any, and the script its
    result URL signs for (in memory only)."""
    if reference in _ORDERS:
        return
    if len(_ORDERS) >= _ORDERS_KEPT:
        _ORDERS.pop(next(iter(_ORDERS)))
    order = {"script": _script_of(result_url)}
    if vaulted is not None:
        order["pan"] = _mask(str(vaulted["bin"]), str(vaulted["last4"]))
        if vaulted.get("holder"):
            order["owner"] = str(vaulted["holder"])
    _ORDERS[reference] = order


def _xml(
    fields: dict[str, str],
    script: str,
    secret: str | None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """An XML answer; signed unless `secret` is None (a merchant it could not identify)."""
    if secret is not None:
        fields = {**fields, "pg_salt": secrets.token_hex(8)}
        fields["pg_sig"] = _sig(script, fields.items(), secret)
    root = Element("response")
    for name, value in fields.items():
        SubElement(root, name).text = value
    body = tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


def _error(exc: SimulatorError, script: str, secret: str) -> Response:
    code = _DOCUMENTED.get(exc.code)
    if code is not None:
        fields = {"pg_status": "error", "pg_error_code": code, "pg_error_description": exc.detail}
        return _xml(fields, script, None if code == "9998" else secret, headers=exc.headers)
    fields = {"pg_status": "error", "pg_error_description": f"{exc.code}: {exc.detail}"}
    if exc.status == 401:
        fields["pg_error_code"] = "100"
    elif exc.status >= 500:
        fields["pg_error_code"] = "1000"
    return _xml(fields, script, secret, status=exc.status, headers=exc.headers)


def minor_amount(text: str | None, name: str = "pg_amount") -> int:
    """A `pg_*` amount of a request in minor units, exactly; else error 200."""
    try:
        return from_decimal_string(text)
    except ValueError as exc:
        raise SimulatorError(400, "bad_request", f"{name}: {exc}") from exc


Work = Callable[[dict[str, str]], Awaitable[dict[str, str]]]
T = TypeVar("T")


def merchant_of(settings: Settings, name: str) -> str:
    return settings.connector(name).merchant_id or DEV_MERCHANT_ID


def required(fields: Mapping[str, str], *names: str) -> None:
    missing = [name for name in names if not fields.get(name)]
    if missing:
        raise SimulatorError(400, "bad_request", f"missing {', '.join(missing)}")


async def serve_form(
    request: Request,
    *,
    script: str,
    secret: str,
    merchant: str,
    guard: BehaviourState,
    label: str,
    work: Work,
    path_merchant: str | None = None,
) -> Response:
    """Check the merchant and the signature, let the behaviour in, then `work`: its fields are
    answered in a signed XML `ok`, its SimulatorError as Freedom Pay's error."""
    try:
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SimulatorError(400, "bad_request", f"not a form: {exc}") from exc
        fields = dict(pairs)
        if fields.get("pg_merchant_id") != merchant or path_merchant not in (None, merchant):
            raise SimulatorError(400, "unknown_merchant", "merchant not identified")
        signed = _sig(script, [(k, v) for k, v in pairs if k != "pg_sig"], secret)
        if not hmac.compare_digest(signed.encode(), fields.get("pg_sig", "").lower().encode()):
            raise SimulatorError(400, "invalid_signature", "pg_sig does not match")
        guard.admit(label)
        answer = await work(fields)
    except SimulatorError as exc:
        return _error(exc, script, secret)
    return _xml({"pg_status": "ok", **answer}, script, secret)


def status_fields(
    *,
    pid: str,
    reference: str,
    amount: int,
    currency: str,
    status: str,
    refunded: int = 0,
    failure_code: str | None = None,
    redirect_url: str | None = None,
) -> dict[str, str]:
    """get_status.php's answer about one payment; `status` is Freedom Pay's, before refunds (a
    payment `ok` refunded in full reads `refunded`)."""
    if status == "ok" and refunded >= amount:
        status = "refunded"
    fields = {
        "pg_payment_id": pid,
        "pg_order_id": reference,
        "pg_amount": to_decimal_string(amount),
        "pg_currency": currency,
        "pg_transaction_status": status,
        "pg_can_reject": "1" if status == "ok" else "0",
        "pg_captured": "1" if status in ("ok", "refunded") else "0",
    }
    if refunded:
        fields["pg_refund_amount"] = to_decimal_string(refunded)
    if failure_code and status in ("failed", "revoked", "incomplete"):
        fields["pg_failure_code"] = failure_code
        fields["pg_failure_description"] = failure_code.replace("_", " ")
    if status == "pending" and redirect_url:
        fields["pg_redirect_url"] = redirect_url
    return fields


def find_named(
    fields: Mapping[str, str],
    by_payment_id: Mapping[str, str],
    lookup: Callable[[str], T | None],
    model_id: Callable[[T], str],
) -> T:
    """The payment a request names by pg_order_id, or by a pg_payment_id alone (one answered
    before: `by_payment_id`); error 340 when there is none."""
    pid = fields.get("pg_payment_id")
    reference = fields.get("pg_order_id") or by_payment_id.get(pid or "")
    found = lookup(reference) if reference else None
    if found is None or (pid and payment_id(model_id(found)) != pid):
        raise SimulatorError(404, "not_found", "payment not found")
    return found


def refund_amount(fields: Mapping[str, str], *, paid: bool, amount: int, refunded: int) -> int:
    """What a revoke.php refunds: `pg_refund_amount`, or all that is left; error 490 when the
    payment is not paid or that is more than is left."""
    left = amount - refunded
    asked = minor_amount(fields.get("pg_refund_amount") or "0", "pg_refund_amount") or left
    if not paid or not 0 < asked <= left:
        raise SimulatorError(400, "cannot_revoke", f"cannot refund {asked} of {left} left")
    return asked


def only_for(registry: "Registry", connector_type: str) -> type[APIRoute]:
    """Routes that match only providers (`{name}`) of `connector_type`. Freedom Pay's card and
    e-wallet twins share its script paths (init_payment.php, get_status.php, ...), and the first
    route to match a path answers: each twin's routes let the other's providers through."""

    class OnlyFor(APIRoute):
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            match, child = super().matches(scope)
            name = child.get("path_params", {}).get("name") if match != Match.NONE else None
            if name is not None and not registry.speaks(name, connector_type):
                return Match.NONE, {}
            return match, child

    return OnlyFor


def router(registry: "Registry") -> APIRouter:
    api = APIRouter(tags=["freedom pay"], route_class=only_for(registry, CONNECTOR_TYPE))
    settings = registry.settings
    by_payment_id: dict[str, str] = {}  # pg_payment_id -> pg_order_id, as answered

    def payout_secret(name: str) -> str:
        configured = settings.connector(name).payout_secret
        return configured.get_secret_value() if configured else settings.provider_secret(name)

    def acquirer(name: str) -> CardProvider:
        if not registry.speaks(name, CONNECTOR_TYPE) or name not in registry.cards:
            raise SimulatorError(404, "unknown_provider", f"no Freedom Pay provider {name!r}")
        return registry.cards[name]

    def desk(name: str) -> PayoutDesk:
        acquirer(name)
        if name not in registry.payouts:
            registry.payouts[name] = PayoutDesk(name, registry.store)
        return registry.payouts[name]

    async def serve(
        request: Request,
        name: str,
        script: str,
        secret: str,
        guard: BehaviourState,
        label: str,
        work: Work,
        path_merchant: str | None = None,
    ) -> Response:
        return await serve_form(
            request,
            script=script,
            secret=secret,
            merchant=merchant_of(settings, name),
            guard=guard,
            label=label,
            work=work,
            path_merchant=path_merchant,
        )

    def payment(name: str, charge: Charge) -> dict[str, str]:
        stored = registry.store.get_charge(name, charge.reference) or {}
        pid = payment_id(charge.charge_id)
        by_payment_id[pid] = charge.reference
        fields = status_fields(
            pid=pid,
            reference=charge.reference,
            amount=charge.amount,
            currency=charge.currency,
            status=_STATUSES[charge.status],
            refunded=int(stored.get("refunded", 0)),
            failure_code=charge.decline_code,
            redirect_url=charge.action_url,
        )
        card = _ORDERS.get(charge.reference, {})
        if "pan" in card:
            fields["pg_card_pan"] = card["pan"]
        return fields

    def find(card: CardProvider, fields: dict[str, str]) -> Charge:
        """The payment named by pg_order_id, or by pg_payment_id alone (as answered before)."""
        return find_named(fields, by_payment_id, card.find_charge, lambda c: c.charge_id)

    # -- cards ----------------------------------------------------------------------------

    @api.post("/providers/{name}/g2g/cardstorage/add")
    async def save_card(name: str, request: Request) -> Response:
        card = acquirer(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_user_id", "pg_card_pan", "pg_card_cvc")
            try:
                asked = TokenizeRequest(
                    number=fields["pg_card_pan"],
                    exp_month=int(fields["pg_card_month"]),
                    exp_year=2000 + int(fields["pg_card_year"]),
                    cvc=fields["pg_card_cvc"],
                    holder=fields.get("pg_card_name") or None,
                )
            except (KeyError, ValueError, ValidationError) as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            token = card.tokenize(asked)
            vaulted = registry.store.get_token(name, token.token) or {}
            registry.store.put_token(name, token.token, {**vaulted, "holder": asked.holder})
            return {
                "pg_card_token": token.token,
                "pg_card_hash": _mask(token.bin, token.last4),
                "pg_card_country": token.issuer_country,
            }

        return await serve(
            request, name, "add", settings.provider_secret(name), card.behaviour, name, work
        )

    @api.post("/providers/{name}/v1/merchant/{merchant_id}/card/direct")
    async def direct(name: str, merchant_id: str, request: Request) -> Response:
        card = acquirer(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_order_id", "pg_amount", "pg_card_token", "pg_user_id")
            try:
                order = ChargeRequest(
                    reference=fields["pg_order_id"],
                    token=fields["pg_card_token"],
                    amount=minor_amount(fields["pg_amount"]),
                    currency=fields.get("pg_currency") or "KZT",
                    callback_url=fields.get("pg_result_url") or None,
                )
            except ValidationError as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            remember_order(
                order.reference, registry.store.get_token(name, order.token), order.callback_url
            )
            charge, answer_late = await card.charge(order, page_base=str(request.base_url))
            if answer_late:
                await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
            return payment(name, charge)

        secret = settings.provider_secret(name)
        return await serve(
            request, name, "direct", secret, card.behaviour, name, work, path_merchant=merchant_id
        )

    @api.post("/providers/{name}/init_payment.php")
    async def init_payment(name: str, request: Request) -> Response:
        card = acquirer(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_order_id", "pg_amount", "pg_description")
            reference = fields["pg_order_id"]
            token = ""
            if card.find_charge(reference) is None:
                page_card = TokenizeRequest(
                    number=PAGE_CARD, exp_month=12, exp_year=2030, cvc="123", holder=PAGE_HOLDER
                )
                token = card.tokenize(page_card).token
                vaulted = registry.store.get_token(name, token) or {}
                registry.store.put_token(name, token, {**vaulted, "holder": PAGE_HOLDER})
            try:
                order = ChargeRequest(
                    reference=reference,
                    token=token,
                    amount=minor_amount(fields["pg_amount"]),
                    currency=fields.get("pg_currency") or "KZT",
                    callback_url=fields.get("pg_result_url") or None,
                )
            except ValidationError as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            remember_order(reference, registry.store.get_token(name, token), order.callback_url)
            charge, answer_late = await card.charge(order, page_base=str(request.base_url))
            if answer_late:
                await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
            pid = payment_id(charge.charge_id)
            by_payment_id[pid] = reference
            return {
                "pg_payment_id": pid,
                "pg_redirect_url": f"{request.base_url}pay/{name}/{reference}",
                "pg_redirect_url_type": "need data",
            }

        return await serve(
            request,
            name,
            "init_payment.php",
            settings.provider_secret(name),
            card.behaviour,
            name,
            work,
        )

    @api.post("/providers/{name}/get_status.php")
    async def get_status(name: str, request: Request) -> Response:
        card = acquirer(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            await card.behaviour.delay()
            return payment(name, find(card, fields))

        secret = settings.provider_secret(name)
        return await serve(request, name, "get_status.php", secret, card.behaviour, name, work)

    @api.post("/providers/{name}/cancel.php")
    async def cancel(name: str, request: Request) -> Response:
        card = acquirer(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_payment_id")
            charge = find(card, fields)
            if charge.status != "requires_action":
                raise SimulatorError(400, "cannot_revoke", f"payment is {charge.status}")
            card.cancel(charge.reference)
            return {}

        secret = settings.provider_secret(name)
        return await serve(request, name, "cancel.php", secret, card.behaviour, name, work)

    @api.post("/providers/{name}/revoke.php")
    async def revoke(name: str, request: Request) -> Response:
        card = acquirer(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_payment_id")
            charge = find(card, fields)
            stored = registry.store.get_charge(name, charge.reference) or {}
            refunded = int(stored.get("refunded", 0))
            paid = charge.status == "succeeded"
            asked = refund_amount(fields, paid=paid, amount=charge.amount, refunded=refunded)
            registry.store.put_charge(
                name, charge.reference, {**stored, "refunded": refunded + asked}
            )
            return {}

        secret = settings.provider_secret(name)
        return await serve(request, name, "revoke.php", secret, card.behaviour, name, work)

    # -- payouts ---------------------------------------------------------------------------

    def payout_fields(payout: Payout) -> dict[str, str]:
        fields = {
            "pg_payment_id": payment_id(payout.payout_id),
            "pg_order_id": payout.reference,
            "pg_amount": to_decimal_string(payout.amount),
            "pg_currency": payout.currency,
            "pg_transaction_status": _PAYOUT_STATUSES[payout.status],
        }
        if payout.failure_code:
            fields["pg_failure_code"] = payout.failure_code
        return fields

    @api.post("/providers/{name}/api/reg2reg")
    async def reg2reg(name: str, request: Request) -> Response:
        payouts = desk(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(
                fields,
                "pg_order_id",
                "pg_amount",
                "pg_description",
                "pg_order_time_limit",
                "pg_user_id",
                "pg_card_token_to",
            )
            token = fields["pg_card_token_to"]
            vaulted = registry.store.get_token(name, token)
            if vaulted is None:
                raise SimulatorError(422, "unknown_token", "card token is not known")
            try:
                asked = PayoutRequest(
                    reference=fields["pg_order_id"],
                    amount=minor_amount(fields["pg_amount"]),
                    currency=fields.get("pg_currency") or "KZT",
                    method="card",
                    destination={"card": {"token": token, "last4": vaulted.get("last4")}},
                )
            except ValidationError as exc:
                raise SimulatorError(400, "bad_request", str(exc)) from exc
            return payout_fields(await payouts.pay(asked))

        label = f"{name} payouts"
        return await serve(
            request, name, "reg2reg", payout_secret(name), payouts.behaviour, label, work
        )

    @api.post("/providers/{name}/api/status")
    async def payout_status(name: str, request: Request) -> Response:
        payouts = desk(name)

        async def work(fields: dict[str, str]) -> dict[str, str]:
            required(fields, "pg_order_id")
            await payouts.behaviour.delay()
            found = payouts.find(fields["pg_order_id"])
            if found is None:
                raise SimulatorError(404, "not_found", "payout not found")
            return payout_fields(found)

        label = f"{name} payouts"
        return await serve(
            request, name, "status", payout_secret(name), payouts.behaviour, label, work
        )

    return api


def encode_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The result callback: a form signed for the script of the order's result URL."""
    reference = str(event["reference"])
    order = _ORDERS.get(reference, {})
    paid = event["status"] == "succeeded"
    sent = datetime.fromisoformat(str(event["sent_at"])).astimezone(KAZAKHSTAN_TIME)
    fields = {
        "pg_order_id": reference,
        "pg_payment_id": payment_id(str(event["provider_payment_id"])),
        "pg_amount": to_decimal_string(int(event["amount"])),
        "pg_currency": str(event["currency"]),
        "pg_result": "1" if paid else "0",
        "pg_can_reject": "1" if paid else "0",
        "pg_payment_date": sent.strftime("%Y-%m-%d %H:%M:%S"),
        "pg_card_pan": order.get("pan", ""),
        "pg_card_owner": order.get("owner", ""),
    }
    if not paid:
        fields["pg_failure_code"] = str(event.get("decline_code") or event["status"])
        fields["pg_failure_description"] = fields["pg_failure_code"].replace("_", " ")
    fields = {name: value for name, value in fields.items() if value}
    fields["pg_salt"] = secrets.token_hex(8)
    fields["pg_sig"] = _sig(order.get("script", "result"), fields.items(), secret)
    return urlencode(fields).encode(), {"content-type": "application/x-www-form-urlencoded"}
