# ruff: noqa: S608  (SQL built from this module's constants and integers only)
"""`python -m bench.analytics`: the analytics reads at scale, timed (issue 19).

It starts its own embedded PostgreSQL (or uses `--database-url` / `PAY_DATABASE_URL`), then

1. times the database side of one card deposit (insert, processing, succeeded with its event,
   the rollup triggers included) on the empty database;
2. seeds `--players`, `--deposits` and `--withdrawals` over `--days` straight into PostgreSQL
   (INSERT ... SELECT generate_series, triggers off), plus provider attempts and success events,
   then recomputes the rollups from that history (`db.rollups.rebuild`, timed) and checks them;
3. seeds one wallet with `--wallet-entries` postings through the posting functions (the stored
   running balance trigger on);
4. times, through the ASGI app with an operator key: the summary (30 days: totals, by day,
   method, provider; 180 days the same), `/metrics`, the segments, the cohorts, the harm markers,
   a player profile, a statement page at the start and deep in the wallet, the dashboard's
   analytics refresh (its four summaries, the segments and the checkout funnel, concurrently);
   and the card deposit's database side again on the loaded database.

5. the sustained run of the issue's "done means": payments flowing (`--payers` loops, each a
   card deposit's database side on the API's own pool and a `GET /v1/players/{id}` through
   the API) for `--baseline-seconds` alone, then for `--sustained-minutes` (default 10) with
   the dashboard open, a full refresh every `--refresh-seconds` (5) whether or not the last
   one finished; it prints the payments' latencies in both phases, every non-2xx answer or
   error (the goal: none) and the most connections each API pool had checked out;
6. the card deposit end to end (`--end-to-end` N, default 60; 0 skips it): `bench.payments`'
   embedded stack (API, Temporal dev server, worker, provider simulator) started twice, over
   the seeded database and over a fresh empty database on the same server, N card deposits on
   each through `POST /v1/deposits` to the workflow's result, one at a time, the two stacks
   taking turns; p50/p95 of each and their ratio against the 10 % goal.

It prints p50/p95 per read and the goals (read p95 < 150 ms, refresh < 500 ms, deposit within
10 % of the empty database, no failed request while the dashboard is open). With
`--sustained-minutes 0` the defaults run in a few minutes; `--deposits 1000000 --withdrawals
150000 --players 100000` is the issue's full size.
"""

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from bench.database import add_database_argument, embedded_database, run_on_database
from bench.payments import DEPOSITS_PER_PLAYER, PaymentBench, Phase, Target, drive, started_stack
from db import ledger as ledger_store
from db import rollups
from db.engine import make_engine, make_sessionmaker
from domain.ledger import TransactionSpec, deposit_credit
from stack.launcher import embedded_api_workers

READ_P95_MS = 150.0
_RISK = '{"decision": "approve", "score": 0, "reasons": []}'
REFRESH_MS = 500.0
E2E_BATCH = 10  # end-to-end deposits per stack per turn; the two stacks take turns
E2E_WARMUP = 5  # uncounted end-to-end deposits on each stack first
E2E_TIMEOUT_S = 60.0  # a deposit not terminal by then is counted as an error, not awaited


