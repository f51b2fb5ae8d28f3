"""Reconciliation cases (`recon_cases`, migration 0110) as the operators work them: list, read,
and resolve with an allowed action (migration 0120 adds `recon_case_actions`, the trail of who
approved and executed what, and the `resolving` status).

`resolve` runs inside the caller's database transaction with the case's row locked: the ledger
posting (or the hold of a refund or a return), the case's new status and the trail commit
together, so a resolution happens once however often it is asked for. Resolutions of at least
the configured amount need two different operators: the first request records an approval, the
second, by someone else and for the same resolution, executes it.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import bindparam

from db import chargebacks as chargeback_store
from db import deposits as deposit_store
from db import finance
from db import ledger as ledger_store
from db import refunds as refund_store
from domain.iban import InvalidIBAN, parse_kz_iban
from domain.ids import derived_id
from domain.ledger import fee_for
from domain.recon.cases import (
    CaseFacts,
    CaseRefused,
    Proposal,
    allowed_actions,
    credit_wallet_spec,
    needs_four_eyes,
    payer_of,
    propose,
    refund_hold_spec,
    return_hold_spec,
    write_off_spec,
)
from domain.recon.postings import case_assign_to_player, case_credit_deposit
from domain.statuses import LATE_PAYMENT_FROM, DepositStatus

_COLUMNS = (
    "id, run_id, provider, business_date, kind, reference, line_key, line_no, amount_minor, "
    "currency, details, status, resolution, resolved_by, resolved_at, approvals, created_at, "
    "updated_at"
)


@dataclass(frozen=True)
class Case:
    id: int
    run_id: int | None
    provider: str
    business_date: date
    kind: str
    reference: str | None
    line_key: str
    line_no: int | None
    amount_minor: int
    currency: str
    details: dict[str, Any]
    status: str
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    approvals: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime

    @property
    def facts(self) -> CaseFacts:
        return CaseFacts(
            id=self.id,
            provider=self.provider,
            kind=self.kind,
            reference=self.reference,
            amount_minor=self.amount_minor,
            currency=self.currency,
            details=dict(self.details or {}),
        )


def _case(row: Any) -> Case:
    data = row._asdict()
    data["details"] = data.get("details") or {}
    data["approvals"] = list(data.get("approvals") or [])
    run_id = data.get("run_id")
    data["run_id"] = None if run_id is None else int(run_id)
    return Case(**data)


class CaseNotFound(Exception):
    pass


class CaseConflict(Exception):
    """The case's state forbids the request (409): resolved, resolving, approvals."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


async def get_case(session: AsyncSession, *, case_id: int, lock: bool = False) -> Case | None:
    query = f"SELECT {_COLUMNS} FROM recon_cases WHERE id = :id"  # noqa: S608 - constants
    if lock:
        query += " FOR UPDATE"
    row = (await session.execute(text(query), {"id": case_id})).one_or_none()
    return None if row is None else _case(row)


async def list_cases(
    session: AsyncSession,
    *,
    status: str | None,
    provider: str | None,
    business_date: date | None,
    kind: str | None,
    limit: int,
    before_id: int | None,
) -> list[Case]:
    """Newest first, at most `limit` older than `before_id` (keyset on the id)."""
    rows = await session.execute(
        text(
            f"""
            SELECT {_COLUMNS} FROM recon_cases
            WHERE (CAST(:status AS text) IS NULL OR status = CAST(:status AS text))
              AND (CAST(:provider AS text) IS NULL OR provider = CAST(:provider AS text))
              AND (CAST(:day AS date) IS NULL OR business_date = CAST(:day AS date))
              AND (CAST(:kind AS text) IS NULL OR kind = CAST(:kind AS text))
              AND (CAST(:before AS bigint) IS NULL OR id < CAST(:before AS bigint))
            ORDER BY id DESC LIMIT :limit
            """  # noqa: S608 - constant columns
        ),
        {
            "status": status,
            "provider": provider,
            "day": business_date,
            "kind": kind,
            "before": before_id,
            "limit": limit,
        },
    )
    return [_case(row) for row in rows]


@dataclass(frozen=True)
class CaseAction:
    id: int
    step: str
    action: str
    actor_id: str
    actor_name: str
    note: str | None
    transaction_key: str | None
    details: dict[str, Any]
    created_at: datetime


