"""`python -m demo` against an API process (a real HTTP stack), as `make demo` runs it.

The honest players' deposits are mostly approved (their decline rate stays under 15%), all six
methods are used, and the deliberate fraud is caught: the multi-accounting ring and the
card-testing burst. The session's rule overlay lifts the cross-player rules (the suite's players
share cards and devices); here they are as packaged.
"""

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from temporalio.client import Client

from config import Settings, child_environment
from domain.fraud.config import DEFAULT_RULES_PATH, load_rule_set
from domain.roles import Role
from stack.launcher import free_port
from tests.conftest import ROOT
from tests.fraud_helpers import overlay

PACKAGED = load_rule_set(DEFAULT_RULES_PATH).deposit.rules
AS_PACKAGED = "".join(
    f"[deposit.rules.{code}]\n{param} = {PACKAGED[code].int(param)}\n"
    for code, param in (
        ("multi_account_device", "max_other_identities"),
        ("multi_account_card", "max_other_identities"),
        ("card_testing", "max_declines"),
    )
)


@pytest.fixture(scope="module")
def demo_api(
    settings: Settings, temporal_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`python -m api` on a free port, against the test database and Temporal; deposits poll
    their provider every second (the simulator's callbacks go to the test's own address)."""
    assert settings.database_url
    port = free_port()
    data_dir = tmp_path_factory.mktemp("demo-api")
    log = (data_dir / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_environment(
            {
                "PAY_ENVIRONMENT": "test",
                "PAY_DATA_DIR": str(data_dir),
                "PAY_DATABASE_URL": settings.database_url,
                "PAY_SIMULATOR_URL": settings.simulator_url,
                "PAY_TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
                "PAY_TEMPORAL_NAMESPACE": temporal_client.namespace,
                "PAY_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
                "PAY_API_HOST": "127.0.0.1",
                "PAY_API_PORT": str(port),
                "PAY_CALLBACK_POLL_INITIAL_SECONDS": "1",
                "PAY_CALLBACK_POLL_MAX_SECONDS": "2",
            }
        ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the API exited: {(data_dir / 'api.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start in 30 s")
            time.sleep(0.1)  # another process's readiness: nothing to await
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


async def test_demo_traffic(
    demo_api: str,
    api_keys: dict[Role, str],
    settings: Settings,
    fraud_overlay: Path,
    tmp_path: Path,
) -> None:
    keys = {role.value: key for role, key in api_keys.items()}
    (tmp_path / "api-keys.json").write_text(json.dumps(keys))
    with overlay(fraud_overlay, AS_PACKAGED, "demo"):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "demo",
            "--players",
            "6",
            "--seed",
            "7",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_environment(
                {
                    "PAY_DATA_DIR": str(tmp_path),
                    "PAY_API_HOST": "127.0.0.1",
                    "PAY_API_PORT": str(urlparse(demo_api).port),
                    "PAY_SIMULATOR_URL": settings.simulator_url,
                }
            ),
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 480)
        except TimeoutError:
            process.kill()
            pytest.fail("the demo did not finish in 480 s")
    text = output.decode()
    print(text)  # the demo's own account, shown with -rP
    assert process.returncode == 0, text
    assert text.count("player pl_") == 6, text
    assert "done; open http://127.0.0.1:" in text
    declines = re.search(r"decline rate: ([0-9.]+)% of ([0-9]+) honest deposits", text)
    assert declines is not None, text
    assert float(declines.group(1)) < 15, text
    assert int(declines.group(2)) >= 15, text
    approval = re.search(r"approval rate: ([0-9.]+)% of", text)
    assert approval is not None, text
    assert float(approval.group(1)) > 80, text
    assert "fraud ring: caught (multi_account_card" in text, text
    assert "fraud card testing: caught (card_testing)" in text, text
    methods = re.search(r"succeeded by method: (.*)", text)
    assert methods is not None, text
    used = {m: int(n) for m, n in re.findall(r"([a-z_]+) ([0-9]+)", methods.group(1))}
    assert set(used) == {"card", "qr", "mobile_banking", "ewallet", "aggregator", "bank_transfer"}
    assert all(n >= 1 for n in used.values()), text
    assert "review approved, deposit succeeded" in text, text
