"""ioka's daily settlement report of a shop (format `ioka.jsonl`).

`GET {API root}/v2/reports/settlements/{YYYY-MM-DD}` with the `API-KEY` header answers JSON Lines
(`application/x-ndjson`), snake_case like the rest of its API, amounts as decimal strings of
tenge, times ISO 8601 with their offset (Asia/Almaty, +05:00):

    {"object":"settlement","shop_id":"...","business_date":"2026-11-27",
     "settlement_date":"2026-11-28","currency":"KZT","net_amount":"14775.00","revision":1,
     "generated_at":"2026-11-28T00:05:00+05:00"}
    {"object":"transaction","id":"...","order_id":"ord_...","external_id":"dep_...",
     "type":"PAYMENT","amount":"5000.00","fee":"0.00","currency":"KZT",
     "created_at":"2026-11-27T14:03:15+05:00"}

Types: PAYMENT, REFUND, PAYOUT, CHARGEBACK, CHARGEBACK_REVERSAL. `external_id` is our reference
(the order's). An error is `{code, message}` with its HTTP status.

Assumptions (the public sources do not confirm any of this): ioka's public API has orders,
payments, refunds and webhooks but no settlement report; this endpoint, its JSON Lines answer,
its fields, and decimal tenge here (ioka's API otherwise counts tiyn) are ours.
"""

from collections.abc import Iterator
from datetime import date
from typing import IO, Any, ClassVar

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.connectors.ioka import IokaClient
from providers.reports import (
    Parsed,
    ReportCall,
    ReportFetching,
    ReportFormatError,
    amount,
    currency,
    day_of,
    field,
    iso_time,
    json_lines,
    kind_of,
    reference_of,
    signed_amount,
)

CONNECTOR_TYPE = "ioka"
REPORT_FORMAT = "ioka.jsonl"

KINDS: dict[str, LineKind] = {
    "PAYMENT": "payment",
    "REFUND": "refund",
    "PAYOUT": "payout",
    "CHARGEBACK": "chargeback",
    "CHARGEBACK_REVERSAL": "chargeback_reversal",
}


def parse(source: IO[bytes], provider: str) -> Parsed:
    items = json_lines(source)
    first = next(items, None)
    if first is None or first[1].get("object") != "settlement":
        raise ReportFormatError("line 1: the report does not start with its settlement")
    number, head = first
    where = f"line {number}"
    header = ReportHeader(
        provider=provider,
        business_date=day_of(field(head, "business_date", where), "%Y-%m-%d", where),
        currency=currency(head.get("currency"), where),
        net_settled_minor=signed_amount(field(head, "net_amount", where), where),
        settlement_date=day_of(field(head, "settlement_date", where), "%Y-%m-%d", where),
        format=REPORT_FORMAT,
    )
    return header, _lines(items)


def _lines(items: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[ReportLine]:
    for line_no, (number, item) in enumerate(items, start=1):
        where = f"line {number}"
        if item.get("object") != "transaction":
            raise ReportFormatError(f"{where}: not a transaction: {item.get('object')!r}")
        yield ReportLine(
            line_no=line_no,
            kind=kind_of(item.get("type"), KINDS, where),
            reference=reference_of(item.get("external_id"), where),
            provider_id=str(item.get("id") or "") or None,
            amount_minor=amount(field(item, "amount", where), where),
            currency=currency(item.get("currency"), where),
            fee_minor=amount(field(item, "fee", where), where, "fee"),
            occurred_at=iso_time(field(item, "created_at", where), where),
        )


FORMATS = {REPORT_FORMAT: parse}


class IokaReports(ReportFetching, IokaClient):
    REPORT_FORMAT: ClassVar[str] = REPORT_FORMAT

    async def _report_call(self, business_date: date) -> ReportCall:
        path = f"/v2/reports/settlements/{business_date.isoformat()}"
        return ReportCall("GET", path, headers=self._headers)


CLIENT = IokaReports