async def case_actions(session: AsyncSession, *, case_id: int) -> list[CaseAction]:
    rows = await session.execute(
        text(
            "SELECT id, step, action, actor_id, actor_name, note, transaction_key, details, "
            "created_at FROM recon_case_actions WHERE case_id = :id ORDER BY id"
        ),
        {"id": case_id},
    )
    return [CaseAction(**row._asdict()) for row in rows]


async def add_action(
    session: AsyncSession,
    *,
    case_id: int,
    step: Literal["approve", "execute", "settled", "reopened"],
    action: str,
    actor_id: str,
    actor_name: str,
    note: str | None,
    transaction_key: str | None,
    details: dict[str, Any],
    now: datetime,
) -> None:
    await session.execute(
        text(
            "INSERT INTO recon_case_actions (case_id, step, action, actor_id, actor_name, note, "
            "transaction_key, details, created_at) VALUES (:case_id, :step, :action, :actor_id, "
            ":actor_name, :note, :key, :details, :now)"
        ).bindparams(bindparam("details", type_=JSONB)),
        {
            "case_id": case_id,
            "step": step,
            "action": action,
            "actor_id": actor_id,
            "actor_name": actor_name,
            "note": note,
            "key": transaction_key,
            "details": details,
            "now": now,
        },
    )


async def _set_state(
    session: AsyncSession,
    *,
    case_id: int,
    status: str,
    resolution: str | None,
    resolved_by: str | None,
    resolved_at: datetime | None,
    approvals: list[dict[str, Any]],
    outcome: dict[str, Any] | None,
) -> None:
    """The case's status and the resolution as `details.resolution` (None removes it)."""
    await session.execute(
        text(
            "UPDATE recon_cases SET status = :status, resolution = :resolution, "
            "resolved_by = :by, resolved_at = :at, updated_at = now(), "
            "approvals = CAST(:approvals AS jsonb), "
            "details = CASE WHEN CAST(:outcome AS jsonb) IS NULL "
            "               THEN coalesce(details, '{}'::jsonb) - 'resolution' "
            "               ELSE coalesce(details, '{}'::jsonb) "
            "                    || jsonb_build_object('resolution', CAST(:outcome AS jsonb)) END "
            "WHERE id = :id"
        ),
        {
            "status": status,
            "resolution": resolution,
            "by": resolved_by,
            "at": resolved_at,
            "approvals": json.dumps(approvals),
            "outcome": None if outcome is None else json.dumps(outcome),
            "id": case_id,
        },
    )


# -- resolving --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    id: str
    name: str


@dataclass(frozen=True)
class ResolveRequest:
    action: str
    note: str
    player_id: str | None = None
    amount_minor: int | None = None
    iban: str | None = None
    booking_date: date | None = None


@dataclass(frozen=True)
class ResolvePolicy:
    four_eyes_from_minor: int
    shards: int
    fee_bps: Callable[[str], int]  # what each provider charges, as the deposit credit books it
    payout_provider: str  # the operator's bank, for a return to the sender's account
    refunds_supported: Callable[[str], bool]  # by provider name


@dataclass(frozen=True)
class MoneyBack:
    """What a workflow must do after the commit: a refund at the provider, or a return by the
    operator's bank (its payout reference and destination)."""

    action: Literal["refund", "return_to_sender"]
    case_id: int
    provider: str
    amount_minor: int
    currency: str
    refund_id: str | None = None
    deposit_id: str | None = None
    payout_reference: str | None = None
    iban: str | None = None


@dataclass(frozen=True)
class Resolved:
    case: Case
    executed: bool  # False: an approval was recorded, a second operator must approve
    approvals_needed: int
    transaction_keys: tuple[str, ...] = ()
    money_back: MoneyBack | None = None


def return_reference(case_id: int) -> str:
    """The operator bank's payout reference of a case's return (our id for the payout)."""
    return derived_id("rtn", "recon-case", str(case_id))


@dataclass(frozen=True)
class _Deposit:
    player_id: str
    provider: str | None
    currency: str
    credited: bool


async def _deposit(session: AsyncSession, reference: str | None) -> _Deposit | None:
    if reference is None:
        return None
    row = (
        await session.execute(
            text(
                "SELECT d.player_id, d.provider, d.currency, EXISTS (SELECT 1 FROM "
                "ledger_transactions t WHERE t.key = 'deposit:' || d.id || '\\:credit') "
                "AS credited FROM deposits d WHERE d.id = :id"
            ),
            {"id": reference},
        )
    ).one_or_none()
    if row is None:
        return None
    return _Deposit(str(row.player_id), row.provider, str(row.currency), bool(row.credited))


