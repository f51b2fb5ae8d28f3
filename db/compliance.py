# ruff: noqa: S608  (SQL text is built only from this module's constants; values are bound)
"""Compliance records (migration 0150): refusals, the financial-monitoring queue, the payout
deadline's alerts, what the ESU was told, and the figures of the players' reality checks.

Writes are idempotent on business ids: the activities that call them are retried.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import monitoring
from db.compliance_models import ComplianceRefusal, EsuOperation, FmReport, FmReportPayment
from db.models import Deposit, PaymentEvent, Person, Player, Withdrawal
from domain.compliance.deadlines import KAZAKHSTAN
from domain.compliance.esu import EsuOperation as EsuRecord
from domain.compliance.esu import EsuReceipt, OperationKind, operation_id
from domain.compliance.exclusions import Stage
from domain.compliance.monitoring import PaidOut, ReportKind, Thresholds, split_series
from domain.ids import new_id

# -- refusals -------------------------------------------------------------------------------


async def record_refusal(
    session: AsyncSession,
    *,
    stage: Stage,
    code: str,
    detail: str,
    register: str | None = None,
    iin: str | None = None,
    person_id: str | None = None,
    player_id: str | None = None,
    payment_id: str | None = None,
    amount_minor: int | None = None,
    currency: str | None = None,
) -> int:
    refusal = ComplianceRefusal(
        stage=stage,
        code=code,
        detail=detail[:500],
        register=register,
        iin=iin,
        person_id=person_id,
        player_id=player_id,
        payment_id=payment_id,
        amount_minor=amount_minor,
        currency=currency,
    )
    session.add(refusal)
    await session.flush()
    return refusal.id


async def list_refusals(
    session: AsyncSession,
    *,
    code: str | None,
    person_id: str | None,
    player_id: str | None,
    limit: int,
) -> list[ComplianceRefusal]:
    query = select(ComplianceRefusal).order_by(ComplianceRefusal.id.desc()).limit(limit)
    if code is not None:
        query = query.where(ComplianceRefusal.code == code)
    if person_id is not None:
        query = query.where(ComplianceRefusal.person_id == person_id)
    if player_id is not None:
        query = query.where(ComplianceRefusal.player_id == player_id)
    return list((await session.scalars(query)).all())


async def person_month_deposits(
    session: AsyncSession, *, player_id: str, currency: str, now: datetime
) -> int:
    """What the person deposited this calendar month (Kazakhstan time), every account, counting
    deposits that may still succeed: the ESU's monthly limit is checked against it too."""
    local = now.astimezone(KAZAKHSTAN)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    person = select(Player.person_id).where(Player.id == player_id).scalar_subquery()
    total = await session.scalar(
        select(func.coalesce(func.sum(Deposit.amount_minor), 0)).where(
            Deposit.player_id.in_(select(Player.id).where(Player.person_id == person)),
            Deposit.currency == currency,
            Deposit.created_at >= month_start,
            Deposit.status.not_in(("declined", "failed", "expired")),
        )
    )
    return int(total or 0)


# -- the ESU --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EsuSubject:
    """An operation to report, with the person it belongs to."""

    record: EsuRecord
    person_id: str


async def esu_subject(
    session: AsyncSession, *, kind: OperationKind, payment_id: str
) -> EsuSubject | None:
    """The operation as the ESU is told it, from the payment's row; None when the payment
    is not (yet) in a state to report (a deposit not succeeded, a withdrawal not paid)."""
    payment: Deposit | Withdrawal | None
    status: str | None
    if kind == "deposit":
        payment = await session.get(Deposit, payment_id)
        status = "succeeded"
    else:
        payment = await session.get(Withdrawal, payment_id)
        status = "paid" if kind == "payout" else None  # a withdrawal is reported when asked
    if payment is None or (status is not None and payment.status != status):
        return None
    player = await session.get(Player, payment.player_id)
    if player is None:
        return None
    occurred = payment.created_at
    if status is not None:
        occurred = (
            await session.scalar(
                select(PaymentEvent.occurred_at).where(
                    PaymentEvent.payment_id == payment_id, PaymentEvent.status == status
                )
            )
            or payment.updated_at
        )
    return EsuSubject(
        record=EsuRecord(
            operation_id=operation_id(kind, payment_id),
            kind=kind,
            iin=player.iin,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            method=payment.method,
            provider=payment.provider,
            occurred_at=occurred,
            payment_id=payment_id,
        ),
        person_id=player.person_id,
    )


async def esu_reported(session: AsyncSession, *, kind: OperationKind, payment_id: str) -> bool:
    found = await session.get(EsuOperation, operation_id(kind, payment_id))
    return found is not None


