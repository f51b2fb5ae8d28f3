"""The risk team's API (operator role): decisions with their explanation, the review queue, and
the block and allow lists.

- `GET /v1/risk/decisions/{payment_id}`: the decision, the facts the rules read, every configured
  rule's result (hit, action, score, shadow, suppressed by an allow list), the rule set's version
  label and content hash.
- `GET /v1/risk/reviews?status=pending`: deposits the engine sent to review, with score and
  reasons (approve or reject them at `/v1/deposits/{id}/approve|reject`).
- `/v1/risk/lists`: block and allow lists of IINs, card fingerprints (a PAN given here is turned
  into its fingerprint and never kept), devices, IPs or CIDR ranges, IBANs, phones and wallet
  accounts, each with a reason, the operator, an optional expiry and an audit trail of every
  change. The engine checks them before any other rule.
"""

import ipaddress
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, Field, field_validator

from api import listing
from api.deposit_methods import card_fingerprint_key
from api.deps import OperatorDep, SessionDep, SettingsDep
from api.errors import Problem
from api.idempotency import fingerprint, require_key
from api.schemas import StrictModel
from db import idempotency
from db import risk as risk_store
from db.fraud_models import RiskListEntry, RiskListEvent
from domain.cards import luhn_valid
from domain.fraud.geo import card_fingerprint
from domain.iban import InvalidIBAN, parse_kz_iban
from domain.iin import InvalidIIN, parse_iin
from domain.phone import is_kz_mobile

router = APIRouter(prefix="/v1/risk", tags=["risk"])

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "idempotency_key_required / invalid_cursor"},
    401: {"description": "unauthorized"},
    403: {"description": "forbidden: operator role"},
    404: {"description": "decision_not_found / list_entry_not_found"},
    409: {"description": "list_entry_exists / idempotency_key_reused"},
    422: {"description": "invalid_list_value, validation_error"},
}

# -- decisions -----------------------------------------------------------------------------------


class RuleResultOut(BaseModel):
    code: str
    hit: bool
    action: str
    score: int
    shadow: bool = False
    suppressed: bool = False


class DecisionOut(BaseModel):
    payment_id: str
    object: Literal["risk_decision"] = "risk_decision"
    kind: str
    player_id: str
    amount: int
    currency: str
    method: str
    decision: str
    score: int
    reasons: list[str]
    shadow_hits: list[str] = Field(description="shadow rules that fired (they never act)")
    version: str
    rules_hash: str | None
    rules: list[RuleResultOut] = Field(description="every configured rule's result")
    facts: dict[str, Any] | None = Field(description="what the rules read, as they read it")
    signals: dict[str, Any] = Field(description="what the payment is linked to others by")
    created_at: datetime
    decided_at: datetime


@router.get("/decisions/{payment_id}", responses=_PROBLEMS)
async def get_decision(payment_id: str, session: SessionDep, _: OperatorDep) -> DecisionOut:
    row = await risk_store.get_decision(session, payment_id=payment_id)
    if row is None:
        raise Problem(404, "decision_not_found", f"No risk decision for {payment_id!r}")
    results = [RuleResultOut.model_validate(r) for r in row.rule_results or []]
    return DecisionOut(
        payment_id=row.payment_id,
        kind=row.kind,
        player_id=row.player_id,
        amount=row.amount_minor,
        currency=row.currency,
        method=row.method,
        decision=row.decision,
        score=row.score,
        reasons=list(row.reasons),
        shadow_hits=[r.code for r in results if r.hit and r.shadow],
        version=row.version,
        rules_hash=row.rules_hash,
        rules=results,
        facts=row.facts,
        signals={
            "card": row.card_key,
            "card_country": row.card_country,
            "device_id": row.device_id,
            "ip": row.ip,
            "ip_country": row.ip_country,
            "destination": row.destination_key,
        },
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


# -- reviews -------------------------------------------------------------------------------------


class ReviewItemOut(BaseModel):
    deposit_id: str
    player_id: str
    amount: int
    currency: str
    method: str
    deposit_status: str
    provider: str | None
    mode: str = Field(description="hold: not credited; credit: withdrawals blocked")
    status: str
    score: int
    reasons: list[str]
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decided_by_name: str | None
    reason: str | None


class ReviewList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ReviewItemOut]
    next_cursor: str | None


