"""An inpatient's stay from the phone (住院): the running balance, deposit top-ups through the gateway, discharge.

- **The balance.** Deposits paid (at the counter or in the app), the fees the HIS uploaded so far, and the patient's
  own share of them as a settlement now would split them (the fund's part taken off) — so "余额" is what the deposit
  still covers, and a negative one asks for a top-up.
- **A top-up is paid first, then posted.** The gateway authorises and captures the amount; then the settlement
  service posts it to the stay's deposit held for the gateway channel (``deposit:{mdtrt_id}:gateway``). The payment's
  id (the gateway's idempotency key and the posting's message id) derives from the app's request id, so a double tap,
  a reload or a retry reaches the same payment. A stay no longer open (discharged, settled, cancelled) takes no deposit:
  refused before anything is charged; a stay that closed while the money was on its way gets the money back through
  the gateway. ``recover()`` finishes what an unknown gateway answer or a crash left half-way.
- **Discharge from the phone.** The patient confirms; the HIS is told (``discharge.requested``) and does its 2402 and
  2304 as usual. The final settlement pays the patient's share from the deposits first and releases the rest to the
  channel that paid it (``domain.posting``); ``refund_released`` then gives the gateway's part back through the
  gateway, newest payment first, each refund with a fixed id so that a repeat never refunds twice.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.db.ledger_tables import LedgerTransferRow
from medpay.adapters.db.payment_tables import PaymentMethodRow
from medpay.adapters.db.stay_tables import DepositPaymentRow, DischargeRequestRow
from medpay.adapters.db.tables import FeeLineRow, InstitutionRow, SettlementRow, VisitRow
from medpay.adapters.gateway.port import GatewayTimeout, GatewayUnavailable, PaymentGateway
from medpay.domain.posting import channel_payer, deposit_account
from medpay.local_time import LOCAL_TZ, local_date
from medpay.money import MoneyError, format_yuan, parse_yuan
from medpay.services.errors import Conflict, Invalid, NotFound, ServiceError
from medpay.services.his_notices import HisNotices
from medpay.services.settlement import INPATIENT_MED_TYPES, SettlementService
from medpay.services.unit_of_work import unit_of_work

CHANNEL = "gateway"
MAX_TOP_UP_FEN = 5_000_000  # 50,000.00 yuan at a time: a deposit, not a transfer
RECOVERY_GRACE = timedelta(seconds=60)
FINAL = frozenset({"deposited", "declined", "voided", "refunded"})


def payment_id_for(fixmedins_code: str, mdtrt_id: str, request_id: str) -> str:
    """The top-up's id: stable per (stay, the app's request id), 40 characters (a message id's length)."""
    return "DP" + hashlib.sha256(f"{fixmedins_code}|{mdtrt_id}|{request_id}".encode()).hexdigest()[:38]


def deposit_books(session: Session, day: date, gateway: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """The gateway's statement of ``day`` against our books for deposits paid through it, stay by stay (a stay's
    refund at discharge can't be told apart payment by payment in the ledger): ``{"deposit:{mdtrt_id}":
    (gateway fen, ledger fen, payment records' fen)}``, each what moved that day (China time). ``gateway``: the
    statement's net by intent id; the deposits' ids are taken out of it."""
    payer = channel_payer(CHANNEL).id
    ids = [k for k in gateway if k.startswith("DP")]
    rows = list(session.execute(select(DepositPaymentRow).where(
        DepositPaymentRow.payment_id.in_(ids) | (DepositPaymentRow.updated_at >= _day_start(day) - timedelta(days=1))
    )).scalars())
    out: dict[str, list[int]] = {}
    released = session.execute(select(LedgerTransferRow.debit_account_id).where(  # refunds owed that day
        LedgerTransferRow.code == "deposit_refund", LedgerTransferRow.credit_account_id == payer,
        LedgerTransferRow.created_at >= _day_start(day), LedgerTransferRow.created_at < _day_start(day) + timedelta(days=1)))
    for (account_id,) in released:
        out.setdefault("deposit:" + account_id.split(":")[1], [0, 0, 0])
    for p in rows:
        key = f"deposit:{p.mdtrt_id}"
        books = out.setdefault(key, [0, 0, 0])
        books[0] += gateway.pop(p.payment_id, 0)
        if local_date(p.created_at) == day and p.state in ("captured", "deposited", "refunded"):
            books[2] += p.amount
        if p.refunded and local_date(p.updated_at) == day:
            books[2] -= p.refunded
    for key, books in out.items():
        held = deposit_account(key.split(":", 1)[1], CHANNEL).id
        for t in session.execute(select(LedgerTransferRow).where(
                ((LedgerTransferRow.debit_account_id == held) & (LedgerTransferRow.credit_account_id == payer))
                | ((LedgerTransferRow.debit_account_id == payer) & (LedgerTransferRow.credit_account_id == held)))):
            if local_date(t[0].created_at) == day:
                books[1] += t[0].amount if t[0].debit_account_id == payer else -t[0].amount
    return {k: (v[0], v[1], v[2]) for k, v in out.items() if any(v)}


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


def refund_released(factory: sessionmaker[Session], gateway: PaymentGateway, clock: Callable[[], datetime],
                    mdtrt_id: str | None = None) -> list[tuple[str, int]]:
    """Give back through the gateway what final settlements released of the stays' gateway deposits (one stay's,
    or every stay's still owed), newest payment first: ``(payment_id, fen)`` of each refund made. The 2304 handler
    calls it after a final settlement; recovery asks again for what the gateway could not be asked then."""
    with factory() as s:
        query = select(DepositPaymentRow.mdtrt_id).where(DepositPaymentRow.state == "deposited").distinct()
        if mdtrt_id is not None:
            query = query.where(DepositPaymentRow.mdtrt_id == mdtrt_id)
        stays = list(s.execute(query).scalars())
    done = []
    for stay in stays:
        done += _refund_stay(factory, gateway, clock, stay)
    return done


def _refund_stay(factory: sessionmaker[Session], gateway: PaymentGateway, clock: Callable[[], datetime],
                 mdtrt_id: str) -> list[tuple[str, int]]:
    held, payer = deposit_account(mdtrt_id, CHANNEL).id, channel_payer(CHANNEL).id
    with factory() as s:
        moved = dict(s.execute(select(LedgerTransferRow.code, func.sum(LedgerTransferRow.amount)).where(
            LedgerTransferRow.code.in_(("deposit_refund", "rev_deposit_refund")),
            ((LedgerTransferRow.debit_account_id == held) & (LedgerTransferRow.credit_account_id == payer))
            | ((LedgerTransferRow.debit_account_id == payer) & (LedgerTransferRow.credit_account_id == held)))
            .group_by(LedgerTransferRow.code)).all())
        payments = list(s.execute(select(DepositPaymentRow).where(
            DepositPaymentRow.mdtrt_id == mdtrt_id, DepositPaymentRow.state == "deposited")
            .order_by(DepositPaymentRow.created_at.desc())).scalars())
    owed = int(moved.get("deposit_refund") or 0) - int(moved.get("rev_deposit_refund") or 0) - sum(
        p.refunded for p in payments)  # (PostgreSQL sums to a Decimal)
    done = []
    for p in payments:
        fen = min(owed, p.amount - p.refunded)
        if fen <= 0:
            continue
        try:
            res = gateway.refund(p.payment_id, f"{p.payment_id}-discharge", fen)
        except (GatewayTimeout, GatewayUnavailable):
            continue  # asked again by recovery
        if res.error_code and res.error_code != "refund_exceeds_capture":
            continue
        status = res if not res.error_code else gateway.status(p.payment_id)
        with unit_of_work(factory) as uow:
            row = uow.session.get(DepositPaymentRow, p.payment_id)
            row.refunded, row.updated_at = status.amount_refunded, clock()
        owed -= status.amount_refunded - p.refunded
        done.append((p.payment_id, status.amount_refunded - p.refunded))
    return done


class StayService:
    def __init__(self, factory: sessionmaker[Session], settlement: SettlementService, gateway: PaymentGateway | None,
                 cipher: FieldCipher, notices: HisNotices, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.settlement = settlement
        self.gateway = gateway
        self.cipher = cipher
        self.notices = notices
        self.clock = clock

    # ------------------------------------------------------------------ what the app shows

    def stays(self, psn_no: str) -> list[dict[str, Any]]:
        """The person's admissions of the last 90 days, the open ones first, each with its balance."""
        since = self.clock() - timedelta(days=90)
        with self.factory() as s:
            rows = s.execute(select(VisitRow, InstitutionRow.fixmedins_name).join(
                InstitutionRow, InstitutionRow.fixmedins_code == VisitRow.fixmedins_code).where(
                VisitRow.psn_no == psn_no, VisitRow.med_type.in_(INPATIENT_MED_TYPES),
                VisitRow.status != "cancelled", VisitRow.begntime >= since)
                .order_by(VisitRow.begntime.desc())).all()
        out = [self._stay(visit, name) for visit, name in rows]
        return sorted(out, key=lambda x: x["status"] not in ("open", "discharged"))

    def stay(self, psn_no: str, fixmedins_code: str, mdtrt_id: str) -> dict[str, Any]:
        visit, name = self._own(psn_no, fixmedins_code, mdtrt_id)
        return self._stay(visit, name)

    def _stay(self, visit: VisitRow, name: str) -> dict[str, Any]:
        code, mdtrt_id = visit.fixmedins_code, visit.mdtrt_id
        with self.factory() as s:
            fees = s.execute(select(func.coalesce(func.sum(FeeLineRow.det_item_fee_sumamt), 0)).where(
                FeeLineRow.mdtrt_id == mdtrt_id, FeeLineRow.status == "active")).scalar_one()
            payments = list(s.execute(select(DepositPaymentRow).where(DepositPaymentRow.mdtrt_id == mdtrt_id)
                                      .order_by(DepositPaymentRow.created_at)).scalars())
            requested = s.get(DischargeRequestRow, mdtrt_id)
            final = s.execute(select(SettlementRow.setl_id, SettlementRow.output).where(
                SettlementRow.mdtrt_id == mdtrt_id, SettlementRow.kind == "settle", SettlementRow.final.is_(True),
                SettlementRow.cancelled.is_(False))).first()
        own_share = None
        if visit.status in ("open", "discharged") and fees:
            try:  # what the patient would pay of the fees so far if the stay were settled now
                own_share = self.settlement.presettle(code, mdtrt_id, mid_setl_flag=visit.status == "open"
                                                      ).setlinfo["psn_cash_pay"]
            except ServiceError:
                own_share = None
        answer = {
            "fixmedins_code": code, "fixmedins_name": name, "mdtrt_id": mdtrt_id, "med_type": visit.med_type,
            "begntime": visit.begntime, "endtime": visit.endtime, "status": visit.status,
            "deposit_total": visit.deposit_amt, "fee_sumamt": int(fees), "own_share": own_share,
            "deposit_balc": visit.deposit_amt - own_share if own_share is not None else visit.deposit_amt,
            "discharge_requested_at": requested.requested_at if requested else None,
            "payments": [{"payment_id": p.payment_id, "amount": p.amount, "state": p.state, "refund_amt": p.refunded,
                          "created_at": p.created_at} for p in payments],
            "settlement": None}
        if final is not None:
            info = final.output["setlinfo"]
            answer["settlement"] = {"setl_id": final.setl_id, **{k: info.get(k, 0) for k in (
                "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay", "deposit_applied", "deposit_refund")}}
        return answer

    # ------------------------------------------------------------------ top-up

    def top_up(self, psn_no: str, fixmedins_code: str, mdtrt_id: str, amount: Any, request_id: str,
               payer_psn_no: str = "") -> dict[str, Any]:
        """Pay ``amount`` (yuan) into the stay's deposit through the gateway; a repeat of ``request_id`` continues
        or repeats the same payment. ``payer_psn_no``: a family member whose payment method pays."""
        if self.gateway is None:
            raise Invalid("gateway", "no payment gateway is configured; pay the deposit at the window")
        try:
            fen = parse_yuan(amount, "amount")
        except MoneyError as e:
            raise Invalid(e.field, str(e)) from None
        if not 0 < fen <= MAX_TOP_UP_FEN:
            raise Invalid("amount", f"a deposit is 0.01 to {MAX_TOP_UP_FEN // 100} yuan at a time")
        payment_id = payment_id_for(fixmedins_code, mdtrt_id, request_id)
        row = self._payment(payment_id)
        if row is None:
            row = self._open(payment_id, psn_no, payer_psn_no or psn_no, fixmedins_code, mdtrt_id, fen)
        elif row.psn_no != psn_no or row.mdtrt_id != mdtrt_id:
            raise NotFound("mdtrt_id", f"no stay {mdtrt_id!r} of yours at {fixmedins_code!r}")
        elif row.amount != fen:
            raise Conflict("request_id", "this request id was used for another amount")
        return self._answer(self._proceed(row))

    def _open(self, payment_id: str, psn_no: str, payer: str, code: str, mdtrt_id: str,
              fen: int) -> DepositPaymentRow:
        visit, _name = self._own(psn_no, code, mdtrt_id)
        if visit.status != "open":
            raise Conflict("mdtrt_id", f"the stay is {visit.status}: it takes no more deposit")
        now = self.clock()
        try:
            with unit_of_work(self.factory) as uow:
                if uow.session.get(PaymentMethodRow, payer) is None:
                    raise Invalid("payer_token", "no bound payment method; pay the deposit at the window")
                row = DepositPaymentRow(payment_id=payment_id, fixmedins_code=code, mdtrt_id=mdtrt_id, psn_no=psn_no,
                                        payer_psn_no=payer, amount=fen, state="created", in_doubt=False, refunded=0,
                                        gateway_ref="", error="", created_at=now, updated_at=now)
                uow.session.add(row)
        except IntegrityError:  # a concurrent tap opened it first
            row = self._payment(payment_id)
        return row

    def _proceed(self, row: DepositPaymentRow) -> DepositPaymentRow:
        if row.state in FINAL or row.in_doubt:
            return row
        if row.state == "created":
            row = self._hold(row)
        if row.state == "held":
            row = self._capture(row)
        if row.state == "captured" and not row.in_doubt:
            row = self._post(row)
        return row

    def _hold(self, row: DepositPaymentRow) -> DepositPaymentRow:
        with self.factory() as s:
            method = s.get(PaymentMethodRow, row.payer_psn_no)
            token = self.cipher.decrypt(method.payer_token_enc, "payer_token")
        try:
            res = self.gateway.authorise(row.payment_id, row.amount, token, f"medpay deposit {row.mdtrt_id}")
        except (GatewayTimeout, GatewayUnavailable) as e:
            res = self._status(row.payment_id)
            if res is None:
                return self._set(row.payment_id, in_doubt=True, error=f"authorise: {e}")
        if res.state == "held" and res.ok:
            return self._set(row.payment_id, state="held", gateway_ref=res.gateway_ref or "")
        if res.state in ("captured", "partially_refunded", "refunded"):
            return self._set(row.payment_id, state="captured", in_doubt=False)
        return self._set(row.payment_id, state="declined", error=f"{res.error_code}: {res.error_message}"[:300])

    def _capture(self, row: DepositPaymentRow) -> DepositPaymentRow:
        try:
            res = self.gateway.capture(row.payment_id, row.amount)
        except (GatewayTimeout, GatewayUnavailable) as e:
            res = self._status(row.payment_id)
            if res is None:
                return self._set(row.payment_id, in_doubt=True, error=f"capture: {e}")
        if res.state in ("captured", "partially_refunded", "refunded"):
            return self._set(row.payment_id, state="captured", in_doubt=False)
        if res.state == "held" and not res.error_code:
            return self._set(row.payment_id, in_doubt=True, error="capture not confirmed")
        return self._set(row.payment_id, state="voided", in_doubt=False, error=f"capture refused: {res.error_code}")

    def _post(self, row: DepositPaymentRow) -> DepositPaymentRow:
        """The captured money onto the stay; a stay closed meanwhile gets it back through the gateway."""
        try:
            self.settlement.deposit(row.fixmedins_code, row.mdtrt_id, format_yuan(row.amount), msgid=row.payment_id,
                                    channel=CHANNEL)
        except ServiceError as e:
            try:
                res = self.gateway.refund(row.payment_id, f"{row.payment_id}-back", row.amount)
            except (GatewayTimeout, GatewayUnavailable):
                return self._set(row.payment_id, in_doubt=True, error=f"refund after {e.field}: not confirmed")
            refunded = res.amount_refunded if not res.error_code else self.gateway.status(row.payment_id).amount_refunded
            return self._set(row.payment_id, state="refunded", refunded=refunded, in_doubt=False,
                             error=f"{e.field}: {e.message}"[:300])
        return self._set(row.payment_id, state="deposited", in_doubt=False, error="")

    # ------------------------------------------------------------------ discharge

    def request_discharge(self, psn_no: str, fixmedins_code: str, mdtrt_id: str) -> dict[str, Any]:
        """The patient asks to be discharged and settled; the HIS is told. A repeat answers the same request."""
        visit, name = self._own(psn_no, fixmedins_code, mdtrt_id)
        if visit.status not in ("open", "discharged"):
            raise Conflict("mdtrt_id", f"the stay is {visit.status}; there is nothing to discharge")
        with unit_of_work(self.factory) as uow:
            s = uow.session
            if s.get(DischargeRequestRow, mdtrt_id) is None:
                now = self.clock()
                s.add(DischargeRequestRow(mdtrt_id=mdtrt_id, fixmedins_code=fixmedins_code, psn_no=psn_no,
                                          requested_at=now))
                self.notices.queue(s, fixmedins_code, "discharge.requested", mdtrt_id, {
                    "mdtrtId": mdtrt_id, "psnNo": psn_no, "requestedAt": now.isoformat()})
        self.notices.deliver(mdtrt_id)
        return self._stay(visit, name)

    def refund_released(self, mdtrt_id: str | None = None) -> list[tuple[str, int]]:
        return refund_released(self.factory, self.gateway, self.clock, mdtrt_id) if self.gateway else []

    # ------------------------------------------------------------------ recovery

    def recover(self, grace: timedelta = RECOVERY_GRACE) -> list[tuple[str, str]]:
        """Finish top-ups left half-way (an unknown gateway answer, a crash) for longer than ``grace``, by the
        gateway's status: a capture becomes the deposit (or its refund), a hold is captured, nothing is declined;
        then the deposits released at discharge are refunded."""
        if self.gateway is None:
            return []
        cutoff = self.clock() - grace
        with self.factory() as s:
            todo = list(s.execute(select(DepositPaymentRow).where(
                DepositPaymentRow.state.not_in(FINAL),
                DepositPaymentRow.in_doubt.is_(True) | (DepositPaymentRow.updated_at <= cutoff))).scalars())
        outcomes = []
        for row in todo:
            res = self._status(row.payment_id)
            if res is None:
                outcomes.append((row.payment_id, "still unknown"))
                continue
            if res.state in ("captured", "partially_refunded", "refunded"):
                row = self._set(row.payment_id, state="captured", in_doubt=False)
            elif res.state == "held":
                row = self._set(row.payment_id, state="held", in_doubt=False)
            elif res.state in ("unknown", "declined"):
                row = self._set(row.payment_id, state="declined", in_doubt=False, error="recovered: never held")
            else:
                row = self._set(row.payment_id, state="voided", in_doubt=False, error=f"recovered: {res.state}")
            outcomes.append((row.payment_id, self._proceed(row).state))
        outcomes += [(pid, "refunded at discharge") for pid, _fen in self.refund_released()]
        return outcomes

    # ------------------------------------------------------------------ helpers

    def _own(self, psn_no: str, fixmedins_code: str, mdtrt_id: str) -> tuple[VisitRow, str]:
        """The person's own admission (another's, or an outpatient visit, answers as unknown)."""
        with self.factory() as s:
            row = s.execute(select(VisitRow, InstitutionRow.fixmedins_name).join(
                InstitutionRow, InstitutionRow.fixmedins_code == VisitRow.fixmedins_code).where(
                VisitRow.mdtrt_id == mdtrt_id, VisitRow.fixmedins_code == fixmedins_code)).one_or_none()
        if row is None or row[0].psn_no != psn_no or row[0].med_type not in INPATIENT_MED_TYPES:
            raise NotFound("mdtrt_id", f"no stay {mdtrt_id!r} of yours at {fixmedins_code!r}")
        return row[0], row[1]

    def _payment(self, payment_id: str) -> DepositPaymentRow | None:
        with self.factory() as s:
            return s.get(DepositPaymentRow, payment_id)

    def _set(self, payment_id: str, **values: Any) -> DepositPaymentRow:
        with unit_of_work(self.factory) as uow:
            row = uow.session.execute(select(DepositPaymentRow).where(DepositPaymentRow.payment_id == payment_id)
                                      .with_for_update()).scalar_one()
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = self.clock()
        return row

    def _status(self, payment_id: str):
        try:
            return self.gateway.status(payment_id)
        except (GatewayTimeout, GatewayUnavailable):
            return None

    @staticmethod
    def _answer(row: DepositPaymentRow) -> dict[str, Any]:
        return {"payment_id": row.payment_id, "mdtrt_id": row.mdtrt_id, "amount": row.amount,
                "state": "in_doubt" if row.in_doubt else row.state, "refund_amt": row.refunded,
                "error": row.error if row.state in ("declined", "voided", "refunded") else ""}
