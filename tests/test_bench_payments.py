"""`python -m bench.payments` runs end to end on its own embedded stack with a tiny N: it prints
the figures for deposits and the bare workflow and ends with a clean ledger check."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import child_environment

pytestmark = pytest.mark.fullstack
ROOT = Path(__file__).resolve().parent.parent


async def test_bench_payments_prints_the_figures_and_a_clean_ledger() -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bench.payments",
            "--payments",
            "10",
            "--concurrency",
            "4",
            "--warmup",
            "2",
            "--history-sample",
            "3",
        ],
        cwd=ROOT,
        env=child_environment({}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "stack: [6/6] API" in out
    assert re.search(r"deposits: 10 in [\d.]+s = [\d.]+/s; latency p50 \d+ ms, p95 \d+ ms", out)
    assert re.search(r"bare workflow: 10 in [\d.]+s = [\d.]+/s; latency p50 \d+ ms", out)
    assert "10 succeeded" in out
    assert re.search(r"API POST p50 \d+ ms; workflow run p50 \d+ ms", out)
    events = re.findall(r"history events/payment ([\d.]+) \(sample of 3\)", out)
    assert len(events) == 2, out
    assert all(float(e) > 0 for e in events), out
    assert re.search(r"deposits/s / bare/s = [\d.]+ / [\d.]+ = [\d.]+", out)
    assert re.search(r"p50 overhead = \d+ - \d+ = -?\d+ ms", out)
    assert re.search(r"the gap the rates alone explain \(Little's law.*\): -?\d+ ms", out)
    assert "all invariants hold" in out
