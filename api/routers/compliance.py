"""Compliance (operator): the financial-monitoring report queue and the recorded refusals.

- `GET /v1/compliance/reports`: the queue (pending first by default filter), newest first, in
  keyset pages; `GET /v1/compliance/reports/{id}`;
- `GET /v1/compliance/reports/export?format=csv|json`: the same rows as a file, one line per
  payout in CSV (report columns repeated), the whole reports in JSON;
- `POST /v1/compliance/reports/{id}/submit` `{submitted_at?, reference?}`: marked submitted
  with the date and the submitter (the operator's key); the first submission stands;
- `GET /v1/compliance/refusals`: registrations, deposits and withdrawals a compliance rule
  refused, with their codes.
"""

import base64
import csv
import io
import json
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api import listing
from api.deps import OperatorDep, SessionDep
from api.errors import Problem
from db import compliance as store
from db.compliance_models import ComplianceRefusal, FmReport
from domain.compliance.monitoring import ReportKind

router = APIRouter(prefix="/v1/compliance", tags=["compliance"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid_cursor"},
    401: {"description": "unauthorized"},
    403: {"description": "forbidden: an operator key is needed"},
    404: {"description": "report_not_found"},
}
EXPORT_MAX_ROWS = 10_000


class ReportPayment(BaseModel):
    payment_id: str
    player_id: str
    amount: int = Field(description="minor units")
    paid_at: datetime


class ReportOut(BaseModel):
    id: str
    object: Literal["financial_monitoring_report"] = "financial_monitoring_report"
    kind: Literal["threshold", "split"] = Field(
        description="threshold: one payout at or over the threshold; split: a series of "
        "payouts each under it, within the window, that together reach it"
    )
    status: Literal["pending", "submitted"]
    person_id: str
    iin: str
    full_name: str
    currency: str
    total: int = Field(description="minor units")
    threshold: int = Field(description="minor units")
    payments: list[ReportPayment]
    first_paid_at: datetime
    last_paid_at: datetime
    submitted_at: datetime | None
    submitted_by: str | None
    submitted_by_name: str | None
    submission_reference: str | None
    created_at: datetime


class ReportList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ReportOut]
    next_cursor: str | None


class SubmitIn(BaseModel):
    model_config = {"extra": "forbid"}
    submitted_at: datetime | None = Field(
        default=None, description="when it was filed with the AFM (default: now)"
    )
    reference: str | None = Field(
        default=None, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="the AFM's"
    )


class RefusalOut(BaseModel):
    id: int
    stage: str
    code: str
    detail: str
    exclusion_register: str | None = Field(description="the register that listed the person")
    person_id: str | None
    player_id: str | None
    payment_id: str | None
    amount: int | None
    currency: str | None
    created_at: datetime


class RefusalList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RefusalOut]


def report_out(report: FmReport) -> ReportOut:
    return ReportOut(
        id=report.id,
        kind=report.kind,
        status=report.status,
        person_id=report.person_id,
        iin=report.iin,
        full_name=report.full_name,
        currency=report.currency,
        total=report.total_minor,
        threshold=report.threshold_minor,
        payments=[
            ReportPayment(
                payment_id=p["payment_id"],
                player_id=p["player_id"],
                amount=p["amount"],
                paid_at=p["paid_at"],
            )
            for p in report.payments
        ],
        first_paid_at=report.first_paid_at,
        last_paid_at=report.last_paid_at,
        submitted_at=report.submitted_at,
        submitted_by=report.submitted_by,
        submitted_by_name=report.submitted_by_name,
        submission_reference=report.submission_reference,
        created_at=report.created_at,
    )


def _cursor(report: FmReport) -> str:
    raw = f"{report.created_at.isoformat()}|{report.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _before(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        stamp, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), ident
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc


Status = Literal["pending", "submitted"]


@router.get("/reports", responses=_PROBLEMS)
async def list_reports(
    session: SessionDep,
    _: OperatorDep,
    status: Status | None = None,
    kind: ReportKind | None = None,
    person_id: str | None = Query(default=None, max_length=40),
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: listing.Limit = 50,
    cursor: str | None = None,
) -> ReportList:
    """The financial-monitoring queue, newest first (`?status=pending`: still to submit)."""
    rows = await store.list_reports(
        session,
        status=status,
        kind=kind,
        person_id=person_id,
        created_from=created_from,
        created_to=created_to,
        limit=limit + 1,
        before=_before(cursor),
    )
    page = rows[:limit]
    next_cursor = _cursor(page[-1]) if len(rows) > limit else None
    return ReportList(data=[report_out(r) for r in page], next_cursor=next_cursor)


