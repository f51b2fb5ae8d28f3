"""`python -m bench.analytics` runs end to end with tiny sizes on its own embedded PostgreSQL: it
seeds, checks the rollups, prints the reads' figures, a short sustained run with the dashboard
open, and the card deposit end to end (API, Temporal workflow, worker, provider simulator) on a
stack over the seeded database and one over an empty database, with their ratio. Timings are
figures, not asserts: the exit status also says whether a speed goal was met, so it may be 1 on
a loaded machine; what must hold is that every payment succeeded and nothing failed."""

import asyncio
import re
import subprocess
import sys

import pytest

from config import child_environment
from tests.ledger_helpers import ROOT


@pytest.mark.fullstack
async def test_bench_analytics_prints_the_reads_and_the_end_to_end_deposit() -> None:
    env = child_environment({})
    env.pop("PAY_DATABASE_URL", None)  # its own embedded database: it seeds players and payments
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bench.analytics",
            "--deposits",
            "300",
            "--players",
            "30",
            "--days",
            "30",
            "--wallet-entries",
            "60",
            "--repeat",
            "2",
            "--deposit-samples",
            "3",
            "--sustained-minutes",
            "0.05",
            "--baseline-seconds",
            "2",
            "--refresh-seconds",
            "1",
            "--payers",
            "2",
            "--end-to-end",
            "6",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode in (0, 1), out + done.stderr  # 1: a speed goal missed, see above
    assert "Traceback" not in done.stderr, done.stderr
    assert "seeding 30 players, 300 deposits, 45 withdrawals over 30 days" in out
    assert re.search(r"rollup check in [\d.]+ s: ok", out), out
    assert re.search(r"summary 30 d\s+p50\s+[\d.]+ ms\s+p95\s+[\d.]+ ms\s+(ok|OVER)", out), out
    assert re.search(r"dashboard analytics refresh \(\d+ requests\)\s+p50", out), out
    # the sustained run: payments with and without the dashboard, and not one failure
    assert "without the dashboard (2 s, 2 payers; load average" in out
    assert "with the dashboard open (3 s, 2 payers; load average" in out
    assert re.search(r"dashboard refreshes \(every 1 s\): \d+, p50", out), out
    assert out.count("non-2xx answers and errors: 0") == 2, out
    # the card deposit end to end on both databases, every one succeeded, and the ratio
    assert "card deposit end to end: 6 per database" in out
    for label in ("seeded", "empty"):
        assert f"  {label} database: stack started in" in out
        assert re.search(
            rf"  {label} database: 6 deposits, p50 \d+ ms, p95 \d+ ms, max \d+ ms "
            r"\(API POST p50 \d+ ms\); 6 succeeded\n",
            out,
        ), out
    assert re.search(
        r"seeded / empty: p50 [\d.]+ \([+-]\d+ %\), p95 [\d.]+ \([+-]\d+ %\); "
        r"goal p50 within 10 %: (ok|OVER)",
        out,
    ), out
    assert "did not succeed" not in out
