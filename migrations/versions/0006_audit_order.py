"""audit order: event ids inside the hash (hash version 2)

Events already written keep hash version 1 and verify as they were written;
new events carry their id inside the hash, so renumbering events is
detected and the order a reader lists by is the order verified.

Revision ID: 0006_audit_order
Revises: 0005_personal_data
Create Date: 2026-12-01 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_audit_order"
down_revision = "0005_personal_data"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(
            sa.Column("hash_version", sa.SmallInteger(), nullable=False, server_default="1")
        )
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("hash_version", server_default=None)


def downgrade():
    # The code before this revision hashes every event without its id: events written
    # since the upgrade will read as altered to it. Downgrade only to go back to a backup.
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("hash_version")
