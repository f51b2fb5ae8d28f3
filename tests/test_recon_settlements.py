"""Reconciliation after the settlement (issue 16, points 4 and 6), through the worker's
ReconciliationWorkflow on the time-skipping server:

- chargebacks a provider's report shows are charged to their players by the run itself, once
  per report line (the same report again, a corrected report of the day: nothing twice), the
  wallet as far as it covers and a receivable for the rest; one that cannot be charged (a
  deposit never credited) stays a case for an operator;
- the providers' settlements on the operator's bank statement (the bank connector's camt.053
  and CSV) are checked against the providers' runs of the days they name: a settlement no run
  settled, or of another amount, is a case; the provider's run of that day, when it comes with
  the bank's figure, closes it;
- a provider day whose run settled a net that no statement shows within the grace business
  days is a `settlement_missing_at_bank` case, once per day, closed by the statement that shows
  it at last;
- a provider's corrected report judges again the settlement a statement showed: the match of
  the earlier report becomes a `settlement_mismatch` when the corrected net differs.

Our side is written straight to the database (tests/test_recon_engine.py's `Book`) under
provider names of this module's own, so each day's clearing holds only this module's money.
"""

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from config import Settings
from db import recon as recon_store
from db.recon_cases import get_case
from db.risk_flags import active_flags
from domain.ledger import (
    fee_for,
    operator_bank,
    player_receivable,
    player_wallet,
    recon_difference,
    recon_write_off,
)
from domain.recon.cases import CaseFacts, allowed_actions, held_minor
from domain.recon.days import BUSINESS_TZ, add_business_days
from domain.recon.match import DayMatcher, Lookup, SettledDay
from domain.roles import Role
from domain.routing import ProviderRule
from providers.reports import settlement_iban, settlement_purpose, settlement_reference
from simulator.payments import COLLECTION_IBAN
from simulator.reports.statement import Statement, StatementEntry, camt053, statement_csv
from tests.histories_helpers import keep
from tests.ledger_helpers import assert_invariants
from tests.test_recon_engine import (
    FEE_BPS,
    Book,
    Report,
    balance,
    cases_of,
    reconcile,
    reconciled,
    settled_through,
    today,
)
from workflows.reconciliation import (
    ReconciliationInput,
    ReconciliationWorkflow,
    recon_workflow_id,
)

CHARGEBACKS = "rs_chargebacks"
CARD = "rs_card"
WALLET = "rs_wallet"
BANKS = ("rs_bank_camt", "rs_bank_csv")
MISSING = "rs_missing"
CORRECTED = "rs_corrected"
PROVIDERS = (CHARGEBACKS, CARD, WALLET, *BANKS, MISSING, CORRECTED)


@pytest.fixture(scope="module")
def module_settings(settings: Settings) -> Settings:
    """The session's settings with this module's providers (disabled for routing)."""
    extra = tuple(ProviderRule(name, "card", enabled=False) for name in PROVIDERS)
    secrets = {name: SecretStr(f"recon-settlements-{name}") for name in PROVIDERS}
    return settings.model_copy(
        update={
            "providers": settings.providers + extra,
            "provider_secrets": {**settings.provider_secrets, **secrets},
            "webhook_secrets": {**settings.webhook_secrets, **secrets},
        }
    )


