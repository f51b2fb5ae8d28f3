"""Each connector type's daily report format, written line by line (never a whole report in
memory). The platform reads them in `providers.reports` (one module per connector type, whose
docstring describes its format); the tests read hand-written files of the same formats.

Money is decimal tenge ("5000.00"; CloudPayments writes JSON numbers with two decimals), times
are Asia/Almaty local times, each format its own column names and layout:

- halyk_epay: CSV `;`, a `key;value` preamble, an empty row, then the operations table;
- freedom_pay: CSV `,` of typed records: `H` header, `D` details, `T` trailer (the count);
- freedom_pay_wallet: JSON Lines: `registry`, then `operation`s, then `end` (the count);
- cloudpayments: JSON Lines: `Summary`, then one object per transaction (PascalCase);
- kaspi: CSV `,`, a one-row summary table, an empty row, then the operations table;
- ioka: JSON Lines: a `settlement` object, then `transaction`s (decimal strings, ISO times
  with their offset).
"""

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from providers.amounts import to_decimal_string
from providers.connectors.halyk_epay import invoice_id
from simulator.reports import ALMATY, ReportContent

Writer = Callable[[ReportContent], Iterator[bytes]]

CHUNK_ROWS = 500


def money(minor: int) -> str:
    """Signed decimal tenge: a net may be negative."""
    return ("-" if minor < 0 else "") + to_decimal_string(abs(minor))


def local(moment: datetime, form: str) -> str:
    return moment.astimezone(ALMATY).strftime(form)


