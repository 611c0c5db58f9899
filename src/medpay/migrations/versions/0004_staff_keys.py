"""staff keys for the admin door

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'staff_keys',
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key_id', name=op.f('pk_staff_keys')),
    )


def downgrade() -> None:
    op.drop_table('staff_keys')
