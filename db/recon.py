"""Reconciliation's store (migration 0110): reports and their lines, runs, cases, and the day's
side of ours as the ledger has it. Plain SQL, each write idempotent on business ids (the
activities that call these are retried); bulk work in few round trips (COPY for a report's
lines, one statement per chunk of cases).

Our side of a provider's business day is read from the ledger itself: every posted transaction
that moved that provider's clearing and is dated that Almaty day. A transaction is dated by the
day it was created, unless `recon_postings` dates it to another (a day's settlement is posted
after the day, for the day).
"""

import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.recon.canonical import ContentHash, ReportInvalid, check_header, check_line
from domain.recon.days import add_business_days, business_day, day_bounds
from domain.recon.lines import ReportHeader, ReportLine
from domain.recon.match import (
    BankSighting,
    Lookup,
    Needs,
    OurRecord,
    Outcome,
    RecordKind,
    SettledDay,
)
from domain.recon.references import iin_key, name_key

_LINE_COLUMNS = (
    "line_no, kind, reference, provider_id, amount_minor, currency, fee_minor, occurred_at, "
    "purpose, payer_name, payer_iin, payer_iban"
)
# Open cases of these kinds say "the money came on another day than ours": a record of ours
# with such a case elsewhere is accounted for, not missing at the provider.
_MONEY_ELSEWHERE_KINDS = ("missing_ours", "late_payment", "short_payment", "over_payment")


# -- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedReport:
    report_id: int
    content_hash: str
    line_count: int
    created: bool  # False: this very report (same hash) was already stored


@dataclass(frozen=True)
class ReportRow:
    id: int
    provider: str
    business_date: date
    content_hash: str
    source: str
    format: str
    currency: str
    net_settled_minor: int
    settlement_date: date | None
    line_count: int
    created_at: datetime


class _AlreadyStored(Exception):
    def __init__(self, report_id: int, line_count: int) -> None:
        self.report_id = report_id
        self.line_count = line_count


async def _rows(
    lines: Iterable[ReportLine] | AsyncIterable[ReportLine],
) -> AsyncIterator[ReportLine]:
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line


async def stage_report(
    session: AsyncSession,
    *,
    header: ReportHeader,
    lines: Iterable[ReportLine] | AsyncIterable[ReportLine],
    source: str,
    received_by: str | None = None,
    raw_sha256: str | None = None,
    raw_size: int | None = None,
    filename: str | None = None,
) -> StagedReport:
    """Store a report and its lines (checked, COPYed as they stream in) under its content hash,
    inside the caller's transaction. The same report again leaves nothing behind and answers
    the one stored first. Raises domain.recon.canonical.ReportInvalid on a bad line."""
    check_header(header)
    content = ContentHash(header)
    count = 0
    last_line_no = -1
    digest: str | None = None
    try:
        async with session.begin_nested():
            report_id = await session.scalar(
                text(
                    "INSERT INTO recon_reports (provider, business_date, content_hash, source, "
                    "format, currency, net_settled_minor, settlement_date, raw_sha256, raw_size, "
                    "filename, received_by) VALUES (:provider, :day, :staging, :source, :format, "
                    ":currency, :net, :settlement_date, :raw_sha256, :raw_size, :filename, :by) "
                    "RETURNING id"
                ),
                {
                    "provider": header.provider,
                    "day": header.business_date,
                    "staging": f"staging:{uuid.uuid4().hex}",
                    "source": source,
                    "format": header.format[:64],
                    "currency": header.currency,
                    "net": header.net_settled_minor,
                    "settlement_date": header.settlement_date,
                    "raw_sha256": raw_sha256,
                    "raw_size": raw_size,
                    "filename": filename[:200] if filename else None,
                    "by": received_by[:100] if received_by else None,
                },
            )
            assert report_id is not None
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            assert driver is not None
            async with driver.cursor() as cursor:
                copy_sql = f"COPY recon_report_lines (report_id, {_LINE_COLUMNS}) FROM STDIN"
                async with cursor.copy(copy_sql) as copy:
                    async for line in _rows(lines):
                        check_line(line)
                        if line.line_no <= last_line_no:
                            raise ReportInvalid(
                                f"line {line.line_no}: line numbers must increase "
                                f"(after {last_line_no})"
                            )
                        last_line_no = line.line_no
                        content.add(line)
                        count += 1
                        await copy.write_row(
                            (
                                report_id,
                                line.line_no,
                                line.kind,
                                line.reference,
                                line.provider_id,
                                line.amount_minor,
                                line.currency,
                                line.fee_minor,
                                line.occurred_at,
                                line.purpose,
                                line.payer_name,
                                line.payer_iin,
                                line.payer_iban,
                            )
                        )
            digest = content.hexdigest()
            existing = await _find_report(session, header.provider, header.business_date, digest)
            if existing is not None:
                raise _AlreadyStored(*existing)
            await session.execute(
                text(
                    "UPDATE recon_reports SET content_hash = :hash, line_count = :count "
                    "WHERE id = :id"
                ),
                {"hash": digest, "count": count, "id": report_id},
            )
    except _AlreadyStored as stored:
        assert digest is not None
        return StagedReport(stored.report_id, digest, stored.line_count, created=False)
    except IntegrityError:
        # The same report stored concurrently (unique provider, day, hash): take that one.
        if digest is None:
            raise
        existing = await _find_report(session, header.provider, header.business_date, digest)
        if existing is None:
            raise
        return StagedReport(existing[0], digest, existing[1], created=False)
    return StagedReport(report_id, digest, count, created=True)


async def _find_report(
    session: AsyncSession, provider: str, day: date, digest: str
) -> tuple[int, int] | None:
    row = (
        await session.execute(
            text(
                "SELECT id, line_count FROM recon_reports "
                "WHERE provider = :p AND business_date = :d AND content_hash = :h"
            ),
            {"p": provider, "d": day, "h": digest},
        )
    ).one_or_none()
    return None if row is None else (int(row.id), int(row.line_count))


