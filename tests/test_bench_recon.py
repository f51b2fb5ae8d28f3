"""`python -m bench.recon` runs end to end with a small day: the planted discrepancies are
exactly the cases, and the day's clearing is settled to zero (its exit status says so)."""

import asyncio
import subprocess
import sys

from config import child_environment
from tests.ledger_helpers import ROOT


async def test_bench_reconciles_a_small_day(database_url: str) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bench.recon", "--sizes", "400"],
        cwd=ROOT,
        env=child_environment({"PAY_DATABASE_URL": database_url}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "FIGURES: 400 lines reconciled" in out
    assert "'missing_provider': 10" in out
    assert "day's clearing 0" in out
