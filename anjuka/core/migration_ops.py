"""Schema changes the migrations share, safe on a registry in use on SQLite too.

Table and column names here come from the migrations themselves, never from input
(hence the S608 waivers).

SQLite changes a CHECK only by copying the table, and with foreign keys on it
refuses to drop the old copy while other rows point at it; it drops a plain
column in place (since 3.35), which Alembic's batch mode would do by copying.
"""

from __future__ import annotations

from alembic import op


def replace_check(
    table: str, name: str, sqltext: str, *, referenced_by: tuple[str, ...] = ()
) -> None:
    """Swap CHECK ``name`` (already in its ``ck_`` form) of ``table`` for ``sqltext``.

    On SQLite the rows of ``referenced_by`` tables, which point at ``table``,
    are held aside in temporary tables while the table is copied (its rows
    keep their ids), then put back.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for dependent in referenced_by:
            op.execute(f"CREATE TEMP TABLE held_{dependent} AS SELECT * FROM {dependent}")  # noqa: S608
            op.execute(f"DELETE FROM {dependent}")  # noqa: S608
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(name, type_="check")
        batch.create_check_constraint(name, sqltext)
    if sqlite:
        for dependent in referenced_by:
            op.execute(f"INSERT INTO {dependent} SELECT * FROM held_{dependent}")  # noqa: S608
            op.execute(f"DROP TABLE held_{dependent}")


def drop_columns(table: str, *columns: str) -> None:
    """Drop plain columns (no index or constraint on them) in place, on every backend."""
    for column in columns:
        op.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
