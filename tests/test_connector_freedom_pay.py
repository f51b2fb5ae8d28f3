"""Freedom Pay's connector (`providers.connectors.freedom_pay`): request shapes and signatures
against hand-signed fixtures (tests/fixtures/freedom_pay/), every status and error code, the
result callback and our signed XML answer, unreadable and hostile XML; then over HTTP against the
simulator process (`simulator.connectors.freedom_pay`): cards, 3-D Secure with its callback,
cancel, refunds, payouts to a saved card and the behaviour knobs through Freedom Pay's API."""

import asyncio
import hashlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree.ElementTree import fromstring

import httpx
import pytest

from config import Settings
from config.connectors import ConnectorConfig
from providers.card import CardData, ChargeOutcome
from providers.connectors import freedom_pay
from providers.connectors.freedom_pay import (
    CLIENT,
    PAYOUT_CLIENT,
    FreedomPayClient,
    FreedomPayPayoutClient,
)
from providers.errors import (
    CardRejected,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
)
from providers.payments import CallbackNotUnderstood
from providers.registry import build_client, card_dialect, connector_types
from providers.signing import SignatureError

FIXTURES = Path(__file__).parent / "fixtures" / "freedom_pay"
REQUESTS: dict[str, Any] = json.loads((FIXTURES / "requests.json").read_text())
SECRET = REQUESTS["secret"]
PAYOUT_SECRET = REQUESTS["payout_secret"]
WEBHOOK_SECRET = "fp-webhook-secret"
CALLBACK_URL = "http://api.test/v1/webhooks/freedom"
CONFIG = ConnectorConfig(type="freedom_pay", merchant_id="500000")

Handler = Callable[[httpx.Request], httpx.Response]


# -- a fake Freedom Pay, signing its answers by the documented formula (not the adapter's) -------


def _md5_sig(script: str, fields: Mapping[str, str], secret: str) -> str:
    values = [fields[name] for name in sorted(fields)]
    return hashlib.md5(";".join([script, *values, secret]).encode()).hexdigest()  # noqa: S324


def _xml(fields: Mapping[str, str], script: str | None = None, secret: str = SECRET) -> bytes:
    """A `<response>` with `fields`; signed for `script` (with a salt) unless it is None."""
    signed = dict(fields)
    if script is not None:
        signed["pg_salt"] = "Xy12Zw34"
        signed["pg_sig"] = _md5_sig(script, signed, secret)
    inner = "".join(f"<{name}>{value}</{name}>" for name, value in signed.items())
    return f'<?xml version="1.0" encoding="utf-8"?><response>{inner}</response>'.encode()


def _answer(fields: Mapping[str, str], script: str | None, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=_xml(fields, script), headers={"content-type": "text/xml"}
    )


def _payment(**overrides: str) -> dict[str, str]:
    return {
        "pg_status": "ok",
        "pg_payment_id": "123456789",
        "pg_order_id": "dep_7",
        "pg_amount": "5000.10",
        "pg_currency": "KZT",
        "pg_transaction_status": "ok",
        "pg_can_reject": "1",
        **overrides,
    }


def _error(code: str, description: str = "refused") -> dict[str, str]:
    return {"pg_status": "error", "pg_error_code": code, "pg_error_description": description}


def _script(request: httpx.Request) -> str:
    return request.url.path.rsplit("/", 1)[-1]


def _client(handler: Handler, secret: str = SECRET) -> FreedomPayClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return FreedomPayClient(
        http=http, base_url="http://sim", provider="freedom", secret=secret, config=CONFIG
    )


def _payout_client(handler: Handler) -> FreedomPayPayoutClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = ConnectorConfig(type="freedom_pay", merchant_id="500000", payout_secret=PAYOUT_SECRET)
    return FreedomPayPayoutClient(
        http=http, base_url="http://sim", provider="freedom", secret=SECRET, config=config
    )


def _form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


# -- signatures and request shapes --------------------------------------------------------------


def test_the_documentation_example_signs_as_worked_out_by_hand() -> None:
    example = REQUESTS["documentation_example"]
    fields = example["fields"]
    assert (
        freedom_pay.signature(example["script"], fields.items(), example["secret"])
        == (example["pg_sig"])
    )
    # the order in which the fields come does not matter: they are sorted by name
    reversed_fields = list(reversed(list(fields.items())))
    assert (
        freedom_pay.signature(example["script"], reversed_fields, example["secret"])
        == (example["pg_sig"])
    )


