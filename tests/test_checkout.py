"""The hosted checkout over HTTP: the casino's session API, the player's pages and forms (as a
browser without JavaScript posts them), deposits made through `POST /v1/deposits`'s own code,
refusals in the player's language, the security headers, CSRF, rate limits, expiry, the
closed-loop cash-out and the funnel. The browser itself: tests/test_checkout_browser.py."""

import io
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from checkout.i18n import t
from checkout.money import format_amount
from config import Settings
from config.logging import JsonFormatter, RedactingFilter
from db import gateway as gateway_store
from domain.roles import Role
from domain.routing import CircuitPolicy
from tests.checkout_helpers import (
    csrf,
    expire,
    open_session,
    path_of,
    player_client,
    session_body,
    session_row,
    until_status,
)
from tests.conftest import VISA_DECLINED, VISA_OK, _client, card_deposit, new_player
from tests.conftest import deposit_and_wait as paid_deposit

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def player(api: httpx.AsyncClient) -> str:
    return await new_player(api)


@pytest.fixture
async def anonymous_api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The player's browser (no key), from an address of its own."""
    async with player_client(app) as client:
        yield client


async def _page(client: httpx.AsyncClient, path: str, lang: str = "en") -> httpx.Response:
    return await client.get(path, headers={"Accept-Language": lang})


