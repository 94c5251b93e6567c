"""The served stack keeps the OpenAPI document: every answer, for every caller.

gunicorn serves the app with the shipped ``gunicorn.conf.py`` over a
PostgreSQL database holding the demo city (a user of every role) and a
little of everything else: a desk reader with a queued card, an inspection,
a transfer, a webhook. Schemathesis generates requests from the app's own
document, valid and invalid, for every operation, and sends them over HTTP
as each caller in turn; each answer must

- not be a server error;
- carry a status the operation documents (no catch-all ``default``: each
  lists its errors, ``anjuka/core/api.py``);
- carry the documented content type, headers (``Retry-After`` on 429 and
  503) and a body that validates against the documented schema;
- refuse callers the operation does not name in ``x-callers``: 401 without
  a token, 403 for a role or a device that may not act (the gate answers
  before it reads the input, so a generated request cannot slip past it).

Half the area codes, document numbers and card numbers sent are ones the
registry holds, so requests find records. Examples are few and
derandomized to keep the run to a few minutes of CPU:
a refused caller meets the gate whatever it sends, so it sends one request
per operation. What the admin may do (disable users, revoke readers) acts on
an account and a reader made for it (``_send``), so it changes nothing the
other callers are fuzzed with, and the tests pass in any order.
docs/api.md, "The contract, tested".
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from served import gunicorn
from throwaway_db import throwaway_database

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.time import local_today
from anjuka.persons.identity import resident_id_check_char
from cardreader.cardno import make_card_no

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Requests per operation for a caller the operation admits.
EXAMPLES = 6
#: For a caller the gate refuses, whatever the request holds.
REFUSED_EXAMPLES = 1
PERSON_NUMBER = "11010519800101001" + resident_id_check_char("11010519800101001")
#: The first card number of an empty registry: the seeded card's.
SEEDED_CARD = make_card_no(1)
DEMO_AREAS = ("3302", "330203", "330212", "330203-NM", "330203-NM-01", "330212-ZM", "330212-ZM-01")


@dataclass
class Registry:
    url: str
    #: Each caller's ``Authorization`` header (none for the anonymous one).
    headers: dict[str, dict[str, str]]
    #: A second token of each user, for revoking one's own token by id.
    spare_tokens: dict[str, int]
    #: The account the admin's account operations act on (never the admin's own).
    victim_id: int
    #: The reader the admin's reader operations act on (never the fuzzed reader's).
    spare_reader_id: int


def _openapi_document() -> dict:
    """The app's OpenAPI document, built as the served app builds it."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(instance_path=Path(tmp), testing=True))
        document = app.test_client().get("/api/v1/openapi.json").json
        with app.app_context():
            db.engine.dispose()
    return document


DOCUMENT = _openapi_document()


def _seed(database_url: str, instance: Path) -> dict[str, str]:
    """The demo city in a fresh schema; each user's password."""
    from anjuka.demo import load_demo

    app = create_app(Config(instance_path=instance, database_url=database_url))
    with app.app_context():
        db.create_all()
        passwords = load_demo().passwords
        db.session.commit()
        db.engine.dispose()
    return passwords


def _call(url: str, method: str, path: str, headers: dict, **kwargs) -> dict:
    response = requests.request(
        method, f"{url}/api/v1{path}", headers=headers, timeout=60, **kwargs
    )
    assert response.ok, (method, path, response.status_code, response.text)
    return response.json()