async def record_esu_receipt(
    session: AsyncSession, *, subject: EsuSubject, receipt: EsuReceipt
) -> None:
    record = subject.record
    await session.execute(
        insert(EsuOperation)
        .values(
            operation_id=record.operation_id,
            kind=record.kind,
            payment_id=record.payment_id,
            person_id=subject.person_id,
            amount_minor=record.amount_minor,
            currency=record.currency,
            method=record.method,
            provider=record.provider,
            occurred_at=record.occurred_at,
            receipt_id=receipt.receipt_id,
        )
        .on_conflict_do_nothing(index_elements=["operation_id"])
    )


async def esu_operations(session: AsyncSession, *, payment_id: str) -> list[EsuOperation]:
    rows = await session.scalars(
        select(EsuOperation)
        .where(EsuOperation.payment_id == payment_id)
        .order_by(EsuOperation.reported_at)
    )
    return list(rows.all())


# -- financial monitoring -------------------------------------------------------------------

_PAID_OUT = text(
    "SELECT w.id, w.player_id, w.amount_minor, "
    "coalesce(e.occurred_at, w.updated_at) AS paid_at FROM withdrawals w "
    "LEFT JOIN payment_events e ON e.payment_id = w.id AND e.status = 'paid' "
    "WHERE w.player_id IN (SELECT id FROM players WHERE person_id = :person_id) "
    "AND w.status = 'paid' AND w.currency = :currency "
    "AND coalesce(e.occurred_at, w.updated_at) BETWEEN :since AND :until "
    "AND NOT EXISTS (SELECT 1 FROM fm_report_payments r "
    "                WHERE r.payment_id = w.id AND r.kind = 'split')"
)


async def screen_payout(
    session: AsyncSession, *, withdrawal_id: str, thresholds: Thresholds
) -> list[FmReport]:
    """The reports this paid withdrawal makes: a `threshold` report when it reaches the
    threshold alone, a `split` report when it completes a series that does. Run again, it
    makes none twice (each payout is in at most one report of each kind). The person's row is
    locked meanwhile, so two payouts screened at once cannot both miss their series."""
    withdrawal = await session.get(Withdrawal, withdrawal_id)
    if withdrawal is None or withdrawal.status != "paid":
        return []
    player = await session.get_one(Player, withdrawal.player_id)
    person = await session.get_one(Person, player.person_id, with_for_update=True)
    paid_at = (
        await session.scalar(
            select(PaymentEvent.occurred_at).where(
                PaymentEvent.payment_id == withdrawal_id, PaymentEvent.status == "paid"
            )
        )
        or withdrawal.updated_at
    )
    latest = PaidOut(withdrawal_id, withdrawal.amount_minor, paid_at)
    if withdrawal.amount_minor >= thresholds.amount_minor:
        report = await _report(
            session,
            kind="threshold",
            person=person,
            full_name=player.full_name,
            currency=withdrawal.currency,
            pieces=[(latest, withdrawal.player_id)],
            thresholds=thresholds,
        )
        return [report] if report else []
    rows = (
        await session.execute(
            _PAID_OUT,
            {
                "person_id": person.id,
                "currency": withdrawal.currency,
                "since": paid_at - thresholds.split_window,
                "until": paid_at + thresholds.split_window,
            },
        )
    ).all()
    if not any(row.id == withdrawal_id for row in rows):
        return []  # already part of a split report
    owners = {row.id: row.player_id for row in rows}
    others = [PaidOut(row.id, int(row.amount_minor), row.paid_at) for row in rows]
    series = split_series(latest, others, thresholds)
    if series is None:
        return []
    report = await _report(
        session,
        kind="split",
        person=person,
        full_name=player.full_name,
        currency=withdrawal.currency,
        pieces=[(p, owners.get(p.payment_id, withdrawal.player_id)) for p in series],
        thresholds=thresholds,
    )
    return [report] if report else []


async def _report(
    session: AsyncSession,
    *,
    kind: ReportKind,
    person: Person,
    full_name: str,
    currency: str,
    pieces: list[tuple[PaidOut, str]],
    thresholds: Thresholds,
) -> FmReport | None:
    taken = await session.scalar(
        select(func.count()).where(
            FmReportPayment.kind == kind,
            FmReportPayment.payment_id.in_([p.payment_id for p, _ in pieces]),
        )
    )
    if taken:
        return None
    report = FmReport(
        id=new_id("fmr"),
        kind=kind,
        person_id=person.id,
        iin=person.iin,
        full_name=full_name,
        currency=currency,
        total_minor=sum(p.amount_minor for p, _ in pieces),
        threshold_minor=thresholds.amount_minor,
        payments=[
            {
                "payment_id": p.payment_id,
                "player_id": owner,
                "amount": p.amount_minor,
                "paid_at": p.paid_at.isoformat(),
            }
            for p, owner in pieces
        ],
        first_paid_at=min(p.paid_at for p, _ in pieces),
        last_paid_at=max(p.paid_at for p, _ in pieces),
    )
    session.add(report)
    await session.flush()
    for piece, _ in pieces:
        session.add(FmReportPayment(report_id=report.id, kind=kind, payment_id=piece.payment_id))
    await session.flush()
    await monitoring.raise_alert(
        session,
        dedupe_key=f"fm_report:{report.id}",
        kind="financial_monitoring_report",
        severity="high",
        subject=person.id,
        message=f"Financial-monitoring report {report.id} ({kind}): {report.total_minor} "
        f"{currency} paid out in {len(pieces)} payout(s); submit it to the AFM",
        details={"report_id": report.id, "kind": kind},
    )
    return report