def _sync_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _seed(url: str, args: argparse.Namespace, out: Callable[[str], None]) -> None:
    """Players, deposits, withdrawals, events and attempts over `days`, triggers off."""
    days, players = args.days, args.players
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    statements = [
        f"""INSERT INTO persons (id, iin, birth_date)
            SELECT 'bp_' || i, lpad(i::text, 12, '0'), date '1990-01-01'
            FROM generate_series(1, {players}) i""",
        f"""INSERT INTO players (id, external_id, iin, full_name, birth_date, phone, created_at,
                                 person_id)
            SELECT 'bpl_' || i, 'bench-' || i, lpad(i::text, 12, '0'), 'Bench Player',
                   date '1990-01-01', '+77010000000',
                   timestamptz '{start.isoformat()}' + (i % {days}) * interval '1 day',
                   'bp_' || i
            FROM generate_series(1, {players}) i""",
        f"""INSERT INTO deposits (id, player_id, amount_minor, currency, method, status,
                                  status_reason, provider, risk, workflow_id, created_at,
                                  updated_at)
            SELECT 'bdep_' || i, 'bpl_' || (1 + (i * 7919) % {players}),
                   100000 + (i * 37) % 5000000, 'KZT',
                   (ARRAY['card', 'card', 'card', 'ewallet', 'qr', 'bank_transfer'])[1 + i % 6],
                   s.status,
                   CASE WHEN s.status IN ('failed', 'declined') THEN 'insufficient_funds' END,
                   (ARRAY['halyk', 'kaspi', 'freedom', 'cloudpayments', 'ioka'])[1 + i % 5],
                   CASE WHEN i % 50 = 0
                        THEN '{{"decision": "review", "score": 60, "reasons": []}}'::jsonb
                        ELSE '{{"decision": "approve", "score": 0, "reasons": []}}'::jsonb END,
                   'deposit-bdep_' || i, t.at, t.at
            FROM generate_series(1::bigint, {args.deposits}) i,
                 LATERAL (SELECT timestamptz '{start.isoformat()}'
                          + (i::float8 / {args.deposits}) * interval '{days} days' AS at) t,
                 LATERAL (SELECT CASE WHEN i % 10 < 8 THEN 'succeeded'
                                      WHEN i % 10 = 8 THEN 'failed'
                                      WHEN i % 100 = 99 THEN 'processing'
                                      ELSE 'declined' END AS status) s""",
        """INSERT INTO payment_events (payment_id, status, occurred_at)
           SELECT id, 'succeeded', created_at + ((hashtext(id) & 1023) % 120 + 2) * interval '1 s'
           FROM deposits WHERE id LIKE 'bdep_%' AND status = 'succeeded'""",
        """INSERT INTO payment_attempts (payment_id, step, attempt_no, provider, outcome,
                                         latency_ms, created_at)
           SELECT id, 'charge', 1, provider, CASE WHEN status = 'failed' THEN 'declined'
                  ELSE 'ok' END, 20 + (hashtext(id) & 4095) % 900, created_at
           FROM deposits WHERE id LIKE 'bdep_%'""",
        f"""INSERT INTO withdrawals (id, player_id, amount_minor, currency, method, destination,
                                     destination_fingerprint, status, status_reason, provider,
                                     risk, approvals_needed, workflow_id, created_at, updated_at,
                                     payout_deadline)
            SELECT 'bwd_' || i, 'bpl_' || (1 + (i * 104729) % {players}),
                   200000 + (i * 53) % 9000000, 'KZT',
                   (ARRAY['card', 'ewallet', 'bank_transfer'])[1 + i % 3],
                   '{{"display": "bench"}}'::jsonb, md5(i::text)::varchar(32),
                   CASE WHEN i % 10 < 8 THEN 'paid' WHEN i % 10 = 8 THEN 'rejected'
                        ELSE 'in_review' END,
                   CASE WHEN i % 10 = 8 THEN 'operator: bench' END,
                   (ARRAY['halyk', 'kaspi', 'kzbank'])[1 + i % 3],
                   '{{"decision": "approve", "score": 0, "reasons": []}}'::jsonb, 1,
                   'withdrawal-bwd_' || i, t.at, t.at,
                   t.at + interval '3 days'
            FROM generate_series(1::bigint, {args.withdrawals}) i,
                 LATERAL (SELECT timestamptz '{start.isoformat()}'
                          + (i::float8 / {args.withdrawals}) * interval '{days} days' AS at) t""",
        """INSERT INTO payment_events (payment_id, status, occurred_at)
           SELECT id, 'paid', created_at + ((hashtext(id) & 8191) % 7200 + 60) * interval '1 s'
           FROM withdrawals WHERE id LIKE 'bwd_%' AND status = 'paid'""",
    ]
    with psycopg.connect(_sync_url(url), autocommit=True) as db:
        db.execute("SET session_replication_role = replica")  # bulk load: triggers off
        for sql in statements:
            began = time.perf_counter()
            db.execute(sql)
            out(f"  seeded in {time.perf_counter() - began:5.1f} s: {' '.join(sql.split()[:3])}")
        db.execute("SET session_replication_role = DEFAULT")
        db.execute("ANALYZE")


