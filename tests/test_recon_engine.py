"""The reconciliation engine (issue 16, points 2-4): matching, runs, supersession, settlement,
bank statements, the schedule, and the ledger settled after a clean day.

Our side of each scenario is written straight to the database and the ledger (players,
deposits, the postings the deposit, payout and refund workflows make), under a provider name of
its own, so a day's clearing holds exactly that scenario's money even in a shared database.
Reports are uploaded through the API in `recon.jsonl` (the canonical form every format is
parsed into) and reconciled by the worker's ReconciliationWorkflow on the time-skipping server.
The clean day and the schedule run in a database of their own, where `python -m
db.check_ledger --expect-settled` looks at every provider.
"""

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.recon import NoReportSource, ReconActivities, provider_report_source
from api.app import create_app
from config import Settings
from db import deposits as deposit_store
from db import ledger as ledger_store
from db import recon as recon_store
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks
from db.migrate import upgrade
from db.players import create_player
from domain.ledger import (
    deposit_credit,
    deposit_fee,
    fee_for,
    operator_bank,
    recon_difference,
    refund_hold,
    refund_resolution,
    withdrawal_hold,
    withdrawal_post,
)
from domain.recon.canonical import CANONICAL_FORMAT, read_jsonl, report_hash, write_jsonl
from domain.recon.days import business_day
from domain.recon.lines import LineKind, ReportHeader, ReportLine
from domain.recon.match import DayMatcher, Lookup, OurRecord, RecordKind
from domain.recon.references import name_key, purpose_references
from domain.roles import Role
from domain.routing import ProviderRule
from providers.registry import provider_http_client
from tests.conftest import make_iin
from tests.histories_helpers import keep
from tests.ledger_helpers import run_checker
from worker import workflow_runner
from workflows.reconciliation import (
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationWorkflow,
    ScheduledReconciliationInput,
    ScheduledReconciliationWorkflow,
    ensure_recon_schedules,
    recon_schedule_id,
    recon_workflow_id,
)

BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
FEE_BPS = 150
UPLOAD_LIMIT = 1_000_000
# Each scenario's provider: its own clearing, its own day.
PROVIDERS = ("rt_kinds", "rt_corrected", "rt_bank", "rt_api")


def today() -> date:
    return business_day(datetime.now(UTC))


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recon_settings(settings: Settings) -> Settings:
    """The session's settings with the scenarios' providers configured (disabled for routing)."""
    extra = tuple(ProviderRule(name, "card", enabled=False) for name in PROVIDERS)
    secrets = {name: SecretStr(f"recon-test-{name}") for name in PROVIDERS}
    return settings.model_copy(
        update={
            "providers": settings.providers + extra,
            "provider_secrets": {**settings.provider_secrets, **secrets},
            "webhook_secrets": {**settings.webhook_secrets, **secrets},
            "recon_upload_max_bytes": UPLOAD_LIMIT,
        }
    )


