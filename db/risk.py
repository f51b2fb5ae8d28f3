"""The risk team's records: deposits held for review, block and allow lists with their audit trail.

Reviews: `open_review` when the engine sends a deposit to review (mode `hold` or `credit`),
`decide_review` when an operator approves or rejects it, `blocking_reviews` for the withdrawals a
credited deposit under review (or rejected) holds back.

Lists: entries are added, changed (reason, expiry) and removed by operators, never deleted; each
change is an event of the audit trail with the operator and the reason. A live entry (not removed,
not expired) is unique per list, kind and value, and the decisions read them (db/fraud.py).
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.fraud_models import DepositReview, FraudDecision, RiskListEntry, RiskListEvent
from db.models import Deposit, Player
from domain.fraud.review import OUTCOME, ReviewAction, ReviewStatus, check_review

ListType = Literal["block", "allow"]
ListKind = Literal["iin", "card", "device", "ip", "iban", "phone", "wallet"]
LIST_KINDS: tuple[ListKind, ...] = ("iin", "card", "device", "ip", "iban", "phone", "wallet")

# -- reviews -------------------------------------------------------------------------------------


async def open_review(
    session: AsyncSession,
    *,
    deposit_id: str,
    player_id: str,
    mode: Literal["hold", "credit"],
    score: int,
    reasons: list[str],
    show: bool = True,
) -> None:
    """The deposit waits for an operator; a retried risk step updates a review still pending.
    `show`: also write it into the deposit's `risk.review` (the caller may do it itself)."""
    statement = insert(DepositReview).values(
        deposit_id=deposit_id,
        player_id=player_id,
        mode=mode,
        status="pending",
        score=score,
        reasons=reasons,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["deposit_id"],
            set_={"mode": mode, "score": score, "reasons": reasons},
            where=DepositReview.status == "pending",
        )
    )
    if show:
        await _show_review(session, deposit_id, {"mode": mode, "status": "pending"})


async def card_holder_reported(
    session: AsyncSession, *, deposit: Deposit, credited: bool
) -> dict[str, Any] | None:
    """A provider reported a cardholder who is not the player: the decision gets the reason and
    the fact, and the deposit a review (held when not yet credited, else its person's withdrawals
    wait). Returns the review as the deposit shows it (None: the deposit is over, or its review
    was decided already)."""
    await session.execute(
        text(
            "UPDATE fraud_decisions SET reasons = reasons || '[\"card_holder_mismatch\"]', "
            "facts = CASE WHEN facts IS NULL THEN NULL ELSE "
            "jsonb_set(facts, '{card_holder_matches}', 'false') END, "
            "rule_results = coalesce(rule_results, '[]') || jsonb_build_array(jsonb_build_object("
            "'code', 'card_holder_mismatch', 'hit', true, 'action', 'review', 'score', 0, "
            "'shadow', false, 'suppressed', false, 'source', 'provider')) "
            "WHERE payment_id = :id AND NOT reasons ? 'card_holder_mismatch'"
        ),
        {"id": deposit.id},
    )
    if deposit.status in ("declined", "failed", "expired"):
        return None
    existing = await get_review(session, deposit_id=deposit.id)
    if existing is not None and existing.status != "pending":
        return None
    mode: Literal["hold", "credit"] = "credit" if credited else "hold"
    risk = deposit.risk or {}
    await open_review(
        session,
        deposit_id=deposit.id,
        player_id=deposit.player_id,
        mode=mode,
        score=int(risk.get("score", 0)),
        reasons=sorted({*risk.get("reasons", []), "card_holder_mismatch"}),
        show=False,
    )
    return {"mode": mode, "status": "pending"}


async def _show_review(session: AsyncSession, deposit_id: str, review: dict[str, Any]) -> None:
    """The deposit shows its review in `risk.review` (GET /v1/deposits/{id})."""
    await session.execute(
        text(
            "UPDATE deposits SET risk = jsonb_set(coalesce(risk, '{}'), '{review}', "
            "CAST(:review AS jsonb)) WHERE id = :id"
        ),
        {"id": deposit_id, "review": json.dumps(review)},
    )


async def drop_pending_review(session: AsyncSession, *, deposit_id: str) -> None:
    """A retried risk step that no longer asks for a review."""
    await session.execute(
        delete(DepositReview).where(
            DepositReview.deposit_id == deposit_id, DepositReview.status == "pending"
        )
    )


async def get_review(
    session: AsyncSession, *, deposit_id: str, for_update: bool = False
) -> DepositReview | None:
    query = select(DepositReview).where(DepositReview.deposit_id == deposit_id)
    if for_update:
        query = query.with_for_update()
    return (await session.scalars(query.execution_options(populate_existing=True))).first()


@dataclass(frozen=True)
class ReviewDecided:
    review: DepositReview
    changed: bool