ReportStatus = Literal["pending", "submitted"]


async def list_reports(
    session: AsyncSession,
    *,
    status: ReportStatus | None,
    kind: ReportKind | None,
    person_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    before: tuple[datetime, str] | None,
) -> list[FmReport]:
    query = select(FmReport).order_by(FmReport.created_at.desc(), FmReport.id.desc()).limit(limit)
    if status is not None:
        query = query.where(FmReport.status == status)
    if kind is not None:
        query = query.where(FmReport.kind == kind)
    if person_id is not None:
        query = query.where(FmReport.person_id == person_id)
    if created_from is not None:
        query = query.where(FmReport.created_at >= created_from)
    if created_to is not None:
        query = query.where(FmReport.created_at < created_to)
    if before is not None:
        query = query.where(
            (FmReport.created_at < before[0])
            | ((FmReport.created_at == before[0]) & (FmReport.id < before[1]))
        )
    return list((await session.scalars(query)).all())


async def get_report(session: AsyncSession, *, report_id: str) -> FmReport | None:
    return await session.get(FmReport, report_id)


async def submit_report(
    session: AsyncSession,
    *,
    report_id: str,
    submitted_at: datetime,
    by: str,
    by_name: str,
    reference: str | None,
) -> FmReport | None:
    """Mark the report submitted (once: the first submission's date and submitter stand)."""
    await session.execute(
        update(FmReport)
        .where(FmReport.id == report_id, FmReport.status == "pending")
        .values(
            status="submitted",
            submitted_at=submitted_at,
            submitted_by=by,
            submitted_by_name=by_name[:100],
            submission_reference=reference,
        )
    )
    session.expire_all()
    return await session.get(FmReport, report_id)


# -- the payout deadline --------------------------------------------------------------------

DeadlineStage = Literal["warn", "escalate"]
_OPEN_WITHDRAWAL = ("pending", "in_review", "approved", "processing")


@dataclass(frozen=True)
class DeadlineCheck:
    deadline: datetime | None
    status: str
    open: bool
    raised: bool = False


async def payout_deadline(session: AsyncSession, *, withdrawal_id: str) -> DeadlineCheck | None:
    withdrawal = await session.get(Withdrawal, withdrawal_id)
    if withdrawal is None:
        return None
    return DeadlineCheck(
        withdrawal.payout_deadline, withdrawal.status, withdrawal.status in _OPEN_WITHDRAWAL
    )


async def check_deadline(
    session: AsyncSession, *, withdrawal_id: str, stage: DeadlineStage, at: datetime
) -> DeadlineCheck | None:
    """A day before the deadline (`warn`) or at it (`escalate`): a withdrawal still not paid
    raises its alert (once) and records when."""
    withdrawal = await session.get(Withdrawal, withdrawal_id, with_for_update=True)
    if withdrawal is None:
        return None
    still_open = withdrawal.status in _OPEN_WITHDRAWAL
    if not still_open:
        return DeadlineCheck(withdrawal.payout_deadline, withdrawal.status, False)
    deadline = withdrawal.payout_deadline
    due = deadline.isoformat() if deadline else "its deadline"
    if stage == "warn":
        if withdrawal.deadline_warned_at is None:
            withdrawal.deadline_warned_at = at
        raised = await monitoring.raise_alert(
            session,
            dedupe_key=f"payout_deadline_near:{withdrawal_id}",
            kind="payout_deadline_near",
            severity="high",
            subject=withdrawal.player_id,
            message=f"Withdrawal {withdrawal_id} ({withdrawal.status}) must be paid by {due} "
            "(winnings within 3 calendar days, Art. 12 p. 4): one day left",
            details=_details(withdrawal),
        )
    else:
        if withdrawal.deadline_escalated_at is None:
            withdrawal.deadline_escalated_at = at
        raised = await monitoring.raise_alert(
            session,
            dedupe_key=f"payout_deadline_missed:{withdrawal_id}",
            kind="payout_deadline_missed",
            severity="critical",
            subject=withdrawal.player_id,
            message=f"Withdrawal {withdrawal_id} ({withdrawal.status}) was due by {due} and is "
            "not paid: the payout deadline for winnings (Art. 12 p. 4) is missed",
            details=_details(withdrawal),
        )
    await session.flush()
    return DeadlineCheck(deadline, withdrawal.status, True, raised)


