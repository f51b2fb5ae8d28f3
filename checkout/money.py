"""Amounts as players read them, from integer minor units only (no floats anywhere).

Tenge has two minor digits (tiyn); amounts in practice are whole tenge, so the tiyn are shown
only when there are some: `5 000 ₸`, `5 000,50 ₸` (Kazakh and Russian), `5,000.50 ₸` (English).
"""

import re

NBSP = "\u00a0"
NARROW_NBSP = "\u202f"
SIGNS = {"KZT": "₸"}
# ISO 4217 minor digits of the currencies the platform may be configured for.
MINOR_DIGITS = {"KZT": 2, "USD": 2, "EUR": 2, "RUB": 2, "UZS": 2, "KGS": 2}


def minor_digits(currency: str) -> int:
    return int(MINOR_DIGITS.get(currency, 2))


def format_amount(amount_minor: int, currency: str, lang: str) -> str:
    digits = minor_digits(currency)
    scale: int = 10**digits
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), scale)
    group = "," if lang == "en" else NARROW_NBSP
    decimal = "." if lang == "en" else ","
    grouped = f"{whole:,}".replace(",", group)
    text = grouped if fraction == 0 else f"{grouped}{decimal}{fraction:0{digits}d}"
    return f"{sign}{text}{NBSP}{SIGNS.get(currency, currency)}"


_AMOUNT = re.compile(r"^\s*(\d{1,13})(?:[.,](\d{1,2}))?\s*$")


def parse_major(text: str, currency: str) -> int | None:
    """`5000`, `5 000`, `5000,50` or `5000.5` typed by a player, in minor units; None if it is
    not an amount. Spaces between thousands are allowed; anything else is refused."""
    cleaned = text.replace(NBSP, "").replace(NARROW_NBSP, "").replace(" ", "")
    found = _AMOUNT.match(cleaned)
    if found is None:
        return None
    digits = minor_digits(currency)
    whole = int(found.group(1))
    fraction_text = (found.group(2) or "").ljust(digits, "0")
    if len(fraction_text) > digits:
        return None
    fraction = int(fraction_text) if digits else 0
    scale: int = 10**digits
    return whole * scale + fraction
