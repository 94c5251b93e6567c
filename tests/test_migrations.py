"""The migrations build exactly the schema the models declare, and every one goes down and up.

Whatever chain of revisions exists is covered: the test walks the script
directory, so a migration added later is tested as soon as it lands.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import flask_migrate
import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db


def _pg_admin_url() -> str:
    return os.environ.get("ANJUKA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def make_app(backend: str, tmp_path: Path) -> Iterator:
    """Factory: an app on a new, empty database of this backend."""
    apps: list[Flask] = []
    databases: list[str] = []

    def make() -> Flask:
        n = len(apps)
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'migrations-{n}.sqlite3'}"
        else:
            name = f"anjuka_migrations_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            databases.append(name)
            url = f"{_pg_admin_url().rsplit('/', 1)[0]}/{name}"
        config = Config(instance_path=tmp_path / f"instance-{n}", database_url=url, testing=True)
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    for name in databases:
        with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _revisions() -> list[tuple[str, str]]:
    """(revision, down revision or "base") from the first to the head."""
    config = current_app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    heads = script.get_heads()
    assert len(heads) == 1, f"the migrations must form one line, not {heads}"
    chain = list(reversed(list(script.walk_revisions("base", "heads"))))
    return [(rev.revision, rev.down_revision or "base") for rev in chain]  # type: ignore[misc]


def _differences() -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, db.metadata)
        dialect = conn.dialect.name
    # Alembic does not read ``ddl_if``: an index the models make on PostgreSQL only
    # (the address trigrams) is rightly absent from SQLite.
    return [d for d in differences if not _other_dialects_only(d, dialect)]


def _other_dialects_only(difference: object, dialect: str) -> bool:
    if not (isinstance(difference, tuple) and difference[0] == "add_index"):
        return False
    # Alembic hands over a copy of the index: the models' own carries the condition.
    copy = difference[1]
    declared = {index.name: index for index in db.metadata.tables[copy.table.name].indexes}
    condition = getattr(declared.get(copy.name), "_ddl_if", None)
    if condition is None or condition.dialect is None:
        return False
    wanted = condition.dialect
    return dialect not in ((wanted,) if isinstance(wanted, str) else wanted)


def _normalise(text: str | None) -> str | None:
    return None if text is None else " ".join(str(text).replace('"', "").split()).lower()


def _schema() -> dict:
    """Everything about the tables that matters: columns, keys, indexes (with WHERE), checks."""
    inspector = sa.inspect(db.engine)
    tables = {}
    for name in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        indexes = {}
        for index in inspector.get_indexes(name):
            options = index.get("dialect_options", {})
            where = options.get("postgresql_where") or options.get("sqlite_where")
            indexes[index["name"]] = (
                tuple(index["column_names"]),
                bool(index["unique"]),
                _normalise(where),
            )
        tables[name] = {
            "columns": {
                c["name"]: (
                    str(c["type"].compile(dialect=db.engine.dialect)),
                    c["nullable"],
                    _normalise(c.get("default")),
                )
                for c in inspector.get_columns(name)
            },
            "primary_key": tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            "foreign_keys": sorted(
                (fk["name"] or "", tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(name)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(name)
            ),
            "indexes": indexes,
            "checks": sorted(
                (c["name"] or "", _normalise(c["sqltext"]))
                for c in inspector.get_check_constraints(name)
            ),
        }
    return tables


def test_upgrade_head_builds_exactly_the_models_schema(make_app):
    migrated = make_app()
    with migrated.app_context():
        flask_migrate.upgrade()
        assert _differences() == []
        from_migrations = _schema()
    created = make_app()
    with created.app_context():
        db.create_all()
        from_models = _schema()
    assert set(from_migrations) == set(from_models)
    differing = {
        table: {"migrations": from_migrations[table], "models": from_models[table]}
        for table in from_models
        if from_migrations[table] != from_models[table]
    }
    assert not differing
    # The invariants the registry relies on are really there.
    indexes = from_migrations["residences"]["indexes"]
    columns, unique, where = indexes["uq_residences_current_person"]
    assert (columns, unique) == (("person_id",), True)
    assert "departed_on is null" in where


def test_every_migration_goes_down_and_up(make_app):
    app = make_app()
    with app.app_context():
        revisions = _revisions()
        assert revisions[0] == ("0001_registry_core", "base")
        for revision, down in revisions:
            flask_migrate.upgrade(revision=revision)
            flask_migrate.downgrade(revision=down)
            flask_migrate.upgrade(revision=revision)
        flask_migrate.downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade()
        assert _differences() == []


def test_phones_in_clear_are_encrypted_by_the_upgrade_and_bound_by_reencrypt(make_app):
    """Rows written before 0007: clear phones and unbound document ciphertexts."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from anjuka.core.keys import keyring
    from anjuka.core.protect import is_current
    from anjuka.dwellings.models import Dwelling
    from anjuka.persons.models import Person
    from anjuka.persons.operations import reencrypt_all

    app = make_app()
    with app.app_context():
        flask_migrate.upgrade(revision="0004_transfers")
        key_id, keys = keyring().encryption
        nonce = os.urandom(12)
        legacy = (
            key_id.encode()
            + b"\x00"
            + nonce
            + AESGCM(keys[key_id]).encrypt(nonce, b"110105194912310021", b"person.document_number")
        )
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO persons (document_type, document_number_enc, document_index,"
                    " document_masked, name, phone, created_at) VALUES ('resident_id', :enc,"
                    " 'b1:old', '1101**********0021', '张三', '13800001234', :now)"
                ),
                {"enc": legacy, "now": "2026-01-01 00:00:00+00:00"},
            )
            conn.execute(sa.text("INSERT INTO areas (code, name, path) VALUES ('M', 'M', '/M/')"))
            conn.execute(
                sa.text(
                    "INSERT INTO dwellings (area_id, address, landlord_name, landlord_phone,"
                    " usable_area_m2, rooms, status, created_at) SELECT id, '1 Old Road', '李四',"
                    " '13912345678', 20, 2, 'rentable', :now FROM areas WHERE code = 'M'"
                ),
                {"now": "2026-01-01 00:00:00+00:00"},
            )
        flask_migrate.upgrade()
        person = db.session.scalars(sa.select(Person)).one()
        dwelling = db.session.scalars(sa.select(Dwelling)).one()
        assert (person.phone, person.phone_masked) == ("13800001234", "1******1234")
        assert (dwelling.landlord_phone, dwelling.landlord_phone_masked) == (
            "13912345678",
            "1******5678",
        )
        assert b"13800001234" not in person.phone_enc
        # The legacy document ciphertext still reads, and reencrypt binds it to its row.
        assert person.document_number == "110105194912310021"
        assert not is_current(person.document_number_enc)
        assert reencrypt_all() == 1
        db.session.commit()
        assert is_current(person.document_number_enc)
        assert person.document_number == "110105194912310021"
        assert reencrypt_all() == 0
        db.session.remove()
        flask_migrate.downgrade(revision="0004_transfers")
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT phone FROM persons")).scalar_one() == "13800001234"
            assert (
                conn.execute(sa.text("SELECT landlord_phone FROM dwellings")).scalar_one()
                == "13912345678"
            )


