"""Reconciliation activities: get the report, match it with our records, settle the day.

Each is safe to run again. A report is stored once per (provider, day, content hash); its run
is created once per report and matched in one database transaction (a retry starts the
matching afresh; cases are upserts on their identity); the settlement is keyed by provider, day
and report hash, and a run already settled answers with what it settled.

Reports come from a `ReportSource` (the providers' report clients, `providers.reports`) or were
uploaded through the API and stored before the workflow started (`report_id`).
"""

import functools
import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import Settings
from db import ledger as ledger_store
from db import recon as store
from db import recon_cases as case_store
from domain.ledger import reversal
from domain.recon.canonical import ReportInvalid
from domain.recon.lines import ReportHeader, ReportLine
from domain.recon.match import (
    CASE_KINDS,
    MATCHED_KINDS,
    DayMatcher,
    Outcome,
    SettledDay,
    recheck_settlement,
)
from domain.recon.postings import day_settlement
from providers.connectors import modules_by_type
from providers.reports import (
    ReportFormatError,
    StatementFetching,
    format_of,
    report_client,
    settlement_accounts,
)

Lines = Iterable[ReportLine] | AsyncIterable[ReportLine]
Fetched = tuple[ReportHeader, Lines]
# (provider, business day) -> the report's header and its lines, streamed
ReportSource = Callable[[str, date], Awaitable[Fetched]]


class NoReportSource(LookupError):
    """The provider delivers no reports we can fetch (upload them instead)."""


# -- models ----------------------------------------------------------------------------------


class LoadReportInput(BaseModel):
    provider: str
    business_date: date
    report_id: int | None = None  # an uploaded report, already stored
    received_by: str | None = None


class LoadReportResult(BaseModel):
    report_id: int
    report_hash: str
    line_count: int
    created: bool


class MatchReportInput(BaseModel):
    report_id: int
    workflow_id: str | None = None
    requested_by: str | None = None


class OutcomeTotals(BaseModel):
    count: int
    amount_minor: int


class MatchReportResult(BaseModel):
    run_id: int
    status: str  # matched | completed | superseded (the last two: done before)
    already: bool  # this report was matched by an earlier run
    outcomes: dict[str, OutcomeTotals]
    cases_open: int


class SettleRunInput(BaseModel):
    run_id: int


class SettleRunResult(BaseModel):
    run_id: int
    status: Literal["completed", "superseded"]
    settlement_key: str | None
    settlement_transaction_id: int | None
    clearing_minor: int
    settled_minor: int
    fee_delta_minor: int
    difference_minor: int
    superseded_run_ids: list[int]
    # Settlement cases the run's checks across days opened (or opened again): provider days
    # no statement showed in time (`settlement_missing_at_bank`), a statement's settlement
    # that the provider's corrected run no longer agrees with (`settlement_mismatch`).
    settlement_cases: list[int] = []


class ChargeChargebacksInput(BaseModel):
    run_id: int


class ChargeChargebacksResult(BaseModel):
    charged_case_ids: list[int]  # chargeback cases resolved now by charging their player


# -- the sources -----------------------------------------------------------------------------


def provider_report_source(settings: Settings, http: httpx.AsyncClient) -> ReportSource:
    """Reports over each provider's own API (`providers.reports.report_client`): a provider's
    daily report, or the bank's camt.053 statement for the bank."""

    async def fetch(provider: str, business_date: date) -> Fetched:
        try:
            client = report_client(settings, http, provider)
        except (ValueError, KeyError) as exc:
            raise NoReportSource(str(exc)) from exc
        if isinstance(client, StatementFetching):
            return await client.fetch_statement(
                business_date, settlement_accounts=settlement_accounts(settings)
            )
        return await client.fetch_report(business_date)

    return fetch


def report_providers(settings: Settings) -> list[str]:
    """Providers whose reports can be fetched: enabled ones whose connector type has a report
    (or statement) client. The daily schedule runs for these unless configured otherwise."""
    names: list[str] = []
    for rule in settings.providers:
        if not rule.enabled or rule.name in names:
            continue
        try:
            format_of(settings.connector(rule.name).type)
        except ValueError:
            continue
        names.append(rule.name)
    return names


@functools.cache
def _statement_formats() -> frozenset[str]:
    """The bank statements' formats (`camt.053`, `kazbank.csv`): the report connectors'
    `STATEMENT_FORMATS`."""
    return frozenset(
        fmt
        for module in modules_by_type("providers.reports").values()
        for fmt in getattr(module, "STATEMENT_FORMATS", {})
    )