@pytest.fixture(scope="module")
async def recon_app(recon_settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    application = create_app(recon_settings)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        yield application


@pytest.fixture
async def operator(
    recon_app: FastAPI, api_keys: dict[Role, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=recon_app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {api_keys[Role.OPERATOR]}"},
    ) as client:
        yield client


# -- our side, written directly --------------------------------------------------------------


class Book:
    """One scenario's payments of ours at one provider: rows and the workflows' postings."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], provider: str, shards: int = 8
    ) -> None:
        self.sessions = sessions
        self.provider = provider
        self.shards = shards

    async def player(self, *, name: str | None = None, iin: str | None = None) -> str:
        player_id = f"pl_{uuid.uuid4().hex[:24]}"
        async with self.sessions.begin() as session:
            await create_player(
                session,
                player_id=player_id,
                external_id=f"recon-{uuid.uuid4().hex}",
                iin=iin or make_iin(),
                full_name=name or f"Test Player{uuid.uuid4().hex[:6]}",
                birth_date=date(1990, 1, 1),
                phone="+77011234567",
                email=None,
            )
        return player_id

    async def deposit(
        self,
        amount: int,
        *,
        player: str | None = None,
        method: str = "card",
        credited: bool = True,
        fee_bps: int = FEE_BPS,
    ) -> str:
        """A deposit; credited: the postings `credit_deposit` makes (credit and booked fee)."""
        player = player or await self.player()
        deposit_id = f"dep_{uuid.uuid4().hex[:24]}"
        async with self.sessions.begin() as session:
            await deposit_store.create_deposit(
                session,
                deposit_id=deposit_id,
                player_id=player,
                amount_minor=amount,
                currency="KZT",
                method=method,
                provider=self.provider,
                card=None,
                client=None,
                workflow_id=f"deposit-{deposit_id}",
                created_at=datetime.now(UTC),
            )
            await session.execute(
                text("UPDATE deposits SET status = :s WHERE id = :id"),
                {"s": "succeeded" if credited else "expired", "id": deposit_id},
            )
            if credited:
                specs = [
                    deposit_credit(
                        deposit_id=deposit_id,
                        player_id=player,
                        provider=self.provider,
                        amount_minor=amount,
                        currency="KZT",
                        shards=self.shards,
                    )
                ]
                fee = fee_for(amount, fee_bps)
                if fee:
                    specs.append(
                        deposit_fee(
                            deposit_id=deposit_id,
                            provider=self.provider,
                            fee_minor=fee,
                            currency="KZT",
                            shards=self.shards,
                        )
                    )
                await ledger_store.post_transactions(session, specs=specs)
        return deposit_id

    async def player_of(self, deposit_id: str) -> str:
        async with self.sessions() as session:
            found = await session.scalar(
                text("SELECT player_id FROM deposits WHERE id = :id"), {"id": deposit_id}
            )
        return str(found)

    async def payout(self, amount: int, *, player: str) -> str:
        """A paid withdrawal: its hold, then the post."""
        withdrawal_id = f"wd_{uuid.uuid4().hex[:24]}"
        hold = withdrawal_hold(
            withdrawal_id=withdrawal_id,
            player_id=player,
            provider=self.provider,
            amount_minor=amount,
            currency="KZT",
            shards=self.shards,
        )
        await ledger_store.post(self.sessions, hold)
        await ledger_store.resolve(self.sessions, withdrawal_post(withdrawal_id=withdrawal_id))
        return withdrawal_id

    async def refund(self, deposit_id: str, amount: int) -> str:
        refund_id = f"ref_{uuid.uuid4().hex[:24]}"
        hold = refund_hold(
            refund_id=refund_id,
            deposit_id=deposit_id,
            player_id=await self.player_of(deposit_id),
            provider=self.provider,
            amount_minor=amount,
            currency="KZT",
            shards=self.shards,
        )
        await ledger_store.post(self.sessions, hold)
        await ledger_store.resolve(
            self.sessions,
            refund_resolution(refund_id=refund_id, deposit_id=deposit_id, action="post"),
        )
        return refund_id


class Report:
    """A report being written: lines numbered as they come, the net as the provider sums it."""

    _SIGN = {
        "payment": 1,
        "transfer_in": 1,
        "chargeback_reversal": 1,
        "refund": -1,
        "payout": -1,
        "transfer_out": -1,
        "chargeback": -1,
        "settlement_in": 0,
    }

    def __init__(self, provider: str, day: date | None = None) -> None:
        self.provider = provider
        self.day = day or today()
        self.lines: list[ReportLine] = []

    def add(
        self,
        kind: LineKind,
        reference: str | None,
        amount: int,
        *,
        fee: int = 0,
        currency: str = "KZT",
        **bank: str | None,
    ) -> "Report":
        self.lines.append(
            ReportLine(
                line_no=len(self.lines) + 1,
                kind=kind,
                reference=reference,
                provider_id=f"tx{len(self.lines) + 1}",
                amount_minor=amount,
                currency=currency,
                fee_minor=fee,
                occurred_at=datetime.now(UTC).replace(microsecond=0),
                **bank,
            )
        )
        return self

    def pay(self, reference: str, amount: int, *, fee: int | None = None) -> "Report":
        return self.add(
            "payment", reference, amount, fee=fee_for(amount, FEE_BPS) if fee is None else fee
        )

    def net(self) -> int:
        return sum(
            self._SIGN[line.kind] * line.amount_minor - line.fee_minor for line in self.lines
        )

    def header(self, *, net: int | None = None) -> ReportHeader:
        return ReportHeader(
            provider=self.provider,
            business_date=self.day,
            currency="KZT",
            net_settled_minor=self.net() if net is None else net,
            settlement_date=self.day + timedelta(days=1),
            format=CANONICAL_FORMAT,
        )

    def body(self, *, net: int | None = None) -> bytes:
        return b"".join(write_jsonl(self.header(net=net), self.lines))


async def upload(client: httpx.AsyncClient, report: Report, **params: Any) -> httpx.Response:
    return await client.post(
        "/v1/recon/runs/upload",
        params={
            "provider": report.provider,
            "date": report.day.isoformat(),
            "format": CANONICAL_FORMAT,
            **params,
        },
        content=report.body(),
        headers={"Content-Type": "application/x-ndjson"},
    )


async def reconciled(client: Client, workflow_id: str) -> ReconciliationResult:
    """The run's result (the time-skipping server may answer a long poll with no event yet)."""
    handle = client.get_workflow_handle(workflow_id, result_type=ReconciliationResult)
    for _ in range(20):
        try:
            result: ReconciliationResult = await handle.result()
            return result
        except RuntimeError as exc:
            if "No completion event found" not in str(exc):
                raise
    raise AssertionError(f"{workflow_id} did not finish")


async def reconcile(
    operator: httpx.AsyncClient, temporal_client: Client, report: Report
) -> ReconciliationResult:
    response = await upload(operator, report)
    assert response.status_code == 202, response.text
    return await reconciled(temporal_client, response.json()["workflow_id"])


async def cases_of(
    sessions: async_sessionmaker[AsyncSession], provider: str
) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, run_id, kind, reference, line_key, amount_minor, currency, details, "
                "status, resolution FROM recon_cases WHERE provider = :p ORDER BY id"
            ),
            {"p": provider},
        )
        return [dict(row._mapping) for row in rows]