async def get_report(session: AsyncSession, *, report_id: int) -> ReportRow | None:
    row = (
        await session.execute(
            text(
                "SELECT id, provider, business_date, content_hash, source, format, currency, "
                "net_settled_minor, settlement_date, line_count, created_at "
                "FROM recon_reports WHERE id = :id"
            ),
            {"id": report_id},
        )
    ).one_or_none()
    return None if row is None else ReportRow(**row._mapping)


async def report_lines(
    session: AsyncSession, *, report_id: int, after: int, limit: int
) -> list[ReportLine]:
    """The next `limit` lines after line number `after`, in order (keyset: flat memory)."""
    rows = await session.execute(
        text(
            f"SELECT {_LINE_COLUMNS} FROM recon_report_lines "  # noqa: S608 - constant columns
            "WHERE report_id = :id AND line_no > :after ORDER BY line_no LIMIT :limit"
        ),
        {"id": report_id, "after": after, "limit": limit},
    )
    return [ReportLine(**row._mapping) for row in rows]


# -- our side of the day ---------------------------------------------------------------------


@dataclass
class DayBook:
    """What our ledger moved through one provider's clearing on one business day."""

    records: dict[tuple[RecordKind, str], OurRecord]
    clearing_by_shard: dict[int, int]  # debits minus credits, per clearing shard
    fees_expected_minor: int  # deposit fees booked that day (reversals netted)

    @property
    def clearing_minor(self) -> int:
        return sum(self.clearing_by_shard.values())


_RECORD_OF_KIND: dict[str, RecordKind] = {
    "deposit_credit": "deposit",
    "withdrawal_paid": "withdrawal",
    "refund_paid": "refund",
    "chargeback": "chargeback",
    "chargeback_reversal": "chargeback_reversal",
}


def _shard(code: str) -> int:
    tail = code.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _reference(kind: str, key: str, payment_id: str | None) -> str | None:
    if kind.startswith("refund_paid"):  # refund:{refund_id}:post
        parts = key.split(":")
        return parts[1] if len(parts) >= 3 else payment_id
    return payment_id


# Every entry on the provider's clearing dated to the day: created that Almaty day (unless a
# reconciliation dated it to another day), or dated to it by `recon_postings`.
_DAY_ENTRIES = """
    WITH clearing AS (
        SELECT id, code FROM ledger_accounts
        WHERE type = 'provider_clearing' AND owner_id = :owner AND currency = :currency
    )
    SELECT t.id, t.key, t.kind, t.payment_id, c.code, e.side, e.amount_minor
    FROM clearing c
    JOIN ledger_entries e ON e.account_id = c.id
    JOIN ledger_transactions t ON t.id = e.transaction_id
    WHERE t.phase IN ('posted', 'post_pending')
      AND t.created_at >= :start AND t.created_at < :end
      AND NOT EXISTS (SELECT 1 FROM recon_postings rp WHERE rp.ledger_transaction_id = t.id)
    UNION ALL
    SELECT t.id, t.key, t.kind, t.payment_id, c.code, e.side, e.amount_minor
    FROM recon_postings rp
    JOIN ledger_transactions t ON t.id = rp.ledger_transaction_id
    JOIN ledger_entries e ON e.transaction_id = t.id
    JOIN clearing c ON c.id = e.account_id
    WHERE rp.business_date = :day AND rp.provider = :provider
"""


_DAY_BALANCES = (
    "SELECT code, sum(CASE WHEN side = 'D' THEN amount_minor ELSE -amount_minor END) AS balance, "
    "sum(CASE kind WHEN 'deposit_fee' THEN amount_minor "
    "WHEN 'deposit_fee_reversal' THEN -amount_minor ELSE 0 END) AS fees "
    "FROM (" + _DAY_ENTRIES + ") day GROUP BY code"
)


def _day_params(provider: str, currency: str, business_date: date) -> dict[str, object]:
    start, end = day_bounds(business_date)
    return {
        "owner": f"provider:{provider}",
        "currency": currency,
        "start": start,
        "end": end,
        "provider": provider,
        "day": business_date,
    }


async def day_balances(
    session: AsyncSession, *, provider: str, currency: str, business_date: date
) -> DayBook:
    """The day's clearing balance per shard and the fees booked, summed in the database (what
    the settlement needs; `records` is left empty)."""
    rows = await session.execute(
        text(_DAY_BALANCES),
        _day_params(provider, currency, business_date),
    )
    shards: dict[int, int] = defaultdict(int)
    fees = 0
    for row in rows:
        shards[_shard(row.code)] += int(row.balance)
        fees += int(row.fees)
    return DayBook({}, dict(shards), fees)


async def day_book(
    session: AsyncSession, *, provider: str, currency: str, business_date: date
) -> DayBook:
    """Our records and clearing balance of (provider, currency, Almaty day)."""
    rows = await session.execute(text(_DAY_ENTRIES), _day_params(provider, currency, business_date))
    shards: dict[int, int] = defaultdict(int)
    amounts: dict[tuple[RecordKind, str], int] = defaultdict(int)
    parents: dict[str, str | None] = {}
    fees: dict[str, int] = defaultdict(int)
    fees_total = 0
    for row in rows:
        signed = row.amount_minor if row.side == "D" else -row.amount_minor
        shards[_shard(row.code)] += signed
        kind: str = row.kind
        reversed_ = kind.endswith("_reversal") and kind not in _RECORD_OF_KIND
        base = kind.removesuffix("_reversal") if reversed_ else kind
        sign = -1 if reversed_ else 1
        if base == "deposit_fee" and row.payment_id:
            fees[row.payment_id] += sign * row.amount_minor
            fees_total += sign * row.amount_minor
            continue
        record_kind = _RECORD_OF_KIND.get(base)
        reference = _reference(base, row.key, row.payment_id)
        if record_kind is None or reference is None:
            continue
        amounts[(record_kind, reference)] += sign * row.amount_minor
        if record_kind == "refund":
            parents[reference] = row.payment_id
    records = {
        (kind, reference): OurRecord(
            reference=reference,
            kind=kind,
            amount_minor=amount,
            currency=currency,
            fee_minor=fees.get(reference, 0) if kind == "deposit" else 0,
            posted_on=business_date,
            parent=parents.get(reference),
        )
        for (kind, reference), amount in amounts.items()
        if amount > 0
    }
    return DayBook(records, dict(shards), fees_total)


