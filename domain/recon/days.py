"""Business days: a provider's day is a calendar day in Asia/Almaty, whatever the server's zone.

The zone is loaded once at import (this package is passed through the workflow sandbox), so a
workflow can name "yesterday" without reading the zone database during a run.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Almaty")
BUSINESS_TZ_NAME = "Asia/Almaty"


def business_day(moment: datetime) -> date:
    """The Almaty calendar day of an aware moment."""
    return moment.astimezone(BUSINESS_TZ).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of the Almaty day, as UTC moments (what `created_at` columns compare with)."""
    start = datetime.combine(day, time.min, tzinfo=BUSINESS_TZ)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=BUSINESS_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


def previous_business_day(moment: datetime, *, days_back: int = 1) -> date:
    return business_day(moment) - timedelta(days=days_back)


def add_business_days(day: date, count: int) -> date:
    """`count` working days (Monday to Friday) after `day`; a weekend day first moves to the
    Monday after it. What a bank's "within N business days" names."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day
