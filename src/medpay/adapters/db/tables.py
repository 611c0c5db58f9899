"""Tables of the settlement: regions, institutions, persons, catalog, visits, fee lines, settlements,
year accumulators and idempotency records. Money columns are BigInteger fen.

Personal data (names, ID and card numbers, phones, salaries) is stored encrypted (``*_enc``) with a blind index
(``*_idx``) for lookups; see ``medpay.adapters.crypto``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from medpay.adapters.db.base import Base, UtcDateTime, utcnow


class RegionRow(Base):
    __tablename__ = "regions"
    admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class InstitutionRow(Base):
    __tablename__ = "institutions"
    fixmedins_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_name: Mapped[str] = mapped_column(String(200))
    admdvs: Mapped[str] = mapped_column(ForeignKey("regions.admdvs"))
    level: Mapped[str] = mapped_column(String(2))
    paasid: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_enc: Mapped[str | None] = mapped_column(Text)  # gateway token, encrypted: it signs requests
    notify_url: Mapped[str | None] = mapped_column(String(200))  # the HIS's registered settle.notify URL
    # what a 02/03 number without a card read may do here (medpay.domain.credentials.Assurance)
    id_assurance: Mapped[str] = mapped_column(String(10), default="counter", server_default="counter")
    # must requests carry an open 9001 sign-in (medpay.domain.interface_settings.SignIn)
    sign_in: Mapped[str] = mapped_column(String(10), default="required", server_default="required")
    # 5204's output: the list of rows, or {"feedetail": rows} (medpay.domain.interface_settings.FeeQueryShape)
    fee_query_shape: Mapped[str] = mapped_column(String(10), default="rows", server_default="rows")
    # 定点医药机构类型: 1 定点医疗机构 (a hospital or clinic), 2 定点零售药店 (medpay.domain.model.FIXMEDINS_TYPES)
    fixmedins_type: Mapped[str] = mapped_column(String(3), default="1", server_default="1")
    # what a policy may distinguish beyond the level: general, tcm 中医院, specialist, grassroots 基层
    # (medpay.domain.model.INSTITUTION_KINDS)
    inst_kind: Mapped[str] = mapped_column(String(12), default="general", server_default="general")


class PersonRow(Base):
    __tablename__ = "persons"
    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    psn_name_enc: Mapped[str] = mapped_column(Text)
    certno_enc: Mapped[str] = mapped_column(Text)
    certno_idx: Mapped[str] = mapped_column(String(64), unique=True)
    card_no_enc: Mapped[str | None] = mapped_column(Text)
    card_no_idx: Mapped[str | None] = mapped_column(String(64), unique=True)
    card_sn_idx: Mapped[str | None] = mapped_column(String(64))  # the card's identification code (卡识别码), indexed
    phone_enc: Mapped[str | None] = mapped_column(Text)  # mobile number on record: one-time codes and notices go here
    psn_cert_type: Mapped[str] = mapped_column(String(3), default="01")
    gend: Mapped[str] = mapped_column(String(1))
    brdy: Mapped[date] = mapped_column(Date)
    naty: Mapped[str] = mapped_column(String(3), default="01")
    insutype: Mapped[str] = mapped_column(String(6))
    psn_type: Mapped[str] = mapped_column(String(6))
    psn_insu_stas: Mapped[str] = mapped_column(String(1), default="1")  # 1 参保缴费, 2 暂停, 4 终止
    psn_insu_date: Mapped[date] = mapped_column(Date)
    insuplc_admdvs: Mapped[str] = mapped_column(ForeignKey("regions.admdvs"))
    emp_name: Mapped[str] = mapped_column(String(200), default="")
    cvlserv_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    identities: Mapped[str] = mapped_column(String(200), default="")  # comma-separated psn_idet_type codes
    # facts some regions' rules need (brdy and psn_insu_date above are the birth date and the enrolment start)
    retr_date: Mapped[date | None] = mapped_column(Date)  # retirement date (退休时间)
    pay_grade: Mapped[str] = mapped_column(String(2), default="", server_default="")  # resident payment grade: 1, 2 …
    salary_enc: Mapped[str | None] = mapped_column(Text)  # yearly salary base in fen, encrypted (personal data)


class FamilyLinkRow(Base):
    """``payer_psn_no``'s personal account may pay for ``beneficiary_psn_no`` (个人账户家庭共济)."""

    __tablename__ = "family_links"
    __table_args__ = (UniqueConstraint("payer_psn_no", "beneficiary_psn_no"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payer_psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    beneficiary_psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    relation: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CatalogItemRow(Base):
    __tablename__ = "catalog_items"
    med_list_codg: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    chrgitm_lv: Mapped[str] = mapped_column(String(2))
    med_chrgitm_type: Mapped[str] = mapped_column(String(6), default="")
    pric_uplmt_amt: Mapped[int | None] = mapped_column(BigInteger)
    selfpay_prop: Mapped[str | None] = mapped_column(String(12))  # decimal text; None = policy default
    list_type: Mapped[str] = mapped_column(String(6), default="", server_default="")  # 目录类别, e.g. 101 西药中成药
    # when the item entered the catalog and when it last changed (1312's crte_time/begndate and updt_time)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class VisitRow(Base):
    __tablename__ = "visits"
    __table_args__ = (Index("ix_visits_psn", "psn_no", "begntime"),)
    mdtrt_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"), index=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    insutype: Mapped[str] = mapped_column(String(6))
    med_type: Mapped[str] = mapped_column(String(6))
    begntime: Mapped[datetime] = mapped_column(UtcDateTime)
    endtime: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | discharged | settled | cancelled
    ipt_otp_no: Mapped[str] = mapped_column(String(30), default="")
    dise_codg: Mapped[str] = mapped_column(String(30), default="")
    dise_name: Mapped[str] = mapped_column(String(200), default="")
    mdtrt_cert_type: Mapped[str] = mapped_column(String(3), default="")
    admission_seq: Mapped[int] = mapped_column(Integer, default=1)
    deposit_amt: Mapped[int] = mapped_column(BigInteger, default=0)


class FeeLineRow(Base):
    __tablename__ = "fee_lines"
    __table_args__ = (
        # a line number can be live only once in a visit; a cancelled line may be uploaded again
        Index("uq_fee_lines_live_sn", "mdtrt_id", "feedetl_sn", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
        CheckConstraint("det_item_fee_sumamt >= 0", name="amount_not_negative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"), index=True)
    feedetl_sn: Mapped[str] = mapped_column(String(30))
    chrg_bchno: Mapped[str] = mapped_column(String(30), default="")
    med_list_codg: Mapped[str] = mapped_column(ForeignKey("catalog_items.med_list_codg"))
    medins_list_codg: Mapped[str] = mapped_column(String(50), default="")
    cnt: Mapped[str] = mapped_column(String(24))  # decimal text (16,4)
    pric: Mapped[str] = mapped_column(String(24))  # decimal text (16,6)
    det_item_fee_sumamt: Mapped[int] = mapped_column(BigInteger)
    fee_ocur_time: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | cancelled
    setl_id: Mapped[str | None] = mapped_column(String(30), index=True)  # set once a settlement covers it
    result: Mapped[dict] = mapped_column(JSON)  # the classification returned by 2204/2301
    details: Mapped[dict | None] = mapped_column(JSON)  # what else the HIS said of the line (departments, doctors, …)


class SettlementRow(Base):
    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("fixmedins_code", "msgid"),
        # a settlement can be cancelled once: only one standing cancellation may name it (a cancellation
        # voided by a 2601 reversal no longer counts, so the settlement may be cancelled again later)
        Index("uq_settlements_one_cancel", "orig_setl_id", unique=True,
              sqlite_where=text("NOT cancelled"), postgresql_where=text("NOT cancelled")),
        Index("ix_settlements_inst_time", "fixmedins_code", "setl_time"),
    )
    setl_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # settle | cancel
    orig_setl_id: Mapped[str | None] = mapped_column(String(30))
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"), index=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    msgid: Mapped[str] = mapped_column(String(40))
    insutype: Mapped[str] = mapped_column(String(6))
    med_type: Mapped[str] = mapped_column(String(6))
    clr_type: Mapped[str] = mapped_column(String(6))
    setl_time: Mapped[datetime] = mapped_column(UtcDateTime)
    setl_year: Mapped[int] = mapped_column(Integer)
    final: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[str] = mapped_column(String(20), default="counter")
    policy_id: Mapped[str] = mapped_column(String(40))
    medfee_sumamt: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt: Mapped[int] = mapped_column(BigInteger)
    acct_pay: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay: Mapped[int] = mapped_column(BigInteger)
    hosp_part_amt: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    output: Mapped[dict] = mapped_column(JSON)  # {"setlinfo": …, "setldetail": […]} in fen
    year_deltas: Mapped[dict] = mapped_column(JSON)
    visit_deltas: Mapped[dict] = mapped_column(JSON)
    account_payments: Mapped[list] = mapped_column(JSON)  # [[psn_no, relation, fen], …]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccumulatorRow(Base):
    __tablename__ = "accumulators"
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class IdempotencyRow(Base):
    """First answer to a caller's message id; a retry gets it back, a different body is refused."""

    __tablename__ = "idempotency_keys"
    scope: Mapped[str] = mapped_column(String(40), primary_key=True)  # e.g. the institution code
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # msgid / Idempotency-Key
    request_hash: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(20))
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CredentialPresentationRow(Base):
    """A person showed a credential (card, ID, e-certificate, face) to an institution: 1101 records it, and
    only then may that institution open a visit for them (tenancy)."""

    __tablename__ = "credential_presentations"
    __table_args__ = (Index("ix_presentations_inst_psn", "fixmedins_code", "psn_no", "presented_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fixmedins_code: Mapped[str] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"))
    mdtrt_cert_type: Mapped[str] = mapped_column(String(3))
    presented_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    token_hash: Mapped[str | None] = mapped_column(String(64))  # the ecToken shown (01), checked again at 2201/2401
    card_read: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))  # 03 with card_sn


class EcTokenRow(Base):
    """An e-certificate token (ecToken) issued after a scan or face check; only its hash is stored. It is bound to
    the first visit it opens or settles (``mdtrt_id``) and spent when that visit is settled or cancelled."""

    __tablename__ = "ec_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no"), index=True)
    fixmedins_code: Mapped[str | None] = mapped_column(ForeignKey("institutions.fixmedins_code"))
    business_type: Mapped[str] = mapped_column(String(5), default="")
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mdtrt_id: Mapped[str | None] = mapped_column(String(30), index=True)
    spent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # a token from a face match only close enough for the region's normal threshold: the largest bill (medfee_sumamt,
    # fen) it may settle — the region's strict-threshold amount. None: no such limit (a code scan, a strict match)
    max_bill_fen: Mapped[int | None] = mapped_column(BigInteger)