async def _post(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    response = await client.post(path, data=data, headers=FORM)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == path.rsplit("/", 1)[0]
    return response


async def _choose(
    client: httpx.AsyncClient, path: str, method: str, amount: str = "500000", **extra: str
) -> str:
    page = (await _page(client, path)).text
    await _post(
        client,
        f"{path}/choose",
        {"csrf": csrf(page, "choose"), "amount": amount, "method": method, **extra},
    )
    return (await _page(client, path)).text


async def _pay_card(client: httpx.AsyncClient, path: str, number: str) -> str:
    page = await _choose(client, path, "card")
    assert 'id="card-form"' in page
    await _post(
        client,
        f"{path}/pay",
        {
            "csrf": csrf(page, "pay"),
            "method": "card",
            "number": " ".join(number[i : i + 4] for i in range(0, len(number), 4)),
            "expiry": "12/31",
            "cvc": "123",
            "holder": "AIGERIM TULEGENOVA",
        },
    )
    return (await _page(client, path)).text


def _text(page: str) -> str:
    """The page's visible words (tags dropped), to look for messages in."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# -- the casino's API ------------------------------------------------------------------------------


async def test_a_session_is_created_once_per_key_and_names_its_page(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    body = session_body(player, locale="kk")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await api.post("/v1/checkout/sessions", json=body, headers=key)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["id"].startswith("cs_")
    assert created["status"] == "open"
    assert created["url"].startswith(f"{settings.api_url}/checkout/ckt_")
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)
    assert (created["min_amount"], created["max_amount"]) == (100_00, 5_000_000_00)
    assert created["amount_presets"] == [2_000_00, 5_000_00, 10_000_00]

    again = await api.post("/v1/checkout/sessions", json=body, headers=key)
    assert (again.status_code, again.json()["url"]) == (201, created["url"])
    other = await api.post("/v1/checkout/sessions", json={**body, "amount": 100_00}, headers=key)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")

    token = path_of(created).rsplit("/", 1)[1]
    async with sessions() as db:  # only the token's digest is kept
        stored = await db.scalar(
            text("SELECT count(*) FROM checkout_sessions s WHERE CAST(s AS text) LIKE :like"),
            {"like": f"%{token}%"},
        )
    assert stored == 0

    shown = await operator_api.get(f"/v1/checkout/sessions/{created['id']}")
    assert shown.status_code == 200
    assert shown.json()["url"] == created["url"]
    assert (await anonymous_api.post("/v1/checkout/sessions", json=body)).status_code == 401
    forbidden = await operator_api.post("/v1/checkout/sessions", json=body, headers=key)
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"return_url": "javascript:alert(1)"}, "validation_error"),
        ({"return_url": "http://casino.example/back"}, "validation_error"),
        ({"methods": ["card", "cash"]}, "validation_error"),
        ({"kind": "withdrawal", "methods": ["qr"]}, "validation_error"),
        ({"currency": "USD"}, "unsupported_currency"),
        ({"amount_presets": [50]}, "invalid_amount_range"),
        ({"min_amount": 500_00, "max_amount": 100_00}, "invalid_amount_range"),
        ({"kind": "withdrawal", "amount": 10_00}, "invalid_amount_range"),
        ({"amount": 1.5}, "validation_error"),
        ({"locale": "de"}, "validation_error"),
    ],
)
async def test_a_session_request_is_checked(
    api: httpx.AsyncClient, player: str, change: dict[str, Any], code: str
) -> None:
    response = await api.post(
        "/v1/checkout/sessions",
        json=session_body(player, **change),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert (response.status_code, response.json()["code"]) == (422, code), response.text


async def test_an_unknown_player_gets_no_session(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/checkout/sessions",
        json=session_body("pl_nobody"),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert (response.status_code, response.json()["code"]) == (404, "player_not_found")


# -- the page ------------------------------------------------------------------------------------


async def test_the_page_is_strict_and_speaks_the_players_language(
    api: httpx.AsyncClient, anonymous_api: httpx.AsyncClient, player: str
) -> None:
    created = await open_session(api, player)
    path = path_of(created)
    page = await _page(anonymous_api, path, "kk-KZ,ru;q=0.8")
    assert page.status_code == 200
    headers = page.headers
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert '<html lang="kk">' in page.text
    assert t("kk", "choose_method") in page.text
    assert '<script src="/checkout/assets/checkout.js' in page.text
    assert "<script>" not in page.text
    assert "style=" not in page.text
    for lang, accept in (("ru", "ru-RU"), ("en", "en-GB,en;q=0.9")):
        shown = await _page(anonymous_api, path, accept)
        assert t(lang, "choose_method") in shown.text
    picked = await anonymous_api.get(f"{path}?lang=en", headers={"Accept-Language": "ru"})
    assert t("en", "choose_method") in picked.text
    kept = await _page(anonymous_api, path, "ru")  # the pick stays with the session
    assert t("en", "choose_method") in kept.text

    for name, kind in (("checkout.js", "javascript"), ("checkout.css", "css")):
        asset = await anonymous_api.get(f"/checkout/assets/{name}")
        assert asset.status_code == 200
        assert kind in asset.headers["content-type"]
    assert (await anonymous_api.get("/checkout/assets/secrets.py")).status_code == 404
    unknown = await _page(anonymous_api, "/checkout/ckt_" + "A" * 43)
    assert unknown.status_code == 404
    assert t("en", "not_found_title") in unknown.text
    assert (await _page(anonymous_api, "/checkout/not-a-token")).status_code == 404


async def test_the_casinos_session_language_wins_over_the_browser(
    api: httpx.AsyncClient, anonymous_api: httpx.AsyncClient, player: str
) -> None:
    created = await open_session(api, player, locale="ru", methods=["qr", "card"])
    page = await _page(anonymous_api, path_of(created), "en")
    assert t("ru", "choose_method") in page.text
    assert 'value="qr"' in page.text
    assert 'value="card"' in page.text
    assert 'value="mobile_banking"' not in page.text  # the casino offers two methods only


async def test_a_method_whose_providers_circuits_are_open_is_not_offered(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player)
    before = await _page(anonymous_api, path_of(created))
    assert 'value="qr"' in before.text
    now = datetime.now(UTC)
    policy = CircuitPolicy(failure_threshold=1, cooldown=timedelta(hours=1))
    try:
        async with sessions.begin() as db:
            await gateway_store.record_provider_result(
                db, provider="kaspi_qr", failed=True, now=now, policy=policy
            )
        after = await _page(anonymous_api, path_of(created))
        assert 'value="qr"' not in after.text
        assert 'value="card"' in after.text
    finally:
        async with sessions.begin() as db:
            await gateway_store.reset_circuits(db)


async def test_a_card_paid_on_the_page_goes_through_the_deposit_api_and_back_to_the_casino(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player)
    path = path_of(created)
    token = path.rsplit("/", 1)[1]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        await _pay_card(anonymous_api, path, VISA_OK)
        row = await session_row(sessions, created["id"])
        deposit_id = row["payment_id"]
        assert deposit_id.startswith("dep_")
        await until_status(sessions, deposit_id, "succeeded")
        done = await _page(anonymous_api, path)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert t("en", "succeeded_title") in done.text
    return_url = f"https://casino.example/back?session={created['id']}"
    assert f'data-redirect="{return_url}"' in done.text.replace("&amp;", "&")

    deposit = (await api.get(f"/v1/deposits/{deposit_id}")).json()
    assert (deposit["player_id"], deposit["amount"], deposit["method"]) == (player, 500_000, "card")
    assert deposit["card"]["last4"] == "4242"
    assert deposit["status"] == "succeeded"
    shown = (await api.get(f"/v1/checkout/sessions/{created['id']}")).json()
    assert shown["status"] == "completed"
    assert shown["payment_ids"] == [deposit_id]

    # The card went nowhere but the deposit's own code: not in the session, its events, the
    # idempotency record, or any log line; and the token is in no log line either.
    async with sessions() as db:
        for table in ("checkout_sessions", "checkout_events", "idempotency_keys", "deposits"):
            found = await db.scalar(
                text(f"SELECT count(*) FROM {table} t WHERE CAST(t AS text) LIKE :pan"),  # noqa: S608
                {"pan": "%4242424242424242%"},
            )
            assert found == 0, table
    logged = stream.getvalue()
    assert "4242424242424242" not in logged
    assert "4242 4242 4242 4242" not in logged
    assert token not in logged

    # Single use: the paid session takes no other payment.
    page = done.text
    assert 'action="' + path + '/choose"' not in page
    again = await anonymous_api.post(
        f"{path}/choose", data={"csrf": "x.y", "method": "qr", "amount": "500000"}, headers=FORM
    )
    assert again.status_code == 303
    assert (await session_row(sessions, created["id"]))["payment_ids"] == [deposit_id]


async def test_a_declined_card_is_explained_and_another_method_is_offered(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player, locale="ru")
    path = path_of(created)
    await _pay_card(anonymous_api, path, VISA_DECLINED)
    first = (await session_row(sessions, created["id"]))["payment_id"]
    await until_status(sessions, first, "failed")
    page = (await _page(anonymous_api, path)).text
    assert t("ru", "err_insufficient_funds") in page
    assert "insufficient_funds" not in _text(page)  # never a raw code
    assert 'role="alert"' in page

    qr = await _choose(anonymous_api, path, "qr")
    second = (await session_row(sessions, created["id"]))["payment_id"]
    assert second != first
    await until_status(sessions, second, "requires_action")
    qr = (await _page(anonymous_api, path)).text
    assert t("ru", "qr_title") in qr
    assert f'src="{path}/qr.png"' in qr
    assert "data-expires=" in qr
    png = await anonymous_api.get(f"{path}/qr.png")
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")
    status = (await anonymous_api.get(f"{path}/status")).json()
    assert status == {"view": f"{second}:requires_action:qr", "status": "requires_action"}
    row = await session_row(sessions, created["id"])
    assert row["payment_ids"] == [first, second]


async def test_a_card_refused_before_any_provider_keeps_the_player_on_the_form(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player)
    path = path_of(created)
    page = await _choose(anonymous_api, path, "card")
    await _post(
        anonymous_api,
        f"{path}/pay",
        {
            "csrf": csrf(page, "pay"),
            "method": "card",
            "number": "4242424242424241",
            "expiry": "12/31",
            "cvc": "123",
            "holder": "",
        },
    )
    shown = (await _page(anonymous_api, path)).text
    assert t("en", "err_card_number") in shown
    assert 'id="card-form"' in shown  # the form again, empty: the card was not kept
    assert "424242424242424" not in shown
    page = shown
    await _post(
        anonymous_api,
        f"{path}/pay",
        {
            "csrf": csrf(page, "pay"),
            "method": "card",
            "number": VISA_OK,
            "expiry": "01/20",
            "cvc": "123",
            "holder": "",
        },
    )
    assert t("en", "err_card_expired") in (await _page(anonymous_api, path)).text
    page = (await _page(anonymous_api, path)).text
    await _post(
        anonymous_api,
        f"{path}/pay",
        {
            "csrf": csrf(page, "pay"),
            "method": "card",
            "number": "3530111333300000",
            "expiry": "12/31",
            "cvc": "123",
            "holder": "",
        },
    )
    assert t("en", "check_scheme") in (await _page(anonymous_api, path)).text
    assert (await session_row(sessions, created["id"]))["payment_ids"] == []


async def test_forms_without_this_pages_csrf_token_change_nothing(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player)
    path = path_of(created)
    page = (await _page(anonymous_api, path)).text
    other = await open_session(api, player)
    foreign = csrf((await _page(anonymous_api, path_of(other))).text, "choose")
    for token in ("", "forged.token", foreign):
        await _post(
            anonymous_api, f"{path}/choose", {"csrf": token, "method": "qr", "amount": "500000"}
        )
    cross_site = await anonymous_api.post(
        f"{path}/choose",
        data={"csrf": csrf(page, "choose"), "method": "qr", "amount": "500000"},
        headers={**FORM, "Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 303
    as_json = await anonymous_api.post(
        f"{path}/choose", json={"csrf": csrf(page, "choose"), "method": "qr", "amount": "500000"}
    )
    assert as_json.status_code == 303
    row = await session_row(sessions, created["id"])
    assert row["payment_ids"] == []
    assert row["chosen_method"] is None
    assert t("en", "form_expired") in (await _page(anonymous_api, path)).text


async def test_the_amount_is_bound_to_the_sessions_range(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player, min_amount=1_000_00, max_amount=50_000_00)
    path = path_of(created)
    for amount, other in (("other", "99999"), ("other", "abc"), ("99", ""), ("other", "999,99")):
        page = await _choose(anonymous_api, path, "card", amount=amount, amount_other=other)
        assert (
            t(
                "en",
                "err_amount",
                min=format_amount(1_000_00, "KZT", "en"),
                max=format_amount(50_000_00, "KZT", "en"),
            )
            in page
        )
    page = await _choose(anonymous_api, path, "card", amount="other", amount_other="12 345,50")
    assert 'id="card-form"' in page
    assert format_amount(1_234_550, "KZT", "en") in page
    row = await session_row(sessions, created["id"])
    assert (row["chosen_method"], row["chosen_amount_minor"]) == ("card", 1_234_550)

    fixed = await open_session(api, player, amount=7_000_00)
    page = (await _page(anonymous_api, path_of(fixed))).text
    assert t("en", "amount_fixed", amount=format_amount(7_000_00, "KZT", "en")) in page
    await _choose(anonymous_api, path_of(fixed), "card", amount="1")  # the fixed amount wins
    assert (await session_row(sessions, fixed["id"]))["chosen_amount_minor"] == 7_000_00


async def test_an_expired_session_takes_no_payment(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await open_session(api, player)
    path = path_of(created)
    page = (await _page(anonymous_api, path)).text
    await expire(sessions, created["id"])
    for lang in ("kk", "ru", "en"):
        shown = await _page(anonymous_api, path, lang)
        assert shown.status_code == 410
        assert t(lang, "session_expired_title") in shown.text
        assert t(lang, "back_to_site") in shown.text
    await _post(
        anonymous_api,
        f"{path}/choose",
        {"csrf": csrf(page, "choose"), "method": "qr", "amount": "500000"},
    )
    assert (await session_row(sessions, created["id"]))["payment_ids"] == []
    assert (await api.get(f"/v1/checkout/sessions/{created['id']}")).json()["status"] == "expired"


async def test_a_self_excluded_player_is_answered_with_care_and_a_link_to_help(
    api: httpx.AsyncClient, anonymous_api: httpx.AsyncClient, player: str
) -> None:
    until = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    excluded = await api.post(f"/v1/players/{player}/self-exclusion", json={"until": until})
    assert excluded.status_code == 200, excluded.text
    created = await open_session(api, player, help_url="https://operator.example/help", locale="kk")
    page = await _pay_card(anonymous_api, path_of(created), VISA_OK)
    assert t("kk", "err_self_excluded") in page
    assert 'href="https://operator.example/help"' in page
    assert t("kk", "help_link") in page
    assert "self_excluded" not in _text(page)


async def test_methods_the_player_paid_with_come_first(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    temporal_client: Client,
) -> None:
    body = {
        "player_id": player,
        "amount": 300_000,
        "currency": "KZT",
        "method": "ewallet",
        "details": {"wallet_account": "tw-1"},
    }
    response = await api.post(
        "/v1/deposits", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 202
    await paid_deposit(api, temporal_client, card_deposit(player))
    created = await open_session(api, player)
    page = (await _page(anonymous_api, path_of(created))).text
    order = re.findall(r'name="method" value="([a-z_]+)"', page)
    assert order[0] == "card"  # paid by card; the wallet deposit never succeeded
    assert page.count(t("en", "used_before")) == 1


# -- rate limits -----------------------------------------------------------------------------------


@pytest.fixture
async def limited_app(settings: Settings, temporal_client: Client) -> AsyncIterator[FastAPI]:
    limited = settings.model_copy(
        update={
            "checkout_rate_limit_per_session": "4/minute",
            "checkout_rate_limit_per_ip": "7/minute",
        }
    )
    application = create_app(limited)
    async with application.router.lifespan_context(application):
        application.state.payments._temporal = temporal_client
        yield application


async def test_each_session_and_each_ip_is_rate_limited(
    limited_app: FastAPI, api_keys: dict[Role, str], player: str
) -> None:
    async with _client(limited_app, api_keys[Role.MERCHANT]) as merchant:
        one, two = await open_session(merchant, player), await open_session(merchant, player)
    async with _client(limited_app, None) as browser:
        answers = [await browser.get(path_of(one)) for _ in range(5)]
        assert [a.status_code for a in answers[:4]] == [200] * 4
        assert answers[4].status_code == 429
        assert int(answers[4].headers["retry-after"]) >= 1
        assert t("ru", "too_many_title") in answers[4].text
        status = await browser.get(f"{path_of(one)}/status")
        assert status.status_code == 429
        assert status.json()["code"] == "rate_limited"
        assert (await browser.get(path_of(two))).status_code == 200  # another session
        assert (await browser.get(path_of(two))).status_code == 429  # the IP's 7 are used


# -- cash-out ------------------------------------------------------------------------------------


async def test_a_cash_out_offers_the_closed_loop_and_shows_the_hold_and_review(
    api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    player: str,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    paid = await paid_deposit(api, temporal_client, card_deposit(player, amount=40_000_00))
    assert paid["status"] == "succeeded"
    created = await open_session(api, player, kind="withdrawal", amount_presets=None, locale="ru")
    path = path_of(created)
    page = (await _page(anonymous_api, path)).text
    assert t("ru", "available", amount=format_amount(40_000_00, "KZT", "ru")) in page
    assert t("ru", "closed_loop", amount=format_amount(40_000_00, "KZT", "ru")) in page
    destinations = re.findall(r'name="destination" value="([^"]+)"', page)
    assert destinations == [f"card:{paid['id']}"]  # back to the card first; no IBAN yet
    assert "•••• 4242" in page

    await _post(
        anonymous_api,
        f"{path}/withdraw",
        {
            "csrf": csrf(page, "withdraw"),
            "destination": destinations[0],
            "amount": "50000",
        },
    )
    assert (
        t(
            "ru",
            "err_amount",
            min=format_amount(1_000_00, "KZT", "ru"),
            max=format_amount(40_000_00, "KZT", "ru"),
        )
        in (await _page(anonymous_api, path)).text
    )
    page = (await _page(anonymous_api, path)).text
    await _post(
        anonymous_api,
        f"{path}/withdraw",
        {
            "csrf": csrf(page, "withdraw"),
            "destination": destinations[0],
            "amount": "25000",
        },
    )
    withdrawal_id = (await session_row(sessions, created["id"]))["payment_id"]
    assert withdrawal_id.startswith("wd_")
    status = await until_status(
        sessions,
        withdrawal_id,
        "in_review",
        "approved",
        "processing",
        "paid",
        "rejected",
        "failed",
        table="withdrawals",
    )
    shown = (await _page(anonymous_api, path)).text
    assert t("ru", f"wd_{status}") in shown
    if status in ("in_review", "approved", "processing"):
        assert t("ru", "wd_hold", amount=format_amount(25_000_00, "KZT", "ru")) in shown
        assert "Ожидаемое время выплаты" in shown
    elif status != "paid":  # the rules refused it (another team's checks): the hold is back
        assert t("ru", "wd_released") in shown
    withdrawal = (await api.get(f"/v1/withdrawals/{withdrawal_id}")).json()
    assert (withdrawal["amount"], withdrawal["method"]) == (25_000_00, "card")
    session = (await api.get(f"/v1/checkout/sessions/{created['id']}")).json()
    assert session["status"] == "completed"


# -- the funnel ------------------------------------------------------------------------------------


async def test_the_funnel_counts_each_step_per_method_and_provider(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    anonymous_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    start = datetime.now(UTC)  # sessions are stamped with the API's clock: this one
    opened_only = await open_session(api, player)
    await _page(anonymous_api, path_of(opened_only))
    await open_session(api, player)  # never opened
    chosen_only = await open_session(api, player)
    await _choose(anonymous_api, path_of(chosen_only), "card")
    paid = await open_session(api, player)
    await _pay_card(anonymous_api, path_of(paid), VISA_DECLINED)
    first = (await session_row(sessions, paid["id"]))["payment_id"]
    await until_status(sessions, first, "failed")
    await _pay_card(anonymous_api, path_of(paid), VISA_OK)
    second = (await session_row(sessions, paid["id"]))["payment_id"]
    await until_status(sessions, second, "succeeded")
    end = datetime.now(UTC) + timedelta(seconds=1)

    response = await operator_api.get(
        "/v1/analytics/checkout-funnel",
        params={"from": start.isoformat(), "to": end.isoformat()},
    )
    assert response.status_code == 200, response.text
    funnel = response.json()
    assert funnel["totals"] == {
        "created": 4,
        "opened": 3,
        "method_chosen": 2,
        "submitted": 1,
        "succeeded": 1,
        "conversion": round(1 / 3, 4),
    }
    assert funnel["by_method"] == [
        {
            "method": "card",
            "chosen": 2,
            "submitted": 1,
            "succeeded": 1,
            "attempts": 2,
            "volume_minor": 500_000,
            "conversion": 0.5,
        }
    ]
    assert funnel["by_provider"] == [
        {
            "method": "card",
            "provider": "halyk",
            "attempts": 2,
            "succeeded": 1,
            "unsuccessful": 1,
            "approval_rate": 0.5,
        }
    ]
    assert (await api.get("/v1/analytics/checkout-funnel")).status_code == 403
    for edge in (
        {"from": "0001-01-01T00:00:00+14:00"},
        {"to": "9999-12-31T23:59:59-14:00"},
        {"to": "0001-01-02T00:00:00Z"},
        {"from": end.isoformat(), "to": start.isoformat()},
    ):
        refused = await operator_api.get("/v1/analytics/checkout-funnel", params=edge)
        assert (refused.status_code, refused.json()["code"]) == (422, "invalid_range"), edge
