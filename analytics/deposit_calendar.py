"""The calendar of the monthly deposit: a month's bounds in the site's time, its due date, and
which months the 40-day clock watches on a given day (registry-deposit-and-cbam reference §1).

A month is the site's calendar month ([site] timezone). Its deposit is due 40 natural days
after its last day: November 2026 (30 days) is due 2027-01-09, December 2026 on 2027-02-09.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DUE_DAYS = 40


def month_of(text: str) -> tuple[int, int]:
    """(year, month) of "YYYY-MM". Raises ValueError naming the text otherwise."""
    try:
        y, m = (int(x) for x in text.split("-"))
    except ValueError:
        raise ValueError(f"{text!r} is not a month YYYY-MM") from None
    if len(text) != 7 or not 1 <= m <= 12:
        raise ValueError(f"{text!r} is not a month YYYY-MM")
    return y, m


def due_date(month: str) -> date:
    """The month's last day (site calendar) + 40 days."""
    y, m = month_of(month)
    return date(y, m, calendar.monthrange(y, m)[1]) + timedelta(days=DUE_DAYS)


def month_bounds_s(month: str, tz: str) -> tuple[float, float]:
    """[start, end) of the month in epoch seconds: local midnight of its first day and of the next month's."""
    y, m = month_of(month)
    zone = ZoneInfo(tz)
    start = datetime(y, m, 1, tzinfo=zone)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=zone)
    return start.timestamp(), end.timestamp()


def site_date(epoch_s: float, tz: str) -> date:
    """The site's calendar date at an instant."""
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).date()


def watched_months(today: date, days_before_due: int, days_after_due: int) -> list[str]:
    """The months whose deposit clock runs on `today`: due date - days_before_due <= today <=
    due date + days_after_due, oldest first. With days_before_due <= 40 each has ended."""
    out: list[str] = []
    # the month whose last day is 40 + days_after_due days back, up to the one due days_before_due from now
    first = today - timedelta(days=DUE_DAYS + days_after_due)
    y, m = first.year, first.month
    while True:
        month = f"{y:04d}-{m:02d}"
        due = due_date(month)
        if due - timedelta(days=days_before_due) > today:
            return out
        if today <= due + timedelta(days=days_after_due):
            out.append(month)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