@router.get("/reviews", responses=_PROBLEMS)
async def list_reviews(
    session: SessionDep,
    _: OperatorDep,
    status: Literal["pending", "approved", "rejected"] | None = "pending",
    limit: listing.Limit = 50,
    cursor: str | None = None,
    include_lapsed: Annotated[
        bool,
        Query(
            description="Also pending reviews of deposits that expired or failed unpaid "
            "(nothing to decide: money that arrives late puts the deposit back in review)"
        ),
    ] = False,
) -> ReviewList:
    """The deposit review queue, newest first (`cursor`: the `created_at` of the last row)."""
    try:
        before = datetime.fromisoformat(cursor) if cursor else None
    except ValueError as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc
    rows = await risk_store.list_reviews(
        session, status=status, limit=limit + 1, before=before, include_lapsed=include_lapsed
    )
    data = [
        ReviewItemOut(
            deposit_id=r.deposit_id,
            player_id=r.player_id,
            amount=d["amount_minor"],
            currency=d["currency"],
            method=d["method"],
            deposit_status=d["status"],
            provider=d["provider"],
            mode=r.mode,
            status=r.status,
            score=r.score,
            reasons=list(r.reasons),
            created_at=r.created_at,
            decided_at=r.decided_at,
            decided_by=r.decided_by,
            decided_by_name=r.decided_by_name,
            reason=r.reason,
        )
        for r, d in rows
    ]
    more = len(data) > limit
    data = data[:limit]
    return ReviewList(
        data=data, next_cursor=data[-1].created_at.isoformat() if more and data else None
    )


# -- lists ---------------------------------------------------------------------------------------

ListKind = Literal["iin", "card", "device", "ip", "iban", "phone", "wallet"]
EntryId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ListEntryCreate(StrictModel):
    list_type: Literal["block", "allow"]
    kind: ListKind
    value: str = Field(
        min_length=1,
        max_length=128,
        pattern=_PRINTABLE,
        description="iin: 12 digits; card: a card fingerprint (from a decision) or a card "
        "number (turned into its fingerprint, never kept); device: the device id; ip: an "
        "address or CIDR range; iban: a KZ IBAN; phone: +77XXXXXXXXX; wallet: the account id",
    )
    reason: str = Field(min_length=1, max_length=500, pattern=_PRINTABLE)
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at needs a time zone (RFC 3339)")
        return value


class ListEntryUpdate(StrictModel):
    reason: str | None = Field(default=None, min_length=1, max_length=500, pattern=_PRINTABLE)
    expires_at: datetime | None = None
    clear_expiry: bool = False


class ListEntryRemove(StrictModel):
    reason: str = Field(min_length=1, max_length=500, pattern=_PRINTABLE)


class ListEventOut(BaseModel):
    id: int
    entry_id: int
    action: str
    actor: str
    reason: str | None
    details: dict[str, Any]
    at: datetime


class ListEntryOut(BaseModel):
    id: int
    object: Literal["risk_list_entry"] = "risk_list_entry"
    list_type: str
    kind: str
    value: str
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    active: bool
    removed_at: datetime | None
    removed_by: str | None
    removed_reason: str | None
    events: list[ListEventOut] | None = None


class ListEntryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ListEntryOut]
    next_cursor: str | None


class ListEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ListEventOut]
    next_cursor: str | None


def _entry_out(
    entry: RiskListEntry, now: datetime, events: list[RiskListEvent] | None = None
) -> ListEntryOut:
    active = entry.removed_at is None and (entry.expires_at is None or entry.expires_at > now)
    return ListEntryOut(
        id=entry.id,
        list_type=entry.list_type,
        kind=entry.kind,
        value=entry.value,
        reason=entry.reason,
        created_by=entry.created_by,
        created_at=entry.created_at,
        expires_at=entry.expires_at,
        active=active,
        removed_at=entry.removed_at,
        removed_by=entry.removed_by,
        removed_reason=entry.removed_reason,
        events=[_event_out(e) for e in events] if events is not None else None,
    )


