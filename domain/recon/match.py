"""Matching one provider's report for one business day with our records, line by line.

Pure and streaming: the day's records of ours (what our ledger moved through that provider's
clearing that day, keyed by kind and reference) are held as a dict; the report's lines arrive
in chunks and are classified as they come, so memory grows with our day, never with the report.
What a chunk names that is not among the day's records (another day's payment, an expired
deposit, a payer's IIN) is looked up by the caller in one query per chunk (`needs`, then
`feed` with the `Lookup`): the matcher itself does no I/O.

Each line becomes one outcome: `matched`, or a discrepancy that becomes a case:
- `missing_ours`: the provider moved money we have no record of moving (a late payment for a
  deposit we gave up on, or an unknown reference);
- `missing_provider`: we moved money (credited a deposit, paid a payout, a refund) that the
  provider does not report (an outcome of `finish`, not of a line);
- `amount_mismatch`, `currency_mismatch`: the same reference with other figures;
- `fee_mismatch`: the provider kept another fee than the one we booked for the line;
- `duplicate`: the same reference and kind again in one report;
- `chargeback`, `chargeback_reversal`: money the payer's bank took back (or returned) that no
  posting of ours accounts for;
- bank statements: `short_payment`, `over_payment` (a transfer of another amount than the
  deposit's), `late_payment` (money for a deposit we never credited), `unknown_reference`
  (a transfer whose purpose names nothing we know, nor its payer);
- a provider's settlement on the bank statement, checked against that provider's
  reconciliation run of the day it names (the net the run settled): `settlement` when the
  amounts agree, `settlement_unmatched` when no run settled that day, `settlement_mismatch`
  when the bank received another amount (or currency).
Transfers for one deposit are summed before they are judged: a payer who tops up a short
transfer pays the deposit; so are the settlement lines of one provider day.
"""

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from domain.recon.lines import LineKind, ReportLine
from domain.recon.references import iin_key, name_key, purpose_references

RecordKind = Literal["deposit", "withdrawal", "refund", "chargeback", "chargeback_reversal"]

OutcomeKind = Literal[
    "matched",
    "settlement",  # a provider's settlement on the bank statement, as its run settled: no case
    "settlement_unmatched",  # ... naming a provider day no run settled
    "settlement_mismatch",  # ... of another amount than the run settled
    # a run's settlement no statement showed in time (db/recon.py `missing_at_bank`)
    "settlement_missing_at_bank",
    "missing_ours",
    "missing_provider",
    "amount_mismatch",
    "currency_mismatch",
    "fee_mismatch",
    "duplicate",
    "unknown_reference",
    "short_payment",
    "over_payment",
    "late_payment",
    "chargeback",
    "chargeback_reversal",
]

CASE_KINDS: frozenset[str] = frozenset(
    {
        "missing_ours",
        "missing_provider",
        "amount_mismatch",
        "currency_mismatch",
        "fee_mismatch",
        "duplicate",
        "unknown_reference",
        "short_payment",
        "over_payment",
        "late_payment",
        "chargeback",
        "chargeback_reversal",
        "settlement_unmatched",
        "settlement_mismatch",
        "settlement_missing_at_bank",
    }
)
# Outcomes whose money is matched with ours (the fee aside).
MATCHED_KINDS: frozenset[str] = frozenset({"matched", "fee_mismatch"})

RECORD_FOR_LINE: dict[LineKind, RecordKind | None] = {
    "payment": "deposit",
    "transfer_in": "deposit",
    "refund": "refund",
    "payout": "withdrawal",
    "transfer_out": "withdrawal",
    "chargeback": "chargeback",
    "chargeback_reversal": "chargeback_reversal",
    "settlement_in": None,
}
# `{provider}:{YYYY-MM-DD}`: how a bank line names the provider day a settlement pays.
_SETTLEMENT_REFERENCE = re.compile(r"^[A-Za-z0-9_.\-]+:\d{4}-\d{2}-\d{2}$")
STATEMENT_KINDS: frozenset[str] = frozenset({"transfer_in", "transfer_out", "settlement_in"})
# Signed effect of a line on what the provider owes the operator (before fees).
_SIGN: dict[LineKind, int] = {
    "payment": 1,
    "transfer_in": 1,
    "chargeback_reversal": 1,
    "refund": -1,
    "payout": -1,
    "transfer_out": -1,
    "chargeback": -1,
    "settlement_in": 0,
}


