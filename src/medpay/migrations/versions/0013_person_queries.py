"""persons' designated institutions (5302) and settlement lists (4101)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_AT = medpay.adapters.db.base.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'person_designations',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('insutype', sa.String(length=6), nullable=False),
        sa.Column('biz_appy_type', sa.String(length=3), nullable=False),
        sa.Column('fix_srt_no', sa.String(length=3), nullable=False),
        sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
        sa.Column('begndate', sa.Date(), nullable=False),
        sa.Column('enddate', sa.Date(), nullable=True),
        sa.Column('memo', sa.String(length=500), nullable=False),
        sa.Column('created_at', _AT, nullable=False),
        sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'],
                                name=op.f('fk_person_designations_fixmedins_code_institutions')),
        sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_person_designations_psn_no_persons')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_person_designations')),
    )
    op.create_index('ix_person_designations_psn', 'person_designations', ['psn_no', 'biz_appy_type'], unique=False)
    op.create_table(
        'settlement_lists',
        sa.Column('setl_list_id', sa.String(length=30), nullable=False),
        sa.Column('setl_id', sa.String(length=30), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
        sa.Column('mdtrt_id', sa.String(length=30), nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('msgid', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('body_enc', sa.Text(), nullable=False),
        sa.Column('created_at', _AT, nullable=False),
        sa.Column('replaced_at', _AT, nullable=True),
        sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'],
                                name=op.f('fk_settlement_lists_fixmedins_code_institutions')),
        sa.ForeignKeyConstraint(['setl_id'], ['settlements.setl_id'],
                                name=op.f('fk_settlement_lists_setl_id_settlements')),
        sa.PrimaryKeyConstraint('setl_list_id', name=op.f('pk_settlement_lists')),
    )
    op.create_index('uq_settlement_lists_setl_id_version', 'settlement_lists', ['setl_id', 'version'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_settlement_lists_setl_id_version', table_name='settlement_lists')
    op.drop_table('settlement_lists')
    op.drop_index('ix_person_designations_psn', table_name='person_designations')
    op.drop_table('person_designations')
