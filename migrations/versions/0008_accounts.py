"""accounts: token kinds (bearer or browser session), the bulk_lookup alert, no lockout columns

Sign-in throttling moved to Flask-Limiter (per name and address, per address), so
users.failed_logins and users.locked_until go; api_tokens.kind tells a browser
session from a bearer token for the owner's list; alerts may be of kind bulk_lookup.

Revision ID: 0008_accounts
Revises: 0007_card_chips
Create Date: 2026-11-30 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from anjuka.core.migration_ops import replace_check

revision = "0008_accounts"
down_revision = "0007_card_chips"
branch_labels = None
depends_on = None

KINDS_BEFORE = (
    "over_occupancy",
    "illegal_dwelling_occupied",
    "revoked_card_presented",
    "clone_suspected",
    "card_not_returned",
    "late_registration",
    "registration_expiring",
    "card_expiring",
    "reader_offline",
    "transfer_requested",
)
KINDS_AFTER = KINDS_BEFORE + ("bulk_lookup",)


def _kind_check(kinds):
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _replace_kind_check(kinds):
    replace_check(
        "alerts",
        op.f("ck_alerts_kind_known"),
        _kind_check(kinds),
        referenced_by=("webhook_deliveries",),
    )


def upgrade():
    _replace_kind_check(KINDS_AFTER)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="token", nullable=False)
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_api_tokens_kind_known"), "kind IN ('token', 'session')"
        )

    # Plain ALTER TABLE .. DROP COLUMN (SQLite 3.35+ too): a batch would copy the
    # users table, and SQLite refuses to drop a table that tokens, scopes and
    # alerts still point at.
    op.drop_column("users", "locked_until")
    op.drop_column("users", "failed_logins")


def downgrade():
    # Added in place (see upgrade); the default fills the rows already there.
    op.add_column(
        "users", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_api_tokens_kind_known"), type_="check")
        batch_op.drop_column("kind")

    # The old schema cannot hold these alerts (nor their webhook deliveries).
    op.execute(
        "DELETE FROM webhook_deliveries WHERE alert_id IN"
        " (SELECT id FROM alerts WHERE kind = 'bulk_lookup')"
    )
    op.execute("DELETE FROM alerts WHERE kind = 'bulk_lookup'")
    _replace_kind_check(KINDS_BEFORE)
