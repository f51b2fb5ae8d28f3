"""The checkout's HTML: server-rendered, mobile-first, one stylesheet and one script, both files
served by the platform (`/checkout/assets/...`); no inline script or style, no third party.

Every page works without JavaScript (forms post, a page reloads to show progress); the script
adds the card checks as the player types, the live status, countdowns and copy buttons. Texts
come from `checkout.i18n`; every value is escaped here.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from checkout.i18n import LANG_NAMES, LANGS, t
from checkout.money import format_amount
from checkout.offer import MethodOffer
from checkout.payout import Destination, PayoutOffer

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "checkout.js": "text/javascript; charset=utf-8",
    "checkout.css": "text/css; charset=utf-8",
}
VERSIONS = {name: hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12] for name in ASSETS}
ALMATY = ZoneInfo("Asia/Almaty")

# Texts the script needs, as data attributes of <body>.
_SCRIPT_TEXTS = {
    "check-number": "check_number",
    "check-expiry": "check_expiry",
    "check-expired": "check_expired",
    "check-cvc": "check_cvc",
    "check-scheme": "check_scheme",
    "check-holder": "check_holder",
    "copied": "copied",
    "time-up": "time_up",
    "card-scheme": "card_scheme",
}
_SCHEME_NAMES = {"visa": "Visa", "mastercard": "Mastercard", "unionpay": "UnionPay"}


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def local_time(value: datetime, lang: str) -> str:
    """A time as players in Kazakhstan read it (Asia/Almaty)."""
    moment = value.astimezone(ALMATY)
    return moment.strftime("%d.%m.%Y %H:%M") if lang != "en" else moment.strftime("%d %b %Y %H:%M")


@dataclass
class Page:
    """What a handler renders: the layout fills in the rest."""

    lang: str
    title: str
    body: str
    status: int = 200
    poll_url: str | None = None
    view: str = ""
    redirect: str | None = None
    form_targets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Frame:
    """The layout's surroundings: links back to this page, the script's settings."""

    base: str  # /checkout/{token}
    poll_ms: int
    parents: Sequence[str] = ()


def layout(page: Page, frame: Frame | None) -> str:
    attributes: dict[str, str] = {f"data-{k}": t(page.lang, v) for k, v in _SCRIPT_TEXTS.items()}
    if page.poll_url:
        attributes["data-status-url"] = page.poll_url
        attributes["data-view"] = page.view
        attributes["data-poll-ms"] = str(frame.poll_ms if frame else 2000)
    if page.redirect:
        attributes["data-redirect"] = page.redirect
    if frame and frame.parents:
        attributes["data-parents"] = " ".join(frame.parents)
    body_attributes = "".join(f' {k}="{_e(v)}"' for k, v in attributes.items())
    languages = ""
    if frame is not None:
        links = "".join(
            f'<li><a href="{_e(frame.base)}?lang={code}" lang="{code}" hreflang="{code}"'
            + (' aria-current="true"' if code == page.lang else "")
            + f">{_e(LANG_NAMES[code])}</a></li>"
            for code in LANGS
        )
        languages = (
            f'<nav class="langs" aria-label="{_e(t(page.lang, "language"))}"><ul>{links}</ul></nav>'
        )
    css = f"/checkout/assets/checkout.css?v={VERSIONS['checkout.css']}"
    js = f"/checkout/assets/checkout.js?v={VERSIONS['checkout.js']}"
    return (
        f'<!doctype html><html lang="{_e(page.lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(page.title)}</title>"
        f'<link rel="stylesheet" href="{css}"><script src="{js}" defer></script></head>'
        f"<body{body_attributes}><header>{languages}</header>"
        f'<main id="main" tabindex="-1">{page.body}</main></body></html>'
    )


# -- pieces ------------------------------------------------------------------------------------


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{_e(token)}">'


def _alert(
    lang: str,
    key: str | None,
    *,
    careful: bool = False,
    help_url: str | None = None,
    values: Mapping[str, str] | None = None,
) -> str:
    if not key:
        return ""
    text = t(lang, key, **dict(values or {}))
    link = ""
    if careful and help_url:
        link = (
            f' <a href="{_e(help_url)}" target="_blank" rel="noopener noreferrer">'
            f"{_e(t(lang, 'help_link'))}</a>"
        )
    kind = "careful" if careful else "error"
    return f'<div class="alert {kind}" role="alert"><p>{_e(text)}{link}</p></div>'


def _back_link(lang: str, return_url: str) -> str:
    label = _e(t(lang, "back_to_site"))
    return f'<p><a class="button secondary" href="{_e(return_url)}">{label}</a></p>'


def _spinner() -> str:
    return '<div class="spinner" aria-hidden="true"></div>'


def _countdown(lang: str, expires_at: datetime | None, now: datetime) -> str:
    if expires_at is None:
        return ""
    left = max(0, int((expires_at - now).total_seconds()))
    minutes, seconds = divmod(left, 60)
    return (
        f'<p class="countdown" data-expires="{_e(expires_at.astimezone(UTC).isoformat())}" '
        f'data-now="{_e(now.astimezone(UTC).isoformat())}">'
        f"{_e(t(lang, 'time_left'))} "
        f'<time class="left" role="timer" aria-live="off">{minutes:02d}:{seconds:02d}</time></p>'
    )


def _copyable(lang: str, label: str, value: str, name: str, copied: str | None = None) -> str:
    """A value with its copy button (shown by the script); `copied`: what goes to the
    clipboard when it differs from what is shown (an amount as digits)."""
    return (
        f'<div class="row"><dt>{_e(label)}</dt><dd><span class="value" id="v-{name}">'
        f'{_e(value)}</span> <button type="button" class="copy" hidden '
        f'data-copy="{_e(copied or value)}" aria-label="{_e(t(lang, "copy"))}: {_e(label)}">'
        f"{_e(t(lang, 'copy'))}</button></dd></div>"
    )


# -- deposit pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmountChoice:
    currency: str
    fixed: int | None
    low: int
    high: int
    presets: Sequence[int]
    selected: int | None


def _amount_fieldset(lang: str, amounts: AmountChoice) -> str:
    def money(value: int) -> str:
        return format_amount(value, amounts.currency, lang)

    if amounts.fixed is not None:
        return (
            f'<p class="amount-fixed">'
            f"{_e(t(lang, 'amount_fixed', amount=money(amounts.fixed)))}</p>"
            f'<input type="hidden" name="amount" value="{amounts.fixed}">'
        )
    selected = (
        amounts.selected
        if amounts.selected is not None
        else (amounts.presets[0] if amounts.presets else None)
    )
    chips = "".join(
        f'<label class="chip"><input type="radio" name="amount" value="{value}"'
        + (" checked" if value == selected else "")
        + f"> {_e(money(value))}</label>"
        for value in amounts.presets
    )
    other_checked = " checked" if selected is None or selected not in amounts.presets else ""
    other_value = "" if selected is None or selected in amounts.presets else _major(selected, lang)
    hint = t(lang, "amount_range", min=money(amounts.low), max=money(amounts.high))
    return (
        f'<fieldset class="amounts"><legend>{_e(t(lang, "amount"))}</legend>'
        f'<div class="chips">{chips}'
        f'<label class="chip other"><input type="radio" name="amount" value="other" '
        f'id="amount-other-choice"{other_checked}> {_e(t(lang, "amount_other"))}</label></div>'
        f'<div class="field"><label for="amount-other">{_e(t(lang, "amount_other"))}</label>'
        f'<input id="amount-other" name="amount_other" inputmode="decimal" autocomplete="off" '
        f'value="{_e(other_value)}" data-low="{amounts.low}" data-high="{amounts.high}" '
        f'aria-describedby="amount-hint"><p id="amount-hint" class="hint">{_e(hint)}</p></div>'
        "</fieldset>"
    )


def _major(minor: int, lang: str) -> str:
    whole, fraction = divmod(minor, 100)
    return str(whole) if not fraction else f"{whole}{',' if lang != 'en' else '.'}{fraction:02d}"


def chooser(
    *,
    lang: str,
    csrf: str,
    base: str,
    amounts: AmountChoice,
    offers: Sequence[MethodOffer],
    error: str | None,
    careful: bool,
    help_url: str | None,
    error_values: Mapping[str, str] | None = None,
) -> str:
    buttons = "".join(
        f'<li><button type="submit" name="method" value="{_e(o.method)}" class="method" '
        f'data-low="{o.min_amount}" data-high="{o.max_amount}">'
        f'<span class="m-name">{_e(t(lang, "method_" + o.method))}</span>'
        f'<span class="m-hint">{_e(t(lang, "method_hint_" + o.method))}</span>'
        + (f'<span class="badge">{_e(t(lang, "used_before"))}</span>' if o.used_before else "")
        + "</button></li>"
        for o in offers
    )
    methods = (
        f'<ul class="methods">{buttons}</ul>'
        if offers
        else f'<p class="empty">{_e(t(lang, "no_methods"))}</p>'
    )
    return (
        f"<h1>{_e(t(lang, 'title_deposit'))}</h1>"
        + _alert(lang, error, careful=careful, help_url=help_url, values=error_values)
        + f'<form method="post" action="{_e(base)}/choose" class="stack" id="choose-form">'
        + _csrf(csrf)
        + _amount_fieldset(lang, amounts)
        + f"<fieldset><legend>{_e(t(lang, 'choose_method'))}</legend>{methods}</fieldset>"
        + "</form>"
    )


def _summary(lang: str, method: str, amount: int, currency: str) -> str:
    return (
        f'<p class="summary"><span>{_e(t(lang, "method_" + method))}</span> '
        f"<strong>{_e(format_amount(amount, currency, lang))}</strong></p>"
    )


def _back_form(lang: str, base: str, csrf: str) -> str:
    return (
        f'<form method="post" action="{_e(base)}/back" class="back">{_csrf(csrf)}'
        f'<button type="submit" class="link">{_e(t(lang, "change_method"))}</button></form>'
    )


def _field(
    lang: str,
    *,
    name: str,
    ident: str,
    label: str,
    hint: str | None = None,
    kind: str = "text",
    inputmode: str | None = None,
    value: str = "",
    maxlength: int | None = None,
    extra: str = "",
) -> str:
    described = f' aria-describedby="{ident}-hint {ident}-msg"'
    return (
        f'<div class="field"><label for="{ident}">{_e(label)}</label>'
        f'<input id="{ident}" name="{name}" type="{kind}" autocomplete="off" required'
        + (f' inputmode="{inputmode}"' if inputmode else "")
        + (f' maxlength="{maxlength}"' if maxlength else "")
        + (f' value="{_e(value)}"' if value else "")
        + f"{described}{extra}>"
        + f'<p id="{ident}-hint" class="hint">{_e(hint or "")}</p>'
        + f'<p id="{ident}-msg" class="msg" aria-live="polite"></p></div>'
    )


def card_form(
    *,
    lang: str,
    csrf: str,
    back_csrf: str,
    base: str,
    amount: int,
    currency: str,
    schemes: Sequence[str],
    error: str | None,
    careful: bool = False,
    help_url: str | None = None,
) -> str:
    """The card goes from here straight to the platform (`POST {base}/pay`)."""
    pay = t(lang, "pay_amount", amount=format_amount(amount, currency, lang))
    accepted = ", ".join(_SCHEME_NAMES.get(s, s) for s in schemes)
    return (
        f"<h1>{_e(t(lang, 'title_deposit'))}</h1>"
        + _summary(lang, "card", amount, currency)
        + _alert(lang, error, careful=careful, help_url=help_url)
        + f'<form method="post" action="{_e(base)}/pay" class="stack card" id="card-form" '
        f'autocomplete="off" data-schemes="{_e(" ".join(schemes))}">'
        + _csrf(csrf)
        + '<input type="hidden" name="method" value="card">'
        + _field(
            lang,
            name="number",
            ident="cc-number",
            label=t(lang, "card_number"),
            hint=accepted,
            inputmode="numeric",
            maxlength=23,
            extra=' data-check="number" spellcheck="false"',
        )
        + '<p id="cc-scheme" class="scheme" aria-live="polite"></p>'
        + '<div class="pair">'
        + _field(
            lang,
            name="expiry",
            ident="cc-expiry",
            label=t(lang, "card_expiry"),
            hint=None,
            inputmode="numeric",
            maxlength=7,
            extra=' data-check="expiry"',
        )
        + _field(
            lang,
            name="cvc",
            ident="cc-cvc",
            label=t(lang, "card_cvc"),
            hint=t(lang, "card_cvc_hint"),
            kind="password",
            inputmode="numeric",
            maxlength=4,
            extra=' data-check="cvc"',
        )
        + "</div>"
        + _field(
            lang,
            name="holder",
            ident="cc-holder",
            label=t(lang, "card_holder"),
            hint=t(lang, "card_holder_hint"),
            maxlength=100,
            extra=' data-check="holder" spellcheck="false" autocapitalize="characters"',
        )
        + f'<p class="note">{_e(t(lang, "card_secure"))}</p>'
        + f'<button type="submit" class="primary">{_e(pay)}</button></form>'
        + _back_form(lang, base, back_csrf)
    )


def details_form(
    *,
    lang: str,
    csrf: str,
    back_csrf: str,
    base: str,
    method: str,
    amount: int,
    currency: str,
    phone: str,
    error: str | None,
    careful: bool = False,
    help_url: str | None = None,
) -> str:
    """What an e-wallet or a banking app needs: the account or the phone."""
    pay = t(lang, "pay_amount", amount=format_amount(amount, currency, lang))
    if method == "ewallet":
        field_html = _field(
            lang,
            name="wallet_account",
            ident="wallet",
            maxlength=64,
            label=t(lang, "wallet_account"),
            hint=t(lang, "wallet_hint"),
        )
    else:
        field_html = _field(
            lang,
            name="phone",
            ident="phone",
            kind="tel",
            inputmode="tel",
            label=t(lang, "phone"),
            hint=t(lang, "phone_hint"),
            value=phone,
            maxlength=16,
            extra=' pattern="\\+77[0-9]{9}"',
        )
    return (
        f"<h1>{_e(t(lang, 'title_deposit'))}</h1>"
        + _summary(lang, method, amount, currency)
        + _alert(lang, error, careful=careful, help_url=help_url)
        + f'<form method="post" action="{_e(base)}/pay" class="stack">'
        + _csrf(csrf)
        + f'<input type="hidden" name="method" value="{_e(method)}">'
        + field_html
        + f'<button type="submit" class="primary">{_e(pay)}</button></form>'
        + _back_form(lang, base, back_csrf)
    )


def processing(lang: str, amount: int, currency: str, method: str) -> str:
    return (
        f"<h1>{_e(t(lang, 'title_deposit'))}</h1>"
        + _summary(lang, method, amount, currency)
        + f'<div class="status" role="status">{_spinner()}'
        f"<p>{_e(t(lang, 'processing'))}</p>"
        f'<p class="hint">{_e(t(lang, "processing_note"))}</p></div>'
    )


def redirect_action(
    lang: str, *, action: Mapping[str, Any], method: str, amount: int, currency: str
) -> str:
    """A page elsewhere: 3-D Secure, a wallet, an aggregator's page (opened in a new tab; this
    page follows the result). A 3-D Secure form is posted to the issuer's ACS."""
    three_ds = method == "card"
    title = t(lang, "three_ds_title" if three_ds else "redirect_title")
    label = t(lang, "three_ds_open" if three_ds else "redirect_open")
    url = str(action.get("url", ""))
    form = action.get("form")
    if action.get("method") == "POST" and isinstance(form, Mapping):
        inputs = "".join(
            f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in form.items()
        )
        go = (
            f'<form method="post" action="{_e(url)}" target="_blank" class="go" '
            f'rel="noopener">{inputs}<button type="submit" class="primary">{_e(label)}</button>'
            "</form>"
        )
    else:
        go = (
            f'<p class="go"><a class="button primary" href="{_e(url)}" target="_blank" '
            f'rel="noopener noreferrer">{_e(label)}</a></p>'
        )
    return (
        f"<h1>{_e(title)}</h1>"
        + _summary(lang, method, amount, currency)
        + go
        + f'<div class="status" role="status">{_spinner()}'
        f'<p class="hint">{_e(t(lang, "opened_elsewhere"))}</p></div>'
    )


