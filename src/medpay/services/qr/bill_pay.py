"""Reverse scan: the window shows a bill code, the patient's app scans it and pays the whole bill.

The app proves it holds the e-certificate's device key by signing the request that carries the bill code
(``EcertService.verify_device``: headers, a single-use nonce); the platform then issues itself a settlement token
for that person at that institution and runs the same one-scan settlement as a terminal scan — one way to settle,
whichever side scans.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters import qr_images
from medpay.adapters.db.base import utcnow
from medpay.domain.bill_code import BillClaims, make_bill_payload, parse_bill
from medpay.domain.ecert_code import CodeError
from medpay.services import records
from medpay.services.qr.ecert import decode_photo, refused_code
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound
from medpay.services.qr.one_scan import OneScanService, PayResult, intent_id_for
from medpay.services.persons import PersonService
from medpay.services.settlement import SettlementService


class BillPayService:
    def __init__(self, factory: sessionmaker[Session], settlement: SettlementService, persons: PersonService,
                 one_scan: OneScanService | None, signing_key: Ed25519PrivateKey,
                 clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.settlement = settlement
        self.persons = persons
        self.one_scan = one_scan
        self.key = signing_key
        self.clock = clock

    def create_bill(self, fixmedins_code: str, mdtrt_id: str) -> dict[str, Any]:
        """The code the window shows: what the visit costs, signed, valid a few minutes."""
        quote = self.settlement.presettle(fixmedins_code, mdtrt_id)
        bill_id = "BL" + secrets.token_hex(8).upper()
        payload = make_bill_payload(self.key, bill_id, fixmedins_code, mdtrt_id, quote.setlinfo["medfee_sumamt"],
                                    self.clock())
        return {"bill_id": bill_id, "payload": payload, "svg": qr_images.render_svg(payload),
                "medfee_sumamt": quote.setlinfo["medfee_sumamt"], "psn_cash_pay": quote.setlinfo["psn_cash_pay"]}

    def preview(self, bill: str | None = None, image: bytes | None = None) -> dict[str, Any]:
        """What a bill code asks the patient to pay, from its text or a photo of it, for the app to show before
        paying. Pays nothing, writes nothing; says nothing of the patient (the window's screen shows as much)."""
        if (bill is None) == (image is None):
            raise Invalid("image", "send a photo of the bill code (image) or its text (bill), one of them")
        source = "bill"
        if image is not None:
            source, bill = "image", decode_photo(image)
        claims = self._claims(bill, source)
        with self.factory() as session:  # a genuine bill names a visit of its institution: we signed it
            name = records.institution(session, claims.fixmedins_code).fixmedins_name
            med_type = records.own_visit(session, claims.fixmedins_code, claims.mdtrt_id).med_type
        paid = False
        if self.one_scan is not None:
            try:
                paid = self.one_scan.intent(intent_id_for(claims.fixmedins_code, claims.bill_id)).state == "captured"
            except NotFound:
                pass  # not paid yet
        return {"bill": bill.strip(), "bill_id": claims.bill_id, "fixmedins_code": claims.fixmedins_code,
                "fixmedins_name": name, "mdtrt_id": claims.mdtrt_id, "med_type": med_type,
                "medfee_sumamt": claims.amount_fen, "state": "paid" if paid else "due",
                "expires_at": datetime.fromtimestamp(claims.expires_at, timezone.utc)}

    def _claims(self, bill: Any, field: str) -> BillClaims:
        """The claims of a genuine, unexpired bill code; refusals name ``field`` (where the code came from)."""
        try:
            return parse_bill(bill, self.key.public_key(), self.clock())
        except CodeError as e:
            raise refused_code(e, field) from None

    def pay_bill(self, psn_no: str, bill: str) -> PayResult:
        """Pay ``bill`` for ``psn_no``, the holder of the e-certificate whose device signed the request."""
        if self.one_scan is None:
            raise Invalid("gateway", "no payment gateway is configured; pay at the window")
        claims = self._claims(bill, "bill")
        with self.factory() as session:
            visit = records.own_visit(session, claims.fixmedins_code, claims.mdtrt_id)
        if visit.psn_no != psn_no:
            raise Forbidden("bill", "this bill is for another patient")
        try:  # paying the same bill again continues (or repeats the answer of) the first payment, which
            # already names its person: no new token is minted for a retry
            self.one_scan.intent(intent_id_for(claims.fixmedins_code, claims.bill_id))
            token = ""
        except NotFound:
            current = self.settlement.presettle(claims.fixmedins_code, claims.mdtrt_id).setlinfo["medfee_sumamt"]
            if current != claims.amount_fen:
                raise Conflict("bill", "the bill changed since the code was shown; ask the window for a new code")
            token = self.persons.issue_ec_token(psn_no, claims.fixmedins_code, "01301", ttl=timedelta(minutes=5))
        return self.one_scan.pay(claims.fixmedins_code, claims.bill_id, token, claims.mdtrt_id)
