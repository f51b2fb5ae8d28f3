"""Money on the wire as decimal strings ("5000.10" tenge) <-> integer minor units (500010 tiyn).

Exact: integer arithmetic on the digits, never floats. A string with more than two decimals,
a sign, an exponent or anything but digits and one point is refused, not rounded.
"""

import re

_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,17})(?:\.([0-9]{1,2}))?")


class InvalidAmount(ValueError):
    pass


def to_decimal_string(minor: int) -> str:
    """500010 -> "5000.10"."""
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0:
        raise InvalidAmount(f"not a non-negative integer amount: {minor!r}")
    return f"{minor // 100}.{minor % 100:02d}"


def from_decimal_string(text: object) -> int:
    """ "5000.10" -> 500010; "1.005" (more than two decimals) is refused."""
    if not isinstance(text, str):
        raise InvalidAmount(f"amount must be a decimal string, got {type(text).__name__}")
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidAmount(f"not an amount with at most 2 decimals: {text!r}")
    whole, fraction = match.group(1), match.group(2) or ""
    return int(whole) * 100 + int(fraction.ljust(2, "0"))
