"""Hosted checkout: the casino asks for a session, the player pays on the platform's own page.

- `POST /v1/checkout/sessions` (merchant key, Idempotency-Key) -> `{id, url, expires_at, ...}`;
  `GET /v1/checkout/sessions/{id}` (merchant or operator) follows it.
- `/checkout/{token}`: the player's pages (no key: the token in the URL is the capability). A
  deposit session offers the methods a provider can take now, in the order the player used
  them; a withdrawal session offers the destinations of the closed-loop rule. Payments are made
  by `create_deposit` and `create_withdrawal` of the API itself, so the rules, the card
  tokenization and the responsible-gaming refusals are the same; the card form posts the card
  here, from the player's browser, and it goes no further than those functions.
- `GET /v1/analytics/checkout-funnel` (operator): opened -> method chosen -> submitted ->
  succeeded, per method and provider.

Every player page answers with a strict Content-Security-Policy, no Referer, no caching; every
form carries a CSRF token; the token is never stored (its SHA-256 is) and config/logging.py
masks it in any log line; each token and each client IP is rate limited.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, StrictInt, ValidationError, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import MerchantDep, OperatorDep, ReaderDep, SessionDep, SettingsDep, StateDep
from api.errors import PROBLEM_JSON, Problem
from api.idempotency import fingerprint, require_key
from api.routers import deposits as deposit_api
from api.routers import withdrawals as withdrawal_api
from api.schemas import ClientInfo, DepositCreate, StrictModel
from api.state import AppState
from api.withdrawal_schemas import WithdrawalCreate
from checkout import errors as shown_errors
from checkout import funnel as funnel_store
from checkout import pages as html
from checkout import store
from checkout.i18n import LANGS, pick_language, t
from checkout.models import CheckoutSession
from checkout.money import format_amount, parse_major
from checkout.offer import MethodOffer, offer_methods
from checkout.origins import origin_of, web_address_problem
from checkout.payout import PAYOUT_METHODS, PayoutOffer, payout_offer
from checkout.security import CheckoutLimiter, page_headers
from checkout.tokens import (
    check_csrf,
    check_return,
    csrf_token,
    return_mac,
    session_token,
    token_digest,
    well_formed,
)
from config import Settings
from db import gateway as gateway_store
from db import idempotency
from db import players as player_store
from db.api_keys import KeyHolder
from db.models import Deposit, Withdrawal
from domain.cards import card_scheme
from domain.ids import new_id
from domain.roles import Role
from domain.routing import METHODS

router = APIRouter(prefix="/v1/checkout", tags=["checkout"])
pages = APIRouter(prefix="/checkout", include_in_schema=False)
analytics = APIRouter(prefix="/v1/analytics", tags=["analytics"])

SESSION_ID_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
DEFAULT_PRESETS = (2_000_00, 5_000_00, 10_000_00, 20_000_00, 50_000_00)
INPUT_METHODS = ("card", "ewallet", "mobile_banking")  # the page asks the player for details
IN_FLIGHT = ("pending", "processing", "requires_action", "unknown")
WD_OPEN = ("pending", "in_review", "approved", "processing")

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "idempotency_key_required"},
    404: {"description": "player_not_found / checkout_session_not_found"},
    409: {"description": "idempotency_key_reused"},
    422: {"description": "validation_error, unsupported_currency, invalid_amount_range"},
}


# -- the casino's API --------------------------------------------------------------------------


class CheckoutSessionCreate(StrictModel):
    kind: Literal["deposit", "withdrawal"] = Field(
        default="deposit", description="a deposit page, or a cash-out page"
    )
    player_id: str = Field(min_length=1, max_length=40)
    currency: str = Field(min_length=3, max_length=3)
    amount: StrictInt | None = Field(
        default=None, gt=0, le=10**13, description="minor units; fixed: the player cannot change it"
    )
    amount_presets: list[StrictInt] | None = Field(
        default=None, max_length=6, description="minor units, offered as buttons (deposits)"
    )
    min_amount: StrictInt | None = Field(default=None, gt=0, le=10**13)
    max_amount: StrictInt | None = Field(default=None, gt=0, le=10**13)
    methods: list[str] | None = Field(
        default=None, min_length=1, max_length=6, description="offer only these methods"
    )
    return_url: str = Field(
        max_length=500,
        description="where the player goes back to (https://); `{CHECKOUT_SESSION_ID}` in it "
        "is replaced by the session's id",
    )
    help_url: str | None = Field(
        default=None, max_length=500, description="the operator's responsible-gaming help page"
    )
    locale: Literal["kk", "ru", "en"] | None = Field(
        default=None, description="the page's language; default: the player's browser"
    )

    @field_validator("return_url", "help_url")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            problem = web_address_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("amount_presets")
    @classmethod
    def _presets(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(v <= 0 or v > 10**13 for v in value):
            raise ValueError("presets are positive amounts in minor units")
        return value

    @model_validator(mode="after")
    def _methods(self) -> "CheckoutSessionCreate":
        known = METHODS if self.kind == "deposit" else PAYOUT_METHODS
        for method in self.methods or []:
            if method not in known:
                raise ValueError(f"methods: {method!r} is not one of {', '.join(known)}")
        return self


class CheckoutSessionOut(BaseModel):
    id: str
    object: Literal["checkout_session"] = "checkout_session"
    kind: str
    status: Literal["open", "completed", "expired"]
    url: str = Field(description="send the player here, or embed it in an iframe")
    expires_at: datetime
    player_id: str
    currency: str
    amount: int | None
    min_amount: int
    max_amount: int
    amount_presets: list[int]
    methods: list[str] | None
    return_url: str
    locale: str | None
    payment_id: str | None = Field(description="the latest payment the player made here")
    payment_ids: list[str]
    created_at: datetime
    completed_at: datetime | None


def _bounds(body: CheckoutSessionCreate, settings: Settings) -> tuple[int, int, list[int]]:
    if body.kind == "withdrawal":
        low = max(settings.withdrawal_min_minor, body.min_amount or 0)
        high = body.max_amount or settings.checkout_max_amount_minor
        if body.amount is not None:
            low = high = body.amount
    elif body.amount is not None:
        low = high = body.amount
    else:
        low = body.min_amount or settings.checkout_min_amount_minor
        high = body.max_amount or max(settings.checkout_max_amount_minor, low)
    if low > high or (body.kind == "withdrawal" and low < settings.withdrawal_min_minor):
        raise Problem(
            422, "invalid_amount_range", f"the amount range [{low}, {high}] is empty or too low"
        )
    if body.kind == "withdrawal" or body.amount is not None:
        return low, high, []
    if body.amount_presets:
        outside = [p for p in body.amount_presets if not low <= p <= high]
        if outside:
            raise Problem(
                422, "invalid_amount_range", f"presets {outside} are outside [{low}, {high}]"
            )
        return low, high, sorted(set(body.amount_presets))
    return low, high, [p for p in DEFAULT_PRESETS if low <= p <= high][:4]


def _status(row: CheckoutSession, now: datetime) -> Literal["open", "completed", "expired"]:
    if row.completed_at is not None:
        return "completed"
    return "expired" if now >= row.expires_at else "open"


def _out(row: CheckoutSession, settings: Settings, now: datetime) -> CheckoutSessionOut:
    return CheckoutSessionOut(
        id=row.id,
        kind=row.kind,
        status=_status(row, now),
        url=f"{settings.api_url}/checkout/{session_token(settings, row.id)}",
        expires_at=row.expires_at,
        player_id=row.player_id,
        currency=row.currency,
        amount=row.amount_minor,
        min_amount=row.min_amount_minor,
        max_amount=row.max_amount_minor,
        amount_presets=list(row.amount_presets or []),
        methods=row.methods,
        return_url=row.return_url,
        locale=row.locale,
        payment_id=row.payment_id,
        payment_ids=list(row.payment_ids or []),
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


@router.post("/sessions", status_code=201, responses=_PROBLEMS)
async def create_checkout_session(
    body: CheckoutSessionCreate,
    session: SessionDep,
    settings: SettingsDep,
    merchant: MerchantDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CheckoutSessionOut:
    """A payment page for one player: single use, bound to the player and an amount range,
    expiring after `PAY_CHECKOUT_SESSION_TTL_SECONDS`. Redirect the player to `url` or embed it
    (the parent origin must be in `PAY_CHECKOUT_FRAME_ANCESTORS`)."""
    key = require_key(idempotency_key)
    if body.currency not in settings.currencies:
        raise Problem(
            422,
            "unsupported_currency",
            f"currency {body.currency!r} is not supported; "
            f"use one of {', '.join(sorted(settings.currencies))}",
        )
    low, high, presets = _bounds(body, settings)
    minted = new_id("cs")
    now = datetime.now(UTC)
    async with session.begin():
        stored = await idempotency.claim(
            session,
            scope="checkout_sessions",
            key=key,
            request_hash=fingerprint(body, secret=settings.idempotency_secret.get_secret_value()),
            response=idempotency.StoredResponse(resource_id=minted, status_code=201),
        )
        if stored is None:
            if await player_store.get_player(session, player_id=body.player_id) is None:
                raise Problem(404, "player_not_found", f"No player {body.player_id!r}")
            session.add(
                CheckoutSession(
                    id=minted,
                    token_sha256=token_digest(session_token(settings, minted)),
                    kind=body.kind,
                    player_id=body.player_id,
                    currency=body.currency,
                    amount_minor=body.amount,
                    min_amount_minor=low,
                    max_amount_minor=high,
                    amount_presets=presets,
                    methods=body.methods,
                    return_url=body.return_url,
                    help_url=body.help_url,
                    locale=body.locale,
                    merchant_key_id=merchant.key_id,
                    payment_ids=[],
                    details={},
                    expires_at=now + timedelta(seconds=settings.checkout_session_ttl_seconds),
                    created_at=now,
                    updated_at=now,
                )
            )
        session_id = stored.resource_id if stored else minted
    row = await session.get(CheckoutSession, session_id)
    assert row is not None
    return _out(row, settings, now)


@router.get("/sessions/{session_id}", responses=_PROBLEMS)
async def get_checkout_session(
    session_id: str, session: SessionDep, settings: SettingsDep, _: ReaderDep
) -> CheckoutSessionOut:
    """The session and the payments made through it (`completed` once a deposit succeeded or
    the withdrawal was requested)."""
    row = await session.get(CheckoutSession, session_id)
    if row is None:
        raise Problem(404, "checkout_session_not_found", f"No checkout session {session_id!r}")
    now = datetime.now(UTC)
    if row.completed_at is None and row.kind == "deposit" and row.payment_id:
        deposit = await session.get(Deposit, row.payment_id)
        if deposit is not None and deposit.status == "succeeded":
            await store.complete(session, session_id=row.id, now=now)
            await session.commit()
            await session.refresh(row)
    return _out(row, settings, now)


# -- the player's pages ----------------------------------------------------------------------------


@dataclass
class Visit:
    """One request of the player's: the session, the language, the time."""

    row: CheckoutSession
    token: str
    lang: str
    now: datetime
    settings: Settings
    state: AppState

    @property
    def base(self) -> str:
        return f"/checkout/{self.token}"

    @property
    def return_url(self) -> str:
        return self.row.return_url.replace(SESSION_ID_PLACEHOLDER, self.row.id)

    def frame(self) -> html.Frame:
        return html.Frame(
            base=self.base,
            poll_ms=int(self.settings.checkout_poll_seconds * 1000),
            parents=tuple(self.settings.checkout_frame_ancestors),
        )

    def csrf(self, form: str) -> str:
        return csrf_token(self.settings, self.row.id, form)

    @property
    def expired(self) -> bool:
        return self.now >= self.row.expires_at


