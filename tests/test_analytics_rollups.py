"""Rollups (migration 0170): kept by triggers, equal to recomputation, Asia/Almaty days, window
edges, the wallet statement's stored balance, and `python -m db.rollups check`."""

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.routers.analytics import time_zone
from config import child_environment
from db import ledger as ledger_store
from db import rollups
from db.analytics import hour_span
from db.models import Deposit, PaymentAttempt, PaymentEvent, Withdrawal
from domain.ledger import deposit_credit, player_wallet
from tests.analytics_helpers import _deposit, _player, insert_fixture
from tests.conftest import new_player
from tests.ledger_helpers import fresh

ROOT = Path(__file__).resolve().parent.parent
ALMATY = ZoneInfo("Asia/Almaty")


async def _assert_rollups_exact(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        counts, found = await rollups.check(session)
    assert not any(counts.values()), (counts, found)


async def _summary(api: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await api.get("/v1/analytics/summary", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_rollups_follow_inserts_updates_deletes_and_folds(
    sessions: async_sessionmaker[AsyncSession], operator_api: httpx.AsyncClient
) -> None:
    ids = await insert_fixture(sessions, date(2003, 7, 1))
    await _assert_rollups_exact(sessions)
    window = {"from": "2003-07-01T00:00:00Z", "to": "2003-07-03T00:00:00Z"}
    before = (await _summary(operator_api, **window))["totals"]
    assert before["deposits"]["count"] == 6
    deposits = [i for i in ids if i.startswith("dep_")]
    withdrawals = [i for i in ids if i.startswith("wd_")]
    # The processing deposit succeeds (its event comes after the status), another is deleted
    # (never done by the platform, but the rollups must follow), a withdrawal is paid.
    async with sessions.begin() as session:
        processing = await session.scalar(
            text("SELECT id FROM deposits WHERE id = ANY(:ids) AND status = 'processing'"),
            {"ids": deposits},
        )
        assert processing is not None
        await session.execute(
            update(Deposit).where(Deposit.id == processing).values(status="succeeded")
        )
        at = await session.scalar(
            text("SELECT created_at FROM deposits WHERE id = :i"), {"i": processing}
        )
        session.add(
            PaymentEvent(
                payment_id=processing, status="succeeded", occurred_at=at + timedelta(seconds=7)
            )
        )
        in_review = await session.scalar(
            text("SELECT id FROM withdrawals WHERE id = ANY(:ids) AND status = 'in_review'"),
            {"ids": withdrawals},
        )
        await session.execute(
            update(Withdrawal).where(Withdrawal.id == in_review).values(status="paid")
        )
        failed = await session.scalar(
            text("SELECT id FROM deposits WHERE id = ANY(:ids) AND status = 'failed'"),
            {"ids": deposits},
        )
        await session.execute(
            text("DELETE FROM payment_events WHERE payment_id = :i"), {"i": failed}
        )
        await session.execute(text("DELETE FROM deposits WHERE id = :i"), {"i": failed})
        session.add(
            PaymentAttempt(
                payment_id=processing,
                step="charge",
                attempt_no=1,
                provider="halyk",
                outcome="ok",
                latency_ms=42,
            )
        )
    await _assert_rollups_exact(sessions)
    after = (await _summary(operator_api, **window))["totals"]  # folds the deltas first
    async with sessions() as session:
        pending = await session.scalar(text("SELECT count(*) FROM payment_hourly_deltas"))
    assert pending == 0
    await _assert_rollups_exact(sessions)
    dep, wd = after["deposits"], after["withdrawals"]
    assert dep["count"] == 5
    assert dep["by_status"] == {"succeeded": 4, "declined": 1}
    assert dep["volume_minor"] == before["deposits"]["volume_minor"] + 30_000
    assert dep["median_seconds_to_complete"] == 20.0  # of 7, 10, 30, 90
    assert dep["unsuccessful_reasons"] == [
        {"status": "declined", "reason": "risk: velocity", "count": 1}
    ]
    assert wd["by_status"] == {"paid": 2, "rejected": 1}
    assert wd["paid"] == 2


async def test_almaty_day_boundaries_and_window_edges(
    sessions: async_sessionmaker[AsyncSession], operator_api: httpx.AsyncClient
) -> None:
    # 23:30 in Almaty on 10 June 2025 is 18:30 UTC: that Almaty day, whatever the UTC date.
    late = datetime(2025, 6, 10, 23, 30, tzinfo=ALMATY)
    early = datetime(2025, 6, 11, 0, 30, tzinfo=ALMATY)  # 19:30 UTC on 10 June
    player = _player()
    rows: list[Any] = []
    rows += _deposit(player, at=late.astimezone(UTC), amount=1_111, status="succeeded")
    rows += _deposit(player, at=early.astimezone(UTC), amount=2_222, status="succeeded")
    async with sessions.begin() as session:
        session.add(player)
        await session.flush()
        session.add_all(rows)
    window = {"from": "2025-06-10T00:00:00+05:00", "to": "2025-06-12T00:00:00+05:00"}
    days = {
        g["key"]: g["deposits"]["volume_minor"]
        for g in (await _summary(operator_api, group_by="day", **window))["groups"]
    }
    assert days == {"2025-06-10": 1_111, "2025-06-11": 2_222}
    body = await _summary(operator_api, group_by="day", tz="UTC", **window)
    assert body["time_zone"] == "UTC"
    assert {g["key"]: g["deposits"]["volume_minor"] for g in body["groups"]} == {
        "2025-06-10": 3_333
    }
    # Windows that cut an hour: the edges are read from the payments themselves.
    inside = await _summary(
        operator_api, **{"from": "2025-06-10T23:15:00+05:00", "to": "2025-06-10T23:45:00+05:00"}
    )
    assert inside["totals"]["deposits"]["volume_minor"] == 1_111
    after = await _summary(
        operator_api, **{"from": "2025-06-10T23:31:00+05:00", "to": "2025-06-11T00:29:00+05:00"}
    )
    assert after["totals"]["deposits"]["count"] == 0
    both = await _summary(
        operator_api,
        **{"from": "2025-06-10T23:30:00+05:00", "to": "2025-06-11T00:30:00.000001+05:00"},
    )
    assert both["totals"]["deposits"]["volume_minor"] == 3_333
    bad = await operator_api.get("/v1/analytics/summary", params={"tz": "Mars/Olympus"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_time_zone")


def test_hour_span_and_zone() -> None:
    t = datetime(2025, 1, 1, 10, 30, tzinfo=UTC)
    assert hour_span(t, t + timedelta(hours=3)) == (
        datetime(2025, 1, 1, 11, tzinfo=UTC),
        datetime(2025, 1, 1, 13, tzinfo=UTC),
    )
    assert hour_span(t, t + timedelta(minutes=20)) == (t + timedelta(minutes=20),) * 2
    aligned = datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert hour_span(aligned, aligned + timedelta(hours=1)) == (
        aligned,
        aligned + timedelta(hours=1),
    )
    assert time_zone(None, "Asia/Almaty") == "Asia/Almaty"


async def test_statement_reads_stored_balances(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await new_player(api)
    for amount in (5_000, 7_000):
        await ledger_store.post(
            sessions,
            deposit_credit(
                deposit_id=fresh("dep"),
                player_id=player,
                provider="halyk",
                amount_minor=amount,
                currency="KZT",
            ),
        )
    bet = await api.post(
        f"/v1/players/{player}/game-transactions",
        json={"type": "bet", "amount": 2_000, "round_id": f"r-{uuid.uuid4().hex[:8]}"},
    )
    assert bet.status_code == 201, bet.text
    async with sessions() as session:
        stored = (
            (
                await session.execute(
                    text(
                        "SELECT b.balance_after FROM ledger_entry_balances b "
                        "JOIN ledger_accounts a ON a.id = b.account_id "
                        "WHERE a.code = :code ORDER BY b.entry_id"
                    ),
                    {"code": player_wallet(player, "KZT").code},
                )
            )
            .scalars()
            .all()
        )
    page = await api.get(f"/v1/players/{player}/statement", params={"limit": 2})
    lines = page.json()["data"]
    assert [line["balance_after"] for line in lines] == [5_000, 12_000]
    rest = await api.get(
        f"/v1/players/{player}/statement",
        params={"limit": 2, "cursor": page.json()["next_cursor"]},
    )
    assert [line["balance_after"] for line in rest.json()["data"]] == [10_000]
    assert list(stored) == [5_000, 12_000, 10_000]
    await _assert_rollups_exact(sessions)


async def test_checker_command(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "db.rollups", *args],
            cwd=ROOT,
            env=child_environment({"PAY_DATABASE_URL": database_url}),
            capture_output=True,
            text=True,
            check=False,
        )

    ok = await asyncio.to_thread(run, "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   payment_hourly" in ok.stdout
    # Break a rollup by hand: the checker names it and fails.
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO payment_hourly_deltas (kind, hour, method, provider, status, reason, "
                "currency, n, amount_minor, fraud) VALUES ('deposit', '1999-01-01T00:00Z', "
                "'card', 'halyk', 'succeeded', '', 'KZT', 1, 5, 0)"
            )
        )
    try:
        broken = await asyncio.to_thread(run, "check")
        assert broken.returncode == 1
        assert "FAIL payment_hourly" in broken.stdout
        assert "FAIL payment_totals" in broken.stdout
    finally:
        async with sessions.begin() as session:
            await session.execute(
                text("DELETE FROM payment_hourly_deltas WHERE hour = '1999-01-01T00:00Z'")
            )
    folded = await asyncio.to_thread(run, "fold")
    assert folded.returncode == 0, folded.stderr
    assert (await asyncio.to_thread(run, "check")).returncode == 0
