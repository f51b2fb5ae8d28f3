"""Business days: a provider's day is a calendar day in Asia/Almaty, whatever the server's zone.

The zone is loaded once at import (this package is passed through the workflow sandbox), so a
workflow can name "yesterday" without reading the zone database during a run.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

BUSINESS_TZ = ZoneInfo("Asia/Almaty")
BUSINESS_TZ_NAME = "Asia/Almaty"
# Kazakhstan's public holidays (with the weekday days off moved in their place), kept by the
# `holidays` package; banks do not settle on them.
KZ_HOLIDAYS = holidays.country_holidays("KZ")


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


def is_business_day(day: date) -> bool:
    """Monday to Friday and not a public holiday in Kazakhstan."""
    return day.weekday() < 5 and day not in KZ_HOLIDAYS


def add_business_days(day: date, count: int) -> date:
    """`count` working days after `day`; a day off first moves to the next working day. What a
    bank's "within N business days" names."""
    while not is_business_day(day):
        day += timedelta(days=1)
    while count > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            count -= 1
    return day
