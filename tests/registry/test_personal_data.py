"""Personal data beyond document numbers: masks, landlords, phones at rest, row binding."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from anjuka import create_app
from anjuka.audit.models import AuditEvent
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.privacy import mask_name, mask_phone
from anjuka.core.protect import RecordTampered
from anjuka.dwellings.models import Dwelling
from anjuka.persons.identity import mask_document
from anjuka.persons.models import Person

LANDLORD = {"landlord_name": "王小明", "landlord_phone": "13912345678"}


@given(st.text(min_size=1, max_size=60))
def test_every_mask_hides_at_least_half_of_every_length(value: str):
    for masked in (mask_document(value), mask_name(value), mask_phone(value)):
        assert len(masked) == len(value)
        shown = sum(1 for a, b in zip(masked, value, strict=True) if a == b and a != "*")
        assert shown * 2 <= len(value), (value, masked)


def test_masks_of_common_lengths():
    assert mask_document("110105194912310021") == "1101**********0021"  # 18: 8 shown
    assert mask_document("110105491231002") == "110********1002"  # 15: 7 shown, not 8
    assert mask_phone("13800001234") == "1******1234"  # 11: 5 shown
    assert mask_phone("12345678") == "1****678"  # 8: 4 shown, not 7
    assert mask_name("张三") == "张*"
    assert mask_name("A") == "*"


@pytest.fixture
def landlord_desk(create_area, create_estate, create_dwelling, create_user, client):
    create_area("L")
    estate = create_estate("L")
    manager = create_user("manager", [f"estate:{estate}"])
    created = client.post(
        "/api/v1/dwellings",
        json={
            "area_code": "L",
            "estate_id": estate,
            "address": "8 Landlord Lane",
            "usable_area_m2": 40,
            "rooms": 2,
            **LANDLORD,
        },
        headers=manager["headers"],
    )
    assert created.status_code == 201, created.json
    return {
        "dwelling": created.json,
        "manager": manager,
        "officer": create_user("officer", ["area:L"]),
        "supervisor": create_user("supervisor", ["area:L"]),
    }


def _all_audit_text() -> str:
    events = db.session.scalars(sa.select(AuditEvent)).all()
    return json.dumps([e.details for e in events], ensure_ascii=False)


def test_landlords_are_masked_for_every_reader_and_revealed_only_on_request(client, landlord_desk):
    dwelling = landlord_desk["dwelling"]
    assert (dwelling["landlord_name"], dwelling["landlord_phone"]) == ("王**", "1******5678")
    for who in ("manager", "officer", "supervisor"):
        headers = landlord_desk[who]["headers"]
        one = client.get(f"/api/v1/dwellings/{dwelling['id']}", headers=headers).json
        [listed] = client.get("/api/v1/dwellings", headers=headers).json
        for view in (one, listed):
            assert (view["landlord_name"], view["landlord_phone"]) == ("王**", "1******5678")

    refused = client.get(
        f"/api/v1/dwellings/{dwelling['id']}?reveal=true",
        headers=landlord_desk["manager"]["headers"],
    )
    assert (refused.status_code, refused.json["error"]) == (403, "reveal_not_allowed")
    revealed = client.get(
        f"/api/v1/dwellings/{dwelling['id']}?reveal=true",
        headers=landlord_desk["officer"]["headers"],
    ).json
    assert (revealed["landlord_name"], revealed["landlord_phone"]) == tuple(LANDLORD.values())
    [event] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "dwelling.reveal")
    )
    assert event.details["fields"] == ["landlord_name", "landlord_phone"]
    assert event.actor_id == landlord_desk["officer"]["id"]


def test_audit_details_name_personal_fields_and_never_hold_their_values(client, landlord_desk):
    dwelling = landlord_desk["dwelling"]
    patched = client.patch(
        f"/api/v1/dwellings/{dwelling['id']}",
        json={"landlord_name": "赵大海", "landlord_phone": "+86 139 0000 1111", "rooms": 3},
        headers=landlord_desk["manager"]["headers"],
    )
    assert patched.status_code == 200, patched.json
    text = _all_audit_text()
    for value in ("王小明", "13912345678", "赵大海", "139 0000 1111"):
        assert value not in text
    [update] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "dwelling.update")
    )
    assert update.details == {"rooms": 3, "personal_fields": ["landlord_name", "landlord_phone"]}
    [create] = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "dwelling.create")
    )
    assert create.details["personal_fields"] == ["landlord_name", "landlord_phone"]


def test_phones_are_encrypted_at_rest(client, landlord_desk, arrive):
    arrived = arrive(
        landlord_desk["manager"]["headers"], landlord_desk["dwelling"]["id"], phone="13700007777"
    )
    assert arrived.status_code == 201, arrived.json
    assert arrived.json["person"]["phone"] == "1******7777"
    db.session.commit()  # SQLite: let the raw connection read
    with db.engine.connect() as conn:
        rows = [
            *conn.execute(sa.text("SELECT * FROM persons")).all(),
            *conn.execute(sa.text("SELECT * FROM dwellings")).all(),
        ]
    raw = repr(rows)
    assert "13700007777" not in raw
    assert "13912345678" not in raw


def test_a_reveal_names_every_field_it_unmasks(client, landlord_desk, arrive, new_id_number):
    arrived = arrive(
        landlord_desk["manager"]["headers"],
        landlord_desk["dwelling"]["id"],
        number=new_id_number(),
        phone="13700007777",
    ).json
    shown = client.get(
        f"/api/v1/persons/{arrived['person_id']}?reveal=true",
        headers=landlord_desk["supervisor"]["headers"],
    ).json
    assert shown["phone"] == "13700007777"
    assert shown["name"] == "张三"
    [event] = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "person.reveal"))
    assert event.details["fields"] == ["birth_date", "document_number", "name", "phone"]


@pytest.mark.parametrize("column", ["document_number_enc", "phone_enc"])
def test_two_rows_ciphertexts_swapped_in_the_table_no_longer_decrypt(
    client, landlord_desk, arrive, new_id_number, column
):
    headers = landlord_desk["manager"]["headers"]
    first = arrive(
        headers, landlord_desk["dwelling"]["id"], number=new_id_number(), phone="13700000001"
    ).json
    second = arrive(
        headers, landlord_desk["dwelling"]["id"], number=new_id_number(), phone="13700000002"
    ).json
    ids = (first["person_id"], second["person_id"])
    db.session.commit()  # SQLite: let the raw connection write
    with db.engine.begin() as conn:
        a, b = (
            conn.execute(
                sa.text(f"SELECT {column} FROM persons WHERE id = :id"), {"id": i}
            ).scalar_one()
            for i in ids
        )
        for person_id, value in zip(ids, (b, a), strict=True):
            conn.execute(
                sa.text(f"UPDATE persons SET {column} = :value WHERE id = :id"),
                {"value": value, "id": person_id},
            )
    db.session.expire_all()
    person = db.session.get(Person, ids[0])
    with pytest.raises(RecordTampered):
        _ = person.document_number if column == "document_number_enc" else person.phone
    answered = client.get(
        f"/api/v1/persons/{ids[0]}?reveal=true", headers=landlord_desk["supervisor"]["headers"]
    )
    assert (answered.status_code, answered.json["error"]) == (500, "record_tampered")
    assert "1370000000" not in answered.get_data(as_text=True)
    # Nothing of the failed reveal was kept.
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "person.reveal")
        )
        == 0
    )


def test_a_landlords_phone_moved_to_another_dwelling_no_longer_decrypts(
    client, landlord_desk, create_dwelling
):
    other = create_dwelling("L")
    db.session.commit()  # SQLite: let the raw connection write
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE dwellings SET landlord_phone_enc = (SELECT landlord_phone_enc FROM"
                " dwellings WHERE id = :src) WHERE id = :dst"
            ),
            {"src": landlord_desk["dwelling"]["id"], "dst": other},
        )
    db.session.expire_all()
    with pytest.raises(RecordTampered):
        _ = db.session.get(Dwelling, other).landlord_phone


def test_the_sqlite_file_and_instance_folder_are_the_owners_only(tmp_path: Path, keys_file: Path):
    instance = tmp_path / "fresh-instance"
    app = create_app(Config(instance_path=instance, keys_file=keys_file, testing=True))
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    database = instance / "anjuka.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for companion in instance.glob("anjuka.sqlite3-*"):
        assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0, companion
