"""card chips and reader daemons: every record signed for a chip (activated or withdrawn),
and the runs of desk daemons that said they were stopping

Existing issue jobs that still hold their signed record are copied into
card_chips: the record of a done job as activated, of a failed or cancelled
job as withdrawn, of an open job as neither. Records a job rebound away from
before this revision were overwritten in card_jobs and cannot be listed.

Revision ID: 0007_card_chips
Revises: 0006_audit_order
Create Date: 2026-12-01 12:00:00.000000
"""

import hashlib
from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = '0007_card_chips'
down_revision = '0006_audit_order'
branch_labels = None
depends_on = None

_EPOCH = date(1970, 1, 1)


def upgrade():
    op.create_table('reader_daemons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('stopped_run', sa.String(length=64), nullable=True),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], name=op.f('fk_reader_daemons_reader_id_readers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_daemons')),
    sa.UniqueConstraint('reader_id', 'holder', name=op.f('uq_reader_daemons_reader_id_holder'))
    )
    op.create_table('card_chips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('record_digest', sa.String(length=64), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_reason', sa.String(length=16), nullable=True),
    sa.CheckConstraint("withdrawn_reason IS NULL OR withdrawn_reason IN ('rebound', 'failed', 'cancelled')", name=op.f('ck_card_chips_withdrawn_reason_known')),
    sa.CheckConstraint('(withdrawn_at IS NULL) = (withdrawn_reason IS NULL)', name=op.f('ck_card_chips_withdrawn_has_reason')),
    sa.CheckConstraint('activated_at IS NULL OR withdrawn_at IS NULL', name=op.f('ck_card_chips_activated_or_withdrawn')),
    sa.CheckConstraint('length(uid) BETWEEN 2 AND 64 AND length(uid) % 2 = 0', name=op.f('ck_card_chips_uid_hex_length')),
    sa.CheckConstraint('length(record_digest) = 64', name=op.f('ck_card_chips_record_digest_length')),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_card_chips_card_id_cards')),
    sa.ForeignKeyConstraint(['job_id'], ['card_jobs.id'], name=op.f('fk_card_chips_job_id_card_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_chips')),
    sa.UniqueConstraint('record_digest', name=op.f('uq_card_chips_record_digest'))
    )
    with op.batch_alter_table('card_chips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_chips_card_id'), ['card_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_chips_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_card_chips_withdrawn_at'), ['withdrawn_at'], unique=False)
    _copy_signed_records()


def _copy_signed_records():
    """One card_chips row per signed record the issue jobs still hold."""
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT j.id, j.card_id, j.uid, j.record, j.status, j.created_at, j.claimed_at,"
        " j.finished_at, c.record AS card_record, c.activated_at"
        " FROM card_jobs j JOIN cards c ON c.id = j.card_id"
        " WHERE j.kind = 'issue' AND j.record IS NOT NULL AND j.uid IS NOT NULL"
        " ORDER BY j.id"
    )).mappings().all()
    chips = {}
    for row in rows:
        record = bytes(row["record"])
        digest = hashlib.sha256(record).hexdigest()
        activated = row["status"] == "done" and row["card_record"] is not None and bytes(row["card_record"]) == record
        withdrawn = row["status"] in ("failed", "cancelled") and not activated
        chip = {
            "card_id": row["card_id"],
            "job_id": row["id"],
            "uid": row["uid"],
            "record_digest": digest,
            # Record bytes 43..46: valid_until, days since 1970-01-01 (docs/card-format.md).
            "valid_until": _EPOCH + timedelta(days=int.from_bytes(record[43:47], "big")),
            "signed_at": row["claimed_at"] or row["created_at"],
            "activated_at": (row["activated_at"] or row["finished_at"]) if activated else None,
            "withdrawn_at": row["finished_at"] if withdrawn else None,
            "withdrawn_reason": row["status"] if withdrawn else None,
        }
        # A record signed twice (the same card, chip and day) is one row: activated wins.
        if digest not in chips or activated:
            chips[digest] = chip
    if chips:
        table = sa.table(
            'card_chips',
            *(sa.column(name) for name in next(iter(chips.values()))),
        )
        op.bulk_insert(table, list(chips.values()))


def downgrade():
    with op.batch_alter_table('card_chips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_chips_withdrawn_at'))
        batch_op.drop_index(batch_op.f('ix_card_chips_job_id'))
        batch_op.drop_index(batch_op.f('ix_card_chips_card_id'))

    op.drop_table('card_chips')
    op.drop_table('reader_daemons')
