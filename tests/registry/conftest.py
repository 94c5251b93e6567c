"""Fixtures of the registry tests: a small two-area world, fresh databases, the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from throwaway_db import throwaway_database


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--backend sqlite`` leaves out the PostgreSQL-only tests (deselected, not skipped)."""
    chosen = config.getoption("--backend")
    if not chosen or "postgresql" in chosen:
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("postgres") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@dataclass
class World:
    """Two sibling areas under one root, an estate and a dwelling in each, a resident in each.

    The users are scoped to area ``RA`` / estate ``ea``; everything under
    ``RB`` is a foreign scope for them.
    """

    users: dict[str, dict]
    ea: int
    eb: int
    da: int
    db: int
    ra: dict  # the arrival JSON of the resident in da
    rb: dict
    number_a: str
    number_b: str
    arrive_in: Callable[..., dict] = field(repr=False)
    new_number: Callable[..., str] = field(repr=False)
    #: A second dwelling in RB, for transfers that touch nothing of RA.
    db2: int = 0
    client: object = field(default=None, repr=False)

    def headers(self, role: str) -> dict:
        return self.users[role]["headers"]


@pytest.fixture
def world(
    client, create_area, create_estate, create_dwelling, create_user, arrive, new_id_number
) -> World:
    create_area("R")
    create_area("RA", "R")
    create_area("RB", "R")
    ea = create_estate("RA", "Estate A")
    eb = create_estate("RB", "Estate B")
    da = create_dwelling("RA", usable=400, rooms=40, estate_id=ea)
    db_ = create_dwelling("RB", usable=400, rooms=40, estate_id=eb)
    db2 = create_dwelling("RB", usable=400, rooms=40, estate_id=eb)
    users = {
        "admin": create_user("admin"),
        "supervisor": create_user("supervisor", ["area:RA"]),
        "officer": create_user("officer", ["area:RA"]),
        "manager": create_user("manager", [f"estate:{ea}"]),
        "auditor": create_user("auditor"),
    }

    def arrive_in(dwelling_id: int, number: str | None = None) -> dict:
        response = arrive(users["admin"]["headers"], dwelling_id, number=number)
        assert response.status_code == 201, response.json
        return response.json

    number_a, number_b = new_id_number(), new_id_number()
    return World(
        users=users,
        ea=ea,
        eb=eb,
        da=da,
        db=db_,
        ra=arrive_in(da, number_a),
        rb=arrive_in(db_, number_b),
        number_a=number_a,
        number_b=number_b,
        arrive_in=arrive_in,
        new_number=new_id_number,
        db2=db2,
        client=client,
    )


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (no tables): a SQLite file or a new PostgreSQL database."""
    with throwaway_database(backend, tmp_path, "anjuka_fresh") as url:
        yield url
