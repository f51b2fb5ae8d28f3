"""`python -m bench.wallet`: the game platform's wallet API at a match's peak (issue 21).

It starts the embedded stack (`stack.launcher.Stack`, the API as `--workers` processes) in a
temporary directory, or uses a running one (`--api-url`, `--api-key`, `--database-url`). Then:

1. creates `--players` players over the API and funds each wallet with a deposit posting;
2. drives `--operations` wallet calls (after `--warmup` uncounted ones) from `--concurrency`
   keep-alive connections: 85% bets, 14% wins, 1% rollbacks of one of the player's earlier
   bets, each with a fresh transaction id; `--hot-share` of them go to `--hot-players` players
   (a favourite's backers), the rest to any player;
3. prints operations/s and bets/s, p50/p95/p99 (all operations, and bets alone), refusals
   (insufficient funds) and any other error;
4. compares every wallet's balance in the database with the sum of what the API answered
   (funding - bets + wins + rollbacks): `wrong balances` must be 0; runs the ledger
   invariant check;
5. runs `bench.ledger`'s batched mixed workload (`db.ledger.LedgerBatcher`, the ledger alone)
   on the same database at the same concurrency, for the ratio wallet ops/s : ledger postings/s.

The client is a minimal HTTP/1.1 keep-alive client on uvloop, so that on a small machine the
benchmark spends its CPU on the server rather than on an HTTP library (0.06-0.09 ms of CPU per
call, against the API's 0.4-0.6 ms), and it freezes its startup objects out of its garbage
collector's sight before measuring. Rate limits are off outside production (the embedded stack
runs as development); a running production stack needs high limits for the key. Exit status 1
on a wrong balance, a broken invariant or an error.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import uvloop
from sqlalchemy import text

from bench.cpu import Source, sample, spent
from bench.ledger import Run as LedgerRun
from bench.ledger import check as ledger_check
from bench.ledger import drive, fund, mixed
from bench.payments import embedded_settings, make_iin, running_target, say, stack_pids
from db import ledger as ledger_store
from db.engine import make_engine, make_sessionmaker
from domain.ledger import deposit_credit, player_wallet
from stack.launcher import Stack, embedded_api_workers

CURRENCY = "KZT"
FUNDING = 100_000_00  # 100,000.00 KZT per wallet; bets of 1 to 500 KZT rarely bounce


class Connection:
    """One keep-alive HTTP/1.1 connection: a request at a time, JSON in and out."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}\r\nAuthorization: Bearer {key}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode() if body is not None else b""
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.reader = self.writer = None
        return status, json.loads(payload) if payload else None


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    bet_latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        if not values:
            return 0.0
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Model:
    """What the API said happened to each wallet: the balances the database must show."""

    balances: dict[str, int]
    bets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