def _event_out(event: RiskListEvent) -> ListEventOut:
    return ListEventOut(
        id=event.id,
        entry_id=event.entry_id,
        action=event.action,
        actor=event.actor,
        reason=event.reason,
        details=event.details,
        at=event.at,
    )


def _invalid(detail: str) -> Problem:
    return Problem(422, "invalid_list_value", detail)


def normalize_value(kind: str, value: str, *, card_secret: str) -> tuple[str, str | None]:
    """The value as the engine compares it, and (an IP) its network."""
    raw = value.strip()
    if kind == "iin":
        try:
            return parse_iin(raw).value, None
        except InvalidIIN as exc:
            raise _invalid(f"value: {exc}") from exc
    if kind == "card":
        digits = raw.replace(" ", "").replace("-", "")
        if digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19:
            if not luhn_valid(digits):
                raise _invalid("value: the card number is not valid (Luhn check)")
            return card_fingerprint(digits, card_secret), None
        hexa = raw.lower()
        if len(hexa) == 64 and all(c in "0123456789abcdef" for c in hexa):
            return hexa, None
        raise _invalid("value: a card number or a card fingerprint (64 hex digits)")
    if kind == "ip":
        try:
            network = ipaddress.ip_network(raw, strict=False)
        except ValueError as exc:
            raise _invalid("value: an IP address or a CIDR range") from exc
        return str(network), str(network)
    if kind == "iban":
        try:
            return parse_kz_iban(raw), None
        except InvalidIBAN as exc:
            raise _invalid(f"value: {exc}") from exc
    if kind == "phone":
        if not is_kz_mobile(raw):
            raise _invalid("value: a Kazakh mobile number, +77 and 9 digits")
        return raw, None
    if not raw:
        raise _invalid("value: must not be blank")
    return raw, None  # device, wallet


@router.get("/lists", responses=_PROBLEMS)
async def list_entries(
    session: SessionDep,
    settings: SettingsDep,
    _: OperatorDep,
    list_type: Literal["block", "allow"] | None = None,
    kind: ListKind | None = None,
    value: Annotated[str | None, Query(max_length=128)] = None,
    include_inactive: bool = False,
    limit: listing.Limit = 50,
    cursor: str | None = None,
) -> ListEntryList:
    """Live entries (or, with `include_inactive`, removed and expired ones too), newest first."""
    now = datetime.now(UTC)
    if value is not None and kind is not None:
        value, _network = normalize_value(kind, value, card_secret=card_fingerprint_key(settings))
    try:
        before_id = int(cursor) if cursor else None
        if before_id is not None and not 0 < before_id < 2**63:
            raise ValueError(cursor)
    except ValueError as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc
    rows = await risk_store.list_entries(
        session,
        list_type=list_type,
        kind=kind,
        value=value,
        include_inactive=include_inactive,
        now=now,
        limit=limit + 1,
        before_id=before_id,
    )
    page = rows[:limit]
    return ListEntryList(
        data=[_entry_out(e, now) for e in page],
        next_cursor=str(page[-1].id) if len(rows) > limit and page else None,
    )