def qr_action(
    lang: str,
    *,
    base: str,
    action: Mapping[str, Any],
    amount: int,
    currency: str,
    expires_at: datetime | None,
    now: datetime,
) -> str:
    link = next(
        (
            str(action[k])
            for k in ("url", "payload")
            if str(action.get(k) or "").startswith(("https://", "http://"))
        ),
        None,
    )
    money = format_amount(amount, currency, lang)
    app = (
        f'<p class="app-link"><a class="button primary" href="{_e(link)}" target="_blank" '
        f'rel="noopener noreferrer">{_e(t(lang, "qr_open_app"))}</a></p>'
        if link
        else ""
    )
    return (
        f"<h1>{_e(t(lang, 'qr_title'))}</h1>"
        + _summary(lang, "qr", amount, currency)
        + f'<figure class="qr"><img src="{_e(base)}/qr.png" width="264" height="264" '
        f'alt="{_e(t(lang, "qr_alt", amount=money))}"></figure>'
        + app
        + f'<p class="hint">{_e(t(lang, "qr_steps"))}</p>'
        + _countdown(lang, expires_at, now)
        + f'<div class="status" role="status">{_spinner()}</div>'
    )


def app_action(
    lang: str,
    *,
    action: Mapping[str, Any],
    amount: int,
    currency: str,
    expires_at: datetime | None,
    now: datetime,
) -> str:
    phone = str(action.get("phone") or "")
    return (
        f"<h1>{_e(t(lang, 'app_title'))}</h1>"
        + _summary(lang, "mobile_banking", amount, currency)
        + (f"<p>{_e(t(lang, 'app_sent', phone=phone))}</p>" if phone else "")
        + f'<p class="hint">{_e(t(lang, "app_steps"))}</p>'
        + _countdown(lang, expires_at, now)
        + f'<div class="status" role="status">{_spinner()}</div>'
    )


