"""`python -m bench.ledger` runs end to end with a small N and ends with a clean invariant check."""

import asyncio
import subprocess
import sys

from config import child_environment
from tests.ledger_helpers import ROOT


async def test_bench_runs_and_checks_invariants(database_url: str) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bench.ledger",
            "--postings",
            "200",
            "--concurrency",
            "8",
            "--wallets",
            "20",
            "--hot-wallets",
            "10",
            "--hot-postings",
            "60",
            "--shards",
            "4",
        ],
        cwd=ROOT,
        env=child_environment({"PAY_DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "mixed (shards=4): 200 postings" in out
    assert "hot account (shards=1): 60 postings" in out
    assert "hot account (shards=4): 60 postings" in out
    assert "postings/s" in out
    assert "p99" in out
    assert "all invariants hold" in out
