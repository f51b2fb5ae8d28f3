"""Where the reports are served: each provider's report over its own API, in its own style
(the platform's side: `providers.reports`), the bank's statement over KazBank's API, and the
admin endpoints (the same files, written under the data directory too; the report behaviour;
corrected reports; chargebacks).

Provider APIs (each authenticated as that provider's payment API is; the behaviour's outage,
throttling and expired credentials apply):
- halyk_epay: `GET /providers/{name}/statement/operations?date=` (Bearer client token)
- freedom_pay, freedom_pay_wallet: `POST /providers/{name}/registry.php` (signed pg_* form)
- cloudpayments: `POST /providers/{name}/reports/settlement` {Date, TimeZone} (Basic)
- kaspi: `GET /providers/{name}/reports/daily?date=` (Api-Key)
- ioka: `GET /providers/{name}/v2/reports/settlements/{date}` (API-KEY)
- kazbank: `GET /providers/{name}/v2/statements/{date}?format=camt053|csv` (X-Api-Key)

Admin:
- `GET|PUT /admin/providers/{name}/report-behaviour` (`simulator.reports.ReportBehaviour`)
- `GET /admin/providers/{name}/reports/{date}[?format=camt.053|kazbank.csv]`: the report (for the
  bank: the statement) as a file, also written to `{data_dir}/reports/{name}/` (its path in the
  `X-Report-File` header)
- `POST /admin/providers/{name}/reports/{date}/reissue`: a corrected report (next revision)
- `POST /admin/providers/{name}/chargebacks` {reference, amount?, reason?}: a chargeback on a
  payment, in the next report, and a notification where the provider sends them (CloudPayments,
  ioka: their signed callback formats, an assumption: neither documents one)
- `POST /admin/providers/{name}/chargebacks/{reference}/reversal` {amount?, reason?}
"""

import base64
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from providers.connectors.freedom_pay import DEV_MERCHANT_ID, signature
from simulator.faults import SimulatorError
from simulator.reports import Books, ReportBehaviour, ReportContent
from simulator.reports.formats import FORMATS, money
from simulator.reports.statement import STATEMENT_FORMATS, Statements

if TYPE_CHECKING:
    from simulator.app import Registry

FREEDOM_TYPES = ("freedom_pay", "freedom_pay_wallet")
STATEMENT_NAMES = {"camt053": "camt.053", "csv": "kazbank.csv"}


class ChargebackRequest(BaseModel):
    reference: str = Field(min_length=1, max_length=80, description="the payment's (ours)")
    amount: int | None = Field(default=None, gt=0, description="minor units; null: all left")
    reason: str = Field(default="4837", max_length=64, description="the scheme's reason code")


class ReversalRequest(BaseModel):
    amount: int | None = Field(default=None, gt=0, description="null: all charged back")
    reason: str = Field(default="representment_won", max_length=64)


class Reissued(BaseModel):
    provider: str
    business_date: date
    revision: int
    issued_at: datetime


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise SimulatorError(400, "bad_request", f"not a date: {text!r}") from exc


# -- chargeback notifications (assumed formats, see the module docstring) -----------------------


