"""face payment: consents, encrypted templates, verification sessions, frame hashes; terminals get a kind

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_AT = medpay.adapters.db.base.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='scanner', nullable=False))
    op.create_table(
        'face_consents',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('given_at', _AT, nullable=False),
        sa.Column('text_version', sa.String(length=20), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('given_by', sa.String(length=40), nullable=False),
        sa.Column('withdrawn_at', _AT, nullable=True),
        sa.Column('withdrawn_via', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_face_consents_psn_no_persons')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_face_consents')),
    )
    op.create_index(op.f('ix_face_consents_psn_no'), 'face_consents', ['psn_no'], unique=False)
    op.create_table(
        'face_templates',
        sa.Column('psn_no', sa.String(length=30), nullable=False),
        sa.Column('consent_id', _ID, nullable=False),
        sa.Column('model', sa.String(length=40), nullable=False),
        sa.Column('template_enc', sa.LargeBinary(), nullable=False),
        sa.Column('key_wrapped', sa.String(length=120), nullable=False),
        sa.Column('pin_idx', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_at', _AT, nullable=True),
        sa.Column('enrolled_at', _AT, nullable=False),
        sa.ForeignKeyConstraint(['consent_id'], ['face_consents.id'],
                                name=op.f('fk_face_templates_consent_id_face_consents')),
        sa.ForeignKeyConstraint(['psn_no'], ['persons.psn_no'], name=op.f('fk_face_templates_psn_no_persons')),
        sa.PrimaryKeyConstraint('psn_no', name=op.f('pk_face_templates')),
    )
    op.create_index(op.f('ix_face_templates_pin_idx'), 'face_templates', ['pin_idx'], unique=False)
    op.create_table(
        'face_sessions',
        sa.Column('session_id', sa.String(length=24), nullable=False),
        sa.Column('terminal_id', sa.String(length=20), nullable=False),
        sa.Column('fixmedins_code', sa.String(length=12), nullable=False),
        sa.Column('challenge', sa.String(length=80), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('business_type', sa.String(length=5), nullable=False),
        sa.Column('created_at', _AT, nullable=False),
        sa.Column('expires_at', _AT, nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('psn_no', sa.String(length=30), nullable=True),
        sa.Column('auth_hash', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'],
                                name=op.f('fk_face_sessions_terminal_id_terminals')),
        sa.PrimaryKeyConstraint('session_id', name=op.f('pk_face_sessions')),
        sa.UniqueConstraint('auth_hash', name=op.f('uq_face_sessions_auth_hash')),
    )
    op.create_index(op.f('ix_face_sessions_terminal_id'), 'face_sessions', ['terminal_id'], unique=False)
    op.create_table(
        'face_frame_hashes',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('frame_hash', sa.String(length=64), nullable=False),
        sa.Column('session_id', sa.String(length=24), nullable=False),
        sa.Column('seen_at', _AT, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_face_frame_hashes')),
    )
    op.create_index(op.f('ix_face_frame_hashes_seen_at'), 'face_frame_hashes', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_table('face_frame_hashes')
    op.drop_table('face_sessions')
    op.drop_table('face_templates')
    op.drop_table('face_consents')
    with op.batch_alter_table('terminals', schema=None) as batch_op:
        batch_op.drop_column('kind')
