"""KazBank's statement of the operator's account for one day: ISO 20022 camt.053 (format
`camt.053`) or the bank's CSV export (format `kazbank.csv`).

`GET {API root}/v2/statements/{YYYY-MM-DD}?format=camt053|csv` with the `X-Api-Key` header.

camt.053 (`BkToCstmrStmt`, any camt.053.001.xx namespace): one `Stmt` of the account, whose
opening and closing booked balances (`Bal` OPBD, CLBD) come before its entries; each booked
`Ntry` (`Sts` BOOK; others are skipped) is read and dropped as it ends (iterparse: memory flat in
the statement's size). Read from an entry: `Amt` and its `Ccy`, `CdtDbtInd`, `BookgDt` (`DtTm`,
or `Dt` taken as midnight in Asia/Almaty), `AcctSvcrRef` (else `NtryRef`) as the bank's id, and
from its `TxDtls`: `Refs/EndToEndId`, the other party (`RltdPties/Dbtr` on a credit, `Cdtr` on a
debit: `Nm` directly or under `Pty`, an IIN from `Id/PrvtId/Othr/Id`, the account's `IBAN`) and
the purpose (`RmtInf/Ustrd`, its parts joined; a structured `RmtInf/Strd/CdtrRefInf/Ref` is kept
as the reference). The XML is parsed with defusedxml: a DTD (and so any entity, internal or
external) is refused.

The CSV export, UTF-8, `;`-separated: a `key;value` preamble (Выписка по счету <IBAN>, Банк,
БИК, Дата DD.MM.YYYY, Валюта, Входящий остаток, Исходящий остаток, Версия), an empty row, then
the entries: `Дата и время;Номер документа;Дебет;Кредит;Контрагент;ИИН/БИН;IBAN
контрагента;Назначение платежа;Референс`, one of Дебет / Кредит filled.

In our terms: a credit from a provider's settlement account (`settlement_accounts`, IBAN ->
provider) is `settlement_in` with the settlement's reference (`{provider}:{day}`: the end-to-end
id when it is one, else the first date of the purpose); any other credit is `transfer_in`, with
no reference (the matcher looks for ours in the purpose) unless a structured one was given; a
debit is `transfer_out` with the end-to-end id as the reference (our withdrawal's, or a
settlement's when a provider day was negative), none when it is `NOTPROVIDED`. The header's net
is the closing balance less the opening one; the statement has no settlement date.

Assumptions (the public sources do not confirm any of this): that KazBank (a simulated bank)
serves statements over this endpoint; its CSV layout; that a payer's IIN travels as a private
`Othr` id with scheme `IIN`; that providers settle from fixed accounts named in their contracts
and write the settled day in the purpose.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import IO, Any, ClassVar
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.kazbank import KazbankClient
from providers.reports import (
    ALMATY,
    Parsed,
    ReportCall,
    ReportFormatError,
    StatementFetching,
    amount,
    csv_rows,
    currency,
    day_of,
    local_time,
    preamble,
    signed_amount,
    table,
)
from providers.reports import settlement_line_reference as _settlement_reference

CONNECTOR_TYPE = "kazbank"
REPORT_FORMAT = "camt.053"
CSV_FORMAT = "kazbank.csv"
CAMT_NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:camt.053."
NOT_PROVIDED = "NOTPROVIDED"


@dataclass
class _Entry:
    """What one statement entry says, before it is classified."""

    credit: bool
    amount_minor: int
    currency: str
    booked_at: datetime
    bank_id: str | None
    end_to_end_id: str | None
    structured_reference: str | None
    purpose: str | None
    name: str | None
    iin: str | None
    iban: str | None


def _classify(entry: _Entry, line_no: int, settlement_accounts: Mapping[str, str]) -> ReportLine:
    iban = (entry.iban or "").replace(" ", "").upper() or None
    settling = settlement_accounts.get(iban or "")
    end_to_end = None if entry.end_to_end_id in (None, "", NOT_PROVIDED) else entry.end_to_end_id
    kind: LineKind
    if entry.credit and settling is not None:
        kind = "settlement_in"
        reference: str | None = _settlement_reference(settling, end_to_end, entry.purpose)
    elif entry.credit:
        kind, reference = "transfer_in", entry.structured_reference
    else:
        kind, reference = "transfer_out", end_to_end
        if settling is not None:
            reference = _settlement_reference(settling, end_to_end, entry.purpose)
    return ReportLine(
        line_no=line_no,
        kind=kind,
        reference=reference,
        provider_id=entry.bank_id,
        amount_minor=entry.amount_minor,
        currency=entry.currency,
        occurred_at=entry.booked_at,
        purpose=entry.purpose,
        payer_name=entry.name if entry.credit else None,
        payer_iin=entry.iin if entry.credit else None,
        payer_iban=iban if entry.credit else None,
    )


# -- camt.053 -----------------------------------------------------------------------------------


def _child(element: Element | None, q: str, *path: str) -> Element | None:
    """The first child along `path` (local names in the document's namespace `q`: "{...}")."""
    for name in path:
        if element is None:
            return None
        element = element.find(q + name)
    return element


def _text(element: Element | None, q: str, *path: str) -> str | None:
    found = _child(element, q, *path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _money(element: Element | None, q: str, where: str) -> tuple[int, str]:
    amt = _child(element, q, "Amt")
    if amt is None or amt.text is None:
        raise ReportFormatError(f"{where}: no Amt")
    return amount(amt.text, where, "Amt"), currency(amt.get("Ccy"), where)


def _booked(entry: Element, q: str, where: str) -> datetime:
    moment = _text(entry, q, "BookgDt", "DtTm")
    if moment is not None:
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError as exc:
            raise ReportFormatError(f"{where}: BookgDt {moment!r}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ALMATY)
        return parsed.astimezone(UTC)
    day = _text(entry, q, "BookgDt", "Dt")
    if day is None:
        raise ReportFormatError(f"{where}: no booking date")
    return datetime.combine(day_of(day, "%Y-%m-%d", where), time(0), ALMATY).astimezone(UTC)


def _party(details: Element | None, q: str, role: str) -> tuple[str | None, str | None, str | None]:
    """(name, IIN, IBAN) of the debtor or creditor of a transaction."""
    parties = _child(details, q, "RltdPties")
    party = _child(parties, q, role)
    holder = _child(party, q, "Pty")
    if holder is None:  # camt.053.001.02: the name right under Dbtr / Cdtr
        holder = party
    name = _text(holder, q, "Nm")
    iin = None
    private = _child(holder, q, "Id", "PrvtId")
    if private is not None:
        for other in private.iterfind(q + "Othr"):
            scheme = _text(other, q, "SchmeNm", "Prtry") or _text(other, q, "SchmeNm", "Cd")
            value = _text(other, q, "Id")
            if value is not None and (scheme in (None, "IIN", "NIDN") or len(value) == 12):
                iin = value
                break
    iban = _text(parties, q, f"{role}Acct", "Id", "IBAN")
    return name, iin, iban


def _entry(element: Element, q: str, where: str) -> _Entry | None:
    """One `Ntry`; None when it is not booked (pending, information)."""
    status = _text(element, q, "Sts", "Cd") or _text(element, q, "Sts")
    if status != "BOOK":
        return None
    indicator = _text(element, q, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise ReportFormatError(f"{where}: CdtDbtInd {indicator!r}")
    minor, code = _money(element, q, where)
    details = _child(element, q, "NtryDtls", "TxDtls")
    credit = indicator == "CRDT"
    name, iin, iban = _party(details, q, "Dbtr" if credit else "Cdtr")
    remittance = _child(details, q, "RmtInf")
    # Parts are joined as they are: a purpose is cut at a fixed length, inside a word or not.
    parts = [] if remittance is None else [c.text for c in remittance.iterfind(q + "Ustrd")]
    return _Entry(
        credit=credit,
        amount_minor=minor,
        currency=code,
        booked_at=_booked(element, q, where),
        bank_id=_text(element, q, "AcctSvcrRef") or _text(element, q, "NtryRef"),
        end_to_end_id=_text(details, q, "Refs", "EndToEndId"),
        structured_reference=_text(remittance, q, "Strd", "CdtrRefInf", "Ref"),
        purpose="".join(p for p in parts if p).strip() or None,
        name=name,
        iin=iin,
        iban=iban,
    )


def _camt_events(
    source: IO[bytes], provider: str, settlement_accounts: Mapping[str, str]
) -> Iterator[ReportHeader | ReportLine]:
    """The header (once the balances are read, before the first entry), then the lines."""
    header: ReportHeader | None = None
    balances: dict[str, tuple[int, date | None]] = {}
    statement: Element | None = None
    account_currency: str | None = None
    line_no = 0
    q = ""  # "{namespace}", from the Document element
    stmt = ntry = bal = ccy = ""
    events: Any = iterparse(source, events=("start", "end"), forbid_dtd=True)
    try:
        for event, element in events:
            tag = element.tag
            if event == "start":
                if not q:
                    if not tag.startswith("{" + CAMT_NAMESPACE_PREFIX) or not tag.endswith(
                        "}Document"
                    ):
                        raise ReportFormatError(f"not a camt.053 document: {tag}")
                    q = tag[: -len("Document")]
                    stmt, ntry, bal, ccy = q + "Stmt", q + "Ntry", q + "Bal", q + "Ccy"
                elif tag == stmt:
                    if statement is not None:
                        raise ReportFormatError("more than one statement in the document")
                    statement = element
                elif tag == ntry and header is None:
                    header = _header(provider, balances, account_currency)
                    yield header
                continue
            if tag == ntry:
                where = f"entry {line_no + 1}"
                found = _entry(element, q, where)
                if found is not None:
                    line_no += 1
                    yield _classify(found, line_no, settlement_accounts)
                if statement is not None:
                    statement.remove(element)  # read: let it go
            elif tag == ccy and statement is not None and account_currency is None:
                account_currency = (element.text or "").strip() or None
            elif tag == bal and statement is not None:
                code = _text(element, q, "Tp", "CdOrPrtry", "Cd")
                if code in ("OPBD", "CLBD"):
                    minor, code_ccy = _money(element, q, f"balance {code}")
                    sign = -1 if _text(element, q, "CdtDbtInd") == "DBIT" else 1
                    on = _text(element, q, "Dt", "Dt")
                    balances[code] = (sign * minor, day_of(on, "%Y-%m-%d", code) if on else None)
                    account_currency = account_currency or code_ccy
            elif tag == stmt and header is None:
                header = _header(provider, balances, account_currency)
                yield header
    except DefusedXmlException as exc:
        raise ReportFormatError(f"refused XML ({type(exc).__name__}): {exc}") from exc
    except ParseError as exc:
        raise ReportFormatError(f"not well-formed XML: {exc}") from exc
    if header is None:
        raise ReportFormatError("no statement in the document")


def _header(
    provider: str, balances: Mapping[str, tuple[int, date | None]], code: str | None
) -> ReportHeader:
    if "OPBD" not in balances or "CLBD" not in balances:
        raise ReportFormatError("the statement lacks its OPBD and CLBD balances before entries")
    opening, _ = balances["OPBD"]
    closing, day = balances["CLBD"]
    if day is None:
        raise ReportFormatError("the closing balance has no date")
    return ReportHeader(
        provider=provider,
        business_date=day,
        currency=currency(code, "Acct/Ccy"),
        net_settled_minor=closing - opening,
        settlement_date=None,
        format=REPORT_FORMAT,
    )


def parse_camt053(
    source: IO[bytes], provider: str, settlement_accounts: Mapping[str, str]
) -> Parsed:
    events = _camt_events(source, provider, settlement_accounts)
    first = next(events)
    if not isinstance(first, ReportHeader):
        raise ReportFormatError("an entry before the statement's header")

    def lines() -> Iterator[ReportLine]:
        for item in events:
            if not isinstance(item, ReportLine):
                raise ReportFormatError("a second statement header")
            yield item

    return first, lines()


# -- CSV ----------------------------------------------------------------------------------------

COLUMNS = (
    "Дата и время",
    "Номер документа",
    "Дебет",
    "Кредит",
    "Контрагент",
    "ИИН/БИН",
    "IBAN контрагента",
    "Назначение платежа",
    "Референс",
)


def parse_csv(source: IO[bytes], provider: str, settlement_accounts: Mapping[str, str]) -> Parsed:
    rows = csv_rows(source, ";")
    head = preamble(rows)
    try:
        opening = signed_amount(head["Входящий остаток"], "Входящий остаток")
        closing = signed_amount(head["Исходящий остаток"], "Исходящий остаток")
        header = ReportHeader(
            provider=provider,
            business_date=day_of(head["Дата"], "%d.%m.%Y", "Дата"),
            currency=currency(head["Валюта"], "Валюта"),
            net_settled_minor=closing - opening,
            settlement_date=None,
            format=CSV_FORMAT,
        )
    except KeyError as exc:
        raise ReportFormatError(f"the preamble has no {exc.args[0]!r}") from exc

    def lines() -> Iterator[ReportLine]:
        for line_no, (number, row) in enumerate(table(rows, COLUMNS), start=1):
            where = f"row {number}"
            debit, credit = row["Дебет"].strip(), row["Кредит"].strip()
            if bool(debit) == bool(credit):
                raise ReportFormatError(f"{where}: exactly one of Дебет and Кредит is filled")
            entry = _Entry(
                credit=bool(credit),
                amount_minor=amount(credit or debit, where),
                currency=header.currency,
                booked_at=local_time(row["Дата и время"], "%d.%m.%Y %H:%M:%S", where),
                bank_id=row["Номер документа"].strip() or None,
                end_to_end_id=row["Референс"].strip() or None,
                structured_reference=None,
                purpose=row["Назначение платежа"].strip() or None,
                name=row["Контрагент"].strip() or None,
                iin=row["ИИН/БИН"].strip() or None,
                iban=row["IBAN контрагента"].strip() or None,
            )
            yield _classify(entry, line_no, settlement_accounts)

    return header, lines()


STATEMENT_FORMATS = {REPORT_FORMAT: parse_camt053, CSV_FORMAT: parse_csv}


class KazbankStatements(StatementFetching, KazbankClient):
    STATEMENT_FORMATS: ClassVar[Mapping[str, str]] = {REPORT_FORMAT: "camt053", CSV_FORMAT: "csv"}

    async def _statement_call(self, day: date, fmt: str) -> ReportCall:
        return ReportCall(
            "GET",
            f"/v2/statements/{day.isoformat()}",
            headers=self._headers,
            params={"format": self.STATEMENT_FORMATS[fmt]},
        )


CLIENT = KazbankStatements