@dataclass(frozen=True, slots=True)
class OurRecord:
    """One payment of ours as reconciliation sees it.

    `posted_on` is the business day our ledger moved its money through the provider's clearing;
    None means it exists but moved no money (an expired deposit, a failed payout)."""

    reference: str
    kind: RecordKind
    amount_minor: int
    currency: str
    fee_minor: int = 0  # the fee we booked for it (Settings.provider_fee_bps at credit time)
    posted_on: date | None = None
    status: str | None = None
    player_id: str | None = None
    parent: str | None = None  # a refund's deposit


@dataclass(frozen=True, slots=True)
class SettledDay:
    """A provider day's current reconciliation run, as a bank statement's settlement line
    meets it: what the run settled to the operator's bank account."""

    provider: str
    business_date: date
    run_id: int
    net_settled_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Needs:
    """What a chunk names outside the day's records: the caller looks these up."""

    references: frozenset[str]
    payers: frozenset[str]  # iin:... / name:... keys (references.iin_key, name_key)
    refund_parents: frozenset[str] = frozenset()  # deposits whose refunds a line may name
    # settlement references (`{provider}:{day}`) of bank lines: the runs of those days
    settlements: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the store found for a chunk's `Needs`."""

    records: Mapping[str, OurRecord] = field(default_factory=dict)
    # payer key -> references of that player's bank-transfer deposits around the day
    payers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # deposit -> its refunds posted on any day (a refund line names the payment it gives back)
    refunds: Mapping[str, tuple[OurRecord, ...]] = field(default_factory=dict)
    # settlement reference -> the run that settled that provider day (none: not settled)
    settled: Mapping[str, SettledDay] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A line's (or an unmatched record's) verdict. `line_key` with kind and reference
    identifies the case across re-runs and corrected reports."""

    kind: OutcomeKind
    reference: str | None
    line_key: str
    amount_minor: int
    currency: str
    line_no: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_case(self) -> bool:
        return self.kind in CASE_KINDS


@dataclass
class Totals:
    count: int = 0
    amount_minor: int = 0


@dataclass
class Tally:
    """Counts and amounts per outcome, and the report's own figures."""

    outcomes: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    lines: int = 0
    fees_reported_minor: int = 0  # what the provider kept, per its lines
    lines_net_minor: int = 0  # what the lines say the provider owes (fees netted)
    statement_lines: int = 0
    provider_lines: int = 0

    def add(self, outcome: Outcome, *, lines: int = 1) -> None:
        totals = self.outcomes[outcome.kind]
        totals.count += lines
        totals.amount_minor += outcome.amount_minor

    def as_json(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"count": t.count, "amount_minor": t.amount_minor}
            for kind, t in sorted(self.outcomes.items())
        }

    @property
    def is_statement(self) -> bool:
        """A bank statement (transfers and settlements), not a provider's report."""
        return self.statement_lines > 0 and self.provider_lines == 0


@dataclass
class _Transfers:
    """Incoming transfers that name one deposit, judged together at the end."""

    record: OurRecord | None
    line_nos: list[int] = field(default_factory=list)
    total_minor: int = 0
    currencies: set[str] = field(default_factory=set)
    matched_by: str = "reference"


@dataclass
class _Settlements:
    """The bank lines settling one provider day, judged together at the end."""

    line_nos: list[int] = field(default_factory=list)
    total_minor: int = 0  # signed: a negative day is debited
    currencies: set[str] = field(default_factory=set)
    bank_ids: list[str] = field(default_factory=list)


