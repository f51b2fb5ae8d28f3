"""Providers' own words (statuses, decline reasons, integer amounts) in ours.

Every dialect adapter reads its answers through these, so an unknown status or a malformed
amount fails the same way everywhere: as an answer we cannot read (`invalid_response`).
"""

from collections.abc import Mapping


def translated(value: object, table: Mapping[str, str], *, what: str) -> str:
    """A provider's status in our vocabulary; one we do not know is an unreadable answer."""
    if not isinstance(value, str) or value not in table:
        raise KeyError(f"unknown {what} {value!r}")
    return table[value]


def reason_code(value: object, table: Mapping[str, str]) -> str | None:
    """A provider's decline reason as our code; unknown ones pass through, lower-cased."""
    if value is None:
        return None
    return table.get(str(value), str(value).lower())


def whole_minor(value: object, *, field: str) -> int:
    """An amount in minor units must be a non-negative JSON integer (not 1.5, "100" or true)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer, got {value!r}")
    return value
