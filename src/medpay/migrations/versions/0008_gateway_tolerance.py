"""gateway tolerance: replay key (paasid, timestamp, nonce); institutions' sign-in setting

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Short nonces (real HIS send 1–10 digits) collide between honest requests, so the replay key takes the signed
x-tif-timestamp too. The table only holds the last ten minutes; its rows are carried over with the second they were
seen as their timestamp (the HIS's clock, when it agrees with ours to the second). A request signed before the
upgrade whose clock did not is replayable until it goes stale (±300 s); every write is once by msgid regardless.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import medpay.adapters.db.base


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _nonces(*columns: sa.Column) -> sa.Table:
    return sa.table('gateway_nonces', sa.column('paasid', sa.String()), sa.column('nonce', sa.String()),
                    sa.column('seen_at', medpay.adapters.db.base.UtcDateTime(timezone=True)), *columns)


def _recreate(ts: bool) -> None:
    """The nonce table with or without ``ts`` in its key, its rows carried over."""
    conn = op.get_bind()
    old = _nonces(*([] if ts else [sa.column('ts', sa.BigInteger())]))
    rows = [dict(r._mapping) for r in conn.execute(sa.select(old.c.paasid, old.c.nonce, old.c.seen_at))]
    with op.batch_alter_table('gateway_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_nonces_seen_at'))
    op.drop_table('gateway_nonces')
    key = ['paasid', 'ts', 'nonce'] if ts else ['paasid', 'nonce']
    op.create_table(
        'gateway_nonces',
        sa.Column('paasid', sa.String(length=64), nullable=False),
        *([sa.Column('ts', sa.BigInteger(), autoincrement=False, nullable=False)] if ts else []),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('seen_at', medpay.adapters.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f('pk_gateway_nonces')),
    )
    with op.batch_alter_table('gateway_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_nonces_seen_at'), ['seen_at'], unique=False)
    if ts:
        rows = [{**r, 'ts': int(r['seen_at'].timestamp())} for r in rows]
    else:  # one row per (paasid, nonce): the newest
        rows = list({(r['paasid'], r['nonce']): r for r in sorted(rows, key=lambda r: r['seen_at'])}.values())
    if rows:
        new = _nonces(*([sa.column('ts', sa.BigInteger())] if ts else []))
        conn.execute(new.insert(), rows)


def upgrade() -> None:
    _recreate(ts=True)
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sign_in', sa.String(length=10), server_default='required', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('sign_in')
    _recreate(ts=False)
