"""resettlement runs: re-settlement after a policy correction, planned and confirmed by staff

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

A run lists, per settlement of a region and period, the amounts and accumulator deltas as they stood and as a
corrected policy version makes them (issue 12, ``medpay.services.resettlement``); staff confirm it to post the
differences. Nothing stored before this revision changes.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'resettlement_runs',
        sa.Column('run_id', sa.String(length=30), nullable=False),
        sa.Column('admdvs', sa.String(length=6), nullable=False),
        sa.Column('period_from', sa.Date(), nullable=False),
        sa.Column('period_to', sa.Date(), nullable=False),
        sa.Column('policy_old', sa.String(length=200), nullable=False),
        sa.Column('policy_new', sa.String(length=40), nullable=False),
        sa.Column('planned_by', sa.String(length=100), nullable=False),
        sa.Column('planned_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('posted_by', sa.String(length=100), nullable=True),
        sa.Column('posted_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('run_id', name=op.f('pk_resettlement_runs')),
    )
    with op.batch_alter_table('resettlement_runs', schema=None) as batch_op:
        batch_op.create_index('ix_resettlement_runs_region', ['admdvs', 'planned_at'], unique=False)
    op.create_table(
        'resettlement_lines',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=30), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('setl_id', sa.String(length=30), nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('mdtrt_id', sa.String(length=30), nullable=False),
        sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
        sa.Column('setl_time', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('setl_year', sa.Integer(), nullable=False),
        sa.Column('policy_old', sa.String(length=40), nullable=False),
        sa.Column('fund_diff', sa.BigInteger(), nullable=False),
        sa.Column('patient_diff', sa.BigInteger(), nullable=False),
        sa.Column('old', sa.JSON(), nullable=False),
        sa.Column('new', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['resettlement_runs.run_id'],
                                name=op.f('fk_resettlement_lines_run_id_resettlement_runs')),
        sa.ForeignKeyConstraint(['setl_id'], ['settlements.setl_id'],
                                name=op.f('fk_resettlement_lines_setl_id_settlements')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_resettlement_lines')),
    )
    with op.batch_alter_table('resettlement_lines', schema=None) as batch_op:
        batch_op.create_index('uq_resettlement_lines_run_setl', ['run_id', 'setl_id'], unique=True)
        batch_op.create_index('ix_resettlement_lines_setl', ['setl_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('resettlement_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_resettlement_lines_setl')
        batch_op.drop_index('uq_resettlement_lines_run_setl')
    op.drop_table('resettlement_lines')
    with op.batch_alter_table('resettlement_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_resettlement_runs_region')
    op.drop_table('resettlement_runs')