async def lookup(
    session: AsyncSession,
    *,
    provider: str,
    business_date: date,
    needs: Needs,
    window_days: int,
) -> Lookup:
    """Records for references outside the day (another day's, or never posted), and the
    bank-transfer deposits of payers named by IIN or name around the day."""
    payers: dict[str, list[str]] = defaultdict(list)
    if needs.payers:
        start, _ = day_bounds(business_date - timedelta(days=window_days))
        _, end = day_bounds(business_date + timedelta(days=1))
        iins = [k.removeprefix("iin:") for k in needs.payers if k.startswith("iin:")]
        names = {k for k in needs.payers if k.startswith("name:")}
        rows = await session.execute(
            text(
                "SELECT d.id, p.iin, p.full_name FROM deposits d "
                "JOIN players p ON p.id = d.player_id "
                "WHERE d.method = 'bank_transfer' AND d.created_at >= :start "
                "AND d.created_at < :end AND (p.iin = ANY(:iins) OR :names) "
                "ORDER BY d.created_at"
            ),
            {"start": start, "end": end, "iins": iins, "names": bool(names)},
        )
        for row in rows:
            for key in (iin_key(row.iin), name_key(row.full_name)):
                if key in needs.payers:
                    payers[key].append(row.id)
    refunds: dict[str, list[str]] = defaultdict(list)
    if needs.refund_parents:
        rows = await session.execute(
            text(
                "SELECT id, deposit_id FROM refunds WHERE deposit_id = ANY(:parents) "
                "AND provider = :provider ORDER BY created_at, id"
            ),
            {"parents": sorted(needs.refund_parents), "provider": provider},
        )
        for row in rows:
            refunds[row.deposit_id].append(row.id)
    references = (
        set(needs.references)
        | set(needs.refund_parents)
        | {r for refs in payers.values() for r in refs}
        | {r for refs in refunds.values() for r in refs}
    )
    records = await _records(session, provider=provider, references=references)
    return Lookup(
        settled=await settled_days(session, references=needs.settlements),
        records=records,
        payers={k: tuple(v) for k, v in payers.items()},
        refunds={
            parent: tuple(records[r] for r in ids if r in records)
            for parent, ids in refunds.items()
        },
    )


async def settled_days(
    session: AsyncSession, *, references: Iterable[str]
) -> dict[str, SettledDay]:
    """The provider days bank settlement lines name (`{provider}:{YYYY-MM-DD}`): each one's
    latest completed reconciliation run and the net it settled to the operator's bank."""
    days: dict[str, tuple[str, date]] = {}
    for reference in references:
        provider, _, day = reference.rpartition(":")
        try:
            days[reference] = (provider, date.fromisoformat(day))
        except ValueError:
            continue  # names no day: nothing can have settled it
    if not days:
        return {}
    rows = await session.execute(
        text(
            "SELECT DISTINCT ON (provider, business_date) id, provider, business_date, "
            "net_settled_minor, currency FROM recon_runs "
            "WHERE status = 'completed' AND (provider, business_date) IN "
            "(SELECT * FROM unnest(CAST(:providers AS text[]), CAST(:days AS date[]))) "
            "ORDER BY provider, business_date, id DESC"
        ),
        {
            "providers": [provider for provider, _ in days.values()],
            "days": [day for _, day in days.values()],
        },
    )
    runs = {
        (row.provider, row.business_date): SettledDay(
            provider=row.provider,
            business_date=row.business_date,
            run_id=int(row.id),
            net_settled_minor=int(row.net_settled_minor),
            currency=str(row.currency),
        )
        for row in rows
    }
    return {ref: runs[key] for ref, key in days.items() if key in runs}


