"""Reconciliation runs (operator key): run a provider's business day on demand, upload a report
to reconcile, and see the runs.

- `POST /v1/recon/runs {provider, date}`: starts `ReconciliationWorkflow` (id
  `recon-{provider}-{date}`), which fetches the provider's report (the bank's statement for the
  bank) and reconciles it. A run of that day already under way is answered, not doubled.
- `POST /v1/recon/runs/upload?provider=&date=&format=`: the report as the request body (a
  provider's file in its own format, the bank's camt.053 or CSV, or `recon.jsonl`); it is read
  and stored before the answer, so a bad file is a 422 naming the line. The same report again
  answers the run that reconciled it (idempotent per provider, day and report hash); a
  corrected one (another hash) supersedes the day's earlier run.
- `GET /v1/recon/runs?provider=&date=&status=`, `GET /v1/recon/runs/{id}`: counts and amounts
  per outcome, open cases, how the day's clearing was settled, supersessions.

(`POST /v1/ops/reconcile`, api/routers/reconcile.py, is another thing: starting the workflows
of payments whose workflow never started.)
"""

import csv
import datetime as dt
import hashlib
import tempfile
from datetime import UTC, datetime
from typing import IO, Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.deps import OperatorDep, SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.schemas import StrictModel
from config import Settings
from db import recon as store
from domain.recon.canonical import CANONICAL_FORMAT, ReportInvalid, read_jsonl
from domain.recon.days import business_day
from domain.recon.lines import ReportHeader
from providers.reports import (
    ReportFormatError,
    format_of,
    parse_report,
    report_formats,
    settlement_accounts,
)
from workflows.reconciliation import (
    ReconciliationInput,
    ReconciliationWorkflow,
    recon_workflow_id,
)

router = APIRouter(prefix="/v1/recon", tags=["reconciliation"])

_PROVIDER = r"^[a-z0-9_]{1,64}$"
_SPOOL_IN_MEMORY = 8 * 1024 * 1024


class RunCreate(StrictModel):
    provider: str = Field(pattern=_PROVIDER, description="a configured provider, e.g. halyk")
    date: dt.date = Field(description="the provider's business day (Asia/Almaty), YYYY-MM-DD")


class Figure(BaseModel):
    count: int
    amount: int = Field(description="minor units")


class ReportOut(BaseModel):
    id: int
    hash: str = Field(description="SHA-256 of the report's content (idempotency key of a run)")
    source: str | None = Field(description="fetched | uploaded")
    format: str | None


class SettlementOut(BaseModel):
    key: str | None = Field(description="ledger key: recon:{provider}:{date}:{hash}:settlement")
    transaction_id: int | None
    clearing: int = Field(description="the day's clearing balance swept to zero, minor units")
    settled: int = Field(description="to the operator's bank account")
    fee_delta: int = Field(description="actual fees less the fees booked, to fee expense")
    difference: int = Field(description="unexplained, to the reconciliation-difference account")
    fees_reported: int
    fees_expected: int


class RunOut(BaseModel):
    id: int
    object: Literal["recon_run"] = "recon_run"
    provider: str
    date: dt.date
    currency: str
    status: Literal["running", "matched", "completed", "superseded"]
    superseded_by: int | None
    report: ReportOut
    lines: int
    outcomes: dict[str, Figure] = Field(
        description="per outcome: matched, missing_ours, missing_provider, amount_mismatch, "
        "currency_mismatch, fee_mismatch, duplicate, unknown_reference, short_payment, "
        "over_payment, late_payment, chargeback, chargeback_reversal, settlement (a provider's "
        "settlement on the bank statement as its run settled it), settlement_unmatched, "
        "settlement_mismatch"
    )
    matched: Figure
    unmatched: Figure
    cases_opened: int
    settlement: SettlementOut
    details: dict[str, Any]
    supersessions: list[dict[str, Any]]
    workflow_id: str | None
    requested_by: str | None
    created_at: datetime
    finished_at: datetime | None


class RunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RunOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class RunRequest(BaseModel):
    object: Literal["recon_run_request"] = "recon_run_request"
    provider: str
    date: dt.date
    workflow_id: str
    status: Literal["started", "already_running", "already_reconciled"]
    report: ReportOut | None = Field(default=None, description="the uploaded report as stored")
    run: RunOut | None = Field(default=None, description="the run that reconciled it before")


