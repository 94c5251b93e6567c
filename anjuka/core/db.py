"""The database: SQLAlchemy, the model base and its naming convention, migrations.

Created once and bound in the application factory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase

from anjuka.config import Config
from anjuka.core import replica
from anjuka.core.replica import RoutingSession

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class Base(DeclarativeBase):
    """Declarative base with the naming convention Alembic relies on."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


# The session class routes a replicated view's plain reads (``anjuka.core.replica``).
db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})

if TYPE_CHECKING:
    # A type checker cannot take an instance's attribute (``db.Model``) for a
    # base class; what Flask-SQLAlchemy makes of ``Base`` is ``Base`` to it.
    Model = Base
else:
    Model = db.Model
migrate = Migrate(directory=str(MIGRATIONS_DIR), compare_type=True)


M = TypeVar("M", bound=Base)


def insert_unless_taken(
    new: M, *, index: Sequence[str], index_where: sa.ColumnElement[bool] | None = None
) -> M | None:
    """Insert ``new`` in one statement, or nothing when the unique ``index`` already holds it.

    ``INSERT … ON CONFLICT (index) DO NOTHING RETURNING …``: the database
    decides, as a savepoint around a plain insert would, in one statement
    instead of three and without aborting the transaction. PostgreSQL makes
    an insert that meets a concurrent one of the same key wait for the other
    transaction, then inserts or yields. The row inserted comes back as a
    new persistent object (``new`` itself stays transient); None when the key
    was taken. ``new`` carries its column values (foreign keys as ids, not
    relationships); column defaults apply as for any insert.
    """
    model = type(new)
    values = {
        attr.key: new.__dict__[attr.key]
        for attr in sa.inspect(model).column_attrs
        if attr.key in new.__dict__
    }
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(index), index_where=index_where)
        .returning(model)
    )
    return db.session.scalars(statement).one_or_none()


def locked_batches(
    model: type[M], *criteria: sa.ColumnElement[bool], batch: int
) -> Iterator[Sequence[M]]:
    """The rows of ``model`` that meet ``criteria``, ``batch`` at a time in id order.

    Each batch is read afresh and locked (``FOR UPDATE``) when it is asked
    for, so a writer meanwhile waits for it rather than being overwritten,
    and the next batch starts after the last id of this one: a pass that
    rewrites rows can flush or commit between batches, and one that stopped
    is resumed by running it again.
    """
    mapper = sa.inspect(model)
    key = mapper.primary_key[0]
    attribute = mapper.get_property_by_column(key).key
    last_id = 0
    while True:
        rows = db.session.scalars(
            sa.select(model)
            .where(key > last_id, *criteria)
            .order_by(key)
            .limit(batch)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
        if not rows:
            return
        last_id = getattr(rows[-1], attribute)
        yield rows


def _sqlite_serialised_writes(engine: sa.Engine) -> None:
    """Make SQLite take its write lock at BEGIN.

    With pysqlite's lazy transactions two desks could both count the
    occupants of a dwelling and then both write; BEGIN IMMEDIATE makes the
    second wait, which gives the embedded default the same guarantee that
    row locks give on PostgreSQL.
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _private_instance(config: Config) -> None:
    """The instance folder (keys, the SQLite file) is the owner's only (0700)."""
    config.instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config.instance_path, 0o700)


def _private_sqlite_file(config: Config) -> None:
    """An SQLite file is the owner's only (0600), created so before SQLite opens it.

    SQLite creates its -wal and -shm files with the database file's mode, so
    they follow. An existing file is only tightened, never opened: closing any
    descriptor of a file drops this process's POSIX locks on it, SQLite's
    included.
    """
    url = sa.engine.make_url(config.resolved_database_url)
    if url.database and url.database != ":memory:":
        path = Path(url.database)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)


def init_app(app: Flask, config: Config) -> None:
    """Bind the database (and its replica, if any) and the migrations to ``app``."""
    _private_instance(config)
    if config.resolved_database_url.startswith("sqlite"):
        _private_sqlite_file(config)
    db.init_app(app)
    replica.init_app(app, config)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _sqlite_serialised_writes(db.engine)
    migrate.init_app(app, db, render_as_batch=True)
