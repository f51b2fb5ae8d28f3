"""Freedom Pay's e-wallet connector (`providers.connectors.freedom_pay_wallet`): request shapes
and signatures against hand-signed fixtures (tests/fixtures/freedom_pay_wallet/), the wallet
account and the page's lifetime, every status and error code, the result callback and our signed
XML answer; then over HTTP against the simulator process (`simulator.connectors.
freedom_pay_wallet`): the wallet's page and its callback, declines, expiry, cancel, refunds and
the behaviour knobs through Freedom Pay's API; and a deposit refunded through the API."""

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from xml.etree.ElementTree import fromstring

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.refunds import refunds_supported
from api.app import create_app
from config import Settings
from config.connectors import ConnectorConfig
from domain.roles import Role
from providers.connectors import freedom_pay, freedom_pay_wallet
from providers.connectors.freedom_pay_wallet import CLIENT, FreedomPayWalletClient
from providers.errors import ProviderOutcomeUnknown, ProviderRejected, ProviderThrottled
from providers.payments import CallbackNotUnderstood, PaymentOutcome
from providers.registry import (
    build_client,
    callback_dialect,
    connector_types,
    payment_dialect,
    provider_http_client,
)
from providers.signing import SignatureError
from tests import test_connector_freedom_pay as card_tests
from tests.conftest import _client, _result, new_player
from tests.test_connectors_end_to_end import only
from tests.test_gateway import _at_provider, _create, _deposit, _finish
from worker import build_worker

FIXTURES = Path(__file__).parent / "fixtures" / "freedom_pay_wallet"
REQUESTS: dict[str, Any] = json.loads((FIXTURES / "requests.json").read_text())
SECRET = REQUESTS["secret"]
WEBHOOK_SECRET = "fp-wallet-webhook-secret"
CALLBACK_URL = "http://api.test/v1/webhooks/freedom_wallet"
CONFIG = ConnectorConfig(type="freedom_pay_wallet", merchant_id="500000")
PHONE = "+77011234567"
NOW = datetime(2026, 11, 25, 14, 13, 50, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]

# The card connector's tests sign their fake answers by the documented formula, not with the
# adapter's code: the same helpers serve here, and so does their callback catcher.
_md5_sig = card_tests._md5_sig
_payment = card_tests._payment
_error = card_tests._error
_form = card_tests._form
_script = card_tests._script
catcher = card_tests.catcher


def _answer(
    fields: Mapping[str, str], script: str | None, secret: str = SECRET, status: int = 200
) -> httpx.Response:
    content = card_tests._xml(fields, script, secret)
    return httpx.Response(status, content=content, headers={"content-type": "text/xml"})


def _client_for(handler: Handler, secret: str = SECRET) -> FreedomPayWalletClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return FreedomPayWalletClient(
        http=http, base_url="http://sim", provider="freedom_wallet", secret=secret, config=CONFIG
    )


def _fake_freedom(seen: list[httpx.Request], *, status: str = "ok") -> Handler:
    """Answers every script the adapter calls, signed; records the requests. A cancel turns a
    pending payment `revoked`."""
    current = {"status": status}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        script = _script(request)
        if script == "init_payment.php":
            page = {"pg_payment_id": "123456789", "pg_redirect_url": "https://pay.test/wallet/1"}
            return _answer({"pg_status": "ok", **page}, script)
        if script == "cancel.php":
            current["status"] = "revoked"
            return _answer({"pg_status": "ok"}, script)
        if script == "revoke.php":
            return _answer({"pg_status": "ok"}, script)
        fields = _payment(pg_transaction_status=current["status"])
        if current["status"] == "pending":
            fields["pg_redirect_url"] = "https://pay.test/wallet/1"
        return _answer(fields, script)

    return answer


