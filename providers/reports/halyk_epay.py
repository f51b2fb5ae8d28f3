"""Halyk ePay's daily report of a terminal's operations (format `halyk_epay.csv`).

`GET {API root}/statement/operations?date=YYYY-MM-DD` with the terminal's client token (the same
OAuth2 client-credentials token as the payment API) answers `text/csv`, UTF-8, `;`-separated:

    Отчет;Halyk ePay: операции за день
    Терминал;<terminal>
    Дата операций;27.11.2026
    Дата возмещения;28.11.2026
    Валюта;KZT
    Сумма к возмещению;14775.00          (the net paid to the operator; negative: taken)
    Версия;1                             (a corrected report is the next version)
    Сформирован;28.11.2026 00:05:00
    <empty row>
    Дата операции;Тип операции;Номер заказа;Описание;ID транзакции;Сумма;Комиссия;Валюта
    27.11.2026 14:03:15;Покупка;123456789012345;dep_...;<transaction id>;5000.00;75.00;KZT

Operation types: Покупка (payment), Возврат (refund), Выплата (payout), Чарджбэк (chargeback),
Отмена чарджбэка (its reversal). `Описание` is the payment's description, which carries our
reference (the connector sends it so); `Номер заказа` is Halyk's numeric invoice id of it.
Times are Asia/Almaty, amounts decimal tenge.

Assumptions (the public sources do not confirm any of this): that Halyk ePay serves a daily
operations report over its API at all (merchants see one in the ePay cabinet and get registries
by e-mail), its path, parameters and scope (the client token is taken as is); its layout, column
names and operation names; that the description comes back in it; that fees are per operation
and the net and settlement date are stated in the report; that a corrected report is a new
version of the same day's report.
"""

from collections.abc import Iterator
from datetime import date
from typing import IO, ClassVar

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.connectors.halyk_epay import HalykEpayClient, invoice_id
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
    preamble,
    reference_of,
    signed_amount,
    table,
)

CONNECTOR_TYPE = "halyk_epay"
REPORT_FORMAT = "halyk_epay.csv"
REPORT_PATH = "/statement/operations"

KINDS: dict[str, LineKind] = {
    "Покупка": "payment",
    "Возврат": "refund",
    "Выплата": "payout",
    "Чарджбэк": "chargeback",
    "Отмена чарджбэка": "chargeback_reversal",
}
COLUMNS = (
    "Дата операции",
    "Тип операции",
    "Номер заказа",
    "Описание",
    "ID транзакции",
    "Сумма",
    "Комиссия",
    "Валюта",
)
DAY = "%d.%m.%Y"
TIME = "%d.%m.%Y %H:%M:%S"


def parse(source: IO[bytes], provider: str) -> Parsed:
    rows = csv_rows(source, ";")
    head = preamble(rows)
    try:
        header = ReportHeader(
            provider=provider,
            business_date=day_of(head["Дата операций"], DAY, "Дата операций"),
            currency=currency(head["Валюта"], "Валюта"),
            net_settled_minor=signed_amount(head["Сумма к возмещению"], "Сумма к возмещению"),
            settlement_date=day_of(head["Дата возмещения"], DAY, "Дата возмещения"),
            format=REPORT_FORMAT,
        )
    except KeyError as exc:
        raise ReportFormatError(f"the preamble has no {exc.args[0]!r}") from exc
    return header, _lines(rows)


def _lines(rows: Iterator[tuple[int, list[str]]]) -> Iterator[ReportLine]:
    for line_no, (number, row) in enumerate(table(rows, COLUMNS), start=1):
        where = f"row {number}"
        reference = reference_of(row["Описание"], where)
        if row["Номер заказа"].strip() != invoice_id(reference):
            raise ReportFormatError(
                f"{where}: invoice {row['Номер заказа']!r} is not {reference}'s"
            )
        yield ReportLine(
            line_no=line_no,
            kind=kind_of(row["Тип операции"], KINDS, where),
            reference=reference,
            provider_id=row["ID транзакции"].strip() or None,
            amount_minor=amount(row["Сумма"], where, "Сумма"),
            currency=currency(row["Валюта"], where),
            fee_minor=amount(row["Комиссия"], where, "Комиссия"),
            occurred_at=local_time(row["Дата операции"], TIME, where),
        )


FORMATS = {REPORT_FORMAT: parse}


class HalykEpayReports(ReportFetching, HalykEpayClient):
    REPORT_FORMAT: ClassVar[str] = REPORT_FORMAT

    async def _report_call(self, business_date: date) -> ReportCall:
        token = await self._client_token()
        return ReportCall(
            "GET",
            REPORT_PATH,
            headers=self.spec.auth.headers(token),
            params={"date": business_date.isoformat()},
        )


CLIENT = HalykEpayReports
