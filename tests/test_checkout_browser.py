"""The hosted checkout in real headless Chromium (Debian's `chromium`, driven by Playwright), at a
phone's and a desktop's size: each of the six methods paid through the simulator's player pages
from the checkout and back to the casino's return_url, a declined card retried with another
method, 3-D Secure by redirect (Halyk) and by form post (CloudPayments), an expired session,
each language, the card checks as the player types, keyboard use and the accessibility tree,
page weight and first render, the page framed only by allowed parents.

The API is served on a real port in this process (the simulator calls it back there) with a
worker of its own on its own task queue; the workflows run on the time-skipping Temporal server
in real time, with status polls every half second. Screenshots (one per method and language,
at the flow's viewport) and the accessibility snapshots go to test-artifacts/checkout/.
"""

import asyncio
import contextlib
import dataclasses
import io
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from checkout.i18n import t
from config import Settings
from config.logging import JsonFormatter, RedactingFilter
from domain.roles import Role
from providers.registry import provider_http_client
from stack.launcher import free_port
from tests.checkout_helpers import csrf, expire, session_body, session_row, until_status
from tests.conftest import VISA_DECLINED, _client, card_deposit, new_player
from tests.test_dashboard_browser import ARTIFACTS, _chromium
from tests.test_gateway import THREE_DS_CARD
from worker import build_worker

SHOTS = ARTIFACTS / "checkout"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CASINO = "https://casino.example"
RETURN = f"{CASINO}/back?session={{CHECKOUT_SESSION_ID}}"
WEIGHT_LIMIT = 150 * 1024
# Casino pages that embed the checkout (served below): allowed, and not.
PARENT_PORT, STRANGER_PORT = free_port(), free_port()
PARENT, STRANGER = f"http://127.0.0.1:{PARENT_PORT}", f"http://127.0.0.1:{STRANGER_PORT}"


@pytest.fixture(scope="module")
def chromium() -> Path:
    pytest.importorskip("playwright", reason="pip install playwright (no browser download)")
    return _chromium()


@dataclasses.dataclass
class Stack:
    url: str
    merchant: httpx.AsyncClient
    settings: Settings


@contextlib.asynccontextmanager
async def serve(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
    **changes: Any,
) -> AsyncIterator[Stack]:
    """The API on a port of its own and a worker on a queue of its own, with `changes`."""
    port = free_port()
    configured = settings.model_copy(
        update={
            "public_api_url": f"http://127.0.0.1:{port}",
            "temporal_task_queue": f"checkout-{uuid.uuid4().hex[:8]}",
            "callback_poll_initial_seconds": 0.5,
            "callback_poll_max_seconds": 1.0,
            "checkout_poll_seconds": 0.5,
            "checkout_rate_limit_per_session": "1000/minute",
            "checkout_rate_limit_per_ip": "5000/minute",
            "checkout_frame_ancestors": [CASINO, PARENT],
            **changes,
        }
    )
    async with provider_http_client(configured) as http:
        worker = build_worker(temporal_env.client, configured, sessions=sessions, http=http)
        async with worker:
            app: FastAPI = create_app(configured)
            async with app.router.lifespan_context(app):
                app.state.payments._temporal = temporal_env.client
                server = uvicorn.Server(
                    uvicorn.Config(
                        app,
                        host="127.0.0.1",
                        port=port,
                        lifespan="off",
                        log_level="info",
                        log_config=None,
                    )
                )
                task = asyncio.create_task(server.serve())
                while not server.started:  # uvicorn offers no event for "listening"
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.02)
                try:
                    async with _client(app, api_keys[Role.MERCHANT]) as merchant:
                        yield Stack(configured.api_url, merchant, configured)
                finally:
                    server.should_exit = True
                    await task


