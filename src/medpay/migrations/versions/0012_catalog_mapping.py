"""catalog mapping (3301/3302/1317) and the catalog's own times (1312)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Items already in the catalog get this migration's time as both their entry and their last change: when they were
added was not recorded.
"""
from __future__ import annotations

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_AT = medpay.adapters.db.base.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('catalog_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', _AT, nullable=True))
        batch_op.add_column(sa.Column('updated_at', _AT, nullable=True))
    items = sa.table('catalog_items', sa.column('created_at', _AT), sa.column('updated_at', _AT))
    now = datetime.now(timezone.utc)
    op.get_bind().execute(items.update().values(created_at=now, updated_at=now))
    op.create_table(
        'catalog_mappings',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('rid', sa.String(length=40), nullable=False),
        sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
        sa.Column('fixmedins_hilist_id', sa.String(length=30), nullable=False),
        sa.Column('fixmedins_hilist_name', sa.String(length=200), nullable=False),
        sa.Column('list_type', sa.String(length=6), nullable=False),
        sa.Column('med_list_codg', sa.String(length=50), nullable=False),
        sa.Column('begndate', sa.Date(), nullable=False),
        sa.Column('enddate', sa.Date(), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('opter_id', sa.String(length=30), nullable=False),
        sa.Column('opter_name', sa.String(length=50), nullable=False),
        sa.Column('msgid', sa.String(length=30), nullable=False),
        sa.Column('created_at', _AT, nullable=False),
        sa.Column('updated_at', _AT, nullable=False),
        sa.Column('ended_msgid', sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'],
                                name=op.f('fk_catalog_mappings_fixmedins_code_institutions')),
        sa.ForeignKeyConstraint(['med_list_codg'], ['catalog_items.med_list_codg'],
                                name=op.f('fk_catalog_mappings_med_list_codg_catalog_items')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_mappings')),
        sa.UniqueConstraint('rid', name=op.f('uq_catalog_mappings_rid')),
    )
    with op.batch_alter_table('catalog_mappings', schema=None) as batch_op:
        batch_op.create_index('uq_catalog_mappings_active', ['fixmedins_code', 'fixmedins_hilist_id'], unique=True,
                              sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('ix_catalog_mappings_updated', ['fixmedins_code', 'updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('catalog_mappings', schema=None) as batch_op:
        batch_op.drop_index('ix_catalog_mappings_updated')
        batch_op.drop_index('uq_catalog_mappings_active')
    op.drop_table('catalog_mappings')
    with op.batch_alter_table('catalog_items', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('created_at')