@pytest.fixture(scope="module")
async def module_app(module_settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    application = create_app(module_settings)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        yield application


@pytest.fixture
async def operator(
    module_app: FastAPI, api_keys: dict[Role, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=module_app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {api_keys[Role.OPERATOR]}"},
    ) as client:
        yield client


def _chargeback_line(report: Report, reference: str, amount: int) -> str:
    """A chargeback line under a provider's id of its own; returns that id."""
    report.add("chargeback", reference, amount)
    provider_id = f"cb-{uuid.uuid4().hex[:12]}"
    report.lines[-1] = dataclasses.replace(report.lines[-1], provider_id=provider_id)
    return provider_id


async def _chargebacks(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT provider_chargeback_id, deposit_id, amount_minor, wallet_minor, "
                "receivable_minor, source FROM chargebacks WHERE provider = :p ORDER BY id"
            ),
            {"p": CHARGEBACKS},
        )
        return [dict(row._mapping) for row in rows]


async def _explained(sessions: async_sessionmaker[AsyncSession], provider: str) -> None:
    """What the provider's difference account holds is exactly its open cases' money."""
    open_cases = [c for c in await cases_of(sessions, provider) if c["status"] == "open"]
    held = sum(
        held_minor(
            CaseFacts(
                id=c["id"],
                provider=provider,
                kind=c["kind"],
                reference=c["reference"],
                amount_minor=c["amount_minor"],
                currency=c["currency"],
                details=dict(c["details"]),
            )
        )
        for c in open_cases
    )
    assert await balance(sessions, recon_difference(provider, "KZT").code) == -held


# -- chargebacks from a report ---------------------------------------------------------------


async def test_reported_chargebacks_are_charged_once_per_report_line(
    operator: httpx.AsyncClient,
    module_settings: Settings,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    book = Book(sessions, CHARGEBACKS)
    spent = await book.deposit(100_000)
    player = await book.player_of(spent)
    cashed_out = await book.payout(100_000, player=player)  # the wallet is empty now
    never = await book.deposit(30_000, credited=False)
    late_line = await book.deposit(40_000)  # in the corrected report only

    first = Report(CHARGEBACKS).pay(spent, 100_000).add("payout", cashed_out, 100_000)
    charged_id = _chargeback_line(first, spent, 100_000)
    _chargeback_line(first, never, 30_000)
    result = await reconcile(operator, temporal_client, first)
    # The workflow's step 4 (patch `recon-charge-reported-chargebacks`), for the replay test.
    await keep(
        temporal_client,
        recon_workflow_id(CHARGEBACKS, first.day),
        "reconciliation_chargebacks_charged",
    )

    assert result.status == "completed"
    assert result.outcomes["chargeback"].count == 2
    cases = {(c["kind"], c["reference"]): c for c in await cases_of(sessions, CHARGEBACKS)}
    charged, uncharged = cases[("chargeback", spent)], cases[("chargeback", never)]
    assert result.chargebacks_charged == [charged["id"]]
    assert (charged["status"], charged["resolution"]) == ("resolved", "charge_player")
    # A deposit never credited: nothing to take back from anyone, an operator decides.
    assert uncharged["status"] == "open"
    # The empty wallet stays at zero (no overdraft); the player owes the whole chargeback.
    assert await balance(sessions, player_wallet(player, "KZT").code) == 0
    assert await balance(sessions, player_receivable(player, "KZT").code) == 100_000
    async with sessions() as session:
        assert [f.kind for f in await active_flags(session, player_id=player)] == ["chargeback"]
        case = await get_case(session, case_id=charged["id"])
    assert case is not None
    assert case.resolved_by == "reconciliation"
    assert case.details["resolution"]["chargeback_id"]
    (recorded,) = await _chargebacks(sessions)
    assert recorded == {
        "provider_chargeback_id": charged_id,
        "deposit_id": spent,
        "amount_minor": 100_000,
        "wallet_minor": 0,
        "receivable_minor": 100_000,
        "source": "report",
    }
    await _explained(sessions, CHARGEBACKS)

    # The same report reconciled again by the workflow (an operator's rerun): nothing moves.
    again = await temporal_client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(
            provider=CHARGEBACKS,
            business_date=first.day,
            report_id=(await _report_id(sessions, result.report_hash)),
            requested_by="test",
        ),
        id=recon_workflow_id(CHARGEBACKS, first.day),
        task_queue=module_settings.temporal_task_queue,
    )
    assert again.already_reconciled
    assert again.chargebacks_charged == []
    assert len(await _chargebacks(sessions)) == 1

    # A corrected report of the day (a payment the first one lacked) with the same chargeback
    # lines: it supersedes the first run; the chargeback stays charged once.
    corrected = Report(CHARGEBACKS)
    corrected.lines = [*first.lines]
    corrected.pay(late_line, 40_000)
    second = await reconcile(operator, temporal_client, corrected)
    assert second.superseded_run_ids == [result.run_id]
    assert second.chargebacks_charged == []
    assert await _chargebacks(sessions) == [recorded]
    assert await balance(sessions, player_receivable(player, "KZT").code) == 100_000
    cases = {(c["kind"], c["reference"]): c for c in await cases_of(sessions, CHARGEBACKS)}
    assert cases[("chargeback", spent)]["status"] == "resolved"
    assert cases[("chargeback", never)]["status"] == "open"
    assert cases[("missing_provider", late_line)]["resolution"] == "superseded"
    await _explained(sessions, CHARGEBACKS)
    assert await settled_through(sessions, corrected.day, CHARGEBACKS) == []
    await assert_invariants(sessions)


async def _report_id(sessions: async_sessionmaker[AsyncSession], content_hash: str) -> int:
    async with sessions() as session:
        found = await session.scalar(
            text("SELECT id FROM recon_reports WHERE provider = :p AND content_hash = :h"),
            {"p": CHARGEBACKS, "h": content_hash},
        )
    assert found is not None
    return int(found)


# -- the providers' settlements on the bank statement ----------------------------------------


def test_the_matcher_sums_a_provider_days_settlement_lines_before_judging() -> None:
    """Pure: a provider day paid in two transfers (in two chunks) is one settlement; a
    negative day debited under its settlement reference is judged like a credit; a reference
    that names no day, no run can have settled."""
    day = today()
    ok, negative = settlement_reference("p", day), settlement_reference("q", day)
    runs = {
        ok: SettledDay("p", day, 1, 300_000, "KZT"),
        negative: SettledDay("q", day, 2, -20_000, "KZT"),
    }
    statement = (
        Report("bank")
        .add("settlement_in", ok, 100_000)
        .add("transfer_out", negative, 20_000)
        .add("settlement_in", ok, 200_000)
        .add("settlement_in", "p", 5_000)  # the bank's purpose named no day
    )
    matcher = DayMatcher(provider="bank", business_date=day, currency="KZT", ours={})
    first, second = statement.lines[:2], statement.lines[2:]
    assert matcher.needs(first).settlements == {ok, negative}
    assert matcher.feed(first, Lookup(settled=runs)) == []
    assert matcher.needs(second).settlements == {ok, "p"}
    assert matcher.feed(second, Lookup(settled={ok: runs[ok]})) == []
    judged = {o.reference: o for o in matcher.finish()}
    assert {ref: o.kind for ref, o in judged.items()} == {
        ok: "settlement",
        negative: "settlement",
        "p": "settlement_unmatched",
    }
    assert judged[ok].details["line_nos"] == [1, 3]
    assert judged[negative].amount_minor == -20_000
    assert matcher.tally.lines_net_minor == 0  # settlements move no clearing
    assert matcher.tally.outcomes["settlement"].count == 3


# -- the providers' settlements on the bank statement, through the workflow ------------------


def _statement(day: date, settlements: list[tuple[str, date, int]]) -> Statement:
    """The operator's account on `day` as the bank writes it: each provider day's settlement
    credited from the provider's settlement account (a negative day debited)."""
    booked = datetime.combine(day, time(10), tzinfo=BUSINESS_TZ).astimezone(UTC)

    def entries() -> Iterator[StatementEntry]:
        for n, (provider, settled_day, amount) in enumerate(settlements, start=1):
            yield StatementEntry(
                booked_at=booked + timedelta(minutes=n),
                credit=amount >= 0,
                amount=abs(amount),
                currency="KZT",
                entry_id=f"KZB{uuid.uuid4().hex[:10].upper()}",
                purpose=settlement_purpose(provider, settled_day),
                end_to_end_id=settlement_reference(provider, settled_day),
                counterparty=f"{provider} LLP",
                counterparty_iban=settlement_iban(provider),
            )

    total = sum(amount for _, _, amount in settlements)
    return Statement(
        account=COLLECTION_IBAN,
        business_date=day,
        currency="KZT",
        opening=10_000_000,
        closing=10_000_000 + total,
        revision=1,
        issued_at=datetime.now(UTC),
        entries=entries(),
    )


async def _upload_statement(
    operator: httpx.AsyncClient, bank: str, day: date, fmt: str, body: bytes
) -> str:
    response = await operator.post(
        "/v1/recon/runs/upload",
        params={"provider": bank, "date": day.isoformat(), "format": fmt},
        content=body,
        headers={"Content-Type": "application/xml" if fmt == "camt.053" else "text/csv"},
    )
    assert response.status_code == 202, response.text
    workflow_id: str = response.json()["workflow_id"]
    return workflow_id


async def test_bank_settlements_are_checked_against_the_providers_runs(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = today()
    yesterday = day - timedelta(days=1)
    card, wallet = Book(sessions, CARD), Book(sessions, WALLET)
    card_report = Report(CARD)
    for amount in (100_000, 250_000):
        card_report.pay(await card.deposit(amount), amount)
    wallet_report = Report(WALLET).pay(await wallet.deposit(80_000), 80_000)
    card_run = await reconcile(operator, temporal_client, card_report)
    wallet_run = await reconcile(operator, temporal_client, wallet_report)
    assert card_run.settled_minor == 350_000 - fee_for(100_000, FEE_BPS) - fee_for(250_000, FEE_BPS)

    # The bank's statement of the day: the card provider's day as its run settled it, the
    # wallet's 500.00 short, and the card provider's yesterday, which no run has settled yet.
    settlements = [
        (CARD, day, card_run.settled_minor),
        (WALLET, day, wallet_run.settled_minor - 50_000),
        (CARD, yesterday, 12_345_00),
    ]
    writers = {"camt.053": camt053, "kazbank.csv": statement_csv}
    for bank, fmt in zip(BANKS, writers, strict=True):
        body = b"".join(writers[fmt](_statement(day, settlements)))
        result = await reconciled(
            temporal_client, await _upload_statement(operator, bank, day, fmt, body)
        )
        assert result.status == "completed", fmt
        counts = {kind: totals.count for kind, totals in result.outcomes.items()}
        assert counts == {"settlement": 1, "settlement_mismatch": 1, "settlement_unmatched": 1}
        assert result.settled_minor == 0  # settlements move no clearing of the bank's
        assert result.difference_minor == 0
        cases = {(c["kind"], c["reference"]): c for c in await cases_of(sessions, bank)}
        assert set(cases) == {
            ("settlement_mismatch", settlement_reference(WALLET, day)),
            ("settlement_unmatched", settlement_reference(CARD, yesterday)),
        }, fmt
        short = cases[("settlement_mismatch", settlement_reference(WALLET, day))]
        assert short["amount_minor"] == wallet_run.settled_minor - 50_000
        assert short["details"]["settled"] == wallet_run.settled_minor
        assert short["details"]["delta"] == -50_000
        assert short["details"]["run_id"] == wallet_run.run_id
        unmatched = cases[("settlement_unmatched", settlement_reference(CARD, yesterday))]
        assert (unmatched["details"]["provider"], unmatched["details"]["business_date"]) == (
            CARD,
            yesterday.isoformat(),
        )
        # Nothing of either waits in the difference account: an operator acknowledges them.
        facts = CaseFacts(
            id=short["id"],
            provider=bank,
            kind=short["kind"],
            reference=short["reference"],
            amount_minor=short["amount_minor"],
            currency="KZT",
            details=dict(short["details"]),
        )
        assert (held_minor(facts), allowed_actions(facts)) == (0, ("acknowledge", "write_off"))
        await _explained(sessions, bank)
        assert await settled_through(sessions, day, bank) == []

    listed = await operator.get(
        "/v1/recon/cases", params={"kind": "settlement_mismatch", "status": "open"}
    )
    assert listed.status_code == 200, listed.text
    assert {c["provider"] for c in listed.json()["data"]} >= set(BANKS)

    # The card provider's report of yesterday comes now, with the bank's figure: its run
    # closes the statements' cases of that day; the wallet's short day stays a case.
    card_yesterday = Report(CARD, yesterday).add(
        "payment", f"dep_{uuid.uuid4().hex[:24]}", 12_345_00
    )
    late = await reconcile(operator, temporal_client, card_yesterday)
    assert late.settled_minor == 12_345_00
    for bank in BANKS:
        cases = {(c["kind"], c["reference"]): c for c in await cases_of(sessions, bank)}
        closed = cases[("settlement_unmatched", settlement_reference(CARD, yesterday))]
        assert (closed["status"], closed["resolution"]) == ("resolved", "settled_by_run")
        still = cases[("settlement_mismatch", settlement_reference(WALLET, day))]
        assert still["status"] == "open"
    # The wallet provider will not pay the 500.00: written off the operator's bank account,
    # which its run booked at the full net (one statement's case); the other is acknowledged.
    bank_before = await balance(sessions, operator_bank("KZT").code)
    written_off_before = await balance(sessions, recon_write_off("KZT").code)
    resolved = {}
    for bank, action in zip(BANKS, ("write_off", "acknowledge"), strict=True):
        cases = {(c["kind"], c["reference"]): c for c in await cases_of(sessions, bank)}
        case_id = cases[("settlement_mismatch", settlement_reference(WALLET, day))]["id"]
        done = await operator.post(
            f"/v1/recon/cases/{case_id}/resolve", json={"action": action, "note": "short"}
        )
        assert done.status_code == 200, done.text
        resolved[action] = done.json()
    assert resolved["write_off"]["status"] == "resolved"
    assert resolved["acknowledge"]["status"] == "resolved"
    assert await balance(sessions, operator_bank("KZT").code) == bank_before - 50_000
    assert await balance(sessions, recon_write_off("KZT").code) == written_off_before + 50_000
    async with sessions() as session:
        settled = await recon_store.settled_days(
            session,
            references=[settlement_reference(CARD, yesterday), f"{WALLET}:not-a-day", "x:"],
        )
    assert list(settled) == [settlement_reference(CARD, yesterday)]
    assert settled[settlement_reference(CARD, yesterday)].run_id == late.run_id
    await assert_invariants(sessions)


# -- a provider's settlement the bank never showed -------------------------------------------


def test_business_days_skip_the_weekend_and_public_holidays() -> None:
    friday = date(2026, 11, 27)
    assert add_business_days(friday, 0) == friday
    assert add_business_days(friday, 1) == date(2026, 11, 30)  # Monday
    assert add_business_days(friday, 3) == date(2026, 12, 2)
    assert add_business_days(date(2026, 11, 28), 1) == date(2026, 12, 1)  # Saturday: Monday on
    assert add_business_days(date(2026, 11, 29), 0) == date(2026, 11, 30)
    # Kazakhstan's public holidays are days off too: Independence Day, 16 December 2026.
    assert add_business_days(date(2026, 12, 15), 1) == date(2026, 12, 17)
    assert add_business_days(date(2026, 12, 16), 0) == date(2026, 12, 17)


async def _statement_run(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    day: date,
    settlements: list[tuple[str, date, int]],
) -> Any:
    body = b"".join(camt053(_statement(day, settlements)))
    workflow_id = await _upload_statement(operator, BANKS[0], day, "camt.053", body)
    result = await reconciled(temporal_client, workflow_id)
    assert result.status == "completed"
    return result


def _facts(case: dict[str, Any]) -> CaseFacts:
    return CaseFacts(
        id=case["id"],
        provider=case.get("provider", ""),
        kind=case["kind"],
        reference=case["reference"],
        amount_minor=case["amount_minor"],
        currency=case["currency"],
        details=dict(case["details"]),
    )


async def test_a_settlement_no_statement_shows_in_time_becomes_a_case(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """Days of a provider settled by its runs (the report's settlement date is the day after):
    the bank's statements before the grace business days are over raise nothing; the first
    statement after them without the day's money raises one case per day, however many
    statements follow; a statement that shows it at last closes it; an operator may write
    off the one that never comes, out of the operator's bank account its run booked it to."""
    grace = settings.recon_settlement_grace_days
    late_day, shown_day, lost_day = (today() - timedelta(days=n) for n in (30, 29, 28))
    recent = today() - timedelta(days=1)
    runs, reports = {}, {}
    for day, amount in ((late_day, 500_000), (shown_day, 70_000), (lost_day, 20_000)):
        report = Report(MISSING, day).add("payment", f"dep_{uuid.uuid4().hex[:24]}", amount)
        reports[day] = report
        runs[day] = await reconcile(operator, temporal_client, report)
        assert runs[day].settled_minor == amount
    recent_report = Report(MISSING, recent).add("payment", f"dep_{uuid.uuid4().hex[:24]}", 9_00)
    await reconcile(operator, temporal_client, recent_report)
    due = add_business_days(late_day + timedelta(days=1), grace)

    async def missing() -> dict[date, dict[str, Any]]:
        return {
            date.fromisoformat(c["details"]["business_date"]): c
            for c in await cases_of(sessions, MISSING)
            if c["kind"] == "settlement_missing_at_bank"
        }

    # Within the grace days: the statement shows one day paid, the others may still come.
    await _statement_run(
        operator, temporal_client, due - timedelta(days=1), [(MISSING, shown_day, 70_000)]
    )
    assert await missing() == {}

    # The statement of the day the late day was due by, without it: a case of that day.
    lost_due = add_business_days(lost_day + timedelta(days=1), grace)
    statement_days = sorted({due, lost_due, lost_due + timedelta(days=1)})
    await _statement_run(operator, temporal_client, statement_days[0], [])
    first = await missing()
    assert late_day in first
    case = first[late_day]
    assert (case["status"], case["amount_minor"], case["currency"]) == ("open", 500_000, "KZT")
    assert case["run_id"] == runs[late_day].run_id
    assert case["reference"] == settlement_reference(MISSING, late_day)
    assert case["details"]["delta"] == -500_000
    assert case["details"]["expected_on"] == (late_day + timedelta(days=1)).isoformat()
    assert case["details"]["due_by"] == due.isoformat()
    # Nothing of it waits in the difference account: the gap is in the operator's bank account.
    facts = _facts(case)
    assert (held_minor(facts), allowed_actions(facts)) == (0, ("acknowledge", "write_off"))
    refused = await operator.post(
        f"/v1/recon/cases/{case['id']}/resolve", json={"action": "credit_player", "note": "x"}
    )
    assert refused.status_code == 422, refused.text
    await _explained(sessions, MISSING)

    # The provider corrects the late day (a refund it left out): the case stays, with the net
    # the corrected run settled.
    corrected = Report(MISSING, late_day)
    corrected.lines = [*reports[late_day].lines]
    corrected.add("refund", f"rfd_{uuid.uuid4().hex[:24]}", 50_000)
    rerun = await reconcile(operator, temporal_client, corrected)
    assert rerun.superseded_run_ids == [runs[late_day].run_id]
    case = (await missing())[late_day]
    assert (case["status"], case["amount_minor"], case["run_id"]) == (
        "open",
        450_000,
        rerun.run_id,
    )
    assert case["details"]["delta"] == -450_000

    # Later statements without it (and the last one again): still that one case per day; the
    # lost day is due too by now.
    for day in statement_days[1:]:
        await _statement_run(operator, temporal_client, day, [])
    again = await operator.post(
        "/v1/recon/runs/upload",
        params={"provider": BANKS[0], "date": statement_days[-1].isoformat(), "format": "camt.053"},
        content=b"".join(camt053(_statement(statement_days[-1], []))),
        headers={"Content-Type": "application/xml"},
    )
    assert (again.status_code, again.json()["status"]) == (200, "already_reconciled")
    later = await missing()
    assert set(later) == {late_day, lost_day}  # the day shown, the recent day: no case
    assert later[late_day]["id"] == case["id"]
    assert [c["kind"] for c in await cases_of(sessions, MISSING)].count(
        "settlement_missing_at_bank"
    ) == 2

    # The late day's money comes at last: that statement closes its case by itself.
    paid_late = statement_days[-1] + timedelta(days=1)
    result = await _statement_run(
        operator, temporal_client, paid_late, [(MISSING, late_day, 450_000)]
    )
    assert result.outcomes["settlement"].count == 1
    closed = (await missing())[late_day]
    assert (closed["status"], closed["resolution"]) == ("resolved", "seen_at_bank")
    # Another statement later: the day shown does not come back as missing.
    await _statement_run(operator, temporal_client, paid_late + timedelta(days=1), [])
    assert (await missing())[late_day]["status"] == "resolved"

    # The lost day will never be paid: written off the operator's bank account.
    lost = (await missing())[lost_day]
    assert lost["status"] == "open"
    bank_before = await balance(sessions, operator_bank("KZT").code)
    written_off_before = await balance(sessions, recon_write_off("KZT").code)
    done = await operator.post(
        f"/v1/recon/cases/{lost['id']}/resolve", json={"action": "write_off", "note": "lost"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved"
    assert await balance(sessions, operator_bank("KZT").code) == bank_before - 20_000
    assert await balance(sessions, recon_write_off("KZT").code) == written_off_before + 20_000
    # Written off: a later statement without it does not open it again.
    await _statement_run(operator, temporal_client, paid_late + timedelta(days=2), [])
    assert (await missing())[lost_day]["resolution"] == "write_off"

    # ... and if its money comes after all, the bank holds more than the ledger says: a
    # mismatch of that statement, whose write-off puts the money back in the bank account.
    found_day = paid_late + timedelta(days=3)
    await _statement_run(operator, temporal_client, found_day, [(MISSING, lost_day, 20_000)])
    (came,) = [
        c
        for c in await cases_of(sessions, BANKS[0])
        if c["reference"] == settlement_reference(MISSING, lost_day)
    ]
    assert (came["kind"], came["status"], came["amount_minor"]) == (
        "settlement_mismatch",
        "open",
        20_000,
    )
    assert (came["details"]["settled"], came["details"]["delta"]) == (0, 20_000)
    assert came["details"]["written_off_case"] == lost["id"]
    back = await operator.post(
        f"/v1/recon/cases/{came['id']}/resolve", json={"action": "write_off", "note": "found"}
    )
    assert back.status_code == 200, back.text
    assert await balance(sessions, operator_bank("KZT").code) == bank_before
    assert await balance(sessions, recon_write_off("KZT").code) == written_off_before
    await assert_invariants(sessions)


# -- a corrected report after the bank showed the settlement ---------------------------------


async def test_a_corrected_report_judges_again_the_settlement_the_bank_showed(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = today() - timedelta(days=45)
    statement_day = day + timedelta(days=1)
    reference = settlement_reference(CORRECTED, day)
    first = Report(CORRECTED, day).add("payment", f"dep_{uuid.uuid4().hex[:24]}", 300_000)
    run = await reconcile(operator, temporal_client, first)
    assert run.settled_minor == 300_000

    # The bank shows the day's 3,000.00: matched, no case.
    shown = await _statement_run(
        operator, temporal_client, statement_day, [(CORRECTED, day, 300_000)]
    )
    assert shown.outcomes["settlement"].count == 1

    async def settlement_cases() -> list[dict[str, Any]]:
        return [
            c
            for c in await cases_of(sessions, BANKS[0])
            if c["reference"] == reference and c["kind"].startswith("settlement")
        ]

    assert await settlement_cases() == []

    # The provider corrects the day (a refund it left out): 2,800.00 settled now, and the
    # bank's 3,000.00 no longer agrees with it.
    corrected = Report(CORRECTED, day)
    corrected.lines = [*first.lines]
    corrected.add("refund", f"rfd_{uuid.uuid4().hex[:24]}", 20_000)
    second = await reconcile(operator, temporal_client, corrected)
    assert second.superseded_run_ids == [run.run_id]
    assert second.settled_minor == 280_000
    (case,) = await settlement_cases()
    assert (case["kind"], case["status"], case["amount_minor"]) == (
        "settlement_mismatch",
        "open",
        300_000,
    )
    assert case["run_id"] == shown.run_id  # the statement's case, as its own check opens them
    details = case["details"]
    assert (details["settled"], details["delta"], details["run_id"]) == (
        280_000,
        20_000,
        second.run_id,
    )
    assert details["rechecked"] is True
    assert allowed_actions(_facts(case)) == ("acknowledge", "write_off")

    # Corrected once more, back to what the bank received: the case closes by itself.
    again = Report(CORRECTED, day)
    again.lines = [*corrected.lines]
    again.add("payment", f"dep_{uuid.uuid4().hex[:24]}", 20_000)
    third = await reconcile(operator, temporal_client, again)
    assert third.settled_minor == 300_000
    (closed,) = await settlement_cases()
    assert (closed["id"], closed["status"], closed["resolution"]) == (
        case["id"],
        "resolved",
        "settled_by_run",
    )

    # And once more to 2,800.00: the case the reconciliation closed opens again.
    last = Report(CORRECTED, day)
    last.lines = [*again.lines]
    last.add("refund", f"rfd_{uuid.uuid4().hex[:24]}", 20_000)
    fourth = await reconcile(operator, temporal_client, last)
    assert fourth.settled_minor == 280_000
    (reopened,) = await settlement_cases()
    assert (reopened["id"], reopened["status"]) == (case["id"], "open")
    assert reopened["details"]["run_id"] == fourth.run_id
    # Nothing of it waits in the bank's difference account; the bank showed the day: no
    # missing-at-bank case open (one raised while the statement was not yet reconciled, when
    # an earlier test's statements of later days were, is closed by it).
    await _explained(sessions, BANKS[0])
    assert [
        (c["kind"], c["resolution"])
        for c in await cases_of(sessions, CORRECTED)
        if c["kind"] == "settlement_missing_at_bank" and c["status"] != "resolved"
    ] == []
    await assert_invariants(sessions)
