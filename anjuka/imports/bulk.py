"""Writing a batch in bulk: ids drawn ahead and ``COPY`` on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from anjuka.core.db import db


def on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def next_ids(table: str, count: int) -> list[int]:
    """``count`` new ids from ``table``'s sequence, in one statement (PostgreSQL)."""
    return list(
        db.session.scalars(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table, "n": count},
        )
    )


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``COPY`` the rows into ``table`` in the session's transaction (PostgreSQL)."""
    raw = db.session.connection().connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"  # noqa: S608 - fixed names
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)
