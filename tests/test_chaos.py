"""The chaos command's CI subset: a small run of `python -m bench.chaos` with a shortened fault
schedule (duplicated callbacks, kazcard down and back, late answers from altyncard, one worker
SIGKILL, dropped callbacks, one PostgreSQL restart) must lose nothing, charge and pay out nothing
twice and keep the ledger and every wallet balanced. The full run (1,000 payments): `make chaos`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import breaches

pytestmark = pytest.mark.fullstack
ROOT = Path(__file__).resolve().parent.parent


def test_small_chaos_run_loses_nothing_and_keeps_the_books(tmp_path: Path) -> None:
    report_file = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--payments",
            "40",
            "--players",
            "10",
            "--rate",
            "2",
            "--concurrency",
            "8",
            "--faults",
            "short",
            "--settle-timeout",
            "90",
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
            str(report_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout[-6000:] + run.stderr[-3000:]
    assert report_file.exists(), output
    report = json.loads(report_file.read_text())
    assert breaches(report) == [], output
    assert run.returncode == 0, output

    assert report["accepted"] == report["submitted"] == 50  # 40 + one funding deposit per player
    assert report["lost"] == []
    assert report["double_charges"] == []
    assert report["double_payouts"] == []
    assert report["wallets_wrong"] == []
    assert all(verdict == "ok" for verdict in report["ledger_invariants"].values())
    faults = " | ".join(report["faults"])
    for fault in (
        "SIGKILL worker",
        "kazcard DOWN",
        "kazcard back up",
        "after the timeout",
        "duplicated",
        "DROPPED",
    ):
        assert fault in faults, faults
    assert "PostgreSQL back" in faults, faults
    # Whatever is still open is listed by /v1/ops/stuck with what it waits on.
    assert report["open_not_listed_as_stuck"] == []
    # Both kinds of payments and the player's and operator's parts really ran.
    assert any(k.startswith("deposit:succeeded") for k in report["final_status"])
    assert any(k.startswith("withdrawal:") for k in report["final_status"])
    assert report["player_actions"], report
