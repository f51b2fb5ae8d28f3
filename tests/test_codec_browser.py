"""The embedded stack run encrypted (`python -m stack run --encrypted`), black-box: the dev
server's Web UI wired to our `/codec`, driven in real headless Chromium (Debian's `chromium`,
Playwright), and the temporal CLI's codec client.

- An operator who signed in on the dashboard and turned on the UI's "Include cross-origin
  credentials" codec setting reads a deposit's decoded input in the Web UI.
- Signed out (or signed in without that setting: the UI then sends no cookie), the UI shows the
  ciphertext.
- The temporal CLI with a merchant key gets the codec's refusal printed at once, not a timeout.

A screenshot of each view is saved under `test-artifacts/`.
"""

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from codec.aesgcm import ENCODING, KEY_ID_METADATA, WORKFLOW_ID_METADATA, AesGcmCodec, decode_key
from config.settings import DEV_CODEC_KEY, DEV_CODEC_KEY_ID
from tests.conftest import ROOT, card_deposit, player_body
from tests.test_fullstack import RunningStack

pytestmark = pytest.mark.fullstack
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


class EncryptedStack(RunningStack):
    """`python -m stack run --encrypted` on free ports and a fresh data directory."""

    banner = ""

    def start(self) -> str:
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stack", "run", "--encrypted"],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = self.output.read_text(errors="replace")
            if "Press Ctrl-C to stop." in text:
                self.banner = text
                return text
            if self.process.poll() is not None:
                raise AssertionError(f"stack exited {self.process.returncode}:\n{text}")
            time.sleep(0.2)  # another process's progress: nothing to await
        raise AssertionError(f"stack did not come up:\n{self.output.read_text()}")

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ui']}"

    def keys(self) -> dict[str, str]:
        keys: dict[str, str] = json.loads((self.data_dir / "api-keys.json").read_text())
        return keys


@dataclass
class Deposit:
    workflow_id: str
    player_id: str
    deposit_id: str
    input_ciphertext: str  # base64 of the encrypted input as the history holds it
    history_payloads: list[Payload]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EncryptedStack]:
    running = EncryptedStack(tmp_path_factory.mktemp("codec-stack") / "data")
    try:
        running.start()
        yield running
        assert running.interrupt() == 0
    finally:
        running.kill()


def _dev_converter() -> Any:
    """What the stack's worker and API use with `--encrypted` in development: the dev key."""
    codec = AesGcmCodec({DEV_CODEC_KEY_ID: decode_key(DEV_CODEC_KEY)}, DEV_CODEC_KEY_ID)
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