async def _create_at(
    client: FreedomPayWalletClient,
    *,
    reference: str = "dep_7",
    account: str = PHONE,
    amount: int = 500010,
    expires_in_seconds: int = 1800,
    callback_url: str = CALLBACK_URL,
) -> PaymentOutcome:
    return await client.create_payment(
        reference=reference,
        method="ewallet",
        amount=amount,
        currency="KZT",
        details={"account": account},
        callback_url=callback_url,
        expires_in_seconds=expires_in_seconds,
    )


# -- request shapes and signatures --------------------------------------------------------------


async def _send(name: str, seen: list[httpx.Request]) -> None:
    """The adapter's call whose request the fixture `name` shows."""
    client = _client_for(_fake_freedom(seen, status="pending" if name == "cancel" else "ok"))
    if name == "init_payment":
        await _create_at(client)
    elif name == "get_status":
        await client.get_payment("dep_7")
    elif name == "cancel":
        await client.cancel_payment("dep_7")
    elif name == "refund":
        await client.refund("dep_7", 150050, "KZT")


@pytest.mark.parametrize("name", sorted(REQUESTS["requests"]))
async def test_requests_are_the_hand_signed_fixtures(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = REQUESTS["requests"][name]
    monkeypatch.setattr(freedom_pay, "new_salt", lambda: REQUESTS["salt"])
    seen: list[httpx.Request] = []
    await _send(name, seen)
    sent = [r for r in seen if r.url.path == "/providers/freedom_wallet" + expected["path"]]
    assert len(sent) == 1, [r.url.path for r in seen]
    request = sent[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert _form(request) == expected["form"]
    assert SECRET not in request.content.decode()  # the secret signs, never travels
    assert all(SECRET not in value for value in request.headers.values())


async def test_the_payment_is_pending_on_the_wallets_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(freedom_pay_wallet, "utc_now", lambda: NOW)
    seen: list[httpx.Request] = []
    created = await _create_at(_client_for(_fake_freedom(seen)), amount=1)
    assert _form(seen[0])["pg_amount"] == "0.01"  # exact, "%.2f" tenge
    assert created == PaymentOutcome(
        reference="dep_7",
        payment_id="123456789",
        method="ewallet",
        status="pending",
        amount=1,
        currency="KZT",
        action={
            "type": "redirect",
            "url": "https://pay.test/wallet/1",
            "expires_at": (NOW + timedelta(seconds=1800)).isoformat(),
        },
    )


@pytest.mark.parametrize(
    ("account", "phone"),
    [
        ("+77011234567", "77011234567"),
        ("77011234567", "77011234567"),
        ("+7 (701) 123-45-67", "77011234567"),
        ("+996 555 123 456", "996555123456"),
        ("tw-7701", "tw-7701"),  # not a phone number: as it is, for Freedom Pay to judge
        ("7011234567", "7011234567"),  # no country code
        ("٧٧٠١١٢٣٤٥٦٧", "٧٧٠١١٢٣٤٥٦٧"),  # not ASCII digits
    ],
)
async def test_the_wallet_account_is_sent_as_the_wallets_phone(account: str, phone: str) -> None:
    seen: list[httpx.Request] = []
    await _create_at(_client_for(_fake_freedom(seen)), account=account)
    assert _form(seen[0])["pg_user_phone"] == phone


@pytest.mark.parametrize("account", ["", "   "])
async def test_a_payment_without_a_wallet_account_is_refused_before_sending(account: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ProviderRejected) as refused:
        await _create_at(_client_for(_fake_freedom(seen)), account=account)
    assert refused.value.code == "invalid_wallet_account"
    assert seen == []


async def test_only_ewallet_payments_are_taken() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ProviderRejected) as refused:
        await _client_for(_fake_freedom(seen)).create_payment(
            reference="dep_7",
            method="aggregator",
            amount=100,
            currency="KZT",
            details={"account": PHONE},
            callback_url=CALLBACK_URL,
            expires_in_seconds=1800,
        )
    assert refused.value.code == "unsupported_method"
    assert seen == []


@pytest.mark.parametrize(("ours", "sent"), [(60, "300"), (1800, "1800"), (10**7, "604800")])
async def test_the_pages_lifetime_is_ours_within_freedom_pays_bounds(ours: int, sent: str) -> None:
    seen: list[httpx.Request] = []
    await _create_at(_client_for(_fake_freedom(seen)), expires_in_seconds=ours)
    assert _form(seen[0])["pg_lifetime"] == sent


async def test_the_wallet_system_is_configurable() -> None:
    seen: list[httpx.Request] = []
    client = _client_for(_fake_freedom(seen))
    client.payment_system = "KASPIWALLET"
    await _create_at(client)
    assert _form(seen[0])["pg_payment_system"] == "KASPIWALLET"


# -- statuses and error codes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "decline"),
    [
        ("partial", "pending", None),
        ("pending", "pending", None),
        ("ok", "succeeded", None),
        ("failed", "declined", "insufficient_funds"),
        ("incomplete", "expired", "expired"),
        ("revoked", "cancelled", "revoked"),
        ("refunded", "cancelled", "refunded"),
    ],
)
async def test_every_status_is_read(raw: str, status: str, decline: str | None) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        fields = _payment(pg_transaction_status=raw)
        if raw == "failed":
            fields["pg_failure_code"] = "INSUFFICIENT_FUNDS"
        if raw in ("partial", "pending"):
            fields["pg_redirect_url"] = "https://pay.test/wallet/1"
        return _answer(fields, _script(request))

    found = await _client_for(answer).get_payment("dep_7")
    assert found is not None
    assert (found.status, found.decline_code, found.amount, found.method) == (
        status,
        decline,
        500010,
        "ewallet",
    )
    assert found.amount_received == (500010 if status == "succeeded" else None)
    pending = {"type": "redirect", "url": "https://pay.test/wallet/1", "expires_at": None}
    assert found.action == (pending if status == "pending" else {})