@pytest.mark.parametrize(
    ("path", "script"),
    [
        ("/init_payment.php", "init_payment.php"),
        ("/v1/merchant/500000/card/direct", "direct"),
        ("/g2g/cardstorage/add", "add"),
        ("/api/reg2reg", "reg2reg"),
        ("/get_status.php?x=1", "get_status.php"),
    ],
)
def test_the_script_is_the_path_from_its_last_slash(path: str, script: str) -> None:
    assert freedom_pay.script_name(path) == script


def _fake_freedom(seen: list[httpx.Request], *, pending: bool = False) -> Handler:
    """Answers every endpoint the adapter calls, signed; records the requests."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        script = _script(request)
        if script == "add":
            return _answer({"pg_status": "ok", "pg_card_token": "tok_freedom_1"}, script)
        if script == "init_payment.php":
            page = {"pg_payment_id": "123456789", "pg_redirect_url": "https://pay.test/p/1"}
            return _answer({"pg_status": "ok", **page}, script)
        if script in ("reg2reg", "status"):
            payout = _payment(pg_order_id="wd_9", pg_amount="25000.00")
            return httpx.Response(200, content=_xml(payout, script, PAYOUT_SECRET))
        if script in ("cancel.php", "revoke.php"):
            return _answer({"pg_status": "ok"}, script)
        status = "pending" if pending else "ok"
        return _answer(_payment(pg_transaction_status=status), script)

    return answer


async def _send(name: str, seen: list[httpx.Request]) -> None:
    """The adapter's call whose request the fixture `name` shows."""
    if name.startswith("payout"):
        payouts = _payout_client(_fake_freedom(seen))
        if name == "payout":
            destination = {"card": {"token": "tok_freedom_1", "bin": "400000", "last4": "3220"}}
            await payouts.pay(
                reference="wd_9",
                amount=2_500_000,
                currency="KZT",
                method="card",
                destination=destination,
            )
        else:
            await payouts.get_payout("wd_9")
        return
    client = _client(_fake_freedom(seen, pending=name == "cancel"))
    if name == "init_payment":
        await client.init_payment(
            reference="dep_7", amount=500010, currency="KZT", callback_url=CALLBACK_URL
        )
    elif name == "charge":
        await client.charge(
            reference="dep_7",
            token="tok_freedom_1",
            amount=500010,
            currency="KZT",
            callback_url=CALLBACK_URL,
        )
    elif name == "tokenize":
        card = CardData(
            number="4000000000003220",
            exp_month=3,
            exp_year=2030,
            cvc="123",
            holder="AIGERIM SATPAYEVA",
        )
        await client.tokenize(card)
    elif name == "get_status":
        await client.get_charge("dep_7")
    elif name == "cancel":
        await client.cancel_charge("dep_7")
    elif name == "refund":
        await client.refund("dep_7", 150050, "KZT")