async def decide_review(
    session: AsyncSession,
    *,
    deposit_id: str,
    action: ReviewAction,
    actor_id: str,
    actor_name: str,
    reason: str | None,
    at: datetime,
) -> ReviewDecided:
    """Record the operator's decision once (the row is locked while it is judged); deciding the
    same again changes nothing; raises InvalidReview (or LookupError: no review)."""
    review = await get_review(session, deposit_id=deposit_id, for_update=True)
    if review is None:
        raise LookupError(deposit_id)
    status: ReviewStatus = review.status  # type: ignore[assignment]
    if not check_review(status, action):
        return ReviewDecided(review, changed=False)
    review.status = OUTCOME[action]
    review.decided_at = at
    review.decided_by = actor_id
    review.decided_by_name = actor_name[:100]
    review.reason = reason[:500] if reason else None
    await session.flush()
    await _show_review(
        session,
        deposit_id,
        {
            "mode": review.mode,
            "status": review.status,
            "decided_by": actor_id,
            "decided_by_name": review.decided_by_name,
            "decided_at": at.isoformat(),
            "reason": review.reason,
        },
    )
    # The alert that announced the review is handled by the decision.
    await session.execute(
        text(
            "UPDATE alerts SET status = 'handled', handled_at = :at, handled_by = :by, "
            "note = :note WHERE dedupe_key = :key AND status = 'open'"
        ),
        {
            "at": at,
            "by": actor_id,
            "note": f"deposit review {OUTCOME[action]}"[:500],
            "key": f"payment_review:{deposit_id}",
        },
    )
    return ReviewDecided(review, changed=True)


async def blocking_reviews(session: AsyncSession, *, player_id: str) -> list[DepositReview]:
    """Credited deposits of the player's person that are still under review, or were rejected:
    the person's withdrawals wait until an operator approves them."""
    person = select(Player.person_id).where(Player.id == player_id).scalar_subquery()
    query = (
        select(DepositReview)
        .join(Deposit, Deposit.id == DepositReview.deposit_id)
        .where(
            Deposit.status == "succeeded",  # credited (`credit` mode, or a late report)
            DepositReview.status != "approved",
            or_(
                DepositReview.player_id == player_id,
                DepositReview.player_id.in_(select(Player.id).where(Player.person_id == person)),
            ),
        )
        .order_by(DepositReview.created_at)
    )
    return list((await session.scalars(query)).all())


async def list_reviews(
    session: AsyncSession,
    *,
    status: str | None,
    limit: int,
    before: datetime | None = None,
    include_lapsed: bool = False,
) -> list[tuple[DepositReview, dict[str, Any]]]:
    """Reviews newest first, each with the deposit's amount, currency, method and status.
    Pending reviews of deposits that expired or failed unpaid (nothing to decide unless their
    money arrives late, which puts the deposit back in review) only with `include_lapsed`."""
    query = text(
        "SELECT r.deposit_id, d.amount_minor, d.currency, d.method, d.status, d.provider "
        "FROM deposit_reviews r JOIN deposits d ON d.id = r.deposit_id "
        "WHERE (CAST(:status AS text) IS NULL OR r.status = :status) "
        "AND (CAST(:before AS timestamptz) IS NULL OR r.created_at < :before) "
        "AND (CAST(:lapsed AS boolean) OR r.status <> 'pending' "
        "     OR d.status NOT IN ('expired', 'failed')) "
        "ORDER BY r.created_at DESC LIMIT :limit"
    )
    params = {"status": status, "before": before, "limit": limit, "lapsed": include_lapsed}
    rows = (await session.execute(query, params)).mappings()
    found = {row["deposit_id"]: dict(row) for row in rows}
    if not found:
        return []
    reviews = await session.scalars(
        select(DepositReview).where(DepositReview.deposit_id.in_(list(found)))
    )
    by_id = {r.deposit_id: r for r in reviews}
    return [(by_id[i], found[i]) for i in found if i in by_id]


# -- decisions -----------------------------------------------------------------------------------


async def get_decision(session: AsyncSession, *, payment_id: str) -> FraudDecision | None:
    return await session.get(FraudDecision, payment_id)


# -- lists ---------------------------------------------------------------------------------------


class ListEntryExists(ValueError):
    def __init__(self, entry_id: int) -> None:
        super().__init__(f"a live entry exists: {entry_id}")
        self.entry_id = entry_id


def _live(now: datetime) -> Any:
    return (RiskListEntry.removed_at.is_(None)) & (
        RiskListEntry.expires_at.is_(None) | (RiskListEntry.expires_at > now)
    )