def _is_statement(tally_is_statement: bool, provider_lines: int, fmt: str) -> bool:
    """A bank statement's run: its lines are the bank's; a statement with no line at all (a
    quiet day on the account) by its format."""
    return tally_is_statement or (provider_lines == 0 and fmt in _statement_formats())


def _close(lines: Lines) -> None:
    """Release the report's spooled copy now, not when the iterator is collected."""
    close = getattr(lines, "close", None)
    if callable(close) and not inspect.iscoroutinefunction(close):
        close()


def _invalid(message: str, kind: str = "ReportInvalid") -> ApplicationError:
    return ApplicationError(message, non_retryable=True, type=kind)


_REPORT_ERRORS = (ReportInvalid, ReportFormatError)


def _heartbeat(*details: object) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


# -- the activities --------------------------------------------------------------------------


class ReconActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        source: ReportSource | None = None,
        window_days: int = 31,
        chunk_lines: int = 5_000,
        shards: int = 1,
        settlement_grace_days: int = 3,
    ) -> None:
        self._sessions = sessions
        self._source = source
        self._window = window_days
        self._chunk = chunk_lines
        self._shards = shards  # clearing shards a chargeback posts to (ledger_house_shards)
        # business days a provider's settlement may take to show on a bank statement
        self._grace = settlement_grace_days

    @activity.defn
    async def load_recon_report(self, inp: LoadReportInput) -> LoadReportResult:
        """The report of (provider, day): the uploaded one named, else fetched and stored
        (once per content hash). A report that cannot be read fails for good."""
        if inp.report_id is not None:
            async with self._sessions() as session:
                report = await store.get_report(session, report_id=inp.report_id)
            if report is None:
                raise _invalid(f"no report {inp.report_id}", "NotFound")
            self._check_identity(inp, report.provider, report.business_date)
            return LoadReportResult(
                report_id=report.id,
                report_hash=report.content_hash,
                line_count=report.line_count,
                created=False,
            )
        if self._source is None:
            raise _invalid(f"no report source for {inp.provider}", "NoReportSource")
        try:
            header, lines = await self._source(inp.provider, inp.business_date)
        except NoReportSource as exc:
            raise _invalid(str(exc), "NoReportSource") from exc
        except _REPORT_ERRORS as exc:
            raise _invalid(str(exc)) from exc
        try:
            self._check_identity(inp, header.provider, header.business_date)
            async with self._sessions.begin() as session:
                staged = await store.stage_report(
                    session,
                    header=header,
                    lines=lines,
                    source="fetched",
                    received_by=inp.received_by,
                )
        except _REPORT_ERRORS as exc:
            raise _invalid(str(exc)) from exc
        finally:
            _close(lines)
        return LoadReportResult(
            report_id=staged.report_id,
            report_hash=staged.content_hash,
            line_count=staged.line_count,
            created=staged.created,
        )

    @staticmethod
    def _check_identity(inp: LoadReportInput, provider: str, business_date: date) -> None:
        if (provider, business_date) != (inp.provider, inp.business_date):
            raise _invalid(
                f"the report is {provider}'s of {business_date}, not {inp.provider}'s of "
                f"{inp.business_date}",
                "ReportMismatch",
            )

    @activity.defn
    async def match_recon_report(self, inp: MatchReportInput) -> MatchReportResult:
        """Every line judged against the day's records, cases opened, counts kept: in one
        database transaction, so a retry starts clean and a run is never half matched."""
        async with self._sessions.begin() as session:
            report = await store.get_report(session, report_id=inp.report_id)
            if report is None:
                raise _invalid(f"no report {inp.report_id}", "NotFound")
            run, _ = await store.open_run(
                session, report=report, workflow_id=inp.workflow_id, requested_by=inp.requested_by
            )
            if run.status != "running":
                return MatchReportResult(
                    run_id=run.id,
                    status=run.status,
                    already=True,
                    outcomes={k: OutcomeTotals(**v) for k, v in run.outcomes.items()},
                    cases_open=await store.open_cases(session, run_id=run.id),
                )
            matcher = await self._match(session, report, run.id)
            tally = matcher.tally
            matched = [t for k, t in tally.outcomes.items() if k in MATCHED_KINDS]
            unmatched = [t for k, t in tally.outcomes.items() if k in CASE_KINDS - MATCHED_KINDS]
            settlements = [
                tally.outcomes[k]
                for k in ("settlement", "settlement_unmatched", "settlement_mismatch")
                if k in tally.outcomes
            ]
            details: dict[str, Any] = {
                "statement": _is_statement(tally.is_statement, tally.provider_lines, report.format),
                "lines_net_minor": tally.lines_net_minor,
                "header_net_minor": report.net_settled_minor,
                "matched_other_day": sorted(matcher.matched_other_day),
                "settlements_seen_minor": sum(t.amount_minor for t in settlements),
            }
            if matcher.settlements_seen:  # the provider days this statement shows paid
                details["settlements"] = store.settlements_seen_json(matcher.settlements_seen)
            if not details["statement"] and tally.lines_net_minor != report.net_settled_minor:
                # The provider pays what it says it pays: the gap ends in the difference account.
                details["net_check"] = "the header's net is not the lines' sum"
            cases_open = await store.record_matching(
                session,
                run_id=run.id,
                outcomes=tally.as_json(),
                matched=(sum(t.count for t in matched), sum(t.amount_minor for t in matched)),
                unmatched=(
                    sum(t.count for t in unmatched),
                    sum(t.amount_minor for t in unmatched),
                ),
                fees_reported_minor=tally.fees_reported_minor,
                details=details,
            )
        return MatchReportResult(
            run_id=run.id,
            status="matched",
            already=False,
            outcomes={k: OutcomeTotals(**v) for k, v in tally.as_json().items()},
            cases_open=cases_open,
        )

    async def _match(
        self, session: AsyncSession, report: store.ReportRow, run_id: int
    ) -> DayMatcher:
        book = await store.day_book(
            session,
            provider=report.provider,
            currency=report.currency,
            business_date=report.business_date,
        )
        ours = sorted({reference for _, reference in book.records})
        elsewhere = await store.accounted_elsewhere(
            session,
            provider=report.provider,
            business_date=report.business_date,
            references=ours,
            window_days=self._window,
        )
        matcher = DayMatcher(
            provider=report.provider,
            business_date=report.business_date,
            currency=report.currency,
            ours=book.records,
            matched_elsewhere=elsewhere,
        )
        after = -1
        while True:
            chunk = await store.report_lines(
                session, report_id=report.id, after=after, limit=self._chunk
            )
            if not chunk:
                break
            after = chunk[-1].line_no
            needs = matcher.needs(chunk)
            found = None
            if needs.references or needs.payers or needs.refund_parents or needs.settlements:
                found = await store.lookup(
                    session,
                    provider=report.provider,
                    business_date=report.business_date,
                    needs=needs,
                    window_days=self._window,
                )
            await self._cases(session, report, run_id, matcher.feed(chunk, found))
            _heartbeat(after)
        await self._cases(session, report, run_id, matcher.finish())
        # Cut-off: this day's lines explain another day's "missing at the provider", and this
        # day's credits settle another day's "money came, nothing credited".
        await store.close_cases_matched_elsewhere(
            session,
            provider=report.provider,
            business_date=report.business_date,
            references=sorted(matcher.matched_other_day),
            kinds=["missing_provider"],
            resolution="matched_other_day",
        )
        await store.close_cases_matched_elsewhere(
            session,
            provider=report.provider,
            business_date=report.business_date,
            references=sorted(elsewhere),
            kinds=["missing_ours", "late_payment"],
            resolution="credited_later",
        )
        return matcher

    @staticmethod
    async def _cases(
        session: AsyncSession, report: store.ReportRow, run_id: int, outcomes: list[Outcome]
    ) -> None:
        await store.upsert_cases(
            session,
            run_id=run_id,
            provider=report.provider,
            business_date=report.business_date,
            outcomes=outcomes,
        )

    @activity.defn
    async def settle_recon_run(self, inp: SettleRunInput) -> SettleRunResult:
        """Supersede the day's earlier runs (their settlement reversed), then settle the day:
        its clearing swept to the operator's bank account, fee expense and the difference
        account, in one transaction with the run's figures."""

        async def work(session: AsyncSession) -> SettleRunResult:
            return await self._settle(session, inp.run_id)

        try:
            return await ledger_store.with_retry(self._sessions, work)
        except ledger_store.LedgerError as exc:
            raise _invalid(str(exc), type(exc).__name__) from exc

    async def _settle(self, session: AsyncSession, run_id: int) -> SettleRunResult:
        run = await store.get_run(session, run_id=run_id, lock=True)
        if run is None:
            raise _invalid(f"no run {run_id}", "NotFound")
        if run.status in ("completed", "superseded"):
            return SettleRunResult(
                run_id=run.id,
                status="completed" if run.status == "completed" else "superseded",
                settlement_key=run.settlement_key,
                settlement_transaction_id=run.settlement_transaction_id,
                clearing_minor=run.clearing_minor,
                settled_minor=run.net_settled_minor,
                fee_delta_minor=run.fee_delta_minor,
                difference_minor=run.difference_minor,
                superseded_run_ids=[],
            )
        if run.status != "matched":
            raise _invalid(f"run {run_id} is {run.status}: match it first", "InvalidState")
        superseded = []
        for old in await store.runs_to_supersede(
            session, provider=run.provider, business_date=run.business_date, new_run_id=run.id
        ):
            reversal_key, reversal_id = await self._reverse(session, old)
            await store.mark_superseded(
                session,
                old=old,
                new_run_id=run.id,
                new_report_hash=run.report_hash,
                reversal_key=reversal_key,
                reversal_transaction_id=reversal_id,
            )
            superseded.append(old.id)
        book = await store.day_balances(
            session, provider=run.provider, currency=run.currency, business_date=run.business_date
        )
        statement = bool(run.details.get("statement"))
        settled = int(run.details.get("lines_net_minor", 0)) if statement else run.net_settled_minor
        spec, figures = day_settlement(
            provider=run.provider,
            business_date=run.business_date,
            report_hash=run.report_hash,
            currency=run.currency,
            clearing_by_shard=book.clearing_by_shard,
            settled_minor=settled,
            fee_delta_minor=run.fees_reported_minor - book.fees_expected_minor,
        )
        transaction_id = None
        if spec is not None:
            posted = (await ledger_store.post_transactions(session, specs=[spec]))[0]
            transaction_id = posted.id
            await store.date_posting(
                session,
                ledger_transaction_id=posted.id,
                ledger_key=spec.key,
                run_id=run.id,
                provider=run.provider,
                business_date=run.business_date,
                purpose="settlement",
            )
        await store.record_settlement(
            session,
            run_id=run.id,
            fees_expected_minor=book.fees_expected_minor,
            net_settled_minor=settled,
            clearing_minor=figures.clearing_minor,
            fee_delta_minor=figures.fee_delta_minor,
            difference_minor=figures.difference_minor,
            settlement_key=spec.key if spec else None,
            settlement_transaction_id=transaction_id,
            finished_at=datetime.now(UTC),
        )
        if statement:
            cases = await self._statement_checks(session, run)
        else:  # the bank's statement may have shown this day's settlement already
            await store.close_settlement_cases(
                session,
                provider=run.provider,
                business_date=run.business_date,
                settled_minor=settled,
                currency=run.currency,
            )
            cases = await self._provider_day_checks(session, run, settled, superseded)
        return SettleRunResult(
            run_id=run.id,
            status="completed",
            settlement_key=spec.key if spec else None,
            settlement_transaction_id=transaction_id,
            clearing_minor=figures.clearing_minor,
            settled_minor=figures.settled_minor,
            fee_delta_minor=figures.fee_delta_minor,
            difference_minor=figures.difference_minor,
            superseded_run_ids=superseded,
            settlement_cases=cases,
        )

    async def _statement_checks(self, session: AsyncSession, run: store.RunRow) -> list[int]:
        """A bank statement settled: the provider days it shows paid are no longer missing;
        those their runs settled that no statement showed by this statement's day, after the
        grace business days, are (one case per provider day)."""
        seen: dict[str, dict[str, Any]] = run.details.get("settlements") or {}
        shown = sorted(seen)
        await store.close_missing_at_bank(session, references=shown, statement_run_id=run.id)
        cases = await self._paid_after_write_off(session, run, seen)
        missing = await store.missing_at_bank(
            session, as_of=run.business_date, grace_days=self._grace
        )
        return cases + await store.open_missing_at_bank(
            session, missing=missing, checked_on=run.business_date
        )

    @staticmethod
    async def _paid_after_write_off(
        session: AsyncSession, run: store.RunRow, seen: dict[str, dict[str, Any]]
    ) -> list[int]:
        """Money the statement shows for a provider day whose missing-at-bank case was
        written off the operator's bank account: the bank holds more than the ledger says, a
        `settlement_mismatch` of this statement (its write-off puts the money back)."""
        cases = []
        written = await store.written_off_missing(session, references=sorted(seen))
        for reference, (case_id, written_off) in written.items():
            shown = seen[reference]
            received = int(shown.get("received", 0))
            judged = shown.get("settled", shown.get("received", 0))
            settled_now = int(judged) - written_off  # what the ledger's bank holds of the day
            outcome = Outcome(
                kind="settlement_mismatch",
                reference=reference,
                line_key="settlement",
                amount_minor=received,
                currency=min(shown.get("currencies") or [run.currency]),
                line_no=(shown.get("line_nos") or [None])[0],
                details={
                    **{k: shown[k] for k in ("line_kind", "line_nos", "bank_ids") if k in shown},
                    "received": received,
                    "settled": settled_now,
                    "delta": received - settled_now,
                    "written_off_case": case_id,
                    "cause": "the settlement came after its missing-at-bank case was written off",
                },
            )
            found = await store.open_auto_case(
                session,
                run_id=run.id,
                provider=run.provider,
                business_date=run.business_date,
                outcome=outcome,
                reopens=("superseded",),
            )
            if found is not None:
                cases.append(found)
        return cases

    async def _provider_day_checks(
        self, session: AsyncSession, run: store.RunRow, settled: int, superseded: list[int]
    ) -> list[int]:
        """A provider day settled (for the first time, or again from a corrected report): the
        statements that showed its money are judged again against what it settled now (the
        match of an earlier report becomes a `settlement_mismatch` when the corrected net
        differs). A day the bank's statements had found missing (its case closed just now
        with the run it superseded) is checked again as of the same statement: still missing
        with the corrected net, or no longer (nothing settled). A day settled for the first
        time waits for the next statement's check."""
        reference = f"{run.provider}:{run.business_date.isoformat()}"
        now_settled = SettledDay(
            provider=run.provider,
            business_date=run.business_date,
            run_id=run.id,
            net_settled_minor=settled,
            currency=run.currency,
        )
        cases: list[int] = []
        for sighting in await store.bank_sightings(session, references=[reference]):
            outcome = recheck_settlement(sighting, now_settled)
            if outcome.kind != "settlement_mismatch":
                continue  # agrees: close_settlement_cases closed what was open
            case_id = await store.open_auto_case(
                session,
                run_id=sighting.statement_run_id,
                provider=sighting.bank,
                business_date=sighting.statement_date,
                outcome=outcome,
                # the statement matched an earlier report, or a case of it was closed by a run
                # that agreed: the corrected run's figure opens it again
                reopens=("superseded", "settled_by_run"),
            )
            await store.close_unmatched_settlement(
                session,
                bank=sighting.bank,
                statement_date=sighting.statement_date,
                reference=reference,
            )
            if case_id is not None:
                cases.append(case_id)
        as_of = None
        if superseded:
            as_of = await store.missing_checked_on(
                session, provider=run.provider, business_date=run.business_date
            )
        if as_of is not None and settled != 0:
            missing = await store.missing_at_bank(
                session,
                as_of=as_of,
                grace_days=self._grace,
                provider=run.provider,
                business_date=run.business_date,
            )
            cases += await store.open_missing_at_bank(session, missing=missing, checked_on=as_of)
        return cases

    @activity.defn
    async def charge_reported_chargebacks(
        self, inp: ChargeChargebacksInput
    ) -> ChargeChargebacksResult:
        """After the run settled (the chargebacks' money is in the difference account), charge
        each chargeback the report showed to its player: the wallet as far as it covers, a
        receivable for the rest, the player flagged (db/recon_cases.py
        `charge_reported_chargebacks`). Once per report line: a chargeback is recorded once per
        provider's id and its case is resolved, so a retry or a re-run finds nothing left; what
        cannot be charged (a deposit never credited) stays open for an operator."""

        async def work(session: AsyncSession) -> list[int]:
            run = await store.get_run(session, run_id=inp.run_id)
            if run is None:
                raise _invalid(f"no run {inp.run_id}", "NotFound")
            if run.status != "completed":  # superseded: the later run's cases are charged
                return []
            return await case_store.charge_reported_chargebacks(
                session, run_id=run.id, shards=self._shards, now=datetime.now(UTC)
            )

        try:
            charged = await ledger_store.with_retry(self._sessions, work)
        except ledger_store.LedgerError as exc:
            raise _invalid(str(exc), type(exc).__name__) from exc
        return ChargeChargebacksResult(charged_case_ids=charged)

    @staticmethod
    async def _reverse(session: AsyncSession, old: store.RunRow) -> tuple[str | None, int | None]:
        """The earlier settlement undone by its mirror image, dated to the same day."""
        if old.settlement_key is None:
            return None, None
        original = await ledger_store.load_spec(session, key=old.settlement_key)
        if original is None:
            return None, None
        mirror = reversal(original)
        posted = (await ledger_store.post_transactions(session, specs=[mirror]))[0]
        await store.date_posting(
            session,
            ledger_transaction_id=posted.id,
            ledger_key=mirror.key,
            run_id=old.id,
            provider=old.provider,
            business_date=old.business_date,
            purpose="settlement_reversal",
        )
        return mirror.key, posted.id