_CSV_COLUMNS = (
    "report_id",
    "kind",
    "status",
    "person_id",
    "iin",
    "full_name",
    "currency",
    "total_minor",
    "threshold_minor",
    "payment_id",
    "player_id",
    "amount_minor",
    "paid_at",
    "first_paid_at",
    "last_paid_at",
    "submitted_at",
    "submitted_by",
    "submission_reference",
    "created_at",
)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _csv_safe(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(reports: list[FmReport]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for r in reports:
        for p in r.payments:
            writer.writerow(
                [
                    r.id,
                    r.kind,
                    r.status,
                    r.person_id,
                    r.iin,
                    _csv_safe(r.full_name),
                    r.currency,
                    r.total_minor,
                    r.threshold_minor,
                    p["payment_id"],
                    p["player_id"],
                    p["amount"],
                    p["paid_at"],
                    _iso(r.first_paid_at),
                    _iso(r.last_paid_at),
                    _iso(r.submitted_at),
                    _csv_safe(r.submitted_by_name or ""),
                    _csv_safe(r.submission_reference or ""),
                    _iso(r.created_at),
                ]
            )
    return buffer.getvalue()


@router.get(
    "/reports/export",
    responses={
        **_PROBLEMS,
        200: {"content": {"text/csv": {}, "application/json": {}}},
    },
    response_class=Response,
)
async def export_reports(
    session: SessionDep,
    _: OperatorDep,
    format: Literal["csv", "json"] = "csv",
    status: Status | None = None,
    kind: ReportKind | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> Response:
    """The reports as a file for the AFM's submission (at most 10,000 reports, newest first):
    CSV has one row per payout, JSON the reports as `GET /reports` shows them."""
    rows = await store.list_reports(
        session,
        status=status,
        kind=kind,
        person_id=None,
        created_from=created_from,
        created_to=created_to,
        limit=EXPORT_MAX_ROWS,
        before=None,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"financial-monitoring-{stamp}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "json":
        body = json.dumps(
            {"object": "list", "data": [report_out(r).model_dump(mode="json") for r in rows]}
        )
        return Response(body, media_type="application/json", headers=headers)
    return Response(_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/reports/{report_id}", responses=_PROBLEMS)
async def get_report(report_id: str, session: SessionDep, _: OperatorDep) -> ReportOut:
    report = await store.get_report(session, report_id=report_id)
    if report is None:
        raise Problem(404, "report_not_found", f"No report {report_id!r}")
    return report_out(report)


@router.post("/reports/{report_id}/submit", responses=_PROBLEMS)
async def submit_report(
    report_id: str, session: SessionDep, operator: OperatorDep, body: SubmitIn | None = None
) -> ReportOut:
    """Mark the report submitted to the AFM, with when and by whom (the operator's key). A
    report submitted already keeps its first submission."""
    submitted_at = (body.submitted_at if body else None) or datetime.now(UTC)
    if submitted_at.tzinfo is None:
        raise Problem(422, "invalid_submitted_at", "submitted_at needs a time zone (RFC 3339)")
    async with session.begin():
        report = await store.submit_report(
            session,
            report_id=report_id,
            submitted_at=submitted_at,
            by=operator.key_id,
            by_name=operator.name,
            reference=body.reference if body else None,
        )
        if report is None:
            raise Problem(404, "report_not_found", f"No report {report_id!r}")
        return report_out(report)


def refusal_out(refusal: ComplianceRefusal) -> RefusalOut:
    return RefusalOut(
        id=refusal.id,
        stage=refusal.stage,
        code=refusal.code,
        detail=refusal.detail,
        exclusion_register=refusal.register,
        person_id=refusal.person_id,
        player_id=refusal.player_id,
        payment_id=refusal.payment_id,
        amount=refusal.amount_minor,
        currency=refusal.currency,
        created_at=refusal.created_at,
    )


@router.get("/refusals", responses=_PROBLEMS)
async def list_refusals(
    session: SessionDep,
    _: OperatorDep,
    code: str | None = Query(default=None, max_length=64),
    person_id: str | None = Query(default=None, max_length=40),
    player_id: str | None = Query(default=None, max_length=40),
    limit: listing.Limit = 50,
) -> RefusalList:
    """What compliance rules refused, newest first (the IIN itself is not shown here)."""
    rows = await store.list_refusals(
        session, code=code, person_id=person_id, player_id=player_id, limit=limit
    )
    return RefusalList(data=[refusal_out(r) for r in rows])
