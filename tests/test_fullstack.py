"""The README's `make run` command, black-box: the whole embedded stack as separate processes
(Temporal dev server, PostgreSQL, simulator, worker, API), a deposit over HTTP, Ctrl-C, restart."""

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config import child_environment
from stack.launcher import free_port
from tests.conftest import card_deposit, player_body

pytestmark = pytest.mark.fullstack
ROOT = Path(__file__).resolve().parent.parent


class RunningStack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in ("api", "sim", "temporal", "ui")}
        self.api_url = f"http://127.0.0.1:{self.ports['api']}"
        self.temporal = f"127.0.0.1:{self.ports['temporal']}"
        self.process: subprocess.Popen[bytes] | None = None
        self.output = data_dir.parent / f"stack-output-{uuid.uuid4().hex[:6]}.txt"

    def env(self) -> dict[str, str]:
        return child_environment(
            {
                "PAY_DATA_DIR": str(self.data_dir),
                "PAY_API_PORT": str(self.ports["api"]),
                "PAY_SIMULATOR_PORT": str(self.ports["sim"]),
                "PAY_SIMULATOR_URL": f"http://127.0.0.1:{self.ports['sim']}",
                "PAY_TEMPORAL_PORT": str(self.ports["temporal"]),
                "PAY_TEMPORAL_UI_PORT": str(self.ports["ui"]),
                "PAY_TEMPORAL_TASK_QUEUE": "fullstack",
            }
        )

    def merchant_headers(self) -> dict[str, str]:
        keys = json.loads((self.data_dir / "api-keys.json").read_text())
        return {"Authorization": f"Bearer {keys['merchant']}"}

    def start(self) -> str:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stack", "run"],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = self.output.read_text(errors="replace")
            if "Press Ctrl-C to stop." in text:
                return text
            if self.process.poll() is not None:
                raise AssertionError(f"stack exited {self.process.returncode}:\n{text}")
            time.sleep(0.2)  # another process's progress: nothing to await
        raise AssertionError(f"stack did not come up:\n{self.output.read_text()}")

    def interrupt(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_make_run_serves_a_card_deposit_end_to_end(stack_dir: Path) -> None:
    stack = RunningStack(stack_dir)
    try:
        banner = stack.start()
        assert f"{stack.api_url}/docs" in banner
        assert f"http://127.0.0.1:{stack.ports['ui']}" in banner
        for step in range(1, 7):
            assert f"[{step}/6]" in banner

        headers = stack.merchant_headers()
        assert headers["Authorization"].removeprefix("Bearer ") in banner
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as anonymous:
            assert (await anonymous.get("/v1/players/pl_x")).status_code == 401
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30, headers=headers) as api:
            assert (await api.get("/openapi.json")).status_code == 200
            player = (await api.post("/v1/players", json=player_body())).json()
            created = await api.post(
                "/v1/deposits",
                json=card_deposit(player["id"], 1_234_500),
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert created.status_code == 202, created.text
            deposit = created.json()

            client = await Client.connect(stack.temporal, data_converter=pydantic_data_converter)
            await client.get_workflow_handle(deposit["workflow_id"]).result()
            shown = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
            assert shown["status"] == "succeeded"
            assert sorted(t["kind"] for t in shown["ledger"]) == ["deposit_credit", "deposit_fee"]
            balance = (await api.get(f"/v1/players/{player['id']}")).json()["balance"]
            assert balance["available"] == 1_234_500

            query = f'PaymentStatus="succeeded" AND PlayerId="{player["id"]}"'
            found = [wf.id async for wf in client.list_workflows(query)]
            deadline = time.monotonic() + 10
            while found != [deposit["workflow_id"]] and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # visibility is eventually consistent: no event
                found = [wf.id async for wf in client.list_workflows(query)]
            assert found == [deposit["workflow_id"]]

        assert stack.interrupt() == 0
        assert "Stopped. Data is kept for the next run." in stack.output.read_text()

        # A second run on the same data directory still knows the player and the deposit.
        restarted = RunningStack(stack_dir)
        try:
            restarted.start()
            # The development keys survive the restart too.
            assert restarted.merchant_headers() == headers
            async with httpx.AsyncClient(
                base_url=restarted.api_url, timeout=30, headers=headers
            ) as api:
                again = (await api.get(f"/v1/deposits/{deposit['id']}")).json()
                assert again["status"] == "succeeded"
                balance = (await api.get(f"/v1/players/{player['id']}")).json()["balance"]
                assert balance["available"] == 1_234_500
            assert restarted.interrupt() == 0
        finally:
            restarted.kill()
    finally:
        stack.kill()
