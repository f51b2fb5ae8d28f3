"""The providers' daily reports and the bank's statements, read into our terms.

Every format is parsed at its boundary into `domain.recon.lines.ReportHeader` and a stream of
`ReportLine`s: the header first (every format here puts what the matcher needs before the
lines), then one line at a time from a binary file object, so memory stays flat in the report's
size. Money goes through `providers.amounts` (exact; more than two decimals is refused), local
times (Asia/Almaty) become UTC. Anything malformed raises `ReportFormatError` naming the line.

One module per connector type (`CONNECTOR_TYPE`), found as `providers.registry` finds the
connectors; each declares its formats (`FORMATS`: name -> parser) and `CLIENT`, its report client:
the connector's own client (its authentication and error handling) plus `download_report` and
`fetch_report` over the provider's API. The bank's module (`kazbank`) declares
`STATEMENT_FORMATS` and a client with `download_statement` and `fetch_statement`.

The functions other parts use (stable names):
- `parse_report(format, source, provider, *, settlement_accounts=None) -> (header, lines)`
- `report_formats() -> set[str]`, `format_of(connector_type) -> str`
- `report_client(settings, http, provider)` -> a `ReportFetching` (`download_report(date, into)
  -> ReportFile`, `fetch_report(date) -> (header, lines)`) or the bank's `StatementFetching`
  (`download_statement(date, into, format=)`, `fetch_statement(date, format=)`)
- `settlement_accounts(settings) -> {IBAN: provider}`, `settlement_iban(provider)`,
  `settlement_reference(provider, day)`, `parse_settlement_reference(text)`

Conventions the matcher relies on:
- `ReportLine.reference` is our reference as the provider knows it: the deposit's id on payments,
  refunds (a refund line names the payment it gives back), chargebacks and their reversals; the
  withdrawal's id on payouts. Bank lines: none on a player's transfer (the reference is somewhere
  in `purpose`, free text, for the matcher to find), ours (the end-to-end id) on the bank's
  payouts, `settlement_reference(provider, day)` on a provider's settlement.
- `ReportLine.line_no` is the line's position among the report's lines (1-based): two identical
  lines (a duplicate) differ in it.
- `ReportHeader.net_settled_minor` is what the provider pays for the day (negative: what it takes);
  for a bank statement, the day's movement of the account (closing less opening balance), and
  `settlement_date` is None.
- A provider's settlement is credited from its settlement account (`settlement_accounts`):
  `settlement_in`, reference `{provider}:{business day}`. A day whose net is negative is debited
  from the operator's account: a `transfer_out` line with that same settlement reference.
"""

import contextlib
import csv
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import IO, TYPE_CHECKING, Any, ClassVar, cast
from zoneinfo import ZoneInfo

import httpx

from domain.iban import with_check_digits
from domain.recon.lines import LineKind, ReportHeader, ReportLine
from providers.amounts import InvalidAmount, from_decimal_string
from providers.errors import ProviderOutcomeUnknown
from providers.http import ProviderHttp, classify_transport_error

if TYPE_CHECKING:
    from config import Settings

ALMATY = ZoneInfo("Asia/Almaty")

Parsed = tuple[ReportHeader, Iterator[ReportLine]]
# (source, provider) -> parsed
Parser = Callable[[IO[bytes], str], Parsed]
# (source, provider, settlement accounts {IBAN: provider}) -> parsed
StatementParser = Callable[[IO[bytes], str, Mapping[str, str]], Parsed]

MAX_LINE_BYTES = 64 * 1024  # one JSON line or CSV row; a longer one is refused
CHUNK_BYTES = 64 * 1024


class ReportFormatError(ValueError):
    """A report we cannot read: malformed, truncated, hostile, or not in its format."""


# -- reading helpers (shared by the formats) ----------------------------------------------------


def text_of(source: IO[bytes]) -> io.TextIOWrapper:
    """The source as UTF-8 text (a byte-order mark is skipped), newlines left to the csv module."""
    return io.TextIOWrapper(source, encoding="utf-8-sig", newline="", errors="strict")


