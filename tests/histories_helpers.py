"""Keeping the histories of the test scenarios, for the replay test (tests/test_replay.py).

`python -m tests.record_histories` runs the scenarios with PAY_RECORD_HISTORIES set to the
histories folder; each scenario then writes its workflow's history there as `<name>.json`.
Without the variable `keep` does nothing, so the scenarios run as ordinary tests in CI.
"""

import os
from pathlib import Path

from temporalio.client import Client

HISTORIES = Path(__file__).parent / "histories"
RECORD_ENV = "PAY_RECORD_HISTORIES"


async def keep(client: Client, workflow_id: str, name: str, *, run_id: str | None = None) -> None:
    """Keep the workflow's history (with `run_id`: that run's, of a chain continued as new)."""
    target = os.environ.get(RECORD_ENV)
    if not target:
        return
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    path = Path(target) / f"{name}.json"
    path.write_text(history.to_json(), encoding="utf-8")
