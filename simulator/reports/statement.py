"""The bank's (KazBank's) statement of the operator's collection account for one day, as ISO
20022 camt.053 (BkToCstmrStmt, version 001.08) and as the bank's CSV export.

Entries, in booking order:
- incoming transfers from players: the bank-transfer payments the bank booked that day, with
  the payer's free-text purpose, name, IIN and IBAN where the transfer came as a statement line
  (`POST /admin/providers/{name}/statement-lines`), and the transfers that named no order
  (unmatched lines) just as they came;
- each provider's settlement of a business day, credited on its settlement date from the
  provider's settlement account (`providers.reports.settlement_iban`), its purpose naming the
  day; a provider day with a negative net is debited instead;
- the bank's own payouts (to an IBAN, a wallet, a phone), debited with our reference as the
  end-to-end id.
Opening and closing balances are the sums of every earlier day's entries.
"""

import heapq
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from providers.reports import settlement_iban, settlement_purpose, settlement_reference
from simulator.payments import COLLECTION_IBAN, CreditedLine
from simulator.reports import ALMATY, Books
from simulator.reports.formats import csv_rows, local, money
from simulator.reports.journal import business_day, day_bounds, parse_stamp

if TYPE_CHECKING:
    from simulator.app import Registry

BANK_NAME = "KazBank JSC"
BANK_BIC = "KZBKKZKA"
ACCOUNT_HOLDER = "KZ Gaming Payments LLP"
SETTLEMENT_HOUR = 10  # settlements land at 10:00 Almaty on their date
PURPOSE_PART = 140  # camt.053 Ustrd holds at most 140 characters: longer purposes are split


@dataclass(frozen=True)
class StatementEntry:
    booked_at: datetime  # UTC
    credit: bool
    amount: int
    currency: str
    entry_id: str
    purpose: str
    end_to_end_id: str | None = None  # our reference (payouts) or the settlement's
    counterparty: str | None = None
    counterparty_iin: str | None = None
    counterparty_iban: str | None = None

    @property
    def signed(self) -> int:
        return self.amount if self.credit else -self.amount


@dataclass(frozen=True)
class Statement:
    account: str
    business_date: date
    currency: str
    opening: int
    closing: int
    revision: int
    issued_at: datetime
    entries: Iterator[StatementEntry]