def _rebuild(url: str, out: Callable[[str], None]) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    began = time.perf_counter()
    with engine.begin() as connection:
        rollups.rebuild(connection)
    out(f"  rollups recomputed from history in {time.perf_counter() - began:.1f} s")
    engine.dispose()
    with psycopg.connect(_sync_url(url), autocommit=True) as db:
        db.execute("ANALYZE")


async def _deposit_write(
    sessions: async_sessionmaker[AsyncSession], n: int, player: str | None = None
) -> list[float]:
    """The database side of one card deposit, n times: insert, processing, succeeded + event."""
    from sqlalchemy import text

    times: list[float] = []
    if player is None:
        async with sessions() as session:
            player = await session.scalar(text("SELECT id FROM players LIMIT 1"))
    for _ in range(n):
        dep = f"dep_{uuid.uuid4().hex[:20]}"
        began = time.perf_counter()
        async with sessions.begin() as session:
            await session.execute(
                text(
                    "INSERT INTO deposits (id, player_id, amount_minor, currency, method, status, "
                    "provider, risk, workflow_id) VALUES (:id, :p, 500000, 'KZT', 'card', "
                    "'pending', 'halyk', CAST(:risk AS jsonb), :wf)"
                ),
                {"id": dep, "p": player, "wf": f"deposit-{dep}", "risk": _RISK},
            )
        async with sessions.begin() as session:
            await session.execute(
                text("UPDATE deposits SET status = 'processing' WHERE id = :id"), {"id": dep}
            )
        async with sessions.begin() as session:
            await session.execute(
                text(
                    "INSERT INTO payment_events (payment_id, status, occurred_at) "
                    "VALUES (:id, 'succeeded', now())"
                ),
                {"id": dep},
            )
            await session.execute(
                text("UPDATE deposits SET status = 'succeeded', updated_at = now() WHERE id = :id"),
                {"id": dep},
            )
        times.append((time.perf_counter() - began) * 1000)
    return times


async def _wallet(sessions: async_sessionmaker[AsyncSession], player: str, entries: int) -> None:
    specs: list[TransactionSpec] = [
        deposit_credit(
            deposit_id=f"bench-{uuid.uuid4().hex[:16]}",
            player_id=player,
            provider="halyk",
            amount_minor=1_000 + i,
            currency="KZT",
        )
        for i in range(entries)
    ]
    for i in range(0, len(specs), 500):
        async with sessions.begin() as session:
            await ledger_store.post_transactions(session, specs=specs[i : i + 500])


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


async def _time(
    name: str,
    call: Callable[[], Awaitable[None]],
    repeat: int,
    out: Callable[[str], None],
    goal_ms: float,
) -> bool:
    await call()  # warm
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    p50, p95 = _percentiles(times)
    ok = p95 < goal_ms
    out(f"  {name:<44} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {'ok' if ok else 'OVER'}")
    return ok


