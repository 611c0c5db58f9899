"""Time as callers see it. Stored times are UTC; the interface, statements and policy years speak
China Standard Time (the region's days, the insurance year, settlement times on receipts)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
INTERFACE_FORMAT = "%Y-%m-%d %H:%M:%S"  # yyyy-MM-dd HH:mm:ss, as NHSA messages write times


def local_date(moment: datetime) -> date:
    return moment.astimezone(LOCAL_TZ).date()


def format_local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).strftime(INTERFACE_FORMAT)


def age_on(birthday: date, on: date) -> int:
    """Whole years of age on ``on``."""
    return on.year - birthday.year - ((on.month, on.day) < (birthday.month, birthday.day))
