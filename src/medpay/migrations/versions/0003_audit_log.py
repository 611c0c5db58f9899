"""audit log of personal-data access, with hash-chained seals

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('actor_kind', sa.String(length=12), nullable=False),
        sa.Column('actor', sa.String(length=40), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('fields', sa.String(length=120), nullable=False),
        sa.Column('ref', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    )
    op.create_index('ix_audit_events_psn', 'audit_events', ['psn_no', 'at'], unique=False)
    op.create_index(op.f('ix_audit_events_at'), 'audit_events', ['at'], unique=False)
    op.create_table(
        'audit_seals',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('first_id', sa.BigInteger(), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.Column('prev_digest', sa.String(length=64), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('sealed_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_seals')),
        sa.UniqueConstraint('first_id', name=op.f('uq_audit_seals_first_id')),
    )


def downgrade() -> None:
    op.drop_table('audit_seals')
    op.drop_index(op.f('ix_audit_events_at'), table_name='audit_events')
    op.drop_index('ix_audit_events_psn', table_name='audit_events')
    op.drop_table('audit_events')
