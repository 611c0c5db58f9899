"""The process-wide parts every request handler shares."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, cipher_of
from medpay.adapters.db.engine import database_url, make_engine, session_factory
from medpay.adapters.db.key_check import open_keyring
from medpay.adapters.policy_files import builtin_policies
from medpay.domain.ecert_code import MAX_TTL_S
from medpay.domain.policy import Policy
from medpay.services.qr.activation import DAILY_STARTS
from medpay.adapters.gateway.http_gateway import HttpGateway
from medpay.adapters.sms.http_sms import HttpSms
from medpay.adapters.sms.port import SmsSender
from medpay.services.gateway_auth import GatewayAuth
from medpay.services.qr.one_scan import OneScanService
from medpay.services.persons import PRESENTATION_VALID, PersonService
from medpay.services.settlement import SettlementService
from medpay.services.sign_in import SignInService


@dataclass
class Platform:
    """Everything a request handler needs, built once per process."""

    engine: Engine
    factory: sessionmaker[Session]
    policies: list[Policy]
    cipher: FieldCipher
    settlement: SettlementService
    persons: PersonService
    sign_in: SignInService
    gateway: GatewayAuth
    one_scan: OneScanService | None = None  # None when no payment gateway is configured
    gateway_secret: str = ""
    ecert_code_ttl_s: int = MAX_TTL_S  # how long a dynamic QR code lives (MEDPAY_ECERT_CODE_TTL_S, 1–60)
    sms: SmsSender | None = None  # None when no SMS service is configured (activation at a counter only)
    sms_daily_limit: int = DAILY_STARTS  # activation codes texted to one person a day (MEDPAY_SMS_DAILY_LIMIT)
    stmt_refd_setl_flag: str = "1"  # what a 3201 without refd_setl_flag means (MEDPAY_STMT_REFD_SETL_FLAG)


def build_platform(url: str | None = None, policies: list[Policy] | None = None,
                   cipher: FieldCipher | None = None) -> Platform:
    engine = make_engine(url or database_url())
    factory = session_factory(engine)
    policies = list(policies if policies is not None else builtin_policies())
    # the keys this database was written with, or KeyringError (a caller handing in a cipher vouches for it)
    cipher = cipher or cipher_of(open_keyring(engine))
    settlement = SettlementService(factory, policies, cipher, presentation_window=PRESENTATION_VALID)
    one_scan, secret = None, ""
    gateway_url = os.environ.get("MEDPAY_GATEWAY_URL", "")
    if gateway_url:  # the payment gateway (or its simulator): see README, "Real parts and simulated parts"
        gateway = HttpGateway(gateway_url, os.environ.get("MEDPAY_GATEWAY_MERCHANT", "medpay"),
                              os.environ.get("MEDPAY_GATEWAY_API_KEY", ""),
                              timeout=float(os.environ.get("MEDPAY_GATEWAY_TIMEOUT", "2.0")))
        one_scan = OneScanService(factory, settlement, gateway, cipher)
        secret = os.environ.get("MEDPAY_GATEWAY_SECRET", "")
        if not secret:  # an empty key would let anyone sign a callback
            raise ValueError("MEDPAY_GATEWAY_URL is set but MEDPAY_GATEWAY_SECRET is not: the gateway's callbacks "
                             "could not be checked; set the secret the gateway signs them with")
    return Platform(engine, factory, policies, cipher, settlement, PersonService(factory, cipher),
                    SignInService(factory), GatewayAuth(factory, cipher), one_scan, secret, code_ttl_from_env(),
                    sms_from_env(), whole_number_from_env("MEDPAY_SMS_DAILY_LIMIT", DAILY_STARTS, 1, 1000),
                    stmt_refd_setl_flag_from_env())


def sms_from_env() -> SmsSender | None:
    """The SMS service (or its simulator, see README "Real parts and simulated parts"): MEDPAY_SMS_URL and
    MEDPAY_SMS_API_KEY."""
    url = os.environ.get("MEDPAY_SMS_URL", "")
    return HttpSms(url, os.environ.get("MEDPAY_SMS_API_KEY", "")) if url else None


def whole_number_from_env(name: str, default: int, low: int, high: int) -> int:
    """A whole-number setting; a wrong value stops the start with a message naming it."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


def code_ttl_from_env() -> int:
    """MEDPAY_ECERT_CODE_TTL_S: a region may want codes shorter-lived than the 60 s the format allows; a wrong
    value stops the start."""
    text = os.environ.get("MEDPAY_ECERT_CODE_TTL_S", "").strip()
    if not text:
        return MAX_TTL_S
    if not text.isdigit() or not 1 <= int(text) <= MAX_TTL_S:
        raise ValueError(f"MEDPAY_ECERT_CODE_TTL_S must be whole seconds from 1 to {MAX_TTL_S}, got {text!r}")
    return int(text)




def stmt_refd_setl_flag_from_env() -> str:
    """MEDPAY_STMT_REFD_SETL_FLAG: the refd_setl_flag of a 3201 that sends none (a province whose specification has
    no such field): "1" compares every settlement record, cancellations included (net), "0" settlements only."""
    text = os.environ.get("MEDPAY_STMT_REFD_SETL_FLAG", "").strip() or "1"
    if text not in ("0", "1"):
        raise ValueError(f"MEDPAY_STMT_REFD_SETL_FLAG must be 0 or 1, got {text!r}")
    return text
