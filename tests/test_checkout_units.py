"""The hosted checkout's pure parts: words in three languages, amounts, tokens, which methods are
offered, decline codes in words, the closed-loop cash-out, the pages' HTML and headers."""

import re
import string
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from checkout import errors, pages
from checkout.i18n import LANGS, STRINGS, pick_language, t
from checkout.money import format_amount, parse_major
from checkout.offer import offer_methods
from checkout.origins import origin_of, origin_problem, web_address_problem
from checkout.payout import DepositFact, payout_offer
from checkout.security import content_security_policy, page_headers
from checkout.tokens import (
    check_csrf,
    check_return,
    csrf_token,
    return_mac,
    session_token,
    token_digest,
    well_formed,
)
from config import Settings
from config.logging import redact
from config.settings import DEFAULT_PROVIDERS
from domain.routing import CircuitState, ProviderRule

STATIC = Path(pages.__file__).resolve().parent / "static"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# -- words ---------------------------------------------------------------------------------------


def test_every_text_exists_in_kazakh_russian_and_english_with_the_same_placeholders() -> None:
    keys = set(STRINGS["en"])
    for lang in LANGS:
        assert set(STRINGS[lang]) == keys, (lang, set(STRINGS[lang]) ^ keys)
        for key in keys:
            assert _placeholders(STRINGS[lang][key]) == _placeholders(STRINGS["en"][key]), key
            assert STRINGS[lang][key].strip(), (lang, key)
    # Kazakh is Kazakh: its own letters appear, not a copy of the Russian.
    kazakh = "".join(STRINGS["kk"].values())
    assert set("әғқңөұүһі") & set(kazakh.lower())
    assert sum(STRINGS["kk"][k] == STRINGS["ru"][k] for k in keys) < 10


def test_every_message_a_refusal_maps_to_exists() -> None:
    shown = {errors.for_problem(code).key for code in errors._PROBLEMS}
    shown |= set(errors._DECLINES.values())
    for key in shown:
        assert key in STRINGS["en"], key


def test_language_comes_from_the_session_then_the_pick_then_the_browser() -> None:
    assert pick_language(session="kk", chosen="en", accept="ru", default="ru") == "kk"
    assert pick_language(session=None, chosen="en", accept="ru", default="ru") == "en"
    assert pick_language(session=None, chosen=None, accept="kk-KZ,ru;q=0.8", default="en") == "kk"
    assert (
        pick_language(session=None, chosen=None, accept="de,ru;q=0.5,en;q=0.9", default="kk")
        == "en"
    )
    assert pick_language(session=None, chosen=None, accept="de, fr", default="kk") == "kk"
    assert pick_language(session=None, chosen=None, accept="kz,en;q=0.5", default="ru") == "kk"
    assert pick_language(session="xx", chosen="zz", accept="en;q=0", default="ru") == "ru"


def test_texts_fill_their_placeholders() -> None:
    assert t("en", "pay_amount", amount="5,000 ₸") == "Pay 5,000 ₸"
    assert t("ru", "amount_range", min="1", max="2") == "От 1 до 2"
    assert t("kk", "app_sent", phone="+7701***4567").startswith("Төлем сұрауы +7701***4567")


# -- amounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "lang", "shown"),
    [
        (500_000, "ru", "5\u202f000\u00a0₸"),
        (500_050, "kk", "5\u202f000,50\u00a0₸"),
        (123_456_789, "en", "1,234,567.89\u00a0₸"),
        (1, "en", "0.01\u00a0₸"),
    ],
)
def test_amounts_are_shown_from_integer_minor_units(minor: int, lang: str, shown: str) -> None:
    assert format_amount(minor, "KZT", lang) == shown


@pytest.mark.parametrize(
    ("typed", "minor"),
    [
        ("5000", 500_000),
        ("5 000", 500_000),
        ("5000,5", 500_050),
        ("5000.05", 500_005),
        ("0", 0),
        ("abc", None),
        ("5000.123", None),
        ("-5", None),
        ("1e5", None),
        ("", None),
    ],
)
def test_typed_amounts_become_minor_units_exactly(typed: str, minor: int | None) -> None:
    assert parse_major(typed, "KZT") == minor