class DayMatcher:
    """Reconciles one (provider, business day). Feed it chunks, then call `finish` once."""

    def __init__(
        self,
        *,
        provider: str,
        business_date: date,
        currency: str,
        ours: Mapping[tuple[RecordKind, str], OurRecord],
        matched_elsewhere: Iterable[str] = (),
    ) -> None:
        self.provider = provider
        self.business_date = business_date
        self.currency = currency
        self._ours = ours
        # Records whose line is in another day's report (cut-off): not missing at the provider.
        self._elsewhere = frozenset(matched_elsewhere)
        self._matched: set[tuple[RecordKind, str]] = set()
        self._seen: dict[tuple[str, str], int] = defaultdict(int)
        self._refunds_by_deposit: dict[str, list[OurRecord]] = defaultdict(list)
        for (kind, _), record in ours.items():
            if kind == "refund" and record.parent:
                self._refunds_by_deposit[record.parent].append(record)
        self._transfers: dict[str, _Transfers] = {}
        self._claimed_by_payer: set[str] = set()
        self._settlements: dict[str, _Settlements] = {}
        self._settled: dict[str, SettledDay] = {}
        # A statement's settlements, one per provider day, as `finish` judged them: what the
        # run records as seen at the bank (db/recon.py `bank_sightings`).
        self.settlements_seen: dict[str, Outcome] = {}
        self.tally = Tally()
        # References of another day's records that this report's lines matched.
        self.matched_other_day: set[str] = set()

    # -- per chunk ---------------------------------------------------------------------------

    def needs(self, lines: Sequence[ReportLine]) -> Needs:
        references: set[str] = set()
        payers: set[str] = set()
        parents: set[str] = set()
        settlements: set[str] = set()
        for line in lines:
            if _settles(line):
                if line.reference:
                    settlements.add(line.reference)
                continue
            record_kind = RECORD_FOR_LINE.get(line.kind)
            if record_kind is None:
                continue
            if line.kind == "transfer_in":
                named = self._named(line)
                references.update(r for r in named if ("deposit", r) not in self._ours)
                if not any(("deposit", r) in self._ours for r in named):
                    payers.update(_payer_keys(line))
                continue
            reference = line.reference
            if not reference or (record_kind, reference) in self._ours:
                continue
            if record_kind == "refund":
                if not self._refunds_by_deposit.get(reference):
                    parents.add(reference)
                continue
            references.add(reference)
        return Needs(
            frozenset(references), frozenset(payers), frozenset(parents), frozenset(settlements)
        )

    def feed(self, lines: Sequence[ReportLine], lookup: Lookup | None = None) -> list[Outcome]:
        """Classify a chunk; returns its outcomes (the matched ones too, for counting)."""
        found = lookup or Lookup()
        outcomes: list[Outcome] = []
        for line in lines:
            self.tally.lines += 1
            self.tally.fees_reported_minor += line.fee_minor
            if line.kind in STATEMENT_KINDS:
                self.tally.statement_lines += 1
            else:
                self.tally.provider_lines += 1
            if _settles(line):  # settlements move no clearing: judged together at the end
                self._settlement(line, found)
                outcome = None
            else:
                outcome = self._classify(line, found)
                self.tally.lines_net_minor += _SIGN[line.kind] * line.amount_minor
            self.tally.lines_net_minor -= line.fee_minor
            if outcome is not None:
                self.tally.add(outcome)
                outcomes.append(outcome)
        return outcomes

    # -- the end of the report ---------------------------------------------------------------

    def finish(self) -> list[Outcome]:
        """Judge the summed transfers, then list what we moved that the report lacks."""
        outcomes = [o for ref, group in self._transfers.items() for o in self._judge(ref, group)]
        outcomes += [self._judge_settlement(ref, g) for ref, g in self._settlements.items()]
        for (kind, reference), record in self._ours.items():
            if (kind, reference) in self._matched or reference in self._elsewhere:
                continue
            outcomes.append(
                Outcome(
                    kind="missing_provider",
                    reference=reference,
                    line_key=f"ours:{kind}",
                    amount_minor=record.amount_minor,
                    currency=record.currency,
                    details={"our_kind": kind, "posted_on": _day(record.posted_on)},
                )
            )
            self.tally.add(outcomes[-1])
        return outcomes

    # -- classification ----------------------------------------------------------------------

    def _named(self, line: ReportLine) -> list[str]:
        if line.reference:
            named = [line.reference]
            named += [r for r in purpose_references(line.purpose) if r != line.reference]
            return named
        return purpose_references(line.purpose)

    def _classify(self, line: ReportLine, found: Lookup) -> Outcome | None:
        record_kind = RECORD_FOR_LINE[line.kind]
        assert record_kind is not None  # settlements are judged apart (`_settlement`)
        if line.kind == "transfer_in":
            return self._transfer_in(line, found)
        reference = line.reference
        if not reference:
            return self._line_outcome(
                "unknown_reference", line, None, "no_reference", {"provider_id": line.provider_id}
            )
        occurrence = self._seen[(line.kind, reference)]
        self._seen[(line.kind, reference)] += 1
        key = f"{line.kind}#{occurrence}"
        if record_kind == "refund":
            return self._refund(line, reference, occurrence, key, found)
        if occurrence:
            return self._line_outcome("duplicate", line, reference, key, {"occurrence": occurrence})
        record = self._ours.get((record_kind, reference))
        in_day = record is not None
        if record is None:
            other = found.records.get(reference)
            if other is not None and other.kind == record_kind and other.posted_on is not None:
                record = other
            elif record_kind in ("chargeback", "chargeback_reversal"):
                return self._line_outcome(
                    record_kind, line, reference, key, _party(found.records.get(reference))
                )
            else:
                cause = "unknown" if other is None else _cause(other, record_kind)
                details: dict[str, Any] = {"cause": cause}
                if other is not None:
                    details |= {"our_kind": other.kind, "status": other.status}
                    details |= _party(other)
                return self._line_outcome("missing_ours", line, reference, key, details)
        if in_day:
            self._matched.add((record.kind, record.reference))
        else:
            self.matched_other_day.add(record.reference)
        return self._compare(line, record, key, in_day)

    def _refund(
        self, line: ReportLine, reference: str, occurrence: int, key: str, found: Lookup
    ) -> Outcome:
        """A refund line names the refund, or (most providers) the payment it gives back: it
        takes a refund of ours not taken yet, of this day first, else of another day."""
        in_day = True
        record = self._ours.get(("refund", reference))
        if record is not None and ("refund", reference) in self._matched:
            record = None
        if record is None:
            record = _pick(self._refunds_by_deposit.get(reference, []), line, self._taken)
        if record is None:
            in_day = False
            posted = [r for r in found.refunds.get(reference, ()) if r.posted_on is not None]
            record = _pick(posted, line, self._taken)
        if record is None:
            if occurrence:
                return self._line_outcome(
                    "duplicate", line, reference, key, {"occurrence": occurrence}
                )
            other = found.records.get(reference)
            details: dict[str, Any] = {"cause": "unknown" if other is None else "no_refund"}
            return self._line_outcome("missing_ours", line, reference, key, details | _party(other))
        if in_day:
            self._matched.add(("refund", record.reference))
        else:
            self.matched_other_day.add(record.reference)
        return self._compare(line, record, key, in_day)

    def _taken(self, record: OurRecord) -> bool:
        return ("refund", record.reference) in self._matched or (
            record.reference in self.matched_other_day
        )

    def _compare(self, line: ReportLine, record: OurRecord, key: str, in_day: bool) -> Outcome:
        details: dict[str, Any] = {}
        if not in_day:
            details["posted_on"] = _day(record.posted_on)
        if record.reference != line.reference:
            details["our_reference"] = record.reference
        if line.currency != record.currency:
            details |= {"ours": record.amount_minor, "our_currency": record.currency}
            return self._line_outcome("currency_mismatch", line, line.reference, key, details)
        if line.amount_minor != record.amount_minor:
            details |= {
                "ours": record.amount_minor,
                "theirs": line.amount_minor,
                "delta": line.amount_minor - record.amount_minor,
            }
            return self._line_outcome("amount_mismatch", line, line.reference, key, details)
        if line.fee_minor != record.fee_minor:
            details |= {
                "expected_fee": record.fee_minor,
                "fee": line.fee_minor,
                "delta": line.fee_minor - record.fee_minor,
            }
            return self._line_outcome("fee_mismatch", line, line.reference, key, details)
        return self._line_outcome("matched", line, line.reference, key, details)

    def _line_outcome(
        self,
        kind: OutcomeKind,
        line: ReportLine,
        reference: str | None,
        key: str,
        details: Mapping[str, Any],
    ) -> Outcome:
        if reference is None and key == "no_reference":
            key = line.provider_id or f"{line.kind}:{line.line_no}"
        return Outcome(
            kind=kind,
            reference=reference,
            line_key=key,
            amount_minor=line.amount_minor,
            currency=line.currency,
            line_no=line.line_no,
            details={"line_kind": line.kind, "provider_id": line.provider_id, **details},
        )

    # -- bank statements ---------------------------------------------------------------------

    def _settlement(self, line: ReportLine, found: Lookup) -> None:
        """A provider's settlement line: summed with the others of its provider day."""
        reference = line.reference or f"settlement:{line.line_no}"
        group = self._settlements.setdefault(reference, _Settlements())
        group.line_nos.append(line.line_no)
        group.total_minor += (
            line.amount_minor if line.kind == "settlement_in" else -line.amount_minor
        )
        group.currencies.add(line.currency)
        if line.provider_id:
            group.bank_ids.append(line.provider_id)
        settled = found.settled.get(reference)
        if settled is not None:
            self._settled[reference] = settled

    def _judge_settlement(self, reference: str, group: _Settlements) -> Outcome:
        """What the bank received for a provider day against what that day's run settled."""
        settled = self._settled.get(reference)
        currency = next(iter(group.currencies)) if len(group.currencies) == 1 else None
        details: dict[str, Any] = {
            "line_kind": "settlement_in" if group.total_minor >= 0 else "transfer_out",
            "line_nos": group.line_nos,
            "bank_ids": group.bank_ids,
            "received": group.total_minor,
        }
        kind: OutcomeKind
        if settled is None:
            kind = "settlement_unmatched"
            details["cause"] = "no reconciliation run settled this provider day"
            provider, _, day = reference.rpartition(":")
            if _SETTLEMENT_REFERENCE.match(reference):
                details |= {"provider": provider, "business_date": day}
        else:
            kind, found = _against_run(group.total_minor, group.currencies, settled)
            details |= found
        outcome = Outcome(
            kind=kind,
            reference=reference,
            line_key="settlement",
            amount_minor=group.total_minor,
            currency=currency or sorted(group.currencies)[0],
            line_no=group.line_nos[0],
            details=details,
        )
        self.tally.add(outcome, lines=len(group.line_nos))
        self.settlements_seen[reference] = outcome
        return outcome

    def _transfer_in(self, line: ReportLine, found: Lookup) -> Outcome | None:
        named = self._named(line)
        reference, record = None, None
        for candidate in named:
            record = self._ours.get(("deposit", candidate)) or _deposit(found, candidate)
            if record is not None:
                reference = candidate
                break
        matched_by = "reference"
        if record is None:
            reference, record, matched_by = self._by_payer(line, found)
        if record is None or reference is None:
            return Outcome(
                kind="unknown_reference",
                reference=named[0] if named else None,
                line_key=_transfer_identity(line),
                amount_minor=line.amount_minor,
                currency=line.currency,
                line_no=line.line_no,
                details={
                    "line_kind": line.kind,
                    "purpose": line.purpose,
                    "payer_name": line.payer_name,
                    "payer_iin": line.payer_iin,
                    "payer_iban": line.payer_iban,
                    "named": named,
                    "candidates": _candidates(line, found),
                },
            )
        group = self._transfers.setdefault(reference, _Transfers(record=record))
        group.line_nos.append(line.line_no)
        group.total_minor += line.amount_minor
        group.currencies.add(line.currency)
        if matched_by != "reference":
            group.matched_by = matched_by
        if ("deposit", reference) in self._ours:
            self._matched.add(("deposit", reference))
        elif record.posted_on is not None:
            self.matched_other_day.add(reference)
        return None  # judged with the other transfers for this deposit in `finish`

    def _by_payer(
        self, line: ReportLine, found: Lookup
    ) -> tuple[str | None, OurRecord | None, str]:
        """The one deposit of the payer (by IIN, else by name) with exactly this amount that
        no other transfer has claimed; none or several: not a match."""
        for how, key in (
            ("payer_iin", iin_key(line.payer_iin)),
            ("payer_name", name_key(line.payer_name)),
        ):
            if key is None:
                continue
            fits = []
            for reference in found.payers.get(key, ()):
                record = self._ours.get(("deposit", reference)) or _deposit(found, reference)
                if (
                    record is not None
                    and reference not in self._claimed_by_payer
                    and reference not in self._transfers
                    and record.amount_minor == line.amount_minor
                    and record.currency == line.currency
                ):
                    fits.append((reference, record))
            if len(fits) == 1:
                self._claimed_by_payer.add(fits[0][0])
                return fits[0][0], fits[0][1], how
        return None, None, "none"

    def _judge(self, reference: str, group: _Transfers) -> list[Outcome]:
        record = group.record
        assert record is not None
        base: dict[str, Any] = {
            "line_kind": "transfer_in",
            "line_nos": group.line_nos,
            "received": group.total_minor,
            "matched_by": group.matched_by,
            "status": record.status,
            **_party(record),
        }
        if record.posted_on is not None and ("deposit", reference) not in self._ours:
            base["posted_on"] = _day(record.posted_on)
        currency = next(iter(group.currencies)) if len(group.currencies) == 1 else None
        kind: OutcomeKind
        if currency != record.currency:
            kind = "currency_mismatch"
            base |= {"currencies": sorted(group.currencies), "our_currency": record.currency}
        elif record.posted_on is not None:  # credited: the transfers must add up to the credit
            base["credited"] = record.amount_minor
            exact = group.total_minor == record.amount_minor
            kind = "matched" if exact else _short_or_over(group, record)
        else:  # never credited: the money came after we gave up, or of another amount
            base["ordered"] = record.amount_minor
            if group.total_minor == record.amount_minor:
                kind = "late_payment"
            else:
                kind = _short_or_over(group, record)
                base["late"] = True
        outcome = Outcome(
            kind=kind,
            reference=reference,
            line_key="transfer_in",
            amount_minor=group.total_minor,
            currency=currency or sorted(group.currencies)[0],
            line_no=group.line_nos[0],
            details=base,
        )
        self.tally.add(outcome, lines=len(group.line_nos))
        return [outcome]