async def _reads(url: str, args: argparse.Namespace, out: Callable[[str], None]) -> bool:
    from api.app import create_app
    from config import Settings
    from db.api_keys import issue_key
    from domain.roles import Role

    settings = Settings(environment="test", database_url=url)
    app = create_app(settings)
    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:
        key = (await issue_key(session, name="bench", role=Role.OPERATOR)).secret
        merchant = (await issue_key(session, name="bench", role=Role.MERCHANT)).secret
    wallet_player = "bpl_1"
    began = time.perf_counter()
    await _wallet(sessions, wallet_player, args.wallet_entries)
    out(f"  {args.wallet_entries:,} wallet postings in {time.perf_counter() - began:.1f} s")
    ok = True
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(
                transport=transport,
                base_url="http://api",
                headers={"Authorization": f"Bearer {key}"},
            ) as api,
            httpx.AsyncClient(
                transport=transport,
                base_url="http://api",
                headers={"Authorization": f"Bearer {merchant}"},
            ) as merchant_api,
        ):

            def get(
                path: str, params: dict[str, str] | None = None, client: httpx.AsyncClient = api
            ) -> Callable[[], Awaitable[None]]:
                async def call() -> None:
                    response = await client.get(path, params=params)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} {params}: {response.status_code}")

                return call

            now = datetime.now(UTC)
            month = {"from": (now - timedelta(days=30)).isoformat(), "to": now.isoformat()}
            half = {"from": (now - timedelta(days=180)).isoformat(), "to": now.isoformat()}
            summary = "/v1/analytics/summary"
            reads: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("summary 30 d", get(summary, month)),
                ("summary 30 d group_by=day", get(summary, {"group_by": "day", **month})),
                ("summary 30 d group_by=method", get(summary, {"group_by": "method", **month})),
                ("summary 30 d group_by=provider", get(summary, {"group_by": "provider", **month})),
                ("summary 180 d", get(summary, half)),
                ("summary 180 d group_by=day", get(summary, {"group_by": "day", **half})),
                ("summary 180 d group_by=method", get(summary, {"group_by": "method", **half})),
                (
                    "summary 180 d group_by=provider",
                    get(summary, {"group_by": "provider", **half}),
                ),
                ("/metrics", get("/metrics")),
                ("segments", get("/v1/analytics/segments")),
                ("cohorts (6 months)", get("/v1/analytics/cohorts")),
                ("harm markers (list)", get("/v1/analytics/harm-markers")),
                ("player profile", get(f"/v1/players/{wallet_player}/profile")),
                (
                    "statement, first page",
                    get(f"/v1/players/{wallet_player}/statement", {"limit": "50"}, merchant_api),
                ),
            ]
            for name, call in reads:
                ok &= await _time(name, call, args.repeat, out, READ_P95_MS)
            # A page deep in the wallet: the cursor of the last page.
            async with sessions() as session:
                from sqlalchemy import text

                deep = await session.scalar(
                    text(
                        "SELECT max(entry_id) - 50 FROM ledger_entry_balances b JOIN "
                        "ledger_accounts a ON a.id = b.account_id WHERE a.owner_id = :p"
                    ),
                    {"p": wallet_player},
                )
            import base64

            cursor = base64.urlsafe_b64encode(f"e{deep}".encode()).decode()
            ok &= await _time(
                "statement, last page",
                get(f"/v1/players/{wallet_player}/statement", {"cursor": cursor}, merchant_api),
                args.repeat,
                out,
                READ_P95_MS,
            )
            dashboard = [
                get(summary),
                get(summary, {"group_by": "day"}),
                get(summary, {"group_by": "method"}),
                get(summary, {"group_by": "provider"}),
                get("/v1/analytics/segments"),
                get("/v1/analytics/cohorts", {"months": "6"}),
                get("/v1/analytics/harm-markers", {"limit": "20"}),
            ]
            funnel = await api.get("/v1/analytics/checkout-funnel")
            if funnel.status_code == 200:
                dashboard.append(get("/v1/analytics/checkout-funnel"))

            async def refresh() -> None:
                await asyncio.gather(*(call() for call in dashboard))

            ok &= await _time(
                f"dashboard analytics refresh ({len(dashboard)} requests)",
                refresh,
                args.repeat,
                out,
                REFRESH_MS,
            )
            if args.sustained_minutes > 0:
                paths = [(path, params) for path, params in _DASHBOARD]
                if funnel.status_code == 200:
                    paths.append(("/v1/analytics/checkout-funnel", None))
                ok &= await _sustained(app, api, merchant_api, paths, args, out)
    await engine.dispose()
    return ok