@pytest.fixture(scope="module")
async def stack(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[Stack]:
    async with serve(settings, temporal_env, sessions, api_keys) as served:
        yield served


@pytest.fixture(scope="module")
def access_log() -> Iterator[io.StringIO]:
    """Every log line of the module as production writes them (redacted JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    access = logging.getLogger("uvicorn.access")
    level, propagate = access.level, access.propagate
    access.setLevel(logging.INFO)
    access.propagate = True
    yield stream
    root.removeHandler(handler)
    access.setLevel(level)
    access.propagate = propagate


@pytest.fixture(scope="module")
async def browser(chromium: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class Player:
    """A browser tab of a player, with what the page did (errors, CSP reports, bytes)."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.bytes: dict[str, int] = {}
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def _response(self, response: Any) -> None:
        with contextlib.suppress(Exception):
            self.bytes[response.url] = len(await response.body())


@contextlib.asynccontextmanager
async def player_tab(browser: Any, viewport: dict[str, int], locale: str) -> AsyncIterator[Player]:
    context = await browser.new_context(
        viewport=viewport,
        locale=locale,
        is_mobile=viewport is PHONE,
        has_touch=viewport is PHONE,
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    await context.route(
        f"{CASINO}/back**",
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<h1 id='casino'>Casino</h1>"
        ),
    )
    try:
        yield Player(context, await context.new_page())
    finally:
        await context.close()


async def checkout_url(stack: Stack, player_id: str, **overrides: Any) -> tuple[str, str]:
    response = await stack.merchant.post(
        "/v1/checkout/sessions",
        json=session_body(player_id, return_url=RETURN, **overrides),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], created["url"]


def shot_name(method: str, lang: str, viewport: dict[str, int]) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = "phone" if viewport is PHONE else "desktop"
    return SHOTS / f"{method}-{lang}-{size}.png"


async def screenshots(
    tab: Player, url: str, method: str, lang: str, viewport: dict[str, int]
) -> None:
    """The page as it is now in each language, then back to the player's own."""
    for each in ("kk", "ru", "en"):
        await tab.page.goto(f"{url}?lang={each}")
        await tab.page.wait_for_selector(f'html[lang="{each}"]')
        await tab.page.screenshot(path=str(shot_name(method, each, viewport)), full_page=True)
    await tab.page.goto(f"{url}?lang={lang}")


async def choose(tab: Player, lang: str, method: str, amount_label: str | None = None) -> None:
    page = tab.page
    if amount_label:
        await page.get_by_label(amount_label, exact=True).check()
    await page.locator(f'button.method[value="{method}"]').click()


async def pay_at_simulator(popup: Any, button: str) -> None:
    await popup.wait_for_load_state()
    await popup.get_by_role("button", name=button, exact=True).click()
    await popup.wait_for_load_state()
    await popup.close()


async def back_at_casino(tab: Player, session_id: str, lang: str) -> None:
    from playwright.async_api import expect

    await expect(tab.page.get_by_text(t(lang, "succeeded_title"))).to_be_visible(timeout=60_000)
    await tab.page.wait_for_url(f"{CASINO}/back?session={session_id}", timeout=15_000)
    await expect(tab.page.locator("#casino")).to_be_visible()


# -- each method -----------------------------------------------------------------------------------

# method, language, size, how the player pays at the simulator
FLOWS = [
    ("card", "kk", PHONE),
    ("qr", "ru", PHONE),
    ("mobile_banking", "en", DESKTOP),
    ("ewallet", "kk", DESKTOP),
    ("bank_transfer", "ru", DESKTOP),
    ("aggregator", "en", PHONE),
]


@pytest.mark.parametrize(
    ("method", "lang", "viewport"), [pytest.param(*f, id=f"{f[0]}-{f[1]}") for f in FLOWS]
)
async def test_each_method_is_paid_from_the_checkout_in_the_players_language(
    stack: Stack,
    browser: Any,
    access_log: io.StringIO,
    sessions: async_sessionmaker[AsyncSession],
    method: str,
    lang: str,
    viewport: dict[str, int],
) -> None:
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    session_id, url = await checkout_url(stack, player_id)
    async with player_tab(
        browser, viewport, {"kk": "kk-KZ", "ru": "ru-RU", "en": "en-US"}[lang]
    ) as tab:
        page = tab.page
        await page.goto(url)
        await expect(page.locator(f'html[lang="{lang}"]')).to_have_count(1)
        await expect(page.get_by_role("heading", name=t(lang, "title_deposit"))).to_be_visible()
        if method in ("card", "mobile_banking"):  # the chooser, on a phone and a desktop
            await screenshots(tab, url, "chooser", lang, viewport)
        if method == "qr":  # a declined card first, then another method
            await choose(tab, lang, "card")
            await fill_card(page, lang, VISA_DECLINED)
            await page.locator("#card-form button[type=submit]").click()
            alert = page.get_by_role("alert")
            await expect(alert).to_contain_text(t(lang, "err_insufficient_funds"), timeout=30_000)
            assert "insufficient" not in (await page.locator("main").inner_text())
        await choose(tab, lang, method, amount_label=None)
        popup_button = {
            "card": "Pass the challenge",
            "qr": "Pay (scan)",
            "ewallet": "Confirm in wallet",
            "bank_transfer": "Pay the transfer",
            "aggregator": "Pay",
        }
        if method == "card":
            await screenshots(tab, url, "card-form", lang, viewport)
            await fill_card(page, lang, THREE_DS_CARD)
            await page.locator("#card-form button[type=submit]").click()
            opener = page.get_by_role("link", name=t(lang, "three_ds_open"))
        elif method == "ewallet":
            await page.get_by_label(t(lang, "wallet_account")).fill("tw-7701")
            await page.locator("form.stack button[type=submit]").click()
            opener = page.get_by_role("link", name=t(lang, "redirect_open"))
        elif method == "mobile_banking":
            phone = page.get_by_label(t(lang, "phone"))
            await expect(phone).to_have_value("+77011234567")  # the player's own
            await page.locator("form.stack button[type=submit]").click()
            opener = None
        elif method == "qr":
            opener = page.get_by_role("link", name=t(lang, "qr_open_app"))
        elif method == "bank_transfer":
            opener = page.get_by_role("link", name=t(lang, "transfer_open_bank"))
        else:
            opener = page.get_by_role("link", name=t(lang, "redirect_open"))

        # The method's own view: what the player acts on.
        if method == "mobile_banking":
            await expect(page.get_by_text(t(lang, "app_title"))).to_be_visible(timeout=30_000)
            await expect(page.locator(".countdown time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
            first = await page.locator(".countdown time").inner_text()
            await page.wait_for_timeout(1200)
            assert await page.locator(".countdown time").inner_text() != first  # it counts
        else:
            assert opener is not None
            await expect(opener).to_be_visible(timeout=30_000)
        if method == "qr":
            qr = page.get_by_role(
                "img", name=re.compile(re.escape(t(lang, "qr_alt", amount="")[:6]))
            )
            await expect(qr).to_be_visible()
            assert await qr.evaluate("img => img.naturalWidth") > 100
        if method == "bank_transfer":
            await expect(page.get_by_text("KZ").first).to_be_visible()
            copy = page.get_by_role("button", name=re.compile(re.escape(t(lang, "transfer_iban"))))
            await copy.click()
            await expect(copy).to_have_text(t(lang, "copied"))
            copied = await page.evaluate("navigator.clipboard.readText()")
            assert copied.startswith("KZ")
            assert len(copied) == 20
        await screenshots(tab, url, method, lang, viewport)

        payment_id = (await session_row(sessions, session_id))["payment_id"]
        if method == "mobile_banking":  # the banking app on the player's phone
            app = await tab.context.new_page()
            await app.goto(f"{stack.settings.simulator_url}/pay/kaspi_pay/{payment_id}")
            await pay_at_simulator(app, "Confirm in app")
        else:
            assert opener is not None
            async with tab.context.expect_page() as opened:
                await opener.click()
            await pay_at_simulator(await opened.value, popup_button[method])
        await back_at_casino(tab, session_id, lang)
        assert tab.errors == []
    assert await until_status(sessions, payment_id, "succeeded") == "succeeded"
    shown = (await stack.merchant.get(f"/v1/checkout/sessions/{session_id}")).json()
    assert shown["status"] == "completed"
    token = url.rsplit("/", 1)[1]
    assert token not in access_log.getvalue()
    assert "/checkout/ckt_[redacted]" in access_log.getvalue()


async def until_true(page: Any, expression: str) -> None:
    """`page.wait_for_function` evaluates a string, which the page's policy forbids (no eval)."""
    for _ in range(100):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {expression}")


async def fill_card(page: Any, lang: str, number: str) -> None:
    """The card typed as a player types it, checked as it goes."""
    from playwright.async_api import expect

    field = page.get_by_label(t(lang, "card_number"))
    await field.press_sequentially(number, delay=5)
    await expect(field).to_have_value(" ".join(number[i : i + 4] for i in range(0, 16, 4)))
    await expect(page.locator("#cc-scheme")).to_have_text(t(lang, "card_scheme", scheme="Visa"))
    await page.get_by_label(t(lang, "card_expiry")).press_sequentially("1231")
    await expect(page.get_by_label(t(lang, "card_expiry"))).to_have_value("12/31")
    await page.get_by_label(t(lang, "card_cvc")).fill("123")
    await page.get_by_label(t(lang, "card_holder")).fill("AIGERIM TULEGENOVA")


# -- the card form, by keyboard, as the player types --------------------------------------------


async def test_the_card_form_checks_as_the_player_types_and_works_by_keyboard(
    stack: Stack, browser: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    session_id, url = await checkout_url(stack, player_id)
    lang = "en"
    async with player_tab(browser, DESKTOP, "en-US") as tab:
        page = tab.page
        await page.goto(url)
        # First render and weight of the page the player lands on.
        await until_true(page, "performance.getEntriesByType('paint').length > 1")
        paint = await page.evaluate(
            "performance.getEntriesByType('paint').map(e => [e.name, e.startTime])"
        )
        first_paint = dict(paint).get("first-contentful-paint")
        assert first_paint is not None
        assert first_paint < 1000, paint
        # Keyboard only: amount preset, then the card method.
        await page.keyboard.press("Tab")  # the language links come first
        for _ in range(30):
            focused = await page.evaluate("document.activeElement.value || ''")
            if focused == "card":
                break
            await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.value") == "card"
        await page.keyboard.press("Enter")
        number = page.get_by_label(t(lang, "card_number"))
        await expect(number).to_be_visible()
        snapshot = await page.locator("main").aria_snapshot()
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "card-form.aria.yaml").write_text(snapshot)
        for name in ("card_number", "card_expiry", "card_cvc", "card_holder"):
            assert f'textbox "{t(lang, name)}' in snapshot, snapshot
        assert 'button "Pay 2,000' in snapshot, snapshot
        assert f'button "{t(lang, "change_method")}"' in snapshot

        # Checks as the player types: a wrong number, a scheme, an expired card, the CVC.
        await number.focus()
        await page.keyboard.type("4242424242424241")
        await expect(page.locator("#cc-number-msg")).to_have_text(t(lang, "check_number"))
        await expect(number).to_have_attribute("aria-invalid", "true")
        await number.fill("")
        await page.keyboard.type("5555555555554444")
        await expect(page.locator("#cc-scheme")).to_have_text(
            t(lang, "card_scheme", scheme="Mastercard")
        )
        await expect(number).to_have_attribute("aria-invalid", "false")
        await number.fill("")
        await page.keyboard.type("3530111333300000")  # JCB: no provider takes it
        await expect(page.locator("#cc-number-msg")).to_have_text(t(lang, "check_scheme"))
        await number.fill("")
        await page.keyboard.type("4242424242424242")
        await page.keyboard.press("Tab")
        await page.keyboard.type("0120")
        await page.keyboard.press("Tab")
        await expect(page.locator("#cc-expiry-msg")).to_have_text(t(lang, "check_expired"))
        await page.keyboard.type("12")
        await page.keyboard.press("Enter")  # refused in the browser: nothing is posted
        await expect(page.locator("#cc-cvc-msg")).to_have_text(t(lang, "check_cvc"))
        assert (await session_row(sessions, session_id))["payment_ids"] == []
        expiry = page.get_by_label(t(lang, "card_expiry"))
        await expiry.fill("")
        await expiry.press_sequentially("1231")
        cvc = page.get_by_label(t(lang, "card_cvc"))
        await cvc.fill("")
        await cvc.press_sequentially("123")
        await page.get_by_label(t(lang, "card_holder")).fill("AIGERIM TULEGENOVA")
        await page.keyboard.press("Enter")
        await back_at_casino(tab, session_id, lang)
        # Nothing of the card stayed in the browser: no storage, no cookie, an empty form back.
        await page.go_back()
        await page.wait_for_load_state()
        stored = await page.evaluate(
            "[localStorage.length, sessionStorage.length, document.cookie]"
        )
        assert stored == [0, 0, ""]
        for field in await page.locator("input[data-check]").all():
            assert await field.input_value() == ""
        weight = sum(size for address, size in tab.bytes.items() if address.startswith(stack.url))
        assert tab.errors == []
    payment_id = (await session_row(sessions, session_id))["payment_id"]
    assert await until_status(sessions, payment_id, "succeeded") == "succeeded"
    assert weight < WEIGHT_LIMIT, tab.bytes


async def test_page_weight_is_under_150_kb_with_the_qr(
    stack: Stack, browser: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The heaviest page: the QR (the chooser and the script and style before it)."""
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    _, url = await checkout_url(stack, player_id, methods=["qr"])
    async with player_tab(browser, PHONE, "kk-KZ") as tab:
        await tab.page.goto(url)
        await choose(tab, "kk", "qr")
        qr = tab.page.get_by_role("img")
        await expect(qr).to_be_visible(timeout=30_000)
        await until_true(tab.page, "document.querySelector('img').naturalWidth > 0")
        await tab.page.wait_for_timeout(300)  # the last response bodies are counted
        loaded = {a: s for a, s in tab.bytes.items() if "/status" not in a}
        assert sum(loaded.values()) < WEIGHT_LIMIT, loaded
        assert tab.errors == []


# -- 3-D Secure by form post -----------------------------------------------------------------------


async def test_three_d_secure_by_form_post_from_the_checkout(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
    browser: Any,
) -> None:
    """CloudPayments: the checkout posts PaReq, MD and TermUrl to the issuer's ACS (the page's
    policy lets a form post there and nowhere else); the ACS returns the payer to TermUrl."""
    from playwright.async_api import expect

    rules = tuple(
        dataclasses.replace(rule, enabled=rule.name == "cloudpayments")
        if rule.method == "card"
        else rule
        for rule in settings.providers
    )
    async with serve(settings, temporal_env, sessions, api_keys, providers=rules) as only_cp:
        player_id = await new_player(only_cp.merchant)
        session_id, url = await checkout_url(only_cp, player_id, methods=["card"])
        async with player_tab(browser, PHONE, "ru-RU") as tab:
            page = tab.page
            await page.goto(url)
            await choose(tab, "ru", "card")
            await fill_card(page, "ru", THREE_DS_CARD)
            await page.locator("#card-form button[type=submit]").click()
            go = page.get_by_role("button", name=t("ru", "three_ds_open"))
            await expect(go).to_be_visible(timeout=30_000)
            response = await page.request.get(url)
            policy = response.headers["content-security-policy"]
            assert f"form-action 'self' {only_cp.settings.simulator_url}" in policy
            await page.screenshot(path=str(shot_name("card-3ds-form", "ru", PHONE)), full_page=True)
            async with tab.context.expect_page() as opened:
                await go.click()
            acs = await opened.value
            await acs.wait_for_load_state()
            await acs.get_by_role("button", name="Pass the challenge").click()
            await acs.wait_for_load_state()
            await back_at_casino(tab, session_id, "ru")
            assert tab.errors == []
    payment_id = (await session_row(sessions, session_id))["payment_id"]
    assert await until_status(sessions, payment_id, "succeeded") == "succeeded"


# -- expiry, languages, framing ------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "locale"), [("kk", "kk-KZ"), ("ru", "ru-RU"), ("en", "en-GB")])
async def test_an_expired_session_says_so_in_the_browsers_language(
    stack: Stack, browser: Any, sessions: async_sessionmaker[AsyncSession], lang: str, locale: str
) -> None:
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    session_id, url = await checkout_url(stack, player_id)
    await expire(sessions, session_id)
    async with player_tab(browser, PHONE, locale) as tab:
        response = await tab.page.goto(url)
        assert response is not None
        assert response.status == 410
        await expect(
            tab.page.get_by_role("heading", name=t(lang, "session_expired_title"))
        ).to_be_visible()
        await tab.page.screenshot(path=str(shot_name("expired", lang, PHONE)), full_page=True)
        await tab.page.get_by_role("link", name=t(lang, "back_to_site")).click()
        await tab.page.wait_for_url(f"{CASINO}/back?session={session_id}")


@contextlib.asynccontextmanager
async def casino_page(port: int, body: str) -> AsyncIterator[None]:
    """A casino's page on 127.0.0.1 (a real server: Chromium's local network checks refuse a
    faked public page framing a loopback one)."""
    page = body.encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(page)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + page)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def test_the_page_opens_only_in_frames_of_allowed_parents(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    _, url = await checkout_url(stack, player_id, locale="en")
    embed = f'<iframe src="{url}" title="pay" width="480" height="700"></iframe>'
    async with (
        casino_page(PARENT_PORT, embed),
        casino_page(STRANGER_PORT, embed),
        player_tab(browser, DESKTOP, "en-US") as tab,
    ):
        await tab.page.goto(f"{PARENT}/embed")
        framed = tab.page.frame_locator("iframe")
        await expect(framed.get_by_role("heading", name=t("en", "title_deposit"))).to_be_visible()
        await tab.page.screenshot(path=str(SHOTS / "embedded-en-desktop.png"))
        await tab.page.goto(f"{STRANGER}/embed")
        await tab.page.wait_for_timeout(500)
        blocked = tab.page.frame_locator("iframe").get_by_role("heading")
        assert await blocked.count() == 0
        assert any("frame-ancestors" in error for error in tab.errors), tab.errors


async def test_the_dashboard_shows_the_checkout_funnel(
    stack: Stack,
    browser: Any,
    api_keys: dict[Role, str],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Point 7 on the operators' page: the funnel, with a card paid on the checkout just now."""
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    session_id, url = await checkout_url(stack, player_id)
    form = {"content-type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient() as player:  # a browser without JavaScript
        page = (await player.get(url)).text
        chosen = {"csrf": csrf(page, "choose"), "amount": "200000", "method": "card"}
        await player.post(f"{url}/choose", data=chosen, headers=form)
        page = (await player.get(url)).text
        card = {
            "csrf": csrf(page, "pay"),
            "method": "card",
            "number": "4242424242424242",
            "expiry": "12/31",
            "cvc": "123",
            "holder": "",
        }
        await player.post(f"{url}/pay", data=card, headers=form)
    payment_id = (await session_row(sessions, session_id))["payment_id"]
    await until_status(sessions, payment_id, "succeeded")
    async with player_tab(browser, DESKTOP, "en-US") as tab:
        page = tab.page
        await page.goto(f"{stack.url}/dashboard")
        await page.fill("#api-key", api_keys[Role.OPERATOR])
        await page.click("#save-key")
        await expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=20_000)
        totals = page.locator("#funnel-totals")
        await expect(totals).to_contain_text("method chosen")
        await expect(totals).to_contain_text("succeeded")
        await expect(page.locator("#table-funnel")).to_contain_text("card")
        await expect(page.locator('#table-funnel tr[data-provider="halyk"]')).to_have_count(1)
        await page.locator("#table-funnel").screenshot(path=str(SHOTS / "dashboard-funnel.png"))
        assert tab.errors == []


async def test_a_cash_out_page_in_each_language_shows_the_hold_and_the_review(
    stack: Stack, browser: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Point 4: only the closed loop's destinations, then the hold, review state and payout time."""
    from playwright.async_api import expect

    player_id = await new_player(stack.merchant)
    deposit = await stack.merchant.post(
        "/v1/deposits",
        json=card_deposit(player_id, amount=30_000_00),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert deposit.status_code == 202, deposit.text
    await until_status(sessions, deposit.json()["id"], "succeeded")
    session_id, url = await checkout_url(
        stack, player_id, kind="withdrawal", amount_presets=None, locale="kk"
    )
    async with player_tab(browser, PHONE, "kk-KZ") as tab:
        page = tab.page
        await page.goto(url)
        for lang in ("kk", "ru", "en"):
            await page.goto(f"{url}?lang={lang}")
            await expect(
                page.get_by_role("heading", name=t(lang, "title_withdrawal"))
            ).to_be_visible()
            await expect(page.get_by_role("radio")).to_have_count(1)  # back to the card only
            await page.screenshot(path=str(shot_name("cashout", lang, PHONE)), full_page=True)
        await page.get_by_label(t("en", "amount"), exact=True).fill("12000")
        await page.get_by_role("button", name=t("en", "withdraw")).click()
        status = page.locator(".wd-status")
        await expect(status).to_have_attribute(
            "data-status", re.compile("in_review|approved|processing|pending|paid"), timeout=20_000
        )
        shown = await status.get_attribute("data-status")
        if shown != "paid":
            await expect(
                page.get_by_text(t("en", "wd_hold", amount="12,000\u00a0₸"))
            ).to_be_visible()
        await page.screenshot(path=str(shot_name("cashout-status", "en", PHONE)), full_page=True)
        assert tab.errors == []
    row = await session_row(sessions, session_id)
    assert row["payment_id"].startswith("wd_")
    withdrawal = (await stack.merchant.get(f"/v1/withdrawals/{row['payment_id']}")).json()
    assert (withdrawal["amount"], withdrawal["method"]) == (12_000_00, "card")
