"""Helpers shared by the registry tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import os
import sys
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("ANJUKA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ANJUKA_COMMAND = str(Path(sys.executable).with_name("anjuka"))


def today() -> date:
    """The registry's calendar day (its configured time zone), as the server sees it."""
    from anjuka.core.time import local_today

    return local_today()


def days_before(days: int) -> str:
    """The ISO date ``days`` registry days ago."""
    return (today() - timedelta(days=days)).isoformat()


def count_rows(model: type) -> int:
    """Rows of ``model``'s table, as the current session sees them."""
    from anjuka.core.db import db

    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def command_env(database_url: str, instance: Path) -> dict[str, str]:
    """The environment an operator's shell would give the ``anjuka`` command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANJUKA_", "FLASK_"))}
    env["ANJUKA_DATABASE_URL"] = database_url
    env["ANJUKA_INSTANCE_PATH"] = str(instance)
    return env


def assert_error_shape(response, status: int, code: str | None = None) -> dict:
    """The contract's error body: status, stable machine code, message."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict), body
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"].replace("_", "").isalpha()
    assert body["error"] == body["error"].lower()
    assert isinstance(body["message"], str)
    assert body["message"]
    if code is not None:
        assert body["error"] == code, body
    return body
