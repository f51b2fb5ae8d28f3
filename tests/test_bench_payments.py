"""`python -m bench.payments` runs end to end on its own embedded stack with a tiny N: it prints
the figures for deposits and the bare workflow, the CPU per payment by process, and ends with a
clean ledger check. The CPU split (`bench/cpu.py`) is checked on its own against /proc."""

import asyncio
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.cpu import (
    ProcStat,
    Source,
    all_stats,
    clock_ticks,
    parse_stat,
    sample,
    spent,
    tree_ticks,
)
from bench.payments import PROCESSES, Phase, cpu_table
from config import child_environment

ROOT = Path(__file__).resolve().parent.parent
BUSY = (
    "import time\nbegan = time.process_time()\nwhile time.process_time() - began < 0.2:\n    pass\n"
)


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0) -> str:
    """A /proc/<pid>/stat line (fields 1-22; the ones after stime are zero)."""
    fields = ["S", str(ppid), *["0"] * 9, str(utime), str(stime), str(cutime), *["0"] * 5]
    return f"{pid} ({comm}) {' '.join(fields)}\n"


def fake_proc(tmp_path: Path, lines: dict[int, str]) -> Path:
    for pid, line in lines.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(line)
    (tmp_path / "self").mkdir()  # not a pid: skipped
    return tmp_path


# -- bench/cpu.py ------------------------------------------------------------------------------


def test_parse_stat_reads_this_process() -> None:
    stat = parse_stat(Path("/proc/self/stat").read_text())
    assert stat.pid == os.getpid()
    assert stat.ppid == os.getppid()
    assert min(stat.utime, stat.stime, stat.cutime, stat.cstime) >= 0


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    stat = parse_stat(stat_line(42, "odd) (name x", ppid=7, utime=11, stime=5, cutime=3))
    assert stat == ProcStat(42, "odd) (name x", 7, 11, 5, 3, 0)
    assert stat.own == 16
    assert stat.with_reaped_children == 19


def test_a_busy_loop_increases_the_measured_cpu() -> None:
    me = {"me": Source(os.getpid(), tree=False)}
    before = sample(me)
    began = time.process_time()
    while time.process_time() - began < 0.2:  # burns CPU; nothing here is timed
        pass
    after = sample(me)
    assert before["me"] is not None
    assert after["me"] is not None
    assert after["me"] > before["me"]
    burnt = spent(before, after)["me"]
    assert burnt is not None
    assert burnt > 0


def test_a_reaped_child_counts_in_its_parents_tree_not_in_its_own_time() -> None:
    sources = {"tree": Source(os.getpid()), "own": Source(os.getpid(), tree=False)}
    before = sample(sources)
    subprocess.run([sys.executable, "-c", BUSY], check=True)  # exits and is reaped: cutime
    burnt = spent(before, sample(sources))
    assert burnt["tree"] is not None
    assert burnt["own"] is not None
    assert burnt["tree"] > burnt["own"]


def test_a_tree_sums_live_descendants_and_their_reaped_children(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            10: stat_line(10, "postgres", ppid=1, utime=100, stime=20, cutime=50),
            11: stat_line(11, "postgres: backend", ppid=10, utime=7, stime=3),
            12: stat_line(12, "postgres: worker", ppid=11, utime=1, stime=1, cutime=2),
            13: stat_line(13, "other", ppid=1, utime=1000, stime=1000),
        },
    )
    stats = all_stats(proc)
    assert sorted(stats) == [10, 11, 12, 13]
    assert tree_ticks(10, stats) == 170 + 10 + 4
    assert tree_ticks(12, stats) == 4
    assert tree_ticks(99, stats) is None
    seconds = sample(
        {"pg": Source(10), "alone": Source(10, tree=False), "gone": Source(99), "?": Source(None)},
        proc,
    )
    assert seconds == {
        "pg": 184 / clock_ticks(),
        "alone": 120 / clock_ticks(),
        "gone": None,
        "?": None,
    }


def test_spent_is_unknown_unless_both_samples_have_it() -> None:
    assert spent({"a": 1.0, "b": None, "c": 2.0}, {"a": 1.5, "b": 3.0, "c": None}) == {
        "a": 0.5,
        "b": None,
        "c": None,
    }


# -- bench/payments.py's table ---------------------------------------------------------------


def phase(name: str, cpu: dict[str, float | None]) -> Phase:
    return Phase(name, outcomes=Counter({"done": 10}), elapsed=2.0, cpu=cpu)


def test_the_cpu_table_has_a_row_per_process_and_the_totals() -> None:
    deposits = phase("deposits", dict.fromkeys(PROCESSES, 0.01))  # 10 ms each: 1 ms/payment
    bare = phase("bare", {**dict.fromkeys(PROCESSES, 0.005), "API": 0.0})
    lines = cpu_table(deposits, bare)
    text = "\n".join(lines)
    assert re.search(r"API\s+1\.00\s+\(0\.00\)", text)
    assert re.search(r"worker\s+1\.00\s+0\.50", text)
    assert re.search(r"PostgreSQL\s+1\.00\s+\(0\.50\)", text)
    assert re.search(r"client \(bench\)\s+1\.00\s+0\.50", text)
    # deposits: 6 processes; bare: worker, Temporal and client only (the others are idle)
    assert re.search(r"total\s+6\.00\s+1\.50", text)
    assert re.search(r"cores busy\s+0\.03\s+0\.01", text)  # 60 ms in 2 s; 15 ms in 2 s


def test_the_cpu_table_of_a_running_stack_knows_only_the_client() -> None:
    unknown = {**dict.fromkeys(PROCESSES), "client": 0.02}
    text = "\n".join(cpu_table(phase("deposits", unknown), phase("bare", unknown)))
    assert re.search(r"API\s+n/a\s+n/a", text)
    assert re.search(r"client \(bench\)\s+2\.00\s+2\.00", text)
    assert re.search(r"total\s+n/a\s+n/a", text)


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.fullstack
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
    # every process of the embedded stack is measured: no n/a; the bare phase's idle ones in ()
    assert "CPU ms per payment" in out
    for process in ("API", "PostgreSQL", "simulator"):
        assert re.search(rf"\n    {process}\s+[\d.]+\s+\([\d.]+\)\n", out), out
    for process in ("worker", "Temporal", r"client \(bench\)", "total"):
        assert re.search(rf"\n    {process}\s+[\d.]+\s+[\d.]+\n", out), out
    worker = re.search(r"\n    worker\s+([\d.]+)\s+([\d.]+)\n", out)
    assert worker is not None
    assert float(worker[1]) > 0, out  # each worker's own CPU is seen
    assert float(worker[2]) > 0, out
    assert "all invariants hold" in out
