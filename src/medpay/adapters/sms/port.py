"""The SMS port: what a service needs to text a person, whatever carries the message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

PHONE = re.compile(r"1[3-9]\d{9}")  # a mainland mobile number, 11 digits


class SmsError(Exception):
    """The message was not (or may not have been) sent."""


class SmsUnavailable(SmsError):
    """Refused or failed: the message was not sent; sending again is safe."""


class SmsOutcomeUnknown(SmsError):
    """No answer in time: the message may or may not have gone out. Sending again with the same ``ref`` is safe
    (the provider sends a ``ref`` once)."""


@dataclass(frozen=True)
class SmsReceipt:
    message_id: str


class SmsSender(Protocol):
    def send(self, phone: str, text: str, *, ref: str) -> SmsReceipt:
        """Text ``text`` to ``phone`` once per ``ref`` (a retry with the same ``ref`` sends nothing more)."""
        ...


def valid_phone(phone: str) -> bool:
    return isinstance(phone, str) and PHONE.fullmatch(phone) is not None


def mask_phone(phone: str) -> str:
    """138****0001 — what a screen or a log may show."""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
