"""`python -m bench.ledger`: concurrent ledger postings on the embedded PostgreSQL.

It starts its own embedded PostgreSQL in a temporary directory (or uses `--database-url` /
`PAY_DATABASE_URL`), migrates it, funds a set of player wallets, then drives postings through
the real posting path (`db.ledger.post`: one `ledger_post` call in its own transaction, retried
on deadlock) from `--concurrency` tasks over a pool of as many connections. It prints progress,
postings/s and p50/p99 latency for

* the mixed workload: deposits, game bets and wins over many wallets, house accounts sharded,
  once with one transaction per posting (`db.ledger.post`) and once through
  `db.ledger.LedgerBatcher` (group commit: concurrent postings share one statement and one WAL
  flush, each with its own outcome);
* the hot-account variant: every posting hits the one game revenue house account, first with
  that account unsharded (`shards=1`), then split into `--shards` shards,

and finally runs the invariant checker over everything it wrote (exit status 1 on a breach).
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.database import add_database_argument, run_on_database
from db import ledger as ledger_store
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks, totals
from domain.ledger import TransactionSpec, deposit_credit, game_transaction

CURRENCY = "KZT"
FUNDING = 1_000_000_00  # each wallet starts with 1,000,000.00 KZT: bets rarely bounce


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    refused: int = 0
    retried_ok: int = 0
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        mean = statistics.fmean(self.latencies) if self.latencies else 0.0
        return (
            f"{self.name}: {len(self.latencies)} postings in {self.elapsed:.2f}s = "
            f"{self.rate:,.0f} postings/s; latency p50 {self.percentile(0.5) * 1000:.1f} ms, "
            f"p99 {self.percentile(0.99) * 1000:.1f} ms, mean {mean * 1000:.1f} ms"
            + (f"; {self.refused} refused (insufficient funds)" if self.refused else "")
        )


async def drive(
    sessions: async_sessionmaker[AsyncSession],
    run: Run,
    specs: Iterator[TransactionSpec],
    *,
    total: int,
    concurrency: int,
    progress: Callable[[str], None],
    poster: Callable[[TransactionSpec], Awaitable[object]] | None = None,
) -> Run:
    """Post every spec from `concurrency` tasks; record each posting's latency."""

    async def direct(spec: TransactionSpec) -> object:
        return await ledger_store.post(sessions, spec)

    send = poster or direct

    async def worker() -> None:
        for spec in specs:  # a shared iterator: each spec is taken by exactly one task
            started = time.perf_counter()
            try:
                await send(spec)
            except ledger_store.InsufficientFunds:
                run.refused += 1
            run.latencies.append(time.perf_counter() - started)

    async def report() -> None:
        last, last_at = 0, time.perf_counter()
        while True:
            await asyncio.sleep(1.0)
            done, now = len(run.latencies), time.perf_counter()
            progress(
                f"  {run.name}: {done}/{total} postings, {(done - last) / (now - last_at):,.0f}/s"
            )
            last, last_at = done, now

    reporter = asyncio.create_task(report())
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        run.elapsed = time.perf_counter() - started
        reporter.cancel()
    return run


def fund(wallets: list[str], *, shards: int) -> Iterator[TransactionSpec]:
    for player in wallets:
        yield deposit_credit(
            deposit_id=f"dep_{uuid.uuid4().hex[:16]}",
            player_id=player,
            provider="halyk",
            amount_minor=FUNDING,
            currency=CURRENCY,
            shards=shards,
        )


def mixed(wallets: list[str], count: int, *, shards: int, seed: int) -> Iterator[TransactionSpec]:
    """Half bets, three tenths wins, a fifth deposits, over random wallets."""
    rng = random.Random(seed)
    for _ in range(count):
        player, roll = rng.choice(wallets), rng.random()
        amount = rng.randint(1_00, 5_000_00)
        if roll < 0.2:
            yield deposit_credit(
                deposit_id=f"dep_{uuid.uuid4().hex[:16]}",
                player_id=player,
                provider="halyk",
                amount_minor=amount,
                currency=CURRENCY,
                shards=shards,
            )
        else:
            yield game_transaction(
                player_id=player,
                round_id=f"r_{uuid.uuid4().hex[:16]}",
                type="bet" if roll < 0.7 else "win",
                amount_minor=amount,
                currency=CURRENCY,
                shards=shards,
            )


def hot(wallets: list[str], count: int, *, shards: int, seed: int) -> Iterator[TransactionSpec]:
    """Bets and wins only: each one moves the game revenue house account."""
    rng = random.Random(seed)
    for _ in range(count):
        yield game_transaction(
            player_id=rng.choice(wallets),
            round_id=f"r_{uuid.uuid4().hex[:16]}",
            type="bet" if rng.random() < 0.6 else "win",
            amount_minor=rng.randint(1_00, 5_000_00),
            currency=CURRENCY,
            shards=shards,
        )


