"""`python -m tests.record_histories`: record again the workflow histories the replay test
(tests/test_replay.py) replays, from the scenarios in tests/test_recorded_paths.py.

Run it after a deliberate, gated change to a workflow (see README, "Changing a workflow"): the
histories of the released code stay, the new ones join them under new names. By default it
writes into tests/histories (a name that exists is overwritten: pass --into DIR to compare).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.histories_helpers import HISTORIES, RECORD_ENV

SCENARIOS = [
    "tests/test_recorded_paths.py",
    "tests/test_money_safety.py",
    "tests/test_late_payments.py",
    "tests/test_worker_kill.py",
    "tests/test_refunds.py",
    "tests/test_compliance.py",
    "tests/test_compliance_payouts.py",
    "tests/test_recon_engine.py::test_after_a_clean_day_clearing_is_settled_and_the_checker_passes",
    "tests/test_gateway.py::test_cancel_answered_404_with_a_request_in_flight_never_charges_twice",
    # Issue 18: a deposit held for review, approved and rejected (patch `fraud-review-hold`).
    "tests/test_fraud_api.py::test_large_deposit_is_held_for_review_with_reasons_and_an_alert",
    "tests/test_fraud_api.py::test_a_rejected_review_is_declined_and_refunded",
]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.record_histories", description=__doc__)
    parser.add_argument("--into", type=Path, default=HISTORIES, help="folder for the JSON files")
    args = parser.parse_args()
    args.into.mkdir(parents=True, exist_ok=True)
    print(f">> recording workflow histories into {args.into}", flush=True)
    env = {**os.environ, RECORD_ENV: str(args.into.resolve())}
    with tempfile.TemporaryDirectory(prefix="record-histories-") as scratch:
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", f"--basetemp={scratch}", *SCENARIOS], env=env
        )
    recorded = sorted(p.name for p in args.into.glob("*.json"))
    print(f">> {len(recorded)} histories in {args.into}", flush=True)
    if code:
        print(">> a scenario failed: fix it, then record again", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
