"""mobile accounts: sign-in with a phone number and a texted code, browser sessions, the person an account speaks for

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

The patient's app gains accounts (issue 13, ``medpay.services.mobile.accounts``). New tables only; nothing stored
before this revision changes.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import medpay.adapters.db.base


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mobile_accounts',
    sa.Column('account_id', sa.String(length=20), nullable=False),
    sa.Column('phone_idx', sa.String(length=64), nullable=False),
    sa.Column('phone_enc', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_code_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('closed_reason', sa.String(length=20), nullable=True),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_mobile_accounts'))
    )
    with op.batch_alter_table('mobile_accounts', schema=None) as batch_op:
        batch_op.create_index('uq_mobile_accounts_open_phone', ['phone_idx'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_table('mobile_sign_in_codes',
    sa.Column('challenge_id', sa.String(length=32), nullable=False),
    sa.Column('phone_idx', sa.String(length=64), nullable=False),
    sa.Column('ip_idx', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('challenge_id', name=op.f('pk_mobile_sign_in_codes'))
    )
    with op.batch_alter_table('mobile_sign_in_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mobile_sign_in_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_mobile_sign_in_codes_ip', ['ip_idx', 'created_at'], unique=False)
        batch_op.create_index('ix_mobile_sign_in_codes_phone', ['phone_idx', 'created_at'], unique=False)

    op.create_table('mobile_sessions',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=20), nullable=False),
    sa.Column('created_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('user_agent', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['mobile_accounts.account_id'], name=op.f('fk_mobile_sessions_account_id_mobile_accounts')),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_mobile_sessions'))
    )
    with op.batch_alter_table('mobile_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mobile_sessions_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mobile_sessions_expires_at'), ['expires_at'], unique=False)

    op.create_table('mobile_failed_checks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mobile_failed_checks'))
    )
    with op.batch_alter_table('mobile_failed_checks', schema=None) as batch_op:
        batch_op.create_index('ix_mobile_failed_checks_account', ['account_id', 'kind', 'at'], unique=False)

    op.create_table('account_persons',
    sa.Column('link_id', sa.String(length=20), nullable=False),
    sa.Column('account_id', sa.String(length=20), nullable=False),
    sa.Column('psn_no', sa.String(length=30), nullable=False),
    sa.Column('relation', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('consent', sa.String(length=16), nullable=True),
    sa.Column('linked_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('consent_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('proof', sa.String(length=40), nullable=False),
    sa.Column('revoked_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['mobile_accounts.account_id'], name=op.f('fk_account_persons_account_id_mobile_accounts')),
    sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_account_persons_psn_no_persons')),
    sa.PrimaryKeyConstraint('link_id', name=op.f('pk_account_persons'))
    )
    with op.batch_alter_table('account_persons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_persons_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_persons_psn_no'), ['psn_no'], unique=False)
        batch_op.create_index('uq_account_persons_live', ['account_id', 'psn_no'], unique=True, sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL"))
        batch_op.create_index('uq_account_persons_self', ['psn_no'], unique=True, sqlite_where=sa.text("relation = 'self' AND revoked_at IS NULL"), postgresql_where=sa.text("relation = 'self' AND revoked_at IS NULL"))



def downgrade() -> None:
    with op.batch_alter_table('account_persons', schema=None) as batch_op:
        batch_op.drop_index('uq_account_persons_self', sqlite_where=sa.text("relation = 'self' AND revoked_at IS NULL"), postgresql_where=sa.text("relation = 'self' AND revoked_at IS NULL"))
        batch_op.drop_index('uq_account_persons_live', sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL"))
        batch_op.drop_index(batch_op.f('ix_account_persons_psn_no'))
        batch_op.drop_index(batch_op.f('ix_account_persons_account_id'))

    op.drop_table('account_persons')
    with op.batch_alter_table('mobile_failed_checks', schema=None) as batch_op:
        batch_op.drop_index('ix_mobile_failed_checks_account')
    op.drop_table('mobile_failed_checks')
    with op.batch_alter_table('mobile_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mobile_sessions_expires_at'))
        batch_op.drop_index(batch_op.f('ix_mobile_sessions_account_id'))

    op.drop_table('mobile_sessions')
    with op.batch_alter_table('mobile_sign_in_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_mobile_sign_in_codes_phone')
        batch_op.drop_index('ix_mobile_sign_in_codes_ip')
        batch_op.drop_index(batch_op.f('ix_mobile_sign_in_codes_expires_at'))

    op.drop_table('mobile_sign_in_codes')
    with op.batch_alter_table('mobile_accounts', schema=None) as batch_op:
        batch_op.drop_index('uq_mobile_accounts_open_phone', sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.drop_table('mobile_accounts')