def _out(run: store.RunRow, trail: list[dict[str, Any]] | None = None) -> RunOut:
    return RunOut(
        id=run.id,
        provider=run.provider,
        date=run.business_date,
        currency=run.currency,
        status=cast(Any, run.status),
        superseded_by=run.superseded_by,
        report=ReportOut(
            id=run.report_id, hash=run.report_hash, source=run.source, format=run.format
        ),
        lines=run.line_count,
        outcomes={
            kind: Figure(count=v["count"], amount=v["amount_minor"])
            for kind, v in run.outcomes.items()
        },
        matched=Figure(count=run.matched_count, amount=run.matched_minor),
        unmatched=Figure(count=run.unmatched_count, amount=run.unmatched_minor),
        cases_opened=run.cases_opened,
        settlement=SettlementOut(
            key=run.settlement_key,
            transaction_id=run.settlement_transaction_id,
            clearing=run.clearing_minor,
            settled=run.net_settled_minor,
            fee_delta=run.fee_delta_minor,
            difference=run.difference_minor,
            fees_reported=run.fees_reported_minor,
            fees_expected=run.fees_expected_minor,
        ),
        details={k: v for k, v in run.details.items() if k != "matched_other_day"},
        supersessions=[
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in item.items()}
            for item in trail or []
        ],
        workflow_id=run.workflow_id,
        requested_by=run.requested_by,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


def _known_provider(settings: Settings, provider: str) -> None:
    known = {rule.name for rule in settings.providers} | set(settings.payout_providers.values())
    if provider not in known:
        raise Problem(
            422, "unknown_provider", f"no provider {provider!r} is configured ({sorted(known)})"
        )


def _check_day(day: dt.date) -> None:
    if day > business_day(datetime.now(UTC)):
        raise Problem(422, "invalid_date", f"{day} has not begun in Asia/Almaty yet")


async def _start(
    state: Any, settings: Settings, inp: ReconciliationInput
) -> tuple[str, Literal["started", "already_running"]]:
    workflow_id = recon_workflow_id(inp.provider, inp.business_date)
    try:
        client: Client = await state.temporal()
        await client.start_workflow(
            ReconciliationWorkflow.run,
            inp,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        return workflow_id, "already_running"
    except RPCError as exc:
        raise Problem(
            503, "orchestrator_unavailable", "Temporal did not answer; ask for the run again"
        ) from exc
    return workflow_id, "started"


_COMMON: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthorized"},
    403: {"description": "forbidden (an operator key is needed)"},
}


@router.post(
    "/runs",
    status_code=202,
    responses={
        **_COMMON,
        422: {"description": "unknown_provider, no_report_source, invalid_date"},
        503: {"description": "orchestrator_unavailable"},
    },
)
async def create_run(
    body: RunCreate, settings: SettingsDep, state: StateDep, principal: OperatorDep
) -> RunRequest:
    """Reconcile a provider's business day now: its report is fetched from the provider (the
    bank's statement for the bank). A run of that day already under way is answered as such."""
    _known_provider(settings, body.provider)
    _check_day(body.date)
    try:
        format_of(settings.connector(body.provider).type)
    except ValueError as exc:
        raise Problem(
            422,
            "no_report_source",
            f"{body.provider}'s connector delivers no reports: upload its report at "
            "POST /v1/recon/runs/upload",
        ) from exc
    workflow_id, status = await _start(
        state,
        settings,
        ReconciliationInput(
            provider=body.provider, business_date=body.date, requested_by=principal.name
        ),
    )
    return RunRequest(
        provider=body.provider, date=body.date, workflow_id=workflow_id, status=status
    )


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "the report file as the provider or the bank delivers it",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in (
                "text/csv",
                "application/xml",
                "application/json",
                "application/x-ndjson",
                "application/octet-stream",
            )
        },
    }
}