def csv_rows(source: IO[bytes], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, row) of a CSV file; undecodable or overlong input is a format error."""
    reader = csv.reader(text_of(source), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            yield reader.line_num, row
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ReportFormatError(f"row {reader.line_num}: {exc}") from exc


class JsonNumber(str):
    """A JSON number as it was written: exact, never a float."""


def _no_constant(name: str) -> object:
    raise ReportFormatError(f"{name} is not a number")


def json_lines(source: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSON Lines file; blank lines are skipped. Numbers come as
    `JsonNumber` text (exact), so money never passes through a float."""
    number = 0
    while True:
        raw = source.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ReportFormatError(f"line {number}: longer than {MAX_LINE_BYTES} bytes")
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            item = json.loads(
                raw,
                parse_float=JsonNumber,
                parse_int=JsonNumber,
                parse_constant=_no_constant,
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReportFormatError(f"line {number}: not JSON ({exc})") from exc
        if not isinstance(item, dict):
            raise ReportFormatError(f"line {number}: not a JSON object")
        yield number, item


def field(record: Mapping[str, Any], name: str, where: str) -> str:
    """A required text field (a JSON number is taken as its text)."""
    value = record.get(name)
    if not isinstance(value, str) or value == "":
        raise ReportFormatError(f"{where}: {name} missing or not text")
    return value


def amount(text: object, where: str, name: str = "amount") -> int:
    """Decimal tenge -> minor units, exact; a sign, an exponent or a third decimal is refused."""
    try:
        return from_decimal_string(str(text).strip() if isinstance(text, str) else text)
    except InvalidAmount as exc:
        raise ReportFormatError(f"{where}: {name}: {exc}") from exc


def signed_amount(text: object, where: str, name: str = "amount") -> int:
    """A net, which may be negative ("-120.50")."""
    if isinstance(text, str) and text.strip().startswith("-"):
        return -amount(text.strip()[1:], where, name)
    return amount(text, where, name)


_CURRENCY = re.compile(r"[A-Z]{3}")


def currency(text: object, where: str) -> str:
    if not isinstance(text, str) or not _CURRENCY.fullmatch(text.strip()):
        raise ReportFormatError(f"{where}: not a currency code: {text!r}")
    return text.strip()


# The formats' local times, read without strptime (a report has a time on every line).
_TIME_FORMS = {
    "%d.%m.%Y %H:%M:%S": (
        re.compile(r"(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})"),
        (2, 1, 0, 3, 4, 5),
    ),
    "%Y-%m-%d %H:%M:%S": (
        re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})"),
        (0, 1, 2, 3, 4, 5),
    ),
    "%Y-%m-%dT%H:%M:%S": (
        re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})"),
        (0, 1, 2, 3, 4, 5),
    ),
}


@cache
def _almaty_offset(year: int, month: int, day: int, hour: int) -> timedelta:
    """Asia/Almaty's UTC offset at a local hour (it changed in 2024; cached per hour)."""
    offset = datetime(year, month, day, hour, tzinfo=ALMATY).utcoffset()
    assert offset is not None
    return offset


def local_time(text: object, form: str, where: str) -> datetime:
    """An Asia/Almaty local time written in `form` -> an aware UTC datetime."""
    value = str(text).strip()
    known = _TIME_FORMS.get(form)
    try:
        if known is None:
            naive = datetime.strptime(value, form)
        else:
            pattern, order = known
            match = pattern.fullmatch(value)
            if match is None:
                raise ValueError(value)
            parts = [int(part) for part in match.groups()]
            year, month, day, hour, minute, second = (parts[i] for i in order)
            naive = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ReportFormatError(f"{where}: not a time in {form}: {text!r}") from exc
    offset = _almaty_offset(naive.year, naive.month, naive.day, naive.hour)
    return (naive - offset).replace(tzinfo=UTC)