def test_every_migration_goes_down_and_up_over_a_registry_in_use(make_app):
    """Rows that point at each other (residences, alerts and their deliveries, transfers):
    on SQLite a table copied to change a CHECK or drop a column must keep them all."""
    from anjuka.auth.operations import create_user
    from anjuka.core.time import local_today

    app = make_app()
    with app.app_context():
        flask_migrate.upgrade()
        create_user("root", "admin", "correct horse battery", [])
        db.session.commit()
        client = app.test_client()
        token = client.post(
            "/api/v1/auth/tokens", json={"username": "root", "password": "correct horse battery"}
        ).json["token"]
        headers = {"Authorization": f"Bearer {token}"}

        def post(path: str, body: dict) -> dict:
            response = client.post(f"/api/v1{path}", json=body, headers=headers)
            assert response.status_code in (200, 201), (path, response.json)
            return response.json

        post("/areas", {"code": "MU", "name": "In use"})
        homes = [
            post(
                "/dwellings",
                {
                    "area_code": "MU",
                    "address": f"{n} Use Road",
                    "usable_area_m2": 40,
                    "rooms": 4,
                    "landlord_name": "李四",
                    "landlord_phone": "13912345678",
                },
            )
            for n in range(2)
        ]
        post("/webhooks", {"area_code": "MU", "url": "http://127.0.0.1:9/hook"})
        late = (local_today() - timedelta(days=30)).isoformat()
        person = {
            "document_type": "resident_id",
            "document_number": "11010519491231002X",
            "name": "张三",
            "phone": "13800001234",
        }
        post("/residences", {"dwelling_id": homes[0]["id"], "arrived_on": late, "person": person})
        post(
            "/transfers",
            {
                "dwelling_id": homes[1]["id"],
                "arrived_on": local_today().isoformat(),
                "person": {k: person[k] for k in ("document_type", "document_number")},
            },
        )
        db.session.commit()
        db.session.remove()

        def counts() -> dict[str, int]:
            names = (
                "persons",
                "residences",
                "dwellings",
                "alerts",
                "webhook_deliveries",
                "audit_events",
            )
            with db.engine.connect() as conn:
                return {
                    n: conn.execute(sa.text(f"SELECT count(*) FROM {n}")).scalar_one()
                    for n in names
                }

        at_head = counts()
        assert at_head["webhook_deliveries"] >= 1
        for _revision, down in reversed(_revisions()[3:]):  # down to 0003_alerts, then back
            flask_migrate.downgrade(revision=down)
        kept = counts()
        # Only the alerts of kinds the old schema lacks go; everything else stays.
        assert {k: v for k, v in kept.items() if k not in ("alerts", "webhook_deliveries")} == {
            k: v for k, v in at_head.items() if k not in ("alerts", "webhook_deliveries")
        }
        flask_migrate.upgrade()
        assert _differences() == []
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:
                assert conn.execute(sa.text("PRAGMA foreign_key_check")).all() == []
        with db.engine.connect() as conn:
            phone_enc = conn.execute(sa.text("SELECT phone_enc FROM persons")).scalar_one()
        assert phone_enc is not None
        db.session.remove()
