"""`python -m demo` against the API process of the dashboard test (a real HTTP stack)."""

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from config import Settings, child_environment
from domain.roles import Role
from tests.conftest import ROOT
from tests.test_dashboard_browser import api_process

__all__ = ["api_process"]  # the fixture, shared with the dashboard test


async def test_demo_traffic(
    api_process: str, api_keys: dict[Role, str], settings: Settings, tmp_path: Path
) -> None:
    keys = {role.value: key for role, key in api_keys.items()}
    (tmp_path / "api-keys.json").write_text(json.dumps(keys))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--players",
        "2",
        "--seed",
        "7",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=child_environment(
            {
                "PAY_DATA_DIR": str(tmp_path),
                "PAY_API_HOST": "127.0.0.1",
                "PAY_API_PORT": str(urlparse(api_process).port),
                "PAY_SIMULATOR_URL": settings.simulator_url,
            }
        ),
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    except TimeoutError:
        process.kill()
        pytest.fail("the demo did not finish in 240 s")
    text = output.decode()
    assert process.returncode == 0, text
    assert text.count("player pl_") == 2, text
    assert "deposit " in text, text
    assert "done; open http://127.0.0.1:" in text
