"""activation with a second proof: the phone on record, pending activations, device nonces

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # persons without a phone on record can still activate at a counter
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_enc', sa.Text(), nullable=True))
    with op.batch_alter_table('ecerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_reason', sa.String(length=40), nullable=True))
    op.create_table(
        'ecert_activations',
        sa.Column('activation_id', sa.String(length=20), nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=40), nullable=False),
        sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('consent_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('ecert_id', sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_ecert_activations_psn_no_persons')),
        sa.PrimaryKeyConstraint('activation_id', name=op.f('pk_ecert_activations')),
        sa.UniqueConstraint('code_hash', name=op.f('uq_ecert_activations_code_hash')),
    )
    with op.batch_alter_table('ecert_activations', schema=None) as batch_op:
        batch_op.create_index('ix_ecert_activations_psn_created', ['psn_no', 'created_at'], unique=False)
        batch_op.create_index('uq_ecert_activations_pending', ['psn_no'], unique=True,
                              sqlite_where=sa.text("status = 'pending'"),
                              postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        'device_nonces',
        sa.Column('device_key', sa.String(length=64), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('seen_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('device_key', 'nonce', name=op.f('pk_device_nonces')),
    )
    with op.batch_alter_table('device_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_nonces_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('device_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_nonces_seen_at'))
    op.drop_table('device_nonces')
    with op.batch_alter_table('ecert_activations', schema=None) as batch_op:
        batch_op.drop_index('uq_ecert_activations_pending')
        batch_op.drop_index('ix_ecert_activations_psn_created')
    op.drop_table('ecert_activations')
    with op.batch_alter_table('ecerts', schema=None) as batch_op:
        batch_op.drop_column('revoked_reason')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('phone_enc')
