"""Databases of a test's own: a SQLite file, or a PostgreSQL database created and dropped.

The PostgreSQL server is ``ANJUKA_TEST_PG_URL`` (default: the local server).
When it cannot be reached, the test fails: it never skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from flask import Flask

PG_ADMIN_URL = os.environ.get("ANJUKA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def throwaway_database(backend: str, workdir: Path, prefix: str = "anjuka") -> Iterator[str]:
    """Yield the URL of an empty database for ``backend``; drop it afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'{prefix}.sqlite3'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def app_on_own_database(workdir: Path, prefix: str, *, pool_size: int) -> Iterator[Flask]:
    """An app with its tables on a PostgreSQL database of its own, for races.

    ``pool_size`` connections, one for each racing thread and a few more;
    the database is dropped afterwards.
    """
    from anjuka import create_app
    from anjuka.config import Config
    from anjuka.core.db import db

    with throwaway_database("postgresql", workdir, prefix) as url:
        app = create_app(
            Config(instance_path=workdir, database_url=url, testing=True, db_pool_size=pool_size)
        )
        try:
            with app.app_context():
                db.create_all()
                db.session.remove()
            yield app
        finally:
            with app.app_context():
                db.engine.dispose()
