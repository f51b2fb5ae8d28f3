"""DepositWorkflow replays histories recorded by earlier versions of its code: a deposit in
flight when the worker is upgraded must go on where it was, not fail as nondeterministic.

The histories in tests/histories were recorded with the tests' pydantic converter (no codec):
deposit_*.pre_route_with_status.json by the code before the `route-with-status` patch (a card
charged at once, a declined card, a QR payment paid by callback), and
deposit_*.pre_credit_with_status.json by the code with it and before `credit-with-status`, and
deposit_*.v1_all_patches.json by the last code of flow version 1 (all five patches, before
`prepare_deposit`): deposits started before version 2 must still replay."""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.deposit import DepositWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("deposit_*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
async def test_earlier_deposit_histories_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))  # noqa: ASYNC240
    replayer = Replayer(workflows=[DepositWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= 3