def csv_rows(rows: Iterable[list[str]], delimiter: str) -> Iterator[bytes]:
    """CSV in chunks of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def json_lines(objects: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    chunk: list[str] = []
    for item in objects:
        chunk.append(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        if len(chunk) == CHUNK_ROWS:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


# -- Halyk ePay ---------------------------------------------------------------------------------

HALYK_OPERATIONS = {
    "payment": "Покупка",
    "refund": "Возврат",
    "payout": "Выплата",
    "chargeback": "Чарджбэк",
    "chargeback_reversal": "Отмена чарджбэка",
}


def halyk_epay(report: ReportContent) -> Iterator[bytes]:
    def rows() -> Iterator[list[str]]:
        yield ["Отчет", "Halyk ePay: операции за день"]
        yield ["Терминал", report.merchant_id]
        yield ["Дата операций", report.business_date.strftime("%d.%m.%Y")]
        yield ["Дата возмещения", report.settlement_date.strftime("%d.%m.%Y")]
        yield ["Валюта", report.currency]
        yield ["Сумма к возмещению", money(report.net_minor)]
        yield ["Версия", str(report.revision)]
        yield ["Сформирован", local(report.issued_at, "%d.%m.%Y %H:%M:%S")]
        yield []
        yield [
            "Дата операции",
            "Тип операции",
            "Номер заказа",
            "Описание",
            "ID транзакции",
            "Сумма",
            "Комиссия",
            "Валюта",
        ]
        for e in report.entries():
            yield [
                local(e.occurred_at, "%d.%m.%Y %H:%M:%S"),
                HALYK_OPERATIONS[e.kind],
                invoice_id(e.reference),
                e.reference,
                e.provider_id,
                money(e.amount),
                money(e.fee),
                e.currency,
            ]

    return csv_rows(rows(), ";")


# -- Freedom Pay (cards) ------------------------------------------------------------------------

FREEDOM_OPERATIONS = {
    "payment": "payment",
    "refund": "refund",
    "payout": "payout",
    "chargeback": "chargeback",
    "chargeback_reversal": "chargeback_cancel",
}


def freedom_pay(report: ReportContent) -> Iterator[bytes]:
    def rows() -> Iterator[list[str]]:
        yield [
            "H",
            report.merchant_id,
            report.business_date.isoformat(),
            report.settlement_date.isoformat(),
            report.currency,
            money(report.net_minor),
            str(report.revision),
            local(report.issued_at, "%Y-%m-%d %H:%M:%S"),
        ]
        count = 0
        for e in report.entries():
            count += 1
            yield [
                "D",
                e.provider_id,
                e.reference,
                FREEDOM_OPERATIONS[e.kind],
                local(e.occurred_at, "%Y-%m-%d %H:%M:%S"),
                money(e.amount),
                money(e.fee),
                e.currency,
            ]
        yield ["T", str(count)]

    return csv_rows(rows(), ",")


# -- Freedom Pay e-wallets ----------------------------------------------------------------------


def freedom_pay_wallet(report: ReportContent) -> Iterator[bytes]:
    def objects() -> Iterator[dict[str, Any]]:
        yield {
            "type": "registry",
            "merchant_id": report.merchant_id,
            "date": report.business_date.isoformat(),
            "payout_date": report.settlement_date.isoformat(),
            "currency": report.currency,
            "to_transfer": money(report.net_minor),
            "revision": report.revision,
            "created_at": local(report.issued_at, "%Y-%m-%d %H:%M:%S"),
        }
        count = 0
        for e in report.entries():
            count += 1
            yield {
                "type": "operation",
                "payment_id": e.provider_id,
                "order_id": e.reference,
                "operation": FREEDOM_OPERATIONS[e.kind],
                "amount": money(e.amount),
                "commission": money(e.fee),
                "currency": e.currency,
                "performed_at": local(e.occurred_at, "%Y-%m-%d %H:%M:%S"),
            }
        yield {"type": "end", "operations": count}

    return json_lines(objects())


# -- CloudPayments ------------------------------------------------------------------------------

CLOUDPAYMENTS_TYPES = {
    "payment": "Payment",
    "refund": "Refund",
    "payout": "Payout",
    "chargeback": "Chargeback",
    "chargeback_reversal": "ChargebackReversal",
}


class Exact(str):
    """A decimal written as a JSON number, digit for digit ("5000.00")."""


def _cloudpayments_line(item: dict[str, Any]) -> str:
    # Numbers with exactly two decimals: placeholders swapped for the text after dumping.
    numbers: dict[str, str] = {}
    plain = {}
    for key, value in item.items():
        if isinstance(value, Exact):
            marker = f"@@{len(numbers)}@@"
            numbers[f'"{marker}"'] = str(value)
            plain[key] = marker
        else:
            plain[key] = value
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    for marker, number in numbers.items():
        text = text.replace(marker, number)
    return text


def cloudpayments(report: ReportContent) -> Iterator[bytes]:
    def lines() -> Iterator[str]:
        yield _cloudpayments_line(
            {
                "Type": "Summary",
                "PublicId": report.merchant_id,
                "Date": report.business_date.isoformat(),
                "TimeZone": "ALMT",
                "Currency": report.currency,
                "PayoutAmount": Exact(money(report.net_minor)),
                "PayoutDate": report.settlement_date.isoformat(),
                "Revision": report.revision,
                "CreatedDate": local(report.issued_at, "%Y-%m-%dT%H:%M:%S"),
            }
        )
        for e in report.entries():
            yield _cloudpayments_line(
                {
                    "Type": CLOUDPAYMENTS_TYPES[e.kind],
                    "TransactionId": e.provider_id,
                    "InvoiceId": e.reference,
                    "Amount": Exact(money(e.amount)),
                    "Fee": Exact(money(e.fee)),
                    "Currency": e.currency,
                    "CreatedDate": local(e.occurred_at, "%Y-%m-%dT%H:%M:%S"),
                }
            )

    def chunks() -> Iterator[bytes]:
        chunk: list[str] = []
        for line in lines():
            chunk.append(line)
            if len(chunk) == CHUNK_ROWS:
                yield ("\n".join(chunk) + "\n").encode()
                chunk = []
        if chunk:
            yield ("\n".join(chunk) + "\n").encode()

    return chunks()


# -- Kaspi --------------------------------------------------------------------------------------

KASPI_OPERATIONS = {
    "payment": "Покупка",
    "refund": "Возврат",
    "payout": "Выплата",
    "chargeback": "Опротестование",
    "chargeback_reversal": "Отмена опротестования",
}


def kaspi(report: ReportContent) -> Iterator[bytes]:
    def rows() -> Iterator[list[str]]:
        yield ["Торговая точка", "Дата", "Дата зачисления", "Валюта", "\u041a зачислению", "Версия"]
        yield [
            report.merchant_id,
            report.business_date.strftime("%d.%m.%Y"),
            report.settlement_date.strftime("%d.%m.%Y"),
            report.currency,
            money(report.net_minor),
            str(report.revision),
        ]
        yield []
        yield [
            "Дата и время",
            "Номер операции",
            "Внешний номер",
            "Тип",
            "Сумма",
            "Комиссия",
            "Валюта",
        ]
        for e in report.entries():
            yield [
                local(e.occurred_at, "%d.%m.%Y %H:%M:%S"),
                e.provider_id,
                e.reference,
                KASPI_OPERATIONS[e.kind],
                money(e.amount),
                money(e.fee),
                e.currency,
            ]

    return csv_rows(rows(), ",")


# -- ioka ---------------------------------------------------------------------------------------


def ioka(report: ReportContent) -> Iterator[bytes]:
    from simulator.connectors.ioka import order_id

    def objects() -> Iterator[dict[str, Any]]:
        yield {
            "object": "settlement",
            "shop_id": report.merchant_id,
            "business_date": report.business_date.isoformat(),
            "settlement_date": report.settlement_date.isoformat(),
            "currency": report.currency,
            "net_amount": money(report.net_minor),
            "revision": report.revision,
            "generated_at": report.issued_at.astimezone(ALMATY).isoformat(timespec="seconds"),
        }
        for e in report.entries():
            yield {
                "object": "transaction",
                "id": e.provider_id,
                "order_id": order_id(e.reference),
                "external_id": e.reference,
                "type": e.kind.upper(),
                "amount": money(e.amount),
                "fee": money(e.fee),
                "currency": e.currency,
                "created_at": e.occurred_at.astimezone(ALMATY).isoformat(timespec="seconds"),
            }

    return json_lines(objects())


# connector type -> (format name, media type, file extension, writer)
FORMATS: dict[str, tuple[str, str, str, Writer]] = {
    "halyk_epay": ("halyk_epay.csv", "text/csv; charset=utf-8", "csv", halyk_epay),
    "freedom_pay": ("freedom_pay.csv", "text/csv; charset=utf-8", "csv", freedom_pay),
    "freedom_pay_wallet": (
        "freedom_pay_wallet.jsonl",
        "application/x-ndjson",
        "jsonl",
        freedom_pay_wallet,
    ),
    "cloudpayments": ("cloudpayments.jsonl", "application/x-ndjson", "jsonl", cloudpayments),
    "kaspi": ("kaspi.csv", "text/csv; charset=utf-8", "csv", kaspi),
    "ioka": ("ioka.jsonl", "application/x-ndjson", "jsonl", ioka),
}