def transfer_action(
    lang: str,
    *,
    action: Mapping[str, Any],
    amount: int,
    currency: str,
    expires_at: datetime | None,
) -> str:
    money = format_amount(amount, currency, lang)
    rows = [
        ("transfer_beneficiary", action.get("beneficiary"), "beneficiary", False),
        ("transfer_bank", action.get("bank_name"), "bank", False),
        ("transfer_bic", action.get("bic"), "bic", True),
        ("transfer_iban", action.get("iban"), "iban", True),
        ("transfer_reference", action.get("reference"), "reference", True),
    ]
    listed = "".join(
        _copyable(lang, t(lang, key), str(value), name)
        if copy
        else f'<div class="row"><dt>{_e(t(lang, key))}</dt><dd>{_e(value)}</dd></div>'
        for key, value, name, copy in rows
        if value
    )
    plain = f"{amount // 100}.{amount % 100:02d}" if amount % 100 else str(amount // 100)
    listed += _copyable(lang, t(lang, "transfer_amount"), money, "amount", plain)
    due = (
        f"<p>{_e(t(lang, 'transfer_due', time=local_time(expires_at, lang)))}</p>"
        if expires_at
        else ""
    )
    pay_url = str(action.get("pay_url") or "")
    bank = (
        f'<p><a class="button primary" href="{_e(pay_url)}" target="_blank" '
        f'rel="noopener noreferrer">{_e(t(lang, "transfer_open_bank"))}</a></p>'
        if pay_url.startswith(("https://", "http://"))
        else ""
    )
    return (
        f"<h1>{_e(t(lang, 'transfer_title', amount=money))}</h1>"
        + f'<dl class="details">{listed}</dl>'
        + f'<p class="note">{_e(t(lang, "transfer_note"))}</p>'
        + due
        + bank
        + f'<div class="status" role="status">{_spinner()}</div>'
    )


def succeeded(lang: str, amount: int, currency: str, return_url: str) -> str:
    money = format_amount(amount, currency, lang)
    return (
        f'<div class="done ok" role="status"><h1>{_e(t(lang, "succeeded_title"))}</h1>'
        f"<p>{_e(t(lang, 'succeeded_text', amount=money))}</p>"
        f'<p class="hint">{_e(t(lang, "returning"))}</p></div>' + _back_link(lang, return_url)
    )


def notice(lang: str, title_key: str, text_key: str | None, return_url: str | None) -> str:
    return (
        f"<h1>{_e(t(lang, title_key))}</h1>"
        + (f"<p>{_e(t(lang, text_key))}</p>" if text_key else "")
        + (_back_link(lang, return_url) if return_url else "")
    )


# -- cash-out -----------------------------------------------------------------------------------


def _destination_label(lang: str, destination: Destination) -> str:
    shown = destination.shown
    if destination.method == "card":
        return t(lang, "dest_card", scheme=shown.get("scheme", ""), last4=shown.get("last4", ""))
    if destination.method == "mobile_banking":
        return t(lang, "dest_mobile_banking", phone=shown.get("phone", ""))
    if destination.method == "ewallet":
        return t(lang, "dest_ewallet", account=shown.get("account", ""))
    return t(lang, "dest_bank_transfer")


def withdraw_form(
    *,
    lang: str,
    csrf: str,
    base: str,
    offer: PayoutOffer,
    currency: str,
    low: int,
    fixed: int | None,
    error: str | None,
    error_values: Mapping[str, str] | None,
    return_url: str,
) -> str:
    def money(value: int) -> str:
        return format_amount(value, currency, lang)

    head = (
        f"<h1>{_e(t(lang, 'title_withdrawal'))}</h1>"
        f'<p class="balance">{_e(t(lang, "available", amount=money(offer.available)))}</p>'
        + _alert(lang, error, values=error_values)
    )
    if not offer.destinations:
        return (
            head
            + f'<p class="empty">{_e(t(lang, "nothing_to_withdraw"))}</p>'
            + _back_link(lang, return_url)
        )
    high = max(d.max_amount for d in offer.destinations)
    loop = (
        f'<p class="note">{_e(t(lang, "closed_loop", amount=money(offer.loop_total)))}</p>'
        if offer.loop_total
        else ""
    )
    options = "".join(
        f'<li><label class="dest"><input type="radio" name="destination" value="{_e(d.id)}"'
        f' data-high="{d.max_amount}"' + (" checked" if index == 0 else "") + ">"
        f'<span class="m-name">{_e(_destination_label(lang, d))}</span>'
        f'<span class="m-hint">{_e(t(lang, "dest_up_to", amount=money(d.max_amount)))}</span>'
        "</label></li>"
        for index, d in enumerate(offer.destinations)
    )
    iban = ""
    if any(d.typed for d in offer.destinations):
        iban = (
            '<div class="field iban"><label for="iban">' + _e(t(lang, "iban")) + "</label>"
            '<input id="iban" name="iban" autocomplete="off" maxlength="34" spellcheck="false" '
            'autocapitalize="characters" aria-describedby="iban-hint">'
            f'<p id="iban-hint" class="hint">{_e(t(lang, "iban_hint"))}</p></div>'
        )
    amount_value = _major(fixed, lang) if fixed is not None else ""
    hint = t(lang, "amount_range", min=money(low), max=money(high))
    return (
        head
        + loop
        + f'<form method="post" action="{_e(base)}/withdraw" class="stack" id="withdraw-form">'
        + _csrf(csrf)
        + f"<fieldset><legend>{_e(t(lang, 'withdraw_where'))}</legend>"
        f'<ul class="methods">{options}</ul></fieldset>'
        + iban
        + '<div class="field"><label for="wd-amount">'
        + _e(t(lang, "amount"))
        + "</label>"
        f'<input id="wd-amount" name="amount" inputmode="decimal" autocomplete="off" required '
        f'value="{_e(amount_value)}"'
        + (" readonly" if fixed is not None else "")
        + f' aria-describedby="wd-amount-hint"><p id="wd-amount-hint" class="hint">{_e(hint)}</p>'
        "</div>" + f'<button type="submit" class="primary">{_e(t(lang, "withdraw"))}'
        "</button></form>" + _back_link(lang, return_url)
    )


def withdrawal_status(
    *,
    lang: str,
    status: str,
    amount: int,
    currency: str,
    destination: str,
    eta: datetime | None,
    return_url: str,
) -> str:
    money = format_amount(amount, currency, lang)
    lines = [f"<p>{_e(t(lang, 'wd_to', destination=destination))}</p>"]
    if status in ("pending", "in_review", "approved", "processing"):
        lines.append(f"<p>{_e(t(lang, 'wd_hold', amount=money))}</p>")
        if eta is not None:
            lines.append(f"<p>{_e(t(lang, 'wd_eta', time=local_time(eta, lang)))}</p>")
    elif status in ("rejected", "failed", "cancelled"):
        lines.append(f"<p>{_e(t(lang, 'wd_released'))}</p>")
    waiting = status in ("pending", "in_review", "approved", "processing")
    kind = "ok" if status == "paid" else ("bad" if not waiting else "")
    return (
        f"<h1>{_e(t(lang, 'title_withdrawal'))}</h1>"
        f'<div class="done {kind}" role="status">'
        + (_spinner() if waiting else "")
        + f'<h2 class="wd-status" data-status="{_e(status)}">{_e(t(lang, "wd_" + status))}</h2>'
        f'<p class="amount">{_e(money)}</p>'
        + "".join(lines)
        + "</div>"
        + _back_link(lang, return_url)
    )


def destination_text(lang: str, method: str, destination: Mapping[str, Any]) -> str:
    """A withdrawal's destination as recorded, in words (card as scheme and last four)."""
    if method == "card":
        card = destination.get("card") or {}
        return t(
            lang,
            "dest_card",
            scheme=str(card.get("scheme", "")).title(),
            last4=str(card.get("last4", "")),
        )
    if method == "mobile_banking":
        return t(lang, "dest_mobile_banking", phone=str(destination.get("phone", "")))
    if method == "ewallet":
        return t(lang, "dest_ewallet", account=str(destination.get("wallet_account", "")))
    iban = str(destination.get("iban", ""))
    return f"IBAN {iban[:4]}…{iban[-4:]}" if iban else t(lang, "dest_bank_transfer")


def assets() -> Iterable[str]:
    return ASSETS.keys()
