"""One scan settles everything: fund + personal account in the ledger, the cash part from the patient's
bound payment method through a gateway — all or nothing, then a settle.notify to terminal and HIS.

Order of steps, and why:
1. quote the bill and **hold** the cash part at the gateway (nothing is settled yet, so a decline or a
   gateway fault leaves nothing to undo but the hold);
2. **settle** in our ledger with ``max_cash_fen`` = the hold, exactly once per msgid;
3. **capture** the hold. A capture the gateway refuses compensates: the settlement is cancelled and
   the hold voided. A capture whose outcome is unknown leaves the intent ``in_doubt``;
4. ``recover()`` resolves every in-doubt intent by status query: a hold with a standing settlement is
   captured, a hold without one is voided, a missing hold fails the intent (and cancels its settlement).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.payment_tables import NotificationRow, PaymentIntentRow, PaymentMethodRow
from medpay.adapters.db.tables import EcTokenRow, InstitutionRow, SettlementRow
from medpay.adapters.gateway.port import GatewayTimeout, GatewayUnavailable, PaymentGateway
from medpay.local_time import local_date
from medpay.money import format_yuan
from medpay.services import records
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from medpay.domain.credentials import E_CERTIFICATE, bill_refusal
from medpay.services.credentials import Credential, token_hash
from medpay.services.his_notices import claim, post_signed
from medpay.services.settlement import SettlementService, SettleRequest
from medpay.services.unit_of_work import unit_of_work

log = logging.getLogger("medpay.one_scan")
SETTLEMENT_BUSINESS_TYPES = {"01301", "02121"}  # 门诊结算, 药店购药
CHANNEL = "gateway"
FINAL_STATES = {"captured", "voided", "declined", "failed"}
RECOVERY_GRACE = timedelta(seconds=60)  # well past a gateway call's timeout: an older half-way intent is abandoned


@dataclass
class PayResult:
    intent_id: str
    state: str
    setl_id: str | None
    output: dict[str, Any] | None
    notify: dict[str, Any] | None


def undo_msgid(msgid: str) -> str:
    """The message id of the cancellation that undoes ``msgid``'s settlement: stable (a retry finds it done)
    and within the 40 characters a message id may have, however long the original."""
    return "undo:" + hashlib.sha256(msgid.encode()).hexdigest()[:35]


def intent_id_for(fixmedins_code: str, msgid: str) -> str:
    """A stable id per (institution, msgid): the gateway's idempotency key, so retries never double-charge."""
    return "pi_" + hashlib.sha256(f"{fixmedins_code}|{msgid}".encode()).hexdigest()[:40]