# -- tokens --------------------------------------------------------------------------------------


def test_the_session_token_is_derived_not_stored_and_forms_carry_bound_csrf_tokens() -> None:
    settings = Settings(idempotency_secret=SecretStr("a" * 40))
    token = session_token(settings, "cs_1")
    assert well_formed(token)
    assert token == session_token(settings, "cs_1")
    assert token != session_token(settings, "cs_2")
    other = Settings(idempotency_secret=SecretStr("b" * 40))
    assert token != session_token(other, "cs_1")  # keyed
    assert len(token_digest(token)) == 64
    assert token not in token_digest(token)
    assert not well_formed(token + "x")
    assert not well_formed("ckt_../../etc")

    csrf = csrf_token(settings, "cs_1", "pay")
    nonce = check_csrf(settings, "cs_1", "pay", csrf)
    assert nonce is not None
    assert csrf.startswith(nonce)
    assert check_csrf(settings, "cs_2", "pay", csrf) is None  # another session
    assert check_csrf(settings, "cs_1", "choose", csrf) is None  # another form
    assert check_csrf(settings, "cs_1", "pay", csrf[:-1] + "A") is None
    assert check_csrf(settings, "cs_1", "pay", None) is None
    assert check_csrf(settings, "cs_1", "pay", "x" * 500) is None
    assert csrf_token(settings, "cs_1", "pay") != csrf  # a fresh nonce per form
    assert check_return(settings, "cs_1", return_mac(settings, "cs_1"))
    assert not check_return(settings, "cs_2", return_mac(settings, "cs_1"))


def test_a_checkout_token_is_masked_in_every_log_line() -> None:
    token = session_token(Settings(), "cs_1")
    line = f'127.0.0.1:5000 - "GET /checkout/{token}/status HTTP/1.1" 200'
    masked = redact(line)
    assert token not in masked
    assert "/checkout/ckt_[redacted]/status" in masked


# -- offered methods ---------------------------------------------------------------------------


def test_methods_are_offered_only_where_a_provider_can_take_them_now() -> None:
    offers = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={},
        currency="KZT",
        low=1_000_00,
        high=2_000_000_00,
        allowed=None,
    )
    assert [o.method for o in offers] == [
        "card",
        "qr",
        "mobile_banking",
        "ewallet",
        "bank_transfer",
        "aggregator",
    ]
    card = offers[0]
    assert card.schemes == ("visa", "mastercard", "unionpay")
    assert card.providers == ("halyk", "freedom", "cloudpayments")
    wallet = next(o for o in offers if o.method == "ewallet")
    assert wallet.max_amount == 1_000_000_00  # the wallet's own ceiling
    assert wallet.takes(5_000_00)
    assert not wallet.takes(1_500_000_00)

    open_qr = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={"kaspi_qr": CircuitState.OPEN},
        currency="KZT",
        low=1_000_00,
        high=2_000_00,
        allowed=None,
    )
    assert "qr" not in [o.method for o in open_qr]
    probing = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={"kaspi_qr": CircuitState.HALF_OPEN},
        currency="KZT",
        low=1_000_00,
        high=2_000_00,
        allowed=None,
    )
    assert "qr" in [o.method for o in probing]
    # Only UnionPay left when Halyk and CloudPayments are open: Freedom's schemes.
    cards = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={"halyk": CircuitState.OPEN, "cloudpayments": CircuitState.OPEN},
        currency="KZT",
        low=100,
        high=200,
        allowed=["card"],
    )
    assert [(o.method, o.providers) for o in cards] == [("card", ("freedom",))]
    assert (
        offer_methods(
            DEFAULT_PROVIDERS, circuits={}, currency="USD", low=100, high=200, allowed=None
        )
        == []
    )
    disabled = tuple(
        ProviderRule(r.name, r.method, enabled=r.method != "qr") for r in DEFAULT_PROVIDERS
    )
    assert "qr" not in [
        o.method
        for o in offer_methods(
            disabled, circuits={}, currency="KZT", low=100, high=200, allowed=None
        )
    ]
    too_big = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={},
        currency="KZT",
        low=1_500_000_00,
        high=1_600_000_00,
        allowed=None,
    )
    assert "ewallet" not in [o.method for o in too_big]


