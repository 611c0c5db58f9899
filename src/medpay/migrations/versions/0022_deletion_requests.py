"""a person's data deletion requests from the app (PIPL)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

Issue 13's export and deletion request (``medpay.services.mobile.my_data``). A new table only.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import medpay.adapters.db.base


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deletion_requests',
    sa.Column('request_id', sa.String(length=20), nullable=False),
    sa.Column('psn_no', sa.String(length=30), nullable=False),
    sa.Column('account_id', sa.String(length=20), nullable=False),
    sa.Column('requested_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('erased', sa.String(length=300), nullable=False),
    sa.Column('kept', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_deletion_requests_psn_no_persons')),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_deletion_requests'))
    )
    with op.batch_alter_table('deletion_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deletion_requests_psn_no'), ['psn_no'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('deletion_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deletion_requests_psn_no'))

    op.drop_table('deletion_requests')