# The dashboard's refresh (api/static/dashboard.js): four summaries, the segments, cohorts and
# harm markers, and the operations panels on the payments pool (the review queue, stuck
# payments, providers, alerts).
_DASHBOARD: list[tuple[str, dict[str, str] | None]] = [
    ("/v1/withdrawals", {"status": "in_review", "order": "deadline", "limit": "50"}),
    ("/v1/ops/stuck", {"older_than": "10m", "limit": "50"}),
    ("/v1/ops/providers", None),
    ("/v1/ops/alerts", {"status": "open", "limit": "5"}),
    ("/v1/analytics/summary", None),
    ("/v1/analytics/summary", {"group_by": "day"}),
    ("/v1/analytics/summary", {"group_by": "method"}),
    ("/v1/analytics/summary", {"group_by": "provider"}),
    ("/v1/analytics/segments", None),
    ("/v1/analytics/cohorts", {"months": "6"}),
    ("/v1/analytics/harm-markers", {"limit": "20"}),
]


def _line(name: str, times: list[float]) -> str:
    if not times:
        return f"{name}: none"
    p50, p95 = _percentiles(times)
    return f"{name}: {len(times):,}, p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms"


async def _sustained(
    app: Any,
    api: httpx.AsyncClient,
    merchant_api: httpx.AsyncClient,
    dashboard: list[tuple[str, dict[str, str] | None]],
    args: argparse.Namespace,
    out: Callable[[str], None],
) -> bool:
    """Payments flowing (`--payers` loops: a card deposit's database side on the API's own pool,
    then `GET /v1/players/{id}` through the API) for `--baseline-seconds` without the
    dashboard, then `--sustained-minutes` with it open: a full refresh every
    `--refresh-seconds` whether or not the last one finished (several tabs, or one slow
    refresh overlapping the next). Prints the payments' latencies in both phases, every
    non-2xx answer, and the API's two pools (the most connections checked out)."""
    from sqlalchemy import text

    state = app.state.payments
    pools = {"payments": state.engine.pool, "analytics": state.analytics_engine.pool}
    async with state.sessions() as session:
        players = list(
            (
                await session.execute(
                    # Not the player the deposit timings use (`players LIMIT 1`).
                    text("SELECT id FROM players ORDER BY id DESC LIMIT :n"),
                    {"n": args.payers},
                )
            ).scalars()
        )

    async def phase(seconds: float, with_dashboard: bool) -> bool:
        stop = asyncio.Event()
        deposits: list[float] = []
        reads: list[float] = []
        refreshes: list[float] = []
        failed: dict[str, int] = {}
        peak = dict.fromkeys(pools, 0)

        def fail(what: str) -> None:
            failed[what] = failed.get(what, 0) + 1

        async def payer(player: str) -> None:
            while not stop.is_set():
                try:
                    deposits.extend(await _deposit_write(state.sessions, 1, player))
                except Exception as exc:
                    fail(f"deposit write: {type(exc).__name__}")
                began = time.perf_counter()
                response = await merchant_api.get(f"/v1/players/{player}")
                reads.append((time.perf_counter() - began) * 1000)
                if not 200 <= response.status_code < 300:
                    fail(f"GET /v1/players/{{id}} {response.status_code}")

        async def refresh() -> None:
            began = time.perf_counter()
            answers = await asyncio.gather(
                *(api.get(path, params=params) for path, params in dashboard),
                return_exceptions=True,
            )
            refreshes.append((time.perf_counter() - began) * 1000)
            for (path, _), answer in zip(dashboard, answers, strict=True):
                if isinstance(answer, BaseException):
                    fail(f"{path} {type(answer).__name__}")
                elif not 200 <= answer.status_code < 300:
                    fail(f"{path} {answer.status_code}")

        async def dashboard_open() -> None:
            running: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                task = asyncio.create_task(refresh())
                running.add(task)
                task.add_done_callback(running.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.refresh_seconds)
            await asyncio.gather(*running)

        async def sample() -> None:
            while not stop.is_set():
                for name, pool in pools.items():
                    peak[name] = max(peak[name], pool.checkedout())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)

        tasks = [asyncio.create_task(payer(p)) for p in players]
        tasks.append(asyncio.create_task(sample()))
        if with_dashboard:
            tasks.append(asyncio.create_task(dashboard_open()))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        label = "with the dashboard open" if with_dashboard else "without the dashboard"
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        out(f"  {label} ({seconds:.0f} s, {len(players)} payers; load average {load}):")
        out(f"    {_line('card deposits, database side', deposits)}")
        out(f"    {_line('GET /v1/players/{id} (API, payments pool)', reads)}")
        if with_dashboard:
            out(
                f"    {_line(f'dashboard refreshes (every {args.refresh_seconds:g} s)', refreshes)}"
            )
        out(
            "    pools, most checked out: "
            + ", ".join(
                # make_engine: as many overflow connections as pooled ones
                f"{name} {peak[name]} of {pool.size()} (+{pool.size()} overflow)"
                for name, pool in pools.items()
            )
        )
        out(f"    non-2xx answers and errors: {failed or 0}")
        return not failed

    out("sustained run (issue 19: payments flowing while the dashboard is open):")
    ok = await phase(args.baseline_seconds, with_dashboard=False)
    ok &= await phase(args.sustained_minutes * 60, with_dashboard=True)
    return ok


