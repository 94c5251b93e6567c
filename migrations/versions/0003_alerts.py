"""alerts, verifications, webhooks: alerts and the sweep's cursors, inspections and
chip challenges, webhook subscriptions and their delivery outbox

Revision ID: 0003_alerts
Revises: 0002_cards
Create Date: 2026-11-29 02:31:56.971907
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_alerts'
down_revision = '0002_cards'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sweep_cursors',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('last_as_of', sa.Date(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sweep_cursors'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('occurrence', sa.String(length=64), nullable=True),
    sa.Column('area_id', sa.Integer(), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('auto_resolved', sa.Boolean(), nullable=False),
    sa.CheckConstraint("(status = 'resolved') = (resolved_at IS NOT NULL)", name=op.f('ck_alerts_resolved_has_time')),
    sa.CheckConstraint("NOT auto_resolved OR status = 'resolved'", name=op.f('ck_alerts_auto_only_resolved')),
    sa.CheckConstraint("kind IN ('over_occupancy', 'illegal_dwelling_occupied', 'revoked_card_presented', 'clone_suspected', 'card_not_returned', 'late_registration', 'registration_expiring', 'card_expiring', 'reader_offline')", name=op.f('ck_alerts_kind_known')),
    sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name=op.f('ck_alerts_severity_known')),
    sa.CheckConstraint("status <> 'acknowledged' OR acknowledged_at IS NOT NULL", name=op.f('ck_alerts_acknowledged_has_time')),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name=op.f('ck_alerts_status_known')),
    sa.CheckConstraint('count >= 1', name=op.f('ck_alerts_count_positive')),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_id_users')),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_alerts_area_id_areas')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_alerts_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_area_id'), ['area_id'], unique=False)
        batch_op.create_index('ix_alerts_status_last_seen_at', ['status', 'last_seen_at'], unique=False)
        batch_op.create_index('ix_alerts_subject', ['subject_type', 'subject_id', 'kind'], unique=False)
        batch_op.create_index('uq_alerts_live_subject', ['kind', 'subject_type', 'subject_id'], unique=True, sqlite_where=sa.text("status IN ('open', 'acknowledged')"), postgresql_where=sa.text("status IN ('open', 'acknowledged')"))

    op.create_table('verification_challenges',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('challenge', sa.LargeBinary(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_verification_challenges_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_challenges'))
    )
    with op.batch_alter_table('verification_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verification_challenges_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_verification_challenges_user_id'), ['user_id'], unique=False)

    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=True),
    sa.Column('secret_salt', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.CheckConstraint("url <> ''", name=op.f('ck_webhook_subscriptions_url_not_empty')),
    sa.CheckConstraint('consecutive_failures >= 0', name=op.f('ck_webhook_subscriptions_failures_not_negative')),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_webhook_subscriptions_area_id_areas')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_webhook_subscriptions_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_area_id'), ['area_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name=op.f('ck_webhook_deliveries_delivered_has_time')),
    sa.CheckConstraint("status IN ('pending', 'delivered', 'abandoned')", name=op.f('ck_webhook_deliveries_status_known')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_webhook_deliveries_attempts_not_negative')),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_webhook_deliveries_alert_id_alerts')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_webhook_deliveries_idempotency_key')),
    sa.UniqueConstraint('subscription_id', 'alert_id', 'event', name=op.f('uq_webhook_deliveries_subscription_id_alert_id_event'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_due', ['next_attempt_at'], unique=False, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    op.create_table('inspections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('officer_id', sa.Integer(), nullable=False),
    sa.Column('dwelling_id', sa.Integer(), nullable=True),
    sa.Column('area_id', sa.Integer(), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('input_kind', sa.String(length=16), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('residence_id', sa.Integer(), nullable=True),
    sa.Column('uid', sa.String(length=64), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('observed_headcount', sa.Integer(), nullable=True),
    sa.Column('registered_headcount', sa.Integer(), nullable=True),
    sa.Column('offline', sa.Boolean(), nullable=False),
    sa.Column('offline_result', sa.String(length=16), nullable=True),
    sa.Column('chip_authenticated', sa.Boolean(), nullable=True),
    sa.Column('latitude', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('longitude', sa.Numeric(precision=9, scale=6), nullable=True),
    sa.Column('answer', sa.JSON(), nullable=False),
    sa.CheckConstraint("input_kind IN ('card_no', 'chip', 'document')", name=op.f('ck_inspections_input_kind_known')),
    sa.CheckConstraint("offline_result IS NULL OR offline_result IN ('valid', 'revoked', 'expired', 'wrong_dwelling', 'unknown', 'forged', 'clone_suspected')", name=op.f('ck_inspections_offline_result_known')),
    sa.CheckConstraint("result IN ('valid', 'revoked', 'expired', 'wrong_dwelling', 'unknown', 'forged', 'clone_suspected')", name=op.f('ck_inspections_result_known')),
    sa.CheckConstraint('(latitude IS NULL) = (longitude IS NULL)', name=op.f('ck_inspections_position_whole')),
    sa.CheckConstraint('observed_headcount IS NULL OR observed_headcount >= 0', name=op.f('ck_inspections_headcount_not_negative')),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_inspections_area_id_areas')),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_inspections_card_id_cards')),
    sa.ForeignKeyConstraint(['dwelling_id'], ['dwellings.id'], name=op.f('fk_inspections_dwelling_id_dwellings')),
    sa.ForeignKeyConstraint(['officer_id'], ['users.id'], name=op.f('fk_inspections_officer_id_users')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_inspections_person_id_persons')),
    sa.ForeignKeyConstraint(['residence_id'], ['residences.id'], name=op.f('fk_inspections_residence_id_residences')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspections')),
    sa.UniqueConstraint('client_id', name=op.f('uq_inspections_client_id'))
    )
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspections_area_id'), ['area_id'], unique=False)
        batch_op.create_index('ix_inspections_card_id_checked_at', ['card_id', 'checked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inspections_checked_at'), ['checked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inspections_dwelling_id'), ['dwelling_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inspections_officer_id'), ['officer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inspections_person_id'), ['person_id'], unique=False)



def downgrade():
    with op.batch_alter_table('inspections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspections_person_id'))
        batch_op.drop_index(batch_op.f('ix_inspections_officer_id'))
        batch_op.drop_index(batch_op.f('ix_inspections_dwelling_id'))
        batch_op.drop_index(batch_op.f('ix_inspections_checked_at'))
        batch_op.drop_index('ix_inspections_card_id_checked_at')
        batch_op.drop_index(batch_op.f('ix_inspections_area_id'))

    op.drop_table('inspections')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_due', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_alert_id'))

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_area_id'))

    op.drop_table('webhook_subscriptions')
    with op.batch_alter_table('verification_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_challenges_user_id'))
        batch_op.drop_index(batch_op.f('ix_verification_challenges_expires_at'))

    op.drop_table('verification_challenges')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_alerts_live_subject', sqlite_where=sa.text("status IN ('open', 'acknowledged')"), postgresql_where=sa.text("status IN ('open', 'acknowledged')"))
        batch_op.drop_index('ix_alerts_subject')
        batch_op.drop_index('ix_alerts_status_last_seen_at')
        batch_op.drop_index(batch_op.f('ix_alerts_area_id'))

    op.drop_table('alerts')
    op.drop_table('sweep_cursors')