@pytest.mark.parametrize(
    ("fixture", "status", "decline", "action_url"),
    [
        ("status_pending.xml", "pending", None, "https://pay.test/wallet/1"),
        ("status_incomplete.xml", "expired", "expired", None),
    ],
)
async def test_the_hand_signed_status_answers_read(
    fixture: str, status: str, decline: str | None, action_url: str | None
) -> None:
    content = (FIXTURES / fixture).read_bytes()
    found = await _client_for(lambda _: httpx.Response(200, content=content)).get_payment("dep_7")
    assert found is not None
    assert (found.status, found.decline_code, found.payment_id) == (status, decline, "123456789")
    assert found.action.get("url") == action_url
    with pytest.raises(ProviderOutcomeUnknown) as unknown:  # not our secret: not signed by us
        await _client_for(lambda _: httpx.Response(200, content=content), "x").get_payment("dep_7")
    assert unknown.value.code == "invalid_signature"


@pytest.mark.parametrize(
    "fields",
    [
        _payment(pg_transaction_status="processing"),  # not one of Freedom Pay's
        _payment(pg_amount="5000.105"),  # more precision than tiyn
        _payment(pg_order_id="dep_8"),  # about another order
        {k: v for k, v in _payment().items() if k != "pg_currency"},
        {"pg_status": "maybe"},
    ],
)
async def test_an_answer_we_cannot_read_leaves_the_outcome_unknown(fields: dict[str, str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(fields, _script(request))

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _client_for(answer).get_payment("dep_7")
    assert unknown.value.code == "invalid_response"


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("100", "invalid_signature"),
        ("101", "unknown_merchant"),
        ("120", "not_allowed"),
        ("200", "bad_request"),
        ("340", "not_found"),
        ("490", "cannot_revoke"),
        ("9998", "unknown_merchant"),
    ],
)
async def test_documented_error_codes_are_refusals(code: str, ours: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(_error(code, "Описание ошибки"), _script(request))

    with pytest.raises(ProviderRejected) as refused:
        await _create_at(_client_for(answer))
    assert (refused.value.code, refused.value.detail) == (ours, "Описание ошибки")


@pytest.mark.parametrize(("code", "ours"), [("1000", "internal_error"), ("777", "freedom_777")])
async def test_undocumented_error_codes_leave_the_outcome_unknown(code: str, ours: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(_error(code), _script(request))

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _create_at(_client_for(answer))
    assert unknown.value.code == ours


async def test_the_hand_signed_refusal_of_a_phone() -> None:
    content = (FIXTURES / "error_bad_phone.xml").read_bytes()
    with pytest.raises(ProviderRejected) as refused:
        await _create_at(_client_for(lambda _: httpx.Response(200, content=content)))
    assert (refused.value.code, refused.value.detail) == ("bad_request", "Invalid pg_user_phone")


async def test_an_order_never_seen_is_none() -> None:
    not_found = card_tests.FIXTURES / "error_not_found.xml"  # signed with the card's secret
    content = not_found.read_bytes()
    client = _client_for(lambda _: httpx.Response(200, content=content), card_tests.SECRET)
    assert await client.get_payment("dep_7") is None
    assert await client.cancel_payment("dep_7") is None
    with pytest.raises(ProviderRejected) as refused:
        await client.refund("dep_7", 100, "KZT")
    assert refused.value.code == "not_found"

    def zero(request: httpx.Request) -> httpx.Response:
        return _answer(
            _payment(pg_payment_id="0", pg_transaction_status="partial"), "get_status.php"
        )

    assert await _client_for(zero).get_payment("dep_7") is None


async def test_http_failures_are_classified_like_every_provider() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        reference = _form(request)["pg_order_id"]
        if reference == "throttled":
            return httpx.Response(429, headers={"Retry-After": "2"}, content=b"")
        return _answer(_error("1000"), "init_payment.php", status=502)

    client = _client_for(answer)
    with pytest.raises(ProviderThrottled) as throttled:
        await _create_at(client, reference="throttled")
    assert throttled.value.retry_after == 2
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _create_at(client)
    assert unknown.value.code == "http_502"


# -- cancel --------------------------------------------------------------------------------------


async def test_cancel_closes_an_unpaid_payment_and_says_what_it_became() -> None:
    seen: list[httpx.Request] = []
    cancelled = await _client_for(_fake_freedom(seen, status="pending")).cancel_payment("dep_7")
    assert cancelled is not None
    assert (cancelled.status, cancelled.decline_code) == ("cancelled", "revoked")
    assert [_script(r) for r in seen] == ["get_status.php", "cancel.php", "get_status.php"]


@pytest.mark.parametrize("status", ["ok", "failed", "incomplete"])
async def test_cancel_returns_a_settled_payment_as_it_is(status: str) -> None:
    seen: list[httpx.Request] = []
    settled = await _client_for(_fake_freedom(seen, status=status)).cancel_payment("dep_7")
    assert settled is not None
    assert settled.status in ("succeeded", "declined", "expired")
    assert [_script(r) for r in seen] == ["get_status.php"]  # no cancel.php


# -- the result callback and our answer ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("callback_paid.form", ("dep_7", "succeeded", None, "123456789:1")),
        ("callback_declined.form", ("dep_8", "declined", "insufficient_funds", "123456790:0")),
    ],
)
def test_callbacks_verify_and_read(
    fixture: str, expected: tuple[str, str, str | None, str]
) -> None:
    body = (FIXTURES / fixture).read_bytes()
    CLIENT.verify_callback(WEBHOOK_SECRET, {}, body, now=0, tolerance_seconds=300)
    callback = CLIENT.parse_callback(body)
    got = (callback.reference, callback.status, callback.decline_code, callback.event_id)
    assert got == expected
    assert (callback.amount, callback.currency) == (500010, "KZT")
    assert (callback.card_pan, callback.card_owner) == (None, None)  # a wallet: no card


