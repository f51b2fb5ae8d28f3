"""Finance views over the API: the trial balance at any date, daily balance snapshots, period
close (the database refuses a posting dated in a closed period, the API answers it with a clear
problem), the GL export of a day, and the reconciliation dashboard per provider and day.

Postings are dated back with `db.finance.date_postings` (a writer's `ledger.posting_date`):
each test owns its own days, years ago, so that what it reads is what it posted."""

import asyncio
import csv
import io
import json
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.finance import FinanceActivities
from config import Settings
from db import finance
from db import ledger as ledger_store
from domain.finance import business_day
from domain.ledger import (
    Entry,
    Side,
    TransactionSpec,
    deposit_credit,
    deposit_fee,
    operator_bank,
    provider_clearing,
    recon_difference,
)
from tests.conftest import _result
from tests.ledger_helpers import assert_invariants
from worker import workflow_runner
from workflows.finance import (
    SNAPSHOT_SCHEDULE_ID,
    DailySnapshotInput,
    DailySnapshotResult,
    DailySnapshotWorkflow,
    ensure_snapshot_schedule,
)

pytestmark = pytest.mark.asyncio
BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def _transfer(key: str, debit: object, credit: object, amount: int) -> TransactionSpec:
    return TransactionSpec(
        key=key,
        kind="test_transfer",
        payment_id=None,
        entries=(
            Entry(debit, Side.DEBIT, amount),  # type: ignore[arg-type]
            Entry(credit, Side.CREDIT, amount),  # type: ignore[arg-type]
        ),
    )


async def post_on(
    sessions: async_sessionmaker[AsyncSession], day: date, *specs: TransactionSpec
) -> None:
    """Post `specs` dated `day` (as a writer dating its postings does)."""
    async with sessions.begin() as session:
        await finance.date_postings(session, day)
        await ledger_store.post_transactions(session, specs=list(specs))


def deposit_specs(provider: str, amount: int, fee: int) -> list[TransactionSpec]:
    deposit_id, player = f"dep_{uuid.uuid4().hex[:20]}", f"pl_{uuid.uuid4().hex[:20]}"
    specs = [
        deposit_credit(
            deposit_id=deposit_id,
            player_id=player,
            provider=provider,
            amount_minor=amount,
            currency="KZT",
        )
    ]
    if fee:
        specs.append(
            deposit_fee(deposit_id=deposit_id, provider=provider, fee_minor=fee, currency="KZT")
        )
    return specs


def provider_name() -> str:
    return f"finpsp_{uuid.uuid4().hex[:8]}"


# -- trial balance ---------------------------------------------------------------------------


