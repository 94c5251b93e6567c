"""0008_accounts on a registry in use: users with tokens, alerts with webhook deliveries.

On SQLite a CHECK changes only by copying the table, and SQLite refuses to
drop the old ``alerts`` while deliveries point at it, or ``users`` while
tokens do; the migration must go down and up over such rows, keeping them.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from anjuka import create_app
from anjuka.config import Config
from anjuka.core.db import db


def test_0005_goes_down_and_up_over_tokens_alerts_and_deliveries(
    fresh_database: str, tmp_path: Path, keys_file: Path
):
    from anjuka.alerts.models import Alert
    from anjuka.alerts.operations import raise_alert
    from anjuka.areas.operations import create_area
    from anjuka.auth.models import ApiToken
    from anjuka.auth.operations import create_user, issue_token
    from anjuka.core.security import Identity
    from anjuka.notifications.models import WebhookDelivery
    from anjuka.notifications.operations import create_subscription

    app = create_app(
        Config(
            instance_path=tmp_path, database_url=fresh_database, keys_file=keys_file, testing=True
        )
    )
    try:
        with app.app_context():
            upgrade()
            area = create_area("MG", "Migrated", None, {})
            admin = create_user("root", "admin", "correct horse battery", [])
            issue_token(admin, kind="session")
            create_subscription(Identity("user", admin.id, "root", "admin"), area, "http://x", None)
            raise_alert("over_occupancy", "dwelling", 1, area_id=area.id)
            raise_alert("bulk_lookup", "user", admin.id, area_id=area.id)
            db.session.commit()
            assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)) == 2

            config = app.extensions["migrate"].migrate.get_config()
            before = ScriptDirectory.from_config(config).get_revision("0008_accounts")
            db.session.remove()
            downgrade(revision=before.down_revision)
            kinds = db.session.execute(sa.text("SELECT kind FROM alerts")).scalars().all()
            assert kinds == ["over_occupancy"]  # the old schema cannot hold bulk_lookup
            users = db.session.execute(sa.text("SELECT failed_logins FROM users")).all()
            assert users == [(0,)]
            db.session.remove()
            upgrade()
            assert [a.kind for a in db.session.scalars(sa.select(Alert))] == ["over_occupancy"]
            (delivery,) = db.session.scalars(sa.select(WebhookDelivery))
            assert delivery.alert.kind == "over_occupancy"
            # The session kept its row; written when there were no kinds, it reads as a token.
            assert db.session.scalars(sa.select(ApiToken.kind)).all() == ["token"]
            if db.engine.dialect.name == "sqlite":
                assert db.session.execute(sa.text("PRAGMA foreign_key_check")).all() == []
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
