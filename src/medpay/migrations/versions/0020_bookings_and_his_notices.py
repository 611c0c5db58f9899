"""registration (预约挂号): published slots, patients' bookings, and an outbox of notices to the HIS

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03

Issue 13's booking (``medpay.services.mobile.booking``). New tables only; nothing stored before this revision changes.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import medpay.adapters.db.base


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('his_notices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('delivered_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=False),
    sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_his_notices')),
    sa.UniqueConstraint('event', 'ref', 'target', name=op.f('uq_his_notices_event_ref_target'))
    )
    with op.batch_alter_table('his_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_notices_fixmedins_code'), ['fixmedins_code'], unique=False)

    op.create_table('booking_slots',
    sa.Column('slot_id', sa.String(length=40), nullable=False),
    sa.Column('fixmedins_code', sa.String(length=30), nullable=False),
    sa.Column('his_slot_id', sa.String(length=30), nullable=False),
    sa.Column('dept_code', sa.String(length=30), nullable=False),
    sa.Column('dept_name', sa.String(length=50), nullable=False),
    sa.Column('doctor_code', sa.String(length=30), nullable=False),
    sa.Column('doctor_name', sa.String(length=50), nullable=False),
    sa.Column('doctor_title', sa.String(length=30), nullable=False),
    sa.Column('med_type', sa.String(length=6), nullable=False),
    sa.Column('starts_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('taken', sa.Integer(), nullable=False),
    sa.Column('last_queue_no', sa.Integer(), nullable=False),
    sa.Column('fee_item', sa.String(length=50), nullable=False),
    sa.Column('fee_fen', sa.BigInteger(), nullable=False),
    sa.Column('cancel_before_min', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('published_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fixmedins_code'], ['institutions.fixmedins_code'], name=op.f('fk_booking_slots_fixmedins_code_institutions')),
    sa.PrimaryKeyConstraint('slot_id', name=op.f('pk_booking_slots')),
    sa.UniqueConstraint('fixmedins_code', 'his_slot_id', name=op.f('uq_booking_slots_fixmedins_code_his_slot_id'))
    )
    with op.batch_alter_table('booking_slots', schema=None) as batch_op:
        batch_op.create_index('ix_booking_slots_open', ['fixmedins_code', 'starts_at'], unique=False)

    op.create_table('bookings',
    sa.Column('booking_id', sa.String(length=32), nullable=False),
    sa.Column('slot_id', sa.String(length=40), nullable=False),
    sa.Column('psn_no', sa.String(length=30), nullable=False),
    sa.Column('cash_payer', sa.String(length=30), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('queue_no', sa.Integer(), nullable=False),
    sa.Column('mdtrt_id', sa.String(length=30), nullable=True),
    sa.Column('intent_id', sa.String(length=64), nullable=True),
    sa.Column('setl_id', sa.String(length=30), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_bookings_psn_no_persons')),
    sa.ForeignKeyConstraint(['slot_id'], ['booking_slots.slot_id'], name=op.f('fk_bookings_slot_id_booking_slots')),
    sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_bookings')),
    sa.UniqueConstraint('slot_id', 'psn_no', 'attempt', name=op.f('uq_bookings_slot_id_psn_no_attempt'))
    )
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index('ix_bookings_person', ['psn_no', 'created_at'], unique=False)
        batch_op.create_index('ix_bookings_state', ['state', 'updated_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_state')
        batch_op.drop_index('ix_bookings_person')

    op.drop_table('bookings')
    with op.batch_alter_table('booking_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_booking_slots_open')

    op.drop_table('booking_slots')
    with op.batch_alter_table('his_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_notices_fixmedins_code'))

    op.drop_table('his_notices')