@pytest.mark.parametrize("name", sorted(REQUESTS["requests"]))
async def test_requests_are_the_hand_signed_fixtures(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = REQUESTS["requests"][name]
    monkeypatch.setattr(freedom_pay, "new_salt", lambda: REQUESTS["salt"])
    now = datetime.fromisoformat(expected.get("now_utc", "2026-11-25T14:13:50+00:00"))
    monkeypatch.setattr(freedom_pay, "now", lambda: now)
    seen: list[httpx.Request] = []
    await _send(name, seen)
    sent = [r for r in seen if r.url.path == "/providers/freedom" + expected["path"]]
    assert len(sent) == 1, [r.url.path for r in seen]
    request = sent[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert _form(request) == expected["form"]
    # nothing secret travels in a header or the form
    for secret in (SECRET, PAYOUT_SECRET):
        assert secret not in request.content.decode()
        assert all(secret not in value for value in request.headers.values())


async def test_a_charge_answer_is_read_in_our_terms_and_amounts_exactly() -> None:
    seen: list[httpx.Request] = []
    client = _client(_fake_freedom(seen))
    outcome = await client.charge(reference="dep_7", token="tok_1", amount=1, currency="KZT")
    assert _form(seen[0])["pg_amount"] == "0.01"
    assert outcome == ChargeOutcome(
        reference="dep_7", charge_id="123456789", status="succeeded", amount=500010, currency="KZT"
    )


# -- statuses and error codes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "decline"),
    [
        ("partial", "requires_action", None),
        ("pending", "requires_action", None),
        ("ok", "succeeded", None),
        ("failed", "declined", "insufficient_funds"),
        ("incomplete", "cancelled", "expired"),
        ("revoked", "cancelled", "revoked"),
        ("refunded", "cancelled", "refunded"),
    ],
)
async def test_every_documented_status_is_read(raw: str, status: str, decline: str | None) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        fields = _payment(pg_transaction_status=raw)
        if raw == "failed":
            fields["pg_failure_code"] = "INSUFFICIENT_FUNDS"
        if raw == "pending":
            fields["pg_redirect_url"] = "https://pay.test/3ds/1"
        return _answer(fields, _script(request))

    found = await _client(answer).get_charge("dep_7")
    assert found is not None
    assert (found.status, found.decline_code, found.amount) == (status, decline, 500010)
    assert found.action_url == ("https://pay.test/3ds/1" if raw == "pending" else None)


@pytest.mark.parametrize(
    "fields",
    [
        _payment(pg_transaction_status="processing"),  # not one of Freedom Pay's
        _payment(pg_amount="5000.105"),  # more precision than tiyn
        _payment(pg_amount="1e3"),
        {k: v for k, v in _payment().items() if k != "pg_currency"},
        {"pg_status": "maybe"},
        {"pg_status": "error"},  # an error without a code
    ],
)
async def test_an_answer_we_cannot_read_leaves_the_outcome_unknown(fields: dict[str, str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(fields, _script(request))

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _client(answer).get_charge("dep_7")
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
        ("700", "invalid_card_data"),
        ("9998", "unknown_merchant"),
    ],
)
async def test_documented_error_codes_are_refusals(code: str, ours: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(_error(code, "Описание ошибки"), _script(request))

    with pytest.raises(ProviderRejected) as refused:
        await _client(answer).charge(reference="dep_7", token="t", amount=100, currency="KZT")
    assert (refused.value.code, refused.value.detail) == (ours, "Описание ошибки")


@pytest.mark.parametrize(("code", "ours"), [("1000", "internal_error"), ("777", "freedom_777")])
async def test_undocumented_error_codes_leave_the_outcome_unknown(code: str, ours: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(_error(code), _script(request))

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _client(answer).charge(reference="dep_7", token="t", amount=100, currency="KZT")
    assert unknown.value.code == ours


async def test_not_found_is_none_on_inquiries_and_cancels() -> None:
    fixture = (FIXTURES / "error_not_found.xml").read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=fixture)

    client = _client(answer)
    assert await client.get_charge("dep_7") is None
    assert await client.cancel_charge("dep_7") is None
    with pytest.raises(ProviderRejected) as refused:
        await client.refund("dep_7", 100, "KZT")
    assert refused.value.code == "not_found"


async def test_a_payment_id_of_zero_is_an_order_never_seen() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(
            _payment(pg_payment_id="0", pg_transaction_status="partial"), "get_status.php"
        )

    assert await _client(answer).get_charge("dep_7") is None


async def test_the_fixture_answer_with_nested_refunds_verifies_and_reads() -> None:
    fixture = (FIXTURES / "status_partially_refunded.xml").read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=fixture)

    found = await _client(answer).get_charge("dep_7")
    assert found is not None
    assert (found.status, found.charge_id, found.amount) == ("succeeded", "123456789", 500010)
    answer_fields = freedom_pay.read_answer(fixture)
    assert answer_fields.signed_by("get_status.php", SECRET)
    assert not answer_fields.signed_by("get_status.php", "another-secret")


@pytest.mark.parametrize(
    "content",
    [
        _xml(_payment()),  # not signed
        _xml(_payment(), "get_status.php", "another-secret"),  # signed, not with ours
        _xml(_payment(), "init_payment.php"),  # signed for another script
        _xml(_payment(pg_amount="5000.10"), "get_status.php").replace(b"5000.10", b"9000.10"),
        _xml(_error("200"), "get_status.php", "another-secret"),  # a refusal nobody signed
        _xml({**_payment(), "pg_salt": "x", "pg_sig": "подпись"}),  # not even hex
    ],
)
async def test_an_answer_not_signed_by_our_secret_leaves_the_outcome_unknown(
    content: bytes,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content)

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _client(answer).get_charge("dep_7")
    assert unknown.value.code == "invalid_signature"


@pytest.mark.parametrize("code", ["100", "101", "9998"])
async def test_unrecognised_merchants_are_refused_unsigned(code: str) -> None:
    """Freedom Pay cannot sign with a secret it does not know us by: these need no signature."""

    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(_error(code), None)

    with pytest.raises(ProviderRejected):
        await _client(answer).charge(reference="dep_7", token="t", amount=100, currency="KZT")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<response><pg_status>&lol4;</pg_status></response>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<response><pg_status>&x;</pg_status></response>"""


@pytest.mark.parametrize(
    "content",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b"<response><pg_status>ok</pg_status>",  # cut short
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"pg_status": "ok"}',
        b"",
        "<response><pg_status>ok</pg_status></response>".encode("utf-16"),
    ],
)
async def test_hostile_or_unreadable_xml_leaves_the_outcome_unknown(content: bytes) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content)

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _client(answer).charge(reference="dep_7", token="t", amount=100, currency="KZT")
    assert unknown.value.code in ("invalid_response", "invalid_signature")
    if content in (BILLION_LAUGHS, EXTERNAL_ENTITY, b""):
        assert unknown.value.code == "invalid_response"


async def test_http_failures_are_classified_like_every_provider() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        reference = _form(request)["pg_order_id"]
        if reference == "throttled":
            return httpx.Response(429, headers={"Retry-After": "2"}, content=b"")
        if reference == "expired":
            return _answer(_error("100"), None, status=401)
        return _answer(_error("1000"), "direct", status=502)

    client = _client(answer)
    with pytest.raises(ProviderThrottled) as throttled:
        await client.charge(reference="throttled", token="t", amount=100, currency="KZT")
    assert throttled.value.retry_after == 2
    with pytest.raises(ProviderRejected) as refused:
        await client.charge(reference="expired", token="t", amount=100, currency="KZT")
    assert refused.value.code == "invalid_signature"
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await client.charge(reference="dep_7", token="t", amount=100, currency="KZT")
    assert unknown.value.code == "http_502"


async def test_a_refused_card_is_a_card_rejection() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _answer(_error("700", "wrong card number"), _script(request))

    card = CardData(number="4000000000000001", exp_month=1, exp_year=2030, cvc="123")
    with pytest.raises(CardRejected) as rejected:
        await _client(answer).tokenize(card)
    assert rejected.value.code == "invalid_card_data"


async def test_cancel_returns_a_settled_payment_as_it_is() -> None:
    seen: list[httpx.Request] = []
    settled = await _client(_fake_freedom(seen)).cancel_charge("dep_7")
    assert settled is not None
    assert settled.status == "succeeded"
    assert [_script(r) for r in seen] == ["get_status.php"]  # no cancel.php


async def test_refunds_are_checked_before_revoke() -> None:
    seen: list[httpx.Request] = []
    client = _client(_fake_freedom(seen, pending=True))
    with pytest.raises(ProviderRejected) as pending:
        await client.refund("dep_7", 100, "KZT")
    assert pending.value.code == "not_refundable"
    with pytest.raises(ProviderRejected) as currency:
        await _client(_fake_freedom(seen)).refund("dep_7", 100, "USD")
    assert currency.value.code == "currency_mismatch"
    assert "revoke.php" not in [_script(r) for r in seen]


# -- payouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"pg_transaction_status": "ok"}, ("paid", None)),
        (
            {"pg_transaction_status": "failed", "pg_failure_code": "CARD_NOT_ELIGIBLE"},
            ("failed", "card_not_eligible"),
        ),
    ],
)
async def test_payouts_are_read_in_our_terms(
    fields: dict[str, str], expected: tuple[str, str | None]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        payout = _payment(pg_order_id="wd_9", pg_amount="25000.00", **fields)
        return httpx.Response(200, content=_xml(payout, _script(request), PAYOUT_SECRET))

    found = await _payout_client(answer).get_payout("wd_9")
    assert found is not None
    assert (found.status, found.failure_code, found.amount) == (*expected, 2_500_000)


@pytest.mark.parametrize("status", ["partial", "pending"])
async def test_a_payout_still_processing_leaves_the_outcome_unknown(status: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        payout = _payment(pg_order_id="wd_9", pg_transaction_status=status)
        return httpx.Response(200, content=_xml(payout, _script(request), PAYOUT_SECRET))

    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await _payout_client(answer).get_payout("wd_9")
    assert unknown.value.code == "processing"


async def test_payouts_are_signed_with_the_payout_secret_and_refuse_what_they_cannot_pay() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        form = _form(request)
        signed = {k: v for k, v in form.items() if k != "pg_sig"}
        assert form["pg_sig"] == _md5_sig(_script(request), signed, PAYOUT_SECRET)
        return httpx.Response(200, content=_xml(_error("340"), _script(request), PAYOUT_SECRET))

    payouts = _payout_client(answer)
    assert await payouts.get_payout("wd_9") is None
    with pytest.raises(ProviderRejected) as never_seen:  # no payout void at Freedom Pay
        await payouts.cancel_payout(reference="wd_9", amount=100, currency="KZT")
    assert never_seen.value.code == "not_found"
    card = {"card": {"token": "tok_1"}}
    refusals: list[tuple[str, str, dict[str, Any], str]] = [
        ("bank_transfer", "KZT", {"iban": "KZ"}, "unsupported_method"),
        ("card", "USD", card, "unsupported_currency"),
        ("card", "KZT", {"card": {"bin": "400000"}}, "card_token_required"),
    ]
    for method, currency, destination, code in refusals:
        with pytest.raises(ProviderRejected) as refused:
            await payouts.pay(
                reference="wd_9",
                amount=100,
                currency=currency,
                method=method,
                destination=destination,
            )
        assert refused.value.code == code


# -- the result callback and our answer ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("callback_paid.form", ("dep_7", "succeeded", None, "123456789:1", True)),
        (
            "callback_declined.form",
            ("dep_8", "declined", "authentication_failed", "123456790:0", False),
        ),
    ],
)
def test_callbacks_verify_and_read_with_the_card(
    fixture: str, expected: tuple[str, str, str | None, str, bool]
) -> None:
    body = (FIXTURES / fixture).read_bytes()
    FreedomPayClient.verify_callback(WEBHOOK_SECRET, {}, body, now=0, tolerance_seconds=300)
    callback = FreedomPayClient.parse_callback(body)
    got = (
        callback.reference,
        callback.status,
        callback.decline_code,
        callback.event_id,
        callback.can_reject,
    )
    assert got == expected
    assert (callback.amount, callback.currency) == (500010, "KZT")
    assert (callback.card_pan, callback.card_owner) == ("4000-00XX-XXXX-3220", "AIGERIM SATPAYEVA")


@pytest.mark.parametrize(
    ("body", "secret", "script", "code"),
    [
        (b"", WEBHOOK_SECRET, "freedom", "signature_missing"),
        (b"pg_order_id=dep_7&pg_result=1", WEBHOOK_SECRET, "freedom", "signature_missing"),
        (None, "fp-test-secret", "freedom", "invalid_signature"),  # the API secret, not ours
        (None, WEBHOOK_SECRET, "result.php", "invalid_signature"),  # another result URL
        ("forged", WEBHOOK_SECRET, "freedom", "invalid_signature"),  # amount changed
        ("unsalted", WEBHOOK_SECRET, "freedom", "signature_missing"),
        (b"\xff\xfe", WEBHOOK_SECRET, "freedom", "invalid_signature"),
        (b"pg_result=1&pg_salt=x&pg_sig=%D0%BF", WEBHOOK_SECRET, "freedom", "invalid_signature"),
    ],
)
def test_forged_or_wrongly_signed_callbacks_are_refused(
    body: bytes | str | None, secret: str, script: str, code: str
) -> None:
    paid = (FIXTURES / "callback_paid.form").read_bytes()
    if body is None:
        body = paid
    elif body == "forged":
        body = paid.replace(b"pg_amount=5000.10", b"pg_amount=9000.10")
    elif body == "unsalted":
        body = paid.replace(b"pg_salt=YQyk545ZL1lYyNeX&", b"")
    assert isinstance(body, bytes)
    with pytest.raises(SignatureError) as refused:
        FreedomPayClient.verify_callback(
            secret, {}, body, now=0, tolerance_seconds=300, script=script
        )
    assert refused.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        b"pg_order_id=dep_7&pg_payment_id=1&pg_amount=10&pg_currency=KZT&pg_result=2",
        b"pg_order_id=dep_7&pg_payment_id=1&pg_amount=10.001&pg_currency=KZT&pg_result=1",
        b"pg_payment_id=1&pg_amount=10&pg_currency=KZT&pg_result=1",
        b"not a form",
    ],
)
def test_callbacks_we_cannot_read_are_not_understood(body: bytes) -> None:
    with pytest.raises(CallbackNotUnderstood):
        FreedomPayClient.parse_callback(body)


def test_our_answer_to_a_callback_is_signed_xml() -> None:
    content, media_type = FreedomPayClient.callback_ack(WEBHOOK_SECRET)
    assert media_type == "application/xml"
    root = fromstring(content)  # noqa: S314 - our own answer
    fields = {child.tag: child.text or "" for child in root}
    assert root.tag == "response"
    assert set(fields) == {"pg_status", "pg_salt", "pg_sig"}
    assert fields["pg_status"] == "ok"
    base = f"freedom;{fields['pg_salt']};ok;{WEBHOOK_SECRET}"
    assert fields["pg_sig"] == hashlib.md5(base.encode()).hexdigest()  # noqa: S324
    other, _ = FreedomPayClient.callback_ack(WEBHOOK_SECRET)
    assert other != content  # a fresh salt each time


def test_the_registry_finds_the_connector() -> None:
    assert connector_types()["freedom_pay"] is CLIENT
    settings = Settings(environment="test")
    assert card_dialect("freedom", settings) is CLIENT
    assert issubclass(PAYOUT_CLIENT, FreedomPayPayoutClient)


# -- over HTTP, against the simulator process ---------------------------------------------------


@pytest.fixture
async def http(simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
        await client.put(f"{simulator_url}/admin/providers/freedom/behaviour", json={})
        await client.put(f"{simulator_url}/admin/payouts/freedom/behaviour", json={})


@pytest.fixture
def freedom(settings: Settings, http: httpx.AsyncClient) -> FreedomPayClient:
    return build_client(settings, http, "freedom", CLIENT)


def _reference(kind: str = "dep") -> str:
    return f"{kind}_{uuid.uuid4().hex[:16]}"


def _card(number: str, holder: str | None = "AIGERIM SATPAYEVA") -> CardData:
    return CardData(number=number, exp_month=12, exp_year=2030, cvc="123", holder=holder)


class _Catcher(ThreadingHTTPServer):
    """Where the simulator delivers result callbacks in these tests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CatchHandler)
        self.caught: list[tuple[str, bytes]] = []
        self.arrived = threading.Event()