class WalletBench:
    def __init__(self, api_url: str, key: str, args: argparse.Namespace) -> None:
        parts = urlsplit(api_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.key = key
        self.args = args
        self.rng = random.Random(args.seed)
        self.tag = uuid.uuid4().hex[:8]
        self.players: list[str] = []
        self.hot: list[str] = []

    async def create_players(self, api_url: str) -> None:
        async with httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        ) as api:
            serial = iter(range(self.args.players))

            async def one() -> None:
                for number in serial:
                    response = await api.post(
                        "/v1/players",
                        json={
                            "external_id": f"wallet-bench-{self.tag}-{number}",
                            "iin": make_iin(self.rng),
                            "full_name": "Bench Player",
                            "phone": f"+7701{self.rng.randrange(10**7):07d}",
                        },
                    )
                    if response.status_code != 201:
                        raise RuntimeError(
                            f"POST /v1/players: {response.status_code} {response.text}"
                        )
                    self.players.append(response.json()["id"])

            await asyncio.gather(*(one() for _ in range(8)))
        self.hot = self.players[: self.args.hot_players]

    async def fund(self, database_url: str) -> Model:
        engine = make_engine(database_url, pool_size=8)
        sessions = make_sessionmaker(engine)
        try:
            batcher = ledger_store.LedgerBatcher(sessions)
            await asyncio.gather(
                *(
                    batcher.post(
                        deposit_credit(
                            deposit_id=f"dep_{uuid.uuid4().hex[:16]}",
                            player_id=player,
                            provider="halyk",
                            amount_minor=FUNDING,
                            currency=CURRENCY,
                        )
                    )
                    for player in self.players
                )
            )
        finally:
            await engine.dispose()
        return Model(balances=dict.fromkeys(self.players, FUNDING))

    def pick(self) -> str:
        if self.hot and self.rng.random() < self.args.hot_share:
            return self.rng.choice(self.hot)
        return self.rng.choice(self.players)

    async def drive(self, model: Model, count: int, stats: Stats | None) -> None:
        remaining = iter(range(count))

        async def worker() -> None:
            conn = Connection(self.host, self.port, self.key)
            for _ in remaining:
                player, roll = self.pick(), self.rng.random()
                tx = f"{self.tag}-{uuid.uuid4().hex[:16]}"
                amount = self.rng.randint(1_00, 500_00)
                earlier = model.bets.get(player)
                if roll < 0.85:
                    kind, body = (
                        "bet",
                        {"player_id": player, "transaction_id": tx, "amount": amount},
                    )
                elif roll < 0.99 or not earlier:
                    kind, body = (
                        "win",
                        {"player_id": player, "transaction_id": tx, "amount": amount},
                    )
                else:
                    bet_tx, amount = earlier.pop(self.rng.randrange(len(earlier)))
                    kind = "rollback"
                    body = {"player_id": player, "transaction_id": tx, "bet_transaction_id": bet_tx}
                path = f"/v1/wallet/{kind}"
                if self.args.legacy:  # the per-player endpoint the wallet API replaces
                    path = f"/v1/players/{player}/game-transactions"
                    legacy = {"bet": "bet", "win": "win", "rollback": "refund"}[kind]
                    round_id = body.get("bet_transaction_id", tx)
                    body = {"type": legacy, "amount": amount, "round_id": round_id}
                started = time.perf_counter()
                status, answer = await conn.request("POST", path, body)
                took = time.perf_counter() - started
                outcome = self.account(model, kind, player, tx, amount, status, answer)
                if stats is not None:
                    stats.latencies.append(took)
                    if kind == "bet":
                        stats.bet_latencies.append(took)
                    stats.outcomes[outcome] += 1

        async def progress() -> None:
            while stats is not None:
                before = len(stats.latencies)
                await asyncio.sleep(2.0)
                done = len(stats.latencies)
                say(f"  {done}/{count}, {(done - before) / 2:,.0f}/s")

        reporter = asyncio.create_task(progress())
        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))
        finally:
            reporter.cancel()
        if stats is not None:
            stats.elapsed = time.perf_counter() - started

    @staticmethod
    def account(
        model: Model, kind: str, player: str, tx: str, amount: int, status: int, answer: object
    ) -> str:
        if (
            status == 422
            and isinstance(answer, dict)
            and answer.get("code") == "insufficient_funds"
        ):
            return "refused (insufficient funds)"
        if status == 201 and isinstance(answer, dict):  # --legacy
            answer = {"status": "ok" if kind != "rollback" else "rolled_back", "replayed": False}
        elif status != 200 or not isinstance(answer, dict):
            return f"error {status}: {answer}"[:160]
        if kind == "bet":
            model.balances[player] -= amount
            model.bets.setdefault(player, []).append((tx, amount))
        elif kind == "win" or (answer.get("status"), answer.get("replayed")) == (
            "rolled_back",
            False,
        ):
            model.balances[player] += amount
        return f"{kind} {answer.get('status')}"


async def wrong_balances(database_url: str, model: Model) -> list[str]:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT code, posted_credits - posted_debits - pending_debits "
                    "FROM ledger_accounts WHERE code = ANY(:codes)"
                ),
                {"codes": [player_wallet(p, CURRENCY).code for p in model.balances]},
            )
            actual = {str(row[0]): int(row[1]) for row in rows}
    finally:
        await engine.dispose()
    return [
        f"{player}: database {actual.get(player_wallet(player, CURRENCY).code)}, API said {want}"
        for player, want in model.balances.items()
        if actual.get(player_wallet(player, CURRENCY).code) != want
    ]


async def ledger_batched(database_url: str, args: argparse.Namespace) -> tuple[float, int]:
    """bench.ledger's group-commit mixed workload on the same database: postings/s."""
    engine = make_engine(database_url, pool_size=min(args.concurrency, 24))
    sessions = make_sessionmaker(engine)
    try:
        wallets = [f"pl_wbench{uuid.uuid4().hex[:6]}_{i:05d}" for i in range(500)]
        await drive(
            sessions,
            LedgerRun("funding"),
            fund(wallets, shards=8),
            total=len(wallets),
            concurrency=args.concurrency,
            progress=lambda _: None,
        )
        batcher = ledger_store.LedgerBatcher(sessions, max_batch=64, parallel=4)
        run = await drive(
            sessions,
            LedgerRun("ledger alone, batched"),
            mixed(wallets, args.ledger_postings, shards=8, seed=2),
            total=args.ledger_postings,
            concurrency=args.concurrency,
            progress=lambda _: None,
            poster=batcher.post,
        )
        say(f"  {run.summary()}")
        breaches = await ledger_check(sessions, say)
        return run.rate, breaches
    finally:
        await engine.dispose()


