"""`python -m bench.recon`: one provider's business day of N report lines, reconciled.

It starts its own embedded PostgreSQL (or uses `--database-url` / `PAY_DATABASE_URL`), books N
card deposits of one provider on today's Almaty business day through the ledger's batched path
(each deposit's credit and expected fee, as the deposit workflow posts them), writes the
provider's report for that day to a file in the canonical JSON-lines form (every deposit paid
with its fee, plus planted discrepancies: lines missing at the provider, unknown lines, another
amount, a different fee, duplicates), then runs the reconciliation's own steps on it, timed:

1. store: the report streamed from the file into PostgreSQL (`db.recon.stage_report`, COPY);
2. match: every line judged against the day's records, cases opened
   (`ReconActivities.match_recon_report`);
3. settle: the day's clearing swept to the operator's bank account, fees and differences
   (`ReconActivities.settle_recon_run`).

It prints lines/s per step and how far the process's memory grew while reconciling, for each size of
`--sizes`: the report itself is streamed (its lines are never held), so what grows with the
size is only our side of the day, one small record per payment we booked. It also prints the
cases opened per kind, and checks that the planted discrepancies are exactly the cases and that
the day's clearing is zero.
"""

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.recon import MatchReportInput, ReconActivities, SettleRunInput
from bench.database import add_database_argument, run_on_database
from db import ledger as ledger_store
from db import recon as recon_store
from db.engine import make_engine, make_sessionmaker
from domain.ledger import TransactionSpec, deposit_credit, deposit_fee, fee_for
from domain.recon.canonical import read_jsonl, write_jsonl
from domain.recon.days import business_day
from domain.recon.lines import ReportHeader, ReportLine

CURRENCY = "KZT"
FEE_BPS = 150
PLANTED = 10  # lines of each discrepancy kind


async def _book(
    sessions: async_sessionmaker[AsyncSession],
    provider: str,
    count: int,
    out: Callable[[str], None],
) -> list[tuple[str, int]]:
    """N deposits credited with their expected fee: 8 writers, 64 postings per statement."""
    deposits = [(f"dep_{uuid.uuid4().hex[:24]}", 1_000_00 + (n % 500) * 100) for n in range(count)]
    specs: list[TransactionSpec] = []
    for n, (deposit_id, amount) in enumerate(deposits):
        specs.append(
            deposit_credit(
                deposit_id=deposit_id,
                # each writer its own wallets (the chunks of 32 deposits after the warm-up go
                # round the 8 writers)
                player_id=f"pl_bench{(n // 32 - 40) % 8}_{n % 125:03d}",
                provider=provider,
                amount_minor=amount,
                currency=CURRENCY,
                shards=8,
            )
        )
        specs.append(
            deposit_fee(
                deposit_id=deposit_id,
                provider=provider,
                fee_minor=fee_for(amount, FEE_BPS),
                currency=CURRENCY,
                shards=8,
            )
        )
    chunks = [specs[i : i + 64] for i in range(0, len(specs), 64)]
    done = 0

    async def writer(mine: list[list[TransactionSpec]]) -> None:
        nonlocal done
        for chunk in mine:

            async def post(session: AsyncSession, batch: list[TransactionSpec] = chunk) -> object:
                return await ledger_store.post_transactions(session, specs=batch)

            await ledger_store.with_retry(sessions, post)
            before, done = done, done + len(chunk) // 2
            if before // 20_000 != done // 20_000:
                out(f"  booked {done:,} deposits")

    # One writer first: every wallet and house-account shard is created on first use, and
    # concurrent creations in other orders would deadlock.
    warm = 40
    await writer(chunks[:warm])
    rest = chunks[warm:]
    await asyncio.gather(*(writer(rest[w::8]) for w in range(8)))
    return deposits


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The process's resident memory sampled every 20 ms: how far it grew from the start."""

    def __init__(self) -> None:
        self.start = self.peak = _rss_mb()

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, _rss_mb())
            await asyncio.sleep(0.02)

    @property
    def growth_mb(self) -> float:
        return max(self.peak, _rss_mb()) - self.start


def _report_lines(deposits: list[tuple[str, int]], now: datetime) -> Iterator[ReportLine]:
    """The provider's view: every deposit paid, but for the planted discrepancies."""
    line_no = 0

    def line(reference: str | None, amount: int, fee: int) -> ReportLine:
        nonlocal line_no
        line_no += 1
        return ReportLine(
            line_no=line_no,
            kind="payment",
            reference=reference,
            provider_id=f"tx{line_no}",
            amount_minor=amount,
            currency=CURRENCY,
            fee_minor=fee,
            occurred_at=now,
        )

    for n, (deposit_id, amount) in enumerate(deposits):
        fee = fee_for(amount, FEE_BPS)
        if n < PLANTED:
            continue  # missing at the provider
        if n < 2 * PLANTED:
            yield line(deposit_id, amount + 100, fee)  # another amount
        elif n < 3 * PLANTED:
            yield line(deposit_id, amount, fee + 1)  # another fee
        else:
            yield line(deposit_id, amount, fee)
        if 3 * PLANTED <= n < 4 * PLANTED:
            yield line(deposit_id, amount, fee)  # the same payment twice
    for n in range(PLANTED):
        yield line(f"dep_unknown{n:06d}", 5_000_00, fee_for(5_000_00, FEE_BPS))  # never ours