class _CatchHandler(BaseHTTPRequestHandler):
    server: _Catcher

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.caught.append((self.path, body))
        self.server.arrived.set()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def catcher() -> Iterator[_Catcher]:
    server = _Catcher()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_tokenize_charge_and_inquire_at_the_simulator(
    freedom: FreedomPayClient, http: httpx.AsyncClient, simulator_url: str
) -> None:
    token = await freedom.tokenize(_card("4400000000000008"))
    assert (token.bin, token.last4, token.scheme, token.issuer_country) == (
        "440000",
        "0008",
        "visa",
        "KZ",
    )
    reference = _reference()
    charged = await freedom.charge(
        reference=reference, token=token.token, amount=500010, currency="KZT"
    )
    assert (charged.status, charged.amount, charged.currency) == ("succeeded", 500010, "KZT")
    again = await freedom.charge(
        reference=reference, token=token.token, amount=500010, currency="KZT"
    )
    assert again.charge_id == charged.charge_id  # idempotent on pg_order_id
    assert await freedom.get_charge(reference) == charged
    held = (
        await http.get(f"{simulator_url}/admin/charges", params={"reference": reference})
    ).json()
    assert [(h["provider"], h["money_moved"]) for h in held] == [("freedom", True)]

    declining = await freedom.tokenize(_card("4000000000000002"))
    declined = await freedom.charge(
        reference=_reference(), token=declining.token, amount=100, currency="KZT"
    )
    assert (declined.status, declined.decline_code) == ("declined", "insufficient_funds")
    with pytest.raises(CardRejected) as refused:
        await freedom.tokenize(_card("4000000000000001"))
    assert refused.value.code == "invalid_card_data"


