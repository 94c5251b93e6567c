"""Per-card keys, signing-key rotation with cards in the field, ``anjuka readers``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from card_helpers import Daemon, new_uid

from anjuka import create_app
from anjuka.cards.signing import card_keys, derive_card_key
from anjuka.config import Config
from anjuka.core.db import db
from anjuka.core.keys import keyring
from cardreader.protocol.keys import parse_keys
from cardreader.record import decode_record, verify_record

ANJUKA = str(Path(sys.executable).with_name("anjuka"))


def test_per_card_keys_are_shaped_for_each_card_type_and_differ_per_chip(app):
    master_id = keyring().card_master[0]
    uid_a, uid_b = bytes.fromhex(new_uid()), bytes.fromhex(new_uid())
    cpu = card_keys(uid_a, "cpu", master_id)
    assert cpu["transport_key"] == "ff" * 16
    assert cpu == card_keys(uid_a, "cpu", master_id)  # derived again, the same
    assert cpu["write_key"] != cpu["internal_key"]
    assert cpu["write_key"] != card_keys(uid_b, "cpu", master_id)["write_key"]
    parse_keys("cpu", cpu)  # the daemon accepts them
    mifare = card_keys(uid_a, "mifare1k", master_id)
    assert mifare["key_a"] == b"ANJUKA".hex()  # the public read key
    assert mifare["transport_key"] == "ff" * 6
    assert len(bytes.fromhex(mifare["key_b"])) == 6
    parse_keys("mifare1k", mifare)
    # Purpose and card type separate the keys even for one master and UID.
    master = b"\x01" * 32
    assert derive_card_key(master, uid_a, "cpu", "write_key", 16) != derive_card_key(
        master, uid_a, "cpu", "internal_key", 16
    )
    assert derive_card_key(master, uid_a, "cpu", "key_b", 6) != derive_card_key(
        master, uid_a, "mifare1k", "key_b", 6
    )


def _command(args: list[str], database_url: str, instance: Path, keys_file: Path):  # type: ignore[no-untyped-def]
    db.session.rollback()  # SQLite: leave the write lock free for the command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANJUKA_", "FLASK_"))}
    env.update(
        ANJUKA_DATABASE_URL=database_url,
        ANJUKA_INSTANCE_PATH=str(instance),
        ANJUKA_KEYS_FILE=str(keys_file),
    )
    return subprocess.run(
        [ANJUKA, *args], env=env, cwd=instance, capture_output=True, text=True, timeout=60
    )


def test_rotating_the_signing_key_keeps_cards_in_the_field_verifiable(
    app, desk, tmp_path, keys_file
):
    old_card = desk.active_card()
    old_record = old_card["chip"]["record"]
    old_key_id = decode_record(old_record)[0].key_id

    db.session.rollback()  # SQLite: release this session's lock for the other app
    rotated = tmp_path / "keys.json"
    shutil.copy(keys_file, rotated)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    for family in ("signing", "card_master"):
        done = _command(["keys", "rotate", family], url, tmp_path, rotated)
        assert done.returncode == 0, done.stderr
    shown = _command(["keys", "show"], url, tmp_path, rotated).stdout
    assert f"signing {old_key_id}:" in shown
    assert f"signing {old_key_id + 1} (active):" in shown

    # The restarted server: same database, rotated keys.
    restarted = create_app(
        Config(instance_path=tmp_path, database_url=url, keys_file=rotated, testing=True)
    )
    try:
        client = restarted.test_client()
        residence = desk.arrive_here()
        db.session.rollback()
        issued = client.post(
            "/api/v1/cards",
            json={"residence_id": residence["id"], "reader_id": desk.reader_id},
            headers=desk.headers,
        )
        assert issued.status_code == 202, issued.json
        chip = Daemon(client, desk.reader_id, desk.daemon.token).issue()
        with restarted.app_context():
            ring = keyring()
            public = ring.signing_public_keys()
            assert set(public) == {old_key_id, old_key_id + 1}
            new = verify_record(chip["record"], bytes.fromhex(chip["uid"]), public)
            assert new.key_id == old_key_id + 1
            # The card issued before the rotation still verifies...
            old = verify_record(old_record, bytes.fromhex(old_card["uid"]), public)
            assert old.card_no == old_card["card_no"]
            # ...and its erase gets the keys it was written with, not the new master's.
            returned = client.post(
                f"/api/v1/cards/{old_card['card_no']}/return", json={}, headers=desk.headers
            )
            assert returned.status_code == 202, returned.json
            erase = Daemon(client, desk.reader_id, desk.daemon.token).next_job()
            assert erase["keys"] == old_card["chip"]["bound"]["keys"]
            new_master = ring.card_master[0]
            assert erase["keys"] != card_keys(bytes.fromhex(old_card["uid"]), "cpu", new_master)
            db.session.remove()
    finally:
        with restarted.app_context():
            db.engine.dispose()


def test_readers_create_prints_an_id_and_a_token_that_works(app, desk, tmp_path, keys_file):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    made = _command(
        ["readers", "create", "front-desk", "--estate", str(desk.estate_id)],
        url,
        tmp_path,
        keys_file,
    )
    assert made.returncode == 0, made.stderr
    lines = dict(
        line.split(": ", 1)
        for line in made.stdout.splitlines()
        if line.startswith(("id:", "token:"))
    )
    reader_id, token = int(lines["id"]), lines["token"]
    assert token.startswith("ajr_")
    me = desk.client.get("/api/v1/readers/me", headers={"Authorization": f"Bearer {token}"})
    assert (me.status_code, me.json["id"], me.json["name"]) == (200, reader_id, "front-desk")
    # The new reader serves the estate: a desk may issue there.
    assert desk.issue(desk.arrive_here()["id"], reader_id=reader_id).status_code == 202

    listed = _command(["readers", "list"], url, tmp_path, keys_file)
    assert f"{reader_id}\tfront-desk\testate {desk.estate_id}\tactive" in listed.stdout
    assert token not in listed.stdout
    twice = _command(["readers", "create", "front-desk"], url, tmp_path, keys_file)
    assert twice.returncode != 0
    assert "reader_exists" in twice.stderr
    both = _command(
        ["readers", "create", "x", "--area", desk.area_code, "--estate", "1"],
        url,
        tmp_path,
        keys_file,
    )
    assert both.returncode != 0
    revoked = _command(["readers", "revoke", str(reader_id)], url, tmp_path, keys_file)
    assert revoked.returncode == 0, revoked.stderr
    assert "1 open jobs cancelled" in revoked.stdout
    me = desk.client.get("/api/v1/readers/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


@pytest.mark.parametrize("scope", [["--area", "NOPE"], ["--estate", "999999"]])
def test_readers_create_refuses_an_unknown_scope(app, tmp_path, keys_file, scope):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    made = _command(["readers", "create", "desk", *scope], url, tmp_path, keys_file)
    assert made.returncode != 0
    assert "unknown_" in made.stderr
