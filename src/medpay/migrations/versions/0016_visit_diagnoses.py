"""visit diagnoses: the diseinfo lists of 2203, 2401 and 2402, answered by 5202

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'visit_diagnoses',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('mdtrt_id', sa.String(length=30), nullable=False),
        sa.Column('inout_diag_type', sa.String(length=3), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('diag_type', sa.String(length=3), nullable=False),
        sa.Column('diag_srt_no', sa.Integer(), nullable=False),
        sa.Column('maindiag_flag', sa.String(length=3), nullable=False),
        sa.Column('diag_code', sa.String(length=20), nullable=False),
        sa.Column('diag_name', sa.String(length=255), nullable=False),
        sa.Column('diag_dept', sa.String(length=50), nullable=False),
        sa.Column('dise_dor_no', sa.String(length=30), nullable=False),
        sa.Column('dise_dor_name', sa.String(length=50), nullable=False),
        sa.Column('diag_time', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('vali_flag', sa.String(length=3), nullable=False),
        sa.Column('msgid', sa.String(length=30), nullable=False),
        sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['mdtrt_id'], ['visits.mdtrt_id'], name=op.f('fk_visit_diagnoses_mdtrt_id_visits')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_diagnoses')),
    )
    with op.batch_alter_table('visit_diagnoses', schema=None) as batch_op:
        batch_op.create_index('uq_visit_diagnoses_row', ['mdtrt_id', 'inout_diag_type', 'position'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('visit_diagnoses', schema=None) as batch_op:
        batch_op.drop_index('uq_visit_diagnoses_row')
    op.drop_table('visit_diagnoses')