@pytest.mark.parametrize(
    ("body", "secret", "code"),
    [
        (b"", WEBHOOK_SECRET, "signature_missing"),
        (b"pg_order_id=dep_7&pg_result=1", WEBHOOK_SECRET, "signature_missing"),
        (None, SECRET, "invalid_signature"),  # the API secret, not the webhook's
        (None, "another-secret", "invalid_signature"),
        ("forged", WEBHOOK_SECRET, "invalid_signature"),  # amount changed
        ("unsalted", WEBHOOK_SECRET, "signature_missing"),
        ("card", WEBHOOK_SECRET, "invalid_signature"),  # signed for the card's result URL
        (b"\xff\xfe", WEBHOOK_SECRET, "invalid_signature"),
    ],
)
def test_forged_or_wrongly_signed_callbacks_are_refused(
    body: bytes | str | None, secret: str, code: str
) -> None:
    paid = (FIXTURES / "callback_paid.form").read_bytes()
    if body is None:
        body = paid
    elif body == "forged":
        body = paid.replace(b"pg_amount=5000.10", b"pg_amount=9000.10")
    elif body == "unsalted":
        body = paid.replace(b"pg_salt=Wa11etPa1dSa1t01&", b"")
    elif body == "card":
        fields = {"pg_order_id": "dep_7", "pg_result": "1", "pg_salt": "s1"}
        body = urlencode({**fields, "pg_sig": _md5_sig("freedom", fields, WEBHOOK_SECRET)}).encode()
    assert isinstance(body, bytes)
    with pytest.raises(SignatureError) as refused:
        CLIENT.verify_callback(secret, {}, body, now=0, tolerance_seconds=300)
    assert refused.value.code == code