async def test_an_order_never_seen_is_none(
    freedom: FreedomPayClient, settings: Settings, http: httpx.AsyncClient
) -> None:
    reference = _reference()
    assert await freedom.get_charge(reference) is None
    assert await freedom.cancel_charge(reference) is None
    payouts = build_client(settings, http, "freedom", PAYOUT_CLIENT)
    assert await payouts.get_payout(_reference("wd")) is None


async def test_three_d_secure_then_the_signed_result_callback(
    freedom: FreedomPayClient, http: httpx.AsyncClient, settings: Settings, catcher: _Catcher
) -> None:
    token = await freedom.tokenize(_card("4000000000003220", holder="AIGERIM SATPAYEVA"))
    reference = _reference()
    callback_url = f"http://127.0.0.1:{catcher.server_address[1]}/v1/webhooks/freedom"
    pending = await freedom.charge(
        reference=reference,
        token=token.token,
        amount=250000,
        currency="KZT",
        callback_url=callback_url,
    )
    assert pending.status == "requires_action"
    assert pending.action_url is not None
    assert urlsplit(pending.action_url).path == f"/pay/freedom/{reference}"
    still = await freedom.get_charge(reference)
    assert still is not None
    assert (still.status, still.action_url) == ("requires_action", pending.action_url)

    passed = await http.post(f"{pending.action_url}/confirm")
    assert passed.status_code == 200
    settled = await freedom.get_charge(reference)
    assert settled is not None
    assert settled.status == "succeeded"

    assert await asyncio.to_thread(catcher.arrived.wait, 10)
    path, body = catcher.caught[0]
    assert path == "/v1/webhooks/freedom"
    secret = settings.webhook_secret("freedom")
    FreedomPayClient.verify_callback(secret, {}, body, now=0, tolerance_seconds=300)
    callback = FreedomPayClient.parse_callback(body)
    assert (callback.reference, callback.status, callback.amount) == (
        reference,
        "succeeded",
        250000,
    )
    assert callback.provider_payment_id == settled.charge_id
    assert (callback.card_pan, callback.card_owner) == ("4000-00XX-XXXX-3220", "AIGERIM SATPAYEVA")
    with pytest.raises(SignatureError):
        FreedomPayClient.verify_callback(
            settings.provider_secret("freedom"), {}, body, now=0, tolerance_seconds=300
        )


