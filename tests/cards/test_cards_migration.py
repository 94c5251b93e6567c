"""Migration 0002_cards builds exactly the card tables of the models, and goes down again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from throwaway_db import throwaway_database

from anjuka import create_app
from anjuka.config import Config
from anjuka.extensions import db

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