def _a_little_of_everything(url: str, headers: dict[str, dict[str, str]]) -> int:
    """What the demo lacks: a reader with a queued card, an inspection, a transfer, a webhook;
    and a spare reader for the admin to revoke (its id)."""
    admin = headers["admin"]
    reader = _call(url, "POST", "/readers", admin, json={"name": "Contract desk"})
    headers["reader"] = {"Authorization": f"Bearer {reader['token']}"}
    spare = _call(url, "POST", "/readers", admin, json={"name": "Contract spare desk"})
    estate = _call(url, "GET", "/estates", headers["manager"])[0]
    dwelling = _call(
        url,
        "POST",
        "/dwellings",
        admin,
        json={
            "area_code": estate["area_code"],
            "estate_id": estate["id"],
            "address": "Contract Road 1",
            "rooms": 4,
            "usable_area_m2": 80,
        },
    )
    number = PERSON_NUMBER
    person = {"document_type": "resident_id", "document_number": number, "name": "Contract"}
    today = local_today().isoformat()
    residence = _call(
        url,
        "POST",
        "/residences",
        admin,
        json={"dwelling_id": dwelling["id"], "arrived_on": today, "person": person},
    )
    card = _call(
        url,
        "POST",
        "/cards",
        admin,
        json={"residence_id": residence["id"], "reader_id": reader["id"]},
    )
    assert card["card_no"] == SEEDED_CARD
    _call(url, "POST", "/verifications", headers["officer"], json={"card_no": card["card_no"]})
    elsewhere = _call(url, "GET", "/dwellings", headers["manager2"])[0]
    _call(
        url,
        "POST",
        "/transfers",
        headers["manager2"],
        json={
            "dwelling_id": elsewhere["id"],
            "arrived_on": today,
            "person": {"document_type": "resident_id", "document_number": number},
        },
    )
    _call(
        url,
        "POST",
        "/webhooks",
        admin,
        json={"area_code": estate["area_code"], "url": "http://127.0.0.1:9/contract"},
    )
    return spare["id"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    home = tmp_path_factory.mktemp("contract")
    instance = home / "instance"
    with throwaway_database("postgresql", home, "contract") as database_url:
        passwords = _seed(database_url, instance)
        env = {"ANJUKA_DATABASE_URL": database_url, "ANJUKA_INSTANCE_PATH": str(instance)}
        with gunicorn(env, home / "gunicorn.log") as url:
            served = requests.get(f"{url}/api/v1/openapi.json", timeout=30).json()
            assert served == DOCUMENT, "the served document is not the one fuzzed"
            headers: dict[str, dict[str, str]] = {"anonymous": {}}
            spare_tokens: dict[str, int] = {}
            for name, password in passwords.items():
                credentials = {"username": name, "password": password}
                token = _call(url, "POST", "/auth/tokens", {}, json=credentials)
                headers[name] = {"Authorization": f"Bearer {token['token']}"}
                _call(url, "POST", "/auth/tokens", {}, json=credentials)
                mine = _call(url, "GET", "/auth/tokens", headers[name])
                spare_tokens[name] = next(t["id"] for t in mine if not t["current"])
            victim = _call(
                url,
                "POST",
                "/users",
                headers["admin"],
                json={"username": "victim", "role": "officer", "password": "victim password"},
            )
            spare_reader = _a_little_of_everything(url, headers)
            yield Registry(url, headers, spare_tokens, victim["id"], spare_reader)


config = SchemathesisConfig.from_dict(
    {
        # The callers' tokens are ours to send: generated or left-out
        # Authorization headers would make every caller anonymous.
        "generation": {"mode": "all", "deterministic": True, "with-security-parameters": False},
        # Explicit examples and the coverage phase would multiply the requests;
        # the derandomized fuzzing phase alone stays within the budget.
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": False},
            "stateful": {"enabled": False},
        },
        # Half the time, a value the registry holds, so that requests find
        # something beyond the ids small integers hit anyway.
        "dictionaries": {
            "areas": {"values": list(DEMO_AREAS)},
            "documents": {"values": [PERSON_NUMBER]},
            "cards": {"values": [SEEDED_CARD]},
        },
        "parameters": {
            key: {"dictionary": dictionary, "probability": 0.5}
            for dictionary, keys in {
                "areas": ("path.code", "query.area_code", "body.area_code", "body.parent_code"),
                "documents": ("body.document_number", "body.person.document_number"),
                "cards": ("path.card_no", "query.card_no", "body.card_no"),
            }.items()
            for key in keys
        },
    }
)
# Left out: signing out, which revokes the token every later request of the
# caller carries (tests/registry has its own tests of it).
schema = schemathesis.openapi.from_dict(DOCUMENT, config=config).exclude(
    path="/api/v1/auth/tokens/current", method="DELETE"
)


def _admits(operation: dict, caller: str) -> bool:
    callers = operation.get("x-callers")
    return callers is None or caller in callers


def _operations(caller: str, *, admitted: bool):
    """The part of the document the caller may (or may not) call."""
    return schema.include(lambda ctx: _admits(ctx.operation.definition.raw, caller) is admitted)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _send(case, registry: Registry, caller: str):
    """Send ``case`` as ``caller`` and check the answer against the document.

    Four generated values are replaced when they are well formed: the
    long poll's ``wait`` (the answer, not the wait, is under test), and the
    ids of a user, a token and a reader, so that the admin acts on an account
    and a reader made for it and each user revokes a spare token: never one
    that a caller goes on with.
    """
    if _is_number((case.query or {}).get("wait")):
        case.query["wait"] = 0
    path = case.path_parameters or {}
    if _is_number(path.get("user_id")):
        path["user_id"] = registry.victim_id
    if _is_number(path.get("token_id")) and caller in registry.spare_tokens:
        path["token_id"] = registry.spare_tokens[caller]
    if _is_number(path.get("reader_id")) and caller == "admin":
        path["reader_id"] = registry.spare_reader_id
    response = case.call(base_url=registry.url, headers=registry.headers[caller], timeout=60)
    case.validate_response(response, checks=CHECKS)
    return response


def _admitted_as(caller: str) -> Callable:
    @_operations(caller, admitted=True).parametrize()
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def test(case, registry):
        response = _send(case, registry, caller)
        if "x-callers" in case.operation.definition.raw:
            assert response.status_code != 401, f"the {caller}'s token was refused"

    return test


def _refused_as(caller: str) -> Callable:
    @_operations(caller, admitted=False).parametrize()
    @settings(
        max_examples=REFUSED_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def test(case, registry):
        """Refused before the input counts: 401 without a token, else 403."""
        response = _send(case, registry, caller)
        assert response.status_code == (401 if caller == "anonymous" else 403), response.text

    return test


test_anonymous_refused = _refused_as("anonymous")
test_anonymous_signing_in = _admitted_as("anonymous")
test_reader_refused = _refused_as("reader")
test_reader = _admitted_as("reader")
test_auditor_refused = _refused_as("auditor")
test_auditor = _admitted_as("auditor")
test_officer_refused = _refused_as("officer")
test_officer = _admitted_as("officer")
test_manager_refused = _refused_as("manager")
test_manager = _admitted_as("manager")
test_supervisor_refused = _refused_as("supervisor")
test_supervisor = _admitted_as("supervisor")
test_admin = _admitted_as("admin")
