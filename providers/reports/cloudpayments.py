"""CloudPayments' daily settlement report (format `cloudpayments.jsonl`).

`POST {API root}/reports/settlement` with the API's Basic authentication (public id : API
secret) and JSON {"Date": "YYYY-MM-DD", "TimeZone": "ALMT"} answers JSON Lines
(`application/x-ndjson`), PascalCase like the rest of its API, amounts as JSON numbers with two
decimals (read exactly, never as floats):

    {"Type":"Summary","PublicId":"...","Date":"2026-11-27","TimeZone":"ALMT","Currency":"KZT",
     "PayoutAmount":14775.00,"PayoutDate":"2026-11-28","Revision":1,
     "CreatedDate":"2026-11-28T00:05:00"}
    {"Type":"Payment","TransactionId":"...","InvoiceId":"dep_...","Amount":5000.00,"Fee":75.00,
     "Currency":"KZT","CreatedDate":"2026-11-27T14:03:15"}

Types: Payment, Refund, Payout, Chargeback, ChargebackReversal. `InvoiceId` is our reference;
times are local to the summary's TimeZone (ALMT: Asia/Almaty; the only one taken). An error is
`{"Success": false, "Message": ...}` with its HTTP status.

Assumptions (the public sources do not confirm any of this): CloudPayments documents a list of
a day's transactions (`payments/list`, with a TimeZone) but no settlement report over the API;
this endpoint, its JSON Lines answer, the Summary record, per-transaction Fee and the types
Payout / Chargeback / ChargebackReversal are ours.
"""

from collections.abc import Iterator
from datetime import date
from typing import IO, Any, ClassVar

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.connectors.cloudpayments import CloudPaymentsClient
from providers.reports import (
    Parsed,
    ReportCall,
    ReportFetching,
    ReportFormatError,
    amount,
    currency,
    day_of,
    field,
    json_lines,
    kind_of,
    local_time,
    reference_of,
    signed_amount,
)

CONNECTOR_TYPE = "cloudpayments"
REPORT_FORMAT = "cloudpayments.jsonl"
REPORT_PATH = "/reports/settlement"
TIME_ZONE = "ALMT"

KINDS: dict[str, LineKind] = {
    "Payment": "payment",
    "Refund": "refund",
    "Payout": "payout",
    "Chargeback": "chargeback",
    "ChargebackReversal": "chargeback_reversal",
}
TIME = "%Y-%m-%dT%H:%M:%S"


def parse(source: IO[bytes], provider: str) -> Parsed:
    items = json_lines(source)
    first = next(items, None)
    if first is None or first[1].get("Type") != "Summary":
        raise ReportFormatError("line 1: the report does not start with its Summary")
    number, head = first
    where = f"line {number}"
    if head.get("TimeZone") != TIME_ZONE:
        raise ReportFormatError(f"{where}: TimeZone {head.get('TimeZone')!r} is not {TIME_ZONE}")
    header = ReportHeader(
        provider=provider,
        business_date=day_of(field(head, "Date", where), "%Y-%m-%d", where),
        currency=currency(head.get("Currency"), where),
        net_settled_minor=signed_amount(field(head, "PayoutAmount", where), where),
        settlement_date=day_of(field(head, "PayoutDate", where), "%Y-%m-%d", where),
        format=REPORT_FORMAT,
    )
    return header, _lines(items)


def _lines(items: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[ReportLine]:
    for line_no, (number, item) in enumerate(items, start=1):
        where = f"line {number}"
        yield ReportLine(
            line_no=line_no,
            kind=kind_of(item.get("Type"), KINDS, where),
            reference=reference_of(item.get("InvoiceId"), where),
            provider_id=str(item.get("TransactionId") or "") or None,
            amount_minor=amount(field(item, "Amount", where), where, "Amount"),
            currency=currency(item.get("Currency"), where),
            fee_minor=amount(field(item, "Fee", where), where, "Fee"),
            occurred_at=local_time(field(item, "CreatedDate", where), TIME, where),
        )


FORMATS = {REPORT_FORMAT: parse}


class CloudPaymentsReports(ReportFetching, CloudPaymentsClient):
    REPORT_FORMAT: ClassVar[str] = REPORT_FORMAT

    async def _report_call(self, business_date: date) -> ReportCall:
        return ReportCall(
            "POST",
            REPORT_PATH,
            headers=self._headers,
            json={"Date": business_date.isoformat(), "TimeZone": TIME_ZONE},
        )


CLIENT = CloudPaymentsReports
