"""The canonical form of a report: checks every line at the boundary, hashes the content, and
reads or writes it as JSON lines (`recon.jsonl`: the header first, then one line per row).

The report hash is over this canonical content, not over the file's bytes: the same report
fetched over the API and uploaded as a file is one report, whatever its format's whitespace;
a corrected report (any figure, line or header field changed) has another hash.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import IO, Any, get_args

from domain.recon.lines import LineKind, ReportHeader, ReportLine

CANONICAL_FORMAT = "recon.jsonl"
LINE_KINDS: frozenset[str] = frozenset(get_args(LineKind))
MAX_MINOR = 10**15  # ten trillion tenge: beyond any real line, well inside bigint
_TEXT_LIMITS = {
    "reference": 200,
    "provider_id": 200,
    "purpose": 2_000,
    "payer_name": 200,
    "payer_iin": 32,
    "payer_iban": 64,
}


class ReportInvalid(ValueError):
    """A report we cannot take as it is (a line without a currency, a NUL in a text field,
    an amount out of range): 422 on an upload, a non-retryable failure of a fetched run."""


def _check_text(name: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if "\x00" in value:
        raise ReportInvalid(f"{name} holds a NUL character")
    if len(value) > limit:
        raise ReportInvalid(f"{name} is longer than {limit} characters")


def _check_currency(value: str) -> None:
    if len(value) != 3 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ReportInvalid(f"currency {value[:8]!r} is not an ISO 4217 code")


def check_header(header: ReportHeader) -> ReportHeader:
    _check_text("provider", header.provider, 64)
    if not header.provider:
        raise ReportInvalid("the report names no provider")
    _check_currency(header.currency)
    if abs(header.net_settled_minor) > MAX_MINOR:
        raise ReportInvalid("net_settled is out of range")
    _check_text("format", header.format, 64)
    return header


def check_line(line: ReportLine) -> ReportLine:
    where = f"line {line.line_no}"
    if line.kind not in LINE_KINDS:
        raise ReportInvalid(f"{where}: unknown kind {str(line.kind)[:32]!r}")
    if not 0 < line.amount_minor <= MAX_MINOR:
        raise ReportInvalid(f"{where}: amount must be positive minor units within range")
    if not 0 <= line.fee_minor <= MAX_MINOR:
        raise ReportInvalid(f"{where}: fee must be zero or positive minor units within range")
    if not 0 <= line.line_no < 2**31:
        raise ReportInvalid(f"line number {line.line_no} is out of range")
    _check_currency(line.currency)
    if line.occurred_at.tzinfo is None:
        raise ReportInvalid(f"{where}: occurred_at has no time zone")
    for name, limit in _TEXT_LIMITS.items():
        try:
            _check_text(name, getattr(line, name), limit)
        except ReportInvalid as exc:
            raise ReportInvalid(f"{where}: {exc}") from None
    return line


def header_json(header: ReportHeader) -> dict[str, Any]:
    return {
        "provider": header.provider,
        "business_date": header.business_date.isoformat(),
        "currency": header.currency,
        "net_settled_minor": header.net_settled_minor,
        "settlement_date": header.settlement_date.isoformat() if header.settlement_date else None,
        "format": header.format,
    }


def line_json(line: ReportLine) -> dict[str, Any]:
    return {
        "line_no": line.line_no,
        "kind": line.kind,
        "reference": line.reference,
        "provider_id": line.provider_id,
        "amount_minor": line.amount_minor,
        "currency": line.currency,
        "fee_minor": line.fee_minor,
        "occurred_at": line.occurred_at.isoformat(),
        "purpose": line.purpose,
        "payer_name": line.payer_name,
        "payer_iin": line.payer_iin,
        "payer_iban": line.payer_iban,
    }


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class ContentHash:
    """SHA-256 over the header and the lines in order, fed one line at a time (flat memory).
    The format name is left out: one report in two formats is one report."""

    def __init__(self, header: ReportHeader) -> None:
        self._digest = hashlib.sha256()
        body = header_json(header)
        del body["format"]
        self._digest.update(_canonical(body) + b"\n")

    def add(self, line: ReportLine) -> None:
        self._digest.update(_canonical(line_json(line)) + b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def report_hash(header: ReportHeader, lines: Iterable[ReportLine]) -> str:
    content = ContentHash(header)
    for line in lines:
        content.add(line)
    return content.hexdigest()


def _parse_date(value: object, name: str) -> date:
    if not isinstance(value, str):
        raise ReportInvalid(f"{name} must be a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportInvalid(f"{name} must be a date (YYYY-MM-DD)") from None


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportInvalid(f"{name} must be an integer number of minor units")
    return value


def _text(value: object, name: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ReportInvalid(f"{name} must be a string")
    return value


def parse_header(document: object) -> ReportHeader:
    if not isinstance(document, dict):
        raise ReportInvalid("the first line must be the report header (a JSON object)")
    body = document.get("header", document)
    if not isinstance(body, dict):
        raise ReportInvalid("header must be a JSON object")
    settlement = body.get("settlement_date")
    return check_header(
        ReportHeader(
            provider=_text(body.get("provider"), "provider", required=True) or "",
            business_date=_parse_date(body.get("business_date"), "business_date"),
            currency=_text(body.get("currency"), "currency", required=True) or "",
            net_settled_minor=_int(body.get("net_settled_minor"), "net_settled_minor"),
            settlement_date=None
            if settlement is None
            else _parse_date(settlement, "settlement_date"),
            format=_text(body.get("format"), "format") or CANONICAL_FORMAT,
        )
    )


def parse_line(document: object, line_no: int) -> ReportLine:
    if not isinstance(document, dict):
        raise ReportInvalid(f"line {line_no}: must be a JSON object")
    occurred = document.get("occurred_at")
    try:
        occurred_at = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
    except ValueError:
        occurred_at = None
    if occurred_at is None:
        raise ReportInvalid(f"line {line_no}: occurred_at must be an RFC 3339 time")
    kind = _text(document.get("kind"), "kind", required=True) or ""
    if kind not in LINE_KINDS:
        raise ReportInvalid(f"line {line_no}: unknown kind {kind[:32]!r}")
    number = document.get("line_no", line_no)
    return check_line(
        ReportLine(
            line_no=_int(number, "line_no"),
            kind=kind,  # type: ignore[arg-type]  # checked against LineKind just above
            reference=_text(document.get("reference"), "reference"),
            provider_id=_text(document.get("provider_id"), "provider_id"),
            amount_minor=_int(document.get("amount_minor"), "amount_minor"),
            currency=_text(document.get("currency"), "currency", required=True) or "",
            fee_minor=_int(document.get("fee_minor", 0), "fee_minor"),
            occurred_at=occurred_at,
            purpose=_text(document.get("purpose"), "purpose"),
            payer_name=_text(document.get("payer_name"), "payer_name"),
            payer_iin=_text(document.get("payer_iin"), "payer_iin"),
            payer_iban=_text(document.get("payer_iban"), "payer_iban"),
        )
    )


def _json(raw: bytes, line_no: int) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ReportInvalid(f"line {line_no}: not JSON") from None


def read_jsonl(stream: IO[bytes]) -> tuple[ReportHeader, Iterator[ReportLine]]:
    """Parse a `recon.jsonl` report: the header at once, the lines lazily as they are read."""
    first = b""
    for raw in stream:
        if raw.strip():
            first = raw
            break
    if not first:
        raise ReportInvalid("the report is empty")
    header = parse_header(_json(first, 1))

    def lines() -> Iterator[ReportLine]:
        number = 1
        for raw in stream:
            if not raw.strip():
                continue
            number += 1
            yield parse_line(_json(raw, number), number)

    return header, lines()


def write_jsonl(header: ReportHeader, lines: Iterable[ReportLine]) -> Iterator[bytes]:
    """The report as `recon.jsonl`, line by line (tests, exports)."""
    yield _canonical({"header": header_json(header)}) + b"\n"
    for line in lines:
        yield _canonical(line_json(line)) + b"\n"