def test_callbacks_we_cannot_read_are_not_understood() -> None:
    with pytest.raises(CallbackNotUnderstood):
        CLIENT.parse_callback(b"pg_order_id=dep_7&pg_payment_id=1&pg_amount=10&pg_result=1")


def test_our_answer_to_a_callback_is_xml_signed_for_our_result_url() -> None:
    content, media_type = CLIENT.callback_ack(WEBHOOK_SECRET)
    assert media_type == "application/xml"
    fields = {child.tag: child.text or "" for child in fromstring(content)}  # noqa: S314 - ours
    assert set(fields) == {"pg_status", "pg_salt", "pg_sig"}
    base = f"freedom_wallet;{fields['pg_salt']};ok;{WEBHOOK_SECRET}"
    assert fields["pg_sig"] == hashlib.md5(base.encode()).hexdigest()  # noqa: S324


def test_the_registry_and_the_configuration_know_the_connector() -> None:
    settings = Settings(environment="test")
    assert connector_types()["freedom_pay_wallet"] is CLIENT
    assert payment_dialect("freedom_wallet", settings) is CLIENT
    assert callback_dialect("freedom_wallet", settings) is CLIENT
    assert refunds_supported(CLIENT)
    assert settings.connector("freedom_wallet").type == "freedom_pay_wallet"
    rule = settings.provider_rule("freedom_wallet")
    assert rule is not None
    assert (rule.method, rule.max_amount_minor, rule.action_ttl_seconds, rule.enabled) == (
        "ewallet",
        1_000_000_00,
        1800,
        True,  # it serves the default routing
    )


# -- over HTTP, against the simulator process ---------------------------------------------------


