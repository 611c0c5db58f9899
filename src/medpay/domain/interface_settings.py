"""Per-institution settings of the institution interface, where provinces' specifications differ.

Each is a column of ``institutions``, changed with ``medpay institution …`` (audited) and documented in the
README's interface section.
"""

from __future__ import annotations

from enum import Enum


class Setting(str, Enum):
    @classmethod
    def parse(cls, value: object, field: str) -> "Setting":
        try:
            return cls(value.strip() if isinstance(value, str) else value)
        except ValueError:
            raise ValueError(f"{field}: must be one of {', '.join(s.value for s in cls)}; got {value!r}") from None


class SignIn(Setting):
    """``institutions.sign_in``: must a request carry the sign_no of an open 9001 sign-in? Two of three HIS clients
    tried never sign in and send ``"sign_no": ""``; 深圳's field table marks sign_no as not required. A sign_no that
    is given is checked either way."""

    REQUIRED = "required"
    OPTIONAL = "optional"