@router.post(
    "/runs/upload",
    status_code=202,
    openapi_extra=_UPLOAD_BODY,
    responses={
        **_COMMON,
        200: {
            "description": "this very report was reconciled before: its run",
            "model": RunRequest,
        },
        409: {"description": "run_in_progress: the day is being reconciled; upload again after"},
        413: {"description": "payload_too_large"},
        422: {
            "description": "unknown_provider, unknown_format, invalid_date, empty_report, "
            "invalid_report (names the line), report_mismatch (another provider or day)"
        },
        503: {"description": "orchestrator_unavailable: upload again (the report is kept)"},
    },
)
async def upload_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: StateDep,
    principal: OperatorDep,
    provider: Annotated[str, Query(pattern=_PROVIDER)],
    date: Annotated[dt.date, Query(description="the report's business day (Asia/Almaty)")],
    format: Annotated[
        str,
        Query(
            max_length=64,
            description="the report's format: halyk_epay.csv, camt.053, kazbank.csv, "
            f"{CANONICAL_FORMAT}, ...",
        ),
    ],
    filename: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Reconcile an uploaded report (a provider's file, the bank's statement)."""
    _known_provider(settings, provider)
    _check_day(date)
    if format != CANONICAL_FORMAT and format not in report_formats():
        known = sorted({CANONICAL_FORMAT, *report_formats()})
        raise Problem(422, "unknown_format", f"format must be one of {known}")
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        source = cast(IO[bytes], spool)
        digest, size = await _receive(request, source, settings.recon_upload_max_bytes)
        if size == 0:
            raise Problem(422, "empty_report", "the request body holds no report")
        source.seek(0)
        try:
            header, lines = _parse(format, source, provider, settings)
            if (header.provider, header.business_date) != (provider, date):
                raise Problem(
                    422,
                    "report_mismatch",
                    f"the file is {header.provider}'s report of {header.business_date}, not "
                    f"{provider}'s of {date}",
                )
            async with session.begin():
                staged = await store.stage_report(
                    session,
                    header=header,
                    lines=lines,
                    source="uploaded",
                    received_by=principal.name,
                    raw_sha256=digest,
                    raw_size=size,
                    filename=filename,
                )
        except (ReportFormatError, ReportInvalid) as exc:
            raise Problem(422, "invalid_report", f"the report cannot be read: {exc}") from exc
        except (ValueError, UnicodeError, csv.Error) as exc:  # a parser's slip: still bad input
            detail = f"the report cannot be read as {format}"
            raise Problem(422, "invalid_report", detail) from exc
    async with session.begin():
        report = await store.get_report(session, report_id=staged.report_id)
        assert report is not None
        runs = await store.list_runs(
            session, provider=provider, business_date=date, status=None, limit=50, before_id=None
        )
    stored = ReportOut(
        id=report.id, hash=report.content_hash, source=report.source, format=report.format
    )
    workflow_id = recon_workflow_id(provider, date)
    done = next((r for r in runs if r.report_hash == report.content_hash), None)
    if done is not None and done.status in ("completed", "superseded"):
        return _already(provider, date, workflow_id, stored, done)
    _, status = await _start(
        state,
        settings,
        ReconciliationInput(
            provider=provider,
            business_date=date,
            report_id=report.id,
            requested_by=principal.name,
        ),
    )
    if status == "already_running":
        raise Problem(
            409,
            "run_in_progress",
            f"{provider}'s {date} is being reconciled ({workflow_id}); the report is stored: "
            "upload it again when that run has finished",
        )
    return RunRequest(
        provider=provider, date=date, workflow_id=workflow_id, status="started", report=stored
    )


def _already(
    provider: str, day: dt.date, workflow_id: str, stored: ReportOut, run: store.RunRow
) -> JSONResponse:
    body = RunRequest(
        provider=provider,
        date=day,
        workflow_id=workflow_id,
        status="already_reconciled",
        report=stored,
        run=_out(run),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200)


async def _receive(request: Request, into: IO[bytes], limit: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "payload_too_large", f"reports are limited to {limit} bytes")
        digest.update(chunk)
        into.write(chunk)
    return digest.hexdigest(), size


def _parse(
    fmt: str, source: IO[bytes], provider: str, settings: Settings
) -> tuple[ReportHeader, Any]:
    if fmt == CANONICAL_FORMAT:
        header, lines = read_jsonl(source)
        return header, lines
    parsed: tuple[ReportHeader, Any] = parse_report(
        fmt, source, provider, settlement_accounts=settlement_accounts(settings)
    )
    return parsed


@router.get(
    "/runs",
    responses={**_COMMON, 400: {"description": "invalid_cursor"}},
)
async def list_runs(
    session: SessionDep,
    _: OperatorDep,
    provider: Annotated[str | None, Query(pattern=_PROVIDER)] = None,
    date: Annotated[dt.date | None, Query()] = None,
    status: Annotated[
        Literal["running", "matched", "completed", "superseded"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> RunList:
    """Runs, newest first, with their figures and supersessions."""
    async with session.begin():
        runs = await store.list_runs(
            session,
            provider=provider,
            business_date=date,
            status=status,
            limit=limit + 1,
            before_id=int(cursor) if cursor else None,
        )
        shown = runs[:limit]
        trails = await store.supersessions(session, run_ids=[r.id for r in shown])
    more = len(runs) > limit
    return RunList(
        data=[_out(r, trails.get(r.id)) for r in shown],
        next_cursor=str(shown[-1].id) if more and shown else None,
    )


@router.get(
    "/runs/{run_id}",
    responses={**_COMMON, 404: {"description": "run_not_found"}},
)
async def get_run(
    run_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep, _: OperatorDep
) -> RunOut:
    """One run: its figures per outcome, settlement and supersessions."""
    async with session.begin():
        run = await store.get_run(session, run_id=run_id)
        if run is None:
            raise Problem(404, "run_not_found", f"No reconciliation run {run_id}")
        trails = await store.supersessions(session, run_ids=[run_id])
    return _out(run, trails.get(run_id))