def _limiter(request: Request, settings: Settings) -> CheckoutLimiter:
    limiter: CheckoutLimiter | None = getattr(request.app.state, "checkout_limiter", None)
    if limiter is None:
        limiter = CheckoutLimiter(settings)
        request.app.state.checkout_limiter = limiter
    return limiter


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _accept_lang(request: Request, settings: Settings) -> str:
    return pick_language(
        session=None,
        chosen=request.query_params.get("lang"),
        accept=request.headers.get("accept-language"),
        default=settings.checkout_default_locale,
    )


def _html(page: html.Page, settings: Settings, frame: html.Frame | None) -> HTMLResponse:
    return HTMLResponse(
        html.layout(page, frame),
        status_code=page.status,
        headers=page_headers(settings, form_targets=page.form_targets),
    )


def _notice(
    settings: Settings,
    lang: str,
    status: int,
    title: str,
    text: str | None,
    return_url: str | None = None,
    retry_after: int | None = None,
) -> HTMLResponse:
    page = html.Page(lang, t(lang, title), html.notice(lang, title, text, return_url), status)
    response = _html(page, settings, None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _guard(
    request: Request, token: str | None, settings: Settings, *, page: bool
) -> Response | None:
    """The rate limits; a malformed token is answered like an unknown one."""
    refusal = await _limiter(request, settings).hit(token=token, ip=_client_ip(request))
    if refusal is not None:
        if page:
            lang = _accept_lang(request, settings)
            return _notice(
                settings,
                lang,
                429,
                "too_many_title",
                "too_many_text",
                retry_after=refusal.retry_after,
            )
        return JSONResponse(
            {
                "type": "https://docs.kzpay.example/errors/rate_limited",
                "title": "Too many requests",
                "status": 429,
                "detail": "too many requests for this checkout session",
                "code": "rate_limited",
            },
            status_code=429,
            media_type=PROBLEM_JSON,
            headers={"Retry-After": str(refusal.retry_after), "Cache-Control": "no-store"},
        )
    return None


async def _visit(request: Request, token: str, db: AsyncSession, state: AppState) -> Visit | None:
    settings = state.settings
    if not well_formed(token):
        return None
    row = await store.by_token_digest(db, token_digest(token))
    if row is None:
        return None
    chosen = request.query_params.get("lang")
    if chosen in LANGS and (row.details or {}).get("lang") != chosen:
        row.details = {**(row.details or {}), "lang": chosen}
    lang = pick_language(
        session=(row.details or {}).get("lang") or row.locale,
        chosen=None,
        accept=request.headers.get("accept-language"),
        default=settings.checkout_default_locale,
    )
    return Visit(
        row=row, token=token, lang=lang, now=datetime.now(UTC), settings=settings, state=state
    )


def _not_found(request: Request, settings: Settings) -> HTMLResponse:
    lang = _accept_lang(request, settings)
    return _notice(settings, lang, 404, "not_found_title", "not_found_text")


def _again(visit: Visit) -> RedirectResponse:
    """Post, then redirect, then get: a refresh never posts a form (or a card) again."""
    return RedirectResponse(
        visit.base,
        status_code=303,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def _form(request: Request, settings: Settings) -> dict[str, str] | None:
    """The urlencoded form, or None when it is not one of this platform's own pages' forms."""
    origin = request.headers.get("origin")
    own = {origin_of(settings.api_url), origin_of(str(request.base_url))}
    if origin and origin != "null" and origin not in own:
        return None
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=40
        )
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _deposit_view(deposit: Deposit | None) -> str:
    if deposit is None:
        return ""
    return f"{deposit.id}:{deposit.status}:{(deposit.next_action or {}).get('type', '')}"


async def _offers(db: AsyncSession, visit: Visit) -> list[MethodOffer]:
    settings, row = visit.settings, visit.row
    names = [rule.name for rule in settings.providers]
    circuits = await gateway_store.circuits(db, providers=names)
    cooldown = settings.circuit_policy().cooldown
    return offer_methods(
        settings.providers,
        circuits={n: c.effective_state(visit.now, cooldown) for n, c in circuits.items()},
        currency=row.currency,
        low=row.min_amount_minor,
        high=row.max_amount_minor,
        allowed=row.methods,
        used=await store.methods_used(db, player_id=row.player_id),
    )


def _range_values(visit: Visit, high: int | None = None) -> dict[str, str]:
    row = visit.row
    return {
        "min": format_amount(row.min_amount_minor, row.currency, visit.lang),
        "max": format_amount(high or row.max_amount_minor, row.currency, visit.lang),
    }


async def _deposit_page(db: AsyncSession, visit: Visit) -> html.Page:
    row, lang, settings = visit.row, visit.lang, visit.settings
    deposit = await db.get(Deposit, row.payment_id) if row.payment_id else None
    title = t(lang, "title_deposit")
    if deposit is not None and deposit.status in ("succeeded", *IN_FLIGHT):
        amount, currency = deposit.amount_minor, deposit.currency
        poll = f"{visit.base}/status"
        view = _deposit_view(deposit)
        if deposit.status == "succeeded":
            if row.completed_at is None:
                await store.complete(db, session_id=row.id, now=visit.now)
            return html.Page(
                lang,
                t(lang, "succeeded_title"),
                html.succeeded(lang, amount, currency, visit.return_url),
                redirect=visit.return_url,
            )
        if deposit.status == "unknown":
            return html.Page(
                lang,
                title,
                html.notice(lang, "unknown_title", "unknown_text", None),
                poll_url=poll,
                view=view,
            )
        action = deposit.next_action or {}
        kind = action.get("type") if deposit.status == "requires_action" else None
        expires = _parse_time(action.get("expires_at"))
        targets: list[str] = []
        if kind == "qr":
            body = html.qr_action(
                lang,
                base=visit.base,
                action=action,
                amount=amount,
                currency=currency,
                expires_at=expires,
                now=visit.now,
            )
        elif kind == "app_confirm":
            body = html.app_action(
                lang,
                action=action,
                amount=amount,
                currency=currency,
                expires_at=expires,
                now=visit.now,
            )
        elif kind == "bank_transfer_instructions":
            body = html.transfer_action(
                lang, action=action, amount=amount, currency=currency, expires_at=expires
            )
        elif kind == "redirect" and str(action.get("url", "")).startswith(("https://", "http://")):
            body = html.redirect_action(
                lang, action=action, method=deposit.method, amount=amount, currency=currency
            )
            target = origin_of(str(action["url"]))
            if action.get("method") == "POST" and target:
                targets.append(target)
        else:
            body = html.processing(lang, amount, currency, deposit.method)
        return html.Page(lang, title, body, poll_url=poll, view=view, form_targets=targets)
    if row.completed_at is not None:
        return html.Page(
            lang,
            t(lang, "session_done_title"),
            html.notice(lang, "session_done_title", None, visit.return_url),
        )
    if visit.expired:
        return html.Page(
            lang,
            t(lang, "session_expired_title"),
            html.notice(lang, "session_expired_title", "session_expired_text", visit.return_url),
            status=410,
        )
    if len(row.payment_ids or []) >= settings.checkout_max_attempts:
        return html.Page(
            lang, title, html.notice(lang, "title_deposit", "attempts_used", visit.return_url)
        )
    error: shown_errors.Shown | None = None
    if row.last_error and (
        row.last_error.startswith(("err_", "check_"))
        or row.last_error in ("form_expired", "attempts_used")
    ):
        error = shown_errors.Shown(row.last_error, row.last_error in shown_errors.CAREFUL)
    elif deposit is not None and (row.details or {}).get("dismissed") != deposit.id:
        error = shown_errors.for_outcome(deposit.status, deposit.status_reason)
    offers = await _offers(db, visit)
    chosen = next((o for o in offers if o.method == row.chosen_method), None)
    chosen_amount = row.chosen_amount_minor
    if chosen is not None and chosen_amount is not None and row.chosen_method in INPUT_METHODS:
        if chosen.method == "card":
            body = html.card_form(
                lang=lang,
                csrf=visit.csrf("pay"),
                back_csrf=visit.csrf("back"),
                base=visit.base,
                amount=chosen_amount,
                currency=row.currency,
                schemes=chosen.schemes,
                error=error.key if error else None,
                careful=bool(error and error.careful),
                help_url=row.help_url or settings.checkout_help_url,
            )
        else:
            player = await player_store.get_player(db, player_id=row.player_id)
            body = html.details_form(
                lang=lang,
                csrf=visit.csrf("pay"),
                back_csrf=visit.csrf("back"),
                base=visit.base,
                method=chosen.method,
                amount=chosen_amount,
                currency=row.currency,
                phone=player.phone if player else "",
                error=error.key if error else None,
                careful=bool(error and error.careful),
                help_url=row.help_url or settings.checkout_help_url,
            )
        return html.Page(lang, title, body)
    amounts = html.AmountChoice(
        currency=row.currency,
        fixed=row.amount_minor,
        low=row.min_amount_minor,
        high=row.max_amount_minor,
        presets=list(row.amount_presets or []),
        selected=row.chosen_amount_minor,
    )
    body = html.chooser(
        lang=lang,
        csrf=visit.csrf("choose"),
        base=visit.base,
        amounts=amounts,
        offers=offers,
        error=error.key if error else None,
        careful=bool(error and error.careful),
        help_url=row.help_url or settings.checkout_help_url,
        error_values=_range_values(visit),
    )
    return html.Page(lang, title, body)


async def _payout(db: AsyncSession, visit: Visit) -> PayoutOffer:
    row, settings = visit.row, visit.settings
    player = await player_store.get_player(db, player_id=row.player_id)
    balance = await player_store.get_balance(db, player_id=row.player_id, currency=row.currency)
    return payout_offer(
        available=balance.available_minor,
        deposits=await store.deposit_facts(db, player_id=row.player_id),
        withdrawn=await store.withdrawn_by_method(
            db, player_id=row.player_id, currency=row.currency
        ),
        phone=player.phone if player else "",
        holder_name=player.full_name if player else "",
        payout_providers=settings.payout_providers,
        allowed=row.methods,
        minimum=row.min_amount_minor,
    )


async def _withdrawal_page(db: AsyncSession, visit: Visit) -> html.Page:
    row, lang, settings = visit.row, visit.lang, visit.settings
    title = t(lang, "title_withdrawal")
    if row.payment_id:
        withdrawal = await db.get(Withdrawal, row.payment_id)
        if withdrawal is not None:
            hours = settings.checkout_payout_eta_hours.get(withdrawal.method, 24)
            body = html.withdrawal_status(
                lang=lang,
                status=withdrawal.status,
                amount=withdrawal.amount_minor,
                currency=withdrawal.currency,
                destination=html.destination_text(lang, withdrawal.method, withdrawal.destination),
                eta=withdrawal.created_at + timedelta(hours=hours),
                return_url=visit.return_url,
            )
            waiting = withdrawal.status in WD_OPEN
            return html.Page(
                lang,
                title,
                body,
                poll_url=f"{visit.base}/status" if waiting else None,
                view=f"{withdrawal.id}:{withdrawal.status}",
            )
    if visit.expired:
        return html.Page(
            lang,
            t(lang, "session_expired_title"),
            html.notice(lang, "session_expired_title", "session_expired_text", visit.return_url),
            status=410,
        )
    offer = await _payout(db, visit)
    high = min(row.max_amount_minor, max((d.max_amount for d in offer.destinations), default=0))
    body = html.withdraw_form(
        lang=lang,
        csrf=visit.csrf("withdraw"),
        base=visit.base,
        offer=offer,
        currency=row.currency,
        low=row.min_amount_minor,
        fixed=row.amount_minor,
        error=row.last_error,
        error_values=_range_values(visit, high),
        return_url=visit.return_url,
    )
    return html.Page(lang, title, body)


@pages.get("/assets/{name}")
async def checkout_asset(name: str) -> FileResponse:
    media_type = html.ASSETS.get(name)
    if media_type is None:
        raise Problem(404, "not_found", f"No checkout asset {name}")
    return FileResponse(
        html.STATIC / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@pages.get("/return/{session_id}/{mac}", response_class=HTMLResponse)
async def checkout_return(
    session_id: str, mac: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Where a provider's page sends the player back: the payment page (still open in the
    player's first tab) shows the result; this one only says so."""
    refused = await _guard(request, None, settings, page=True)
    if refused is not None:
        return refused
    row = await session.get(CheckoutSession, session_id[:40])
    if row is None or not check_return(settings, row.id, mac[:64]):
        return _not_found(request, settings)
    lang = pick_language(
        session=(row.details or {}).get("lang") or row.locale,
        chosen=None,
        accept=request.headers.get("accept-language"),
        default=settings.checkout_default_locale,
    )
    back = row.return_url.replace(SESSION_ID_PLACEHOLDER, row.id)
    return _notice(settings, lang, 200, "return_title", "return_text", back)


@pages.get("/{token}", response_class=HTMLResponse)
async def checkout_page(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    settings = state.settings
    refused = await _guard(request, token, settings, page=True)
    if refused is not None:
        return refused
    visit = await _visit(request, token, session, state)
    if visit is None:
        return _not_found(request, settings)
    if not visit.expired:
        await store.mark_opened(session, visit.row, now=visit.now)
    if visit.row.kind == "deposit":
        page = await _deposit_page(session, visit)
    else:
        page = await _withdrawal_page(session, visit)
    await session.commit()
    return _html(page, settings, visit.frame())


@pages.get("/{token}/status")
async def checkout_status(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    """What the page shows, as a key: the page reloads when it changes (polled)."""
    settings = state.settings
    refused = await _guard(request, token, settings, page=False)
    if refused is not None:
        return refused
    visit = await _visit(request, token, session, state)
    if visit is None:
        raise Problem(404, "checkout_session_not_found", "No such checkout session")
    row = visit.row
    view, status = "", None
    if row.payment_id and row.kind == "deposit":
        deposit = await session.get(Deposit, row.payment_id)
        view, status = _deposit_view(deposit), deposit.status if deposit else None
    elif row.payment_id:
        withdrawal = await session.get(Withdrawal, row.payment_id)
        if withdrawal is not None:
            view, status = f"{withdrawal.id}:{withdrawal.status}", withdrawal.status
    return JSONResponse(
        {"view": view, "status": status},
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@pages.get("/{token}/qr.png")
async def checkout_qr(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    refused = await _guard(request, token, state.settings, page=False)
    if refused is not None:
        return refused
    visit = await _visit(request, token, session, state)
    if visit is None or not visit.row.payment_id or visit.row.kind != "deposit":
        raise Problem(404, "qr_not_available", "This page has no QR code to scan")
    image = await deposit_api.deposit_qr(visit.row.payment_id, session)
    image.headers["Cache-Control"] = "no-store"
    return image


def _usable(visit: Visit) -> bool:
    """New payments may start: open, not paid, no attempt under way, attempts left."""
    row = visit.row
    return (
        not visit.expired
        and row.completed_at is None
        and len(row.payment_ids or []) < visit.settings.checkout_max_attempts
    )


async def _in_flight(db: AsyncSession, row: CheckoutSession) -> bool:
    if not row.payment_id:
        return False
    if row.kind == "withdrawal":
        return True
    deposit = await db.get(Deposit, row.payment_id)
    return deposit is not None and deposit.status in ("succeeded", *IN_FLIGHT)


async def _refuse(db: AsyncSession, visit: Visit, key: str) -> RedirectResponse:
    await store.set_error(db, session_id=visit.row.id, key=key, now=visit.now)
    await db.commit()
    return _again(visit)


_PHONE_NOISE = re.compile(r"[\s()\-]")


async def _submit_deposit(
    db: AsyncSession,
    visit: Visit,
    request: Request,
    *,
    method: str,
    amount: int,
    details: dict[str, Any],
    nonce: str,
) -> None:
    """Create the deposit through `POST /v1/deposits`'s own code, once per form (the nonce is its
    Idempotency-Key); the session then follows it. Card data lives only in `details` here."""
    row, settings, state = visit.row, visit.settings, visit.state
    if not await store.claim(db, session_id=row.id, nonce=nonce, now=visit.now):
        return  # another submission of this session is under way
    await db.commit()
    error: str | None = None
    created: str | None = None
    try:
        body = DepositCreate(
            player_id=row.player_id,
            amount=amount,
            currency=row.currency,
            method=method,
            details=details,
            client=ClientInfo(
                ip=_client_ip(request)[:64],
                user_agent=request.headers.get("user-agent", "")[:512] or None,
            ),
        )
        async with state.sessions() as deposits_db:
            out = await deposit_api.create_deposit(
                body, deposits_db, settings, state, idempotency_key=f"checkout:{row.id}:{nonce}"
            )
        created = out.id
    except Problem as exc:
        error = shown_errors.for_problem(exc.code).key
    except idempotency.IdempotencyKeyReused:
        error = "form_expired"
    except ValidationError:
        error = "err_details"
    finally:
        details.clear()  # the card data goes no further than the deposit's own code
        if created is None and error is None:
            error = "err_generic"
        await store.finish_claim(
            db, row=row, nonce=nonce, now=datetime.now(UTC), payment_id=created, error=error
        )
        if created is not None:
            await store.record_event(
                db,
                session_id=row.id,
                kind="submitted",
                method=method,
                payment_id=created,
                now=datetime.now(UTC),
                attempt=len(row.payment_ids or []) + 1,
            )
            await store.choose(
                db, session_id=row.id, method=None, amount_minor=None, now=datetime.now(UTC)
            )
        await db.commit()


def _dismissed(row: CheckoutSession) -> None:
    """The last attempt's refusal has been read: do not show it again."""
    if row.payment_id:
        row.details = {**(row.details or {}), "dismissed": row.payment_id}


@dataclass(frozen=True)
class Posted:
    """A player's form post that passed the gates: the visit, the fields, the form's nonce."""

    visit: Visit
    form: dict[str, str]
    nonce: str


async def _posted(
    request: Request,
    token: str,
    state: AppState,
    db: AsyncSession,
    *,
    form_name: str,
    kind: str | None,
) -> Posted | Response:
    """Every form post passes the same gates in the same order (limits, the session, its kind,
    the form's CSRF token); a refusal is the response to send back."""
    settings = state.settings
    refused = await _guard(request, token, settings, page=True)
    if refused is not None:
        return refused
    visit = await _visit(request, token, db, state)
    if visit is None or (kind is not None and visit.row.kind != kind):
        return _not_found(request, settings)
    form = await _form(request, settings)
    nonce = check_csrf(settings, visit.row.id, form_name, (form or {}).get("csrf"))
    if form is None or nonce is None:
        return await _refuse(db, visit, "form_expired")
    return Posted(visit=visit, form=form, nonce=nonce)


@pages.post("/{token}/choose")
async def checkout_choose(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    """Amount and method picked: methods that need details show their form; the others (QR,
    bank transfer, an aggregator's page) start the payment at once."""
    posted = await _posted(request, token, state, session, form_name="choose", kind="deposit")
    if not isinstance(posted, Posted):
        return posted
    visit, form, nonce, settings = posted.visit, posted.form, posted.nonce, state.settings
    row = visit.row
    if not _usable(visit) or await _in_flight(session, row):
        return _again(visit)
    offers = await _offers(session, visit)
    offer = next((o for o in offers if o.method == form.get("method")), None)
    if row.amount_minor is not None:
        amount: int | None = row.amount_minor
    elif form.get("amount") == "other":
        amount = parse_major(form.get("amount_other", ""), row.currency)
    else:
        picked = form.get("amount", "")
        amount = int(picked) if picked.isdigit() and len(picked) <= 14 else None
    if amount is None or not row.min_amount_minor <= amount <= row.max_amount_minor:
        return await _refuse(session, visit, "err_amount")
    if offer is None or not offer.takes(amount):
        return await _refuse(session, visit, "err_method_unavailable")
    _dismissed(row)
    await store.record_event(
        session, session_id=row.id, kind="method_chosen", method=offer.method, now=visit.now
    )
    await store.choose(
        session, session_id=row.id, method=offer.method, amount_minor=amount, now=visit.now
    )
    await session.commit()
    if offer.method not in INPUT_METHODS:
        details: dict[str, Any] = {}
        if offer.method == "aggregator":
            mac = return_mac(settings, row.id)
            details["return_url"] = f"{settings.api_url}/checkout/return/{row.id}/{mac}"
        await _submit_deposit(
            session,
            visit,
            request,
            method=offer.method,
            amount=amount,
            details=details,
            nonce=nonce,
        )
    return _again(visit)


def _card_details(form: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """The card as `POST /v1/deposits` takes it, or the refusal code; checked again there."""
    number = "".join(ch for ch in form.get("number", "") if ch not in " -")
    expiry = re.fullmatch(r"\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*", form.get("expiry", ""))
    if expiry is None:
        return None, "invalid_expiry"
    month, year = int(expiry.group(1)), int(expiry.group(2))
    year = year + 2000 if year < 100 else year
    if not 1 <= month <= 12:
        return None, "invalid_expiry"
    holder = " ".join(form.get("holder", "").split())
    if len(holder) > 100 or not holder.isprintable():
        return None, "invalid_details"
    card = {
        "number": number,
        "exp_month": month,
        "exp_year": year,
        "cvc": form.get("cvc", "").strip(),
        "holder": holder or None,
    }
    return {"card": card}, None


@pages.post("/{token}/pay")
async def checkout_pay(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    """The details of the chosen method (the card itself, for cards): the payment starts."""
    posted = await _posted(request, token, state, session, form_name="pay", kind="deposit")
    if not isinstance(posted, Posted):
        return posted
    visit, form, nonce = posted.visit, posted.form, posted.nonce
    row = visit.row
    method, amount = row.chosen_method, row.chosen_amount_minor
    if (
        not _usable(visit)
        or await _in_flight(session, row)
        or method not in INPUT_METHODS
        or amount is None
        or form.get("method") != method
    ):
        return _again(visit)
    details: dict[str, Any] | None
    if method == "card":
        details, problem = _card_details(form)
        if details is not None:
            offer = next((o for o in await _offers(session, visit) if o.method == "card"), None)
            scheme = card_scheme(str(details["card"]["number"]))
            if offer is not None and scheme != "unknown" and scheme not in offer.schemes:
                details, problem = None, "scheme_not_accepted"
        if details is None:
            return await _refuse(session, visit, shown_errors.for_problem(problem or "").key)
    elif method == "ewallet":
        details = {"wallet_account": form.get("wallet_account", "").strip()}
    else:
        details = {"phone": _PHONE_NOISE.sub("", form.get("phone", ""))}
    await _submit_deposit(
        session, visit, request, method=method, amount=amount, details=details, nonce=nonce
    )
    return _again(visit)


@pages.post("/{token}/back")
async def checkout_back(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    posted = await _posted(request, token, state, session, form_name="back", kind=None)
    if not isinstance(posted, Posted):
        return posted
    visit = posted.visit
    _dismissed(visit.row)
    await store.choose(
        session,
        session_id=visit.row.id,
        method=None,
        amount_minor=visit.row.chosen_amount_minor,
        now=visit.now,
    )
    await session.commit()
    return _again(visit)


@pages.post("/{token}/withdraw")
async def checkout_withdraw(
    token: str, request: Request, state: StateDep, session: SessionDep
) -> Response:
    """A cash-out to one of the offered destinations, through `POST /v1/withdrawals`'s code."""
    posted = await _posted(request, token, state, session, form_name="withdraw", kind="withdrawal")
    if not isinstance(posted, Posted):
        return posted
    visit, form, nonce, settings = posted.visit, posted.form, posted.nonce, state.settings
    row = visit.row
    if row.payment_id or not _usable(visit):
        return _again(visit)
    offer = await _payout(session, visit)
    destination = offer.find(form.get("destination", ""))
    if destination is None:
        return await _refuse(session, visit, "err_details")
    amount = parse_major(form.get("amount", ""), row.currency)
    high = min(row.max_amount_minor, destination.max_amount)
    if (
        amount is None
        or not row.min_amount_minor <= amount <= high
        or (row.amount_minor is not None and amount != row.amount_minor)
    ):
        return await _refuse(session, visit, "err_amount")
    target: dict[str, Any] = dict(destination.request)
    if "iban" in destination.typed:
        target["iban"] = "".join(form.get("iban", "").split()).upper()
    if not await store.claim(session, session_id=row.id, nonce=nonce, now=visit.now):
        return _again(visit)
    await session.commit()
    created: str | None = None
    error: str | None = None
    try:
        body = WithdrawalCreate(
            player_id=row.player_id,
            amount=amount,
            currency=row.currency,
            method=destination.method,
            destination=target,
            client=ClientInfo(
                ip=_client_ip(request)[:64],
                user_agent=request.headers.get("user-agent", "")[:512] or None,
            ),
        )
        merchant = KeyHolder(key_id=row.merchant_key_id, name="hosted checkout", role=Role.MERCHANT)
        async with state.sessions() as withdrawals_db:
            out = await withdrawal_api.create_withdrawal(
                body,
                withdrawals_db,
                settings,
                state,
                merchant,
                idempotency_key=f"checkout:{row.id}:{nonce}",
            )
        created = out.id
    except Problem as exc:
        error = shown_errors.for_problem(exc.code).key
    except idempotency.IdempotencyKeyReused:
        error = "form_expired"
    except ValidationError:
        error = "err_details"
    finally:
        if created is None and error is None:
            error = "err_generic"
        await store.finish_claim(
            session,
            row=row,
            nonce=nonce,
            now=datetime.now(UTC),
            payment_id=created,
            error=error,
            completed=created is not None,
        )
        await session.commit()
    return _again(visit)


# -- the funnel --------------------------------------------------------------------------------


class FunnelTotals(BaseModel):
    created: int = Field(description="deposit sessions created in the range")
    opened: int
    method_chosen: int
    submitted: int
    succeeded: int
    conversion: float | None = Field(description="succeeded / opened")


class FunnelMethod(BaseModel):
    method: str
    chosen: int
    submitted: int
    succeeded: int
    attempts: int = Field(description="payments submitted (a session may try more than once)")
    volume_minor: int = Field(description="succeeded amount, minor units")
    conversion: float | None = Field(description="succeeded / chosen")


class FunnelProvider(BaseModel):
    method: str
    provider: str
    attempts: int
    succeeded: int
    unsuccessful: int
    approval_rate: float | None


class CheckoutFunnel(BaseModel):
    object: Literal["analytics.checkout_funnel"] = "analytics.checkout_funnel"
    from_: datetime = Field(alias="from")
    to: datetime
    currency: str
    totals: FunnelTotals
    by_method: list[FunnelMethod]
    by_provider: list[FunnelProvider]

    model_config = {"populate_by_name": True}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@analytics.get(
    "/checkout-funnel",
    response_model=CheckoutFunnel,
    response_model_by_alias=True,
    responses={422: {"description": "invalid_range"}},
)
async def checkout_funnel(
    session: SessionDep,
    _: OperatorDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "KZT",
) -> CheckoutFunnel:
    """Hosted checkout deposit sessions created in `[from, to)` (default: the last 30 days):
    page opened -> method chosen -> submitted -> succeeded, per method and per provider."""
    try:
        end = _utc(to) if to else datetime.now(UTC)
        start = _utc(from_) if from_ else end - timedelta(days=30)
    except OverflowError as exc:  # a time at the edge of the calendar, shifted out of it
        raise Problem(422, "invalid_range", "`from` and `to` must be real times") from exc
    if start >= end:
        raise Problem(422, "invalid_range", "`from` must be before `to`")
    if end - start > timedelta(days=3660):
        raise Problem(422, "invalid_range", "The range may span at most ten years")
    found = await funnel_store.funnel(session, start=start, end=end, currency=currency)
    return CheckoutFunnel.model_validate(
        {
            "from": start,
            "to": end,
            "currency": currency,
            "totals": found.totals,
            "by_method": found.by_method,
            "by_provider": found.by_provider,
        }
    )
