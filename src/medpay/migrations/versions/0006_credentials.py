"""credentials: ecTokens bound to a visit and spent with it; institutions' ID-number assurance; card_sn

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # tokens issued before this revision are unbound: they still open one visit each within their 30 minutes
    with op.batch_alter_table('ec_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mdtrt_id', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('spent_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_ec_tokens_mdtrt_id'), ['mdtrt_id'], unique=False)
    # "counter": institutions keep doing what they did — 02/03 numbers identify, open visits and settle
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('id_assurance', sa.String(length=10), server_default='counter',
                                      nullable=False))
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_sn_idx', sa.String(length=64), nullable=True))
    with op.batch_alter_table('credential_presentations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('card_read', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('credential_presentations', schema=None) as batch_op:
        batch_op.drop_column('card_read')
        batch_op.drop_column('token_hash')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('card_sn_idx')
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('id_assurance')
    with op.batch_alter_table('ec_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ec_tokens_mdtrt_id'))
        batch_op.drop_column('spent_at')
        batch_op.drop_column('mdtrt_id')
