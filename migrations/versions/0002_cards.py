"""cards: desk readers, Anju e-Cards and the card jobs between them

Revision ID: 0002_cards
Revises: 0001_registry_core
Create Date: 2026-11-29 02:19:12.463015
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_cards'
down_revision = '0001_registry_core'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('card_serials',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_serial', sa.Integer(), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_card_serials_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_serials'))
    )

    op.create_table('readers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=True),
    sa.Column('estate_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("name <> ''", name=op.f('ck_readers_name_not_empty')),
    sa.CheckConstraint('area_id IS NULL OR estate_id IS NULL', name=op.f('ck_readers_one_scope')),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_readers_area_id_areas')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_readers_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readers')),
    sa.UniqueConstraint('name', name=op.f('uq_readers_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_readers_token_hash'))
    )

    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_readers_area_id'), ['area_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_readers_estate_id'), ['estate_id'], unique=False)

    op.create_table('cards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_no', sa.String(length=16), nullable=False),
    sa.Column('residence_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('card_type', sa.String(length=16), nullable=True),
    sa.Column('uid', sa.String(length=64), nullable=True),
    sa.Column('key_id', sa.Integer(), nullable=True),
    sa.Column('card_key_id', sa.String(length=16), nullable=True),
    sa.Column('record', sa.LargeBinary(), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=16), nullable=True),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.CheckConstraint("card_type IS NULL OR card_type IN ('cpu', 'mifare1k')", name=op.f('ck_cards_card_type_known')),
    sa.CheckConstraint("revocation_reason IS NULL OR revocation_reason IN ('departed', 'lost', 'damaged', 'replaced', 'expired')", name=op.f('ck_cards_revocation_reason_known')),
    sa.CheckConstraint("status <> 'active' OR (uid IS NOT NULL AND card_type IS NOT NULL AND record IS NOT NULL AND activated_at IS NOT NULL)", name=op.f('ck_cards_active_is_written')),
    sa.CheckConstraint("status <> 'returned' OR returned_at IS NOT NULL", name=op.f('ck_cards_returned_has_time')),
    sa.CheckConstraint("status <> 'revoked' OR (revocation_reason IS NOT NULL AND revoked_at IS NOT NULL)", name=op.f('ck_cards_revoked_has_reason')),
    sa.CheckConstraint("status IN ('pending', 'active', 'revoked', 'returned')", name=op.f('ck_cards_status_known')),
    sa.CheckConstraint("status NOT IN ('pending', 'active') OR revocation_reason IS NULL", name=op.f('ck_cards_live_has_no_reason')),
    sa.CheckConstraint('length(card_no) = 11', name=op.f('ck_cards_card_no_length')),
    sa.CheckConstraint('uid IS NULL OR (length(uid) BETWEEN 2 AND 64 AND length(uid) % 2 = 0)', name=op.f('ck_cards_uid_hex_length')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_cards_person_id_persons')),
    sa.ForeignKeyConstraint(['residence_id'], ['residences.id'], name=op.f('fk_cards_residence_id_residences')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cards')),
    sa.UniqueConstraint('card_no', name=op.f('uq_cards_card_no'))
    )

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cards_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cards_residence_id'), ['residence_id'], unique=False)
        # The offline bundle's deltas: cards withdrawn since a cursor.
        batch_op.create_index(batch_op.f('ix_cards_revoked_at'), ['revoked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cards_returned_at'), ['returned_at'], unique=False)
        batch_op.create_index('uq_cards_active_person', ['person_id'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('uq_cards_active_uid', ['uid'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('uq_cards_pending_person', ['person_id'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    op.create_table('card_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('uid', sa.String(length=64), nullable=True),
    sa.Column('card_type', sa.String(length=16), nullable=True),
    sa.Column('record', sa.LargeBinary(), nullable=True),
    sa.Column('report_digest', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status IN ('done', 'failed', 'cancelled')) = (finished_at IS NOT NULL)", name=op.f('ck_card_jobs_finished_when_final')),
    sa.CheckConstraint("NOT (status IN ('claimed', 'awaiting_result')) OR lease_expires_at IS NOT NULL", name=op.f('ck_card_jobs_held_has_lease')),
    sa.CheckConstraint("card_type IS NULL OR card_type IN ('cpu', 'mifare1k')", name=op.f('ck_card_jobs_card_type_known')),
    sa.CheckConstraint("kind <> 'erase' OR uid IS NOT NULL", name=op.f('ck_card_jobs_erase_knows_uid')),
    sa.CheckConstraint("kind IN ('issue', 'erase')", name=op.f('ck_card_jobs_kind_known')),
    sa.CheckConstraint("status IN ('queued', 'claimed', 'awaiting_result', 'done', 'failed', 'cancelled')", name=op.f('ck_card_jobs_status_known')),
    sa.CheckConstraint('attempt >= 0', name=op.f('ck_card_jobs_attempt_not_negative')),
    sa.CheckConstraint('uid IS NULL OR (length(uid) BETWEEN 2 AND 64 AND length(uid) % 2 = 0)', name=op.f('ck_card_jobs_uid_hex_length')),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_card_jobs_card_id_cards')),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], name=op.f('fk_card_jobs_reader_id_readers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_jobs'))
    )

    with op.batch_alter_table('card_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_jobs_card_id'), ['card_id'], unique=False)
        batch_op.create_index('ix_card_jobs_reader_id_status', ['reader_id', 'status'], unique=False)
        batch_op.create_index('uq_card_jobs_open_card', ['card_id'], unique=True, sqlite_where=sa.text("status IN ('queued', 'claimed', 'awaiting_result')"), postgresql_where=sa.text("status IN ('queued', 'claimed', 'awaiting_result')"))


def downgrade():
    with op.batch_alter_table('card_jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_card_jobs_open_card', sqlite_where=sa.text("status IN ('queued', 'claimed', 'awaiting_result')"), postgresql_where=sa.text("status IN ('queued', 'claimed', 'awaiting_result')"))
        batch_op.drop_index('ix_card_jobs_reader_id_status')
        batch_op.drop_index(batch_op.f('ix_card_jobs_card_id'))

    op.drop_table('card_jobs')

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index('uq_cards_pending_person', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index('uq_cards_active_uid', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index('uq_cards_active_person', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index(batch_op.f('ix_cards_returned_at'))
        batch_op.drop_index(batch_op.f('ix_cards_revoked_at'))
        batch_op.drop_index(batch_op.f('ix_cards_residence_id'))
        batch_op.drop_index(batch_op.f('ix_cards_person_id'))

    op.drop_table('cards')

    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_readers_estate_id'))
        batch_op.drop_index(batch_op.f('ix_readers_area_id'))

    op.drop_table('readers')

    op.drop_table('card_serials')