async def test_the_trial_balance_balances_today_per_gl_line_and_per_account(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = provider_name()
    for spec in deposit_specs(provider, 10_000_00, 150_00):
        await ledger_store.post(sessions, spec)
    today = business_day(datetime.now(UTC)).isoformat()
    for level in ("gl", "account"):
        shown = await operator_api.get(
            "/v1/finance/trial-balance", params={"date": today, "level": level}
        )
        assert shown.status_code == 200, shown.text
        balance = shown.json()
        assert balance["totals"], balance
        for total in balance["totals"]:
            assert total["balanced"], total
            assert total["debits"] == total["credits"]
            assert total["debit_balance"] == total["credit_balance"]
    gl = (await operator_api.get("/v1/finance/trial-balance", params={"date": today})).json()
    lines = {(line["gl_code"], line["account"]): line for line in gl["lines"]}
    clearing = lines[("1200", f"provider:{provider}")]  # every shard is one GL line
    assert (clearing["debits"], clearing["credits"], clearing["debit_balance"]) == (
        10_000_00,
        150_00,
        9_850_00,
    )
    assert lines[("6100", f"provider:{provider}")]["debit_balance"] == 150_00
    assert lines[("2100", "players")]["credit_balance"] > 0

    future = await operator_api.get("/v1/finance/trial-balance", params={"date": "2999-01-01"})
    assert (future.status_code, future.json()["code"]) == (422, "invalid_date")
    await assert_invariants(sessions)


async def test_the_trial_balance_at_a_past_date_counts_what_was_posted_by_then(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = provider_name()
    bank, difference = operator_bank("KZT"), recon_difference(provider, "KZT")
    await post_on(
        sessions, date(2003, 5, 10), _transfer(uuid.uuid4().hex, bank, difference, 700_00)
    )
    await post_on(
        sessions, date(2003, 5, 20), _transfer(uuid.uuid4().hex, difference, bank, 200_00)
    )

    async def difference_at(day: str) -> tuple[int, int] | None:
        shown = await operator_api.get(
            "/v1/finance/trial-balance", params={"date": day, "level": "account"}
        )
        assert shown.status_code == 200, shown.text
        assert all(t["balanced"] for t in shown.json()["totals"])
        for line in shown.json()["lines"]:
            if line["account"] == difference.code:
                return line["debits"], line["credits"]
        return None

    assert await difference_at("2003-05-09") is None
    assert await difference_at("2003-05-15") == (0, 700_00)
    assert await difference_at("2003-05-31") == (200_00, 700_00)


# -- the GL export ---------------------------------------------------------------------------


async def test_the_gl_export_of_a_day_lists_account_codes_and_balances(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = provider_name()
    day = date(2003, 6, 7)
    await post_on(sessions, day, *deposit_specs(provider, 4_000_00, 60_00))
    await post_on(sessions, day, *deposit_specs(provider, 1_000_00, 15_00))
    # The next day's posting is the next day's GL.
    await post_on(sessions, date(2003, 6, 8), *deposit_specs(provider, 9_00, 0))

    exported = await operator_api.get("/v1/finance/gl.csv", params={"date": day.isoformat()})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert "gl-2003-06-07.csv" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(rows[0]) == [
        "date",
        "gl_code",
        "gl_name",
        "subaccount",
        "currency",
        "debit_minor",
        "credit_minor",
    ]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        assert row["date"] == "2003-06-07"
        totals[row["currency"]][0] += int(row["debit_minor"])
        totals[row["currency"]][1] += int(row["credit_minor"])
    assert all(debits == credits for debits, credits in totals.values()), totals
    mine = {
        row["gl_code"]: (int(row["debit_minor"]), int(row["credit_minor"]))
        for row in rows
        if row["subaccount"] in (f"provider:{provider}", "players")
    }
    assert mine["1200"] == (5_000_00, 75_00)  # clearing, every shard together
    assert mine["6100"] == (75_00, 0)  # provider fees
    assert mine["2100"][1] >= 5_000_00  # player funds (all players of the day)

    empty = await operator_api.get("/v1/finance/gl.csv", params={"date": "2001-01-01"})
    assert empty.text.strip().splitlines() == [",".join(rows[0])]


# -- snapshots -------------------------------------------------------------------------------


async def test_daily_snapshots_are_taken_on_demand_and_again_when_a_posting_dates_back(
    operator_api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = provider_name()
    bank, difference = operator_bank("KZT"), recon_difference(provider, "KZT")
    await post_on(
        sessions, date(2003, 7, 10), _transfer(uuid.uuid4().hex, bank, difference, 300_00)
    )
    taken = await operator_api.post("/v1/finance/snapshots/2003-07-31")
    assert taken.status_code == 200, taken.text
    assert taken.json()["taken"] is True
    again = await operator_api.post("/v1/finance/snapshots/2003-07-31")
    assert again.json()["taken"] is False

    async def snapshot_of(account: str) -> dict[str, object]:
        shown = await operator_api.get(
            "/v1/finance/balances",
            params={"date": "2003-07-31", "account_prefix": account},
        )
        assert shown.status_code == 200, shown.text
        [row] = shown.json()["data"]
        return dict(row)

    row = await snapshot_of(difference.code)
    assert (row["debits"], row["credits"], row["balance"], row["gl_code"]) == (
        0,
        300_00,
        -300_00,
        "1900",
    )
    # A posting dated back into the month makes the snapshot stale: it is taken again.
    await post_on(sessions, date(2003, 7, 20), _transfer(uuid.uuid4().hex, bank, difference, 50_00))
    assert (await snapshot_of(difference.code))["credits"] == 350_00
    # The next day's snapshot builds on it.
    await post_on(sessions, date(2003, 8, 1), _transfer(uuid.uuid4().hex, difference, bank, 100_00))
    async with sessions.begin() as session:
        snapshot = await finance.take_snapshot(session, day=date(2003, 8, 1), now=datetime.now(UTC))
    assert snapshot.taken
    async with sessions() as session:
        from_scratch = {b.code: b for b in await finance.balances_at(session, day=date(2003, 8, 1))}
        rows = await finance.snapshot_rows(
            session, day=date(2003, 8, 1), account_prefix=None, limit=100_000, after=None
        )
    assert {r.code: (r.debits_minor, r.credits_minor) for r in rows} == {
        code: (b.debits_minor, b.credits_minor) for code, b in from_scratch.items()
    }
    assert (
        from_scratch[difference.code].debits_minor,
        from_scratch[difference.code].credits_minor,
    ) == (
        100_00,
        350_00,
    )


# -- periods ---------------------------------------------------------------------------------


async def test_a_closed_period_refuses_postings_in_the_database_and_the_api(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    provider = provider_name()
    bank, difference = operator_bank("KZT"), recon_difference(provider, "KZT")
    await post_on(
        sessions, date(2002, 3, 10), _transfer(uuid.uuid4().hex, bank, difference, 100_00)
    )

    later = await operator_api.post("/v1/finance/periods/2002-04/close", json={})
    assert (later.status_code, later.json()["code"]) == (409, "earlier_period_open")
    assert "2002-03" in later.json()["detail"]
    closed = await operator_api.post(
        "/v1/finance/periods/2002-03/close", json={"note": "March signed off"}
    )
    assert closed.status_code == 201, closed.text
    assert (closed.json()["status"], closed.json()["ends_on"]) == ("closed", "2002-03-31")
    again = await operator_api.post("/v1/finance/periods/2002-03/close")
    assert again.status_code == 200
    listed = (await operator_api.get("/v1/finance/periods")).json()
    assert listed["closed_through"] >= "2002-03-31"
    assert "2002-03" in [p["period"] for p in listed["data"]]

    # The database refuses a posting dated in it, or before it, whoever writes it.
    for day in (date(2002, 3, 20), date(2002, 2, 1)):
        with pytest.raises(DBAPIError) as refused:
            await post_on(sessions, day, _transfer(uuid.uuid4().hex, bank, difference, 1_00))
        assert finance.is_period_closed_error(refused.value)
    # The open period takes the correction.
    await post_on(sessions, date(2002, 4, 2), _transfer(uuid.uuid4().hex, difference, bank, 100_00))

    # The API: a resolution booked into the closed period is a clear 409.
    async with sessions.begin() as session:
        case_id = await session.scalar(
            text(
                "INSERT INTO recon_cases (provider, business_date, kind, line_key, amount_minor, "
                "currency, details) VALUES (:p, '2002-03-10', 'unknown_reference', :lk, 100, "
                "'KZT', CAST(:d AS jsonb)) RETURNING id"
            ),
            {"p": provider, "lk": uuid.uuid4().hex, "d": json.dumps({"line_kind": "transfer_in"})},
        )
    booked = await operator_api.post(
        f"/v1/recon/cases/{case_id}/resolve",
        json={"action": "write_off", "note": "March", "booking_date": "2002-03-25"},
    )
    assert (booked.status_code, booked.json()["code"]) == (409, "period_closed")
    assert booked.headers["content-type"].startswith("application/problem+json")
    assert "open period" in booked.json()["detail"]
    now_booked = await operator_api.post(
        f"/v1/recon/cases/{case_id}/resolve",
        json={"action": "write_off", "note": "booked today"},
    )
    assert now_booked.status_code == 200, now_booked.text

    this_month = business_day(datetime.now(UTC)).strftime("%Y-%m")
    open_now = await operator_api.post(f"/v1/finance/periods/{this_month}/close")
    assert (open_now.status_code, open_now.json()["code"]) == (422, "period_not_over")
    for bad in ("2002-13", "02-2002", "2002-3"):
        invalid = await operator_api.post(f"/v1/finance/periods/{bad}/close")
        assert (invalid.status_code, invalid.json()["code"]) == (422, "invalid_period")
    assert (await api.post("/v1/finance/periods/2002-05/close")).status_code == 403
    async with sessions() as session:
        snapshot = await session.scalar(
            text("SELECT accounts FROM balance_snapshots WHERE day = '2002-03-31'")
        )
    assert snapshot is not None
    assert snapshot > 0
    await assert_invariants(sessions)


# -- the reconciliation dashboard ------------------------------------------------------------


async def test_the_reconciliation_view_per_provider_and_day(
    operator_api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    provider, day = provider_name(), date(2003, 9, 15)
    # The day: two deposits booked, the provider reported them plus an unknown payment; the
    # settlement swept clearing to the bank and parked the unknown 500.00 in the difference.
    await post_on(sessions, day, *deposit_specs(provider, 2_000_00, 0))
    await post_on(sessions, day, *deposit_specs(provider, 3_000_00, 0))
    clearing = provider_clearing(provider, "KZT", 0)
    async with sessions.begin() as session:
        await finance.date_postings(session, date(2003, 9, 16))
        await ledger_store.post_transaction(
            session,
            spec=TransactionSpec(
                key=f"test:settle:{uuid.uuid4().hex}",
                kind="recon_settlement",
                payment_id=None,
                entries=(
                    Entry(operator_bank("KZT"), Side.DEBIT, 5_500_00),
                    Entry(clearing, Side.CREDIT, 5_000_00),
                    Entry(recon_difference(provider, "KZT"), Side.CREDIT, 500_00),
                ),
            ),
        )
        settlement_id = await session.scalar(
            text("SELECT max(id) FROM ledger_transactions WHERE kind = 'recon_settlement'")
        )
        report_id = await session.scalar(
            text(
                "INSERT INTO recon_reports (provider, business_date, content_hash, source, "
                "format, currency, net_settled_minor, line_count) VALUES (:p, :d, :h, "
                "'uploaded', 'test.csv', 'KZT', 550000, 3) RETURNING id"
            ),
            {"p": provider, "d": day, "h": uuid.uuid4().hex},
        )
        run_id = await session.scalar(
            text(
                "INSERT INTO recon_runs (provider, business_date, report_id, report_hash, "
                "status, currency, line_count, matched_count, matched_minor, unmatched_count, "
                "unmatched_minor, cases_opened, net_settled_minor, clearing_minor, "
                "difference_minor, settlement_transaction_id) VALUES (:p, :d, :r, :h, "
                "'completed', 'KZT', 3, 2, 500000, 1, 50000, 1, 550000, 500000, -50000, :tx) "
                "RETURNING id"
            ),
            {"p": provider, "d": day, "r": report_id, "h": uuid.uuid4().hex, "tx": settlement_id},
        )
        # The settlement belongs to the day it settles, though posted the next.
        await session.execute(
            text(
                "INSERT INTO recon_postings (ledger_transaction_id, ledger_key, run_id, "
                "provider, business_date, purpose) SELECT id, key, :run, :p, :d, 'settlement' "
                "FROM ledger_transactions WHERE id = :tx"
            ),
            {"run": run_id, "p": provider, "d": day, "tx": settlement_id},
        )
        await session.execute(
            text(
                "INSERT INTO recon_cases (run_id, provider, business_date, kind, line_key, "
                "amount_minor, currency, details) VALUES (:run, :p, :d, 'missing_ours', 'x', "
                "50000, 'KZT', CAST(:details AS jsonb))"
            ),
            {
                "run": run_id,
                "p": provider,
                "d": day,
                "details": json.dumps({"line_kind": "payment"}),
            },
        )

    shown = await operator_api.get(
        "/v1/finance/recon", params={"date": day.isoformat(), "provider": provider}
    )
    assert shown.status_code == 200, shown.text
    [row] = shown.json()["data"]
    assert (row["matched_count"], row["matched_amount"]) == (2, 5_000_00)
    assert (row["unmatched_count"], row["unmatched_amount"]) == (1, 500_00)
    assert (row["open_cases"], row["open_cases_amount"]) == (1, 500_00)
    assert (row["clearing_balance"], row["difference_balance"]) == (0, -500_00)
    assert row["explained"] is True
    assert row["run"]["status"] == "completed"

    page = await anonymous_api.get("/dashboard/recon")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/dashboard/assets/recon.js" in page.text
    script = await anonymous_api.get("/dashboard/assets/recon.js")
    assert script.status_code == 200
    assert "/v1/finance/recon" in script.text
    await assert_invariants(sessions)


async def test_the_nightly_snapshot_workflow_takes_the_days_snapshot(
    temporal_client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = provider_name()
    bank, difference = operator_bank("KZT"), recon_difference(provider, "KZT")
    await post_on(sessions, date(2003, 10, 30), _transfer(uuid.uuid4().hex, bank, difference, 7_00))
    handle = await temporal_client.start_workflow(
        DailySnapshotWorkflow.run,
        DailySnapshotInput(day=date(2003, 10, 31)),
        id=f"test-snapshot-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal_task_queue,
    )
    await _result(handle)
    result = await handle.result()
    assert (result.day, result.taken) == (date(2003, 10, 31), True)
    async with sessions() as session:
        [row] = await finance.snapshot_rows(
            session, day=date(2003, 10, 31), account_prefix=difference.code, limit=5, after=None
        )
    assert (row.debits_minor, row.credits_minor) == (0, 7_00)


async def test_the_nightly_schedule_takes_yesterdays_snapshot(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """On a Temporal dev server (the time-skipping one has no Schedule API): created once,
    brought to its definition again at the next worker start, and triggered it snapshots the
    previous Almaty day."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=pydantic_data_converter
    )
    try:
        queue = f"finance-dev-{uuid.uuid4().hex[:6]}"
        activities = FinanceActivities(sessions=sessions)
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[DailySnapshotWorkflow],
            activities=[activities.take_balance_snapshot],
            workflow_runner=workflow_runner(),
        ):
            first = await ensure_snapshot_schedule(env.client, task_queue=queue)
            again = await ensure_snapshot_schedule(env.client, task_queue=queue)
            assert first == again == SNAPSHOT_SCHEDULE_ID
            schedule = env.client.get_schedule_handle(SNAPSHOT_SCHEDULE_ID)
            described = await schedule.describe()
            action = described.schedule.action
            assert isinstance(action, ScheduleActionStartWorkflow)
            assert action.workflow == "DailySnapshotWorkflow"
            assert described.schedule.spec.time_zone_name == "Asia/Almaty"
            await schedule.trigger()
            result = await _first_run(env.client, schedule)
            assert result.day == business_day(datetime.now(UTC)) - timedelta(days=1)
            await schedule.delete()
    finally:
        await env.shutdown()


async def _first_run(client: Client, schedule: ScheduleHandle) -> DailySnapshotResult:
    """The triggered schedule starts its workflow soon, not at once (no event to await here)."""
    for _ in range(200):
        recent = (await schedule.describe()).info.recent_actions
        if recent:
            started = recent[-1].action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            handle = client.get_workflow_handle(
                started.workflow_id, result_type=DailySnapshotResult
            )
            result: DailySnapshotResult = await handle.result()
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule never started its workflow")