def _against_run(
    received_minor: int, currencies: set[str], settled: SettledDay
) -> tuple[OutcomeKind, dict[str, Any]]:
    """A provider day's money on the bank statement against what its run settled."""
    details: dict[str, Any] = {
        "provider": settled.provider,
        "business_date": settled.business_date.isoformat(),
        "run_id": settled.run_id,
        "settled": settled.net_settled_minor,
        "delta": received_minor - settled.net_settled_minor,
    }
    same_currency = currencies == {settled.currency}
    if not same_currency:
        details |= {"currencies": sorted(currencies), "run_currency": settled.currency}
    same = same_currency and received_minor == settled.net_settled_minor
    return ("settlement" if same else "settlement_mismatch"), details


@dataclass(frozen=True, slots=True)
class BankSighting:
    """A provider day's settlement as one bank statement's run saw it (the run's
    `details.settlements`, written from `DayMatcher.settlements_seen`)."""

    statement_run_id: int
    bank: str  # the bank connector whose statement it is
    statement_date: date
    reference: str  # `{provider}:{day}`
    received_minor: int  # signed: a negative day was debited
    currencies: frozenset[str]
    details: Mapping[str, Any]  # the statement's judgement of it (line numbers, bank ids)


def recheck_settlement(sighting: BankSighting, settled: SettledDay) -> Outcome:
    """A settlement a statement showed, judged again against the run that settles its
    provider day now (a corrected report superseded the one the statement was judged
    against): `settlement` when they agree, else a `settlement_mismatch` of that statement, the
    case the statement itself would have opened."""
    kind, found = _against_run(sighting.received_minor, set(sighting.currencies), settled)
    details: dict[str, Any] = {
        key: sighting.details[key]
        for key in ("line_kind", "line_nos", "bank_ids")
        if key in sighting.details
    }
    details |= found | {"received": sighting.received_minor, "rechecked": True}
    line_nos = details.get("line_nos")
    first = line_nos[0] if isinstance(line_nos, list) and line_nos else None
    return Outcome(
        kind=kind,
        reference=sighting.reference,
        line_key="settlement",
        amount_minor=sighting.received_minor,
        currency=min(sighting.currencies) if sighting.currencies else settled.currency,
        line_no=first if isinstance(first, int) else None,
        details=details,
    )


