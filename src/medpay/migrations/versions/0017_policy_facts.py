"""policy facts: persons' retirement date, payment grade and salary; institutions' kind

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02

What some regions' rules depend on (issue 12). A person's birth date (``brdy``) and enrolment start
(``psn_insu_date``) are already stored. ``salary_enc`` is the yearly salary base in fen, encrypted like the name and
ID number (personal data). Every institution registered before this revision is a general hospital
(``inst_kind`` "general"), as the rules treated it.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retr_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('pay_grade', sa.String(length=2), server_default='', nullable=False))
        batch_op.add_column(sa.Column('salary_enc', sa.Text(), nullable=True))
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inst_kind', sa.String(length=12), server_default='general', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('inst_kind')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('salary_enc')
        batch_op.drop_column('pay_grade')
        batch_op.drop_column('retr_date')