def _ioka_chargeback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Signed as ioka signs its webhooks (`providers.connectors.ioka`)."""
    from providers.connectors import ioka
    from simulator.connectors.ioka import order_id

    body = json.dumps(
        {
            "event": "CHARGEBACK_REVERSED"
            if event["kind"] == "chargeback_reversal"
            else "CHARGEBACK_CREATED",
            "order": {"id": order_id(event["reference"]), "external_id": event["reference"]},
            "chargeback": {
                "id": event["provider_id"],
                "payment_id": event["payment_id"],
                "amount": event["amount"],
                "currency": event["currency"],
                "reason": event["reason"],
                "created_at": event["sent_at"],
            },
        }
    ).encode()
    stamp = int(time.time())
    return body, {
        "content-type": "application/json",
        ioka.SIGNATURE_HEADER: ioka.sign(secret, stamp, body),
        ioka.TIMESTAMP_HEADER: str(stamp),
    }


def _cloudpayments_chargeback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Signed as CloudPayments signs its notifications (HMAC over the body)."""
    from providers.connectors import cloudpayments

    body = json.dumps(
        {
            "TransactionId": event["provider_id"],
            "PaymentTransactionId": event["payment_id"],
            "Amount": money(int(event["amount"])),
            "Currency": event["currency"],
            "InvoiceId": event["reference"],
            "OperationType": "ChargebackReversal"
            if event["kind"] == "chargeback_reversal"
            else "Chargeback",
            "ReasonCode": event["reason"],
            "DateTime": event["sent_at"],
        }
    ).encode()
    signed = cloudpayments.sign(secret, body)
    return body, {
        "content-type": "application/json",
        cloudpayments.SIGNATURE_HEADER: signed,
        "Content-HMAC": signed,
    }


CHARGEBACK_ENCODERS = {"ioka": _ioka_chargeback, "cloudpayments": _cloudpayments_chargeback}


