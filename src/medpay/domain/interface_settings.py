"""Per-institution settings of the institution interface, where provinces' specifications differ.

Each is a column of ``institutions``, changed with ``medpay institution …`` (audited) and documented in the
README's interface section. (``domain.credentials.Assurance`` is one too.)
"""

from __future__ import annotations

from enum import Enum


class Setting(str, Enum):
    @classmethod
    def parse(cls, value: object, field: str = "value") -> "Setting":
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


class FeeQueryShape(Setting):
    """``institutions.fee_query_shape``: 5204's ``output``. Three modules of one HIS vendor read it as the list of
    fee rows itself — and cancel the settlement they just made when the read fails — so ``rows`` is the default;
    ``object`` is ``{"feedetail": rows}``, for a HIS that reads that."""

    ROWS = "rows"
    OBJECT = "object"
