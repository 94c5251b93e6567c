"""retention: an area policy's retention period, persons anonymised on a day

``areas.retention_years`` joins the inherited policy fields (null: inherit;
3 years where no area sets it); ``persons.anonymised_on`` marks a person
whose identity ``anjuka retention run`` removed.

Revision ID: 0019_retention
Revises: 0018_idempotency_keys
Create Date: 2026-12-06 01:50:00
"""

import sqlalchemy as sa
from alembic import op

from anjuka.core.migration_ops import drop_columns

revision = "0019_retention"
down_revision = "0018_idempotency_keys"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column's CHECK in place; a table-level one would copy areas.
        op.execute(
            "ALTER TABLE areas ADD COLUMN retention_years INTEGER"
            " CONSTRAINT ck_areas_retention_positive CHECK (retention_years >= 1)"
        )
    else:
        op.add_column("areas", sa.Column("retention_years", sa.Integer(), nullable=True))
        op.create_check_constraint(
            op.f("ck_areas_retention_positive"), "areas", "retention_years >= 1"
        )
    op.add_column("persons", sa.Column("anonymised_on", sa.Date(), nullable=True))


def downgrade():
    drop_columns("persons", "anonymised_on")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_areas_retention_positive"), "areas", type_="check")
    drop_columns("areas", "retention_years")
