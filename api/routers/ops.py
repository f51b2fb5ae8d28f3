"""Operator visibility: `GET /v1/ops/stuck`, payments that sit in a non-terminal status too long.

The database says which payments are stuck and what they did so far (attempts); Temporal's
visibility store (the `PaymentStatus` search attribute) says whether their workflows still run.
When visibility cannot answer (the time-skipping test server has no list queries, or Temporal is
down), the database answer is still returned and `visibility.available` is false, with why.
"""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import OperatorDep, SessionDep, StateDep
from api.errors import Problem
from api.state import AppState
from db import late_payments as late_store
from domain.statuses import TERMINAL_DEPOSIT_STATUSES, DepositStatus
from domain.withdrawals import WithdrawalStatus
from workflows.search_attributes import PAYMENT_STATUS

router = APIRouter(prefix="/v1/ops", tags=["ops"])

DEPOSIT_OPEN = tuple(s.value for s in DepositStatus if s not in TERMINAL_DEPOSIT_STATUSES)
WITHDRAWAL_OPEN = tuple(s.value for s in WithdrawalStatus if not s.terminal)

WAITING_ON: dict[tuple[str, str], str] = {
    ("deposit", "pending"): "risk check, then the provider charge",
    ("deposit", "requires_action"): "the player to finish (next_action)",
    ("deposit", "processing"): "the provider's result (charge retries or status inquiry)",
    ("deposit", "in_review"): "an operator's review: paid, not credited (approve/reject)",
    ("withdrawal", "pending"): "risk check",
    ("withdrawal", "in_review"): "an operator's review (approve/reject)",
    ("withdrawal", "approved"): "the payout to start",
    ("withdrawal", "processing"): "the provider's payout result",
}

_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_VISIBILITY_TIMEOUT_SECONDS = 5.0
_VISIBILITY_LIMIT = 2000


def parse_duration(value: str) -> timedelta:
    """`90`, `90s`, `10m`, `2h`, `1d`."""
    match = _DURATION.match(value)
    if not match:
        raise Problem(
            422, "invalid_duration", "older_than must look like 30s, 10m, 2h or 1d (or seconds)"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > 366 * 86400:
        raise Problem(422, "invalid_duration", "older_than may be at most a year")
    return timedelta(seconds=seconds)


class LastAttempt(BaseModel):
    step: str
    attempt_no: int
    provider: str
    outcome: str
    error_code: str | None
    at: datetime


class TemporalView(BaseModel):
    running: bool
    payment_status: str | None


class StuckPayment(BaseModel):
    id: str
    kind: Literal["deposit", "withdrawal"]
    status: str
    method: str
    provider: str | None
    amount_minor: int
    currency: str
    player_id: str
    created_at: datetime
    status_since: datetime
    stuck_seconds: int
    waiting_on: str
    stuck_reason: str | None = None
    """Set when the workflow's bounded retries ran out: the step it is stuck at, and why."""
    attempts: int
    last_attempt: LastAttempt | None
    workflow_id: str
    temporal_url: str
    temporal: TemporalView | None


class OrphanWorkflow(BaseModel):
    """Running in Temporal with a non-terminal PaymentStatus while the database has the payment
    finished (`database_status`) or not at all (null): the two disagree, look at it."""

    workflow_id: str
    payment_status: str | None
    database_status: str | None
    started_at: datetime | None
    temporal_url: str


class Visibility(BaseModel):
    available: bool
    detail: str


class StuckList(BaseModel):
    object: Literal["list"] = "list"
    older_than_seconds: int
    cutoff: datetime
    visibility: Visibility
    data: list[StuckPayment]
    temporal_only: list[OrphanWorkflow]


def temporal_url(state: AppState, workflow_id: str) -> str:
    settings = state.settings
    base = settings.temporal_web_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"


_STUCK_SQL = text(
    """
    SELECT p.*, a.attempts, l.step, l.attempt_no, l.provider AS attempt_provider, l.outcome,
           l.error_code, l.created_at AS attempt_at
    FROM (
        SELECT 'deposit' AS kind, id, status, method, provider, amount_minor, currency,
               player_id, workflow_id, created_at, updated_at, stuck_reason
        FROM deposits WHERE status = ANY(:deposit_open)
            AND (updated_at < :cutoff OR stuck_reason IS NOT NULL)
        UNION ALL
        SELECT 'withdrawal', id, status, method, provider, amount_minor, currency,
               player_id, workflow_id, created_at, updated_at, stuck_reason
        FROM withdrawals WHERE status = ANY(:withdrawal_open)
            AND (updated_at < :cutoff OR stuck_reason IS NOT NULL)
    ) p
    LEFT JOIN LATERAL (
        SELECT count(*) AS attempts FROM payment_attempts WHERE payment_id = p.id
    ) a ON true
    LEFT JOIN LATERAL (
        SELECT * FROM payment_attempts WHERE payment_id = p.id ORDER BY id DESC LIMIT 1
    ) l ON true
    ORDER BY p.updated_at, p.id
    LIMIT :limit
    """
)


async def _running_workflows(
    state: AppState,
) -> tuple[dict[str, tuple[str | None, datetime | None]] | None, str]:
    """Running payment workflows with a non-terminal PaymentStatus, or None and why not."""
    statuses = sorted(set(DEPOSIT_OPEN) | set(WITHDRAWAL_OPEN))
    query = 'ExecutionStatus="Running" AND PaymentStatus IN ({})'.format(
        ", ".join(f'"{s}"' for s in statuses)
    )

    async def collect() -> dict[str, tuple[str | None, datetime | None]]:
        client = await state.temporal()
        found: dict[str, tuple[str | None, datetime | None]] = {}
        async for wf in client.list_workflows(query):
            found[wf.id] = (wf.typed_search_attributes.get(PAYMENT_STATUS), wf.start_time)
            if len(found) >= _VISIBILITY_LIMIT:
                break
        return found

    try:
        found = await asyncio.wait_for(collect(), _VISIBILITY_TIMEOUT_SECONDS)
    except TimeoutError:
        return None, "Temporal visibility did not answer in time; database view only"
    except Exception as exc:  # any RPC failure degrades to the database view
        return None, f"Temporal visibility unavailable ({type(exc).__name__}: {exc}); " + (
            "database view only"
        )
    return found, f"Cross-checked with Temporal visibility: {query}"


async def _db_statuses(session: AsyncSession, workflow_ids: list[str]) -> dict[str, str]:
    if not workflow_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT workflow_id, status FROM deposits WHERE workflow_id = ANY(:ids) "
            "UNION ALL SELECT workflow_id, status FROM withdrawals WHERE workflow_id = ANY(:ids)"
        ),
        {"ids": workflow_ids},
    )
    return {str(r[0]): str(r[1]) for r in rows}