async def balance(sessions: async_sessionmaker[AsyncSession], code_like: str) -> int:
    """Debits minus credits (posted) of the accounts whose code is LIKE `code_like`."""
    async with sessions() as session:
        found = await session.scalar(
            text(
                "SELECT coalesce(sum(posted_debits - posted_credits), 0) FROM ledger_accounts "
                "WHERE code LIKE :c"
            ),
            {"c": code_like},
        )
    return int(found or 0)


async def settled_through(
    sessions: async_sessionmaker[AsyncSession], day: date, provider: str | None = None
) -> list[str]:
    async with sessions() as session:
        results = await run_checks(session, expect_settled=True, through=day, provider=provider)
    broken = [o for r in results if not r.ok for o in [r.name, *r.offenders[:5]]]
    return broken


# -- the matcher on its own ------------------------------------------------------------------


def test_references_are_found_in_messy_purposes() -> None:
    ref = "dep_4f3a9b2c0d1e2f3a4b5c6d7e"
    assert purpose_references(f"Оплата {ref.upper()} спасибо") == [ref]
    assert purpose_references("payment DEP 4F3A 9B2C 0D1E 2F3A 4B5C 6D7E for games") == [ref]
    assert purpose_references("dep-4f3a-9b2c-0d1e-2f3a-4b5c-6d7e.") == [ref]
    assert purpose_references("ref 4f3a9b2c0d1e2f3a4b5c6d7e") == [ref]  # no prefix at all
    assert purpose_references("deposit for games 12345") == []
    assert purpose_references(f"{ref}9") == []  # runs on into another digit: not this id
    assert name_key("TULEGENOVA  aigerim") == name_key("Aigerim Tulegenova")


def test_the_matcher_streams_and_judges_each_kind() -> None:
    """Pure: one day's records, lines in two chunks, the lookup standing in for the store."""
    day = today()
    rec: dict[tuple[RecordKind, str], OurRecord] = {
        ("deposit", "d1"): OurRecord("d1", "deposit", 1000, "KZT", 15, day),
        ("deposit", "d2"): OurRecord("d2", "deposit", 2000, "KZT", 30, day),
        ("deposit", "d3"): OurRecord("d3", "deposit", 500, "KZT", 0, day),
        ("withdrawal", "w1"): OurRecord("w1", "withdrawal", 700, "KZT", 0, day),
    }
    matcher = DayMatcher(provider="p", business_date=day, currency="KZT", ours=rec)
    report = Report("p").pay("d1", 1000).pay("d2", 1999).pay("d9", 300)
    first = report.lines[:2]
    second = report.lines[2:] + Report("p").add("payout", "w1", 700).pay("d1", 1000).lines
    assert matcher.needs(first).references == frozenset()
    outcomes = matcher.feed(first)
    assert [o.kind for o in outcomes] == ["matched", "amount_mismatch"]
    needs = matcher.needs(second)
    assert needs.references == {"d9"}
    late = OurRecord("d9", "deposit", 300, "KZT", status="expired")
    outcomes = matcher.feed(second, Lookup(records={"d9": late}))
    assert [o.kind for o in outcomes] == ["missing_ours", "matched", "duplicate"]
    assert outcomes[0].details["cause"] == "late"
    missing = matcher.finish()
    assert [(o.kind, o.reference) for o in missing] == [("missing_provider", "d3")]
    assert matcher.tally.outcomes["matched"].count == 2


def test_a_cut_off_is_matched_across_two_days() -> None:
    """A payment credited after midnight that the provider reports the day before: the
    earlier day's line matches it (another day's record), and the later day does not call it
    missing at the provider."""
    day = today()
    late_credit = OurRecord("d1", "deposit", 1000, "KZT", 15, day + timedelta(days=1))
    earlier = DayMatcher(provider="p", business_date=day, currency="KZT", ours={})
    (outcome,) = earlier.feed(
        Report("p").pay("d1", 1000).lines, Lookup(records={"d1": late_credit})
    )
    assert outcome.kind == "matched"
    assert outcome.details["posted_on"] == (day + timedelta(days=1)).isoformat()
    assert earlier.matched_other_day == {"d1"}
    assert earlier.finish() == []
    later = DayMatcher(
        provider="p",
        business_date=day + timedelta(days=1),
        currency="KZT",
        ours={("deposit", "d1"): late_credit},
        matched_elsewhere=earlier.matched_other_day,
    )
    assert later.finish() == []


