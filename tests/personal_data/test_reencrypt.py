"""Key rotation without downtime: staged keys, and a re-encryption that resumes where it stopped."""

from __future__ import annotations

import dataclasses
import json

import pytest
import sqlalchemy as sa

from anjuka.audit.models import AuditEvent
from anjuka.cli import keys
from anjuka.core.db import db
from anjuka.core.keys import load_keyring
from anjuka.core.protect import encryption_key_id
from anjuka.persons.models import Person

LOOKUP = "/api/v1/persons/lookup"


@pytest.fixture
def own_keys(app, tmp_path, monkeypatch):
    """A copy of the keys file for this test; ``restart()`` reloads it as a new process would."""
    path = tmp_path / "keys.json"
    path.write_text(app.extensions["anjuka_keys"].path.read_text())
    config = dataclasses.replace(app.extensions["anjuka_config"], keys_file=path)

    def restart() -> None:
        monkeypatch.setitem(app.extensions, "anjuka_keys", load_keyring(config))

    restart()
    return restart


def _keys(app, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(keys, list(args))


def _residents(client, create_area, create_dwelling, create_user, arrive, new_id_number, n):  # type: ignore[no-untyped-def]
    create_area("KR")
    dwelling = create_dwelling("KR", usable=200, rooms=20)
    admin = create_user("admin")
    numbers = [new_id_number() for _ in range(n)]
    for number in numbers:
        made = arrive(admin["headers"], dwelling, number=number, phone="13700000000")
        assert made.status_code == 201, made.json
    return admin["headers"], numbers


def _under(key_id: str) -> int:
    db.session.expire_all()
    return sum(
        encryption_key_id(p.document_number_enc) == key_id
        for p in db.session.scalars(sa.select(Person))
    )


def test_a_staged_key_is_read_before_it_is_written_with(app, own_keys):
    before = app.extensions["anjuka_keys"].encryption[0]
    staged = _keys(app, "rotate", "encryption", "--staged")
    assert staged.exit_code == 0, staged.output
    own_keys()
    active, ring = app.extensions["anjuka_keys"].encryption
    assert active == before
    assert len(ring) == 2
    [new_id] = set(ring) - {before}

    assert _keys(app, "activate", "encryption", "e99").exit_code == 1
    done = _keys(app, "activate", "encryption", new_id)
    assert done.exit_code == 0, done.output
    own_keys()
    assert app.extensions["anjuka_keys"].encryption[0] == new_id


def test_reencrypt_is_resumable_and_shows_its_progress(
    app,
    client,
    own_keys,
    monkeypatch,
    create_area,
    create_dwelling,
    create_user,
    arrive,
    new_id_number,
):
    headers, numbers = _residents(
        client, create_area, create_dwelling, create_user, arrive, new_id_number, 5
    )
    old = app.extensions["anjuka_keys"].encryption[0]
    assert _keys(app, "rotate", "encryption").exit_code == 0
    assert _keys(app, "rotate", "blind_index").exit_code == 0
    own_keys()
    new = app.extensions["anjuka_keys"].encryption[0]
    assert _under(old) == 5

    # The run is cut after its second batch (of two persons each).
    sealed = []
    original_seal = Person.seal

    def failing_seal(self, number, phone):  # type: ignore[no-untyped-def]
        if len(sealed) == 4:
            raise RuntimeError("power cut")
        sealed.append(self.id)
        original_seal(self, number, phone)

    monkeypatch.setattr(Person, "seal", failing_seal)
    cut = _keys(app, "reencrypt", "--batch-size", "2")
    assert isinstance(cut.exception, RuntimeError)
    monkeypatch.setattr(Person, "seal", original_seal)
    # The batches done before the cut are kept; the app reads both kinds meanwhile.
    assert _under(new) == 4
    assert _under(old) == 1
    for number in numbers:
        found = client.post(LOOKUP, json={"document_number": number}, headers=headers)
        assert found.status_code == 200, found.json

    resumed = _keys(app, "reencrypt", "--batch-size", "2")
    assert resumed.exit_code == 0, resumed.output
    assert "re-encrypted 1 persons" in resumed.output
    assert "persons" in resumed.stderr  # the progress bar
    assert _under(new) == 5

    # With the old keys gone, everything is still found and read.
    path = app.extensions["anjuka_keys"].path
    document = json.loads(path.read_text())
    for family in ("encryption", "blind_index"):
        ring = document[family]
        ring["keys"] = {ring["active"]: ring["keys"][ring["active"]]}
    path.write_text(json.dumps(document))
    own_keys()
    for number in numbers:
        found = client.post(
            LOOKUP, json={"document_number": number, "reveal": True}, headers=headers
        )
        assert found.status_code == 200, found.json
        assert (found.json["document_number"], found.json["phone"]) == (number, "13700000000")
    [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "keys.reencrypt"))
    assert event.details["persons"] == 1