async def _player_exists(session: AsyncSession, player_id: str) -> bool:
    return (
        await session.scalar(text("SELECT 1 FROM players WHERE id = :id"), {"id": player_id})
    ) is not None


def _approval(
    actor: Actor, proposal: Proposal, request: ResolveRequest, iban: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "operator_id": actor.id,
        "operator_name": actor.name,
        **proposal.as_json(),
        "iban": iban,
        "note": request.note,
        "at": now.isoformat(),
    }


def _same(approval: dict[str, Any], proposal: Proposal, iban: str | None) -> bool:
    return (
        approval.get("action") == proposal.action
        and approval.get("player_id") == proposal.player_id
        and approval.get("amount") == proposal.amount_minor
        and approval.get("iban") == iban
    )


async def resolve(
    session: AsyncSession,
    *,
    case_id: int,
    request: ResolveRequest,
    actor: Actor,
    policy: ResolvePolicy,
    now: datetime,
) -> Resolved:
    """Resolve the case, or record the first of two approvals. Raises CaseNotFound,
    CaseConflict (resolved, resolving, the same operator twice, another resolution than the one
    approved), CaseRefused (the action does not fit), finance.PeriodClosed, or a chargeback's
    ChargebackRefused."""
    case = await get_case(session, case_id=case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    if case.status == "resolved":
        raise CaseConflict(
            "case_resolved",
            f"case {case_id} was resolved ({case.resolution}) by {case.resolved_by}",
        )
    if case.status != "open":
        raise CaseConflict(
            "case_resolving",
            f"case {case_id} is {case.status} ({case.resolution}): its money is on its way back",
        )
    facts = case.facts
    deposit = await _deposit(session, case.reference)
    proposal = propose(
        facts,
        action=request.action,
        player_id=request.player_id,
        amount_minor=request.amount_minor,
        payer_player_id=payer_of(facts, deposit.player_id if deposit else None),
    )
    iban = await _check_proposal(session, case, proposal, request, deposit, policy)
    if request.booking_date is not None:
        await finance.ensure_open(session, request.booking_date)
        await finance.date_postings(session, request.booking_date)

    approvals = [a for a in case.approvals if isinstance(a, dict)]
    if needs_four_eyes(facts, threshold_minor=policy.four_eyes_from_minor):
        if not approvals:
            return await _first_approval(session, case, proposal, request, actor, iban, now)
        first = approvals[-1]
        if first.get("operator_id") == actor.id:
            raise CaseConflict(
                "same_operator",
                "you approved this resolution already: a second, different operator must "
                f"approve {proposal.amount_minor} {case.currency}",
            )
        if not _same(first, proposal, iban):
            raise CaseConflict(
                "approval_mismatch",
                f"{first.get('operator_name')} approved {first.get('action')} of "
                f"{first.get('amount')} {case.currency}"
                + (f" to {first.get('player_id')}" if first.get("player_id") else "")
                + ": a second approval must be for the same resolution",
            )
        approvals.append(_approval(actor, proposal, request, iban, now))
    else:
        approvals = [_approval(actor, proposal, request, iban, now)]
    try:
        return await _execute(
            session, case, proposal, request, actor, policy, approvals, deposit, iban, now
        )
    except DBAPIError as exc:
        if finance.is_period_closed_error(exc):
            day = request.booking_date or await finance.today(session)
            raise finance.PeriodClosed(str(day)) from exc
        raise


async def _first_approval(
    session: AsyncSession,
    case: Case,
    proposal: Proposal,
    request: ResolveRequest,
    actor: Actor,
    iban: str | None,
    now: datetime,
) -> Resolved:
    await _set_state(
        session,
        case_id=case.id,
        status="open",
        resolution=None,
        resolved_by=None,
        resolved_at=None,
        approvals=[_approval(actor, proposal, request, iban, now)],
        outcome=None,
    )
    await add_action(
        session,
        case_id=case.id,
        step="approve",
        action=proposal.action,
        actor_id=actor.id,
        actor_name=actor.name,
        note=request.note,
        transaction_key=None,
        details={**proposal.as_json(), "iban": iban},
        now=now,
    )
    updated = await get_case(session, case_id=case.id)
    assert updated is not None
    return Resolved(case=updated, executed=False, approvals_needed=2)


async def _check_proposal(
    session: AsyncSession,
    case: Case,
    proposal: Proposal,
    request: ResolveRequest,
    deposit: _Deposit | None,
    policy: ResolvePolicy,
) -> str | None:
    """What the action needs beyond the case: the player, the deposit, the payer's IBAN."""
    if proposal.action == "assign_player":
        assert proposal.player_id is not None
        if not await _player_exists(session, proposal.player_id):
            raise CaseRefused("player_not_found", f"no player {proposal.player_id!r}")
    if proposal.action == "refund":
        if deposit is None or deposit.provider != case.provider:
            raise CaseRefused(
                "refund_not_possible",
                "a refund goes back through the deposit the provider took: this case names "
                "no deposit of ours at this provider",
            )
        if not policy.refunds_supported(case.provider):
            raise CaseRefused(
                "refunds_not_supported",
                f"{case.provider} takes no refunds through its connector: return the money "
                "to the sender, or refund it in the provider's back office and write it off",
            )
    if proposal.action != "return_to_sender":
        if request.iban is not None:
            raise CaseRefused("invalid_action", f"{proposal.action} takes no iban")
        return None
    raw = request.iban or case.details.get("payer_iban")
    if not isinstance(raw, str) or not raw:
        raise CaseRefused(
            "iban_required", "the statement shows no payer's IBAN: send the iban to return to"
        )
    try:
        return parse_kz_iban(raw)
    except InvalidIBAN as exc:
        raise CaseRefused("invalid_iban", str(exc)) from exc


async def _execute(
    session: AsyncSession,
    case: Case,
    proposal: Proposal,
    request: ResolveRequest,
    actor: Actor,
    policy: ResolvePolicy,
    approvals: list[dict[str, Any]],
    deposit: _Deposit | None,
    iban: str | None,
    now: datetime,
) -> Resolved:
    facts = case.facts
    approvers = sorted({str(a.get("operator_id")) for a in approvals})
    outcome: dict[str, Any] = {**proposal.as_json(), "note": request.note, "approved_by": approvers}
    money_back: MoneyBack | None = None
    status = "resolved"
    keys: list[str] = []
    action = proposal.action
    if action == "refund":
        assert case.reference is not None
        refund_id = derived_id("ref", "recon-case", str(case.id))
        spec = refund_hold_spec(
            facts, refund_id=refund_id, deposit_id=case.reference, shards=policy.shards
        )
        await refund_store.create_refund(
            session,
            refund_id=refund_id,
            deposit_id=case.reference,
            provider=case.provider,
            amount_minor=proposal.amount_minor,
            currency=case.currency,
            reason=f"recon case {case.id}: {request.note}"[:200],
            workflow_id=f"refund-{refund_id}",
        )
        keys.append((await ledger_store.post_transaction(session, spec=spec)).key)
        money_back = MoneyBack(
            action="refund",
            case_id=case.id,
            provider=case.provider,
            amount_minor=proposal.amount_minor,
            currency=case.currency,
            refund_id=refund_id,
            deposit_id=case.reference,
        )
        outcome["refund_id"] = refund_id
        status = "resolving"
    elif action == "return_to_sender":
        reference = return_reference(case.id)
        spec = return_hold_spec(
            facts, payout_provider=policy.payout_provider, reference=reference, shards=policy.shards
        )
        keys.append((await ledger_store.post_transaction(session, spec=spec)).key)
        money_back = MoneyBack(
            action="return_to_sender",
            case_id=case.id,
            provider=policy.payout_provider,
            amount_minor=proposal.amount_minor,
            currency=case.currency,
            payout_reference=reference,
            iban=iban,
        )
        outcome |= {"payout_reference": reference, "payout_provider": policy.payout_provider}
        outcome["iban"] = iban
        status = "resolving"
    elif action == "credit_player":
        keys += await _credit_player(session, case, proposal, deposit, policy, actor, now)
    elif action == "assign_player":
        assert proposal.player_id is not None
        spec = case_assign_to_player(
            case_id=case.id,
            provider=case.provider,
            player_id=proposal.player_id,
            amount_minor=proposal.amount_minor,
            currency=case.currency,
        )
        keys.append((await ledger_store.post_transaction(session, spec=spec)).key)
    elif action == "charge_player":
        recorded = await chargeback_store.record_chargeback(
            session,
            chargeback_store.ChargebackIn(
                provider=case.provider,
                provider_chargeback_id=_chargeback_id(case),
                deposit_id=case.reference if deposit is not None else None,
                player_id=proposal.player_id,
                amount_minor=proposal.amount_minor,
                currency=case.currency,
                source="report",
                actor=actor.id,
                reason=f"recon case {case.id}: {request.note}"[:200],
                business_date=case.business_date,
                from_difference=True,
            ),
            shards=policy.shards,
            now=now,
        )
        keys.append(recorded.chargeback.transaction_key)
        outcome["chargeback_id"] = recorded.chargeback.id
    elif action == "write_off":
        keys.append((await ledger_store.post_transaction(session, spec=write_off_spec(facts))).key)
    # acknowledge: nothing waits in the difference account, nothing is posted.
    outcome["transaction_keys"] = keys
    await _set_state(
        session,
        case_id=case.id,
        status=status,
        resolution=action,
        resolved_by=actor.id,
        resolved_at=now if status == "resolved" else None,
        approvals=approvals,
        outcome=outcome,
    )
    await add_action(
        session,
        case_id=case.id,
        step="execute",
        action=action,
        actor_id=actor.id,
        actor_name=actor.name,
        note=request.note,
        transaction_key=keys[-1] if keys else None,
        details={**proposal.as_json(), "approved_by": approvers, "transaction_keys": keys},
        now=now,
    )
    updated = await get_case(session, case_id=case.id)
    assert updated is not None
    return Resolved(
        case=updated,
        executed=True,
        approvals_needed=max(len(approvals), 1),
        transaction_keys=tuple(keys),
        money_back=money_back,
    )


def _chargeback_id(case: Case) -> str:
    """The provider's id of the chargeback the case shows (its report line's), else the case's."""
    provider_id = case.details.get("provider_id")
    if isinstance(provider_id, str) and provider_id:
        return provider_id[:64]
    return f"recon-case-{case.id}"


async def _credit_player(
    session: AsyncSession,
    case: Case,
    proposal: Proposal,
    deposit: _Deposit | None,
    policy: ResolvePolicy,
    actor: Actor,
    now: datetime,
) -> list[str]:
    """Credit the payer what was actually paid: a chargeback's reversal gives it back against
    what the player owes; a deposit we never credited gets its own credit posting (so that the
    deposit or late-payment workflow crediting it too moves nothing twice) and is succeeded;
    money beyond a credited deposit goes to the wallet."""
    assert proposal.player_id is not None
    if case.kind == "chargeback_reversal":
        return [await _reverse_chargeback(session, case, proposal, actor, policy, now)]
    if deposit is not None and not deposit.credited and case.reference is not None:
        specs = case_credit_deposit(
            case_id=case.id,
            deposit_id=case.reference,
            player_id=proposal.player_id,
            provider=case.provider,
            amount_minor=proposal.amount_minor,
            currency=case.currency,
            expected_fee_minor=fee_for(proposal.amount_minor, policy.fee_bps(case.provider)),
            shards=policy.shards,
        )
        posted = await ledger_store.post_transactions(session, specs=specs)
        await deposit_store.record_status(
            session,
            deposit_id=case.reference,
            status=DepositStatus.SUCCEEDED,
            reason=f"recon_case:{case.id}",
            occurred_at=now,
            provider=case.provider,
            also_from=LATE_PAYMENT_FROM,
        )
        return [p.key for p in posted]
    spec = credit_wallet_spec(case.facts, player_id=proposal.player_id)
    return [(await ledger_store.post_transaction(session, spec=spec)).key]


async def _reverse_chargeback(
    session: AsyncSession,
    case: Case,
    proposal: Proposal,
    actor: Actor,
    policy: ResolvePolicy,
    now: datetime,
) -> str:
    chargeback = None
    if case.reference is not None:
        chargeback = await chargeback_store.latest_for_deposit(
            session, provider=case.provider, deposit_id=case.reference
        )
    if chargeback is None:
        raise CaseRefused(
            "chargeback_not_found",
            "no chargeback of this deposit is on record to reverse: write the case off",
        )
    recorded = await chargeback_store.record_reversal(
        session,
        provider=case.provider,
        provider_chargeback_id=chargeback.provider_chargeback_id,
        amount_minor=min(proposal.amount_minor, chargeback.amount_minor),
        actor=actor.id,
        shards=policy.shards,
        now=now,
        from_difference=True,
    )
    key = recorded.chargeback.reversal_transaction_key
    assert key is not None
    return key


async def money_back_of(session: AsyncSession, case: Case) -> MoneyBack | None:
    """The refund or return a `resolving` case waits for, rebuilt from its recorded resolution
    (to start its workflow again after an API crash between the commit and the start)."""
    outcome = case.details.get("resolution")
    if case.status != "resolving" or not isinstance(outcome, dict):
        return None
    if case.resolution == "refund" and case.reference is not None:
        return MoneyBack(
            action="refund",
            case_id=case.id,
            provider=case.provider,
            amount_minor=int(outcome["amount"]),
            currency=case.currency,
            refund_id=str(outcome["refund_id"]),
            deposit_id=case.reference,
        )
    if case.resolution == "return_to_sender":
        return MoneyBack(
            action="return_to_sender",
            case_id=case.id,
            provider=str(outcome.get("payout_provider") or ""),
            amount_minor=int(outcome["amount"]),
            currency=case.currency,
            payout_reference=str(outcome["payout_reference"]),
            iban=str(outcome["iban"]),
        )
    return None


async def finish_money_back(
    session: AsyncSession,
    *,
    case_id: int,
    succeeded: bool,
    reason: str | None,
    now: datetime,
) -> Case | None:
    """The refund or return ended: the case is resolved, or open again (its hold released, the
    money back in clearing) for another resolution. Once: a case no longer resolving is left."""
    case = await get_case(session, case_id=case_id, lock=True)
    if case is None or case.status != "resolving":
        return case
    outcome = dict(case.details.get("resolution") or {})
    action = case.resolution or "refund"
    if succeeded:
        await _set_state(
            session,
            case_id=case_id,
            status="resolved",
            resolution=action,
            resolved_by=case.resolved_by,
            resolved_at=now,
            approvals=case.approvals,
            outcome=outcome,
        )
    else:
        history = list(case.details.get("failed_resolutions") or [])
        history.append({**outcome, "failed": reason, "at": now.isoformat()})
        await session.execute(
            text(
                "UPDATE recon_cases SET details = coalesce(details, '{}'::jsonb) "
                "|| jsonb_build_object('failed_resolutions', CAST(:history AS jsonb)) "
                "WHERE id = :id"
            ),
            {"history": json.dumps(history), "id": case_id},
        )
        await _set_state(
            session,
            case_id=case_id,
            status="open",
            resolution=None,
            resolved_by=None,
            resolved_at=None,
            approvals=[],
            outcome=None,
        )
    await add_action(
        session,
        case_id=case_id,
        step="settled" if succeeded else "reopened",
        action=action,
        actor_id="system",
        actor_name=f"{action} workflow",
        note=reason,
        transaction_key=None,
        details={},
        now=now,
    )
    return await get_case(session, case_id=case_id)


def allowed_for(case: Case) -> list[str]:
    """The actions an operator may take on the case now (none once it is resolved)."""
    if case.status != "open":
        return []
    return list(allowed_actions(case.facts))


async def charge_reported_chargebacks(
    session: AsyncSession, *, run_id: int, shards: int, now: datetime
) -> list[int]:
    """Charge the players of the chargeback cases a run opened, at once: a chargeback is a fact
    the provider reports, not a decision, so no operator (nor four eyes) is needed to take it
    back from the wallet (the rest a receivable, the player flagged). What cannot be charged (a
    deposit we never credited, a chargeback recorded with other figures) stays open for an
    operator. For the reconciliation to call after it settled the run (the money is in the
    difference account by then); returns the cases it resolved."""
    ids = (
        await session.scalars(
            text(
                "SELECT id FROM recon_cases WHERE run_id = :run AND kind = 'chargeback' "
                "AND status = 'open' ORDER BY id"
            ),
            {"run": run_id},
        )
    ).all()
    policy = ResolvePolicy(
        four_eyes_from_minor=2**62,
        shards=shards,
        fee_bps=lambda _: 0,
        payout_provider="",
        refunds_supported=lambda _: False,
    )
    resolved: list[int] = []
    for case_id in ids:
        try:
            async with session.begin_nested():
                await resolve(
                    session,
                    case_id=int(case_id),
                    request=ResolveRequest(
                        action="charge_player", note="chargeback reported by the provider"
                    ),
                    actor=Actor(id="reconciliation", name="reconciliation"),
                    policy=policy,
                    now=now,
                )
        except (CaseRefused, CaseConflict, chargeback_store.ChargebackRefused):
            continue
        resolved.append(int(case_id))
    return resolved