class OneScanService:
    def __init__(self, factory: sessionmaker[Session], settlement: SettlementService, gateway: PaymentGateway,
                 cipher: FieldCipher, clock: Callable[[], datetime] = utcnow,
                 notify_http: httpx.Client | None = None):
        self.factory = factory
        self.settlement = settlement
        self.gateway = gateway
        self.cipher = cipher
        self.clock = clock
        self.http = notify_http or httpx.Client(timeout=2.0)

    # ------------------------------------------------------------------ setup

    def bind_payment_method(self, psn_no: str, payer_token: str, gateway: str = CHANNEL) -> None:
        if not payer_token:
            raise Invalid("payer_token", "missing")
        with unit_of_work(self.factory) as uow:
            records.person_row(uow.session, psn_no)
            row = uow.session.get(PaymentMethodRow, psn_no) or PaymentMethodRow(psn_no=psn_no)
            row.gateway, row.payer_token_enc = gateway, self.cipher.encrypt(payer_token, "payer_token")
            row.bound_at = self.clock()
            uow.session.merge(row)

    # ------------------------------------------------------------------ the flow

    def pay(self, fixmedins_code: str, msgid: str, ec_token: str, mdtrt_id: str, *,
            acct_used_flag: bool = True, notify_urls: tuple[str, ...] = (), door: str = "",
            cash_payer: str = "") -> PayResult:
        """Settle ``mdtrt_id`` for the person the e-certificate token names, cash part through the gateway.

        Idempotent by (institution, msgid): a retry continues where the first attempt stopped. ``door``: where the
        patient paid when it is not a terminal's scan (``"mobile"``: in the app), kept with the intent for the
        payment-time figures. ``cash_payer``: whose bound payment method pays the cash part when it is not the
        patient's own (a parent paying a child's bill in the app).
        """
        intent_id = intent_id_for(fixmedins_code, msgid)
        # the token is a one-time credential, not part of what is asked: a retry may carry a fresh scan
        request = {"mdtrt_id": mdtrt_id, "acct_used_flag": acct_used_flag, **({"door": door} if door else {}),
                   **({"cash_payer": cash_payer} if cash_payer else {})}
        intent = self._open_intent(intent_id, fixmedins_code, msgid, ec_token, mdtrt_id, request, acct_used_flag)
        notify_urls = (*notify_urls, *self._registered_notify_url(fixmedins_code))
        if notify_urls and set(notify_urls) - set(intent.notify_urls or []):
            intent = self._update(intent_id, notify_urls=sorted(set(intent.notify_urls or []) | set(notify_urls)))
        if intent.state in FINAL_STATES or intent.in_doubt:
            if intent.state == "captured":
                self._notify(intent)  # a retry after recovery: make sure the notice went out
            return self._result(intent)
        if intent.state == "created":
            intent = self._hold(intent)
            if intent.state != "held":
                return self._result(intent)
        if intent.state == "held":
            intent = self._settle(intent, acct_used_flag)
            if intent.state != "settled":
                return self._result(intent)
        intent = self._capture(intent)
        if intent.state == "captured":
            self._notify(intent)
        return self._result(intent)

    def _notify(self, intent: PaymentIntentRow) -> None:
        """Queue and send this payment's notices; others' backlog is for ``recover()``, not this request."""
        self._queue_notifications(intent, tuple(intent.notify_urls or ()))
        self.deliver_notifications(intent.intent_id)

    def _registered_notify_url(self, fixmedins_code: str) -> tuple[str, ...]:
        """The HIS's notify URL registered for the institution (``medpay ecert notify-url``), if any: notices go
        there as well as to the URL a request names, and a URL named twice gets one notice."""
        session = self.factory()
        try:
            url = session.execute(select(InstitutionRow.notify_url)
                                  .where(InstitutionRow.fixmedins_code == fixmedins_code)).scalar_one_or_none()
        finally:
            session.close()
        return (url,) if url else ()

    def _open_intent(self, intent_id: str, code: str, msgid: str, ec_token: str, mdtrt_id: str,
                     request: dict, acct_used: bool) -> PaymentIntentRow:
        existing = self._existing_intent(intent_id, msgid, request)
        if existing is not None:
            return existing
        now = self.clock()
        with unit_of_work(self.factory) as uow:
            s = uow.session
            tok = s.get(EcTokenRow, token_hash(ec_token))
            if tok is None:
                raise NotFound("ecToken", "unknown e-certificate token")
            if tok.business_type not in SETTLEMENT_BUSINESS_TYPES:
                raise Forbidden("ecToken", f"the code was shown for business type {tok.business_type or '—'}, "
                                           f"not for settlement ({', '.join(sorted(SETTLEMENT_BUSINESS_TYPES))})")
            visit = records.own_visit(s, code, mdtrt_id, lock=True)
            if visit.psn_no != tok.psn_no:
                raise Forbidden("mdtrt_id", "the visit is not of the person who showed the code")
            # the token must still be live for this visit; it is bound to it now, and spent by the settlement
            try:
                fresh = self.settlement.credentials.for_visit(
                    s, records.institution(s, code), visit, records.person_row(s, visit.psn_no),
                    Credential(E_CERTIFICATE, ec_token), settling=True)
            except ServiceError as e:
                raise type(e)("ecToken" if e.field == "mdtrt_cert_no" else e.field, e.message) from None
            if s.get(PaymentMethodRow, request.get("cash_payer") or tok.psn_no) is None:
                raise Invalid("payer_token", "the patient has no bound payment method; pay at the window")
            if fresh is not None:
                self.settlement.credentials.bind(s, fresh, mdtrt_id)
            psn_no, limit = tok.psn_no, tok.max_bill_fen
        quote = self.settlement.presettle(code, mdtrt_id, acct_used_flag=acct_used)  # its own (read) transaction
        too_large = bill_refusal(limit, quote.setlinfo["medfee_sumamt"], "ecToken")  # refused before any hold
        if too_large:
            raise Forbidden(too_large.field, too_large.message)
        try:
            with unit_of_work(self.factory) as uow:
                row = PaymentIntentRow(intent_id=intent_id, fixmedins_code=code, msgid=msgid, mdtrt_id=mdtrt_id,
                                       psn_no=psn_no, amount=quote.setlinfo["psn_cash_pay"], state="created",
                                       request=request, created_at=now, updated_at=now)
                uow.session.add(row)
        except IntegrityError:  # a concurrent attempt with the same msgid opened it first
            return self._existing_intent(intent_id, msgid, request)
        return row

    def _existing_intent(self, intent_id: str, msgid: str, request: dict) -> PaymentIntentRow | None:
        session = self.factory()
        try:
            existing = session.get(PaymentIntentRow, intent_id)
        finally:
            session.close()
        if existing is not None and existing.request != request:
            raise Conflict("msgid", f"message id {msgid!r} was already used for a different payment")
        return existing

    def _update(self, intent_id: str, **values: Any) -> PaymentIntentRow:
        with unit_of_work(self.factory) as uow:
            row = uow.session.execute(select(PaymentIntentRow).where(PaymentIntentRow.intent_id == intent_id)
                                      .with_for_update()).scalar_one()
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = self.clock()
        return row

    def _payer_token(self, psn_no: str) -> str:
        session = self.factory()
        try:
            row = session.get(PaymentMethodRow, psn_no)
            return self.cipher.decrypt(row.payer_token_enc, "payer_token")
        finally:
            session.close()

    def _hold(self, intent: PaymentIntentRow) -> PaymentIntentRow:
        if intent.amount == 0:  # nothing to collect: fund and account cover it all
            return self._update(intent.intent_id, state="held")
        try:
            res = self.gateway.authorise(intent.intent_id, intent.amount, self._payer_token((intent.request or {}).get("cash_payer") or intent.psn_no),
                                         f"medpay {intent.fixmedins_code} {intent.mdtrt_id}")
        except (GatewayTimeout, GatewayUnavailable) as e:
            res = self._status_or_none(intent.intent_id)
            if res is None:
                return self._update(intent.intent_id, in_doubt=True, error=f"authorise: {e}")
        if res.state == "held" and res.ok:
            return self._update(intent.intent_id, state="held", gateway_ref=res.gateway_ref or "")
        if res.state == "declined" or res.error_code:
            return self._update(intent.intent_id, state="declined",
                                error=f"{res.error_code}: {res.error_message}"[:300])
        return self._update(intent.intent_id, in_doubt=True, error=f"authorise answered {res.state}")

    def _settle(self, intent: PaymentIntentRow, acct_used: bool) -> PaymentIntentRow:
        try:
            out = self.settlement.settle(SettleRequest(intent.fixmedins_code, intent.msgid, intent.mdtrt_id,
                                                       acct_used_flag=acct_used, channel=CHANNEL,
                                                       max_cash_fen=intent.amount))
        except ServiceError as e:
            self._void(intent)
            self._update(intent.intent_id, state="voided", error=f"{e.field}: {e.message}"[:300])
            raise
        return self._update(intent.intent_id, state="settled", setl_id=out["setlinfo"]["setl_id"])

    def _capture(self, intent: PaymentIntentRow) -> PaymentIntentRow:
        cash = self._settled_cash(intent)
        if cash == 0:
            if intent.amount:
                self._void(intent)
            return self._update(intent.intent_id, state="captured", captured=0)
        try:
            res = self.gateway.capture(intent.intent_id, cash)
        except (GatewayTimeout, GatewayUnavailable) as e:
            res = self._status_or_none(intent.intent_id)
            if res is None:
                return self._update(intent.intent_id, in_doubt=True, error=f"capture: {e}")
        if res.state in ("captured", "partially_refunded", "refunded"):
            return self._update(intent.intent_id, state="captured", captured=res.amount_captured, in_doubt=False)
        if res.state == "held" and not res.error_code:
            # a status answer after a lost capture: the hold still stands — recovery will capture it
            return self._update(intent.intent_id, in_doubt=True, error="capture not confirmed")
        # the gateway refused to capture (hold expired or voided): undo the settlement
        self._compensate(intent, f"capture refused: {res.state} {res.error_code}")
        return self._update(intent.intent_id, state="failed", error=f"capture refused: {res.error_code}"[:300])

    def _settled_cash(self, intent: PaymentIntentRow) -> int:
        out = self.settlement.settlement(intent.fixmedins_code, intent.setl_id)
        return out["setlinfo"]["psn_cash_pay"]

    def _compensate(self, intent: PaymentIntentRow, why: str) -> None:
        log.warning("intent %s: %s; cancelling settlement %s", intent.intent_id, why, intent.setl_id)
        try:
            self.settlement.cancel(intent.fixmedins_code, undo_msgid(intent.msgid), intent.setl_id)
        except Conflict:
            pass  # already cancelled
        self._void(intent)

    def _void(self, intent: PaymentIntentRow) -> None:
        if intent.amount == 0:
            return
        try:
            self.gateway.void(intent.intent_id)
        except (GatewayTimeout, GatewayUnavailable):
            log.warning("intent %s: void not confirmed; recovery will retry", intent.intent_id)

    def _status_or_none(self, intent_id: str):
        try:
            return self.gateway.status(intent_id)
        except (GatewayTimeout, GatewayUnavailable):
            return None

    # ------------------------------------------------------------------ recovery

    def recover(self, grace: timedelta = RECOVERY_GRACE) -> list[tuple[str, str]]:
        """Resolve intents left in doubt, or half-way for longer than ``grace``. Safe to run at any time, any
        number of times. An intent a request is still working on (not in doubt, touched within ``grace``) is
        left alone: sweeping it would void a hold its own request is about to capture."""
        cutoff = self.clock() - grace
        session = self.factory()
        try:
            todo = list(session.execute(select(PaymentIntentRow).where(
                PaymentIntentRow.state.not_in(FINAL_STATES),
                PaymentIntentRow.in_doubt.is_(True) | (PaymentIntentRow.updated_at <= cutoff))).scalars())
        finally:
            session.close()
        outcomes = []
        for intent in todo:
            try:
                outcomes.append((intent.intent_id, self._recover_one(intent)))
            except Exception:  # one payment's trouble must not stop the others' recovery; it is retried next run
                log.exception("recovery of %s failed", intent.intent_id)
                outcomes.append((intent.intent_id, "error"))
        self.deliver_notifications()  # the backlog of notices that could not be delivered before
        outcomes += [(intent_id, "refunded") for intent_id, _fen in self.refund_cancelled()]
        return outcomes

    def _recover_one(self, intent: PaymentIntentRow) -> str:
        if intent.setl_id is None:
            intent = self._adopt_settlement(intent)
        res = self._status_or_none(intent.intent_id) if intent.amount else None
        if intent.amount and res is None:
            return "still unknown"
        gw_state = res.state if res is not None else "none"
        if intent.setl_id is None:
            # never settled: whatever the gateway holds must be released
            if gw_state == "held":
                self._void(intent)
            if gw_state in ("captured", "partially_refunded"):
                self.gateway.refund(intent.intent_id, f"{intent.intent_id}-rf", res.amount_captured - res.amount_refunded)
            final = self._update(intent.intent_id, state="voided", in_doubt=False, error="recovered: not settled")
        elif gw_state in ("captured", "partially_refunded", "refunded"):
            final = self._update(intent.intent_id, state="captured", captured=res.amount_captured, in_doubt=False)
        elif gw_state == "held" or intent.amount == 0:
            final = self._capture(self._update(intent.intent_id, in_doubt=False))
        else:  # settled here, but the gateway has no hold (declined, voided, expired): undo the settlement
            self._compensate(intent, f"gateway state {gw_state}")
            final = self._update(intent.intent_id, state="failed", in_doubt=False, error=f"recovered: gateway {gw_state}")
        if final.state == "captured":
            self._queue_notifications(final, tuple(final.notify_urls or ()))
        return final.state

    def _adopt_settlement(self, intent: PaymentIntentRow) -> PaymentIntentRow:
        """A crash between our settlement's commit and the intent's update leaves the settlement unnamed:
        find it by its msgid."""
        session = self.factory()
        try:
            setl = session.execute(select(SettlementRow.setl_id).where(
                SettlementRow.fixmedins_code == intent.fixmedins_code, SettlementRow.msgid == intent.msgid,
                SettlementRow.kind == "settle", SettlementRow.cancelled.is_(False))).scalar_one_or_none()
        finally:
            session.close()
        return self._update(intent.intent_id, setl_id=setl, state="settled") if setl else intent

    def refund(self, fixmedins_code: str, msgid: str, intent_id: str) -> dict[str, Any]:
        """Cancel a gateway-paid settlement and refund its cash part (partial refunds: cancel, then settle anew)."""
        try:
            intent = self.intent(intent_id)
        except NotFound:
            intent = None
        if intent is None or intent.fixmedins_code != fixmedins_code:  # another's: refused like an unknown one
            raise NotFound("intent_id", f"no payment {intent_id!r} at this institution")
        if intent.state != "captured" or not intent.setl_id:
            raise Conflict("intent_id", f"payment {intent_id!r} is {intent.state}; only a captured one can be refunded")
        out = self.settlement.cancel(fixmedins_code, msgid, intent.setl_id)
        self.refund_cancelled(intent.setl_id)
        return out

    def refund_cancelled(self, setl_id: str | None = None) -> list[tuple[str, int]]:
        """Give back through the gateway the cash of gateway-paid settlements the HIS cancelled (2208/2305 — a whole
        refund, or the first half of a partial one: cancel, then settle what stays billed): ``(intent_id, fen)`` of
        each refund made. Only ``setl_id``'s payment, else every one still owed. The refund id is fixed per payment,
        so a repeat after a lost answer never refunds twice; what the gateway could not be asked now is asked again
        by ``recover()``."""
        query = (select(PaymentIntentRow).join(SettlementRow, SettlementRow.setl_id == PaymentIntentRow.setl_id)
                 .where(PaymentIntentRow.state == "captured", SettlementRow.cancelled.is_(True),
                        PaymentIntentRow.captured > PaymentIntentRow.refunded))
        if setl_id is not None:
            query = query.where(PaymentIntentRow.setl_id == setl_id)
        with self.factory() as session:
            owed = list(session.execute(query).scalars())
        done = []
        for intent in owed:
            try:
                res = self.gateway.refund(intent.intent_id, f"{intent.intent_id}-cancel",
                                          intent.captured - intent.refunded)
            except (GatewayTimeout, GatewayUnavailable) as e:
                log.warning("refund of cancelled %s not confirmed (%s); recovery asks again", intent.intent_id, e)
                continue
            if res.error_code and res.error_code != "refund_exceeds_capture":
                log.error("refund of cancelled %s refused: %s %s", intent.intent_id, res.error_code, res.error_message)
                continue
            status = res if not res.error_code else self.gateway.status(intent.intent_id)
            self._update(intent.intent_id, refunded=status.amount_refunded)
            done.append((intent.intent_id, intent.captured - intent.refunded))
        return done

    def reconcile_statement(self, day) -> dict[str, Any]:
        """The gateway's daily statement against our books, to the fen, payment by payment: what the gateway
        took net of refunds must equal what our ledger moved through ``payer:gateway`` for that payment's
        settlement and its cancellations, and what the payment record says it captured net of refunds."""
        from medpay.adapters.db.ledger_store import LedgerStore
        from medpay.adapters.gateway.port import parse_statement
        from medpay.domain.posting import channel_payer
        from medpay.services.mobile.stay import deposit_books

        rows = parse_statement(self.gateway.statement(day))
        gateway: dict[str, int] = {}
        for r in rows:
            gateway[r["intent_id"]] = gateway.get(r["intent_id"], 0) + int(r["amount_fen"])
        payer = channel_payer(CHANNEL).id
        session = self.factory()
        try:
            deposits = deposit_books(session, day, gateway)  # deposits paid in the app, stay by stay
            intents = [i for i in session.execute(select(PaymentIntentRow).where(
                PaymentIntentRow.intent_id.in_(list(gateway)) | (PaymentIntentRow.captured > 0))).scalars()
                if i.intent_id in gateway or local_date(i.updated_at) == day]
            ledger = LedgerStore(session)
            books: dict[str, tuple[int, int]] = {}
            for intent in intents:
                refs = [intent.setl_id] if intent.setl_id else []
                refs += list(session.execute(select(SettlementRow.setl_id).where(
                    SettlementRow.orig_setl_id == intent.setl_id, SettlementRow.kind == "cancel",
                    SettlementRow.cancelled.is_(False))).scalars()) if intent.setl_id else []
                moved = sum(t.amount if t.debit_account_id == payer else -t.amount
                            for ref in refs for t in ledger.transfers_by_ref(ref) if payer in (t.debit_account_id, t.credit_account_id))
                books[intent.intent_id] = (moved, intent.captured - intent.refunded)
        finally:
            session.close()
        books.update({k: (ledger_fen, ours) for k, (_gw, ledger_fen, ours) in deposits.items()})
        gateway.update({k: gw for k, (gw, _l, _o) in deposits.items()})
        mismatches = []
        for k in sorted(set(gateway) | set(books)):
            ledger_fen, intent_fen = books.get(k, (0, 0))
            if not gateway.get(k, 0) == ledger_fen == intent_fen:
                mismatches.append({"intent_id": k, "gateway_fen": gateway.get(k, 0), "ledger_fen": ledger_fen,
                                   "payment_fen": intent_fen})
        return {"day": day.isoformat(), "rows": len(rows), "gateway_total_fen": sum(gateway.values()),
                "ledger_total_fen": sum(v[0] for v in books.values()),
                "medpay_total_fen": sum(v[1] for v in books.values()), "balanced": not mismatches,
                "mismatches": mismatches}

    # ------------------------------------------------------------------ notify

    def notify_payload(self, intent: PaymentIntentRow, output: dict[str, Any] | None = None) -> dict[str, Any]:
        """The settle.notify message; ``output`` is the settlement's stored output when already read."""
        info = (output or self.settlement.settlement(intent.fixmedins_code, intent.setl_id))["setlinfo"]
        return {
            "outBizNo": intent.msgid, "medicalSettleState": "SUCCESS", "medicalSettleNo": info["setl_id"],
            "mdtrtId": intent.mdtrt_id, "totalFee": format_yuan(info["medfee_sumamt"]),
            "ownAmt": format_yuan(info["psn_cash_pay"]), "hifAmt": format_yuan(info["fund_pay_sumamt"]),
            "acctAmt": format_yuan(info["acct_pay"]), "hifpAmt": format_yuan(info["hifp_pay"]),
            "hifmiAmt": format_yuan(info["hifmi_pay"]), "cvlservAmt": format_yuan(info["cvlserv_pay"]),
            "maAmt": format_yuan(info["maf_pay"]), "balance": format_yuan(info["balc"]),
            "gatewayRef": intent.gateway_ref,
        }

    def _queue_notifications(self, intent: PaymentIntentRow, urls: tuple[str, ...]) -> None:
        if not urls:
            return
        payload = self.notify_payload(intent)
        for url in urls:
            try:
                with unit_of_work(self.factory) as uow:
                    uow.session.add(NotificationRow(intent_id=intent.intent_id, target=url, payload=payload))
            except IntegrityError:
                pass  # queued by an earlier attempt

    def deliver_notifications(self, intent_id: str | None = None, max_attempts: int = 8) -> int:
        """POST pending notifications (of one payment, or all), signed with the institution's gateway token."""
        session = self.factory()
        try:
            query = (select(NotificationRow, PaymentIntentRow.fixmedins_code)
                     .join(PaymentIntentRow, NotificationRow.intent_id == PaymentIntentRow.intent_id)
                     .where(NotificationRow.delivered_at.is_(None), NotificationRow.attempts < max_attempts))
            if intent_id is not None:
                query = query.where(NotificationRow.intent_id == intent_id)
            pending = list(session.execute(query).all())
            codes = {code for _note, code in pending}
            tokens = {c: self.cipher.decrypt(t, "inst_token") for c, t in session.execute(
                select(InstitutionRow.fixmedins_code, InstitutionRow.token_enc)
                .where(InstitutionRow.fixmedins_code.in_(codes))) if t}
        finally:
            session.close()
        delivered = 0
        for note, code in pending:
            if not claim(self.factory, NotificationRow, note.id, self.clock()):
                continue  # another sender has it
            error = post_signed(self.http, note.target, note.payload, tokens.get(code, ""), self.clock())
            with unit_of_work(self.factory) as uow:
                row = uow.session.get(NotificationRow, note.id)
                row.attempts += 1
                row.last_error = error
                row.claimed_until = None
                if not error:
                    row.delivered_at = self.clock()
                    delivered += 1
        return delivered

    # ------------------------------------------------------------------ results

    def intent(self, intent_id: str) -> PaymentIntentRow:
        session = self.factory()
        try:
            row = session.get(PaymentIntentRow, intent_id)
            if row is None:
                raise NotFound("intent_id", f"unknown payment {intent_id!r}")
            return row
        finally:
            session.close()

    def result(self, intent_id: str) -> PayResult:
        """Where a payment stands, as ``pay`` answers it (for a caller that lost that answer)."""
        return self._result(self.intent(intent_id))

    def _result(self, intent: PaymentIntentRow) -> PayResult:
        output = notify = None
        if intent.setl_id and intent.state == "captured":
            output = self.settlement.settlement(intent.fixmedins_code, intent.setl_id)
            notify = self.notify_payload(intent, output)
        return PayResult(intent.intent_id, "in_doubt" if intent.in_doubt else intent.state, intent.setl_id, output, notify)