def _write_report(
    path: Path, provider: str, deposits: list[tuple[str, int]], now: datetime
) -> ReportHeader:
    net = sum(line.amount_minor - line.fee_minor for line in _report_lines(deposits, now))
    header = ReportHeader(
        provider=provider,
        business_date=business_day(now),
        currency=CURRENCY,
        net_settled_minor=net,
        settlement_date=business_day(now),
        format="canonical.jsonl",
    )
    with path.open("wb") as file:
        for chunk in write_jsonl(header, _report_lines(deposits, now)):
            file.write(chunk)
    return header


async def _day(
    url: str, size: int, directory: Path, out: Callable[[str], None]
) -> tuple[dict[str, float], dict[str, int], int]:
    engine = make_engine(url, pool_size=8)
    sessions = make_sessionmaker(engine)
    provider = f"bench{uuid.uuid4().hex[:6]}"
    try:
        now = datetime.now(UTC)
        out(f"{size:,} lines for provider {provider}, business day {business_day(now)}")
        started = time.perf_counter()
        deposits = await _book(sessions, provider, size, out)
        out(f"  booked in {time.perf_counter() - started:.1f} s")
        report = directory / f"{provider}.jsonl"
        _write_report(report, provider, deposits, now)
        out(f"  report file {report.stat().st_size / 1e6:.1f} MB")
        del deposits  # the seeding's own lists, not the reconciliation's
        gc.collect()
        sampler = RssSampler()
        sampling = asyncio.create_task(sampler.run())
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        with report.open("rb") as stream:
            header, lines = read_jsonl(stream)
            async with sessions.begin() as session:
                staged = await recon_store.stage_report(
                    session, header=header, lines=lines, source="uploaded", received_by="bench"
                )
        times["store"] = time.perf_counter() - t0
        out(f"  stored {staged.line_count:,} lines in {times['store']:.1f} s")
        activities = ReconActivities(sessions=sessions)
        t0 = time.perf_counter()
        matched = await activities.match_recon_report(MatchReportInput(report_id=staged.report_id))
        times["match"] = time.perf_counter() - t0
        out(f"  matched in {times['match']:.1f} s")
        t0 = time.perf_counter()
        settled = await activities.settle_recon_run(SettleRunInput(run_id=matched.run_id))
        times["settle"] = time.perf_counter() - t0
        out(f"  settled in {times['settle']:.1f} s (difference {settled.difference_minor})")
        sampling.cancel()
        times["peak_mb"] = sampler.growth_mb
        async with sessions() as session:
            rows = await session.execute(
                text("SELECT kind, count(*) FROM recon_cases WHERE run_id = :r GROUP BY kind"),
                {"r": matched.run_id},
            )
            cases = {str(kind): int(n) for kind, n in rows}
            clearing = await session.scalar(
                text(
                    "SELECT coalesce(sum(posted_debits - posted_credits), 0) FROM ledger_accounts "
                    "WHERE type = 'provider_clearing' AND owner_id = :p"
                ),
                {"p": provider},
            )
        return times, cases, int(clearing or 0)
    finally:
        await engine.dispose()


async def bench(args: argparse.Namespace, url: str, out: Callable[[str], None]) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-recon-files-") as files:
        for size in args.sizes:
            times, cases, clearing = await _day(url, size, Path(files), out)
            total = times["store"] + times["match"] + times["settle"]
            out(
                f"FIGURES: {size:,} lines reconciled in {total:.1f} s "
                f"({size / total:,.0f} lines/s; store {times['store']:.1f} s, "
                f"match {times['match']:.1f} s, settle {times['settle']:.1f} s); "
                f"memory grown while reconciling {times['peak_mb']:.0f} MB"
            )
            out(f"  cases: {dict(sorted(Counter(cases).items()))}; day's clearing {clearing}")
            expected = PLANTED * 5  # missing, amount, fee, duplicate, unknown
            if sum(cases.values()) != expected or clearing != 0:
                out(f"  BREACH: expected {expected} cases and a zero clearing")
                failures += 1
            if size >= 100_000 and total > args.target_seconds:
                out(f"  slower than the target of {args.target_seconds:.0f} s")
    return 1 if failures else 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.recon", description=__doc__)
    parser.add_argument(
        "--sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[10_000, 100_000],
        help="report sizes, comma-separated (default 10000,100000)",
    )
    parser.add_argument("--target-seconds", type=float, default=30.0)
    add_database_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_on_database(parse(argv), bench, name="recon")


if __name__ == "__main__":
    sys.exit(main())
