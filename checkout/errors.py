"""Refusal and decline codes, in the player's words: a code is never shown on the page.

Two sources: the API's refusal of the request itself (a `Problem` code from the deposit or
withdrawal code, e.g. `card_expired`, `self_excluded`), and the outcome a deposit ended with
(`status_reason` such as `provider_declined:insufficient_funds`, `risk:...`,
`expired:player_did_not_finish`). Each maps to a message key of `checkout.i18n`; anything not
listed becomes "try another method". Responsible-gaming refusals are `careful`: worded with care
and shown with a link to the operator's help.
"""

from dataclasses import dataclass

from domain.routing import unified_error_code

CAREFUL = frozenset({"err_limit", "err_self_excluded"})

_PROBLEMS = {
    "invalid_card_number": "err_card_number",
    "invalid_card_details": "err_card_number",
    "card_expired": "err_card_expired",
    "invalid_cvc": "err_cvc",
    "card_rejected": "err_card_rejected",
    "provider_error": "err_unavailable",
    "orchestrator_unavailable": "err_unavailable",
    "provider_unavailable": "err_unavailable",
    "method_unavailable": "err_method_unavailable",
    "unsupported_currency": "err_method_unavailable",
    "self_excluded": "err_self_excluded",
    "deposit_limit_exceeded": "err_limit",
    "invalid_details": "err_details",
    "validation_error": "err_details",
    "invalid_destination": "err_details",
    "amount_out_of_range": "err_amount",
    "insufficient_funds": "err_balance",
    "invalid_iban": "err_iban",
    "invalid_phone": "err_phone",
    "destination_not_owned": "err_not_owned",
    "card_not_owned": "err_not_owned",
    "card_not_payable": "err_card_not_payable",
    "scheme_not_accepted": "check_scheme",
    "invalid_expiry": "check_expiry",
    "form_expired": "form_expired",
    "attempts_used": "attempts_used",
}

# Unified decline codes (domain.routing.unified_error_code) of a provider's refusal.
_DECLINES = {
    "insufficient_funds": "err_insufficient_funds",
    "expired_card": "err_card_expired",
    "limit_exceeded": "err_bank_limit",
    "authentication_failed": "err_3ds",
    "declined_by_payer": "err_cancelled",
    "payer_not_found": "err_payer_not_found",
    "do_not_honor": "err_bank_declined",
    "expired": "err_timeout",
    "provider_unavailable": "err_try_another",
}


@dataclass(frozen=True)
class Shown:
    key: str
    careful: bool


def _shown(key: str) -> Shown:
    return Shown(key, key in CAREFUL)


def for_problem(code: str) -> Shown:
    """What the player reads when the request was refused with this code."""
    return _shown(_PROBLEMS.get(code, "err_generic"))


def for_outcome(status: str, reason: str | None) -> Shown | None:
    """What the player reads about a deposit that ended unpaid; None while it may still pay."""
    if status not in ("failed", "declined", "expired"):
        return None
    code, _, detail = (reason or "").partition(":")
    if code == "risk" or status == "declined":
        return _shown("err_risk")
    if status == "expired":
        return _shown("err_timeout")
    if code == "provider_declined":
        unified = unified_error_code(detail.split(",")[0] or None)
        return _shown(_DECLINES.get(unified or "", "err_try_another"))
    return _shown("err_try_another")


def known(key: str) -> bool:
    """A key the page may show from the session's stored `last_error`."""
    return key in set(_PROBLEMS.values()) | set(_DECLINES.values()) | {"err_try_another"}
