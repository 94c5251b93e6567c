"""stats: figures by area and day, kept as events happen

The tables start empty; ``anjuka stats rebuild`` fills them from the
registry (run it once after this upgrade).

Revision ID: 0015_stats
Revises: 0012_user_locale
Create Date: 2026-12-02 00:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_stats"
down_revision = "0012_user_locale"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stats_dwellings",
        sa.Column("dwelling_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("over_capacity", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["dwelling_id"], ["dwellings.id"], name=op.f("fk_stats_dwellings_dwelling_id_dwellings")),
        sa.ForeignKeyConstraint(["area_id"], ["areas.id"], name=op.f("fk_stats_dwellings_area_id_areas")),
        sa.PrimaryKeyConstraint("dwelling_id", name=op.f("pk_stats_dwellings")),
    )
    op.create_index(op.f("ix_stats_dwellings_area_id"), "stats_dwellings", ["area_id"])
    op.create_table(
        "stats_area_totals",
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("over_capacity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["area_id"], ["areas.id"], name=op.f("fk_stats_area_totals_area_id_areas")),
        sa.PrimaryKeyConstraint("area_id", name=op.f("pk_stats_area_totals")),
    )
    op.create_table(
        "stats_area_days",
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("arrivals", sa.Integer(), nullable=False),
        sa.Column("departures", sa.Integer(), nullable=False),
        sa.Column("residents_delta", sa.Integer(), nullable=False),
        sa.Column("capacity_delta", sa.Integer(), nullable=False),
        sa.Column("over_capacity_delta", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["area_id"], ["areas.id"], name=op.f("fk_stats_area_days_area_id_areas")),
        sa.PrimaryKeyConstraint("area_id", "day", name=op.f("pk_stats_area_days")),
    )
    op.create_index(op.f("ix_stats_area_days_day"), "stats_area_days", ["day"])


def downgrade():
    op.drop_table("stats_area_days")
    op.drop_table("stats_area_totals")
    op.drop_table("stats_dwellings")