async def test_the_payment_page_and_cancel(
    freedom: FreedomPayClient, http: httpx.AsyncClient
) -> None:
    reference = _reference()
    page = await freedom.init_payment(
        reference=reference, amount=100000, currency="KZT", callback_url=CALLBACK_URL
    )
    assert (page.status, page.amount) == ("requires_action", 100000)
    assert page.action_url is not None
    assert urlsplit(page.action_url).path == f"/pay/freedom/{reference}"
    await http.post(f"{page.action_url}/confirm")
    paid = await freedom.get_charge(reference)
    assert paid is not None
    assert (paid.status, paid.charge_id) == ("succeeded", page.charge_id)
    assert await freedom.cancel_charge(reference) == paid  # settled: as it is

    token = await freedom.tokenize(_card("4000000000003220"))
    abandoned = _reference()
    await freedom.charge(reference=abandoned, token=token.token, amount=100, currency="KZT")
    cancelled = await freedom.cancel_charge(abandoned)
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    assert await freedom.get_charge(abandoned) == cancelled


async def test_partial_then_full_refund(freedom: FreedomPayClient) -> None:
    token = await freedom.tokenize(_card("4400000000000008"))
    reference = _reference()
    await freedom.charge(reference=reference, token=token.token, amount=500010, currency="KZT")
    part = await freedom.refund(reference, 150050, "KZT")
    assert (part.refunded, part.amount, part.status) == (150050, 500010, "succeeded")
    with pytest.raises(ProviderRejected) as too_much:
        await freedom.refund(reference, 349961, "KZT")
    assert too_much.value.code == "cannot_revoke"
    rest = await freedom.refund(reference, 349960, "KZT")
    assert (rest.refunded, rest.status) == (500010, "cancelled")
    refunded = await freedom.get_charge(reference)
    assert refunded is not None
    assert (refunded.status, refunded.decline_code) == ("cancelled", "refunded")
    with pytest.raises(ProviderRejected) as nothing_left:
        await freedom.refund(reference, 1, "KZT")
    assert nothing_left.value.code == "not_refundable"


