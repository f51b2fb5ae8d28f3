"""Kaspi Pay's daily statement of a trade point's operations (format `kaspi.csv`).

`GET {API root}/reports/daily?date=YYYY-MM-DD` with the `Api-Key` header answers `text/csv`,
UTF-8, `,`-separated: a one-row summary table, an empty row, then the operations:

    Торговая точка,Дата,Дата зачисления,Валюта,\u041a зачислению,Версия
    <trade point>,27.11.2026,28.11.2026,KZT,14775.00,1
    <empty row>
    Дата и время,Номер операции,Внешний номер,Тип,Сумма,Комиссия,Валюта
    27.11.2026 14:03:15,<Kaspi's id>,dep_...,Покупка,5000.00,0.00,KZT

Types: Покупка (payment), Возврат (refund), Выплата (payout), Опротестование (chargeback),
Отмена опротестования (its reversal). `Внешний номер` is our reference (the ExternalId sent with
the QR or the payment request). Times are Asia/Almaty, amounts decimal tenge. An error is
Kaspi's `{StatusCode, Message}`.

Assumptions (the public sources do not confirm any of this): Kaspi publishes no report API (the
merchant's statement is exported from Kaspi Pay as a spreadsheet); this endpoint, its CSV
layout and names, that ExternalId is in it, and per-operation fees are ours.
"""

from collections.abc import Iterator
from datetime import date
from typing import IO, ClassVar

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.connectors.kaspi import KaspiClient
from providers.reports import (
    Parsed,
    ReportCall,
    ReportFetching,
    ReportFormatError,
    amount,
    csv_rows,
    currency,
    day_of,
    kind_of,
    local_time,
    reference_of,
    signed_amount,
    table,
)

CONNECTOR_TYPE = "kaspi"
REPORT_FORMAT = "kaspi.csv"
REPORT_PATH = "/reports/daily"

KINDS: dict[str, LineKind] = {
    "Покупка": "payment",
    "Возврат": "refund",
    "Выплата": "payout",
    "Опротестование": "chargeback",
    "Отмена опротестования": "chargeback_reversal",
}
TO_CREDIT = "\u041a зачислению"  # a Cyrillic Ka
SUMMARY = ("Торговая точка", "Дата", "Дата зачисления", "Валюта", TO_CREDIT, "Версия")
COLUMNS = ("Дата и время", "Номер операции", "Внешний номер", "Тип", "Сумма", "Комиссия", "Валюта")
DAY = "%d.%m.%Y"
TIME = "%d.%m.%Y %H:%M:%S"


def parse(source: IO[bytes], provider: str) -> Parsed:
    rows = csv_rows(source, ",")
    summary = None
    for _number, row in table(rows, SUMMARY):
        summary = row
        break
    if summary is None:
        raise ReportFormatError("the statement has no summary row")
    header = ReportHeader(
        provider=provider,
        business_date=day_of(summary["Дата"], DAY, "summary"),
        currency=currency(summary["Валюта"], "summary"),
        net_settled_minor=signed_amount(summary[TO_CREDIT], "summary"),
        settlement_date=day_of(summary["Дата зачисления"], DAY, "summary"),
        format=REPORT_FORMAT,
    )
    return header, _lines(rows)


def _lines(rows: Iterator[tuple[int, list[str]]]) -> Iterator[ReportLine]:
    for line_no, (number, row) in enumerate(table(rows, COLUMNS), start=1):
        where = f"row {number}"
        yield ReportLine(
            line_no=line_no,
            kind=kind_of(row["Тип"], KINDS, where),
            reference=reference_of(row["Внешний номер"], where),
            provider_id=row["Номер операции"].strip() or None,
            amount_minor=amount(row["Сумма"], where, "Сумма"),
            currency=currency(row["Валюта"], where),
            fee_minor=amount(row["Комиссия"], where, "Комиссия"),
            occurred_at=local_time(row["Дата и время"], TIME, where),
        )


FORMATS = {REPORT_FORMAT: parse}


class KaspiReports(ReportFetching, KaspiClient):
    REPORT_FORMAT: ClassVar[str] = REPORT_FORMAT

    async def _report_call(self, business_date: date) -> ReportCall:
        return ReportCall(
            "GET", REPORT_PATH, headers=self._headers, params={"date": business_date.isoformat()}
        )


CLIENT = KaspiReports
