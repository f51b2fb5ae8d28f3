"""The payout deadline for winnings (Law No. 219-III Art. 12 p. 4): winnings are paid no later
than 3 calendar days after the result.

The platform does not see the bet's result; a withdrawal request is the player claiming their
winnings, so the clock starts at the request. The day of the request does not count: the
deadline is the end of the third calendar day after it, in Kazakhstan time (UTC+5, one zone for
the whole country since 1 March 2024). An alert goes to the operators a day before; at the
deadline the withdrawal is escalated.

PostgreSQL computes the same on insert (migration 0150, trigger `withdrawals_payout_deadline`),
so every withdrawal carries its deadline (`withdrawals.payout_deadline`); this module is the
formula's reference and is tested against the trigger.
"""

from datetime import UTC, datetime, time, timedelta, timezone
from typing import Literal

KAZAKHSTAN = timezone(timedelta(hours=5), "Asia/Almaty")
PAYOUT_DAYS = 3
WARN_BEFORE = timedelta(hours=24)

DeadlineState = Literal["on_time", "due_soon", "overdue", "paid_in_time", "paid_late", "closed"]


def payout_deadline(requested_at: datetime) -> datetime:
    """The end of the third calendar day after the request, Kazakhstan time (as UTC)."""
    local_day = requested_at.astimezone(KAZAKHSTAN).date()
    end = datetime.combine(local_day + timedelta(days=PAYOUT_DAYS + 1), time.min, KAZAKHSTAN)
    return end.astimezone(UTC)


def deadline_state(
    deadline: datetime | None, *, status: str, paid_at: datetime | None, now: datetime
) -> DeadlineState | None:
    """Where a withdrawal stands against its deadline."""
    if deadline is None:
        return None
    if status == "paid":
        if paid_at is None:
            return None
        return "paid_in_time" if paid_at <= deadline else "paid_late"
    if status in ("rejected", "cancelled", "failed"):
        return "closed"
    if now >= deadline:
        return "overdue"
    if now >= deadline - WARN_BEFORE:
        return "due_soon"
    return "on_time"