async def test_a_payout_to_a_saved_card(
    freedom: FreedomPayClient, settings: Settings, http: httpx.AsyncClient
) -> None:
    payouts = build_client(settings, http, "freedom", PAYOUT_CLIENT)
    token = await freedom.tokenize(_card("4400000000000008"))
    reference = _reference("wd")
    destination = {"card": {"token": token.token, "bin": token.bin, "last4": token.last4}}
    paid = await payouts.pay(
        reference=reference,
        amount=2_500_000,
        currency="KZT",
        method="card",
        destination=destination,
    )
    assert (paid.status, paid.amount, paid.currency) == ("paid", 2_500_000, "KZT")
    again = await payouts.pay(
        reference=reference,
        amount=2_500_000,
        currency="KZT",
        method="card",
        destination=destination,
    )
    assert again.payout_id == paid.payout_id
    assert await payouts.get_payout(reference) == paid
    assert (
        await payouts.cancel_payout(reference=reference, amount=2_500_000, currency="KZT") == paid
    )

    ineligible = await freedom.tokenize(_card("4000000000000002"))  # ends 0002: no credits
    failed = await payouts.pay(
        reference=_reference("wd"),
        amount=100,
        currency="KZT",
        method="card",
        destination={"card": {"token": ineligible.token}},
    )
    assert (failed.status, failed.failure_code) == ("failed", "card_not_eligible")
    with pytest.raises(ProviderRejected) as unknown_card:
        await payouts.pay(
            reference=_reference("wd"),
            amount=100,
            currency="KZT",
            method="card",
            destination={"card": {"token": "tok_nobody"}},
        )
    assert unknown_card.value.code == "bad_request"