async def check(sessions: async_sessionmaker[AsyncSession], out: Callable[[str], None]) -> int:
    async with sessions() as session:
        counts = await totals(session)
        results = await run_checks(session)
    out(
        f"invariant check: {counts['accounts']} accounts, {counts['transactions']} transactions, "
        f"{counts['entries']} entries"
    )
    for result in results:
        verdict = "ok" if result.ok else f"BREACH ({len(result.offenders)})"
        out(f"  {verdict:>12}  {result.name}")
        for offender in result.offenders[:10]:
            out(f"                {offender}")
    breaches = sum(not r.ok for r in results)
    out("all invariants hold" if not breaches else f"{breaches} invariant(s) broken")
    return breaches


async def bench(args: argparse.Namespace, url: str, out: Callable[[str], None]) -> int:
    # The pool may be smaller than the task count (max_connections is 100); tasks then queue.
    engine = make_engine(url, pool_size=min(args.concurrency, 24))
    sessions = make_sessionmaker(engine)
    tag = uuid.uuid4().hex[:6]  # runs against a shared database do not collide
    try:
        wallets = [f"pl_bench{tag}_{i:05d}" for i in range(args.wallets)]
        hot_wallets = [f"pl_hot{tag}_{i:05d}" for i in range(args.hot_wallets)]
        out(
            f"funding {len(wallets) + len(hot_wallets)} wallets "
            f"(concurrency {args.concurrency}, house shards {args.shards})"
        )
        setup = Run("funding")
        await drive(
            sessions,
            setup,
            fund(wallets + hot_wallets, shards=args.shards),
            total=len(wallets) + len(hot_wallets),
            concurrency=args.concurrency,
            progress=out,
        )
        out(setup.summary())
        # A fresh database has no statistics: the posting function's cached plans would scan
        # ledger_accounts sequentially until autovacuum analyzes it. Analyze once, as a
        # long-running database would have.
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE ledger_accounts, ledger_transactions, ledger_entries"))
            await conn.commit()

        runs = []
        out(f"mixed workload: {args.postings} postings over {len(wallets)} wallets")
        runs.append(
            await drive(
                sessions,
                Run(f"mixed (shards={args.shards})"),
                mixed(wallets, args.postings, shards=args.shards, seed=1),
                total=args.postings,
                concurrency=args.concurrency,
                progress=out,
            )
        )
        out(runs[-1].summary())

        if args.batch > 1:
            batcher = ledger_store.LedgerBatcher(sessions, max_batch=args.batch, parallel=4)
            out(
                f"mixed workload, group commit (LedgerBatcher, batches of up to {args.batch}): "
                f"{args.postings} postings over {len(wallets)} wallets"
            )
            runs.append(
                await drive(
                    sessions,
                    Run(f"mixed batched (shards={args.shards})"),
                    mixed(wallets, args.postings, shards=args.shards, seed=2),
                    total=args.postings,
                    concurrency=args.concurrency,
                    progress=out,
                    poster=batcher.post,
                )
            )
            out(runs[-1].summary())

        hot_count = args.hot_postings if args.hot_postings is not None else args.postings // 2
        for shards in sorted({1, args.shards}):
            out(
                f"hot house account: {hot_count} bets/wins over {len(hot_wallets)} wallets, "
                f"game revenue in {shards} shard(s)"
            )
            runs.append(
                await drive(
                    sessions,
                    Run(f"hot account (shards={shards})"),
                    hot(hot_wallets, hot_count, shards=shards, seed=shards),
                    total=hot_count,
                    concurrency=args.concurrency,
                    progress=out,
                )
            )
            out(runs[-1].summary())

        out("")
        out("results")
        for run in runs:
            out(f"  {run.summary()}")
        breaches = await check(sessions, out)
        if args.min_rate and max(run.rate for run in runs[:2]) < args.min_rate:
            out(f"mixed workload below the target of {args.min_rate:,.0f} postings/s")
            return 3
        return 1 if breaches else 0
    finally:
        await engine.dispose()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--postings", type=int, default=20_000, help="mixed workload size")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent tasks")
    parser.add_argument("--shards", type=int, default=8, help="shards per house account")
    parser.add_argument("--wallets", type=int, default=2_000, help="wallets in the mixed run")
    parser.add_argument(
        "--hot-wallets", type=int, default=256, help="wallets in the hot-account runs"
    )
    parser.add_argument(
        "--hot-postings", type=int, default=None, help="postings per hot run (postings/2)"
    )
    add_database_argument(parser)
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="also run the mixed workload through LedgerBatcher (group commit) with batches of "
        "up to this many postings; 1 skips it",
    )
    parser.add_argument(
        "--min-rate", type=float, default=0.0, help="exit 3 when the mixed rate is below this"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_database(parse(argv), bench, name="ledger")


if __name__ == "__main__":
    sys.exit(main())
