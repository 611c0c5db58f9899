"""an inpatient's stay from the phone: deposit top-ups through the gateway, discharge requests

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03

Issue 13's deposits and discharge (``medpay.services.mobile.stay``). New tables only; nothing stored before this
revision changes. A stay's deposits paid through another channel than the counter are held in their own ledger
account (``deposit:{mdtrt_id}:{channel}``, created with the first such deposit), so no ledger row changes either.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import medpay.adapters.db.base


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deposit_payments',
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
    sa.Column('mdtrt_id', sa.String(length=30), nullable=False),
    sa.Column('psn_no', sa.String(length=30), nullable=False),
    sa.Column('payer_psn_no', sa.String(length=30), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('in_doubt', sa.Boolean(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.Column('gateway_ref', sa.String(length=64), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=False),
    sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'], name=op.f('fk_deposit_payments_fixmedins_code_institutions')),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_deposit_payments_psn_no_persons')),
    sa.PrimaryKeyConstraint('payment_id', name=op.f('pk_deposit_payments'))
    )
    with op.batch_alter_table('deposit_payments', schema=None) as batch_op:
        batch_op.create_index('ix_deposit_payments_state', ['state', 'updated_at'], unique=False)
        batch_op.create_index('ix_deposit_payments_stay', ['mdtrt_id', 'created_at'], unique=False)

    op.create_table('discharge_requests',
    sa.Column('mdtrt_id', sa.String(length=30), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
    sa.Column('psn_no', sa.String(length=30), nullable=False),
    sa.Column('requested_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'], name=op.f('fk_discharge_requests_fixmedins_code_institutions')),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_discharge_requests_psn_no_persons')),
    sa.PrimaryKeyConstraint('mdtrt_id', name=op.f('pk_discharge_requests'))
    )


def downgrade() -> None:
    op.drop_table('discharge_requests')
    with op.batch_alter_table('deposit_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_deposit_payments_stay')
        batch_op.drop_index('ix_deposit_payments_state')

    op.drop_table('deposit_payments')
