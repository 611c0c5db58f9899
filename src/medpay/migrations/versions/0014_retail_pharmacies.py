"""retail pharmacies: institutions' type (定点医药机构类型)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

A retail pharmacy (定点零售药店) settles a purchase in one call (2101/2102/2103) and nothing else of a hospital's;
every institution registered before this revision is a medical institution (1), as it was treated.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fixmedins_type', sa.String(length=3), server_default='1', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('fixmedins_type')
