"""users: the language each user chose for the pages

Revision ID: 0012_user_locale
Revises: 0008_accounts
Create Date: 2026-12-01 23:30:00
"""

import sqlalchemy as sa
from alembic import op

from anjuka.core.migration_ops import drop_columns

revision = "0012_user_locale"
down_revision = "0008_accounts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("locale", sa.String(length=16), nullable=True))


def downgrade():
    drop_columns("users", "locale")