def test_canonical_form_round_trips_and_hashes_content() -> None:
    report = Report("p").pay("d1", 1000).add("transfer_in", None, 5, purpose="x\u00e9")
    header, lines = read_jsonl(iter(report.body().splitlines(keepends=True)))  # type: ignore[arg-type]
    parsed = list(lines)
    assert parsed == report.lines
    assert report_hash(header, parsed) == report_hash(report.header(), report.lines)
    corrected = dataclasses.replace(report.lines[0], amount_minor=999)
    assert report_hash(header, [corrected, *parsed[1:]]) != report_hash(header, parsed)


# -- scenarios through the API and the workflow ----------------------------------------------


async def test_each_discrepancy_kind_becomes_a_case_and_the_day_settles(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    book = Book(sessions, "rt_kinds")
    matched = await book.deposit(100_000)
    short = await book.deposit(200_000)
    other_currency = await book.deposit(50_000)
    fee_off = await book.deposit(80_000)
    twice = await book.deposit(70_000)
    unreported = await book.deposit(60_000)
    expired = await book.deposit(40_000, credited=False)
    unknown = f"dep_{uuid.uuid4().hex[:24]}"
    refunded = await book.refund(matched, 20_000)
    paid_out = await book.payout(30_000, player=await book.player_of(matched))

    report = (
        Report("rt_kinds")
        .pay(matched, 100_000)
        .pay(short, 190_000, fee=fee_for(200_000, FEE_BPS))
        .add("payment", other_currency, 50_000, currency="USD", fee=750)
        .pay(fee_off, 80_000, fee=2_000)
        .pay(twice, 70_000)
        .pay(twice, 70_000)
        .pay(expired, 40_000)
        .pay(unknown, 11_000)
        .add("refund", matched, 20_000)  # names the payment, as providers do
        .add("payout", paid_out, 30_000)
        .add("chargeback", matched, 10_000)
    )
    result = await reconcile(operator, temporal_client, report)

    assert result.status == "completed"
    assert not result.already_reconciled
    counts = {kind: totals.count for kind, totals in result.outcomes.items()}
    assert counts == {
        "matched": 4,  # the payment, the first line of `twice`, the refund, the payout
        "amount_mismatch": 1,
        "currency_mismatch": 1,
        "fee_mismatch": 1,
        "duplicate": 1,  # the second line of `twice`
        "missing_ours": 2,  # the expired deposit (late) and the unknown reference
        "missing_provider": 1,
        "chargeback": 1,
    }
    cases = await cases_of(sessions, "rt_kinds")
    by_kind = {(c["kind"], c["reference"]): c for c in cases}
    assert set(by_kind) == {
        ("amount_mismatch", short),
        ("currency_mismatch", other_currency),
        ("fee_mismatch", fee_off),
        ("duplicate", twice),
        ("missing_ours", expired),
        ("missing_ours", unknown),
        ("missing_provider", unreported),
        ("chargeback", matched),
    }
    # A chargeback is a fact, not a decision: the run charged it to the player at once (the
    # wallet covers it); every other case waits for an operator.
    charged = by_kind[("chargeback", matched)]
    assert (charged["status"], charged["resolution"]) == ("resolved", "charge_player")
    assert result.chargebacks_charged == [charged["id"]]
    assert all(c["status"] == "open" for c in cases if c["id"] != charged["id"])
    assert result.cases_open == len(cases) - 1
    assert by_kind[("missing_ours", expired)]["details"]["cause"] == "late"
    assert by_kind[("missing_ours", unknown)]["details"]["cause"] == "unknown"
    assert by_kind[("amount_mismatch", short)]["details"]["delta"] == -10_000
    assert by_kind[("fee_mismatch", fee_off)]["details"]["expected_fee"] == 1_200
    assert by_kind[("missing_provider", unreported)]["amount_minor"] == 60_000
    assert by_kind[("chargeback", matched)]["details"]["player_id"]
    assert refunded  # matched by its payment's reference

    # The day's clearing is swept: the net to the bank, the fee gap to fee expense, the rest to
    # the difference account, where the open cases explain it.
    assert await settled_through(sessions, report.day, "rt_kinds") == []
    assert result.settled_minor == report.net()
    assert result.clearing_minor == result.settled_minor + result.fee_delta_minor + (
        result.difference_minor
    )
    # ... and what the chargeback took (parked as a debit there) was charged to the player.
    assert await balance(sessions, recon_difference("rt_kinds", "KZT").code) == (
        result.difference_minor - 10_000
    )

    # The same report again: the run that reconciled it, nothing new.
    again = await upload(operator, report)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "already_reconciled"
    assert again.json()["run"]["id"] == result.run_id
    assert len(await cases_of(sessions, "rt_kinds")) == len(cases)

    shown = await operator.get("/v1/recon/runs", params={"provider": "rt_kinds"})
    assert shown.status_code == 200
    (run,) = shown.json()["data"]
    assert run["status"] == "completed"
    assert run["cases_opened"] == len(cases)
    assert run["outcomes"]["chargeback"] == {"count": 1, "amount": 10_000}
    assert run["settlement"]["key"] == result.settlement_key


async def test_a_corrected_report_supersedes_the_earlier_run(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    book = Book(sessions, "rt_corrected")
    first_deposit = await book.deposit(150_000)
    second_deposit = await book.deposit(250_000)
    wrong = Report("rt_corrected").pay(first_deposit, 150_000).pay(second_deposit, 205_000)
    first = await reconcile(operator, temporal_client, wrong)
    (case,) = await cases_of(sessions, "rt_corrected")
    assert case["kind"] == "amount_mismatch"
    assert case["status"] == "open"
    assert first.difference_minor == 45_000  # credited 250,000; the provider paid 205,000

    right = Report("rt_corrected").pay(first_deposit, 150_000).pay(second_deposit, 250_000)
    second = await reconcile(operator, temporal_client, right)

    assert second.superseded_run_ids == [first.run_id]
    assert second.run_id != first.run_id
    assert second.difference_minor == 0
    (case,) = await cases_of(sessions, "rt_corrected")
    assert (case["status"], case["resolution"]) == ("resolved", "superseded")
    # The earlier settlement is reversed, the new one stands: the day is settled, nothing is
    # left in the difference account, the bank holds what the corrected report says.
    assert await settled_through(sessions, right.day, "rt_corrected") == []
    assert await balance(sessions, recon_difference("rt_corrected", "KZT").code) == 0
    async with sessions() as session:
        keys = set(await ledger_store.transactions_for_payment(session, payment_id=first_deposit))
        reversal = await ledger_store.load_spec(session, key=f"{first.settlement_key}:reversal")
    assert reversal is not None
    assert keys

    listed = await operator.get(
        "/v1/recon/runs", params={"provider": "rt_corrected", "date": right.day.isoformat()}
    )
    runs = {run["id"]: run for run in listed.json()["data"]}
    assert runs[first.run_id]["status"] == "superseded"
    assert runs[first.run_id]["superseded_by"] == second.run_id
    (trail,) = runs[second.run_id]["supersessions"]
    assert trail["old_run_id"] == first.run_id
    assert trail["cases_closed"] == 1
    assert trail["reversal_key"] == f"{first.settlement_key}:reversal"
    one = await operator.get(f"/v1/recon/runs/{first.run_id}")
    assert one.status_code == 200
    assert one.json()["supersessions"][0]["new_run_id"] == second.run_id


async def test_a_messy_bank_statement_confirms_transfers_and_opens_cases(
    operator: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    book = Book(sessions, "rt_bank")

    async def transfer(amount: int, **kw: Any) -> str:
        return await book.deposit(amount, method="bank_transfer", fee_bps=0, **kw)

    exact = await transfer(500_000)
    topped_up = await transfer(300_000)
    short = await transfer(400_000)
    over = await transfer(100_000)
    late = await transfer(250_000, credited=False)
    iin = make_iin("880512", 3)
    by_iin = await transfer(120_000, player=await book.player(iin=iin))
    name = f"Zhanar Testova{uuid.uuid4().hex[:5]}"
    by_name = await transfer(90_000, player=await book.player(name=name))
    paid_out = await book.payout(50_000, player=await book.player_of(exact))
    spaced = " ".join(exact[4:][i : i + 4] for i in range(0, 24, 4)).upper()

    statement = (
        Report("rt_bank")
        .add("transfer_in", None, 500_000, purpose=f"Оплата по счету DEP {spaced}, спасибо")
        .add("transfer_in", None, 100_000, purpose=f"{topped_up} part 1")
        .add("transfer_in", None, 200_000, purpose=f"popolnenie {topped_up.upper()} part 2")
        .add("transfer_in", None, 350_000, purpose=f"for {short}")
        .add("transfer_in", None, 150_000, purpose=f"deposit {over}!")
        .add("transfer_in", None, 250_000, purpose=f"ref:{late}")
        .add("transfer_in", None, 120_000, purpose="for games", payer_iin=iin)
        .add("transfer_in", None, 90_000, purpose="igra", payer_name=" ".join(name.split()[::-1]))
        .add("transfer_in", None, 77_700, purpose="gift", payer_name="Nobody Known")
        .add("settlement_in", "halyk:2020-01-01", 1_000_000, payer_name="Halyk Bank")
        .add("transfer_out", paid_out, 50_000)
    )
    result = await reconcile(operator, temporal_client, statement)

    counts = {kind: totals.count for kind, totals in result.outcomes.items()}
    assert counts == {
        "matched": 6,  # exact, the two parts, by IIN, by name (lines), the payout
        "short_payment": 1,
        "over_payment": 1,
        "late_payment": 1,
        "unknown_reference": 1,
        "settlement_unmatched": 1,  # no run of halyk's 2020-01-01 settled it
    }
    cases = {(c["kind"], c["reference"]): c for c in await cases_of(sessions, "rt_bank")}
    assert set(cases) == {
        ("short_payment", short),
        ("over_payment", over),
        ("late_payment", late),
        ("unknown_reference", None),
        ("settlement_unmatched", "halyk:2020-01-01"),
    }
    assert cases[("short_payment", short)]["details"]["received"] == 350_000
    assert cases[("late_payment", late)]["details"]["status"] == "expired"
    assert cases[("unknown_reference", None)]["details"]["payer_name"] == "Nobody Known"
    # Nothing was credited again: each deposit keeps its one credit, the late one none.
    async with sessions() as session:
        credits = await session.scalar(
            text(
                "SELECT count(*) FROM ledger_transactions WHERE kind = 'deposit_credit' "
                "AND payment_id = ANY(:ids)"
            ),
            {"ids": [exact, topped_up, short, over, late, by_iin, by_name]},
        )
    assert credits == 6
    # The statement's net (transfers in less out, settlements aside) went to the bank account.
    assert result.settled_minor == 500_000 + 300_000 + 350_000 + 150_000 + 250_000 + (
        120_000 + 90_000 + 77_700 - 50_000
    )
    assert await settled_through(sessions, statement.day, "rt_bank") == []
    # short: 50,000 never came (debit); over, late, unknown: money nobody is credited with.
    assert result.difference_minor == 50_000 - 50_000 - 250_000 - 77_700


async def test_uploads_refuse_what_they_cannot_take(
    operator: httpx.AsyncClient, anonymous_api: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    report = Report("rt_api").pay(f"dep_{uuid.uuid4().hex[:24]}", 1_000)

    async def problem(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code

    await problem(await upload(operator, report, provider="nobody"), 422, "unknown_provider")
    await problem(await upload(operator, report, format="weird.csv"), 422, "unknown_format")
    future = (today() + timedelta(days=2)).isoformat()
    await problem(await upload(operator, report, date=future), 422, "invalid_date")
    other_day = (today() - timedelta(days=1)).isoformat()
    await problem(await upload(operator, report, date=other_day), 422, "report_mismatch")
    bad = await operator.post(
        "/v1/recon/runs/upload",
        params={"provider": "rt_api", "date": report.day.isoformat(), "format": CANONICAL_FORMAT},
        content=report.body().replace(b'"amount_minor":1000', b'"amount_minor":-5'),
    )
    await problem(bad, 422, "invalid_report")
    assert "line 1" in bad.json()["detail"]
    nul = report.body().replace(b'"purpose":null', b'"purpose":"a\\u0000b"')
    await problem(
        await operator.post(
            "/v1/recon/runs/upload",
            params={"provider": "rt_api", "date": report.day.isoformat(), "format": "recon.jsonl"},
            content=nul,
        ),
        422,
        "invalid_report",
    )
    twice = Report("rt_api").pay("dep_a", 1_000).pay("dep_b", 2_000)
    twice.lines[1] = dataclasses.replace(twice.lines[1], line_no=1)
    await problem(await upload(operator, twice), 422, "invalid_report")
    huge = await operator.post(
        "/v1/recon/runs/upload",
        params={"provider": "rt_api", "date": report.day.isoformat(), "format": "recon.jsonl"},
        content=b"x" * (UPLOAD_LIMIT + 1),
    )
    await problem(huge, 413, "payload_too_large")
    empty = await operator.post(
        "/v1/recon/runs/upload",
        params={"provider": "rt_api", "date": report.day.isoformat(), "format": "recon.jsonl"},
        content=b"",
    )
    await problem(empty, 422, "empty_report")
    # POST /v1/recon/runs: a provider whose connector delivers no reports, a day not begun.
    body = {"provider": "rt_api", "date": report.day.isoformat()}
    await problem(await operator.post("/v1/recon/runs", json=body), 422, "no_report_source")
    await problem(
        await operator.post("/v1/recon/runs", json={"provider": "halyk", "date": future}),
        422,
        "invalid_date",
    )
    await problem(
        await operator.post("/v1/recon/runs", json={"provider": "x"}), 422, "validation_error"
    )
    await problem(await operator.get("/v1/recon/runs/999999999"), 404, "run_not_found")
    await problem(await anonymous_api.get("/v1/recon/runs"), 401, "unauthorized")
    await problem(await api.get("/v1/recon/runs"), 403, "forbidden")
    schema = (await operator.get("/openapi.json")).json()
    assert "/v1/recon/runs/upload" in schema["paths"]
    assert "422" in schema["paths"]["/v1/recon/runs"]["post"]["responses"]


# -- a database of its own: the clean day, --expect-settled, the schedule --------------------


@pytest.fixture(scope="module")
async def own_database(database_url: str) -> str:
    """A fresh database on the session's server, migrated: no other test's money in it."""
    name = f"recon_{uuid.uuid4().hex[:10]}"
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(plain)._replace(path=f"/{name}"))
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture(scope="module")
async def own_sessions(own_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(own_database, pool_size=4)
    yield make_sessionmaker(engine)
    await engine.dispose()


class Reports:
    """A report source standing in for the providers' report clients (same interface)."""

    def __init__(self) -> None:
        self.reports: dict[tuple[str, date], Report] = {}
        self.asked: list[tuple[str, date]] = []

    async def __call__(self, provider: str, day: date) -> tuple[ReportHeader, Iterator[ReportLine]]:
        self.asked.append((provider, day))
        report = self.reports.get((provider, day))
        if report is None:
            if provider == "nobody":
                raise NoReportSource(f"{provider} delivers no reports")
            report = Report(provider, day)  # a quiet day: no lines
        return report.header(), iter(report.lines)


@pytest.fixture(scope="module")
def reports() -> Reports:
    return Reports()


@pytest.fixture(scope="module")
async def own_worker(
    temporal_env: WorkflowEnvironment,
    own_sessions: async_sessionmaker[AsyncSession],
    reports: Reports,
) -> AsyncIterator[str]:
    """A worker on a task queue of its own, reconciling in the fresh database."""
    queue = f"recon-{uuid.uuid4().hex[:8]}"
    activities = ReconActivities(sessions=own_sessions, source=reports)
    async with Worker(
        temporal_env.client,
        task_queue=queue,
        workflows=[ReconciliationWorkflow, ScheduledReconciliationWorkflow],
        activities=[
            activities.load_recon_report,
            activities.match_recon_report,
            activities.settle_recon_run,
            activities.charge_reported_chargebacks,
        ],
        workflow_runner=workflow_runner(),
    ):
        yield queue


async def test_after_a_clean_day_clearing_is_settled_and_the_checker_passes(
    temporal_env: WorkflowEnvironment,
    own_worker: str,
    own_database: str,
    own_sessions: async_sessionmaker[AsyncSession],
    reports: Reports,
) -> None:
    day = today()
    book = Book(own_sessions, "halyk")
    deposits = [await book.deposit(amount) for amount in (100_000, 250_000, 333_300)]
    player = await book.player_of(deposits[0])
    payout = await book.payout(40_000, player=player)
    refund = await book.refund(deposits[1], 50_000)
    report = Report("halyk", day)
    for deposit_id, amount in zip(deposits, (100_000, 250_000, 333_300), strict=True):
        report.pay(deposit_id, amount)
    report.add("payout", payout, 40_000).add("refund", deposits[1], 50_000)
    reports.reports[("halyk", day)] = report
    assert refund

    unsettled = await run_checker(own_database, "--expect-settled", "--through", day.isoformat())
    assert unsettled.returncode == 1, unsettled.stdout  # the day's clearing is not settled yet

    workflow_id = recon_workflow_id("halyk", day)
    result = await temporal_env.client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(provider="halyk", business_date=day, requested_by="test"),
        id=workflow_id,
        task_queue=own_worker,
    )
    await keep(temporal_env.client, workflow_id, "reconciliation_clean_day")
    assert result.outcomes["matched"].count == 5
    assert result.cases_open == 0
    assert set(result.outcomes) == {"matched"}
    assert result.difference_minor == 0
    assert result.fee_delta_minor == 0
    assert result.settled_minor == report.net()

    settled = await run_checker(own_database, "--expect-settled", "--through", day.isoformat())
    assert settled.returncode == 0, settled.stdout + settled.stderr
    everything = await run_checker(own_database, "--expect-settled")
    assert everything.returncode == 0, everything.stdout  # nothing else in flight here
    assert await balance(own_sessions, operator_bank("KZT").code) == report.net()
    fees = sum(fee_for(a, FEE_BPS) for a in (100_000, 250_000, 333_300))
    assert await balance(own_sessions, "provider:halyk:provider_fee_expense:KZT:%") == fees

    # Run again (the schedule and an operator on the same day): the same report, nothing moves.
    again = await temporal_env.client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(provider="halyk", business_date=day),
        id=workflow_id,
        task_queue=own_worker,
    )
    assert again.already_reconciled
    assert again.run_id == result.run_id
    assert (await run_checker(own_database, "--expect-settled")).returncode == 0


async def test_the_scheduled_run_reconciles_yesterday(
    temporal_env: WorkflowEnvironment,
    own_worker: str,
    own_database: str,
    reports: Reports,
) -> None:
    """What the daily Schedule starts, under the time-skipping server: it names yesterday in
    Asia/Almaty and runs that day's workflow under the day's id. (This server implements no
    Schedule API; `test_the_schedule_is_created_once_and_fires` uses the dev server for it.)"""
    handle = await temporal_env.client.start_workflow(
        ScheduledReconciliationWorkflow.run,
        ScheduledReconciliationInput(provider="freedom"),
        id=f"recon-scheduled-freedom-{uuid.uuid4().hex[:6]}",
        task_queue=own_worker,
    )
    result = await handle.result()
    # The workflow's clock (the time-skipping server's, which may have run ahead of ours).
    started = (await handle.describe()).start_time
    yesterday = business_day(started) - timedelta(days=1)
    assert result.business_date == yesterday
    assert result.workflow_id == recon_workflow_id("freedom", yesterday)
    assert result.outcome == "reconciled"
    assert result.result is not None
    assert ("freedom", yesterday) in reports.asked
    assert (await run_checker(own_database, "--expect-settled")).returncode == 0

    # A provider with no report to fetch fails its run for good (no endless retries).
    with pytest.raises(WorkflowFailureError):
        await temporal_env.client.execute_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(provider="nobody", business_date=yesterday),
            id=recon_workflow_id("nobody", yesterday),
            task_queue=own_worker,
        )


async def test_the_schedule_is_created_once_and_fires(
    own_sessions: async_sessionmaker[AsyncSession], reports: Reports
) -> None:
    """The daily Schedule on a Temporal dev server (the time-skipping one has no Schedule API):
    created, then brought to a new time idempotently at the next worker start; triggered, it
    reconciles yesterday."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=temporal_data_converter(),
    )
    try:
        queue = f"recon-dev-{uuid.uuid4().hex[:6]}"
        activities = ReconActivities(sessions=own_sessions, source=reports)
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[ReconciliationWorkflow, ScheduledReconciliationWorkflow],
            activities=[
                activities.load_recon_report,
                activities.match_recon_report,
                activities.settle_recon_run,
                activities.charge_reported_chargebacks,
            ],
            workflow_runner=workflow_runner(),
        ):
            ids = await ensure_recon_schedules(
                env.client, task_queue=queue, providers=["ioka"], hour=6, minute=0
            )
            assert ids == [recon_schedule_id("ioka")]
            await ensure_recon_schedules(
                env.client, task_queue=queue, providers=["ioka"], hour=7, minute=30
            )
            handle = env.client.get_schedule_handle(recon_schedule_id("ioka"))
            described = await handle.describe()
            (calendar,) = described.schedule.spec.calendars
            assert [r.start for r in calendar.hour] == [7]
            assert [r.start for r in calendar.minute] == [30]
            assert described.schedule.spec.time_zone_name == "Asia/Almaty"
            await handle.trigger()
            yesterday = business_day(datetime.now(UTC)) - timedelta(days=1)
            child = env.client.get_workflow_handle(
                recon_workflow_id("ioka", yesterday), result_type=ReconciliationResult
            )
            result = await _eventually(child)
            assert result.status == "completed"
            await handle.delete()
    finally:
        await env.shutdown()


def temporal_data_converter() -> Any:
    from temporalio.contrib.pydantic import pydantic_data_converter

    return pydantic_data_converter


async def _eventually(handle: Any) -> ReconciliationResult:
    """The triggered schedule starts its workflow soon, not at once: wait for it to exist."""
    for _ in range(100):
        try:
            result: ReconciliationResult = await handle.result()
            return result
        except Exception as exc:  # not started yet
            if "not found" not in str(exc).lower():
                raise
        await asyncio.sleep(0.1)  # the schedule's start is not an event this client can await
    raise AssertionError("the schedule never started the day's reconciliation")


async def test_the_provider_reports_are_fetched_through_the_reports_clients(
    settings: Settings,
    own_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The worker's real source: the bank's statement of a quiet day, fetched from the
    simulator, reconciles with nothing to settle."""
    day = date(2020, 3, 1)
    async with provider_http_client(settings) as http:
        source = provider_report_source(settings, http)
        activities = ReconActivities(sessions=own_sessions, source=source)
        from activities.recon import LoadReportInput

        loaded = await activities.load_recon_report(
            LoadReportInput(provider="kazbank", business_date=day)
        )
    async with own_sessions() as session:
        report = await recon_store.get_report(session, report_id=loaded.report_id)
    assert report is not None
    assert report.source == "fetched"
    assert report.provider == "kazbank"


async def test_ledger_invariants_hold_after_the_reconciliations(
    sessions: async_sessionmaker[AsyncSession], own_sessions: async_sessionmaker[AsyncSession]
) -> None:
    for pool in (sessions, own_sessions):
        async with pool() as session:
            results = await run_checks(session)
        broken = {r.name: r.offenders[:5] for r in results if not r.ok}
        assert not broken, broken