def _settles(line: ReportLine) -> bool:
    """A provider's settlement reaching the operator's account, or a negative day taken from
    it (an outgoing transfer under a settlement reference)."""
    if line.kind == "settlement_in":
        return True
    return (
        line.kind == "transfer_out"
        and line.reference is not None
        and _SETTLEMENT_REFERENCE.match(line.reference) is not None
    )


def _short_or_over(group: _Transfers, record: OurRecord) -> OutcomeKind:
    return "short_payment" if group.total_minor < record.amount_minor else "over_payment"


def _payer_keys(line: ReportLine) -> list[str]:
    return [k for k in (iin_key(line.payer_iin), name_key(line.payer_name)) if k]


def _pick(
    records: Iterable[OurRecord], line: ReportLine, taken: Callable[[OurRecord], bool]
) -> OurRecord | None:
    """The refund a line names by its payment: one of the line's amount not taken yet, else
    the only one not taken (then compared: another amount is a mismatch, not a stranger)."""
    free = [r for r in records if not taken(r)]
    exact = [r for r in free if r.amount_minor == line.amount_minor]
    if exact:
        return exact[0]
    return free[0] if len(free) == 1 else None


def _deposit(found: Lookup, reference: str) -> OurRecord | None:
    record = found.records.get(reference)
    return record if record is not None and record.kind == "deposit" else None


def _candidates(line: ReportLine, found: Lookup) -> list[str]:
    keys = _payer_keys(line)
    players = {
        found.records[r].player_id
        for k in keys
        for r in found.payers.get(k, ())
        if r in found.records and found.records[r].player_id
    }
    return sorted(p for p in players if p)


def _transfer_identity(line: ReportLine) -> str:
    """An unknown transfer's identity across re-runs: the bank's id for it, else its figures."""
    if line.provider_id:
        return f"transfer:{line.provider_id}"
    payer = line.payer_iban or line.payer_iin or line.payer_name or ""
    return f"transfer:{line.occurred_at.isoformat()}:{line.amount_minor}:{payer}"[:200]


def _cause(record: OurRecord, wanted: RecordKind) -> str:
    if record.kind != wanted:
        return "other_kind"
    return "late" if record.kind == "deposit" else "not_final"


def _party(record: OurRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    party: dict[str, Any] = {}
    if record.player_id:
        party["player_id"] = record.player_id
    if record.kind == "deposit":
        party["deposit_id"] = record.reference
    return party


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None