def iso_time(text: object, where: str) -> datetime:
    """An ISO 8601 time; without an offset it is Asia/Almaty local time."""
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError as exc:
        raise ReportFormatError(f"{where}: not an ISO time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ALMATY)
    return moment.astimezone(UTC)


def day_of(text: object, form: str, where: str) -> date:
    try:
        return datetime.strptime(str(text).strip(), form).date()
    except ValueError as exc:
        raise ReportFormatError(f"{where}: not a date in {form}: {text!r}") from exc


def kind_of(text: object, kinds: Mapping[str, LineKind], where: str) -> LineKind:
    found = kinds.get(str(text).strip())
    if found is None:
        raise ReportFormatError(f"{where}: unknown operation {text!r}")
    return found


def reference_of(text: object, where: str) -> str:
    value = str(text).strip() if text is not None else ""
    if not value:
        raise ReportFormatError(f"{where}: the line names no reference")
    return value


def count_check(expected: object, seen: int, where: str) -> None:
    """A trailer's count: a file cut short (or padded) is refused."""
    try:
        count = int(str(expected))
    except ValueError as exc:
        raise ReportFormatError(f"{where}: count is not a number: {expected!r}") from exc
    if count != seen:
        raise ReportFormatError(f"{where}: the trailer counts {count} lines, the file has {seen}")


def preamble(rows: Iterator[tuple[int, list[str]]]) -> dict[str, str]:
    """`key;value` rows up to the first empty row."""
    found: dict[str, str] = {}
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            return found
        if len(row) < 2:
            raise ReportFormatError(f"row {number}: a preamble row is key and value")
        found[row[0].strip()] = row[1].strip()
    raise ReportFormatError("the file ends inside its preamble")


def table(
    rows: Iterator[tuple[int, list[str]]], columns: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    """A table whose first row (empty rows before it skipped) names its columns (all of
    `columns` must be there)."""
    for number, row in rows:
        names = [cell.strip() for cell in row]
        if not any(names):
            continue
        missing = [name for name in columns if name not in names]
        if missing:
            raise ReportFormatError(f"row {number}: columns missing: {', '.join(missing)}")
        break
    else:
        raise ReportFormatError("the file has no table of operations")
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise ReportFormatError(f"row {number}: {len(row)} cells, {len(names)} columns")
        yield number, dict(zip(names, row, strict=True))


# -- settlements --------------------------------------------------------------------------------


def settlement_iban(provider: str) -> str:
    """The account a provider settles from (development default: a valid KZ IBAN fixed by the
    provider's name; the simulator's providers pay from these)."""
    digits = int(hashlib.sha256(provider.encode()).hexdigest()[:15], 16) % 10**13
    return with_check_digits(f"998{digits:013d}")


def settlement_reference(provider: str, day: date) -> str:
    """How a settlement line names the provider day it pays."""
    return f"{provider}:{day.isoformat()}"


def parse_settlement_reference(text: str | None) -> tuple[str, date] | None:
    if not text or ":" not in text:
        return None
    provider, _, day = text.rpartition(":")
    try:
        return provider, date.fromisoformat(day)
    except ValueError:
        return None


def settlement_purpose(provider: str, day: date) -> str:
    """The settlement transfer's purpose as the providers write it (the day in it)."""
    return f"Возмещение по операциям за {day:%d.%m.%Y}, {provider}, реестр {provider}:{day}"


def settlement_accounts(settings: "Settings") -> dict[str, str]:
    """{settlement IBAN: provider} of every configured provider."""
    return {settlement_iban(rule.name): rule.name for rule in settings.providers}


def default_settlement_accounts() -> dict[str, str]:
    from config.connectors import DEFAULT_CONNECTOR_TYPES

    return {settlement_iban(name): name for name in DEFAULT_CONNECTOR_TYPES}


_DAY_IN_PURPOSE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})|(\d{4})-(\d{2})-(\d{2})")


def settlement_line_reference(provider: str, end_to_end_id: str | None, purpose: str | None) -> str:
    """The settlement reference of a bank line from `provider`'s settlement account: its
    end-to-end id when that is one, else the first date in its purpose, else the provider."""
    parsed = parse_settlement_reference(end_to_end_id)
    if parsed is not None and parsed[0] == provider:
        return settlement_reference(*parsed)
    for match in _DAY_IN_PURPOSE.finditer(purpose or ""):
        d, m, y, iy, im, iday = match.groups()
        with contextlib.suppress(ValueError):
            if y is not None:
                return settlement_reference(provider, date(int(y), int(m), int(d)))
            return settlement_reference(provider, date(int(iy), int(im), int(iday)))
    return provider


# -- the registry of formats and clients --------------------------------------------------------


@cache
def _modules() -> dict[str, Any]:
    from providers.connectors import modules_by_type

    return dict(modules_by_type(__name__))


def _parsers() -> dict[str, Parser]:
    found: dict[str, Parser] = {}
    for module in _modules().values():
        found.update(getattr(module, "FORMATS", {}))
    return found


def _statement_parsers() -> dict[str, StatementParser]:
    found: dict[str, StatementParser] = {}
    for module in _modules().values():
        found.update(getattr(module, "STATEMENT_FORMATS", {}))
    return found


def report_formats() -> set[str]:
    """Every format name (`halyk_epay.csv`, ..., `camt.053`, `kazbank.csv`)."""
    return {*_parsers(), *_statement_parsers()}


def format_of(connector_type: str) -> str:
    """The report format of a connector type (the bank's: camt.053)."""
    module = _modules().get(connector_type)
    if module is None:
        raise ValueError(f"no report format for connector type {connector_type!r}")
    return str(module.REPORT_FORMAT)


def parse_report(
    fmt: str,
    source: IO[bytes],
    provider: str,
    *,
    settlement_accounts: Mapping[str, str] | None = None,
) -> Parsed:
    """The header of a report in format `fmt`, and its lines as an iterator (read as it is
    iterated: keep `source` open until then). `provider` is whose report it is (ours)."""
    parser = _parsers().get(fmt)
    if parser is not None:
        return parser(source, provider)
    statement = _statement_parsers().get(fmt)
    if statement is not None:
        accounts = (
            settlement_accounts
            if settlement_accounts is not None
            else default_settlement_accounts()
        )
        return statement(source, provider, accounts)
    known = ", ".join(sorted(report_formats()))
    raise ReportFormatError(f"unknown report format {fmt!r} ({known})")