async def test_a_wrong_secret_is_refused_before_processing(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    wrong = FreedomPayClient(
        http=http,
        base_url=settings.simulator_url,
        provider="freedom",
        secret="not-the-secret",
        config=settings.connector("freedom"),
    )
    with pytest.raises(ProviderRejected) as refused:
        await wrong.get_charge(_reference())
    assert refused.value.code == "invalid_signature"
    other_merchant = FreedomPayClient(
        http=http,
        base_url=settings.simulator_url,
        provider="freedom",
        secret=settings.provider_secret("freedom"),
        config=ConnectorConfig(type="freedom_pay", merchant_id="999999"),
    )
    with pytest.raises(ProviderRejected) as unknown:
        await other_merchant.get_charge(_reference())
    assert unknown.value.code == "unknown_merchant"


async def test_throttling_through_freedom_pays_api(
    freedom: FreedomPayClient, http: httpx.AsyncClient, simulator_url: str
) -> None:
    knobs = {"throttle_next": 1, "throttle_retry_after_seconds": 3}
    await http.put(f"{simulator_url}/admin/providers/freedom/behaviour", json=knobs)
    with pytest.raises(ProviderThrottled) as throttled:
        await freedom.get_charge(_reference())
    assert throttled.value.retry_after == 3
    assert await freedom.get_charge(_reference()) is None  # the next call is let through


async def test_an_error_after_processing_leaves_a_charge_to_find(
    freedom: FreedomPayClient, http: httpx.AsyncClient, simulator_url: str
) -> None:
    token = await freedom.tokenize(_card("4400000000000008"))
    knobs = {"error_after_processing_next": 1, "error_after_processing_status": 502}
    await http.put(f"{simulator_url}/admin/providers/freedom/behaviour", json=knobs)
    reference = _reference()
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await freedom.charge(reference=reference, token=token.token, amount=700000, currency="KZT")
    assert unknown.value.code == "http_502"
    found = await freedom.get_charge(reference)
    assert found is not None
    assert (found.status, found.amount) == ("succeeded", 700000)


async def test_a_payout_desk_knob_through_reg2reg(
    freedom: FreedomPayClient, settings: Settings, http: httpx.AsyncClient, simulator_url: str
) -> None:
    payouts = build_client(settings, http, "freedom", PAYOUT_CLIENT)
    token = await freedom.tokenize(_card("4400000000000008"))
    destination = {"card": {"token": token.token}}
    knobs = {"throttle_next": 1, "error_after_processing_next": 1}
    await http.put(f"{simulator_url}/admin/payouts/freedom/behaviour", json=knobs)
    reference = _reference("wd")
    with pytest.raises(ProviderThrottled):
        await payouts.pay(
            reference=reference, amount=5000, currency="KZT", method="card", destination=destination
        )
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await payouts.pay(
            reference=reference, amount=5000, currency="KZT", method="card", destination=destination
        )
    assert unknown.value.code == "http_502"
    paid = await payouts.get_payout(reference)  # paid all the same: settled by inquiry
    assert paid is not None
    assert (paid.status, paid.amount) == ("paid", 5000)
