"""key fingerprints; SM2 key rotation with a grace period

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # empty at first: the first process to start records its keys once they decrypt the existing rows
    # (medpay.adapters.db.key_check)
    op.create_table(
        'key_fingerprints',
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('purpose', 'key_id', name=op.f('pk_key_fingerprints')),
    )
    # nullable: a key registered before has no previous key
    with op.batch_alter_table('institution_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_sm2_public_key', sa.String(length=130), nullable=True))
        batch_op.add_column(sa.Column('previous_valid_until', medpay.adapters.db.base.UtcDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('institution_keys', schema=None) as batch_op:
        batch_op.drop_column('previous_valid_until')
        batch_op.drop_column('previous_sm2_public_key')
    op.drop_table('key_fingerprints')