class Statements:
    """The bank's statements, built from the bank's journal, its statement lines and the
    providers' reports (`Books`)."""

    def __init__(self, registry: "Registry", books: Books) -> None:
        self.registry = registry
        self.books = books

    def _lines(self, name: str) -> list[CreditedLine]:
        provider = self.registry.payments.get(name)
        return list(provider.statement) if provider is not None else []

    def _own(self, name: str, day: date) -> Iterator[StatementEntry]:
        """Transfers in and payouts out, from the bank's journal (time order)."""
        matched: defaultdict[str, deque[CreditedLine]] = defaultdict(deque)
        for credited in self._lines(name):
            if credited.matched_reference is not None and business_day(credited.booked_at) == day:
                matched[credited.matched_reference].append(credited)
        start, end = day_bounds(day)
        for moved in self.registry.store.movements(name, start, end):
            at = parse_stamp(moved["occurred"])
            reference = str(moved["reference"])
            amount, currency = int(moved["amount"]), str(moved["currency"])
            if moved["kind"] == "payment":
                line: CreditedLine | None = (
                    matched[reference].popleft() if matched[reference] else None
                )
                yield StatementEntry(
                    booked_at=at,
                    credit=True,
                    amount=amount,
                    currency=currency,
                    entry_id=line.line_id if line is not None else f"in_{moved['seq']}",
                    purpose=line.purpose if line is not None else f"Пополнение {reference}",
                    counterparty=line.payer_name if line is not None else None,
                    counterparty_iin=line.payer_iin if line is not None else None,
                    counterparty_iban=line.payer_iban if line is not None else None,
                )
            else:  # payouts and refunds leave the account
                yield StatementEntry(
                    booked_at=at,
                    credit=False,
                    amount=amount,
                    currency=currency,
                    entry_id=f"out_{moved['seq']}",
                    purpose=f"Выплата по заявке {reference}",
                    end_to_end_id=reference,
                )

    def _unmatched(self, name: str, day: date) -> Iterator[StatementEntry]:
        for line in self._lines(name):
            if line.matched_reference is None and business_day(line.booked_at) == day:
                yield StatementEntry(
                    booked_at=line.booked_at,
                    credit=True,
                    amount=line.amount,
                    currency=line.currency,
                    entry_id=line.line_id,
                    purpose=line.purpose,
                    counterparty=line.payer_name,
                    counterparty_iin=line.payer_iin,
                    counterparty_iban=line.payer_iban,
                )

    def _settlements(self, name: str, day: date) -> Iterator[StatementEntry]:
        at = datetime.combine(day, time(SETTLEMENT_HOUR), tzinfo=ALMATY).astimezone(UTC)
        others = sorted({*self.registry.cards, *self.registry.payments} - {name})
        for provider in others:
            if self.registry.connector_type(provider) == self.registry.connector_type(name):
                continue  # the bank does not settle with itself
            delay = self.books.behaviour(provider).settlement_delay_days
            settled_day = day - timedelta(days=delay)
            net = self.books.net(provider, settled_day)
            if net == 0:
                continue
            yield StatementEntry(
                booked_at=at,
                credit=net > 0,
                amount=abs(net),
                currency="KZT",
                entry_id=f"stl_{provider}_{settled_day:%Y%m%d}",
                purpose=settlement_purpose(provider, settled_day),
                end_to_end_id=settlement_reference(provider, settled_day),
                counterparty=f"{provider} (settlements)",
                counterparty_iban=settlement_iban(provider),
            )

    def entries(self, name: str, day: date) -> Iterator[StatementEntry]:
        return heapq.merge(
            self._own(name, day),
            self._unmatched(name, day),
            self._settlements(name, day),
            key=lambda e: e.booked_at,
        )

    def _first_day(self, name: str) -> date | None:
        """The first day anything moved on the account (bank or providers)."""
        days: list[date] = []
        for provider in {name, *self.registry.cards, *self.registry.payments}:
            first = next(iter(self.registry.store.movements(provider, "", "9999")), None)
            if first is not None:
                days.append(business_day(parse_stamp(first["occurred"])))
        days += [business_day(line.booked_at) for line in self._lines(name)]
        return min(days) if days else None

    def statement(self, name: str, day: date) -> Statement:
        first = self._first_day(name)
        opening = 0
        if first is not None:
            # Settlements land after their day: start early enough to count every one.
            current = first
            while current < day:
                opening += sum(e.signed for e in self.entries(name, current))
                current += timedelta(days=1)
        closing = opening + sum(e.signed for e in self.entries(name, day))
        revision, issued_at = self.books.revision(name, day)
        return Statement(
            account=COLLECTION_IBAN,
            business_date=day,
            currency="KZT",
            opening=opening,
            closing=closing,
            revision=revision,
            issued_at=issued_at,
            entries=self.entries(name, day),
        )


# -- camt.053 -----------------------------------------------------------------------------------

CAMT_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def _amount(minor: int, currency: str) -> str:
    return f'<Amt Ccy="{escape(currency)}">{money(minor)}</Amt>'


def _balance(code: str, minor: int, currency: str, day: date) -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>{_amount(abs(minor), currency)}"
        f"<CdtDbtInd>{'CRDT' if minor >= 0 else 'DBIT'}</CdtDbtInd>"
        f"<Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>"
    )


def _party(role: str, entry: StatementEntry) -> str:
    if entry.counterparty is None and entry.counterparty_iban is None:
        return ""
    party = ""
    if entry.counterparty is not None:
        party += f"<Nm>{escape(entry.counterparty)}</Nm>"
    if entry.counterparty_iin is not None:
        party += (
            "<Id><PrvtId><Othr>"
            f"<Id>{escape(entry.counterparty_iin)}</Id><SchmeNm><Prtry>IIN</Prtry></SchmeNm>"
            "</Othr></PrvtId></Id>"
        )
    xml = f"<{role}><Pty>{party}</Pty></{role}>" if party else ""
    if entry.counterparty_iban is not None:
        xml += f"<{role}Acct><Id><IBAN>{escape(entry.counterparty_iban)}</IBAN></Id></{role}Acct>"
    return xml


