"""imports: estates' legacy codes, one dwelling per standard address code, import runs

Revision ID: 0017_imports
Revises: 0015_stats
Create Date: 2026-12-02 00:40:00
"""

import sqlalchemy as sa
from alembic import op

from anjuka.core.migration_ops import drop_columns

revision = "0017_imports"
down_revision = "0015_stats"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("estates", sa.Column("code", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_estates_code"), "estates", ["code"], unique=True)
    op.drop_index(op.f("ix_dwellings_address_code"), table_name="dwellings")
    op.create_index(op.f("ix_dwellings_address_code"), "dwellings", ["address_code"], unique=True)
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("operator", sa.String(length=80), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_line", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("admitted_over_capacity", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
        sa.UniqueConstraint("kind", "file_sha256", name=op.f("uq_import_runs_kind_file_sha256")),
    )
    op.create_table(
        "import_rejects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["import_runs.id"], name=op.f("fk_import_rejects_run_id_import_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_rejects")),
    )
    op.create_index(op.f("ix_import_rejects_run_id"), "import_rejects", ["run_id"])


def downgrade():
    op.drop_table("import_rejects")
    op.drop_table("import_runs")
    op.drop_index(op.f("ix_dwellings_address_code"), table_name="dwellings")
    op.create_index(op.f("ix_dwellings_address_code"), "dwellings", ["address_code"], unique=False)
    op.drop_index(op.f("ix_estates_code"), table_name="estates")
    drop_columns("estates", "code")
