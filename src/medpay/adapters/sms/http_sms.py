"""The SMS port over HTTP: the API of ``medpay.simulators.sms_sim``.

``POST /messages`` ``{to, text, ref}`` with ``Authorization: Bearer <api key>`` → ``200 {message_id}``; the same
``ref`` again answers the same ``message_id`` without a second message. 4xx/5xx → ``SmsUnavailable``; no answer in
time → ``SmsOutcomeUnknown``. One attempt per call: whether to try again is the caller's choice.
"""

from __future__ import annotations

import httpx

from medpay.adapters.sms.port import SmsOutcomeUnknown, SmsReceipt, SmsUnavailable


class HttpSms:
    def __init__(self, base_url: str, api_key: str, timeout: float = 3.0):
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, headers={"authorization": f"Bearer {api_key}"})

    def send(self, phone: str, text: str, *, ref: str) -> SmsReceipt:
        try:
            r = self._client.post(f"{self.base_url}/messages", json={"to": phone, "text": text, "ref": ref})
        except httpx.TimeoutException as e:
            raise SmsOutcomeUnknown(f"no answer from the SMS service in time: {type(e).__name__}") from None
        except httpx.HTTPError as e:
            raise SmsUnavailable(f"the SMS service can't be reached: {type(e).__name__}") from None
        if r.status_code != 200:
            raise SmsUnavailable(f"the SMS service refused the message: HTTP {r.status_code}")
        try:
            return SmsReceipt(str(r.json()["message_id"]))
        except (ValueError, KeyError, TypeError):
            raise SmsUnavailable("the SMS service answered without a message id") from None

    def close(self) -> None:
        self._client.close()