def _entry(entry: StatementEntry) -> str:
    role = "Dbtr" if entry.credit else "Cdtr"
    parts = [
        entry.purpose[i : i + PURPOSE_PART] for i in range(0, len(entry.purpose), PURPOSE_PART)
    ]
    remittance = "".join(f"<Ustrd>{escape(part)}</Ustrd>" for part in parts)
    booked = entry.booked_at.astimezone(ALMATY).isoformat(timespec="seconds")
    family = "RCDT" if entry.credit else "ICDT"
    return (
        "<Ntry>"
        f"<NtryRef>{escape(entry.entry_id)}</NtryRef>"
        f"{_amount(entry.amount, entry.currency)}"
        f"<CdtDbtInd>{'CRDT' if entry.credit else 'DBIT'}</CdtDbtInd>"
        "<Sts><Cd>BOOK</Cd></Sts>"
        f"<BookgDt><DtTm>{booked}</DtTm></BookgDt>"
        f"<ValDt><Dt>{entry.booked_at.astimezone(ALMATY).date().isoformat()}</Dt></ValDt>"
        f"<AcctSvcrRef>{escape(entry.entry_id)}</AcctSvcrRef>"
        f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>ESCT</SubFmlyCd>"
        "</Fmly></Domn></BkTxCd>"
        "<NtryDtls><TxDtls>"
        f"<Refs><EndToEndId>{escape(entry.end_to_end_id or 'NOTPROVIDED')}</EndToEndId></Refs>"
        f"{_amount(entry.amount, entry.currency)}"
        f"<RltdPties>{_party(role, entry)}</RltdPties>"
        f"<RmtInf>{remittance}</RmtInf>"
        "</TxDtls></NtryDtls>"
        "</Ntry>\n"
    )


def camt053(statement: Statement) -> Iterator[bytes]:
    day = statement.business_date
    start = datetime.combine(day, time(0), tzinfo=ALMATY)
    created = statement.issued_at.astimezone(ALMATY).isoformat(timespec="seconds")
    message = f"KZB{day:%Y%m%d}R{statement.revision}"
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{CAMT_NAMESPACE}">\n<BkToCstmrStmt>\n'
        f"<GrpHdr><MsgId>{message}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>\n"
        f"<Stmt><Id>{message}</Id><ElctrncSeqNb>{statement.revision}</ElctrncSeqNb>"
        f"<CreDtTm>{created}</CreDtTm>"
        f"<FrToDt><FrDtTm>{start.isoformat()}</FrDtTm>"
        f"<ToDtTm>{(start + timedelta(days=1, seconds=-1)).isoformat()}</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{statement.account}</IBAN></Id><Ccy>{statement.currency}</Ccy>"
        f"<Ownr><Nm>{ACCOUNT_HOLDER}</Nm></Ownr>"
        f"<Svcr><FinInstnId><BICFI>{BANK_BIC}</BICFI><Nm>{BANK_NAME}</Nm></FinInstnId></Svcr>"
        "</Acct>\n"
        f"{_balance('OPBD', statement.opening, statement.currency, day)}\n"
        f"{_balance('CLBD', statement.closing, statement.currency, day)}\n"
    ).encode()
    chunk: list[str] = []
    for entry in statement.entries:
        chunk.append(_entry(entry))
        if len(chunk) == 200:
            yield "".join(chunk).encode()
            chunk = []
    yield ("".join(chunk) + "</Stmt>\n</BkToCstmrStmt>\n</Document>\n").encode()


# -- CSV ----------------------------------------------------------------------------------------


def statement_csv(statement: Statement) -> Iterator[bytes]:
    def rows() -> Iterator[list[str]]:
        yield ["Выписка по счету", statement.account]
        yield ["Банк", BANK_NAME]
        yield ["БИК", BANK_BIC]
        yield ["Дата", statement.business_date.strftime("%d.%m.%Y")]
        yield ["Валюта", statement.currency]
        yield ["Входящий остаток", money(statement.opening)]
        yield ["Исходящий остаток", money(statement.closing)]
        yield ["Версия", str(statement.revision)]
        yield []
        yield [
            "Дата и время",
            "Номер документа",
            "Дебет",
            "Кредит",
            "Контрагент",
            "ИИН/БИН",
            "IBAN контрагента",
            "Назначение платежа",
            "Референс",
        ]
        for e in statement.entries:
            yield [
                local(e.booked_at, "%d.%m.%Y %H:%M:%S"),
                e.entry_id,
                "" if e.credit else money(e.amount),
                money(e.amount) if e.credit else "",
                e.counterparty or "",
                e.counterparty_iin or "",
                e.counterparty_iban or "",
                e.purpose,
                e.end_to_end_id or "",
            ]

    return csv_rows(rows(), ";")


STATEMENT_FORMATS = {
    "camt.053": ("application/xml", "xml", camt053),
    "kazbank.csv": ("text/csv; charset=utf-8", "csv", statement_csv),
}
