"""In-process stand-ins for outside parties, for service tests (the end-to-end tests use the simulators' own
processes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from medpay.adapters.sms.port import SmsOutcomeUnknown, SmsReceipt, SmsUnavailable


@dataclass
class FakeSms:
    """The SMS port in memory: what was "sent", by ref once; ``fail`` the next n sends, or ``unknown`` (sent, no
    answer) the next n."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (phone, text, ref)
    fail: int = 0
    unknown: int = 0

    def send(self, phone: str, text: str, *, ref: str) -> SmsReceipt:
        if self.fail:
            self.fail -= 1
            raise SmsUnavailable("simulated failure")
        if all(r != ref for _, _, r in self.sent):
            self.sent.append((phone, text, ref))
        if self.unknown:
            self.unknown -= 1
            raise SmsOutcomeUnknown("simulated timeout")
        return SmsReceipt(f"SM{len(self.sent):08d}")

    def last_code(self, phone: str) -> str:
        texts = [text for p, text, _ in self.sent if p == phone]
        assert texts, f"nothing was texted to {phone}"
        return re.search(r"验证码(\d{6})", texts[-1]).group(1)

    def to(self, phone: str) -> list[str]:
        return [text for p, text, _ in self.sent if p == phone]


class FrozenClock:
    """Time that moves only when the test says (``advance``); starts on a Monday morning in China, 2026-03-02."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **kw: float) -> None:
        self.now += timedelta(seconds=seconds, **kw)
