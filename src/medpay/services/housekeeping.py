"""Forgetting what may be forgotten — replay-protection nonces past their window, expired tokens, activations,
files, face frame hashes and verification sessions, sign-in codes and app sessions — and sealing the audit log's
new events (``medpay.services.audit``).

Each rule lives with its service (``GatewayAuth.purge_nonces`` keeps a nonce as long as a request carrying it
could still pass the timestamp check, and so on); this module runs them all. ``medpay serve`` runs it in every
worker every ``MEDPAY_HOUSEKEEPING_INTERVAL_S`` seconds (default 300; 0 turns it off) — the deletes are
idempotent, so workers running it at once do no harm — and ``medpay housekeeping`` runs it once, for cron.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from medpay.services.qr import ecert
from medpay.services.qr.activation import purge_activations
from medpay.services.audit import AuditLog
from medpay.services.face.verification import purge_verifications
from medpay.services.mobile.accounts import purge_sign_ins
from medpay.services.gateway_auth import GatewayAuth
from medpay.services.persons import PersonService
from medpay.services.reconciliation import ReconciliationService

log = logging.getLogger("medpay.housekeeping")
DEFAULT_INTERVAL_S = 300.0


def interval_s() -> float:
    value = os.environ.get("MEDPAY_HOUSEKEEPING_INTERVAL_S", "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_INTERVAL_S
    except ValueError:
        raise SystemExit(f"MEDPAY_HOUSEKEEPING_INTERVAL_S must be a number of seconds, not {value!r}") from None


@dataclass
class Housekeeping:
    factory: sessionmaker[Session]
    clock: Callable[[], datetime]
    gateway: GatewayAuth
    persons: PersonService
    reconciliation: ReconciliationService
    audit: AuditLog

    def run(self) -> dict[str, int | None]:
        """One pass; the number of rows each rule deleted, and of audit events sealed (None: that rule failed,
        logged; the others still ran)."""
        rules: dict[str, Callable[[], int]] = {
            "gateway_nonces": self.gateway.purge_nonces,
            "terminal_and_code_nonces": lambda: ecert.purge_nonces(self.factory, self.clock()),
            "ec_tokens": self.persons.purge_expired_tokens,
            "ecert_activations": lambda: purge_activations(self.factory, self.clock()),
            "interface_files": self.reconciliation.purge_expired_files,
            "face_frames_and_sessions": lambda: purge_verifications(self.factory, self.clock()),
            "sign_in_codes_and_sessions": lambda: purge_sign_ins(self.factory, self.clock()),
            "audit_events_sealed": self.audit.seal,
        }
        done: dict[str, int | None] = {}
        for name, rule in rules.items():
            try:
                done[name] = rule()
            except Exception:  # one rule's fault must not keep the others from running
                log.exception("housekeeping rule %s failed", name)
                done[name] = None
        if any(done.values()):
            log.info("housekeeping %s", done)
        return done