@pytest.fixture(scope="module")
async def deposit(stack: EncryptedStack) -> Deposit:
    headers = {"Authorization": f"Bearer {stack.keys()['merchant']}"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30, headers=headers) as api:
        player = (await api.post("/v1/players", json=player_body())).json()
        created = await api.post(
            "/v1/deposits",
            json=card_deposit(player["id"], 1_234_500),
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert created.status_code == 202, created.text
    workflow_id = created.json()["workflow_id"]
    client = await Client.connect(stack.temporal, data_converter=_dev_converter())
    handle = client.get_workflow_handle(workflow_id)
    result = await handle.result()
    assert result["status"] == "succeeded"
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payloads = [p for event in history.events for p in _event_payloads(event)]
    return Deposit(
        workflow_id=workflow_id,
        player_id=player["id"],
        deposit_id=created.json()["id"],
        input_ciphertext=base64.b64encode(started.input.payloads[0].data).decode(),
        history_payloads=payloads,
    )


def _event_payloads(event: Any) -> list[Payload]:
    """The input and result payloads of workflow and activity events."""
    found: list[Payload] = []
    for name in (
        "workflow_execution_started_event_attributes",
        "activity_task_scheduled_event_attributes",
        "activity_task_completed_event_attributes",
        "workflow_execution_completed_event_attributes",
    ):
        if event.HasField(name):
            attributes = getattr(event, name)
            holder = attributes.input if hasattr(attributes, "input") else attributes.result
            found.extend(holder.payloads)
    return found


def test_the_banner_and_the_dev_server_wire_the_ui_to_the_codec(stack: EncryptedStack) -> None:
    banner = stack.banner
    endpoint = f"{stack.api_url}/codec"
    assert f"payloads encrypted, UI codec {endpoint}" in banner
    assert "Include cross-origin" in banner
    settings = httpx.get(f"{stack.ui_url}/api/v1/settings", timeout=10).json()
    assert settings["Codec"]["Endpoint"] == endpoint
    # The dev server has no flag for it: the operator turns it on in the UI (README).
    assert settings["Codec"]["IncludeCredentials"] is False


def test_history_in_the_dev_server_is_encrypted_and_bound_to_its_workflow(
    deposit: Deposit,
) -> None:
    assert len(deposit.history_payloads) >= 4
    for payload in deposit.history_payloads:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == DEV_CODEC_KEY_ID.encode()
        assert payload.metadata[WORKFLOW_ID_METADATA] == deposit.workflow_id.encode()
        assert deposit.player_id.encode() not in payload.data


# -- the Web UI in Chromium -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    pytest.importorskip("playwright", reason="pip install playwright (no browser download)")
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (install Debian's `chromium` package)")
    return CHROMIUM


async def _ui_codec_setting(page: Any, ui_url: str, endpoint: str) -> None:
    """What the README tells the operator to do once per browser, clicked as they would."""
    await page.goto(f"{ui_url}/namespaces/default/workflows")
    await page.get_by_role("button", name="Codec Server").first.click()
    await page.get_by_text("Use my browser setting and ignore Cluster-level setting.").click()
    await page.locator("#data-encoder-endpoint-input").fill(endpoint)
    await page.get_by_text("Include cross-origin credentials").click()
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_function("localStorage.getItem('includeCredentials') === 'true'")


async def _open_workflow(page: Any, stack: EncryptedStack, deposit: Deposit) -> int:
    """Opens the deposit's page in the Web UI; the status of the UI's first codec call."""
    async with page.expect_response(
        lambda r: r.url.startswith(f"{stack.api_url}/codec/decode") and r.request.method == "POST"
    ) as first:
        await page.goto(f"{stack.ui_url}/namespaces/default/workflows/{deposit.workflow_id}")
    status: int = (await first.value).status
    return status


async def test_a_signed_in_operator_reads_the_decoded_input_in_the_web_ui(
    chromium: Path, stack: EncryptedStack, deposit: Deposit
) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    endpoint = f"{stack.api_url}/codec"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            # Signed in on the dashboard, with the UI's credentials setting on: decoded.
            operator = await browser.new_context(viewport={"width": 1400, "height": 1600})
            page = await operator.new_page()
            await page.goto(f"{stack.api_url}/dashboard")
            async with page.expect_response(
                lambda r: r.url == f"{stack.api_url}/v1/session" and r.request.method == "POST"
            ) as opened:
                await page.fill("#api-key", stack.keys()["operator"])
                await page.click("#save-key")
            assert (await opened.value).status == 201
            cookies = {c["name"]: c for c in await operator.cookies(stack.api_url)}
            assert cookies["kzpay_operator_session"]["httpOnly"]
            await _ui_codec_setting(page, stack.ui_url, endpoint)
            assert await _open_workflow(page, stack, deposit) == 200
            body = page.locator("body")
            await expect(body).to_contain_text(f'"player_id": "{deposit.player_id}"')
            await expect(body).to_contain_text(f'"deposit_id": "{deposit.deposit_id}"')
            await expect(body).not_to_contain_text(deposit.input_ciphertext[:40])
            await page.screenshot(path=str(ARTIFACTS / "codec-ui-decoded.png"), full_page=True)

            # Signed out (no session cookie), the same setting: the UI shows the ciphertext.
            stranger = await browser.new_context(viewport={"width": 1400, "height": 1600})
            page = await stranger.new_page()
            await _ui_codec_setting(page, stack.ui_url, endpoint)
            assert await _open_workflow(page, stack, deposit) == 401
            body = page.locator("body")
            await expect(body).to_contain_text(deposit.input_ciphertext[:40])
            await expect(body).not_to_contain_text(deposit.player_id)
            await page.screenshot(path=str(ARTIFACTS / "codec-ui-signed-out.png"), full_page=True)

            # Signed in, but the UI left at the cluster setting (no credentials): ciphertext,
            # which is what an operator saw before this was documented.
            cookie_only = await browser.new_context(viewport={"width": 1400, "height": 1600})
            page = await cookie_only.new_page()
            await page.goto(f"{stack.api_url}/dashboard")
            async with page.expect_response(lambda r: r.url == f"{stack.api_url}/v1/session"):
                await page.fill("#api-key", stack.keys()["operator"])
                await page.click("#save-key")
            assert await _open_workflow(page, stack, deposit) == 401
            body = page.locator("body")
            await expect(body).to_contain_text(deposit.input_ciphertext[:40])
            await expect(body).not_to_contain_text(deposit.player_id)
        finally:
            await browser.close()


# -- the temporal CLI -----------------------------------------------------------------------------


def _cli_show(stack: EncryptedStack, workflow_id: str, auth: str | None) -> tuple[int, str]:
    temporal = shutil.which("temporal", path=str(Path(sys.executable).parent)) or "temporal"
    command = [
        temporal,
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--address",
        stack.temporal,
        "--codec-endpoint",
        f"{stack.api_url}/codec",
    ]
    if auth is not None:
        command += ["--codec-auth", auth]
    done = subprocess.run(
        command, capture_output=True, timeout=60, check=False, env={**os.environ, "NO_COLOR": "1"}
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    return done.returncode, output


def test_the_cli_reads_the_history_with_an_operator_key(
    stack: EncryptedStack, deposit: Deposit
) -> None:
    code, output = _cli_show(stack, deposit.workflow_id, f"Bearer {stack.keys()['operator']}")
    assert code == 0, output
    assert '"status":"succeeded"' in output
    assert "ResultEncoding  json/plain" in output


def test_the_cli_with_a_merchant_key_prints_the_refusal_at_once(
    stack: EncryptedStack, deposit: Deposit
) -> None:
    """The Go SDK retries any codec error until its 10 s deadline and then shows only `context
    deadline exceeded`; the codec answers the CLI's refused call with the refusal as the value."""
    code, output = _cli_show(stack, deposit.workflow_id, f"Bearer {stack.keys()['merchant']}")
    assert code == 0, output
    assert "context deadline exceeded" not in output
    assert "codec refused (403 forbidden)" in output
    assert "needs an operator or admin API key, and a merchant key is not one" in output
    assert '"status":"succeeded"' not in output

    code, output = _cli_show(stack, deposit.workflow_id, None)
    assert code == 0, output
    assert "codec refused (401 unauthorized)" in output
