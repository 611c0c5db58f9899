"""interface outputs as the specification types them: 5204's shape per institution, fee lines' details, catalog
items' list type, setldetail's crt_payb_lmt_amt never null

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Settlements stored before this revision kept ``crt_payb_lmt_amt`` null where no cap applied (an uncapped fund, the
personal account). The specification makes it a required number and typed HIS clients refuse a null, so stored
outputs (and the first answers kept for retries) get what the platform now answers for an uncapped fund: the amount
paid. (For an account row that is less than the balance it could have paid, which was not recorded.)
"""
from __future__ import annotations

import json
from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# 目录类别 by 医疗收费项目类别, as medpay.domain.model.list_type_of had it at this revision
_LIST_TYPE_BY_CHRGITM = {"09": "101", "11": "101", "10": "102", "08": "301"}
_BATCH = 500


def _filled(doc: Any) -> tuple[Any, bool]:
    """``doc`` with every setldetail row's null crt_payb_lmt_amt set to its fund_payamt; and whether any was."""
    if isinstance(doc, dict):
        changed = False
        if "fund_pay_type" in doc and "crt_payb_lmt_amt" in doc and doc["crt_payb_lmt_amt"] is None:
            doc, changed = {**doc, "crt_payb_lmt_amt": doc.get("fund_payamt")}, True
        out = {}
        for k, v in doc.items():
            out[k], c = _filled(v)
            changed = changed or c
        return out, changed
    if isinstance(doc, list):
        pairs = [_filled(v) for v in doc]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return doc, False


def _backfill(table: str, key: tuple[str, ...], column: str) -> None:
    conn = op.get_bind()
    t = sa.table(table, *(sa.column(k) for k in key), sa.column(column, sa.JSON()))
    last: tuple | None = None
    while True:
        query = sa.select(*(t.c[k] for k in key), t.c[column]).order_by(*(t.c[k] for k in key)).limit(_BATCH)
        if last is not None:
            query = query.where(sa.tuple_(*(t.c[k] for k in key)) > sa.tuple_(*last))
        rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            doc = row[-1]
            if isinstance(doc, str):
                doc = json.loads(doc)
            filled, changed = _filled(doc)
            if changed:
                conn.execute(t.update().where(*(t.c[k] == row[i] for i, k in enumerate(key))).values({column: filled}))
        last = tuple(rows[-1][:len(key)])


def upgrade() -> None:
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fee_query_shape', sa.String(length=10), server_default='rows', nullable=False))
    with op.batch_alter_table('catalog_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('list_type', sa.String(length=6), server_default='', nullable=False))
    with op.batch_alter_table('fee_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('details', sa.JSON(), nullable=True))
    items = sa.table('catalog_items', sa.column('med_chrgitm_type', sa.String()), sa.column('list_type', sa.String()))
    conn = op.get_bind()
    for chrgitm, list_type in _LIST_TYPE_BY_CHRGITM.items():
        conn.execute(items.update().where(items.c.med_chrgitm_type == chrgitm).values(list_type=list_type))
    conn.execute(items.update().where(items.c.list_type == '').values(list_type='201'))
    _backfill('settlements', ('setl_id',), 'output')
    _backfill('idempotency_keys', ('scope', 'key'), 'response')


def downgrade() -> None:
    with op.batch_alter_table('fee_lines', schema=None) as batch_op:
        batch_op.drop_column('details')
    with op.batch_alter_table('catalog_items', schema=None) as batch_op:
        batch_op.drop_column('list_type')
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_column('fee_query_shape')
