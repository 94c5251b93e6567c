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
