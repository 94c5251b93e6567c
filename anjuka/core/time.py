"""Time: the registry stores UTC and reasons in local calendar days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

#: Where the registry's calendar days are counted unless configured otherwise.
DEFAULT_TIMEZONE = "Asia/Shanghai"


def utcnow() -> datetime:
    """The current UTC time, timezone-aware."""
    return datetime.now(UTC)


def local_today() -> date:
    """Today's date where the registry is (``Config.timezone``).

    Arrival and departure dates are local calendar days: between midnight
    and 08:00 in China the UTC date is still yesterday, and an arrival
    "today" must not read as one in the future.
    """
    from flask import current_app, has_app_context

    name = DEFAULT_TIMEZONE
    if has_app_context():
        name = current_app.extensions["anjuka_config"].timezone
    return datetime.now(ZoneInfo(name)).date()


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