@router.post("/lists", status_code=201, responses=_PROBLEMS)
async def add_entry(
    body: ListEntryCreate,
    session: SessionDep,
    settings: SettingsDep,
    operator: OperatorDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> ListEntryOut:
    """Add an entry to a block or allow list (checked first by every later decision)."""
    key = require_key(idempotency_key)
    now = datetime.now(UTC)
    if body.expires_at is not None and body.expires_at <= now:
        raise Problem(422, "invalid_expiry", "expires_at must be in the future")
    value, network = normalize_value(
        body.kind, body.value, card_secret=card_fingerprint_key(settings)
    )
    async with session.begin():
        stored = await idempotency.claim(
            session,
            scope="risk_lists",
            key=key,
            request_hash=fingerprint(body, secret=settings.idempotency_secret.get_secret_value()),
        )
        if stored is not None:
            entry_id = int(stored.resource_id)
        else:
            try:
                entry = await risk_store.add_entry(
                    session,
                    list_type=body.list_type,
                    kind=body.kind,
                    value=value,
                    network=network,
                    reason=body.reason,
                    actor=f"{operator.key_id} ({operator.name})"[:128],
                    expires_at=body.expires_at,
                    now=now,
                )
            except risk_store.ListEntryExists as exc:
                raise Problem(
                    409,
                    "list_entry_exists",
                    f"this {body.kind} is on the {body.list_type} list already "
                    f"(entry {exc.entry_id}): change or remove that one",
                ) from exc
            entry_id = entry.id
            await idempotency.complete(
                session, scope="risk_lists", key=key, resource_id=str(entry_id), status_code=201
            )
    return await _shown(session, entry_id)


async def _shown(session: SessionDep, entry_id: int) -> ListEntryOut:
    entry = await risk_store.get_entry(session, entry_id=entry_id)
    if entry is None:
        raise Problem(404, "list_entry_not_found", f"No list entry {entry_id}")
    events = await risk_store.entry_events(session, entry_id=entry_id, limit=200)
    return _entry_out(entry, datetime.now(UTC), events)


@router.get("/lists/events", responses=_PROBLEMS)
async def list_events(
    session: SessionDep,
    _: OperatorDep,
    limit: listing.Limit = 50,
    cursor: str | None = None,
) -> ListEventList:
    """The lists' audit trail: every addition, change and removal, newest first."""
    try:
        before_id = int(cursor) if cursor else None
        if before_id is not None and not 0 < before_id < 2**63:
            raise ValueError(cursor)
    except ValueError as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc
    rows = await risk_store.entry_events(
        session, entry_id=None, limit=limit + 1, before_id=before_id
    )
    page = rows[:limit]
    return ListEventList(
        data=[_event_out(e) for e in page],
        next_cursor=str(page[-1].id) if len(rows) > limit and page else None,
    )


@router.get("/lists/{entry_id}", responses=_PROBLEMS)
async def get_entry(entry_id: EntryId, session: SessionDep, _: OperatorDep) -> ListEntryOut:
    return await _shown(session, entry_id)


@router.patch("/lists/{entry_id}", responses=_PROBLEMS)
async def update_entry(
    entry_id: EntryId, body: ListEntryUpdate, session: SessionDep, operator: OperatorDep
) -> ListEntryOut:
    """Change a live entry's reason or expiry (`clear_expiry`: it no longer expires)."""
    now = datetime.now(UTC)
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Problem(422, "invalid_expiry", "expires_at needs a time zone (RFC 3339)")
    async with session.begin():
        entry = await risk_store.update_entry(
            session,
            entry_id=entry_id,
            actor=f"{operator.key_id} ({operator.name})"[:128],
            reason=body.reason,
            expires_at=body.expires_at,
            clear_expiry=body.clear_expiry,
            now=now,
        )
        if entry is None:
            raise Problem(404, "list_entry_not_found", f"No live list entry {entry_id}")
    return await _shown(session, entry_id)


@router.post("/lists/{entry_id}/remove", responses=_PROBLEMS)
async def remove_entry(
    entry_id: EntryId, body: ListEntryRemove, session: SessionDep, operator: OperatorDep
) -> ListEntryOut:
    """Take an entry off its list, with a reason (kept in the audit trail); again: harmless."""
    async with session.begin():
        entry, _changed = await risk_store.remove_entry(
            session,
            entry_id=entry_id,
            actor=f"{operator.key_id} ({operator.name})"[:128],
            reason=body.reason,
            now=datetime.now(UTC),
        )
        if entry is None:
            raise Problem(404, "list_entry_not_found", f"No list entry {entry_id}")
    return await _shown(session, entry_id)