async def _deposit_timing(url: str, n: int) -> float:
    engine = make_engine(url, pool_size=2)
    try:
        times = await _deposit_write(make_sessionmaker(engine), n)
    finally:
        await engine.dispose()
    return _percentiles(times)[0]


@contextlib.contextmanager
def _empty_database(url: str, out: Callable[[str], None]) -> Iterator[str]:
    """A fresh database on the seeded one's server (same settings, same cores, same buffers),
    dropped afterwards; a fresh embedded PostgreSQL if that server refuses to create one."""
    from sqlalchemy.engine import make_url

    name = f"bench_empty_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(_sync_url(url), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        out(f"  cannot create a database there ({type(exc).__name__}): a fresh embedded one")
        with tempfile.TemporaryDirectory(prefix="bench-analytics-empty-") as directory:
            empty, cleanup = embedded_database(Path(directory))
            try:
                yield empty
            finally:
                cleanup()
        return
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_sync_url(url), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _end_to_end(url: str, args: argparse.Namespace, out: Callable[[str], None]) -> bool:
    """`--end-to-end` card deposits through the API, the deposit workflow, the worker and the
    provider simulator (`bench.payments`' stack and driver), one at a time, on a stack over the
    seeded database and one over an empty database, side by side; the two take turns by
    `E2E_BATCH` so the machine's changing load falls on both. Latency: POST to the workflow's
    result. The goal: the seeded database's p50 within 10 % of the empty one's."""
    count = args.end_to_end
    sizes = [E2E_WARMUP] + [E2E_BATCH] * (count // E2E_BATCH)
    if count % E2E_BATCH:
        sizes.append(count % E2E_BATCH)
    # Each turn its own players, at most DEPOSITS_PER_PLAYER deposits each (velocity rules).
    needed = sum(math.ceil(size / DEPOSITS_PER_PLAYER) for size in sizes)
    # Both stacks alike: the API processes an embedded stack runs (with an external database
    # the launcher leaves PAY_API_WORKERS to the environment, and its default is one per core).
    os.environ.setdefault("PAY_API_WORKERS", str(embedded_api_workers()))
    out(
        f"card deposit end to end: {count} per database, one at a time, turns of {E2E_BATCH} "
        f"(after {E2E_WARMUP} uncounted), a stack each "
        f"(PAY_API_WORKERS={os.environ['PAY_API_WORKERS']}):"
    )
    with contextlib.ExitStack() as stacks:  # left in reverse: stacks, empty database, files
        tmp = Path(stacks.enter_context(tempfile.TemporaryDirectory(prefix="bench-e2e-")))
        empty_url = stacks.enter_context(_empty_database(url, out))
        targets: dict[str, Target] = {}
        for label, database in (("seeded", url), ("empty", empty_url)):
            began = time.perf_counter()
            # Stack.start runs event loops of its own: in a thread, not in this one.
            targets[label], _ = await asyncio.to_thread(
                stacks.enter_context,
                started_stack(tmp / label, lambda _: None, database_url=database, label=label),
            )
            out(f"  {label} database: stack started in {time.perf_counter() - began:.0f} s")
        phases = await _e2e_turns(targets, sizes, needed)
    return _e2e_report(phases, out)


async def _e2e_turns(targets: dict[str, Target], sizes: list[int], needed: int) -> dict[str, Phase]:
    phases = {label: Phase(f"{label} database") for label in targets}
    async with contextlib.AsyncExitStack() as clients:
        runs: dict[str, tuple[PaymentBench, httpx.AsyncClient, Client]] = {}
        for label, target in targets.items():
            payments = PaymentBench(target, concurrency=1, progress=lambda _: None)
            await payments.set_latency(0)
            api = await clients.enter_async_context(payments.api_client())
            await payments.create_players(api, needed)
            runs[label] = (payments, api, await payments.temporal_client())
        taken = dict.fromkeys(targets, 0)
        for turn, size in enumerate(sizes):
            labels = list(targets) if turn % 2 else list(reversed(targets))
            for label in labels:
                payments, api, client = runs[label]
                players = payments.players[taken[label] :][: math.ceil(size / DEPOSITS_PER_PLAYER)]
                taken[label] += len(players)
                phase = Phase("warm-up") if turn == 0 else phases[label]
                one = payments.deposit_runner(api, client, players, phase)
                await drive(phase, _bounded(one), total=size, concurrency=1, progress=None)
    return phases


def _bounded(
    one: Callable[[int], Awaitable[tuple[str, str]]],
) -> Callable[[int], Awaitable[tuple[str, str]]]:
    """`one` with a deadline: a workflow that never ends (a broken worker, say) becomes an
    error among the outcomes instead of a bench that waits forever."""

    async def call(index: int) -> tuple[str, str]:
        return await asyncio.wait_for(one(index), E2E_TIMEOUT_S)

    return call


def _e2e_report(phases: dict[str, Phase], out: Callable[[str], None]) -> bool:
    for phase in phases.values():
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(phase.outcomes.items()))
        out(
            f"  {phase.name}: {len(phase.latencies)} deposits, p50 "
            f"{phase.percentile(0.5):.0f} ms, p95 {phase.percentile(0.95):.0f} ms, max "
            f"{phase.percentile(1.0):.0f} ms (API POST p50 "
            f"{phase.percentile(0.5, phase.post_latencies):.0f} ms); {outcomes}"
        )
    seeded, empty = phases["seeded"], phases["empty"]
    broken = sum(n for k, n in (seeded.outcomes + empty.outcomes).items() if k != "succeeded")
    if not (seeded.latencies and empty.latencies):
        out("  no end-to-end deposit finished: no figure")
        return False
    p50 = seeded.percentile(0.5) / empty.percentile(0.5)
    p95 = seeded.percentile(0.95) / empty.percentile(0.95)
    within = p50 <= 1.1
    out(
        f"  seeded / empty: p50 {p50:.2f} ({(p50 - 1) * 100:+.0f} %), p95 {p95:.2f} "
        f"({(p95 - 1) * 100:+.0f} %); goal p50 within 10 %: {'ok' if within else 'OVER'}"
        f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if broken:
        out(f"  {broken} end-to-end deposit(s) did not succeed")
    return within and not broken


async def bench(args: argparse.Namespace, url: str, out: Callable[[str], None]) -> int:
    with psycopg.connect(_sync_url(url), autocommit=True) as db:
        db.execute(
            "INSERT INTO persons (id, iin, birth_date) VALUES ('bp_0', '000000000000', "
            "'1990-01-01') ON CONFLICT DO NOTHING"
        )
        db.execute(
            "INSERT INTO players (id, external_id, iin, full_name, birth_date, phone, person_id) "
            "VALUES ('bpl_0', 'bench-0', '000000000000', 'Bench', '1990-01-01', '+77010000000', "
            "'bp_0') ON CONFLICT DO NOTHING"
        )
    with psycopg.connect(_sync_url(url), autocommit=True) as db:
        seeded = db.execute("SELECT count(*) FROM deposits WHERE id LIKE 'bdep_%'").fetchone()
    if seeded and seeded[0]:
        out(f"reusing the {seeded[0]:,} seeded deposits already in the database")
        empty = await _deposit_timing(url, args.deposit_samples)
        out(f"card deposit, database side (seeded database): p50 {empty:.2f} ms")
    else:
        empty = await _deposit_timing(url, args.deposit_samples)
        out(f"card deposit, database side, empty database: p50 {empty:.2f} ms")
        out(
            f"seeding {args.players:,} players, {args.deposits:,} deposits, "
            f"{args.withdrawals:,} withdrawals over {args.days} days"
        )
        _seed(url, args, out)
        _rebuild(url, out)
    engine = make_engine(url, pool_size=1)
    async with make_sessionmaker(engine)() as session:
        began = time.perf_counter()
        counts, _ = await rollups.check(session)
    await engine.dispose()
    out(
        f"  rollup check in {time.perf_counter() - began:.1f} s: "
        f"{'ok' if not any(counts.values()) else counts}"
    )
    out("reads (through the ASGI app):")
    ok = await _reads(url, args, out)
    loaded = await _deposit_timing(url, args.deposit_samples)
    within = loaded <= empty * 1.1 + 0.5  # half a millisecond of timer noise
    out(
        f"card deposit, database side, loaded database: p50 {loaded:.2f} ms "
        f"({(loaded / empty - 1) * 100:+.0f} % vs empty; {'ok' if within else 'OVER'})"
    )
    if args.end_to_end > 0:
        ok &= await _end_to_end(url, args, out)
    return 0 if ok and within else 1


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__)
    parser.add_argument("--deposits", type=int, default=100_000)
    parser.add_argument("--withdrawals", type=int, default=None, help="default: deposits * 0.15")
    parser.add_argument("--players", type=int, default=None, help="default: deposits / 10")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--wallet-entries", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per read")
    parser.add_argument("--deposit-samples", type=int, default=50)
    parser.add_argument(
        "--sustained-minutes",
        type=float,
        default=10.0,
        help="payments flowing with the dashboard open this long (issue 19: 10; 0: skip)",
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=60.0, help="payments alone before that"
    )
    parser.add_argument("--refresh-seconds", type=float, default=5.0)
    parser.add_argument("--payers", type=int, default=4, help="concurrent payment loops")
    parser.add_argument(
        "--end-to-end",
        type=int,
        default=60,
        metavar="N",
        help="card deposits end to end (API, workflow, worker, simulator) on a stack over the "
        "seeded database and one over an empty database, each (0: skip)",
    )
    add_database_argument(parser)
    args = parser.parse_args(argv)
    if args.withdrawals is None:
        args.withdrawals = int(args.deposits * 0.15)
    if args.players is None:
        args.players = max(args.deposits // 10, 10)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_on_database(parse(argv), bench, name="analytics")


if __name__ == "__main__":
    sys.exit(main())
