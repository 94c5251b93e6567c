"""Migration 0002_cards builds exactly the card tables of the models, and goes down again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from throwaway_db import throwaway_database

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db

PG_ADMIN_URL = os.environ.get("ANJUKA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
CARD_TABLES = {"readers", "cards", "card_jobs", "card_serials"}


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(backend, tmp_path, "anjuka_mig") as url:
        yield url


def _card_differences(connection: sa.Connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})

    def about_cards(diff: object) -> bool:
        text = repr(diff)
        return any(f"'{table}'" in text or f"{table}." in text for table in CARD_TABLES)

    flat = []
    for diff in compare_metadata(context, db.metadata):
        flat.extend(diff if isinstance(diff, list) else [diff])
    return [d for d in flat if about_cards(d)]


def test_upgrade_head_matches_the_models_and_0002_goes_down_and_up(
    empty_database, tmp_path, keys_file
):
    app = create_app(
        Config(
            instance_path=tmp_path, database_url=empty_database, keys_file=keys_file, testing=True
        )
    )
    try:
        with app.app_context():
            upgrade()
            with db.engine.connect() as connection:
                assert _card_differences(connection) == []
                indexes = {i["name"] for i in sa.inspect(connection).get_indexes("cards")}
                assert {"uq_cards_active_person", "uq_cards_pending_person"} <= indexes
            downgrade(revision="0001_registry_core")
            with db.engine.connect() as connection:
                assert not CARD_TABLES & set(sa.inspect(connection).get_table_names())
            upgrade()
            with db.engine.connect() as connection:
                assert set(sa.inspect(connection).get_table_names()) >= CARD_TABLES
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_0006_lists_the_records_jobs_already_hold(empty_database, tmp_path, keys_file):
    """Records signed before card_chips existed: done ones activated, failed ones withdrawn."""
    from anjuka.auth.operations import create_user
    from anjuka.cards.jobs import MAX_ATTEMPTS
    from anjuka.cards.models import CardChip, CardJob
    from anjuka.cards.readers import create_reader
    from anjuka.persons.identity import resident_id_check_char

    app = create_app(
        Config(
            instance_path=tmp_path, database_url=empty_database, keys_file=keys_file, testing=True
        )
    )
    try:
        with app.app_context():
            upgrade()
            create_user("root", "admin", "correct horse battery", [])
            reader, reader_token = create_reader("desk-m")
            base = f"/api/v1/readers/{reader.id}/jobs"
            reader_id = reader.id
            db.session.commit()
            client = app.test_client()

            def call(method: str, path: str, status: int, token: str, body: dict):  # type: ignore[no-untyped-def]
                answer = client.open(
                    path, method=method, json=body, headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status_code == status, answer.get_data(as_text=True)
                return answer.json

            password = {"username": "root", "password": "correct horse battery"}
            admin = client.post("/api/v1/auth/tokens", json=password).json["token"]
            call("POST", "/api/v1/areas", 201, admin, {"code": "M", "name": "M"})
            dwelling = call(
                "POST",
                "/api/v1/dwellings",
                201,
                admin,
                {"area_code": "M", "address": "1 Road", "usable_area_m2": 200, "rooms": 20},
            )["id"]
            records = {}
            for n, ending in enumerate(("done", "failed", "open")):
                first17 = f"33020319900101{n:03d}"
                person = {
                    "document_type": "resident_id",
                    "document_number": first17 + resident_id_check_char(first17),
                    "name": "李四",
                }
                residence = call(
                    "POST",
                    "/api/v1/residences",
                    201,
                    admin,
                    {"dwelling_id": dwelling, "arrived_on": "2026-01-05", "person": person},
                )["id"]
                call(
                    "POST",
                    "/api/v1/cards",
                    202,
                    admin,
                    {"residence_id": residence, "reader_id": reader_id},
                )
                job_id = client.get(
                    f"{base}/next?wait=0", headers={"Authorization": f"Bearer {reader_token}"}
                ).json["id"]
                uid = f"0{n}a1b2c3"
                bound = {"uid": uid, "card_type": "cpu"}
                record = call("POST", f"{base}/{job_id}/uid", 200, reader_token, bound)["record"]
                records[ending] = bytes.fromhex(record)
                if ending == "done":
                    done = {"outcome": "done", "uid": uid, "record": record}
                    call("POST", f"{base}/{job_id}/result", 200, reader_token, done)
                elif ending == "failed":
                    db.session.execute(
                        sa.update(CardJob).where(CardJob.id == job_id).values(attempt=MAX_ATTEMPTS)
                    )
                    db.session.commit()
                    failed = {"outcome": "failed", "error": "read-back failed"}
                    call("POST", f"{base}/{job_id}/result", 200, reader_token, failed)
            # Down to the revision before 0006, wherever the chain puts it, and up again.
            config = app.extensions["migrate"].migrate.get_config()
            before = ScriptDirectory.from_config(config).get_revision("0007_card_chips")
            downgrade(revision=before.down_revision)
            upgrade()
            db.session.expire_all()
            chips = {c.record_digest: c for c in db.session.scalars(sa.select(CardChip))}
            assert len(chips) == 3
            done, failed, still_open = (
                chips[hashlib.sha256(records[e]).hexdigest()] for e in ("done", "failed", "open")
            )
            assert (done.activated_at is not None, done.withdrawn_at) == (True, None)
            assert (failed.withdrawn_reason, failed.activated_at) == ("failed", None)
            assert failed.withdrawn_at is not None
            assert (still_open.activated_at, still_open.withdrawn_at) == (None, None)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
