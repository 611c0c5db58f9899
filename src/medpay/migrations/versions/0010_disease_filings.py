"""disease filings: chronic and special outpatient diseases filed for a person (2503/2504/5301)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'disease_filings',
        sa.Column('trt_dcla_detl_sn', sa.String(length=30), nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
        sa.Column('insutype', sa.String(length=6), nullable=False),
        sa.Column('opsp_dise_code', sa.String(length=30), nullable=False),
        sa.Column('opsp_dise_name', sa.String(length=300), nullable=False),
        sa.Column('insu_optins', sa.String(length=6), nullable=False),
        sa.Column('ide_fixmedins_no', sa.String(length=30), nullable=False),
        sa.Column('ide_fixmedins_name', sa.String(length=200), nullable=False),
        sa.Column('hosp_ide_date', sa.Date(), nullable=False),
        sa.Column('diag_dr_codg', sa.String(length=30), nullable=False),
        sa.Column('diag_dr_name', sa.String(length=50), nullable=False),
        sa.Column('begndate', sa.Date(), nullable=False),
        sa.Column('enddate', sa.Date(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('memo', sa.String(length=500), nullable=False),
        sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('cancelled_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'],
                                name=op.f('fk_disease_filings_fixmedins_code_institutions')),
        sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_disease_filings_psn_no_persons')),
        sa.PrimaryKeyConstraint('trt_dcla_detl_sn', name=op.f('pk_disease_filings')),
    )
    with op.batch_alter_table('disease_filings', schema=None) as batch_op:
        batch_op.create_index('ix_disease_filings_psn', ['psn_no', 'opsp_dise_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('disease_filings', schema=None) as batch_op:
        batch_op.drop_index('ix_disease_filings_psn')
    op.drop_table('disease_filings')
