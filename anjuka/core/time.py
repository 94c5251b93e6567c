"""Time: the registry stores UTC instants and reasons in its own calendar days.

Every calendar computation (today, the start of a day, deadlines, validity,
grace, statistics by day) goes through this module, in the registry's zone
(``ANJUKA_TIMEZONE``, default Asia/Shanghai), never UTC's nor the host's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

#: Where the registry's calendar days are counted unless configured otherwise.
DEFAULT_TIMEZONE = "Asia/Shanghai"


def utcnow() -> datetime:
    """The current UTC time, timezone-aware."""
    return datetime.now(UTC)


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def registry_zone() -> ZoneInfo:
    """The registry's time zone (``Config.timezone`` inside an app, else the default)."""
    from flask import current_app, has_app_context

    name = DEFAULT_TIMEZONE
    if has_app_context():
        name = current_app.extensions["anjuka_config"].timezone
    return _zone(name)


def local_date(moment: datetime) -> date:
    """The registry's calendar day at the instant ``moment`` (naive means UTC)."""
    return as_utc(moment).astimezone(registry_zone()).date()


def local_today() -> date:
    """Today's date where the registry is.

    Arrival and departure dates are local calendar days: between midnight
    and 08:00 in China the UTC date is still yesterday, and an arrival
    "today" must not read as one in the future.
    """
    return local_date(utcnow())


def start_of_day(day: date) -> datetime:
    """The UTC instant at which the registry's calendar day ``day`` begins."""
    return datetime.combine(day, time.min, tzinfo=registry_zone()).astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime read back from SQLite as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_working_days(start: date, days: int) -> date:
    """``start`` plus ``days`` working days (Monday to Friday).

    Public holidays are not modelled: the deadline is never shorter than the
    rule intends, at worst a day or two longer around a holiday.
    """
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current
