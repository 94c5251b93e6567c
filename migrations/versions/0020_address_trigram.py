"""address trigram: a pg_trgm GIN index for the dwellings' address search

``GET /api/v1/dwellings?address=...`` matches a substring (``LIKE '%...%'``),
which no B-tree serves: at city scale PostgreSQL read every dwelling. The
trigram index answers it (EXPLAIN before and after in docs/benchmarks.md).
PostgreSQL only: ``pg_trgm`` is a contrib extension (trusted: a database
owner may create it); SQLite has no such index and keeps its scan.

Revision ID: 0020_address_trigram
Revises: 0019_retention
Create Date: 2026-12-06 05:00:00
"""

from alembic import op

revision = "0020_address_trigram"
down_revision = "0019_retention"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX ix_dwellings_address_trgm ON dwellings USING gin (address gin_trgm_ops)"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    # The extension stays: other databases' objects may use it, and it costs nothing idle.
    op.execute("DROP INDEX IF EXISTS ix_dwellings_address_trgm")
