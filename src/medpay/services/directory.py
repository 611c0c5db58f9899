"""Reference data: regions, institutions, insured persons, family links, catalog items, account top-ups.

Writes are idempotent by natural key (re-running a seed changes nothing). Personal data is encrypted
before it reaches a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.base import utcnow
from medpay.adapters.sms.port import valid_phone
from medpay.adapters.db.tables import CatalogItemRow, FamilyLinkRow, InstitutionRow, PersonRow, RegionRow
from medpay.domain.credentials import Assurance
from medpay.domain.interface_settings import FeeQueryShape, Setting, SignIn
from medpay.domain.ledger import Transfer
from medpay.domain.model import (
    FIXMEDINS_TYPES,
    INSTITUTION_KINDS,
    LIST_TYPES,
    MEDICAL_INSTITUTION,
    ChrgitmLv,
    list_type_of,
)
from medpay.domain.posting import account_source, personal_account
from medpay.services import audit, records
from medpay.services.errors import Invalid, NotFound
from medpay.services.unit_of_work import unit_of_work


@dataclass(frozen=True)
class PersonInput:
    psn_no: str
    psn_name: str
    certno: str
    gend: str
    brdy: date
    insutype: str
    psn_type: str
    insuplc_admdvs: str
    card_no: str | None = None
    emp_name: str = ""
    cvlserv_flag: bool = False
    identities: tuple[str, ...] = ()
    psn_insu_date: date = date(2015, 1, 1)
    card_sn: str | None = None  # the social-security card's identification code (卡识别码), read from its chip
    phone: str | None = None  # mobile number on record: e-certificate activation codes and security notices
    # facts some regions' rules need (brdy is the birth date, psn_insu_date the start of continuous enrolment)
    retr_date: date | None = None  # retirement date (退休时间)
    pay_grade: str = ""  # resident payment grade (缴费档次): "1" 一档, "2" 二档 …
    salary: int | None = None  # yearly salary base, fen (stored encrypted)


def inst_kind(value: str, field: str = "inst_kind") -> str:
    """One of ``INSTITUTION_KINDS``: general, tcm (中医院), specialist, grassroots (基层)."""
    if value not in INSTITUTION_KINDS:
        raise Invalid(field, f"must be one of {', '.join(INSTITUTION_KINDS)}; got {value!r}")
    return value


def pay_grade(value: object, field: str = "pay_grade") -> str:
    """A resident payment grade (缴费档次): its number, one or two digits ("1" 一档, "2" 二档 …), or "" (none)."""
    if not isinstance(value, str) or (value and not (value.isascii() and value.isdigit() and len(value) <= 2)):
        raise Invalid(field, f"must be the grade's number (\"1\", \"2\" …) or empty; got {value!r}")
    return value


def retirement_date(retr_date: date | None, brdy: date | None, field: str = "retr_date") -> date | None:
    """A retirement date, which can't be before the person was born."""
    if retr_date is not None and brdy is not None and retr_date <= brdy:
        raise Invalid(field, f"must be after the birth date {brdy.isoformat()}")
    return retr_date


def check_person_facts(p: PersonInput) -> None:
    """The facts regions' rules read, refused naming the field when they can't be right."""
    pay_grade(p.pay_grade)
    retirement_date(p.retr_date, p.brdy)
    if p.salary is not None and (isinstance(p.salary, bool) or not isinstance(p.salary, int) or p.salary < 0):
        raise Invalid("salary", "must be a whole number of fen ≥ 0")


