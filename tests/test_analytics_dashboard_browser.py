"""The dashboard's cohort and harm-marker panels (issue 19) in real headless Chromium: the API as
its own process (the fixtures of tests/test_dashboard_browser.py), a player with rising deposits
of its own."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.roles import Role
from tests.analytics_helpers import _deposit, _player
from tests.test_dashboard_browser import ARTIFACTS, api_process, chromium

__all__ = ["api_process", "chromium"]  # module fixtures, used here


async def test_cohorts_and_harm_markers_in_chromium(
    chromium: Path,
    api_process: str,
    api_keys: dict[Role, str],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from playwright.async_api import async_playwright, expect

    # Four deposits, each larger, at 09:00-12:00 in Almaty three days ago: deposit escalation.
    almaty = ZoneInfo("Asia/Almaty")
    day = (datetime.now(almaty) - timedelta(days=3)).date()
    first = datetime(day.year, day.month, day.day, 9, tzinfo=almaty)
    player = _player()
    rows: list[Any] = []
    for n in range(4):
        rows += _deposit(
            player,
            at=(first + timedelta(hours=n)).astimezone(UTC),
            amount=10_000 * (n + 1),
            status="succeeded",
        )
    async with sessions.begin() as session:
        session.add(player)
        await session.flush()
        session.add_all(rows)

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 2200})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{api_process}/dashboard")
            await page.fill("#api-key", api_keys[Role.OPERATOR])
            await page.click("#save-key")
            await expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=20_000)

            # The player's cohort: the month of the first deposit, retained 100 % in it.
            cohort = page.locator(f'#table-cohorts tr[data-cohort="{day.isoformat()[:7]}"]')
            await expect(cohort).to_have_count(1)
            await expect(page.locator("#cohort-funnel")).to_contain_text("first deposit")

            # The harm-marker list, a page at a time, until the player's row.
            row = page.locator(
                f'#table-harm tr[data-player="{player.id}"][data-marker="deposit_escalation"]'
            )
            shown = page.locator("#table-harm tr[data-player]").first
            for _ in range(50):
                if await row.count():
                    break
                before = await shown.get_attribute("data-player")
                assert before is not None
                await page.click("#harm-next")
                await expect(shown).not_to_have_attribute("data-player", before)
            await expect(row).to_contain_text("100.00 KZT → 200.00 KZT → 300.00 KZT → 400.00 KZT")
            await row.locator("a.profile-link").click()
            await expect(page.locator("#profile-table")).to_contain_text(player.id)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-behaviour.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()
