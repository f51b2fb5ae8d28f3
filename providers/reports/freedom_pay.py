"""Freedom Pay's daily registry of card operations (format `freedom_pay.csv`).

`POST {API root}/registry.php`, a signed form like every Freedom Pay script (`pg_merchant_id`,
`pg_date` YYYY-MM-DD, `pg_salt`, `pg_sig` = md5 of `registry.php;values sorted by name;secret`),
answers `text/csv`, UTF-8, `,`-separated typed records with no header row:

    H,<merchant id>,2026-11-27,2026-11-28,KZT,14775.00,1,2026-11-28 00:05:00
      (business day, settlement date, currency, net paid to the operator, revision, created)
    D,<pg_payment_id>,<pg_order_id>,payment,2026-11-27 14:03:15,5000.00,75.00,KZT
      (operation: payment | refund | payout | chargeback | chargeback_cancel; local time,
       amount, commission, currency)
    T,<number of D records>

`pg_order_id` is our reference (the deposit's on payments, refunds and chargebacks; the
withdrawal's on payouts). The trailer's count is checked: a registry cut short is refused. An
error is Freedom Pay's XML `<response>` with `pg_status` error.

Assumptions (the public sources do not confirm any of this): the script, its fields and its
signature; the record layout and operation names; that payouts (reg2reg, reg2nonreg) are in the
same registry as payments and netted in one settlement; the trailer.
"""

from collections.abc import Iterator
from datetime import date
from typing import IO, ClassVar

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.connectors.freedom_pay import FreedomPayClient, new_salt, signed_form
from providers.reports import (
    Parsed,
    ReportCall,
    ReportFetching,
    ReportFormatError,
    amount,
    count_check,
    csv_rows,
    currency,
    day_of,
    kind_of,
    local_time,
    reference_of,
    signed_amount,
)

CONNECTOR_TYPE = "freedom_pay"
REPORT_FORMAT = "freedom_pay.csv"
REPORT_PATH = "/registry.php"

KINDS: dict[str, LineKind] = {
    "payment": "payment",
    "refund": "refund",
    "payout": "payout",
    "chargeback": "chargeback",
    "chargeback_cancel": "chargeback_reversal",
}
TIME = "%Y-%m-%d %H:%M:%S"


def parse(source: IO[bytes], provider: str) -> Parsed:
    rows = csv_rows(source, ",")
    first = next(rows, None)
    if first is None or not first[1] or first[1][0] != "H" or len(first[1]) != 8:
        raise ReportFormatError("row 1: the registry does not start with its H record")
    _, _merchant, day, settles, money_of, net, _revision, _created = first[1]
    header = ReportHeader(
        provider=provider,
        business_date=day_of(day, "%Y-%m-%d", "H"),
        currency=currency(money_of, "H"),
        net_settled_minor=signed_amount(net, "H"),
        settlement_date=day_of(settles, "%Y-%m-%d", "H"),
        format=REPORT_FORMAT,
    )
    return header, _lines(rows)


def _lines(rows: Iterator[tuple[int, list[str]]]) -> Iterator[ReportLine]:
    seen = 0
    for number, row in rows:
        where = f"row {number}"
        if not row:
            continue
        if row[0] == "T":
            count_check(row[1] if len(row) > 1 else "", seen, where)
            if next(rows, None) is not None:
                raise ReportFormatError(f"{where}: records after the trailer")
            return
        if row[0] != "D" or len(row) != 8:
            raise ReportFormatError(f"{where}: not a D record of 8 fields")
        seen += 1
        _, payment_id, order_id, operation, at, money, commission, code = row
        yield ReportLine(
            line_no=seen,
            kind=kind_of(operation, KINDS, where),
            reference=reference_of(order_id, where),
            provider_id=payment_id.strip() or None,
            amount_minor=amount(money, where),
            currency=currency(code, where),
            fee_minor=amount(commission, where, "commission"),
            occurred_at=local_time(at, TIME, where),
        )
    raise ReportFormatError("the registry ends without its T record")


FORMATS = {REPORT_FORMAT: parse}


class FreedomPayReports(ReportFetching, FreedomPayClient):
    REPORT_FORMAT: ClassVar[str] = REPORT_FORMAT

    async def _report_call(self, business_date: date) -> ReportCall:
        form = signed_form(
            REPORT_PATH.lstrip("/"),
            {"pg_merchant_id": self.merchant_id, "pg_date": business_date.isoformat()},
            self._secret,
            new_salt(),
        )
        return ReportCall("POST", REPORT_PATH, headers={}, data=form)


CLIENT = FreedomPayReports
