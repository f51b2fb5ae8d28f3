"""The operator dashboard in real headless Chromium (Debian's `chromium`, driven by Playwright).

The API runs as its own process (`python -m api`, uvicorn) against the test database and the
time-skipping Temporal server whose worker runs in this test process, so the page's approve and
reject buttons reach a real workflow. A screenshot is saved under `test-artifacts/`.
"""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from config import Settings, child_environment
from domain.roles import Role
from stack.launcher import free_port
from tests.analytics_helpers import insert_fixture
from tests.conftest import ROOT, new_player
from tests.test_withdrawals import create, fund, iban_withdrawal

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
BASE = date(2002, 5, 1)
RANGE = "from=2002-05-01T00:00:00Z&to=2002-05-03T00:00:00Z"


def _chromium() -> Path:
    """Debian's chromium; installed here only when running as root with apt, else skip."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            env=env,
            capture_output=True,
            check=False,
        )
        if done.returncode == 0 and CHROMIUM.exists():
            return CHROMIUM
        pytest.skip(f"chromium could not be installed: {done.stderr.decode()[-300:]}")
    pytest.skip("/usr/bin/chromium is missing (install Debian's `chromium` package, as root)")


@pytest.fixture(scope="module")
def chromium() -> Path:
    pytest.importorskip("playwright", reason="pip install playwright (no browser download)")
    return _chromium()


@pytest.fixture(scope="module")
def api_process(
    settings: Settings, temporal_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`python -m api` on a free port, against the test database and Temporal."""
    assert settings.database_url
    port = free_port()
    data_dir = tmp_path_factory.mktemp("dashboard-api")
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


@pytest.fixture
async def fixture_ids(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    return await insert_fixture(sessions, BASE)


async def test_dashboard_in_chromium(
    chromium: Path,
    api_process: str,
    fixture_ids: list[str],
    api_keys: dict[Role, str],
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from playwright.async_api import async_playwright, expect

    # A real withdrawal waiting for review (a new payout destination), to reject from the page.
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    withdrawal = await create(api, iban_withdrawal(player, 60_000_00))
    for _ in range(100):
        if (await api.get(f"/v1/withdrawals/{withdrawal['id']}")).json()["status"] == "in_review":
            break
        await asyncio.sleep(0.1)

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{api_process}/dashboard?{RANGE}")
            await expect(page.locator("#main")).to_be_hidden()
            await page.fill("#api-key", api_keys[Role.OPERATOR])
            await page.click("#save-key")
            await expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=20_000)

            # The hand-computed figures of tests/test_analytics.py, as the tiles show them.
            tiles = {
                "#kpi-deposit-volume": "4,200.01 KZT",
                "#kpi-deposit-count": "3 / 6",
                "#kpi-approval-rate": "60.0%",
                "#kpi-net-deposits": "3,600.01 KZT",
                "#kpi-average-deposit": "1,400.00 KZT",
                "#kpi-first-time": "2",
                "#kpi-time-to-complete": "30.0 s / 84.0 s",
                "#kpi-withdrawals-paid": "600.00 KZT (1)",
                "#kpi-time-to-pay": "2.0 min",
                "#kpi-fraud-hits": "4",
            }
            for selector, text in tiles.items():
                await expect(page.locator(selector)).to_have_text(text)
            assert await page.locator("#chart-days svg rect").count() == 4  # 2 days x 2 series
            await expect(page.locator("#table-method")).to_contain_text("ewallet")
            await expect(page.locator("#table-provider")).to_contain_text("halyk")
            await expect(page.locator("#table-reasons")).to_contain_text("insufficient_funds")
            # Player segments and the player 360 (issue 19).
            dormant = page.locator('#table-segments tr[data-segment="dormant"]')
            await expect(dormant).to_have_count(1)
            await page.fill("#profile-player", player)
            await page.click("#profile-form button")
            await expect(page.locator("#profile-table")).to_contain_text(player)
            # Provider health from GET /v1/ops/providers, with each circuit's state.
            circuit = page.locator('#providers span[data-provider="halyk"]')
            await expect(circuit).to_have_text(re.compile("closed|open|half_open"))
            # The stuck list reads the database: the fixture's long-gone "processing" deposit.
            stuck_link = page.locator("#stuck a", has_text="Temporal UI").first
            await expect(stuck_link).to_have_attribute(
                "href", re.compile("/namespaces/.+/workflows/")
            )

            row = page.locator(f'#queue tr[data-id="{withdrawal["id"]}"]')
            await expect(row).to_have_count(1)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            await row.locator("input.reason").fill("documents do not match")
            await row.locator("button.reject").click()
            await expect(row).to_have_count(0, timeout=20_000)
            kept = await page.evaluate("localStorage.getItem('kzpay.operatorKey')")
            assert kept == api_keys[Role.OPERATOR]
            assert errors == []
        finally:
            await browser.close()

    shown = (await api.get(f"/v1/withdrawals/{withdrawal['id']}")).json()
    assert shown["status"] == "rejected"
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