def test_methods_the_player_used_come_first_most_recent_first() -> None:
    offers = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={},
        currency="KZT",
        low=100,
        high=200,
        allowed=["card", "qr", "bank_transfer"],
        used=["bank_transfer", "aggregator", "qr"],
    )
    assert [(o.method, o.used_before) for o in offers] == [
        ("bank_transfer", True),
        ("qr", True),
        ("card", False),
    ]


# -- refusals in words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "key"),
    [
        ("failed", "provider_declined:insufficient_funds", "err_insufficient_funds"),
        ("failed", "provider_declined:expired_card", "err_card_expired"),
        ("failed", "provider_declined:limit_exceeded", "err_bank_limit"),
        ("failed", "provider_declined:authentication_failed", "err_3ds"),
        ("failed", "provider_declined:do_not_honor", "err_bank_declined"),
        ("failed", "provider_declined:wallet_not_found", "err_payer_not_found"),
        ("failed", "provider_declined:something_new", "err_try_another"),
        ("failed", "provider_error:halyk:http_503", "err_try_another"),
        ("declined", "risk:velocity,new_device", "err_risk"),
        ("expired", "expired:player_did_not_finish", "err_timeout"),
    ],
)
def test_outcomes_become_words_never_codes(status: str, reason: str, key: str) -> None:
    shown = errors.for_outcome(status, reason)
    assert shown is not None
    assert shown.key == key
    for lang in LANGS:
        text = t(lang, key)
        assert "_" not in text
        assert reason.split(":")[0] not in text


def test_responsible_gaming_refusals_are_careful() -> None:
    assert errors.for_problem("self_excluded") == errors.Shown("err_self_excluded", True)
    assert errors.for_problem("deposit_limit_exceeded") == errors.Shown("err_limit", True)
    assert errors.for_problem("card_expired") == errors.Shown("err_card_expired", False)
    assert errors.for_problem("what_is_this").key == "err_generic"
    assert errors.for_outcome("processing", None) is None


# -- the closed loop -----------------------------------------------------------------------------

PAYOUTS = {
    "card": "freedom",
    "bank_transfer": "kazbank",
    "ewallet": "kazbank",
    "mobile_banking": "kazbank",
}


def _card(deposit_id: str, last4: str, tokens: dict[str, str]) -> DepositFact:
    return DepositFact(
        deposit_id,
        "card",
        30_000_00,
        card={"bin": "424242", "last4": last4, "scheme": "visa", "tokens": tokens},
    )


def test_net_deposits_go_back_the_way_they_came_before_winnings_go_anywhere() -> None:
    deposits = [
        _card("dep_2", "4242", {"halyk": "t1", "freedom": "t2"}),
        DepositFact("dep_1", "qr", 20_000_00),
    ]
    offer = payout_offer(
        available=100_000_00,
        deposits=deposits,
        withdrawn={"card": 10_000_00},
        phone="+77011234567",
        holder_name="A B",
        payout_providers=PAYOUTS,
        allowed=None,
        minimum=1_000_00,
    )
    assert offer.loop_total == 20_000_00 + 20_000_00
    assert [(d.id, d.max_amount) for d in offer.destinations] == [
        ("card:dep_2", 20_000_00),
        ("mobile_banking", 20_000_00),  # QR money returns to the banking app by phone
    ]
    assert offer.destinations[0].request == {"deposit_id": "dep_2"}

    returned = payout_offer(
        available=60_000_00,
        deposits=deposits,
        withdrawn={"card": 30_000_00, "mobile_banking": 20_000_00},
        phone="+77011234567",
        holder_name="A B",
        payout_providers=PAYOUTS,
        allowed=None,
        minimum=1_000_00,
    )
    assert returned.loop_total == 0
    assert [d.id for d in returned.destinations] == [
        "card:dep_2",
        "mobile_banking",
        "bank_transfer",
    ]
    assert all(d.max_amount == 60_000_00 for d in returned.destinations)
    assert returned.find("bank_transfer").typed == ("iban",)  # type: ignore[union-attr]


