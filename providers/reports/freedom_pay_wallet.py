"""Freedom Pay's daily registry of e-wallet payments (format `freedom_pay_wallet.jsonl`).

`POST {API root}/registry.php`, the card registry's signed form (`providers.reports.freedom_pay`:
`pg_merchant_id`, `pg_date`, `pg_salt`, `pg_sig`), answers JSON Lines (`application/x-ndjson`),
one object per line:

    {"type":"registry","merchant_id":"500000","date":"2026-11-27","payout_date":"2026-11-28",
     "currency":"KZT","to_transfer":"14775.00","revision":1,"created_at":"2026-11-28 00:05:00"}
    {"type":"operation","payment_id":"...","order_id":"dep_...","operation":"payment",
     "amount":"5000.00","commission":"0.00","currency":"KZT","performed_at":"2026-11-27 14:03:15"}
    {"type":"end","operations":1}

Operations: payment, refund, payout, chargeback, chargeback_cancel. Amounts are decimal strings
of tenge, times Asia/Almaty local. The `end` record's count is checked.

Assumptions (the public sources do not confirm any of this): that wallet payments have a
registry of their own, in JSON Lines, under the card registry's script; its fields; the count.
"""

from collections.abc import Iterator
from datetime import date
from typing import IO, Any, ClassVar

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.connectors.freedom_pay import new_salt, signed_form
from providers.connectors.freedom_pay_wallet import FreedomPayWalletClient
from providers.reports import (
    Parsed,
    ReportCall,
    ReportFetching,
    ReportFormatError,
    amount,
    count_check,
    currency,
    day_of,
    field,
    json_lines,
    kind_of,
    local_time,
    reference_of,
    signed_amount,
)
from providers.reports.freedom_pay import KINDS, REPORT_PATH, TIME

CONNECTOR_TYPE = "freedom_pay_wallet"
REPORT_FORMAT = "freedom_pay_wallet.jsonl"

_KINDS: dict[str, LineKind] = dict(KINDS)


def parse(source: IO[bytes], provider: str) -> Parsed:
    items = json_lines(source)
    first = next(items, None)
    if first is None or first[1].get("type") != "registry":
        raise ReportFormatError("line 1: the file does not start with its registry record")
    number, head = first
    where = f"line {number}"
    header = ReportHeader(
        provider=provider,
        business_date=day_of(field(head, "date", where), "%Y-%m-%d", where),
        currency=currency(head.get("currency"), where),
        net_settled_minor=signed_amount(field(head, "to_transfer", where), where),
        settlement_date=day_of(field(head, "payout_date", where), "%Y-%m-%d", where),
        format=REPORT_FORMAT,
    )
    return header, _lines(items)


def _lines(items: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[ReportLine]:
    seen = 0
    for number, item in items:
        where = f"line {number}"
        if item.get("type") == "end":
            count_check(item.get("operations"), seen, where)
            if next(items, None) is not None:
                raise ReportFormatError(f"{where}: records after the end record")
            return
        if item.get("type") != "operation":
            raise ReportFormatError(f"{where}: not an operation: {item.get('type')!r}")
        seen += 1  # noqa: SIM113 - only operations are counted
        yield ReportLine(
            line_no=seen,
            kind=kind_of(item.get("operation"), _KINDS, where),
            reference=reference_of(item.get("order_id"), where),
            provider_id=str(item.get("payment_id") or "") or None,
            amount_minor=amount(field(item, "amount", where), where),
            currency=currency(item.get("currency"), where),
            fee_minor=amount(field(item, "commission", where), where, "commission"),
            occurred_at=local_time(field(item, "performed_at", where), TIME, where),
        )
    raise ReportFormatError("the registry ends without its end record")


FORMATS = {REPORT_FORMAT: parse}


class FreedomPayWalletReports(ReportFetching, FreedomPayWalletClient):
    REPORT_FORMAT: ClassVar[str] = REPORT_FORMAT

    async def _report_call(self, business_date: date) -> ReportCall:
        form = signed_form(
            REPORT_PATH.lstrip("/"),
            {"pg_merchant_id": self.merchant_id, "pg_date": business_date.isoformat()},
            self._secret,
            new_salt(),
        )
        return ReportCall("POST", REPORT_PATH, headers={}, data=form)


CLIENT = FreedomPayWalletReports
