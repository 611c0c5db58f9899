"""The payment-time figure of settlements in a period (``domain.payment_time`` defines it), from what the platform
already keeps: each fee line's upload time (``details.opt_time``), the settlement's time and channel, and the
payment intent's door. Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.payment_tables import PaymentIntentRow
from medpay.adapters.db.tables import FeeLineRow, SettlementRow
from medpay.domain.payment_time import PaymentTime
from medpay.local_time import INTERFACE_FORMAT, LOCAL_TZ


def door_of(channel: str, intent_request: dict | None) -> str:
    """Where the patient paid: the app, a scan (terminal or bill code), or the window."""
    if intent_request is not None:
        return intent_request.get("door") or "scan"
    return "window" if channel == "counter" else channel


def payment_times(factory: sessionmaker[Session], start: datetime, end: datetime,
                  fixmedins_code: str | None = None) -> list[PaymentTime]:
    """Every live settlement with ``start`` ≤ setl_time < ``end`` (UTC), with its payment time."""
    conditions = [SettlementRow.kind == "settle", SettlementRow.cancelled.is_(False),
                  SettlementRow.setl_time >= start, SettlementRow.setl_time < end]
    if fixmedins_code:
        conditions.append(SettlementRow.fixmedins_code == fixmedins_code)
    query = (select(SettlementRow.setl_id, SettlementRow.fixmedins_code, SettlementRow.channel,
                    SettlementRow.setl_time, PaymentIntentRow.request, FeeLineRow.details)
             .join(FeeLineRow, FeeLineRow.setl_id == SettlementRow.setl_id)
             .outerjoin(PaymentIntentRow, and_(PaymentIntentRow.fixmedins_code == SettlementRow.fixmedins_code,
                                               PaymentIntentRow.msgid == SettlementRow.msgid))
             .where(and_(*conditions)))
    found: dict[str, tuple] = {}
    with factory() as s:
        for r in s.execute(query):
            uploaded = (r.details or {}).get("opt_time")
            if not uploaded:
                continue  # a line stored before upload times were kept
            at = datetime.strptime(uploaded, INTERFACE_FORMAT).replace(tzinfo=LOCAL_TZ)
            prev = found.get(r.setl_id)
            if prev is None or at > prev[3]:
                found[r.setl_id] = (r.fixmedins_code, door_of(r.channel, r.request), r.setl_time, at)
    return [PaymentTime(setl_id, code, door, available, paid)
            for setl_id, (code, door, paid, available) in sorted(found.items())]
