"""Idempotency-Key on the creating POSTs: a retry returns the first answer and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from registry_helpers import assert_error_shape, count_rows, today

from anjuka.cards.models import Card, CardJob
from anjuka.core.db import db
from anjuka.core.idempotency import IdempotencyKey, purge_expired
from anjuka.core.time import utcnow
from anjuka.residences.models import Residence
from anjuka.transfers.models import Transfer
from anjuka.verifications.models import Inspection


def _arrival(world, number: str, *, name: str = "王五", phone: str = "13700001111") -> dict:
    return {
        "dwelling_id": world.da,
        "arrived_on": today().isoformat(),
        "person": {
            "document_type": "resident_id",
            "document_number": number,
            "name": name,
            "phone": phone,
        },
    }


def _post(world, path: str, body: dict, key: str | None, role: str = "manager"):
    headers = dict(world.headers(role))
    if key is not None:
        headers["Idempotency-Key"] = key
    return world.client.post(f"/api/v1{path}", json=body, headers=headers)


def test_the_same_arrival_twice_with_one_key_registers_once_and_answers_twice_alike(world):
    body = _arrival(world, world.new_number())
    before = count_rows(Residence)
    first = _post(world, "/residences", body, "arrival-0001")
    again = _post(world, "/residences", body, "arrival-0001")
    assert first.status_code == again.status_code == 201, (first.json, again.json)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count_rows(Residence) == before + 1
    # Without the key the same request is a second arrival, refused as such.
    without = _post(world, "/residences", body, None)
    assert_error_shape(without, 409, "already_registered")


def test_the_same_key_with_another_body_is_refused_and_changes_nothing(world):
    first = _post(world, "/residences", _arrival(world, world.new_number()), "arrival-0002")
    assert first.status_code == 201, first.json
    before = count_rows(Residence)
    other = _post(world, "/residences", _arrival(world, world.new_number()), "arrival-0002")
    body = assert_error_shape(other, 422, "idempotency_key_reused")
    assert "Idempotency-Key" in body["errors"]
    assert count_rows(Residence) == before
    # The same body under another path is another request too.
    elsewhere = _post(
        world, f"/residences/{first.json['id']}/departure", _arrival(world, "x"), "arrival-0002"
    )
    assert_error_shape(elsewhere, 422, "idempotency_key_reused")


def test_keys_are_each_callers_own(world, create_user):
    other_desk = create_user("manager", [f"estate:{world.ea}"])
    body = _arrival(world, world.new_number())
    mine = _post(world, "/residences", body, "shared-key-01")
    assert mine.status_code == 201, mine.json
    theirs = world.client.post(
        "/api/v1/residences",
        json=_arrival(world, world.new_number()),
        headers={**other_desk["headers"], "Idempotency-Key": "shared-key-01"},
    )
    assert theirs.status_code == 201, theirs.json
    assert theirs.json["id"] != mine.json["id"]


def test_a_refused_request_keeps_no_answer_and_the_key_stays_free(world):
    number = world.new_number()
    bad = _arrival(world, number)
    bad["arrived_on"] = "not a date"
    refused = _post(world, "/residences", bad, "arrival-0003")
    assert_error_shape(refused, 422, "validation_error")
    assert count_rows(IdempotencyKey) == 0
    fixed = _post(world, "/residences", _arrival(world, number), "arrival-0003")
    assert fixed.status_code == 201, fixed.json


def test_a_refusal_that_keeps_its_record_leaves_the_key_free(world, create_user, new_id_number):
    """A transfer request audits its look-up whatever the answer (keep_on_refusal)."""
    body = {
        "dwelling_id": world.da,
        "arrived_on": today().isoformat(),
        "person": {"document_type": "resident_id", "document_number": new_id_number()},
    }
    refused = _post(world, "/transfers", body, "transfer-0001")
    assert_error_shape(refused, 409, "not_registered")
    body["person"]["document_number"] = world.number_b
    asked = _post(world, "/transfers", body, "transfer-0001")
    assert asked.status_code == 201, asked.json
    again = _post(world, "/transfers", body, "transfer-0001")
    assert (again.status_code, again.json) == (201, asked.json)
    assert count_rows(Transfer) == 1


def test_a_departure_retried_with_its_key_answers_as_the_first(world):
    body = {"departed_on": today().isoformat()}
    path = f"/residences/{world.ra['id']}/departure"
    first = _post(world, path, body, "departure-0001")
    again = _post(world, path, body, "departure-0001")
    assert first.status_code == again.status_code == 200, (first.json, again.json)
    assert again.json == first.json
    assert_error_shape(_post(world, path, body, None), 409, "already_departed")


def test_a_card_issue_retried_with_its_key_queues_one_card(world, card_desk):
    desk = card_desk(world.headers("admin"), "RA")
    body = {"residence_id": world.ra["id"], "reader_id": desk.reader_id}
    first = _post(world, "/cards", body, "card-issue-0001", role="admin")
    again = _post(world, "/cards", body, "card-issue-0001", role="admin")
    assert first.status_code == again.status_code == 202, (first.json, again.json)
    assert again.json == first.json
    assert count_rows(Card) == 1
    assert count_rows(CardJob) == 1


def test_a_verification_retried_with_its_key_records_one_inspection(world):
    body = {"document_type": "resident_id", "document_number": world.number_a}
    first = _post(world, "/verifications", body, "check-0001", role="officer")
    again = _post(world, "/verifications", body, "check-0001", role="officer")
    assert first.status_code == again.status_code == 201, (first.json, again.json)
    assert again.json == first.json
    assert count_rows(Inspection) == 1


@pytest.mark.parametrize("key", ["", "with space", "é" * 3, "k" * 256])
def test_a_malformed_key_is_refused(world, key):
    refused = world.client.post(
        "/api/v1/residences",
        json=_arrival(world, world.new_number()),
        headers={**world.headers("manager"), "Idempotency-Key": key.encode().decode("latin-1")},
    )
    assert_error_shape(refused, 422, "invalid_idempotency_key")
    assert count_rows(IdempotencyKey) == 0


def test_the_kept_answer_is_encrypted(world):
    body = _arrival(world, world.new_number(), name="钱七", phone="13600002222")
    assert _post(world, "/residences", body, "arrival-0004").status_code == 201
    stored = db.session.scalars(sa.select(IdempotencyKey)).one()
    assert stored.status_code == 201
    assert "钱七".encode() not in stored.answer_enc
    assert b"13600002222" not in stored.answer_enc


def test_keys_expire_and_the_sweep_deletes_them(app, world):
    from anjuka.alerts.commands import sweep

    body = _arrival(world, world.new_number())
    assert _post(world, "/residences", body, "arrival-0005").status_code == 201
    kept = _post(world, "/residences", _arrival(world, world.new_number()), "kept-0001")
    assert kept.status_code == 201
    lifetime = app.extensions["anjuka_config"].idempotency_lifetime
    assert lifetime == timedelta(hours=24)
    stored = db.session.scalars(
        sa.select(IdempotencyKey).where(IdempotencyKey.key == "arrival-0005")
    ).one()
    assert stored.expires_at - stored.created_at == lifetime
    stored.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    # An expired key is free again, even for another request.
    reused = _post(world, "/residences", _arrival(world, world.new_number()), "arrival-0005")
    assert reused.status_code == 201, reused.json
    db.session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    assert purge_expired() == 2
    db.session.commit()
    assert count_rows(IdempotencyKey) == 0
    # The sweep deletes them too.
    kept = _post(world, "/residences", _arrival(world, world.new_number()), "kept-0002")
    assert kept.status_code == 201
    db.session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    done = app.test_cli_runner().invoke(sweep, [])
    assert done.exit_code == 0, done.output
    assert "idempotency keys expired and deleted: 1" in done.output
    db.session.remove()
    assert count_rows(IdempotencyKey) == 0


def test_the_openapi_document_names_the_header_on_every_creating_post(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in (
        "/api/v1/residences",
        "/api/v1/residences/{residence_id}/departure",
        "/api/v1/cards",
        "/api/v1/verifications",
        "/api/v1/transfers",
    ):
        names = [p["name"] for p in paths[path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, path