async def add_entry(
    session: AsyncSession,
    *,
    list_type: ListType,
    kind: ListKind,
    value: str,
    network: str | None,
    reason: str,
    actor: str,
    expires_at: datetime | None,
    now: datetime,
) -> RiskListEntry:
    """Add a live entry; raises ListEntryExists when the same one is live already. An expired
    entry of the same value is closed first (removed by `expiry`), so the value can be listed
    again."""
    await session.execute(
        update(RiskListEntry)
        .where(
            RiskListEntry.list_type == list_type,
            RiskListEntry.kind == kind,
            RiskListEntry.value == value,
            RiskListEntry.removed_at.is_(None),
            RiskListEntry.expires_at <= now,
        )
        .values(removed_at=now, removed_by="expiry", removed_reason="expired")
    )
    entry_id = (
        await session.execute(
            insert(RiskListEntry)
            .values(
                list_type=list_type,
                kind=kind,
                value=value,
                network=network,
                reason=reason,
                created_by=actor,
                created_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(
                index_elements=["kind", "value", "list_type"],
                index_where=RiskListEntry.removed_at.is_(None),
            )
            .returning(RiskListEntry.id)
        )
    ).scalar_one_or_none()
    if entry_id is None:
        existing = await session.scalar(
            select(RiskListEntry.id).where(
                RiskListEntry.list_type == list_type,
                RiskListEntry.kind == kind,
                RiskListEntry.value == value,
                RiskListEntry.removed_at.is_(None),
            )
        )
        raise ListEntryExists(int(existing or 0))
    await _event(
        session,
        entry_id,
        "added",
        actor,
        reason,
        {"list_type": list_type, "kind": kind, "expires_at": _iso(expires_at)},
        now,
    )
    entry = await session.get(RiskListEntry, entry_id)
    assert entry is not None
    return entry


async def update_entry(
    session: AsyncSession,
    *,
    entry_id: int,
    actor: str,
    reason: str | None,
    expires_at: datetime | None,
    clear_expiry: bool,
    now: datetime,
) -> RiskListEntry | None:
    """Change a live entry's reason or expiry; None when there is no such live entry."""
    entry = await session.get(RiskListEntry, entry_id, with_for_update=True)
    if entry is None or entry.removed_at is not None:
        return None
    before = {"reason": entry.reason, "expires_at": _iso(entry.expires_at)}
    if reason is not None:
        entry.reason = reason
    if expires_at is not None or clear_expiry:
        entry.expires_at = expires_at
    await session.flush()
    after = {"reason": entry.reason, "expires_at": _iso(entry.expires_at)}
    await _event(
        session, entry_id, "updated", actor, reason, {"before": before, "after": after}, now
    )
    return entry


async def remove_entry(
    session: AsyncSession, *, entry_id: int, actor: str, reason: str, now: datetime
) -> tuple[RiskListEntry | None, bool]:
    """Remove an entry (kept, marked removed); removing it again changes nothing."""
    entry = await session.get(RiskListEntry, entry_id, with_for_update=True)
    if entry is None:
        return None, False
    if entry.removed_at is not None:
        return entry, False
    entry.removed_at = now
    entry.removed_by = actor
    entry.removed_reason = reason
    await session.flush()
    await _event(session, entry_id, "removed", actor, reason, {}, now)
    return entry, True


async def get_entry(session: AsyncSession, *, entry_id: int) -> RiskListEntry | None:
    return await session.get(RiskListEntry, entry_id, populate_existing=True)


async def list_entries(
    session: AsyncSession,
    *,
    list_type: str | None,
    kind: str | None,
    value: str | None,
    include_inactive: bool,
    now: datetime,
    limit: int,
    before_id: int | None,
) -> list[RiskListEntry]:
    query = select(RiskListEntry).order_by(RiskListEntry.id.desc()).limit(limit)
    if list_type is not None:
        query = query.where(RiskListEntry.list_type == list_type)
    if kind is not None:
        query = query.where(RiskListEntry.kind == kind)
    if value is not None:
        query = query.where(RiskListEntry.value == value)
    if not include_inactive:
        query = query.where(_live(now))
    if before_id is not None:
        query = query.where(RiskListEntry.id < before_id)
    return list((await session.scalars(query)).all())


async def entry_events(
    session: AsyncSession, *, entry_id: int | None, limit: int, before_id: int | None = None
) -> list[RiskListEvent]:
    query = select(RiskListEvent).order_by(RiskListEvent.id.desc()).limit(limit)
    if entry_id is not None:
        query = query.where(RiskListEvent.entry_id == entry_id)
    if before_id is not None:
        query = query.where(RiskListEvent.id < before_id)
    return list((await session.scalars(query)).all())


async def count_live(session: AsyncSession, *, now: datetime) -> int:
    query = select(func.count()).select_from(RiskListEntry).where(_live(now))
    return int(await session.scalar(query) or 0)


async def _event(
    session: AsyncSession,
    entry_id: int,
    action: str,
    actor: str,
    reason: str | None,
    details: dict[str, Any],
    at: datetime,
) -> None:
    await session.execute(
        insert(RiskListEvent).values(
            entry_id=entry_id, action=action, actor=actor, reason=reason, details=details, at=at
        )
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
