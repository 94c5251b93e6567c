"""transfers: a move across desks, completed by the old dwelling's desk; the
transfer_requested alert kind

Revision ID: 0004_transfers
Revises: 0003_alerts
Create Date: 2026-12-01 21:00:00
"""

import sqlalchemy as sa
from alembic import op

from anjuka.core.migration_ops import replace_check


revision = "0004_transfers"
down_revision = "0003_alerts"
branch_labels = None
depends_on = None

OLD_KINDS = (
    "over_occupancy", "illegal_dwelling_occupied", "revoked_card_presented", "clone_suspected",
    "card_not_returned", "late_registration", "registration_expiring", "card_expiring",
    "reader_offline",
)
NEW_KINDS = (*OLD_KINDS, "transfer_requested")


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade():
    op.create_table(
        "transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("from_residence_id", sa.Integer(), nullable=False),
        sa.Column("to_dwelling_id", sa.Integer(), nullable=False),
        sa.Column("arrived_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("completion", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("to_residence_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('requested', 'completed', 'cancelled', 'failed')",
            name=op.f("ck_transfers_status_known"),
        ),
        sa.CheckConstraint(
            "completion IS NULL OR completion IN ('departure', 'supervisor')",
            name=op.f("ck_transfers_completion_known"),
        ),
        sa.CheckConstraint(
            "(status = 'requested') = (closed_at IS NULL)",
            name=op.f("ck_transfers_closed_when_not_requested"),
        ),
        sa.CheckConstraint(
            "(status = 'completed') = (to_residence_id IS NOT NULL AND completion IS NOT NULL)",
            name=op.f("ck_transfers_completed_has_residence"),
        ),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_transfers_person_id_persons")),
        sa.ForeignKeyConstraint(
            ["from_residence_id"], ["residences.id"], name=op.f("fk_transfers_from_residence_id_residences")
        ),
        sa.ForeignKeyConstraint(
            ["to_dwelling_id"], ["dwellings.id"], name=op.f("fk_transfers_to_dwelling_id_dwellings")
        ),
        sa.ForeignKeyConstraint(
            ["to_residence_id"], ["residences.id"], name=op.f("fk_transfers_to_residence_id_residences")
        ),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"], name=op.f("fk_transfers_requested_by_id_users")),
        sa.ForeignKeyConstraint(["closed_by_id"], ["users.id"], name=op.f("fk_transfers_closed_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    with op.batch_alter_table("transfers") as batch:
        batch.create_index(batch.f("ix_transfers_person_id"), ["person_id"])
        batch.create_index(batch.f("ix_transfers_from_residence_id"), ["from_residence_id"])
        batch.create_index(batch.f("ix_transfers_to_dwelling_id"), ["to_dwelling_id"])
        batch.create_index(
            "uq_transfers_open_person",
            ["person_id"],
            unique=True,
            sqlite_where=sa.text("status = 'requested'"),
            postgresql_where=sa.text("status = 'requested'"),
        )
    replace_check(
        "alerts", op.f("ck_alerts_kind_known"), _kinds(NEW_KINDS), referenced_by=("webhook_deliveries",)
    )


def downgrade():
    # The old schema cannot hold these alerts, nor their webhook deliveries.
    op.execute(
        "DELETE FROM webhook_deliveries WHERE alert_id IN"
        " (SELECT id FROM alerts WHERE kind = 'transfer_requested')"
    )
    op.execute("DELETE FROM alerts WHERE kind = 'transfer_requested'")
    replace_check(
        "alerts", op.f("ck_alerts_kind_known"), _kinds(OLD_KINDS), referenced_by=("webhook_deliveries",)
    )
    op.drop_table("transfers")
