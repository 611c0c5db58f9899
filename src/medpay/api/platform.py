"""The process-wide parts every request handler shares."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, default_cipher
from medpay.adapters.db.engine import database_url, make_engine, session_factory
from medpay.adapters.policy_files import builtin_policies
from medpay.domain.policy import Policy
from medpay.services.gateway_auth import GatewayAuth
from medpay.services.persons import PersonService
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


def build_platform(url: str | None = None, policies: list[Policy] | None = None,
                   cipher: FieldCipher | None = None) -> Platform:
    engine = make_engine(url or database_url())
    factory = session_factory(engine)
    policies = list(policies if policies is not None else builtin_policies())
    cipher = cipher or default_cipher()
    return Platform(engine, factory, policies, cipher, SettlementService(factory, policies, cipher),
                    PersonService(factory, cipher), SignInService(factory), GatewayAuth(factory, cipher))


