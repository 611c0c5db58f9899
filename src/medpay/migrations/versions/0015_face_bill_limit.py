"""face payment: the bill limit of a face match only good enough for the region's normal threshold, on the
verification session and on the ecToken it earns

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('face_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_bill_fen', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('ec_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_bill_fen', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ec_tokens', schema=None) as batch_op:
        batch_op.drop_column('max_bill_fen')
    with op.batch_alter_table('face_sessions', schema=None) as batch_op:
        batch_op.drop_column('max_bill_fen')
