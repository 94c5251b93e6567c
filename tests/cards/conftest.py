"""Fixtures of the card tests: a desk with a reader, and a daemon played in-process."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from card_helpers import Daemon, Desk

_names = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` run on PostgreSQL only: their SQLite variant is deselected."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_sqlite = callspec is not None and callspec.params.get("backend") == "sqlite"
        in_cards = "/tests/cards/" in str(item.path)
        (drop if in_cards and on_sqlite and item.get_closest_marker("postgres") else keep).append(
            item
        )
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def make_reader(app) -> Callable[..., tuple[int, str]]:  # type: ignore[no-untyped-def]
    """Factory: ``make_reader(area_code=None, estate_id=None)`` -> (reader id, token)."""
    from anjuka.cards.readers import create_reader
    from anjuka.core.db import db

    def make(area_code: str | None = None, estate_id: int | None = None, name: str | None = None):  # type: ignore[no-untyped-def]
        reader, token = create_reader(
            name or f"desk-{next(_names)}", area_code=area_code, estate_id=estate_id
        )
        db.session.flush()
        reader_id = reader.id
        db.session.commit()
        return reader_id, token

    return make


@pytest.fixture
def desk(
    client, create_area, create_estate, create_dwelling, create_user, arrive, make_reader
) -> Desk:
    area = create_area(f"C{next(_names)}")["code"]
    estate = create_estate(area)
    dwelling = create_dwelling(area, usable=400, rooms=40, estate_id=estate)
    manager = create_user("manager", [f"estate:{estate}"])
    reader_id, token = make_reader(estate_id=estate)

    def arrive_here(dwelling_id: int = dwelling, **extra: object) -> dict:
        response = arrive(manager["headers"], dwelling_id, **extra)
        assert response.status_code == 201, response.json
        return response.json

    def make_daemon(reader_id: int = reader_id, token: str = token, **kw: object) -> Daemon:
        return Daemon(client, reader_id, token, **kw)  # type: ignore[arg-type]

    return Desk(client, area, estate, dwelling, manager, make_daemon(), arrive_here, make_daemon)
