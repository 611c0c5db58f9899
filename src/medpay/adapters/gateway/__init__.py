"""Payment gateway: the port the settlement service calls, and its HTTP adapter.

``port`` declares :class:`PaymentGateway`, :class:`GatewayResult`, the exceptions for an unknown outcome and
the signed-callback helpers; ``http_gateway`` implements the port over HTTP (against the simulator in
``medpay.simulators.gateway_sim``, or any gateway speaking the same API).
"""

from medpay.adapters.gateway.port import (
    CALLBACK_SIGNATURE_HEADER,
    CALLBACK_TIMESTAMP_HEADER,
    STATEMENT_COLUMNS,
    STATEMENT_TZ,
    CallbackRejected,
    callback_headers,
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayProtocolError,
    GatewayResult,
    GatewayTimeout,
    GatewayUnavailable,
    PaymentGateway,
    parse_statement,
    sign_callback,
    statement_day,
    verify_callback,
)

__all__ = [
    "CALLBACK_SIGNATURE_HEADER", "CALLBACK_TIMESTAMP_HEADER", "STATEMENT_COLUMNS", "STATEMENT_TZ",
    "CallbackRejected", "callback_headers", "GatewayError", "GatewayOutcomeUnknown", "GatewayProtocolError", "GatewayResult",
    "GatewayTimeout", "GatewayUnavailable", "PaymentGateway", "parse_statement", "sign_callback",
    "statement_day", "verify_callback",
]