def test_a_card_the_payout_provider_never_vaulted_is_not_offered() -> None:
    offer = payout_offer(
        available=50_000_00,
        deposits=[_card("dep_1", "1111", {"halyk": "t1"})],
        withdrawn={},
        phone="+77011234567",
        holder_name="A B",
        payout_providers=PAYOUTS,
        allowed=None,
        minimum=1_000_00,
    )
    # The loop cannot be honoured: every verified destination of the player is offered.
    assert [d.id for d in offer.destinations] == ["mobile_banking", "bank_transfer"]
    nothing = payout_offer(
        available=500_00,
        deposits=[],
        withdrawn={},
        phone="+77011234567",
        holder_name="A B",
        payout_providers=PAYOUTS,
        allowed=None,
        minimum=1_000_00,
    )
    assert nothing.destinations == []


# -- headers and HTML ----------------------------------------------------------------------------


def test_the_policy_allows_only_the_platform_and_the_configured_parents() -> None:
    closed = Settings()
    policy = content_security_policy(closed)
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert page_headers(closed)["X-Frame-Options"] == "DENY"
    assert page_headers(closed)["Referrer-Policy"] == "no-referrer"
    assert page_headers(closed)["Cache-Control"] == "no-store"
    framed = Settings(checkout_frame_ancestors=["https://casino.example", "http://localhost:3000"])
    policy = content_security_policy(framed, form_targets=["https://acs.bank.example"])
    assert "frame-ancestors https://casino.example http://localhost:3000;" in policy
    assert "form-action 'self' https://acs.bank.example;" in policy
    assert "X-Frame-Options" not in page_headers(framed)
    for bad in (
        "*",
        "https://a.example/path",
        "http://casino.example",
        "javascript:alert(1)",
        "https://a.example; script-src *",
    ):
        with pytest.raises(ValidationError):
            Settings(checkout_frame_ancestors=[bad])
    with pytest.raises(ValidationError):
        Settings(checkout_rate_limit_per_ip="lots")


def test_addresses_a_browser_may_be_sent_to() -> None:
    assert web_address_problem("https://casino.example/back?x=1") is None
    assert web_address_problem("http://127.0.0.1:8000/back") is None
    for bad in (
        "javascript:alert(1)",
        "data:text/html,x",
        "http://casino.example/",
        "https://user@casino.example/",
        "/relative",
        "https://a b.example/",
    ):
        assert web_address_problem(bad) is not None, bad
    assert origin_of("https://acs.example:8443/3ds?x") == "https://acs.example:8443"
    assert origin_of("javascript:alert(1)") is None
    assert origin_problem("https://casino.example") is None


