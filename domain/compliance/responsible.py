"""Responsible gaming beyond deposit limits: a cool-off the player sets, and the windows the
casino's front end shows in its reality checks.

A cool-off is a short break (24 hours to 6 weeks) the player takes at once; like a
self-exclusion it can be extended but never shortened or lifted. It applies to the person (the
IIN) across every account, as the limits and the self-exclusion do.
"""

from datetime import datetime, timedelta

COOL_OFF_MIN = timedelta(hours=24)
COOL_OFF_MAX = timedelta(weeks=6)
# Reality checks: what the player deposited and lost over these windows.
REALITY_WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def cool_off_problem(until: datetime, *, now: datetime) -> str | None:
    """Why a cool-off ending at `until` cannot be taken now, or None."""
    length = until - now
    if length < COOL_OFF_MIN - timedelta(minutes=1):  # a request's own latency is not a reason
        return "a cool-off lasts at least 24 hours"
    if length > COOL_OFF_MAX + timedelta(minutes=1):
        return "a cool-off lasts at most 6 weeks (longer breaks are a self-exclusion)"
    return None