def notify_url(value: str, field: str = "notify_url") -> str:
    """An absolute http(s) URL of at most 200 characters (the notifications table's column)."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise Invalid(field, f"must be an absolute http:// or https:// URL, got {value!r}")
    if len(text) > 200:
        raise Invalid(field, "at most 200 characters")
    return text


class Directory:
    def __init__(self, factory: sessionmaker[Session], cipher: FieldCipher, operator: str = "directory"):
        """``operator``: who enters the data, for the audit log."""
        self.factory = factory
        self.cipher = cipher
        self.operator = operator

    def add_region(self, admdvs: str, name: str) -> None:
        with unit_of_work(self.factory) as uow:
            if uow.session.get(RegionRow, admdvs) is None:
                uow.session.add(RegionRow(admdvs=admdvs, name=name))

    def add_institution(self, code: str, name: str, admdvs: str, level: str, paasid: str | None = None,
                        token: str | None = None, fixmedins_type: str = MEDICAL_INSTITUTION,
                        kind: str = "general") -> None:
        """``fixmedins_type``: 1 a medical institution, 2 a retail pharmacy (``domain.model.FIXMEDINS_TYPES``);
        ``kind``: what policies may distinguish beyond the level (``domain.model.INSTITUTION_KINDS``)."""
        if level not in ("0", "1", "2", "3"):
            raise Invalid("level", f"must be 0, 1, 2 or 3; got {level!r}")
        if fixmedins_type not in FIXMEDINS_TYPES:
            raise Invalid("fixmedins_type", f"must be {' or '.join(FIXMEDINS_TYPES)}; got {fixmedins_type!r}")
        inst_kind(kind)
        with unit_of_work(self.factory) as uow:
            if uow.session.get(RegionRow, admdvs) is None:
                raise NotFound("admdvs", f"unknown region {admdvs!r}")
            row = uow.session.get(InstitutionRow, code)
            if row is None:
                row = InstitutionRow(fixmedins_code=code)
                uow.session.add(row)
            row.fixmedins_name, row.admdvs, row.level, row.paasid = name, admdvs, level, paasid
            row.fixmedins_type, row.inst_kind = fixmedins_type, kind
            row.token_enc = self.cipher.encrypt(token, "inst_token") if token else None

    def set_notify_url(self, code: str, url: str | None) -> str | None:
        """Register the HIS's URL for ``settle.notify`` of this institution's payments; ``None`` clears it.
        Seeding leaves it alone, so a registered URL survives restarts."""
        url = notify_url(url) if url is not None else None
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(InstitutionRow, code)
            if row is None:
                raise NotFound("fixmedins_code", f"unknown institution {code!r}")
            row.notify_url = url
        return url

    def add_person(self, p: PersonInput) -> None:
        """Enter a person, or change what is stored of them; entering the same data again changes nothing
        (the demo is seeded on every start) and leaves no audit event."""
        if p.phone is not None and not valid_phone(p.phone):
            raise Invalid("phone", "must be an 11-digit mainland mobile number")
        check_person_facts(p)
        c = self.cipher
        with unit_of_work(self.factory) as uow:
            if uow.session.get(RegionRow, p.insuplc_admdvs) is None:
                raise NotFound("insuplc_admdvs", f"unknown region {p.insuplc_admdvs!r}")
            row = uow.session.get(PersonRow, p.psn_no)
            action = "person.add" if row is None else "person.update"
            if row is None:
                row = PersonRow(psn_no=p.psn_no)
                uow.session.add(row)
            elif self._same(row, p):
                return
            row.psn_name_enc = c.encrypt(p.psn_name, "psn_name")
            row.certno_enc, row.certno_idx = c.encrypt(p.certno, "certno"), c.blind_index(p.certno, "certno")
            if p.card_no:
                row.card_no_enc, row.card_no_idx = c.encrypt(p.card_no, "card_no"), c.blind_index(p.card_no, "card_no")
            if p.card_sn:  # only its index: it is checked, never shown
                row.card_sn_idx = c.blind_index(p.card_sn, "card_sn")
            if p.phone:
                row.phone_enc = c.encrypt(p.phone, "phone")
            row.salary_enc = None if p.salary is None else c.encrypt(str(p.salary), "salary")
            for name, value in self._plain(p).items():
                setattr(row, name, value)
            spec = personal_account(p.psn_no)
            uow.ledger.open_account(spec.id, spec.ledger, spec.code, spec.flags)
            audit.record(uow.session, actor_kind="operator", actor=self.operator, action=action,
                         psn_no=p.psn_no, fields=("psn_name", "certno", *(("card_no",) if p.card_no else ()),
                                                  *(("phone",) if p.phone else ()),
                                                  *(("salary",) if p.salary is not None else ())),
                         at=utcnow())

    @staticmethod
    def _plain(p: PersonInput) -> dict[str, object]:
        return {"gend": p.gend, "brdy": p.brdy, "insutype": p.insutype, "psn_type": p.psn_type,
                "insuplc_admdvs": p.insuplc_admdvs, "emp_name": p.emp_name, "cvlserv_flag": p.cvlserv_flag,
                "identities": ",".join(p.identities), "psn_insu_date": p.psn_insu_date, "psn_cert_type": "01",
                "naty": "01", "psn_insu_stas": "1", "retr_date": p.retr_date, "pay_grade": p.pay_grade}

    def _same(self, row: PersonRow, p: PersonInput) -> bool:
        c = self.cipher
        return (row.certno_idx == c.blind_index(p.certno, "certno")
                and (not p.card_no or row.card_no_idx == c.blind_index(p.card_no, "card_no"))
                and (not p.card_sn or row.card_sn_idx == c.blind_index(p.card_sn, "card_sn"))
                and (not p.phone or (row.phone_enc is not None and c.decrypt(row.phone_enc, "phone") == p.phone))
                and c.decrypt(row.psn_name_enc, "psn_name") == p.psn_name
                and records.salary(row, c) == p.salary
                and all(getattr(row, name) == value for name, value in self._plain(p).items()))

    def link_family(self, payer: str, beneficiary: str, relation: str, priority: int = 1) -> None:
        if payer == beneficiary:
            raise Invalid("beneficiary_psn_no", "a person is not their own family member")
        with unit_of_work(self.factory) as uow:
            for psn, field in ((payer, "payer_psn_no"), (beneficiary, "beneficiary_psn_no")):
                if uow.session.get(PersonRow, psn) is None:
                    raise NotFound(field, f"unknown person {psn!r}")
            existing = uow.session.query(FamilyLinkRow).filter_by(payer_psn_no=payer, beneficiary_psn_no=beneficiary).one_or_none()
            if existing is None:
                uow.session.add(FamilyLinkRow(payer_psn_no=payer, beneficiary_psn_no=beneficiary, relation=relation,
                                              priority=priority, active=True))
            else:
                existing.relation, existing.priority, existing.active = relation, priority, True

    def add_catalog_item(self, code: str, name: str, chrgitm_lv: str, med_chrgitm_type: str = "",
                         pric_uplmt_amt: int | None = None, selfpay_prop: str | None = None,
                         list_type: str | None = None) -> None:
        """``list_type`` (目录类别): by default the one ``med_chrgitm_type`` implies (``list_type_of``)."""
        try:
            ChrgitmLv(chrgitm_lv)
        except ValueError:
            raise Invalid("chrgitm_lv", f"must be 01, 02 or 03; got {chrgitm_lv!r}") from None
        if selfpay_prop is not None and not (0 <= Decimal(selfpay_prop) <= 1):
            raise Invalid("selfpay_prop", "must be between 0 and 1")
        list_type = list_type_of(med_chrgitm_type) if list_type is None else list_type
        if list_type not in LIST_TYPES:
            raise Invalid("list_type", f"must be one of {', '.join(LIST_TYPES)}; got {list_type!r}")
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(CatalogItemRow, code)
            if row is None:
                row = CatalogItemRow(med_list_codg=code)
                uow.session.add(row)
            row.name, row.chrgitm_lv, row.med_chrgitm_type = name, chrgitm_lv, med_chrgitm_type
            row.pric_uplmt_amt, row.selfpay_prop, row.list_type = pric_uplmt_amt, selfpay_prop, list_type

    def top_up(self, psn_no: str, amount: int, ref: str) -> None:
        """Credit a personal account (the yearly contribution transfer); idempotent by ``ref``."""
        if amount <= 0:
            raise Invalid("amount", "must be greater than zero")
        with unit_of_work(self.factory) as uow:
            row = uow.session.get(PersonRow, psn_no)
            if row is None:
                raise NotFound("psn_no", f"unknown person {psn_no!r}")
            src, acct = account_source(row.insuplc_admdvs), personal_account(psn_no)
            for spec in (src, acct):
                uow.ledger.open_account(spec.id, spec.ledger, spec.code, spec.flags)
            uow.ledger.create_transfers([Transfer(id=f"topup:{ref}", debit_account_id=src.id, credit_account_id=acct.id,
                                                  amount=amount, code="topup", ref=ref)])


# An institution's interface settings: column → (its values, the audit log's action)
INTERFACE_SETTINGS: dict[str, tuple[type[Setting], str]] = {
    "id_assurance": (Assurance, "institution.assurance"),  # what a 02/03 number without a card read may do
    "sign_in": (SignIn, "institution.sign_in"),  # must requests carry an open 9001 sign-in
    "fee_query_shape": (FeeQueryShape, "institution.fee_query_shape"),  # 5204's output
}


def set_institution_setting(factory: sessionmaker[Session], code: str, column: str, value: str,
                            operator: str) -> str:
    """Set one of ``INTERFACE_SETTINGS`` (see ``domain.interface_settings``); a change is audited as
    ``operator``'s, a repeat is not. Seeding leaves them alone; nothing encrypted is touched, so no keyring is
    needed. The platform's workers see ``sign_in`` within the gateway's 10 s cache, the others at once."""
    values, action = INTERFACE_SETTINGS[column]
    try:
        parsed = values.parse(value, column)
    except ValueError as e:
        raise Invalid(column, str(e).split(": ", 1)[1]) from None
    return _set_setting(factory, code, column, parsed.value, action, operator)


def set_institution_kind(factory: sessionmaker[Session], code: str, kind: str, operator: str) -> str:
    """The institution's kind (``domain.model.INSTITUTION_KINDS``: general, tcm 中医院, specialist, grassroots 基层),
    which policies may distinguish beyond the level; a change is audited as ``operator``'s. Settlements see it within
    the settlement service's institution cache (INSTITUTION_TTL_S)."""
    return _set_setting(factory, code, "inst_kind", inst_kind(kind.strip() if isinstance(kind, str) else kind),
                        "institution.kind", operator)


def _set_setting(factory: sessionmaker[Session], code: str, column: str, value: str, action: str,
                 operator: str) -> str:
    """Set one interface setting of an institution; a change (not a repeat) is written to the audit log."""
    with unit_of_work(factory) as uow:
        row = uow.session.get(InstitutionRow, code)
        if row is None:
            raise NotFound("fixmedins_code", f"unknown institution {code!r}")
        before = getattr(row, column)
        if before != value:
            audit.record(uow.session, actor_kind="operator", actor=operator, action=action,
                         psn_no="", fields=(), at=utcnow(), ref=f"{code}:{before}->{value}")
            setattr(row, column, value)
    return value
