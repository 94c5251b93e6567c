"""Property-based requests from the app's own OpenAPI document: no input makes a server error.

Schemathesis generates bodies, query strings and paths for every operation
the document describes (so new endpoints are fuzzed as they land), sends
them as an admin, and fails on any 5xx. The examples are bounded to keep
the run short; SQLite is enough here, the error paths are the database's
own tests' business.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.time import local_today

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, dict]]:
    """An app with a little of everything, and an admin's headers."""
    from anjuka.areas.operations import create_area
    from anjuka.auth.operations import create_user
    from anjuka.dwellings.operations import create_dwelling, create_estate

    instance: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(Config(instance_path=instance, testing=True))
    with app.app_context():
        db.create_all()
        city = create_area("F1", "Fuzz city", None, {"min_area_per_person_m2": Decimal(5)})
        create_area("F2", "Fuzz district", "F1", {})
        estate = create_estate(city, "Fuzz estate", None, None)
        for rooms in (1, 2, 3):
            create_dwelling(
                city,
                estate,
                {"address": f"{rooms} Fuzz Road", "rooms": rooms, "usable_area_m2": 30},
            )
        create_user("fuzzer", "admin", "fuzzing password")
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/tokens", json={"username": "fuzzer", "password": "fuzzing password"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    arrival = client.post(
        "/api/v1/residences",
        json={
            "dwelling_id": 1,
            "arrived_on": local_today().isoformat(),
            "person": {"document_type": "passport", "document_number": "E12345678", "name": "Fu"},
        },
        headers=headers,
    )
    assert arrival.status_code == 201, arrival.json
    yield app, headers
    with app.app_context():
        db.engine.dispose()


def _openapi_document() -> dict:
    """The app's OpenAPI document, as any client would fetch it."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(instance_path=Path(tmp), testing=True))
        document = app.test_client().get("/api/v1/openapi.json").json
        with app.app_context():
            db.engine.dispose()
    return document


# Signing out, revoking tokens or resetting passwords would kill the token every
# later request carries (the fuzzer's account is user 1, its token 1).
schema = (
    schemathesis.openapi.from_dict(_openapi_document())
    .exclude(path="/api/v1/auth/tokens/current", method="DELETE")
    .exclude(path="/api/v1/auth/tokens/{token_id}", method="DELETE")
    .exclude(path="/api/v1/users/{user_id}/password", method="POST")
    .exclude(path="/api/v1/users/{user_id}/tokens/revoke", method="POST")
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_a_server_error(case, fuzz_app):
    app, headers = fuzz_app
    case.call_and_validate(app=app, headers=headers, checks=[not_a_server_error])
