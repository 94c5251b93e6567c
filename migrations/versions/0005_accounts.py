"""accounts: token kinds (bearer or browser session), the bulk_lookup alert, no lockout columns

Sign-in throttling moved to Flask-Limiter (per name and address, per address), so
users.failed_logins and users.locked_until go; api_tokens.kind tells a browser
session from a bearer token for the owner's list; alerts may be of kind bulk_lookup.

Revision ID: 0005_accounts
Revises: 0006_card_chips
Create Date: 2026-11-30 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_accounts"
down_revision = "0006_card_chips"
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


def upgrade():
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_alerts_kind_known"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_alerts_kind_known"), _kind_check(KINDS_AFTER)
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="token", nullable=False)
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_api_tokens_kind_known"), "kind IN ('token', 'session')"
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("failed_logins", server_default=None)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_api_tokens_kind_known"), type_="check")
        batch_op.drop_column("kind")

    # The old schema cannot hold these alerts (nor their webhook deliveries).
    op.execute(
        "DELETE FROM webhook_deliveries WHERE alert_id IN"
        " (SELECT id FROM alerts WHERE kind = 'bulk_lookup')"
    )
    op.execute("DELETE FROM alerts WHERE kind = 'bulk_lookup'")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_alerts_kind_known"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_alerts_kind_known"), _kind_check(KINDS_BEFORE)
        )