@pytest.fixture
async def http(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
        await client.put(f"{simulator_url}/admin/providers/freedom_wallet/behaviour", json={})


@pytest.fixture
def wallet(settings: Settings, http: httpx.AsyncClient) -> FreedomPayWalletClient:
    return build_client(settings, http, "freedom_wallet", CLIENT)


def _reference() -> str:
    return f"dep_{uuid.uuid4().hex[:16]}"


async def test_the_wallets_page_then_the_signed_result_callback(
    wallet: FreedomPayWalletClient,
    http: httpx.AsyncClient,
    settings: Settings,
    simulator_url: str,
    catcher: card_tests._Catcher,
) -> None:
    reference = _reference()
    callback_url = f"http://127.0.0.1:{catcher.server_address[1]}/v1/webhooks/freedom_wallet"
    created = await _create_at(
        wallet, reference=reference, amount=250000, callback_url=callback_url
    )
    assert (created.status, created.amount, created.method) == ("pending", 250000, "ewallet")
    assert created.action["type"] == "redirect"
    assert urlsplit(created.action["url"]).path == f"/pay/freedom_wallet/{reference}"
    again = await _create_at(wallet, reference=reference, amount=250000, callback_url=callback_url)
    assert again.payment_id == created.payment_id  # idempotent on pg_order_id
    pending = await wallet.get_payment(reference)
    assert pending is not None
    assert (pending.status, pending.action["url"]) == ("pending", created.action["url"])

    paid = await http.post(f"{created.action['url']}/confirm")
    assert paid.status_code == 200, paid.text
    settled = await wallet.get_payment(reference)
    assert settled is not None
    assert (settled.status, settled.amount_received, settled.payment_id) == (
        "succeeded",
        250000,
        created.payment_id,
    )
    assert await wallet.cancel_payment(reference) == settled  # settled: as it is
    held = (
        await http.get(f"{simulator_url}/admin/charges", params={"reference": reference})
    ).json()
    assert [(h["provider"], h["money_moved"]) for h in held] == [("freedom_wallet", True)]

    assert await asyncio.to_thread(catcher.arrived.wait, 10)
    path, body = catcher.caught[0]
    assert path == "/v1/webhooks/freedom_wallet"
    CLIENT.verify_callback(
        settings.webhook_secret("freedom_wallet"), {}, body, now=0, tolerance_seconds=300
    )
    callback = CLIENT.parse_callback(body)
    assert (callback.reference, callback.status, callback.amount) == (
        reference,
        "succeeded",
        250000,
    )
    assert callback.provider_payment_id == settled.payment_id
    with pytest.raises(SignatureError):  # signed with the webhook secret, not the API one
        CLIENT.verify_callback(
            settings.provider_secret("freedom_wallet"), {}, body, now=0, tolerance_seconds=300
        )


async def test_declined_expired_and_cancelled_payments(
    wallet: FreedomPayWalletClient, http: httpx.AsyncClient, simulator_url: str
) -> None:
    declined = await _create_at(wallet, reference=_reference())
    await http.post(f"{declined.action['url']}/decline")
    found = await wallet.get_payment(declined.reference)
    assert found is not None
    assert (found.status, found.decline_code) == ("declined", "declined_by_payer")

    short = await _create_at(wallet, reference=_reference(), account="insufficient")
    await http.post(f"{short.action['url']}/confirm")  # the simulator's empty wallet
    found = await wallet.get_payment(short.reference)
    assert found is not None
    assert (found.status, found.decline_code) == ("declined", "insufficient_funds")

    expiring = await _create_at(wallet, reference=_reference())
    admin = f"{simulator_url}/admin/providers/freedom_wallet/payments/{expiring.reference}"
    await http.post(f"{admin}/expire")
    expired = await wallet.get_payment(expiring.reference)
    assert expired is not None
    assert (expired.status, expired.decline_code) == ("expired", "expired")

    abandoned = await _create_at(wallet, reference=_reference())
    cancelled = await wallet.cancel_payment(abandoned.reference)
    assert cancelled is not None
    assert (cancelled.status, cancelled.payment_id) == ("cancelled", abandoned.payment_id)
    assert await wallet.get_payment(abandoned.reference) == cancelled

    never = _reference()
    assert await wallet.get_payment(never) is None
    assert await wallet.cancel_payment(never) is None


async def test_partial_then_full_refund(
    wallet: FreedomPayWalletClient, http: httpx.AsyncClient
) -> None:
    created = await _create_at(wallet, reference=_reference(), amount=500010)
    with pytest.raises(ProviderRejected) as unpaid:
        await wallet.refund(created.reference, 100, "KZT")
    assert unpaid.value.code == "not_refundable"
    await http.post(f"{created.action['url']}/confirm")
    with pytest.raises(ProviderRejected) as currency:
        await wallet.refund(created.reference, 100, "USD")
    assert currency.value.code == "currency_mismatch"
    part = await wallet.refund(created.reference, 150050, "KZT")
    assert (part.refunded, part.amount, part.status) == (150050, 500010, "succeeded")
    with pytest.raises(ProviderRejected) as too_much:
        await wallet.refund(created.reference, 349961, "KZT")
    assert too_much.value.code == "cannot_revoke"
    rest = await wallet.refund(created.reference, 349960, "KZT")
    assert (rest.refunded, rest.status) == (500010, "cancelled")
    refunded = await wallet.get_payment(created.reference)
    assert refunded is not None
    assert (refunded.status, refunded.decline_code) == ("cancelled", "refunded")


async def test_a_wrong_secret_or_merchant_is_refused_before_processing(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    def client(secret: str, merchant: str | None) -> FreedomPayWalletClient:
        return FreedomPayWalletClient(
            http=http,
            base_url=settings.simulator_url,
            provider="freedom_wallet",
            secret=secret,
            config=ConnectorConfig(type="freedom_pay_wallet", merchant_id=merchant),
        )

    with pytest.raises(ProviderRejected) as refused:
        await _create_at(client("not-the-secret", None), reference=_reference())
    assert refused.value.code == "invalid_signature"
    with pytest.raises(ProviderRejected) as unknown:
        await client(settings.provider_secret("freedom_wallet"), "999999").get_payment("dep_x")
    assert unknown.value.code == "unknown_merchant"


async def test_the_behaviour_knobs_through_freedom_pays_api(
    wallet: FreedomPayWalletClient, http: httpx.AsyncClient, simulator_url: str
) -> None:
    knobs = {"throttle_next": 1, "throttle_retry_after_seconds": 3}
    await http.put(f"{simulator_url}/admin/providers/freedom_wallet/behaviour", json=knobs)
    with pytest.raises(ProviderThrottled) as throttled:
        await wallet.get_payment(_reference())
    assert throttled.value.retry_after == 3

    knobs = {"error_after_processing_next": 1, "error_after_processing_status": 502}
    await http.put(f"{simulator_url}/admin/providers/freedom_wallet/behaviour", json=knobs)
    reference = _reference()
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _create_at(wallet, reference=reference, amount=700000)
    assert unknown.value.code == "http_502"
    found = await wallet.get_payment(reference)  # opened all the same: settled by inquiry
    assert found is not None
    assert (found.status, found.amount) == ("pending", 700000)


async def test_the_card_and_wallet_twins_share_the_script_paths(
    wallet: FreedomPayWalletClient, settings: Settings, http: httpx.AsyncClient
) -> None:
    """Each answers only for its own providers; a provider of neither is not found."""
    card = build_client(settings, http, "freedom", freedom_pay.CLIENT)
    assert await card.get_charge(_reference()) is None
    assert await wallet.get_payment(_reference()) is None
    elsewhere = await http.post(f"{settings.simulator_url}/providers/halyk/get_status.php")
    assert elsewhere.status_code == 404


# -- through the API: a deposit, its callback and its refund --------------------------------------


@pytest.fixture
async def freedom_wallet_api(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api_keys: dict[Role, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Settings]]:
    """Merchant and operator clients of an API (and its worker) taking e-wallet payments
    through Freedom Pay only."""
    configured = only(settings, "freedom_wallet", f"wallet-{uuid.uuid4().hex[:8]}")
    app: FastAPI = create_app(configured)
    async with (
        provider_http_client(configured) as http,
        build_worker(temporal_env.client, configured, sessions=sessions, http=http),
        app.router.lifespan_context(app),
    ):
        app.state.payments._temporal = temporal_env.client
        async with (
            _client(app, api_keys[Role.MERCHANT]) as merchant,
            _client(app, api_keys[Role.OPERATOR]) as operator,
        ):
            yield merchant, operator, configured


def _signed_callback(reference: str, payment_id: str, secret: str) -> bytes:
    """A paid result callback signed by the documented formula (not the adapter's code)."""
    fields = {
        "pg_order_id": reference,
        "pg_payment_id": payment_id,
        "pg_amount": "2500.00",
        "pg_currency": "KZT",
        "pg_result": "1",
        "pg_salt": "CbS4lt",
    }
    return urlencode({**fields, "pg_sig": _md5_sig("freedom_wallet", fields, secret)}).encode()


async def test_a_deposit_its_callback_and_its_refund_through_the_api(
    freedom_wallet_api: tuple[httpx.AsyncClient, httpx.AsyncClient, Settings],
    temporal_env: WorkflowEnvironment,
    simulator: httpx.AsyncClient,
    http: httpx.AsyncClient,
) -> None:
    merchant, operator, configured = freedom_wallet_api
    player = await new_player(merchant)
    deposit = await _create(merchant, _deposit(player, "ewallet", wallet_account=PHONE))
    await _at_provider(simulator, "freedom_wallet", deposit["id"])
    paid = await simulator.post(f"/pay/freedom_wallet/{deposit['id']}/confirm")
    assert paid.status_code == 200, paid.text
    done = await _finish(merchant, temporal_env.client, deposit, skip_time=True)
    assert (done["status"], done["provider"], done["amount"]) == (
        "succeeded",
        "freedom_wallet",
        250_000,
    )

    # Freedom Pay's callback, forged or signed, and our answer: signed XML.
    secret = configured.webhook_secret("freedom_wallet")
    wallet = build_client(configured, http, "freedom_wallet", CLIENT)
    found = await wallet.get_payment(deposit["id"])
    assert found is not None
    body = _signed_callback(deposit["id"], found.payment_id, secret)
    url = "/v1/webhooks/freedom_wallet"
    form = {"content-type": "application/x-www-form-urlencoded"}
    forged = await merchant.post(url, content=body.replace(b"2500.00", b"9500.00"), headers=form)
    assert forged.status_code == 401
    api_secret = _signed_callback(deposit["id"], found.payment_id, SECRET)
    assert (await merchant.post(url, content=api_secret, headers=form)).status_code == 401
    taken = await merchant.post(url, content=body, headers=form)
    assert taken.status_code == 200, taken.text
    assert taken.headers["content-type"].startswith("application/xml")
    ack = {child.tag: child.text or "" for child in fromstring(taken.content)}  # noqa: S314
    assert ack["pg_status"] == "ok"
    signed = {k: v for k, v in ack.items() if k != "pg_sig"}
    assert ack["pg_sig"] == _md5_sig("freedom_wallet", signed, secret)

    refunds = f"/v1/deposits/{deposit['id']}/refunds"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    asked = await operator.post(refunds, json={"amount": 250_000, "reason": "asked"}, headers=key)
    assert asked.status_code == 202, asked.text
    await _result(temporal_env.client.get_workflow_handle(asked.json()["workflow_id"]))
    listed = (await operator.get(refunds)).json()["data"]
    assert [(r["amount"], r["status"]) for r in listed] == [(250_000, "succeeded")]
    refunded = await wallet.get_payment(deposit["id"])
    assert refunded is not None
    assert (refunded.status, refunded.decline_code) == ("cancelled", "refunded")
