"""Column helpers shared by the domain models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from anjuka.core.time import as_utc


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


def sql_in(column: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b')`` for a CHECK or a partial index, from an enum's members.

    The members' order is kept, so the SQL stays what the migrations wrote.
    """
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"
