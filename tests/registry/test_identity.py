"""Identity documents: validation, masking, encryption at rest, blind index, key rotation."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from registry_helpers import assert_error_shape, count_rows, today

from anjuka.audit.models import AuditEvent
from anjuka.core.db import db
from anjuka.core.keys import load_keyring, rotate
from anjuka.core.protect import encryption_key_id
from anjuka.persons.identity import mask_document, resident_id_check_char
from anjuka.persons.models import Person

EXAMPLE = "11010519491231002X"


def _with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


def _person_body(number: str, document_type: str = "resident_id", **extra: object) -> dict:
    return {"document_type": document_type, "document_number": number, "name": "王芳", **extra}


def _arrival(client, headers, dwelling_id, person: dict):
    return client.post(
        "/api/v1/residences",
        json={"dwelling_id": dwelling_id, "arrived_on": today().isoformat(), "person": person},
        headers=headers,
    )


def _lookup(client, headers, number, document_type="resident_id", reveal=False):
    return client.post(
        "/api/v1/persons/lookup",
        json={"document_type": document_type, "document_number": number, "reveal": reveal},
        headers=headers,
    )


@pytest.fixture
def desk(create_area, create_estate, create_dwelling, create_user):
    """An area with a roomy dwelling, and a manager, an officer and an admin for it."""
    create_area("C1")
    estate = create_estate("C1")
    return {
        "dwelling": create_dwelling("C1", usable=500, rooms=50, estate_id=estate),
        "manager": create_user("manager", [f"estate:{estate}"])["headers"],
        "officer": create_user("officer", ["area:C1"]),
        "admin": create_user("admin")["headers"],
    }


@pytest.mark.parametrize(
    "number",
    [
        EXAMPLE,
        EXAMPLE.lower(),
        f" {EXAMPLE[:6]} {EXAMPLE[6:]} ",
        "１１０１０５１９４９１２３１００２ｘ",  # full-width, as Chinese input methods type it
    ],
)
def test_the_example_id_is_accepted_with_birth_date_and_sex(client, desk, number):
    arrived = _arrival(client, desk["manager"], desk["dwelling"], _person_body(number))
    assert arrived.status_code == 201, arrived.json
    masked = arrived.json["person"]
    assert masked["document_number"] == "1101**********002X"
    assert masked["document_masked"] is True
    assert masked["birth_date"] is None  # a manager sees no birth date
    assert masked["name"] == "王*"

    officer = desk["officer"]
    person_id = arrived.json["person_id"]
    revealed = client.get(f"/api/v1/persons/{person_id}?reveal=true", headers=officer["headers"])
    assert revealed.status_code == 200, revealed.json
    assert revealed.json["document_number"] == EXAMPLE
    assert revealed.json["document_masked"] is False
    assert revealed.json["birth_date"] == "1949-12-31"
    assert revealed.json["sex"] == "F"
    assert revealed.json["name"] == "王芳"

    reveals = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "person.reveal")
    ).all()
    assert len(reveals) == 1
    event = reveals[0]
    assert (event.subject_type, event.subject_id) == ("person", str(person_id))
    assert (event.actor_type, event.actor_id) == ("user", officer["id"])
    assert event.area_code == "C1"
    for row in db.session.scalars(sa.select(AuditEvent)):
        text = json.dumps({c.name: str(getattr(row, c.name)) for c in AuditEvent.__table__.columns})
        assert EXAMPLE not in text.upper()
        assert EXAMPLE[:17] not in text


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110105194912310021", "check digit"),
        ("11010519491231002Y", "a letter other than X"),
        ("11010519491231002", "17 characters"),
        ("1101051949123100211", "19 characters"),
        ("", "empty"),
        (_with_check("11010519490230002"), "30 February"),
        (_with_check("11010519491331002"), "month 13"),
        (_with_check("11010519491200002"), "day 0"),
        (_with_check("11010518001231002"), "born in 1800"),
        (_with_check("11010520991231002"), "born in the future"),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "Arabic-Indic digits"),
    ],
)
def test_invalid_resident_ids_are_refused(client, desk, number, why):
    refused = _arrival(client, desk["manager"], desk["dwelling"], _person_body(number))
    body = assert_error_shape(refused, 422)
    assert body["error"] in {"invalid_id_number", "validation_error"}, why
    if number:
        assert body["error"] == "invalid_id_number", why
        assert "document_number" in body["errors"]
    assert count_rows(Person) == 0
    looked_up = _lookup(client, desk["admin"], number or "0")
    assert looked_up.status_code == 422, why


def test_passports_and_other_documents(client, desk):
    passport = _person_body(
        "e1234 5678", "passport", name="John Smith", birth_date="1985-02-03", sex="M"
    )
    arrived = _arrival(client, desk["manager"], desk["dwelling"], passport)
    assert arrived.status_code == 201, arrived.json
    assert arrived.json["person"]["document_number"] == "E1*****78"
    person_id = arrived.json["person_id"]

    revealed = client.get(f"/api/v1/persons/{person_id}?reveal=true", headers=desk["admin"])
    assert revealed.json["document_number"] == "E12345678"
    assert revealed.json["birth_date"] == "1985-02-03"
    assert revealed.json["sex"] == "M"

    found = _lookup(client, desk["admin"], "E12345678", "passport")
    assert found.status_code == 200
    assert found.json["id"] == person_id
    # The same characters under another document type are another document.
    assert _lookup(client, desk["admin"], "E12345678", "hk_macao_permit").status_code == 404

    for bad in ("E12", "E1234-5678", "E" * 21, "护照12345"):
        refused = _arrival(client, desk["manager"], desk["dwelling"], _person_body(bad, "passport"))
        assert_error_shape(refused, 422, "invalid_id_number")
    unknown_type = _arrival(client, desk["manager"], desk["dwelling"], _person_body("X1", "visa"))
    assert_error_shape(unknown_type, 422, "validation_error")


def test_masks_never_show_most_of_a_number():
    assert mask_document(EXAMPLE) == "1101**********002X"
    for number in ("E12345678", "G1234567", "H12345", "A1234567890123"):
        masked = mask_document(number)
        assert len(masked) == len(number)
        assert masked.count("*") * 2 >= len(number), masked


def test_lookup_by_document_goes_through_the_blind_index(client, desk, create_user):
    arrived = _arrival(client, desk["manager"], desk["dwelling"], _person_body(EXAMPLE))
    person_id = arrived.json["person_id"]
    stored = db.session.get(Person, person_id)
    assert ":" in stored.document_index
    assert EXAMPLE not in stored.document_index

    for headers in (desk["manager"], desk["officer"]["headers"], desk["admin"]):
        found = _lookup(client, headers, EXAMPLE.lower())
        assert found.status_code == 200, found.json
        assert found.json["id"] == person_id
        assert found.json["document_number"] == "1101**********002X"
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "person.reveal")
        )
        == 0
    )

    revealed = _lookup(client, desk["officer"]["headers"], EXAMPLE, reveal=True)
    assert revealed.json["document_number"] == EXAMPLE
    assert_error_shape(
        _lookup(client, desk["manager"], EXAMPLE, reveal=True), 403, "reveal_not_allowed"
    )

    missing = _lookup(client, desk["admin"], _with_check("33020319900101123"))
    assert_error_shape(missing, 404, "person_not_found")
    # Someone known only outside the caller's scope is not found either.
    unscoped = create_user("officer", [])
    assert_error_shape(_lookup(client, unscoped["headers"], EXAMPLE), 404)
    # Numbers travel in bodies only: a GET with one in the URL is no route.
    assert client.get(f"/api/v1/persons/lookup?document_number={EXAMPLE}").status_code == 405


def _table_text(table: sa.Table) -> str:
    """Every value of ``table`` as text (bytes as latin-1, so any ASCII in them shows)."""
    out = []
    with db.engine.connect() as conn:
        for row in conn.execute(sa.select(table)):
            for value in row:
                if isinstance(value, bytes | bytearray | memoryview):
                    out.append(bytes(value).decode("latin-1"))
                else:
                    out.append(str(value))
    return "\n".join(out)


def _raw_table_bytes(table: str) -> bytes:
    """What the database holds on disk for ``table`` (the whole file on SQLite)."""
    if db.engine.dialect.name == "sqlite":
        # Close this process's connections first: opening and closing the file
        # here would drop their POSIX locks, and the next process to finish
        # with the database would then delete the WAL they still write to.
        db.session.remove()
        db.engine.dispose()
        path = Path(db.engine.url.database)
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    with db.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        return bytes(
            conn.execute(
                sa.text("SELECT pg_read_binary_file(pg_relation_filepath(:t))"), {"t": table}
            ).scalar_one()
        )


def test_the_clear_number_is_never_stored(client, desk, new_id_number):
    numbers = [EXAMPLE, new_id_number(date(1970, 1, 1)), new_id_number(date(2001, 7, 9))]
    for number in numbers:
        assert (
            _arrival(client, desk["manager"], desk["dwelling"], _person_body(number)).status_code
            == 201
        )
    passport = _arrival(
        client, desk["manager"], desk["dwelling"], _person_body("G87654321", "passport")
    )
    numbers.append("G87654321")
    # Reveals and look-ups leave audit events and token rows; none may hold a number.
    for number in numbers:
        kind = "passport" if number.startswith("G") else "resident_id"
        assert (
            _lookup(client, desk["officer"]["headers"], number, kind, reveal=True).status_code
            == 200
        )
    assert passport.status_code == 201
    db.session.commit()

    for table in db.metadata.sorted_tables:
        text = _table_text(table)
        for number in numbers:
            assert number not in text, (table.name, number)
    for table in ("persons", "audit_events"):
        raw = _raw_table_bytes(table)
        assert raw, table
        for number in numbers:
            assert number.encode() not in raw, (table, number)
            assert number.encode("utf-16-le") not in raw, (table, number)


def test_key_rotation_keeps_lookups_working_and_reencrypts(
    app, client, desk, new_id_number, tmp_path, monkeypatch
):
    from anjuka.persons.operations import reencrypt_all

    config = app.extensions["anjuka_config"]
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(app.extensions["anjuka_keys"].path.read_text())
    rotated_config = dataclasses.replace(config, keys_file=keys_file)

    def reload_keys() -> None:
        monkeypatch.setitem(app.extensions, "anjuka_keys", load_keyring(rotated_config))

    reload_keys()
    old_enc = app.extensions["anjuka_keys"].encryption[0]
    old_idx = app.extensions["anjuka_keys"].blind_index[0]
    before = [new_id_number(), new_id_number()]
    ids = {}
    for number in before:
        ids[number] = _arrival(
            client, desk["manager"], desk["dwelling"], _person_body(number)
        ).json["person_id"]

    from anjuka.dwellings.models import Dwelling
    from anjuka.dwellings.operations import reencrypt_landlords

    patched = client.patch(
        f"/api/v1/dwellings/{desk['dwelling']}",
        json={"landlord_phone": "13912345678"},
        headers=desk["manager"],
    )
    assert patched.status_code == 200, patched.json
    new_enc = rotate(keys_file, "encryption")
    new_idx = rotate(keys_file, "blind_index")
    assert (new_enc, new_idx) != (old_enc, old_idx)
    reload_keys()

    # Old rows are still found (every index key is tried) and still decrypt.
    for number in before:
        found = _lookup(client, desk["admin"], number, reveal=True)
        assert found.status_code == 200, found.json
        assert found.json["id"] == ids[number]
        assert found.json["document_number"] == number
    # A known person registering again is recognised, not duplicated.
    again = _arrival(client, desk["manager"], desk["dwelling"], _person_body(before[0]))
    assert_error_shape(again, 409, "already_registered")

    after = new_id_number()
    ids[after] = _arrival(client, desk["manager"], desk["dwelling"], _person_body(after)).json[
        "person_id"
    ]
    newest = db.session.get(Person, ids[after])
    assert encryption_key_id(newest.document_number_enc) == new_enc
    assert newest.document_index.startswith(f"{new_idx}:")

    assert reencrypt_all() == 2
    assert reencrypt_landlords() == 1
    db.session.commit()
    assert reencrypt_all() == 0
    assert reencrypt_landlords() == 0
    landlord = db.session.get(Dwelling, desk["dwelling"])
    assert encryption_key_id(landlord.landlord_phone_enc) == new_enc
    for person in db.session.scalars(sa.select(Person)):
        assert encryption_key_id(person.document_number_enc) == new_enc
        assert person.document_index.startswith(f"{new_idx}:")

    # With the old keys retired, everything still reads.
    document = json.loads(keys_file.read_text())
    del document["encryption"]["keys"][old_enc]
    del document["blind_index"]["keys"][old_idx]
    keys_file.write_text(json.dumps(document))
    reload_keys()
    for number, person_id in ids.items():
        found = _lookup(client, desk["admin"], number, reveal=True)
        assert found.status_code == 200, found.json
        assert (found.json["id"], found.json["document_number"]) == (person_id, number)
    db.session.expire_all()
    assert db.session.get(Dwelling, desk["dwelling"]).landlord_phone == "13912345678"