def reports_router(registry: "Registry", books: Books) -> APIRouter:
    router = APIRouter(tags=["reports"])
    settings = registry.settings
    statements = Statements(registry, books)

    def known(name: str, *types: str) -> None:
        if name not in registry.cards and name not in registry.payments:
            raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")
        if types and registry.connector_type(name) not in types:
            raise SimulatorError(404, "unknown_provider", f"{name!r} has no such report")

    def reporting(name: str) -> None:
        known(name)
        if registry.connector_type(name) not in FORMATS:
            raise SimulatorError(404, "no_reports", f"{name!r} delivers no daily report")

    def admit(name: str) -> None:
        registry.behaviour(name).admit(name)

    def body_of(report: ReportContent) -> Iterator[bytes]:
        return FORMATS[report.connector_type][3](report)

    def report_response(name: str, day: date) -> StreamingResponse:
        report = books.content(name, day)
        media = FORMATS[report.connector_type][1]
        return StreamingResponse(body_of(report), media_type=media)

    def guarded(
        render: Callable[[SimulatorError], Response], work: Callable[[], Response]
    ) -> Response:
        try:
            return work()
        except SimulatorError as exc:
            return render(exc)

    # -- the providers' APIs ----------------------------------------------------------------

    def halyk_error(exc: SimulatorError) -> Response:
        return JSONResponse(
            {"code": exc.code, "message": exc.detail}, status_code=exc.status, headers=exc.headers
        )

    @router.get("/providers/{name}/statement/operations")
    async def halyk_report(name: str, date: str, request: Request) -> Response:
        from simulator.connectors.halyk_epay import client_token_valid

        def work() -> Response:
            known(name, "halyk_epay")
            header = request.headers.get("authorization", "")
            if not client_token_valid(registry, name, header):
                raise SimulatorError(401, "unauthorized", "unknown or expired access token")
            admit(name)
            return report_response(name, _day(date))

        return guarded(halyk_error, work)

    def freedom_error(exc: SimulatorError) -> Response:
        code = {"unauthorized": "9998", "invalid_signature": "9998"}.get(exc.code, "9999")
        xml = (
            "<?xml version='1.0' encoding='utf-8'?><response><pg_status>error</pg_status>"
            f"<pg_error_code>{code}</pg_error_code>"
            f"<pg_error_description>{exc.detail}</pg_error_description></response>"
        )
        return Response(xml, status_code=exc.status, media_type="application/xml")

    @router.post("/providers/{name}/registry.php")
    async def freedom_report(name: str, request: Request) -> Response:
        raw = (await request.body()).decode(errors="replace")

        def work() -> Response:
            known(name, *FREEDOM_TYPES)
            pairs = parse_qsl(raw, keep_blank_values=True)
            fields = dict(pairs)
            merchant = settings.connector(name).merchant_id or DEV_MERCHANT_ID
            if fields.get("pg_merchant_id") != merchant:
                raise SimulatorError(400, "unknown_merchant", "merchant not identified")
            signed = signature(
                "registry.php",
                [(k, v) for k, v in pairs if k != "pg_sig"],
                settings.provider_secret(name),
            )
            if not hmac.compare_digest(signed, fields.get("pg_sig", "").lower()):
                raise SimulatorError(400, "invalid_signature", "pg_sig does not match")
            admit(name)
            return report_response(name, _day(fields.get("pg_date", "")))

        return guarded(freedom_error, work)

    def cloudpayments_error(exc: SimulatorError) -> Response:
        return JSONResponse(
            {"Success": False, "Message": exc.detail}, status_code=exc.status, headers=exc.headers
        )

    @router.post("/providers/{name}/reports/settlement")
    async def cloudpayments_report(name: str, request: Request) -> Response:
        raw = await request.body()

        def work() -> Response:
            known(name, "cloudpayments")
            public_id = settings.connector(name).merchant_id or name
            expected = f"{public_id}:{settings.provider_secret(name)}"
            scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
            try:
                given = base64.b64decode(encoded, validate=True).decode()
            except ValueError:
                given = ""
            if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
                raise SimulatorError(401, "unauthorized", "Unauthorized")
            admit(name)
            try:
                body = json.loads(raw)
                day, zone = body["Date"], body.get("TimeZone", "ALMT")
            except (ValueError, KeyError, TypeError) as exc:
                raise SimulatorError(400, "bad_request", "Date is required") from exc
            if zone != "ALMT":
                raise SimulatorError(400, "bad_request", "only TimeZone ALMT is served")
            return report_response(name, _day(str(day)))

        return guarded(cloudpayments_error, work)

    def kaspi_error(exc: SimulatorError) -> Response:
        return JSONResponse(
            {"StatusCode": -999 if exc.status >= 500 else -1, "Message": exc.detail},
            status_code=exc.status,
            headers=exc.headers,
        )

    @router.get("/providers/{name}/reports/daily")
    async def kaspi_report(name: str, date: str, request: Request) -> Response:
        def work() -> Response:
            known(name, "kaspi")
            if request.headers.get("api-key") != settings.provider_secret(name):
                raise SimulatorError(401, "unauthorized", "bad Api-Key")
            admit(name)
            return report_response(name, _day(date))

        return guarded(kaspi_error, work)

    def ioka_error(exc: SimulatorError) -> Response:
        return JSONResponse(
            {"code": exc.code, "message": exc.detail}, status_code=exc.status, headers=exc.headers
        )

    @router.get("/providers/{name}/v2/reports/settlements/{day}")
    async def ioka_report(name: str, day: str, request: Request) -> Response:
        def work() -> Response:
            known(name, "ioka")
            if request.headers.get("api-key") != settings.provider_secret(name):
                raise SimulatorError(401, "unauthorized", "bad API key")
            admit(name)
            return report_response(name, _day(day))

        return guarded(ioka_error, work)

    def kazbank_error(exc: SimulatorError) -> Response:
        return JSONResponse(
            {"errorCode": exc.code.upper(), "errorMessage": exc.detail},
            status_code=exc.status,
            headers=exc.headers,
        )

    def statement_response(name: str, day: date, fmt: str) -> StreamingResponse:
        media, _ext, writer = STATEMENT_FORMATS[fmt]
        return StreamingResponse(writer(statements.statement(name, day)), media_type=media)

    @router.get("/providers/{name}/v2/statements/{day}")
    async def kazbank_statement(
        name: str, day: str, request: Request, format: str = "camt053"
    ) -> Response:
        def work() -> Response:
            known(name, "kazbank")
            if request.headers.get("x-api-key") != settings.provider_secret(name):
                raise SimulatorError(401, "unauthorized", "bad API key")
            admit(name)
            if format not in STATEMENT_NAMES:
                raise SimulatorError(400, "bad_request", "format is camt053 or csv")
            return statement_response(name, _day(day), STATEMENT_NAMES[format])

        return guarded(kazbank_error, work)

    # -- admin ------------------------------------------------------------------------------

    @router.get("/admin/providers/{name}/report-behaviour")
    async def get_report_behaviour(name: str) -> ReportBehaviour:
        known(name)
        return books.behaviour(name)

    @router.put("/admin/providers/{name}/report-behaviour")
    async def set_report_behaviour(name: str, body: ReportBehaviour) -> ReportBehaviour:
        """Replace how the provider reports (knobs left out take their defaults)."""
        known(name)
        books.behaviours[name] = body
        return body

    def written(name: str, filename: str, chunks: Iterator[bytes]) -> Path:
        folder = settings.data_dir / "reports" / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        with path.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        return path

    @router.get("/admin/providers/{name}/reports/{day}", response_model=None)
    async def report_file(name: str, day: str, format: str = "camt.053") -> FileResponse:
        """The day's report (the bank's: its statement in `format`) as a file."""
        known(name)
        on = _day(day)
        if registry.connector_type(name) == "kazbank":
            if format not in STATEMENT_FORMATS:
                raise SimulatorError(400, "bad_request", "format is camt.053 or kazbank.csv")
            media, ext, writer = STATEMENT_FORMATS[format]
            statement = statements.statement(name, on)
            filename = f"{name}-statement-{on.isoformat()}-r{statement.revision}.{ext}"
            path = written(name, filename, writer(statement))
        else:
            reporting(name)
            report = books.content(name, on)
            _fmt, media, ext, _ = FORMATS[report.connector_type]
            filename = f"{name}-{on.isoformat()}-r{report.revision}.{ext}"
            path = written(name, filename, body_of(report))
        return FileResponse(
            path, media_type=media, filename=filename, headers={"X-Report-File": str(path)}
        )

    @router.post("/admin/providers/{name}/reports/{day}/reissue")
    async def reissue(name: str, day: str) -> Reissued:
        """A corrected report of the day: the next revision, built with the behaviour now."""
        known(name)
        on = _day(day)
        revision, issued_at = books.reissue(name, on)
        return Reissued(provider=name, business_date=on, revision=revision, issued_at=issued_at)

    def notify(name: str, moved: dict[str, Any]) -> None:
        encoder = CHARGEBACK_ENCODERS.get(registry.connector_type(name))
        if encoder is None:
            return  # reports only (the provider sends no chargeback notifications)
        reference = str(moved["reference"])
        if name in registry.cards:
            url = registry.cards[name].callback_urls.get(reference)
        else:
            url = registry.payments[name].callback_url(reference)
        event = {**moved, "status": moved["kind"]}
        registry.sender.notify(name, url, event, registry.behaviour(name).behaviour, encode=encoder)

    def chargeback(
        name: str,
        reference: str,
        amount: int | None,
        reason: str,
        kind: Literal["chargeback", "chargeback_reversal"],
    ) -> dict[str, Any]:
        known(name)
        moved = books.chargeback(name, reference, amount, reason, kind)
        notify(name, moved)
        return moved

    @router.post("/admin/providers/{name}/chargebacks", status_code=201)
    async def raise_chargeback(name: str, body: ChargebackRequest) -> dict[str, Any]:
        """The payer's bank takes a payment back: in the next report, and notified where the
        provider notifies."""
        return chargeback(name, body.reference, body.amount, body.reason, "chargeback")

    @router.post("/admin/providers/{name}/chargebacks/{reference}/reversal", status_code=201)
    async def reverse_chargeback(
        name: str, reference: str, body: ReversalRequest
    ) -> dict[str, Any]:
        """The merchant won the dispute: the money comes back."""
        return chargeback(name, reference, body.amount, body.reason, "chargeback_reversal")

    _ = UTC
    return router