async def run(
    api_url: str,
    key: str,
    database_url: str,
    args: argparse.Namespace,
    pids: dict[str, int | None] | None = None,
) -> int:
    bench = WalletBench(api_url, key, args)
    say(f"creating {args.players} players ({args.hot_players} hot: {args.hot_share:.0%} of calls)")
    await bench.create_players(api_url)
    await bench.fund(database_url)
    model = Model(balances=dict.fromkeys(bench.players, FUNDING))
    say(f"warm-up: {args.warmup} calls")
    await bench.drive(model, args.warmup, None)
    stats = Stats()
    say(f"measuring: {args.operations} calls at concurrency {args.concurrency}")
    pids = pids or {}
    sources = {
        "API": Source(pids.get("API")),
        "PostgreSQL": Source(pids.get("PostgreSQL")),
        "client": Source(os.getpid(), tree=False),
    }
    # The client's own startup objects (the stack's modules, SQLAlchemy, the players) out of its
    # garbage collector's sight: a full collection of them took up to 60 ms, during which no
    # answer was read and the calls in flight looked that much slower (issue 21).
    gc.collect()
    gc.freeze()
    before = sample(sources)
    await bench.drive(model, args.operations, stats)
    cpu = spent(before, sample(sources))

    bets = len(stats.bet_latencies)
    say("")
    say(
        f"wallet API: {len(stats.latencies)} calls in {stats.elapsed:.2f}s = "
        f"{len(stats.latencies) / stats.elapsed:,.0f} ops/s ({bets / stats.elapsed:,.0f} bets/s) "
        f"at concurrency {args.concurrency}"
    )
    for name, values in (("all calls", stats.latencies), ("bets", stats.bet_latencies)):
        say(
            f"  {name}: p50 {Stats.percentile(values, 0.5):.1f} ms, "
            f"p95 {Stats.percentile(values, 0.95):.1f} ms, "
            f"p99 {Stats.percentile(values, 0.99):.1f} ms"
        )
    for outcome, n in sorted(stats.outcomes.items()):
        say(f"  {n:>7}  {outcome}")
    errors = sum(n for outcome, n in stats.outcomes.items() if outcome.startswith("error"))
    say(
        "  CPU per call: "
        + ", ".join(
            f"{name} {seconds / len(stats.latencies) * 1000:.2f} ms"
            if seconds is not None
            else f"{name} n/a"
            for name, seconds in cpu.items()
        )
    )

    wrong = await wrong_balances(database_url, model)
    say(f"wrong balances: {len(wrong)} of {len(model.balances)} wallets")
    for line in wrong[:10]:
        say(f"  {line}")
    say(f"ledger alone (bench.ledger's batched mixed workload, {args.ledger_postings} postings):")
    rate, breaches = await ledger_batched(database_url, args)
    if rate:
        say(
            f"ratio: wallet API {len(stats.latencies) / stats.elapsed:,.0f} ops/s : ledger "
            f"{rate:,.0f} postings/s = {len(stats.latencies) / stats.elapsed / rate:.0%}"
        )
    return 1 if wrong or breaches or errors else 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wallet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--hot-players", type=int, default=4)
    parser.add_argument("--hot-share", type=float, default=0.2, help="share of calls to them")
    parser.add_argument("--operations", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=0, help="API processes (0: one per two cores)"
    )
    parser.add_argument("--ledger-postings", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="uvicorn's access log in the embedded API (PAY_API_ACCESS_LOG; off by default here)",
    )
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="drive POST /v1/players/{id}/game-transactions instead (rollbacks as refunds), "
        "for the before/after comparison",
    )
    running = parser.add_argument_group("a running stack (default: start one in a temp dir)")
    running.add_argument("--api-url")
    running.add_argument("--api-key", help="merchant key; default: <data dir>/api-keys.json")
    running.add_argument("--database-url", help="default: PAY_DATABASE_URL")
    args = parser.parse_args(argv)
    if min(args.players, args.operations, args.concurrency) < 1:
        parser.error("--players, --operations and --concurrency must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    pids: dict[str, int | None] | None = None  # a running stack: only the client's CPU is known
    with contextlib.ExitStack() as cleanup:
        if args.api_url:
            args.temporal_address = None
            args.simulator_url = None
            target = running_target(args)
            api_url, key, database_url = target.api_url, target.api_key, target.database_url
            say(f"using the running stack at {api_url}")
        else:
            directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            os.environ["PAY_API_WORKERS"] = str(args.workers)  # the API process reads it
            os.environ["PAY_API_ACCESS_LOG"] = str(args.access_log).lower()
            settings = embedded_settings(directory / "data")
            stack = Stack(settings, say=lambda line: say(f"stack: {line}"))
            cleanup.callback(stack.stop)
            workers = args.workers or (
                f"{embedded_api_workers()}, one per two cores beside the embedded PostgreSQL"
            )
            say(f"starting the embedded stack in {directory} (API workers: {workers})")
            stack.start()
            assert stack.database_url
            api_url, key, database_url = (
                settings.api_url,
                stack.dev_keys["merchant"],
                stack.database_url,
            )
            pids = stack_pids(stack)
        return uvloop.run(run(api_url, key, database_url, args, pids))


if __name__ == "__main__":
    sys.exit(main())
