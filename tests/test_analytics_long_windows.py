"""Migration 0190's rollups: long windows read from local days and the completion histogram give
exactly what sorting every payment gives; the escalation runs follow deposits; the harm-marker
list pages; rebuilding equals recomputation."""

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from db import analytics, rollups
from db.models import Deposit
from tests.analytics_helpers import _deposit, _player, _withdrawal
from tests.test_analytics_rollups import _assert_rollups_exact

# Completion times with ties, sub-second ones and a long tail, so the ranks cross buckets.
_SECONDS = [0.2, 0.25, 3, 3, 3.5, 7, 7.04, 12, 30, 30, 31, 59.9, 60, 61, 119, 600, 3600, 86_400]


async def _fixture(sessions: async_sessionmaker[AsyncSession], base: date) -> None:
    """Deposits and withdrawals every 7 hours over 6 days from `base` (UTC midnight), with the
    completion times above in turn; some deposits fail."""
    start = datetime(base.year, base.month, base.day, tzinfo=UTC)
    players = [_player() for _ in range(3)]
    rows: list[Any] = []
    for i in range(6 * 24 // 7 + 1):
        at = start + timedelta(hours=7 * i, minutes=13 * i % 60)
        seconds = _SECONDS[i % len(_SECONDS)]
        player = players[i % 3]
        status = "failed" if i % 5 == 4 else "succeeded"
        rows += _deposit(
            player,
            at=at,
            amount=1_000 + 7 * i,
            status=status,
            method=("card", "ewallet")[i % 2],
            provider=("halyk", "kaspi", "freedom")[i % 3],
            done_after=seconds,
        )
        if i % 3 == 0:
            rows += _withdrawal(
                player,
                at=at,
                amount=500 + i,
                status="paid",
                provider=("halyk", "kaspi")[i % 2],
                done_after=seconds * 1.5,
            )
    async with sessions.begin() as session:
        session.add_all(players)
        await session.flush()
        session.add_all(rows)
        # Half the withdrawals with a payout deadline, some met, some missed.
        await session.execute(
            text(
                "UPDATE withdrawals SET payout_deadline = created_at + interval '60 s' "
                "WHERE player_id = ANY(:p) AND amount_minor % 2 = 0"
            ),
            {"p": [p.id for p in players]},
        )


async def _both(
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """The summary as served (daily rollups, kept percentiles, histograms, edge hours read
    whole less their payments outside the window), and again reading only hours and the edge
    payments, and sorting every completion time (as before migration 0190)."""
    async with sessions() as session:
        fast = await analytics.summary(session, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(analytics, "local_midnights", lambda start, end, zone: (end, end))
        m.setattr(analytics, "_BY_KEY", {})
        m.setattr(analytics, "edge_hours", partial(analytics.edge_hours, subtract=False))
        async with sessions() as session:
            slow = await analytics.summary(session, **kwargs)
    return fast, slow


async def test_long_windows_equal_sorting_every_payment(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = date(2004, 3, 1)
    await _fixture(sessions, base)
    await _assert_rollups_exact(sessions)
    start = datetime(base.year, base.month, base.day, tzinfo=UTC)
    windows = [
        (start, start + timedelta(days=6)),  # UTC midnights: Almaty days cut at 19:00 UTC
        (start + timedelta(hours=3, minutes=17), start + timedelta(days=5, hours=22, seconds=5)),
        (start + timedelta(hours=20), start + timedelta(hours=40)),  # less than a local day
        # Edge hours read whole less a payment outside: 07:13 on day 0, 23:41 on day 4.
        (start + timedelta(hours=7, minutes=20), start + timedelta(days=4, hours=23, minutes=35)),
        (start + timedelta(days=1, hours=19), start + timedelta(days=3, hours=19)),  # exact days
    ]

    async def kept() -> dict[tuple[str, date], tuple[int, float, float]]:
        """The fixture's days' kept percentiles (closed days, 2004)."""
        async with sessions() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT kind, day, n, median, p95 FROM completion_day_percentiles "
                        "WHERE currency = 'KZT' AND day >= :d0 AND day < :d1"
                    ),
                    {"d0": base - timedelta(days=1), "d1": base + timedelta(days=8)},
                )
            ).all()
        return {(r.kind, r.day): (r.n, r.median, r.p95) for r in rows}

    async def assert_equal(stage: str) -> dict[str | None, Any]:
        """Each window, grouping and zone; the last window's summaries per grouping."""
        last: dict[str | None, Any] = {}
        for begin, end in windows:
            for group_by in (None, "day", "method", "provider"):
                for zone in ("Asia/Almaty", "Europe/London"):
                    fast, slow = await _both(
                        sessions,
                        monkeypatch,
                        start=begin,
                        end=end,
                        group_by=group_by,
                        time_zone=zone,
                    )
                    assert fast == slow, (begin, end, group_by, zone, stage)
                    last[group_by] = fast
        return last

    # Deltas pending: the histograms' days, no kept percentiles yet.
    assert await kept() == {}
    await assert_equal("pending")
    async with sessions() as session:
        assert await rollups.fold(session) > 0
    # Folded: each closed day's percentiles kept (6 days of payments: 7 local days).
    stored = await kept()
    assert {day for _, day in stored} == {base + timedelta(days=d) for d in range(7)}
    last = await assert_equal("folded")
    total, methods = last["method"]
    assert total.deposits["succeeded"] == 5
    assert total.deposits["median_seconds_to_complete"] is not None
    assert total.withdrawals["paid_in_time"] > 0
    assert {g.key for g in methods} == {"card", "ewallet"}
    total, providers = last["provider"]
    assert {g.key for g in providers} == {"halyk", "kaspi", "freedom"}
    assert sum(g.deposits["succeeded"] for g in providers) == 5
    assert all(g.deposits["median_seconds_to_complete"] is not None for g in providers)

    # A late completion on a kept day: its delta is pending, so the day is read from the
    # histogram until the next fold keeps it again, with the new completion.
    late_day = base + timedelta(days=2)
    late_at = datetime(late_day.year, late_day.month, late_day.day, 6, tzinfo=UTC)  # 11:00
    async with sessions.begin() as session:
        player = _player()
        session.add(player)
        await session.flush()
        session.add_all(
            _withdrawal(player, at=late_at, amount=777, status="paid", done_after=99_999)
        )
    await assert_equal("late")
    async with sessions() as session:
        assert await rollups.fold(session) > 0
    after = await kept()
    n, _, p95 = stored.get(("withdrawal", late_day), (0, 0.0, 0.0))
    assert after[("withdrawal", late_day)][0] == n + 1
    assert after[("withdrawal", late_day)][2] > p95  # the slowest payout yet
    assert {k: v for k, v in after.items() if k != ("withdrawal", late_day)} == {
        k: v for k, v in stored.items() if k != ("withdrawal", late_day)
    }
    await assert_equal("late, folded")
    await _assert_rollups_exact(sessions)


async def test_escalation_runs_follow_deposits_and_the_list_pages(
    sessions: async_sessionmaker[AsyncSession], operator_api: httpx.AsyncClient
) -> None:
    currency = "XXX"  # ISO 4217's "no currency": other tests' deposits never count
    # Noon in Almaty three days ago: never night deposits.
    almaty = ZoneInfo("Asia/Almaty")
    day = (datetime.now(almaty) - timedelta(days=3)).date()
    at = datetime(day.year, day.month, day.day, 9, tzinfo=almaty).astimezone(UTC)
    players = [_player() for _ in range(3)]
    ids: dict[str, list[str]] = {}
    rows: list[Any] = []
    for p in players:
        for n, amount in enumerate((1_000, 2_000, 3_000, 4_000)):
            for row in _deposit(p, at=at + timedelta(hours=n), amount=amount, status="succeeded"):
                if isinstance(row, Deposit):
                    row.currency = currency
                    ids.setdefault(p.id, []).append(row.id)
                rows.append(row)
    async with sessions.begin() as session:
        session.add_all(players)
        await session.flush()
        session.add_all(rows)

    async def run(player: str) -> int:
        async with sessions() as session:
            found = await session.scalar(
                text(
                    "SELECT rising_n FROM player_escalations WHERE player_id = :p AND currency = :c"
                ),
                {"p": player, "c": currency},
            )
        return int(found or 0)

    first, second, third = sorted(p.id for p in players)
    assert [await run(p) for p in (first, second, third)] == [4, 4, 4]
    # The second player's 3,000 fails: 1,000, 2,000, 4,000 still rise. The third one deposits
    # less than before: a run of one.
    async with sessions.begin() as session:
        await session.execute(
            update(Deposit).where(Deposit.id == ids[second][2]).values(status="failed")
        )
        for row in _deposit(
            players[[p.id for p in players].index(third)],
            at=at + timedelta(hours=9),
            amount=10,
            status="succeeded",
        ):
            if isinstance(row, Deposit):
                row.currency = currency
            session.add(row)
    assert [await run(p) for p in (first, second, third)] == [4, 3, 1]
    await _assert_rollups_exact(sessions)

    # Two escalating players, one a page, in id order; then the end.
    seen: list[str] = []
    after = ""
    for _ in range(3):
        page = await operator_api.get(
            "/v1/analytics/harm-markers",
            params={"currency": currency, "limit": "1", "after": after},
        )
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [p["player_id"] for p in body["data"]]
        if body["next_after"] is None:
            break
        after = body["next_after"]
    assert seen == [first]
    markers = {
        m["marker"]
        for p in (
            await operator_api.get("/v1/analytics/harm-markers", params={"currency": currency})
        ).json()["data"]
        for m in p["markers"]
    }
    assert markers == {"deposit_escalation"}


async def test_rebuild_equals_recomputation_with_deltas_pending(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _fixture(sessions, date(2004, 5, 1))
    async with sessions() as session:
        pending = await session.scalar(text("SELECT count(*) FROM completion_daily_deltas"))
    assert pending
    # As migrations 0190 and 0260 backfill (the others' deltas still pending), then everything.
    for tables in (rollups.ROLLUPS_0190, rollups.ROLLUPS_0260, None):

        def rebuild(session: Session, tables: tuple[str, ...] | None = tables) -> None:
            rollups.rebuild(session.connection(), tables=tables)

        async with sessions.begin() as session:
            await session.run_sync(rebuild)
        await _assert_rollups_exact(sessions)