class _Audit(HTMLParser):
    """What the accessibility and the policy checks need from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.inputs: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label":
            self.in_label += 1
            if attributes.get("for"):
                self.labels.add(str(attributes["for"]))
        if tag == "input" and attributes.get("type") != "hidden":
            self.inputs.append({**attributes, "in_label": "yes" if self.in_label else None})
        if tag == "script" and not attributes.get("src"):
            self.inline.append("script")
        if tag == "style" or "style" in attributes:
            self.inline.append("style")
        self.inline += [name for name in attributes if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1


def _audit(markup: str) -> _Audit:
    audit = _Audit()
    audit.feed(markup)
    for field in audit.inputs:
        assert field["in_label"] or field.get("id") in audit.labels, field
    assert audit.inline == []
    return audit


@pytest.mark.parametrize("lang", LANGS)
def test_every_page_labels_its_fields_and_has_nothing_inline(lang: str) -> None:
    now = datetime.now(UTC)
    offers = offer_methods(
        DEFAULT_PROVIDERS,
        circuits={},
        currency="KZT",
        low=100_00,
        high=100_000_00,
        allowed=None,
        used=["qr"],
    )
    amounts = pages.AmountChoice("KZT", None, 100_00, 100_000_00, [5_000_00, 10_000_00], None)
    frame = pages.Frame(base="/checkout/ckt_x", poll_ms=2000)
    bodies = [
        pages.chooser(
            lang=lang,
            csrf="c",
            base="/b",
            amounts=amounts,
            offers=offers,
            error="err_self_excluded",
            careful=True,
            help_url="https://help.example",
        ),
        pages.card_form(
            lang=lang,
            csrf="c",
            back_csrf="b",
            base="/b",
            amount=500_000,
            currency="KZT",
            schemes=("visa",),
            error=None,
        ),
        pages.details_form(
            lang=lang,
            csrf="c",
            back_csrf="b",
            base="/b",
            method="mobile_banking",
            amount=500_000,
            currency="KZT",
            phone="+77011234567",
            error="err_phone",
        ),
        pages.qr_action(
            lang,
            base="/b",
            action={"type": "qr", "payload": "https://q.example/1"},
            amount=500_000,
            currency="KZT",
            expires_at=now + timedelta(minutes=15),
            now=now,
        ),
        pages.app_action(
            lang,
            action={"phone": "+7701***4567"},
            amount=1,
            currency="KZT",
            expires_at=now,
            now=now,
        ),
        pages.transfer_action(
            lang,
            action={"iban": "KZ1", "reference": "dep_1", "bic": "X"},
            amount=1,
            currency="KZT",
            expires_at=now,
        ),
        pages.redirect_action(
            lang,
            action={
                "url": "https://acs.example/3ds",
                "method": "POST",
                "form": {"PaReq": "x", "MD": "1"},
            },
            method="card",
            amount=1,
            currency="KZT",
        ),
        pages.succeeded(lang, 1, "KZT", "https://casino.example/back"),
        pages.withdraw_form(
            lang=lang,
            csrf="c",
            base="/b",
            offer=payout_offer(
                available=100_000_00,
                deposits=[_card("dep_1", "4242", {"freedom": "t"})],
                withdrawn={"card": 30_000_00},
                phone="+77011234567",
                holder_name="A B",
                payout_providers=PAYOUTS,
                allowed=None,
                minimum=1_000_00,
            ),
            currency="KZT",
            low=1_000_00,
            fixed=None,
            error="err_amount",
            error_values={"min": "1", "max": "2"},
            return_url="https://casino.example/back",
        ),
        pages.withdrawal_status(
            lang=lang,
            status="in_review",
            amount=1_000_00,
            currency="KZT",
            destination="Visa 4242",
            eta=now,
            return_url="https://casino.example/back",
        ),
    ]
    for body in bodies:
        markup = pages.layout(pages.Page(lang, "t", body, poll_url="/s", view="v"), frame)
        _audit(markup)
        assert f'<html lang="{lang}">' in markup
        assert "http" not in re.sub(r'(href|action|data-copy|data-redirect)="[^"]*"', "", markup)
    careful = bodies[0]
    assert 'href="https://help.example"' in careful
    assert t(lang, "help_link") in careful


def test_the_script_and_the_style_are_small_and_self_contained() -> None:
    script = (STATIC / "checkout.js").read_text()
    style = (STATIC / "checkout.css").read_text()
    assert len(script.encode()) + len(style.encode()) < 40_000
    for text in (script, style):
        assert "http://" not in text
        assert "https://" not in text
        assert "@import" not in text
    assert "localStorage" not in script.replace("not in storage", "")
    assert "sessionStorage" not in script
    assert "document.cookie" not in script
