"""Who may call what: every endpoint of the app against every role and a foreign scope.

The endpoints come from the application's own URL map, so an endpoint added
later is in this matrix at once: it must declare who may call it, refuse
the anonymous (401), refuse the roles it does not name (403) and refuse a
reader token if it is for users, or a user token if it is for readers. The
registry's own endpoints are also held to an expected role table, called
with a real request by every allowed role, and called on a foreign scope.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from registry_helpers import assert_error_shape, today

from anjuka import create_app
from anjuka.config import Config
from anjuka.core import security
from anjuka.core.security import Identity

ROLES = ("admin", "supervisor", "officer", "manager", "auditor")
REGISTRY_BLUEPRINTS = {"auth", "areas", "dwellings", "residences", "audit", "transfers"}
PUBLIC = "public"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Route:
    endpoint: str
    method: str
    rule: str

    @property
    def id(self) -> str:
        return f"{self.method} {self.rule}"


def _routes() -> list[Route]:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(instance_path=Path(tmp), testing=True))
        rules = list(app.url_map.iter_rules())
        with app.app_context():
            from anjuka.core.db import db

            db.engine.dispose()
    return sorted(
        (
            Route(rule.endpoint, method, rule.rule)
            for rule in rules
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        ),
        key=lambda r: (r.rule, r.method),
    )


ROUTES = _routes()


def _fill(rule: str) -> str:
    """A URL for ``rule`` with placeholder values (the gate decides before any lookup)."""

    def value(match: re.Match) -> str:
        return "1" if (match.group(1) or "").startswith("int") else "x"

    return re.sub(r"<(?:([a-z]+)(?:\([^)]*\))?:)?[a-zA-Z_]+>", value, rule)


# What the registry's endpoints allow: roles (admin is always allowed) or PUBLIC.
EVERYONE = frozenset(ROLES)
READERS = frozenset({"admin", "supervisor", "officer", "manager"})
DESKS = frozenset({"admin", "supervisor", "manager"})
AREA_READERS = frozenset({"admin", "supervisor", "officer"})
ADMIN = frozenset({"admin"})
EXPECTED_ACCESS: dict[str, frozenset[str] | str] = {
    "api-docs.openapi_json": PUBLIC,
    "static": PUBLIC,
    "auth.create_token": PUBLIC,
    "auth.create_session": PUBLIC,
    "auth.revoke_current_token": EVERYONE,
    "auth.whoami": EVERYONE,
    "auth.create_user": ADMIN,
    "auth.list_own_tokens": EVERYONE,
    "auth.revoke_own_token": EVERYONE,
    "auth.change_own_password": EVERYONE,
    "auth.list_users": ADMIN,
    "auth.get_user": ADMIN,
    "auth.update_user": ADMIN,
    "auth.disable_user": ADMIN,
    "auth.enable_user": ADMIN,
    "auth.set_password": ADMIN,
    "auth.revoke_user_tokens": ADMIN,
    "areas.create_area": ADMIN,
    "areas.list_areas": AREA_READERS,
    "areas.get_area": AREA_READERS,
    "areas.patch_area": ADMIN,
    "dwellings.create_dwelling": DESKS,
    "dwellings.list_dwellings": READERS,
    "dwellings.get_dwelling": READERS,
    "dwellings.patch_dwelling": DESKS,
    "dwellings.create_estate": frozenset({"admin", "supervisor"}),
    "dwellings.list_estates": READERS,
    "residences.register_arrival": DESKS,
    "residences.get_residence": READERS,
    "residences.record_departure": DESKS,
    "residences.list_residents": READERS,
    "residences.lookup_person": READERS,
    "residences.get_person": READERS,
    "residences.person_history": READERS,
    "audit.list_audit_events": frozenset({"admin", "auditor"}),
    "transfers.request_transfer": DESKS,
    "transfers.list_transfers": DESKS,
    "transfers.get_transfer": DESKS,
    "transfers.cancel_transfer": DESKS,
    "transfers.complete_transfer": frozenset({"admin", "supervisor"}),
}

Request = tuple[str, dict | None]  # (path after /api/v1, JSON body)


def _fresh_residence(w) -> int:
    return w.arrive_in(w.da)["id"]


def _transfer_body(w, into: int, living_in: int) -> dict:
    """A transfer request for a new resident of ``living_in``."""
    number = w.new_number()
    w.arrive_in(living_in, number)
    return {
        "dwelling_id": into,
        "arrived_on": today().isoformat(),
        "person": {"document_type": "resident_id", "document_number": number},
    }


def _fresh_transfer(
    w, into: int | None = None, living_in: int | None = None, due: bool = False
) -> int:
    """A waiting transfer (into RA's dwelling by default), asked for by the admin."""
    from anjuka.core.db import db
    from anjuka.transfers.models import Transfer

    body = _transfer_body(w, into or w.da, living_in or w.db)
    response = w.client.post("/api/v1/transfers", json=body, headers=w.headers("admin"))
    assert response.status_code == 201, response.json
    if due:
        transfer = db.session.get(Transfer, response.json["id"])
        transfer.due_on = today() - timedelta(days=1)
        db.session.commit()
    return response.json["id"]


def _new_account(w) -> int:
    """An account of its own for an admin to change."""
    from anjuka.auth.operations import create_user
    from anjuka.core.db import db

    user = create_user(f"target{next(_serial)}", "auditor", "t" * 12)
    db.session.commit()
    return user.id


def _spare_token_id(w, role: str) -> int:
    """A second token of the role's user, to revoke without signing the caller out."""
    import sqlalchemy as sa

    from anjuka.auth.models import ApiToken, User
    from anjuka.auth.operations import issue_token
    from anjuka.core.db import db
    from anjuka.core.security import hash_token

    token, _ = issue_token(db.session.get(User, w.users[role]["id"]))
    db.session.commit()
    return db.session.scalar(sa.select(ApiToken.id).where(ApiToken.token_hash == hash_token(token)))


# An in-scope request that must succeed for every allowed role ...
IN_SCOPE: dict[str, Callable[..., Request]] = {
    "auth.create_token": lambda w, role: (
        "/auth/tokens",
        {"username": w.users[role]["username"], "password": w.users[role]["password"]},
    ),
    "auth.create_session": lambda w, role: (
        "/auth/session",
        {"username": w.users[role]["username"], "password": w.users[role]["password"]},
    ),
    "auth.revoke_current_token": lambda w, role: ("/auth/tokens/current", None),
    "auth.whoami": lambda w, role: ("/auth/me", None),
    "auth.create_user": lambda w, role: (
        "/users",
        {"username": f"new{next(_serial)}", "role": "auditor", "password": "x" * 12},
    ),
    "auth.list_own_tokens": lambda w, role: ("/auth/tokens", None),
    "auth.revoke_own_token": lambda w, role: (f"/auth/tokens/{_spare_token_id(w, role)}", None),
    "auth.change_own_password": lambda w, role: (
        "/auth/password",
        {"current_password": w.users[role]["password"], "new_password": w.users[role]["password"]},
    ),
    "auth.list_users": lambda w, role: ("/users", None),
    "auth.get_user": lambda w, role: (f"/users/{_new_account(w)}", None),
    "auth.update_user": lambda w, role: (f"/users/{_new_account(w)}", {"display_name": "T"}),
    "auth.disable_user": lambda w, role: (f"/users/{_new_account(w)}/disable", None),
    "auth.enable_user": lambda w, role: (f"/users/{_new_account(w)}/enable", None),
    "auth.set_password": lambda w, role: (
        f"/users/{_new_account(w)}/password",
        {"password": "n" * 12},
    ),
    "auth.revoke_user_tokens": lambda w, role: (f"/users/{_new_account(w)}/tokens/revoke", None),
    "areas.create_area": lambda w, role: (
        "/areas",
        {"code": f"N{next(_serial)}", "name": "New", "parent_code": "RA"},
    ),
    "areas.list_areas": lambda w, role: ("/areas", None),
    "areas.get_area": lambda w, role: ("/areas/RA", None),
    "areas.patch_area": lambda w, role: ("/areas/RA", {"name": "Area A"}),
    "dwellings.create_dwelling": lambda w, role: (
        "/dwellings",
        {
            "area_code": "RA",
            "estate_id": w.ea,
            "address": f"{next(_serial)} New Road",
            "usable_area_m2": 30,
            "rooms": 2,
        },
    ),
    "dwellings.list_dwellings": lambda w, role: ("/dwellings", None),
    "dwellings.get_dwelling": lambda w, role: (f"/dwellings/{w.da}", None),
    "dwellings.patch_dwelling": lambda w, role: (f"/dwellings/{w.da}", {"landlord_name": "Li"}),
    "dwellings.create_estate": lambda w, role: ("/estates", {"area_code": "RA", "name": "New"}),
    "dwellings.list_estates": lambda w, role: ("/estates", None),
    "residences.register_arrival": lambda w, role: (
        "/residences",
        {
            "dwelling_id": w.da,
            "arrived_on": today().isoformat(),
            "person": {
                "document_type": "passport",
                "document_number": f"P{next(_serial):08d}",
                "name": "Ana",
            },
        },
    ),
    "residences.get_residence": lambda w, role: (f"/residences/{w.ra['id']}", None),
    "residences.record_departure": lambda w, role: (
        f"/residences/{_fresh_residence(w)}/departure",
        {"departed_on": today().isoformat()},
    ),
    "residences.list_residents": lambda w, role: (f"/dwellings/{w.da}/residents", None),
    "residences.lookup_person": lambda w, role: (
        "/persons/lookup",
        {"document_number": w.number_a},
    ),
    "residences.get_person": lambda w, role: (f"/persons/{w.ra['person_id']}", None),
    "residences.person_history": lambda w, role: (
        f"/persons/{w.ra['person_id']}/residences",
        None,
    ),
    "audit.list_audit_events": lambda w, role: ("/audit", None),
    "transfers.request_transfer": lambda w, role: ("/transfers", _transfer_body(w, w.da, w.db)),
    "transfers.list_transfers": lambda w, role: ("/transfers", None),
    "transfers.get_transfer": lambda w, role: (f"/transfers/{_fresh_transfer(w)}", None),
    "transfers.cancel_transfer": lambda w, role: (f"/transfers/{_fresh_transfer(w)}/cancel", {}),
    "transfers.complete_transfer": lambda w, role: (
        f"/transfers/{_fresh_transfer(w, due=True)}/complete",
        {"reason": "The old desk never answered."},
    ),
}

# ... and the same request on a foreign subject, which must read as not found.
FOREIGN: dict[str, Callable[..., Request]] = {
    "areas.get_area": lambda w: ("/areas/RB", None),
    "dwellings.create_dwelling": lambda w: (
        "/dwellings",
        {
            "area_code": "RB",
            "estate_id": w.eb,
            "address": "1 Far Road",
            "usable_area_m2": 30,
            "rooms": 2,
        },
    ),
    "dwellings.get_dwelling": lambda w: (f"/dwellings/{w.db}", None),
    "dwellings.patch_dwelling": lambda w: (f"/dwellings/{w.db}", {"landlord_name": "Li"}),
    "dwellings.create_estate": lambda w: ("/estates", {"area_code": "RB", "name": "Far"}),
    "residences.register_arrival": lambda w: (
        "/residences",
        {
            "dwelling_id": w.db,
            "arrived_on": today().isoformat(),
            "person": {"document_type": "passport", "document_number": "F00000001", "name": "Bo"},
        },
    ),
    "residences.get_residence": lambda w: (f"/residences/{w.rb['id']}", None),
    "residences.record_departure": lambda w: (
        f"/residences/{w.rb['id']}/departure",
        {"departed_on": today().isoformat()},
    ),
    "residences.list_residents": lambda w: (f"/dwellings/{w.db}/residents", None),
    "residences.lookup_person": lambda w: ("/persons/lookup", {"document_number": w.number_b}),
    "residences.get_person": lambda w: (f"/persons/{w.rb['person_id']}", None),
    "residences.person_history": lambda w: (f"/persons/{w.rb['person_id']}/residences", None),
    "transfers.request_transfer": lambda w: ("/transfers", _transfer_body(w, w.db2, w.db)),
    "transfers.get_transfer": lambda w: (
        f"/transfers/{_fresh_transfer(w, into=w.db2, living_in=w.db)}",
        None,
    ),
    "transfers.cancel_transfer": lambda w: (
        f"/transfers/{_fresh_transfer(w, into=w.db2, living_in=w.db)}/cancel",
        {},
    ),
    "transfers.complete_transfer": lambda w: (
        f"/transfers/{_fresh_transfer(w, into=w.db2, living_in=w.db, due=True)}/complete",
        {"reason": "The old desk never answered."},
    ),
}
SCOPED_ROLES = ("supervisor", "officer", "manager")

READER_PREFIX = "ajtestreader_"


@pytest.fixture
def reader_headers(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A desk reader's credential, resolved by the gate like any reader token."""

    def resolve(token: str) -> Identity | None:
        return Identity("reader", 1, "test desk") if token == READER_PREFIX + "ok" else None

    monkeypatch.setitem(security._token_resolvers, READER_PREFIX, resolve)
    return {"Authorization": f"Bearer {READER_PREFIX}ok"}


def _call(client, method: str, url: str, body: dict | None, headers: dict | None = None):
    return client.open(url, method=method, json=body, headers=headers or {})


def test_the_matrix_knows_every_registry_endpoint():
    """A new registry endpoint must be added to the expected table and to the requests."""
    registry = {r.endpoint for r in ROUTES if r.endpoint.split(".")[0] in REGISTRY_BLUEPRINTS}
    assert registry <= set(EXPECTED_ACCESS), registry - set(EXPECTED_ACCESS)
    assert set(EXPECTED_ACCESS) - {"static", "api-docs.openapi_json"} <= set(IN_SCOPE)
    assert set(EXPECTED_ACCESS) <= {r.endpoint for r in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_access(app, client, world, reader_headers, route: Route):
    view = app.view_functions[route.endpoint]
    declared = getattr(view, security._ACCESS_ATTR, None)
    if route.endpoint in security.PUBLIC_ENDPOINTS:
        declared = (PUBLIC,)
    assert declared is not None, f"{route.id} declares no access (default deny hides it)"

    expected = EXPECTED_ACCESS.get(route.endpoint)
    if expected is not None:
        if expected == PUBLIC:
            assert declared[0] == PUBLIC, route.id
        else:
            assert declared[0] == "user", route.id
            assert declared[1] == expected, (route.id, sorted(declared[1]))

    url = _fill(route.rule)
    page = not route.rule.startswith("/api/")

    def assert_refused(response, status: int, code: str | None = None) -> None:
        """The API's error shape; a page's refusal is a page (401: to the sign-in form)."""
        if not page:
            assert_error_shape(response, status, code)
        elif status == 401:
            assert response.status_code == 302, (route.id, response.status_code)
            assert response.headers["Location"].startswith("/sign-in?next="), route.id
        else:
            assert (response.status_code, response.mimetype) == (status, "text/html"), route.id

    if declared[0] == PUBLIC:
        if route.endpoint == "api-docs.openapi_json":
            assert client.get(url).status_code == 200
    else:
        anonymous = _call(client, route.method, url, {})
        assert_refused(anonymous, 401, "unauthorized")
        garbage = _call(client, route.method, url, {}, {"Authorization": "Bearer aju_forged"})
        assert_refused(garbage, 401)
        basic = _call(client, route.method, url, {}, {"Authorization": "Basic YWRtaW46eA=="})
        assert_refused(basic, 401)

    if declared[0] == "user":
        assert_refused(_call(client, route.method, url, {}, reader_headers), 403)
        for role in ROLES:
            if role not in declared[1]:
                refused = _call(client, route.method, url, {}, world.headers(role))
                assert_refused(refused, 403)
    elif declared[0] == "reader":
        for role in ROLES:
            assert_refused(_call(client, route.method, url, {}, world.headers(role)), 403)

    if route.endpoint in FOREIGN:
        for role in SCOPED_ROLES:
            if role in declared[1]:
                path, body = FOREIGN[route.endpoint](world)
                foreign = _call(client, route.method, f"/api/v1{path}", body, world.headers(role))
                assert_error_shape(foreign, 404)

    if route.endpoint in IN_SCOPE:
        callers = ROLES if declared[0] == PUBLIC else sorted(declared[1])
        for role in callers:
            path, body = IN_SCOPE[route.endpoint](world, role)
            headers = {} if declared[0] == PUBLIC else world.headers(role)
            response = _call(client, route.method, f"/api/v1{path}", body, headers)
            assert 200 <= response.status_code < 300, (role, response.status_code, response.json)


def test_a_manager_of_estate_a_gets_404_for_a_dwelling_of_estate_b(client, world, create_user):
    manager = world.headers("manager")
    assert client.get(f"/api/v1/dwellings/{world.da}", headers=manager).status_code == 200
    assert_error_shape(
        client.get(f"/api/v1/dwellings/{world.db}", headers=manager), 404, "dwelling_not_found"
    )
    listed = client.get("/api/v1/dwellings", headers=manager).json
    assert [d["id"] for d in listed] == [world.da]
    # A dwelling that does not exist and one out of scope read the same.
    missing = client.get("/api/v1/dwellings/999999", headers=manager)
    foreign = client.get(f"/api/v1/dwellings/{world.db}", headers=manager)
    assert missing.json["error"] == foreign.json["error"]
    # Scoped to one dwelling, a manager sees exactly that one.
    single = create_user("manager", [f"dwelling:{world.db}"])["headers"]
    assert [d["id"] for d in client.get("/api/v1/dwellings", headers=single).json] == [world.db]
    assert client.get(f"/api/v1/dwellings/{world.da}", headers=single).status_code == 404
    assert client.get("/api/v1/estates", headers=single).json == []


def test_an_officer_cannot_register_arrivals_or_departures(client, world):
    officer = world.headers("officer")
    path, body = IN_SCOPE["residences.register_arrival"](world, "officer")
    assert_error_shape(client.post(f"/api/v1{path}", json=body, headers=officer), 403)
    departure = client.post(
        f"/api/v1/residences/{world.ra['id']}/departure",
        json={"departed_on": today().isoformat()},
        headers=officer,
    )
    assert_error_shape(departure, 403)
    # ... but sees the residents of their jurisdiction.
    residents = client.get(f"/api/v1/dwellings/{world.da}/residents", headers=officer)
    assert [r["id"] for r in residents.json] == [world.ra["id"]]


def test_document_numbers_come_back_masked_to_a_manager(client, world):
    manager = world.headers("manager")
    responses = [
        client.get(f"/api/v1/residences/{world.ra['id']}", headers=manager),
        client.get(f"/api/v1/dwellings/{world.da}/residents", headers=manager),
        client.get(f"/api/v1/persons/{world.ra['person_id']}", headers=manager),
        client.get(f"/api/v1/persons/{world.ra['person_id']}/residences", headers=manager),
        client.post(
            "/api/v1/persons/lookup", json={"document_number": world.number_a}, headers=manager
        ),
    ]
    for response in responses:
        assert response.status_code == 200, response.json
        text = response.get_data(as_text=True)
        assert world.number_a not in text
        assert world.number_a[:4] + "*" * 10 + world.number_a[-4:] in text
    for path in (
        f"/api/v1/residences/{world.ra['id']}?reveal=true",
        f"/api/v1/dwellings/{world.da}/residents?reveal=true",
        f"/api/v1/persons/{world.ra['person_id']}?reveal=true",
    ):
        assert_error_shape(client.get(path, headers=manager), 403, "reveal_not_allowed")


def test_officers_see_their_subtree_and_the_areas_above_it(client, world):
    officer = world.headers("officer")
    codes = [a["code"] for a in client.get("/api/v1/areas", headers=officer).json]
    assert codes == ["R", "RA"]
    assert client.get("/api/v1/areas/R", headers=officer).status_code == 200
    assert client.get("/api/v1/areas/RB", headers=officer).status_code == 404
    # Seeing the root is not reaching into it: no dwelling of RB, no estate of RB.
    assert [d["id"] for d in client.get("/api/v1/dwellings", headers=officer).json] == [world.da]
    assert [e["id"] for e in client.get("/api/v1/estates", headers=officer).json] == [world.ea]
    # A supervisor may not create records in the part of the tree above their scope.
    supervisor = world.headers("supervisor")
    above = client.post(
        "/api/v1/dwellings",
        json={"area_code": "R", "address": "1 Top Road", "usable_area_m2": 20, "rooms": 1},
        headers=supervisor,
    )
    assert_error_shape(above, 404)


def test_roles_must_match_their_kind_of_scope(client, world):
    admin = world.headers("admin")

    def create(role, scopes):
        return client.post(
            "/api/v1/users",
            json={
                "username": f"u{next(_serial)}",
                "role": role,
                "password": "y" * 12,
                "scopes": scopes,
            },
            headers=admin,
        )

    assert_error_shape(create("manager", ["area:RA"]), 422, "invalid_scope")
    assert_error_shape(create("officer", [f"estate:{world.ea}"]), 422, "invalid_scope")
    assert_error_shape(create("auditor", ["area:RA"]), 422, "invalid_scope")
    assert_error_shape(create("manager", ["estate:999999"]), 422, "unknown_estate")
    assert_error_shape(create("officer", ["area:nowhere"]), 422, "unknown_area")
    made = create("officer", ["area:RA", "area:RB"])
    assert made.status_code == 201, made.json
    assert sorted(made.json["scopes"]) == ["area:RA", "area:RB"]
    manager = create("manager", [f"estate:{world.ea}", f"dwelling:{world.db}"])
    assert sorted(manager.json["scopes"]) == sorted([f"estate:{world.ea}", f"dwelling:{world.db}"])
