"""Count the SQL statements a request sends, and the requests whose counts are pinned.

``counting(engine)`` records every statement the engine sends to the
database (a ``before_cursor_execute`` listener) while it is open. The test
client is wrapped so that only the request itself is counted, on a cold
session (nothing loaded beforehand is reused). ``HotPaths`` builds a small
registry through the API and measures the hot paths on it; the test pins
each count, and ``benchmarks/run`` prints them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

PASSWORD = "correct horse battery"  # noqa: S105 (a throw-away database)


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    """The statements ``engine`` sends while the block runs, in order."""
    statements: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)


def id_number(serial: int) -> str:
    from anjuka.persons.identity import resident_id_check_char

    first17 = f"330203{date(1990, 5, 17):%Y%m%d}{serial % 1000:03d}"
    return first17 + resident_id_check_char(first17)


@dataclass
class HotPaths:
    """A city C > district C1 with a supervisor, an officer and a card desk, counted requests."""

    app: Flask
    client: FlaskClient
    serial: int = 100
    headers: dict = field(default_factory=dict)
    officer: dict = field(default_factory=dict)
    desk: object = None
    dwellings: list[int] = field(default_factory=list)
    shared: int = 0

    def counted(self, method: str, path: str, **kwargs: object) -> tuple[object, int]:
        """Send one request; its response and the statements it sent."""
        from anjuka.core.db import db

        db.session.remove()
        with counting(db.engine) as statements:
            response = getattr(self.client, method)(path, **kwargs)
        db.session.remove()
        shown = os.environ.get("SHOWSQL")  # a fragment of the paths to print, e.g. "residences"
        if shown and shown in path:
            print(path, *statements, sep="\n---\n")
        return response, len(statements)

    def setup(self) -> None:
        from anjuka.areas.operations import create_area
        from anjuka.auth.operations import create_user
        from anjuka.core.db import db

        create_area("C", "City C", None, {"min_area_per_person_m2": Decimal(5)})
        create_area("C1", "District C1", "C", {})
        create_user("bench-supervisor", "supervisor", PASSWORD, ["area:C"])
        create_user("bench-officer", "officer", PASSWORD, ["area:C"])
        db.session.commit()
        self.headers = self._sign_in("bench-supervisor")
        self.officer = self._sign_in("bench-officer")
        # One dwelling that grows with the city, for the residents list.
        self.shared = self.new_dwelling(usable=5000, rooms=200)

    def _sign_in(self, username: str) -> dict:
        response = self.client.post(
            "/api/v1/auth/tokens", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 201, response.json
        return {"Authorization": f"Bearer {response.json['token']}"}

    def new_dwelling(self, usable: float = 40, rooms: int = 2) -> int:
        response = self.client.post(
            "/api/v1/dwellings",
            json={
                "area_code": "C1",
                "address": f"{len(self.dwellings) + 1} Harbour Road",
                "usable_area_m2": usable,
                "rooms": rooms,
            },
            headers=self.headers,
        )
        assert response.status_code == 201, response.json
        self.dwellings.append(response.json["id"])
        return response.json["id"]

    def arrival_body(self, dwelling_id: int) -> dict:
        from anjuka.core.time import local_today

        self.serial += 1
        return {
            "dwelling_id": dwelling_id,
            "arrived_on": local_today().isoformat(),
            "person": {
                "document_type": "resident_id",
                "document_number": id_number(self.serial),
                "name": "张三",
            },
        }

    def arrive(self, dwelling_id: int) -> int:
        response = self.client.post(
            "/api/v1/residences", json=self.arrival_body(dwelling_id), headers=self.headers
        )
        assert response.status_code == 201, response.json
        return response.json["id"]

    def grow(self, size: int) -> None:
        """Dwellings (one resident each) and residents of the shared dwelling, up to ``size``."""
        while len(self.dwellings) - 1 < size:
            self.arrive(self.new_dwelling())
        while self._residents_of_shared() < size:
            self.arrive(self.shared)

    def _residents_of_shared(self) -> int:
        from anjuka.core.db import db
        from anjuka.residences.models import Residence

        return db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Residence)
            .where(Residence.dwelling_id == self.shared, Residence.departed_on.is_(None))
        )

    # -- the requests measured ------------------------------------------------------

    def writes(self) -> dict[str, int]:
        """Arrival, departure, dwelling page, card issue and verification: statements each."""
        from cardkit import make_desk

        counts: dict[str, int] = {}
        home = self.new_dwelling()
        response, counts["arrival"] = self.counted(
            "post", "/api/v1/residences", json=self.arrival_body(home), headers=self.headers
        )
        assert response.status_code == 201, response.json
        residence = response.json["id"]
        response, counts["dwelling page"] = self.counted(
            "get", f"/api/v1/dwellings/{home}", headers=self.headers
        )
        assert response.status_code == 200, response.json
        desk = make_desk(self.client, self.headers, "C")
        card = desk.issue(residence)
        response, counts["card issue"] = self.counted(
            "post",
            "/api/v1/cards",
            json={"residence_id": self.arrive(home), "reader_id": desk.reader_id},
            headers=self.headers,
        )
        assert response.status_code == 202, response.json
        response, counts["verification"] = self.counted(
            "post",
            "/api/v1/verifications",
            json={"uid": card.uid, "record": card.record.hex(), "dwelling_id": home},
            headers=self.officer,
        )
        assert response.status_code == 201, response.json
        assert response.json["result"] == "valid", response.json
        leaving = self.arrive(self.new_dwelling())
        from anjuka.core.time import local_today

        response, counts["departure"] = self.counted(
            "post",
            f"/api/v1/residences/{leaving}/departure",
            json={"departed_on": local_today().isoformat()},
            headers=self.headers,
        )
        assert response.status_code == 200, response.json
        return counts

    def lists(self) -> dict[str, int]:
        """The list endpoints over the city as it stands: statements each."""
        counts: dict[str, int] = {}
        response, counts["dwelling list"] = self.counted(
            "get", "/api/v1/dwellings?page_size=100", headers=self.headers
        )
        assert response.status_code == 200, response.json
        response, counts["residents of a dwelling"] = self.counted(
            "get", f"/api/v1/dwellings/{self.shared}/residents?page_size=100", headers=self.headers
        )
        assert response.status_code == 200, response.json
        return counts