# -- fetching over the providers' APIs ----------------------------------------------------------


@dataclass(frozen=True)
class ReportFile:
    """A report downloaded into a file: its format and its SHA-256 (the report's identity)."""

    provider: str
    format: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ReportCall:
    """The HTTP request that asks a provider for a report."""

    method: str
    path: str  # under the provider's API root
    headers: Mapping[str, str]
    params: Mapping[str, str] | None = None
    data: Mapping[str, str] | None = None
    json: object = None


class Downloads(ProviderHttp):
    """Streams a report's body into a file, hashing it on the way."""

    async def _download(self, call: ReportCall, fmt: str, into: IO[bytes]) -> ReportFile:
        digest = hashlib.sha256()
        size = 0
        try:
            async with self._http.stream(
                call.method,
                self._base + call.path,
                headers=dict(call.headers),
                params=call.params,
                data=call.data,
                json=call.json,
                timeout=self._timeout,
            ) as response:
                if response.status_code >= 300:
                    await response.aread()
                    self._classify_status(response)
                    raise ProviderOutcomeUnknown(
                        self.provider, f"http_{response.status_code}", "report not delivered"
                    )
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    into.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except httpx.TransportError as exc:
            raise classify_transport_error(self.provider, exc) from exc
        return ReportFile(self.provider, fmt, digest.hexdigest(), size)


def _spooled() -> IO[bytes]:
    return cast(IO[bytes], tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024))


def _closing(lines: Iterator[ReportLine], source: IO[bytes]) -> Iterator[ReportLine]:
    try:
        yield from lines
    finally:
        source.close()


class ReportFetching(Downloads):
    """A provider's report client: its connector's client plus the report request."""

    REPORT_FORMAT: ClassVar[str]

    async def _report_call(self, business_date: date) -> ReportCall:
        raise NotImplementedError

    async def download_report(self, business_date: date, into: IO[bytes]) -> ReportFile:
        """The provider's report of `business_date` (Asia/Almaty), written into `into`."""
        call = await self._report_call(business_date)
        return await self._download(call, self.REPORT_FORMAT, into)

    async def fetch_report(self, business_date: date) -> Parsed:
        """The report's header, and its lines read from a spooled copy as they are iterated
        (the copy is closed when the lines are exhausted or the iterator is closed)."""
        source = _spooled()
        try:
            await self.download_report(business_date, source)
            source.seek(0)
            header, lines = parse_report(self.REPORT_FORMAT, source, self.provider)
        except BaseException:
            source.close()
            raise
        return header, _closing(lines, source)


class StatementFetching(Downloads):
    """The bank's statement client."""

    STATEMENT_FORMATS: ClassVar[Mapping[str, str]]  # format -> the API's name for it

    async def _statement_call(self, day: date, fmt: str) -> ReportCall:
        raise NotImplementedError

    async def download_statement(
        self, day: date, into: IO[bytes], fmt: str = "camt.053"
    ) -> ReportFile:
        if fmt not in self.STATEMENT_FORMATS:
            raise ValueError(f"no statement format {fmt!r}")
        return await self._download(await self._statement_call(day, fmt), fmt, into)

    async def fetch_statement(
        self,
        day: date,
        fmt: str = "camt.053",
        *,
        settlement_accounts: Mapping[str, str] | None = None,
    ) -> Parsed:
        """The statement of the operator's account for `day`: header and lines, as
        `ReportFetching.fetch_report`."""
        source = _spooled()
        try:
            await self.download_statement(day, source, fmt)
            source.seek(0)
            header, lines = parse_report(
                fmt, source, self.provider, settlement_accounts=settlement_accounts
            )
        except BaseException:
            source.close()
            raise
        return header, _closing(lines, source)


def report_client(
    settings: "Settings", http: httpx.AsyncClient, provider: str
) -> ReportFetching | StatementFetching:
    """The report (or, for the bank, statement) client of a provider, by its connector type."""
    from providers.registry import build_client

    kind = settings.connector(provider).type
    module = _modules().get(kind)
    client = getattr(module, "CLIENT", None)
    if not isinstance(client, type) or not issubclass(client, ReportFetching | StatementFetching):
        raise ValueError(f"provider {provider!r}: connector type {kind!r} delivers no reports")
    built: ReportFetching | StatementFetching = build_client(settings, http, provider, client)
    return built
