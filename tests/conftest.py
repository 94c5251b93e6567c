"""Fixtures: an app per database backend, factories for registry records.

Every test that takes ``app`` (directly or through a factory) runs on SQLite
and on PostgreSQL. The PostgreSQL server is ``ANJUKA_TEST_PG_URL`` (default:
the local server); each test session creates its own database there and
drops it afterwards. A PostgreSQL test that cannot reach the server fails.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from throwaway_db import throwaway_database

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.time import local_today

PG_ADMIN_URL = os.environ.get("ANJUKA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="run database tests on this backend only (repeatable; default: both)",
    )
    parser.addoption(
        "--hardware-reader",
        metavar="NAME",
        help="also run the tests that need a real PC/SC reader with a card on it",
    )


def pytest_configure(config: pytest.Config) -> None:
    reader = config.getoption("--hardware-reader", default=None)
    if reader:
        os.environ["ANJUKA_HARDWARE_READER"] = reader


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the vpcd readers' tests on one worker; leave out the real-reader tests.

    The machine has one pcscd with two virtual readers: under pytest-xdist
    (``--dist loadgroup``) every test that uses them runs in one worker, so
    no worker stops the pcscd it started while another still needs it.
    The real-reader tests are deselected unless a reader is named, never
    skipped.
    """
    for item in items:
        if "pcscd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("vpcd"))
        _name_by_operation(item)
    _refuse_twin_ids(items)
    if os.environ.get("ANJUKA_HARDWARE_READER"):
        return
    kept = [item for item in items if item.get_closest_marker("hardware") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def _name_by_operation(item: pytest.Item) -> None:
    """Give each schemathesis test (one per API operation) a node id of its own.

    schemathesis names its items ``test_admin[GET /api/v1/areas]``, but under
    pytest 9 they all get the node id ``test_admin``. pytest-xdist keys its
    work by node id and would run one operation of each and drop the rest,
    and the slowest-tests report could not tell them apart.
    """
    if type(item).__name__ != "SchemathesisFunction" or item.nodeid.endswith("]"):
        return
    from _pytest.nodeid import NodeId  # pytest 9's structured node id

    item._id = NodeId.parse(f"{item.parent.nodeid}::{item.name}")  # type: ignore[union-attr]


def _refuse_twin_ids(items: list[pytest.Item]) -> None:
    """Two tests with one node id: pytest-xdist would silently run only one."""
    counted = Counter(item.nodeid for item in items)
    twins = sorted(nodeid for nodeid, count in counted.items() if count > 1)
    if twins:
        raise pytest.UsageError(f"{len(twins)} node ids name more than one test: {twins[:5]}")


#: Instants on both sides of the registry's midnight (Asia/Shanghai is UTC+8),
#: each seen from a host in another zone: time-machine moves the process's
#: local zone too, so code that reads the host's calendar fails here.
REGISTRY_CLOCK = {
    "utc1559-la": datetime(2026, 6, 10, 15, 59, tzinfo=UTC).astimezone(
        ZoneInfo("America/Los_Angeles")
    ),
    "utc1601-tokyo": datetime(2026, 6, 10, 16, 1, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo")),
    "utc2359-utc": datetime(2026, 6, 10, 23, 59, tzinfo=ZoneInfo("UTC")),
    "utc0001-la": datetime(2026, 6, 11, 0, 1, tzinfo=UTC).astimezone(
        ZoneInfo("America/Los_Angeles")
    ),
    "newyear-utc1559-tokyo": datetime(2026, 12, 31, 15, 59, tzinfo=UTC).astimezone(
        ZoneInfo("Asia/Tokyo")
    ),
    "newyear-utc1601-la": datetime(2026, 12, 31, 16, 1, tzinfo=UTC).astimezone(
        ZoneInfo("America/Los_Angeles")
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--backend") or list(BACKENDS)
        metafunc.parametrize("backend", chosen, scope="session")
    if metafunc.definition.get_closest_marker("registry_clock"):
        metafunc.parametrize(
            "registry_instant", list(REGISTRY_CLOCK.values()), ids=list(REGISTRY_CLOCK)
        )


@pytest.fixture
def registry_instant() -> datetime | None:
    """The real clock, unless the test is marked ``registry_clock`` (then each instant above)."""
    return None


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small parameters: the same algorithm, fast enough for many users.

    The shipped parameters (argon2-cffi's defaults, about 0.2 s a hash here)
    would cost 0.4 s for each user a test makes and signs in. The processes
    the tests start (gunicorn, the CLI) keep them.
    """
    from anjuka.auth import operations

    monkeypatch.setattr(
        operations, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture(autouse=True)
def _registry_clock(registry_instant: datetime | None) -> Iterator[None]:
    """Travel to ``registry_instant`` (ticking on), host zone included, for the whole test."""
    if registry_instant is None:
        yield
        return
    with time_machine.travel(registry_instant, tick=True):
        yield


@pytest.fixture(scope="session")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key file for the session, as a deployment would have."""
    return tmp_path_factory.mktemp("keys") / "keys.json"


@pytest.fixture(scope="session")
def pg_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database for this session; its URL."""
    with throwaway_database("postgresql", tmp_path_factory.getbasetemp(), "anjuka_test") as url:
        yield url


def database_url(backend: str, tmp_dir: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / 'anjuka.sqlite3'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture(scope="session")
def _session_app(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    keys_file: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp(f"instance-{backend}")
    config = Config(
        instance_path=instance,
        database_url=database_url(backend, instance, request),
        keys_file=keys_file,
        testing=True,
    )
    app = create_app(config)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _empty_tables(app: Flask) -> None:
    """Empty every table; on PostgreSQL also start the ids again from 1.

    TRUNCATE on PostgreSQL, although DELETE is faster there (7 ms against
    100 ms): after a DELETE, new rows reuse the space freed, so rows read
    without ORDER BY no longer come back in the order they were written,
    and some tests compare such reads with that order.
    """
    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            else:
                for table in tables:
                    conn.exec_driver_sql(f'DELETE FROM "{table}"')


@pytest.fixture
def app(_session_app: Flask) -> Iterator[Flask]:
    """The application on an empty database, inside an app context, with fresh throttles."""
    from anjuka.core.limits import limiter

    _empty_tables(_session_app)
    limiter.reset()
    with _session_app.app_context():
        yield _session_app
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


_counter = itertools.count(1)


@pytest.fixture
def create_area(app: Flask) -> Callable[..., dict]:
    """Factory: ``create_area(code, parent_code=None, **policy)`` -> the area's JSON."""
    from anjuka.areas.operations import create_area as create

    def make(
        code: str | None = None,
        parent_code: str | None = None,
        name: str | None = None,
        **policy: object,
    ) -> dict:
        code = code or f"A{next(_counter)}"
        policy = {
            k: Decimal(str(v)) if k == "min_area_per_person_m2" else v for k, v in policy.items()
        }
        area = create(code, name or f"Area {code}", parent_code, policy)
        db.session.commit()
        return {"id": area.id, "code": area.code}

    return make


@pytest.fixture
def create_estate(app: Flask) -> Callable[..., int]:
    """Factory: ``create_estate(area_code)`` -> estate id."""
    from anjuka.areas.operations import find_area
    from anjuka.dwellings.operations import create_estate as create

    def make(area_code: str, name: str = "Estate") -> int:
        estate = create(find_area(area_code), name, None, None)
        db.session.commit()
        return estate.id

    return make


@pytest.fixture
def create_dwelling(app: Flask) -> Callable[..., int]:
    """Factory: ``create_dwelling(area_code, usable=20, rooms=2, ...)`` -> dwelling id."""
    from anjuka.areas.operations import find_area
    from anjuka.dwellings.models import Estate
    from anjuka.dwellings.operations import create_dwelling as create

    def make(
        area_code: str,
        usable: float | None = 20,
        rooms: int = 2,
        *,
        building: float | None = None,
        status: str = "rentable",
        estate_id: int | None = None,
        address: str | None = None,
    ) -> int:
        dwelling = create(
            find_area(area_code),
            db.session.get(Estate, estate_id) if estate_id else None,
            {
                "address": address or f"Test Road {next(_counter)}",
                "usable_area_m2": None if usable is None else Decimal(str(usable)),
                "building_area_m2": None if building is None else Decimal(str(building)),
                "rooms": rooms,
                "status": status,
            },
        )
        db.session.commit()
        return dwelling.id

    return make


@pytest.fixture
def create_user(app: Flask, client: FlaskClient) -> Callable[..., dict]:
    """Factory: ``create_user(role, scopes=[...])`` -> {"id", "username", "headers"}."""
    from anjuka.auth.operations import create_user as create

    def make(role: str, scopes: list[str] | None = None, username: str | None = None) -> dict:
        username = username or f"{role}{next(_counter)}"
        password = "correct horse battery"
        user = create(username, role, password, scopes or [])
        db.session.commit()
        response = client.post(
            "/api/v1/auth/tokens", json={"username": username, "password": password}
        )
        assert response.status_code == 201, response.json
        token = response.json["token"]
        return {
            "id": user.id,
            "username": username,
            "password": password,
            "token": token,
            "headers": {"Authorization": f"Bearer {token}"},
        }

    return make


def make_id_number(birth: date = date(1990, 5, 17), serial: int = 123) -> str:
    """A valid resident ID number; odd serial digit → male."""
    from anjuka.persons.identity import resident_id_check_char

    first17 = f"330203{birth:%Y%m%d}{serial:03d}"
    return first17 + resident_id_check_char(first17)


_id_serial = itertools.count(100)


@pytest.fixture
def new_id_number() -> Callable[..., str]:
    """Factory: a fresh valid resident ID number on each call."""

    def make(birth: date = date(1990, 5, 17)) -> str:
        return make_id_number(birth, next(_id_serial) % 1000)

    return make


@pytest.fixture
def arrive(client: FlaskClient, new_id_number: Callable[..., str]) -> Callable[..., object]:
    """Factory: ``arrive(headers, dwelling_id, **extra)`` -> the response."""

    def make(
        headers: dict,
        dwelling_id: int,
        *,
        number: str | None = None,
        arrived_on: str | None = None,
        name: str = "张三",
        phone: str | None = None,
        origin: str | None = None,
        **extra: object,
    ):
        contact = {"phone": phone, "origin": origin}
        body = {
            "dwelling_id": dwelling_id,
            "arrived_on": arrived_on or local_today().isoformat(),
            "person": {
                "document_type": "resident_id",
                "document_number": number or new_id_number(),
                "name": name,
                **{k: v for k, v in contact.items() if v is not None},
            },
            **extra,
        }
        return client.post("/api/v1/residences", json=body, headers=headers)

    return make


def count_rows(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def card_desk(client: FlaskClient) -> Callable[..., object]:
    """Factory: ``card_desk(desk_headers, area_code)`` -> a CardDesk with its own reader."""
    from cardkit import make_desk

    def make(desk_headers: dict, area_code: str) -> object:
        return make_desk(client, desk_headers, area_code)

    return make


#: Debian's Chromium, never a downloaded browser; the flags keep it off the closed network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the session, shared by the page tests and the demo's test.

    Playwright's sync API runs one event loop per thread: a second one
    started beside it would fail, so every test that drives the browser
    takes this one.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