def _details(withdrawal: Withdrawal) -> dict[str, Any]:
    return {
        "payment_id": withdrawal.id,
        "status": withdrawal.status,
        "amount_minor": withdrawal.amount_minor,
        "payout_deadline": withdrawal.payout_deadline.isoformat()
        if withdrawal.payout_deadline
        else None,
    }


async def paid_at(session: AsyncSession, *, payment_ids: list[str]) -> dict[str, datetime]:
    """When each of these withdrawals was paid (its `paid` event)."""
    if not payment_ids:
        return {}
    rows = await session.execute(
        select(PaymentEvent.payment_id, PaymentEvent.occurred_at).where(
            PaymentEvent.payment_id.in_(payment_ids), PaymentEvent.status == "paid"
        )
    )
    return {row.payment_id: row.occurred_at for row in rows}


# -- reality checks -------------------------------------------------------------------------

_REALITY = text(
    "WITH accounts AS (SELECT id FROM players WHERE person_id = :person_id "
    "                  AND merchant_id = :merchant_id), "
    "dep AS (SELECT "
    + ", ".join(
        f"coalesce(sum(amount_minor) FILTER (WHERE created_at >= :since_{w}), 0) AS dep_{w}, "
        f"count(*) FILTER (WHERE created_at >= :since_{w}) AS depn_{w}"
        for w in ("24h", "7d", "30d")
    )
    + " FROM deposits WHERE player_id IN (SELECT id FROM accounts) AND currency = :currency "
    "AND status = 'succeeded' AND created_at >= :since_30d), "
    "wd AS (SELECT "
    + ", ".join(
        f"coalesce(sum(amount_minor) FILTER (WHERE created_at >= :since_{w}), 0) AS wd_{w}"
        for w in ("24h", "7d", "30d")
    )
    + " FROM withdrawals WHERE player_id IN (SELECT id FROM accounts) AND currency = :currency "
    "AND status NOT IN ('rejected', 'cancelled', 'failed') AND created_at >= :since_30d), "
    "game AS (SELECT "
    + ", ".join(
        f"coalesce(sum(e.amount_minor) FILTER (WHERE t.kind = 'game_bet' "
        f"AND t.created_at >= :since_{w}), 0) AS bet_{w}, "
        f"coalesce(sum(e.amount_minor) FILTER (WHERE t.kind IN ('game_win', 'game_refund') "
        f"AND t.created_at >= :since_{w}), 0) AS back_{w}"
        for w in ("24h", "7d", "30d")
    )
    + " FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id "
    "WHERE e.account_id IN (SELECT a.id FROM ledger_accounts a WHERE a.code = ANY(:wallets)) "
    "AND t.kind IN ('game_bet', 'game_win', 'game_refund') AND t.created_at >= :since_30d) "
    "SELECT * FROM dep, wd, game"
)


@dataclass(frozen=True)
class RealityWindow:
    deposits_minor: int
    deposit_count: int
    withdrawals_minor: int
    net_loss_minor: int  # deposits minus withdrawals (paid or on their way)
    bets_minor: int
    wins_minor: int  # wins and refunds of bets
    game_net_loss_minor: int  # bets minus wins


async def reality_figures(
    session: AsyncSession,
    *,
    person_id: str,
    merchant_id: str,
    currency: str,
    wallets: list[str],
    windows: dict[str, timedelta],
    now: datetime,
) -> dict[str, RealityWindow]:
    params: dict[str, Any] = {
        "person_id": person_id,
        "merchant_id": merchant_id,
        "currency": currency,
        "wallets": wallets,
    }
    params.update({f"since_{name}": now - span for name, span in windows.items()})
    row = (await session.execute(_REALITY, params)).mappings().one()
    out: dict[str, RealityWindow] = {}
    for name in windows:
        deposits, withdrawals = int(row[f"dep_{name}"]), int(row[f"wd_{name}"])
        bets, back = int(row[f"bet_{name}"]), int(row[f"back_{name}"])
        out[name] = RealityWindow(
            deposits_minor=deposits,
            deposit_count=int(row[f"depn_{name}"]),
            withdrawals_minor=withdrawals,
            net_loss_minor=deposits - withdrawals,
            bets_minor=bets,
            wins_minor=back,
            game_net_loss_minor=bets - back,
        )
    return out
