"""Text messages (短信): the port services call (``port``) and its HTTP adapter (``http_sms``).

The platform texts one-time codes and security notices to the phone number on an insured person's record. No
real SMS provider can be reached from here: ``medpay.simulators.sms_sim`` runs as its own process behind the same
HTTP API and keeps what it "sent" for tests to read; a real provider (a carrier's or a cloud SMS service) needs
only another adapter of the port.
"""

from medpay.adapters.sms.port import SmsError, SmsOutcomeUnknown, SmsReceipt, SmsSender, SmsUnavailable, mask_phone

__all__ = ["SmsError", "SmsOutcomeUnknown", "SmsReceipt", "SmsSender", "SmsUnavailable", "mask_phone"]
