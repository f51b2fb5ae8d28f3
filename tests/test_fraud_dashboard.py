"""Issue 18 in the operator dashboard, in real headless Chromium (as in
tests/test_dashboard_browser.py: the API as its own process, the worker in this test process).

The risk team's panels: the deposit review queue shows a held deposit with its score and reasons
and approves it from the page (credited, the operator's reason kept); the risk alerts show the
review's alert; a block list entry is added and removed from the page, with its audit trail.
"""

import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from domain.roles import Role
from tests import test_dashboard_browser as dashboard
from tests.conftest import _result, card_deposit, new_player
from tests.test_fraud_api import post_deposit, wait_status

chromium = dashboard.chromium  # Debian's chromium (the test is skipped without it)
api_process = dashboard.api_process  # `python -m api` against the test database and Temporal


async def test_the_risk_team_reviews_and_edits_lists_from_the_dashboard(
    chromium: Path,
    api_process: str,
    api_keys: dict[Role, str],
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
) -> None:
    from playwright.async_api import Dialog, async_playwright, expect

    player = await new_player(api)
    created = await post_deposit(api, card_deposit(player, 1_500_000_00))
    assert created.status_code == 202, created.text
    deposit_id = created.json()["id"]
    await wait_status(api, deposit_id, "in_review")
    device = f"dev-{uuid.uuid4().hex[:10]}"

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            async def removal_reason(dialog: Dialog) -> None:  # the page asks why (prompt)
                await dialog.accept("false positive")

            page.on("dialog", removal_reason)
            await page.goto(f"{api_process}/dashboard")
            await page.fill("#api-key", api_keys[Role.OPERATOR])
            await page.click("#save-key")
            await expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=20_000)

            row = page.locator(f'#deposit-queue tr[data-id="{deposit_id}"]')
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("not credited")
            await expect(row.locator("td.num").nth(1)).to_have_text("40")  # the score
            await expect(row).to_contain_text("large_amount")
            await expect(row).to_contain_text("financial_monitoring_threshold")
            alert = page.locator('#risk-alerts li[data-kind="payment_review"]', has_text=deposit_id)
            await expect(alert).to_have_count(1)

            await page.select_option("#list-type", "block")
            await page.select_option("#list-kind", "device")
            await page.fill("#list-value", device)
            await page.fill("#list-reason", "ring device")
            await page.click("#list-form button[type=submit]")
            entry = page.locator("#lists tr", has_text=device)
            await expect(entry).to_have_count(1, timeout=20_000)
            await expect(entry).to_contain_text("ring device")

            await row.locator("input.reason").fill("KYC documents on file")
            await row.locator("button.approve").click()
            await expect(row).to_have_count(0, timeout=20_000)

            await entry.locator("button.remove-entry").click()
            await expect(entry).to_have_count(0, timeout=20_000)
            assert errors == []
        finally:
            await browser.close()

    done = await wait_status(api, deposit_id, "succeeded")
    await _result(temporal_client.get_workflow_handle(done["workflow_id"]))
    review = done["risk"]["review"]
    assert (review["status"], review["reason"]) == ("approved", "KYC documents on file")
    listed = await operator_api.get(
        "/v1/risk/lists", params={"kind": "device", "include_inactive": "true"}
    )
    entries: list[dict[str, Any]] = [e for e in listed.json()["data"] if e["value"] == device]
    assert len(entries) == 1, listed.text
    assert entries[0]["active"] is False
    shown = (await operator_api.get(f"/v1/risk/lists/{entries[0]['id']}")).json()
    assert [(e["action"], e["reason"]) for e in shown["events"]] == [
        ("removed", "false positive"),
        ("added", "ring device"),
    ]