async def close_settlement_cases(
    session: AsyncSession, *, provider: str, business_date: date, settled_minor: int, currency: str
) -> int:
    """A provider day settled now as the bank statement showed it: its settlement cases (a
    statement reconciled before the provider's run, or against an earlier report of the day)
    are closed. Returns how many."""
    result = await session.execute(
        text(
            "UPDATE recon_cases SET status = 'resolved', resolution = 'settled_by_run', "
            "resolved_by = 'reconciliation', resolved_at = now(), updated_at = now() "
            "WHERE reference = :ref AND kind IN ('settlement_unmatched', 'settlement_mismatch') "
            "AND status = 'open' AND amount_minor = :amount AND currency = :currency"
        ),
        {
            "ref": f"{provider}:{business_date.isoformat()}",
            "amount": settled_minor,
            "currency": currency,
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- the providers' settlements at the bank --------------------------------------------------

# A statement's run keeps the provider days its settlements paid (`details.settlements`, keyed
# by `{provider}:{day}`); a superseded statement's (a corrected statement of the day) no longer
# counts. A bank writes a few settlements a day: these are small.
_SIGHTINGS = (
    "SELECT s.id, s.provider, s.business_date, x.key AS reference, x.value AS seen "
    "FROM recon_runs s CROSS JOIN LATERAL jsonb_each(s.details -> 'settlements') x "
    "WHERE s.status IN ('matched', 'completed') AND jsonb_typeof(s.details -> 'settlements') "
    "= 'object'"
)


def settlements_seen_json(seen: Mapping[str, Outcome]) -> dict[str, dict[str, Any]]:
    """What a statement's run records of the settlements it showed (`details.settlements`)."""
    return {
        reference: {
            "kind": o.kind,
            "received": o.amount_minor,
            "currencies": sorted(o.details.get("currencies") or [o.currency]),
            **{
                k: o.details[k]
                for k in ("line_kind", "line_nos", "bank_ids", "run_id", "settled")
                if k in o.details
            },
        }
        for reference, o in seen.items()
    }


async def bank_sightings(session: AsyncSession, *, references: Sequence[str]) -> list[BankSighting]:
    """The settlements of these provider days the bank's statements showed (statements not
    superseded), one per statement, oldest first."""
    if not references:
        return []
    rows = await session.execute(
        text(_SIGHTINGS + " AND x.key = ANY(:refs) ORDER BY s.business_date, s.id"),
        {"refs": list(references)},
    )
    return [
        BankSighting(
            statement_run_id=int(row.id),
            bank=str(row.provider),
            statement_date=row.business_date,
            reference=str(row.reference),
            received_minor=int(row.seen.get("received", 0)),
            currencies=frozenset(row.seen.get("currencies") or ()),
            details=dict(row.seen),
        )
        for row in rows
    ]


async def missing_checked_on(
    session: AsyncSession, *, provider: str, business_date: date
) -> date | None:
    """The statement day whose check found this provider day's settlement missing, when that
    case was closed because its run was superseded (a corrected report settles the day
    again), else None."""
    found = await session.scalar(
        text(
            "SELECT details ->> 'checked_on' FROM recon_cases WHERE provider = :p "
            "AND business_date = :d AND kind = 'settlement_missing_at_bank' "
            "AND resolution = 'superseded'"
        ),
        {"p": provider, "d": business_date},
    )
    try:
        return date.fromisoformat(found) if isinstance(found, str) else None
    except ValueError:
        return None


@dataclass(frozen=True)
class MissingAtBank:
    """A provider day its run settled to the operator's bank account (a net other than zero)
    whose money no statement showed by `due_by`."""

    run_id: int
    provider: str
    business_date: date
    currency: str
    settled_minor: int
    expected_on: date  # the report's settlement date (the business day itself when none)
    due_by: date  # expected_on plus the grace business days

    @property
    def reference(self) -> str:
        return f"{self.provider}:{self.business_date.isoformat()}"

    def outcome(self, *, checked_on: date) -> Outcome:
        return Outcome(
            kind="settlement_missing_at_bank",
            reference=self.reference,
            line_key="settlement",
            amount_minor=self.settled_minor,
            currency=self.currency,
            details={
                "provider": self.provider,
                "business_date": self.business_date.isoformat(),
                "run_id": self.run_id,
                "settled": self.settled_minor,
                "received": 0,
                "delta": -self.settled_minor,
                "expected_on": self.expected_on.isoformat(),
                "due_by": self.due_by.isoformat(),
                "checked_on": checked_on.isoformat(),
                "cause": "no bank statement showed this provider day's settlement in time",
            },
        )


# A missing-at-bank case closed by one of these opens again when the check finds the day
# missing once more (a corrected report settled it again; the statement that showed it was
# itself superseded). One an operator resolved stays resolved.
_MISSING_REOPENS = ("superseded", "seen_at_bank")


async def missing_at_bank(
    session: AsyncSession,
    *,
    as_of: date,
    grace_days: int,
    provider: str | None = None,
    business_date: date | None = None,
) -> list[MissingAtBank]:
    """Provider days (every one, or the one named) whose current run settled a net to the
    operator's bank account, that no statement not superseded showed, due by `as_of` (the day
    of the statement checked: the bank has been seen that far), and that have no case yet (or
    one closed by the reconciliation itself, `_MISSING_REOPENS`). Statements reconciled out of
    order may find a day missing that an earlier statement, reconciled later, shows: that
    statement closes the case."""
    rows = await session.execute(
        text(
            "WITH seen AS (SELECT DISTINCT reference FROM ("  # noqa: S608 - constant text
            + _SIGHTINGS
            + ") s) "
            "SELECT r.id, r.provider, r.business_date, r.currency, r.net_settled_minor, "
            "coalesce(p.settlement_date, r.business_date) AS expected_on "
            "FROM recon_runs r JOIN recon_reports p ON p.id = r.report_id "
            "WHERE r.status = 'completed' AND r.net_settled_minor <> 0 "
            "AND coalesce(r.details ->> 'statement', 'false') <> 'true' "
            "AND coalesce(p.settlement_date, r.business_date) <= :latest "
            "AND (CAST(:p AS varchar) IS NULL OR r.provider = :p) "
            "AND (CAST(:d AS date) IS NULL OR r.business_date = :d) "
            "AND r.provider || ':' || to_char(r.business_date, 'YYYY-MM-DD') "
            "NOT IN (SELECT reference FROM seen) "
            "AND NOT EXISTS (SELECT 1 FROM recon_cases c WHERE c.provider = r.provider "
            "AND c.business_date = r.business_date AND c.kind = 'settlement_missing_at_bank' "
            "AND (c.status <> 'resolved' OR c.resolution IS NULL "
            "OR NOT c.resolution = ANY(:reopens))) "
            "ORDER BY r.business_date, r.provider"
        ),
        {
            # business days are never fewer than calendar days: a first cut in the database
            "latest": as_of - timedelta(days=grace_days),
            "p": provider,
            "d": business_date,
            "reopens": list(_MISSING_REOPENS),
        },
    )
    found = []
    for row in rows:
        due_by = add_business_days(row.expected_on, grace_days)
        if due_by > as_of:
            continue
        found.append(
            MissingAtBank(
                run_id=int(row.id),
                provider=str(row.provider),
                business_date=row.business_date,
                currency=str(row.currency),
                settled_minor=int(row.net_settled_minor),
                expected_on=row.expected_on,
                due_by=due_by,
            )
        )
    return found


_OPEN_AUTO_CASE = text(
    """
    INSERT INTO recon_cases (run_id, provider, business_date, kind, reference, line_key,
                             line_no, amount_minor, currency, details)
    VALUES (:run_id, :provider, :business_date, :kind, :reference, :line_key, :line_no,
            :amount_minor, :currency, CAST(:details AS jsonb))
    ON CONFLICT (provider, business_date, kind, (coalesce(reference, '')), line_key)
    DO UPDATE SET run_id = EXCLUDED.run_id, line_no = EXCLUDED.line_no,
        amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
        details = EXCLUDED.details, status = 'open', resolution = NULL, resolved_by = NULL,
        resolved_at = NULL, updated_at = now()
    WHERE recon_cases.status = 'open' OR recon_cases.resolution = ANY(:reopens)
    RETURNING id
    """
)


async def open_auto_case(
    session: AsyncSession,
    *,
    run_id: int,
    provider: str,
    business_date: date,
    outcome: Outcome,
    reopens: Sequence[str],
) -> int | None:
    """Open the case of a discrepancy found outside a report's matching (a check across
    runs), or bring the open one up to date, or open again one the reconciliation closed by
    itself for a reason in `reopens`. One an operator resolved is left alone (None)."""
    found = await session.scalar(
        _OPEN_AUTO_CASE,
        {
            "run_id": run_id,
            "provider": provider,
            "business_date": business_date,
            "kind": outcome.kind,
            "reference": outcome.reference,
            "line_key": outcome.line_key[:200],
            "line_no": outcome.line_no,
            "amount_minor": outcome.amount_minor,
            "currency": outcome.currency,
            "details": json.dumps(dict(outcome.details), default=str),
            "reopens": list(reopens),
        },
    )
    return None if found is None else int(found)


async def open_missing_at_bank(
    session: AsyncSession, *, missing: Sequence[MissingAtBank], checked_on: date
) -> list[int]:
    """One `settlement_missing_at_bank` case per provider day, on that day's run."""
    opened = []
    for day in missing:
        case_id = await open_auto_case(
            session,
            run_id=day.run_id,
            provider=day.provider,
            business_date=day.business_date,
            outcome=day.outcome(checked_on=checked_on),
            reopens=_MISSING_REOPENS,
        )
        if case_id is not None:
            opened.append(case_id)
    return opened


async def close_missing_at_bank(
    session: AsyncSession, *, references: Sequence[str], statement_run_id: int
) -> int:
    """The provider days a statement showed now: their missing-at-bank cases close (whether
    the amount agrees is the statement's own settlement check)."""
    if not references:
        return 0
    result = await session.execute(
        text(
            "UPDATE recon_cases SET status = 'resolved', resolution = 'seen_at_bank', "
            "resolved_by = 'reconciliation', resolved_at = now(), updated_at = now(), "
            "details = details || jsonb_build_object('seen_by_run', CAST(:run AS bigint)) "
            "WHERE kind = 'settlement_missing_at_bank' AND status = 'open' "
            "AND reference = ANY(:refs)"
        ),
        {"refs": list(references), "run": statement_run_id},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def written_off_missing(
    session: AsyncSession, *, references: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Of these provider days, those whose missing-at-bank case an operator wrote off the
    operator's bank account: reference -> (case id, the net written off)."""
    if not references:
        return {}
    rows = await session.execute(
        text(
            "SELECT id, reference, details ->> 'delta' AS delta FROM recon_cases "
            "WHERE kind = 'settlement_missing_at_bank' AND resolution = 'write_off' "
            "AND reference = ANY(:refs)"
        ),
        {"refs": list(references)},
    )
    return {
        str(row.reference): (int(row.id), -int(row.delta or 0))
        for row in rows
        if row.reference is not None
    }


async def close_unmatched_settlement(
    session: AsyncSession, *, bank: str, statement_date: date, reference: str
) -> int:
    """A statement's settlement no run had settled, judged now against the run that came
    (a `settlement_mismatch` of the same statement takes over): its unmatched case closes."""
    result = await session.execute(
        text(
            "UPDATE recon_cases SET status = 'resolved', resolution = 'settled_by_run', "
            "resolved_by = 'reconciliation', resolved_at = now(), updated_at = now() "
            "WHERE provider = :bank AND business_date = :d AND reference = :ref "
            "AND kind = 'settlement_unmatched' AND status = 'open'"
        ),
        {"bank": bank, "d": statement_date, "ref": reference},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _records(
    session: AsyncSession, *, provider: str, references: set[str]
) -> dict[str, OurRecord]:
    if not references:
        return {}
    refs = sorted(references)
    rows = await session.execute(
        text(
            """
            SELECT 'deposit' AS kind, d.id, d.amount_minor, d.currency, d.status, d.player_id,
                   d.provider, NULL AS parent
            FROM deposits d WHERE d.id = ANY(:refs)
            UNION ALL
            SELECT 'withdrawal', w.id, w.amount_minor, w.currency, w.status, w.player_id,
                   w.provider, NULL
            FROM withdrawals w WHERE w.id = ANY(:refs)
            UNION ALL
            SELECT 'refund', r.id, r.amount_minor, r.currency, r.status, d.player_id,
                   r.provider, r.deposit_id
            FROM refunds r JOIN deposits d ON d.id = r.deposit_id WHERE r.id = ANY(:refs)
            """
        ),
        {"refs": refs},
    )
    found = list(rows)
    keys = {row.id: _posting_keys(row.kind, row.id) for row in found}
    wanted = [k for pair in keys.values() for k in pair if k]
    posted: dict[str, tuple[datetime, int]] = {}
    if wanted:
        ledger_rows = await session.execute(
            text(
                "SELECT t.key, t.created_at, max(e.amount_minor) AS amount "
                "FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id "
                "WHERE t.key = ANY(:keys) GROUP BY t.key, t.created_at"
            ),
            {"keys": wanted},
        )
        posted = {r.key: (r.created_at, int(r.amount)) for r in ledger_rows}
    records: dict[str, OurRecord] = {}
    for row in found:
        credit_key, fee_key = keys[row.id]
        credit = posted.get(credit_key) if row.provider == provider else None
        fee = posted.get(fee_key) if fee_key else None
        records[row.id] = OurRecord(
            reference=row.id,
            kind=row.kind,
            amount_minor=credit[1] if credit else int(row.amount_minor),
            currency=row.currency,
            fee_minor=fee[1] if fee and credit else 0,
            posted_on=business_day(credit[0]) if credit else None,
            status=row.status,
            player_id=row.player_id,
            parent=row.parent,
        )
    return records


def _posting_keys(kind: str, reference: str) -> tuple[str, str | None]:
    """The ledger keys that moved a payment's money through clearing (domain/ledger.py)."""
    if kind == "deposit":
        return f"deposit:{reference}:credit", f"deposit:{reference}:fee"
    if kind == "withdrawal":
        return f"wd:{reference}:post", None
    return f"refund:{reference}:post", None


async def accounted_elsewhere(
    session: AsyncSession,
    *,
    provider: str,
    business_date: date,
    references: Sequence[str],
    window_days: int,
) -> set[str]:
    """Which of our day's references another day's report already accounts for (cut-off: a
    payment we credited just after midnight that the provider reports the day before, or money
    that came before we credited it): they are not missing at the provider."""
    if not references:
        return set()
    params = {
        "p": provider,
        "d": business_date,
        "lo": business_date - timedelta(days=window_days),
        "hi": business_date + timedelta(days=window_days),
        "refs": list(references),
        "kinds": list(_MONEY_ELSEWHERE_KINDS),
    }
    rows = await session.execute(
        text(
            """
            SELECT ref FROM recon_runs r,
                 jsonb_array_elements_text(coalesce(r.details -> 'matched_other_day', '[]')) ref
            WHERE r.provider = :p AND r.business_date <> :d
              AND r.business_date BETWEEN :lo AND :hi AND r.status <> 'superseded'
              AND ref = ANY(:refs)
            UNION
            SELECT c.reference FROM recon_cases c
            WHERE c.reference = ANY(:refs) AND c.provider = :p AND c.business_date <> :d
              AND c.business_date BETWEEN :lo AND :hi AND c.kind = ANY(:kinds)
              AND c.resolution IS DISTINCT FROM 'superseded'
            """
        ),
        params,
    )
    return {str(row[0]) for row in rows}


# -- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    id: int
    provider: str
    business_date: date
    report_id: int
    report_hash: str
    status: str
    superseded_by: int | None
    workflow_id: str | None
    requested_by: str | None
    currency: str
    outcomes: dict[str, Any]
    line_count: int
    matched_count: int
    matched_minor: int
    unmatched_count: int
    unmatched_minor: int
    cases_opened: int
    fees_reported_minor: int
    fees_expected_minor: int
    net_settled_minor: int
    clearing_minor: int
    fee_delta_minor: int
    difference_minor: int
    settlement_key: str | None
    settlement_transaction_id: int | None
    details: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    source: str | None = None
    format: str | None = None


_RUN_COLUMNS = (
    "r.id, r.provider, r.business_date, r.report_id, r.report_hash, r.status, r.superseded_by, "
    "r.workflow_id, r.requested_by, r.currency, r.outcomes, r.line_count, r.matched_count, "
    "r.matched_minor, r.unmatched_count, r.unmatched_minor, r.cases_opened, "
    "r.fees_reported_minor, r.fees_expected_minor, r.net_settled_minor, r.clearing_minor, "
    "r.fee_delta_minor, r.difference_minor, r.settlement_key, r.settlement_transaction_id, "
    "r.details, r.created_at, r.finished_at, p.source, p.format"
)


async def open_run(
    session: AsyncSession,
    *,
    report: ReportRow,
    workflow_id: str | None,
    requested_by: str | None,
) -> tuple[RunRow, bool]:
    """The run of this report, locked: created now (True), or the one that exists (False)."""
    created = await session.scalar(
        text(
            "INSERT INTO recon_runs (provider, business_date, report_id, report_hash, "
            "workflow_id, requested_by, currency, line_count, net_settled_minor) "
            "VALUES (:p, :d, :report, :hash, :wf, :by, :currency, :lines, :net) "
            "ON CONFLICT ON CONSTRAINT uq_recon_run DO NOTHING RETURNING id"
        ),
        {
            "p": report.provider,
            "d": report.business_date,
            "report": report.id,
            "hash": report.content_hash,
            "wf": workflow_id,
            "by": requested_by[:100] if requested_by else None,
            "currency": report.currency,
            "lines": report.line_count,
            "net": report.net_settled_minor,
        },
    )
    row = (
        await session.execute(
            text(
                f"SELECT {_RUN_COLUMNS} FROM recon_runs r "  # noqa: S608 - constant columns
                "JOIN recon_reports p ON p.id = r.report_id "
                "WHERE r.provider = :p AND r.business_date = :d AND r.report_hash = :h "
                "FOR UPDATE OF r"
            ),
            {"p": report.provider, "d": report.business_date, "h": report.content_hash},
        )
    ).one()
    return RunRow(**row._mapping), created is not None


async def get_run(session: AsyncSession, *, run_id: int, lock: bool = False) -> RunRow | None:
    row = (
        await session.execute(
            text(
                f"SELECT {_RUN_COLUMNS} FROM recon_runs r "  # noqa: S608 - constant columns
                "JOIN recon_reports p ON p.id = r.report_id WHERE r.id = :id"
                + (" FOR UPDATE OF r" if lock else "")
            ),
            {"id": run_id},
        )
    ).one_or_none()
    return None if row is None else RunRow(**row._mapping)


async def list_runs(
    session: AsyncSession,
    *,
    provider: str | None,
    business_date: date | None,
    status: str | None,
    limit: int,
    before_id: int | None,
) -> list[RunRow]:
    rows = await session.execute(
        text(
            f"SELECT {_RUN_COLUMNS} FROM recon_runs r "  # noqa: S608 - constant columns
            "JOIN recon_reports p ON p.id = r.report_id "
            "WHERE (CAST(:p AS varchar) IS NULL OR r.provider = :p) "
            "AND (CAST(:d AS date) IS NULL OR r.business_date = :d) "
            "AND (CAST(:s AS varchar) IS NULL OR r.status = :s) "
            "AND (CAST(:before AS bigint) IS NULL OR r.id < :before) "
            "ORDER BY r.id DESC LIMIT :limit"
        ),
        {"p": provider, "d": business_date, "s": status, "before": before_id, "limit": limit},
    )
    return [RunRow(**row._mapping) for row in rows]


async def record_matching(
    session: AsyncSession,
    *,
    run_id: int,
    outcomes: Mapping[str, Mapping[str, int]],
    matched: tuple[int, int],
    unmatched: tuple[int, int],
    fees_reported_minor: int,
    details: Mapping[str, Any],
) -> int:
    """The run's counts once every line is judged; returns how many of its cases are open."""
    opened = await session.scalar(
        text("SELECT count(*) FROM recon_cases WHERE run_id = :id AND status = 'open'"),
        {"id": run_id},
    )
    await session.execute(
        text(
            "UPDATE recon_runs SET status = 'matched', outcomes = CAST(:outcomes AS jsonb), "
            "matched_count = :mc, matched_minor = :mm, unmatched_count = :uc, "
            "unmatched_minor = :um, cases_opened = :opened, fees_reported_minor = :fees, "
            "details = CAST(:details AS jsonb) WHERE id = :id AND status = 'running'"
        ),
        {
            "outcomes": json.dumps(outcomes),
            "mc": matched[0],
            "mm": matched[1],
            "uc": unmatched[0],
            "um": unmatched[1],
            "opened": int(opened or 0),
            "fees": fees_reported_minor,
            "details": json.dumps(details),
            "id": run_id,
        },
    )
    return int(opened or 0)


async def record_settlement(
    session: AsyncSession,
    *,
    run_id: int,
    fees_expected_minor: int,
    net_settled_minor: int,
    clearing_minor: int,
    fee_delta_minor: int,
    difference_minor: int,
    settlement_key: str | None,
    settlement_transaction_id: int | None,
    finished_at: datetime,
) -> None:
    await session.execute(
        text(
            "UPDATE recon_runs SET status = 'completed', fees_expected_minor = :fees, "
            "net_settled_minor = :net, clearing_minor = :clearing, fee_delta_minor = :delta, "
            "difference_minor = :difference, settlement_key = :key, "
            "settlement_transaction_id = :tx, finished_at = :at "
            "WHERE id = :id AND status = 'matched'"
        ),
        {
            "fees": fees_expected_minor,
            "net": net_settled_minor,
            "clearing": clearing_minor,
            "delta": fee_delta_minor,
            "difference": difference_minor,
            "key": settlement_key,
            "tx": settlement_transaction_id,
            "at": finished_at,
            "id": run_id,
        },
    )


async def running_run(session: AsyncSession, *, provider: str, business_date: date) -> int | None:
    found = await session.scalar(
        text(
            "SELECT id FROM recon_runs WHERE provider = :p AND business_date = :d "
            "AND status IN ('running', 'matched') ORDER BY id DESC LIMIT 1"
        ),
        {"p": provider, "d": business_date},
    )
    return None if found is None else int(found)


# -- cases -----------------------------------------------------------------------------------


_UPSERT_CASES = text(
    """
    INSERT INTO recon_cases (run_id, provider, business_date, kind, reference, line_key,
                             line_no, amount_minor, currency, details)
    SELECT x.run_id, x.provider, x.business_date, x.kind, x.reference, x.line_key, x.line_no,
           x.amount_minor, x.currency, x.details
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
        run_id bigint, provider varchar, business_date date, kind varchar, reference text,
        line_key varchar, line_no integer, amount_minor bigint, currency varchar, details jsonb)
    ON CONFLICT (provider, business_date, kind, (coalesce(reference, '')), line_key)
    DO UPDATE SET run_id = EXCLUDED.run_id,
        line_no = EXCLUDED.line_no,
        amount_minor = CASE WHEN recon_cases.status = 'open'
                                 OR recon_cases.resolution = 'superseded'
                            THEN EXCLUDED.amount_minor ELSE recon_cases.amount_minor END,
        currency = CASE WHEN recon_cases.status = 'open' OR recon_cases.resolution = 'superseded'
                        THEN EXCLUDED.currency ELSE recon_cases.currency END,
        details = EXCLUDED.details,
        status = CASE WHEN recon_cases.resolution = 'superseded' THEN 'open'
                      ELSE recon_cases.status END,
        resolution = CASE WHEN recon_cases.resolution = 'superseded' THEN NULL
                          ELSE recon_cases.resolution END,
        resolved_by = CASE WHEN recon_cases.resolution = 'superseded' THEN NULL
                           ELSE recon_cases.resolved_by END,
        resolved_at = CASE WHEN recon_cases.resolution = 'superseded' THEN NULL
                           ELSE recon_cases.resolved_at END,
        updated_at = now()
    RETURNING (xmax = 0) AS created
    """
)


async def upsert_cases(
    session: AsyncSession,
    *,
    run_id: int,
    provider: str,
    business_date: date,
    outcomes: Iterable[Outcome],
) -> int:
    """Open a case per discrepancy in one statement; one seen before (a re-run, a corrected
    report) is taken over by this run and keeps its status and resolution. Returns how many
    are new."""
    rows = [
        {
            "run_id": run_id,
            "provider": provider,
            "business_date": business_date.isoformat(),
            "kind": o.kind,
            "reference": o.reference,
            "line_key": o.line_key[:200],
            "line_no": o.line_no,
            "amount_minor": o.amount_minor,
            "currency": o.currency,
            "details": dict(o.details),
        }
        for o in outcomes
        if o.is_case
    ]
    if not rows:
        return 0
    result = await session.execute(_UPSERT_CASES, {"rows": json.dumps(rows, default=str)})
    return sum(1 for row in result if row.created)


async def close_cases_matched_elsewhere(
    session: AsyncSession,
    *,
    provider: str,
    business_date: date,
    references: Sequence[str],
    kinds: Sequence[str],
    resolution: str,
) -> int:
    """Open cases on other days that this day's matching explains (cut-off)."""
    if not references:
        return 0
    result = await session.execute(
        text(
            "UPDATE recon_cases SET status = 'resolved', resolution = :resolution, "
            "resolved_by = 'reconciliation', resolved_at = now(), updated_at = now() "
            "WHERE provider = :p AND business_date <> :d AND reference = ANY(:refs) "
            "AND kind = ANY(:kinds) AND status = 'open'"
        ),
        {
            "resolution": resolution,
            "p": provider,
            "d": business_date,
            "refs": list(references),
            "kinds": list(kinds),
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- superseding and settlement --------------------------------------------------------------


@dataclass(frozen=True)
class Superseded:
    run_id: int
    report_hash: str
    settlement_key: str | None
    cases_closed: int


async def runs_to_supersede(
    session: AsyncSession, *, provider: str, business_date: date, new_run_id: int
) -> list[RunRow]:
    rows = await session.execute(
        text(
            f"SELECT {_RUN_COLUMNS} FROM recon_runs r "  # noqa: S608 - constant columns
            "JOIN recon_reports p ON p.id = r.report_id "
            "WHERE r.provider = :p AND r.business_date = :d AND r.id <> :id "
            "AND r.status IN ('matched', 'completed') ORDER BY r.id FOR UPDATE OF r"
        ),
        {"p": provider, "d": business_date, "id": new_run_id},
    )
    return [RunRow(**row._mapping) for row in rows]


async def mark_superseded(
    session: AsyncSession,
    *,
    old: RunRow,
    new_run_id: int,
    new_report_hash: str,
    reversal_key: str | None,
    reversal_transaction_id: int | None,
) -> int:
    """The earlier run gives way: its open cases the new report did not raise again are closed
    as superseded, and the supersession is recorded. Returns how many cases it closed."""
    closed = await session.execute(
        text(
            "UPDATE recon_cases SET status = 'resolved', resolution = 'superseded', "
            "resolved_by = 'reconciliation', resolved_at = now(), updated_at = now() "
            "WHERE run_id = :old AND status = 'open'"
        ),
        {"old": old.id},
    )
    count = int(getattr(closed, "rowcount", 0) or 0)
    await session.execute(
        text("UPDATE recon_runs SET status = 'superseded', superseded_by = :new WHERE id = :old"),
        {"new": new_run_id, "old": old.id},
    )
    await session.execute(
        text(
            "INSERT INTO recon_supersessions (provider, business_date, old_run_id, new_run_id, "
            "old_report_hash, new_report_hash, reversal_key, reversal_transaction_id, "
            "cases_closed) VALUES (:p, :d, :old, :new, :oh, :nh, :key, :tx, :closed) "
            "ON CONFLICT ON CONSTRAINT uq_recon_supersession DO NOTHING"
        ),
        {
            "p": old.provider,
            "d": old.business_date,
            "old": old.id,
            "new": new_run_id,
            "oh": old.report_hash,
            "nh": new_report_hash,
            "key": reversal_key,
            "tx": reversal_transaction_id,
            "closed": count,
        },
    )
    return count


async def supersessions(
    session: AsyncSession, *, run_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """The audit trail of the runs given (either side), per run id."""
    if not run_ids:
        return {}
    rows = await session.execute(
        text(
            "SELECT id, old_run_id, new_run_id, old_report_hash, new_report_hash, reversal_key, "
            "cases_closed, created_at FROM recon_supersessions "
            "WHERE old_run_id = ANY(:ids) OR new_run_id = ANY(:ids) ORDER BY id"
        ),
        {"ids": list(run_ids)},
    )
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        item = dict(row._mapping)
        for run_id in {row.old_run_id, row.new_run_id} & set(run_ids):
            found[run_id].append(item)
    return found


async def date_posting(
    session: AsyncSession,
    *,
    ledger_transaction_id: int,
    ledger_key: str,
    run_id: int | None,
    provider: str,
    business_date: date,
    purpose: str,
) -> None:
    """Date a reconciliation posting to the business day it settles (not the day it was made)."""
    await session.execute(
        text(
            "INSERT INTO recon_postings (ledger_transaction_id, ledger_key, run_id, provider, "
            "business_date, purpose) VALUES (:tx, :key, :run, :p, :d, :purpose) "
            "ON CONFLICT (ledger_transaction_id) DO NOTHING"
        ),
        {
            "tx": ledger_transaction_id,
            "key": ledger_key,
            "run": run_id,
            "p": provider,
            "d": business_date,
            "purpose": purpose,
        },
    )


async def open_cases(session: AsyncSession, *, run_id: int) -> int:
    found = await session.scalar(
        text("SELECT count(*) FROM recon_cases WHERE run_id = :id AND status = 'open'"),
        {"id": run_id},
    )
    return int(found or 0)