@router.get("/stuck", responses={422: {"description": "invalid_duration"}})
async def stuck(
    session: SessionDep,
    state: StateDep,
    _: OperatorDep,
    older_than: str = "10m",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> StuckList:
    """Deposits and withdrawals in a non-terminal status for longer than `older_than`, and
    those whose workflow flagged them stuck (bounded retries ran out), whatever their age."""
    threshold = parse_duration(older_than)
    now = datetime.now(UTC)
    cutoff = now - threshold
    rows = (
        (
            await session.execute(
                _STUCK_SQL,
                {
                    "deposit_open": list(DEPOSIT_OPEN),
                    "withdrawal_open": list(WITHDRAWAL_OPEN),
                    "cutoff": cutoff,
                    "limit": limit,
                },
            )
        )
        .mappings()
        .all()
    )
    running, detail = await _running_workflows(state)
    data: list[StuckPayment] = []
    for row in rows:
        view: TemporalView | None = None
        if running is not None:
            seen = running.get(row["workflow_id"])
            view = TemporalView(running=seen is not None, payment_status=seen[0] if seen else None)
        last: LastAttempt | None = None
        if row["step"] is not None:
            last = LastAttempt(
                step=row["step"],
                attempt_no=row["attempt_no"],
                provider=row["attempt_provider"],
                outcome=row["outcome"],
                error_code=row["error_code"],
                at=row["attempt_at"],
            )
        waiting = WAITING_ON.get((row["kind"], row["status"]), row["status"])
        if row["stuck_reason"]:
            waiting = f"stuck at {row['stuck_reason']}; {waiting}"
        if last is not None:
            waiting += f"; last step {last.step} #{last.attempt_no}: {last.outcome}"
        data.append(
            StuckPayment(
                id=row["id"],
                kind=row["kind"],
                status=row["status"],
                method=row["method"],
                provider=row["provider"],
                amount_minor=row["amount_minor"],
                currency=row["currency"],
                player_id=row["player_id"],
                created_at=row["created_at"],
                status_since=row["updated_at"],
                stuck_seconds=int((now - row["updated_at"]).total_seconds()),
                waiting_on=waiting,
                stuck_reason=row["stuck_reason"],
                attempts=int(row["attempts"] or 0),
                last_attempt=last,
                workflow_id=row["workflow_id"],
                temporal_url=temporal_url(state, row["workflow_id"]),
                temporal=view,
            )
        )
    orphans: list[OrphanWorkflow] = []
    if running is not None:
        known = {p.workflow_id for p in data}
        candidates = {
            wf_id: seen
            for wf_id, seen in running.items()
            if wf_id not in known and (seen[1] is None or seen[1] <= cutoff)
        }
        in_db = await _db_statuses(session, list(candidates))
        for wf_id, (status, started) in sorted(candidates.items()):
            db_status = in_db.get(wf_id)
            if db_status in DEPOSIT_OPEN or db_status in WITHDRAWAL_OPEN:
                continue  # still open in the database too, just not past the threshold there
            orphans.append(
                OrphanWorkflow(
                    workflow_id=wf_id,
                    payment_status=status,
                    database_status=db_status,
                    started_at=started,
                    temporal_url=temporal_url(state, wf_id),
                )
            )
    return StuckList(
        older_than_seconds=int(threshold.total_seconds()),
        cutoff=cutoff,
        visibility=Visibility(available=running is not None, detail=detail),
        data=data,
        temporal_only=orphans,
    )


class LatePayment(BaseModel):
    """Money a provider confirmed for a deposit that had already expired, failed or succeeded
    elsewhere, and what the late-payment policy did with it."""

    id: int
    deposit_id: str
    provider: str
    amount_minor: int
    currency: str
    deposit_status: str
    policy: Literal["credit", "refund", "manual"]
    resolution: Literal["open", "credited", "refunded", "refund_requested"]
    ledger_transaction_id: int | None
    created_at: datetime
    resolved_at: datetime | None


class LatePaymentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[LatePayment]


@router.get("/late-payments")
async def late_payments(
    session: SessionDep,
    _: OperatorDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> LatePaymentList:
    """Late-payment cases, newest first: each is also a critical `late_payment` alert."""
    rows = await late_store.list_cases(session, limit=limit)
    return LatePaymentList(data=[LatePayment.model_validate(row) for row in rows])
