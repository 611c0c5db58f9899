"""Demo data: a fictional region with three hospitals (a general one, a township health centre, a 中医院), a retail
pharmacy, six insured persons and a small catalog.

Every identifier here is invented (the region code 999901 belongs to no real place). Seeding is
idempotent, so ``medpay demo seed`` can run on every start.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.crypto import FieldCipher, mask_certno
from medpay.adapters.db.booking_tables import BookingSlotRow
from medpay.domain.model import MEDICAL_INSTITUTION, RETAIL_PHARMACY
from medpay.local_time import LOCAL_TZ, local_date
from medpay.money import format_yuan
from medpay.services.designations import Designations
from medpay.services.directory import Directory, PersonInput
from medpay.services.errors import Conflict
from medpay.services.mobile.booking import SlotInput, publish_slots, slot_id_for
from medpay.services.staff import StaffKeys

log = logging.getLogger("medpay.demo")

REGION = ("999901", "演示统筹区")

INSTITUTIONS = [
    # code, name, level, paasid, token
    ("H99990100001", "演示市第一人民医院", "3", "demo_paas_h1", "demo-token-h1-5f2b8c1e9a"),
    ("H99990100002", "演示县中心卫生院", "1", "demo_paas_h2", "demo-token-h2-7d4e0a3b6c"),
    ("H99990100003", "演示市中医医院", "2", "demo_paas_h3", "demo-token-h3-2a8f6d1b4e"),
]
# what policies may distinguish beyond the level (domain.model.INSTITUTION_KINDS); any other is "general"
INSTITUTION_KIND = {"H99990100002": "grassroots", "H99990100003": "tcm"}

# retail pharmacies (定点零售药店, fixmedins_type 2; national codes of pharmacies begin with P): settle purchases
# with 2101/2102/2103 from their POS
PHARMACIES = [
    # code, name, level, paasid, token
    ("P99990100001", "演示大药房", "0", "demo_paas_p1", "demo-token-p1-3c9e1f7a2d"),
]

PERSONS = [
    PersonInput("99990100000001", "王建国", "999901198001010011", "1", date(1980, 1, 1), "310", "1101", "999901",
                card_no="D99990001", card_sn="999901D15600000500BF7C7A00000001", phone="13800000001",
                emp_name="演示科技有限公司", psn_insu_date=date(2003, 7, 1)),
    # retired at 50 (a woman worker): retirement cohorts are by retirement date
    PersonInput("99990100000002", "李秀英", "999901195503150022", "2", date(1955, 3, 15), "310", "1201", "999901",
                card_no="D99990002", card_sn="999901D15600000500BF7C7A00000002", phone="13800000002",
                emp_name="演示纺织厂(退休)", psn_insu_date=date(1999, 1, 1), retr_date=date(2005, 4, 1)),
    # a civil servant: the civil-servant subsidy's deductible may be a share of his yearly salary
    PersonInput("99990100000003", "张伟", "999901198507200033", "1", date(1985, 7, 20), "310", "1102", "999901",
                card_no="D99990003", card_sn="999901D15600000500BF7C7A00000003", phone="13800000003",
                emp_name="演示市卫生健康委员会", cvlserv_flag=True, psn_insu_date=date(2008, 8, 1),
                salary=12_600_000),
    # a child (and a pupil: children and students are told by the birth date), enrolled as a newborn; the phone on
    # record is the guardian's (his father's)
    PersonInput("99990100000004", "王小明", "999901201506010044", "1", date(2015, 6, 1), "390", "1401", "999901",
                card_no="D99990004", card_sn="999901D15600000500BF7C7A00000004", phone="13800000001",
                psn_insu_date=date(2015, 7, 1), pay_grade="1"),
    # residents: payment grade 二档 and 一档
    PersonInput("99990100000005", "陈桂兰", "999901196209090055", "2", date(1962, 9, 9), "390", "1501", "999901",
                card_no="D99990005", card_sn="999901D15600000500BF7C7A00000005", phone="13800000005",
                identities=("2202",), psn_insu_date=date(2017, 1, 1), pay_grade="2"),
    # no phone on record: he activates his e-certificate at a counter
    PersonInput("99990100000006", "刘福", "999901194811110066", "1", date(1948, 11, 11), "390", "1501", "999901",
                card_no="D99990006", card_sn="999901D15600000500BF7C7A00000006", identities=("2201",),
                psn_insu_date=date(2009, 1, 1), pay_grade="1"),
]

ACCOUNT_BALANCES = {"99990100000001": 200000, "99990100000002": 500000, "99990100000003": 300000}

# payer, beneficiary, relation: the father's account may pay for his son (个人账户家庭共济)
FAMILY = [("99990100000001", "99990100000004", "parent")]

# 人员定点 (5302): psn_no, insutype, biz_appy_type (a regional dictionary; "03" is what a public HIS client asks
# for), choice, institution — the retiree chose both hospitals, the resident her township health centre
DESIGNATIONS = [("99990100000002", "310", "03", "1", "H99990100001"),
                ("99990100000002", "310", "03", "2", "H99990100002"),
                ("99990100000005", "390", "03", "1", "H99990100002")]
DESIGNATED_FROM = date(2026, 1, 1)

CATALOG = [
    # code, name, chrgitm_lv, med_chrgitm_type, price limit (fen/unit), 乙类 ratio
    ("XJ01CAA001", "阿莫西林胶囊", "01", "09", None, None),
    ("XM01AEB002", "布洛芬缓释胶囊", "02", "09", None, None),
    ("ZA04BAA003", "复方丹参滴丸", "02", "11", None, "0.10"),
    ("001201000010000", "普通门诊诊查费", "01", "04", 1000, None),
    ("002101000010000", "血常规", "01", "03", None, None),
    ("002100000020000", "胸部CT平扫", "01", "03", 30000, None),
    ("001102000010000", "普通病房床位费", "01", "01", 6000, None),
    ("003100000040000", "阑尾切除术", "02", "05", None, "0.20"),
    ("CZF0000000001", "医疗美容项目", "03", "14", None, None),
    ("CZF0000000002", "自费进口药品", "03", "09", None, None),
    # what the demo pharmacy sells besides the drugs above
    ("ZA01AAA004", "板蓝根颗粒", "01", "11", None, None),
    ("C14010100005", "医用电子体温计", "02", "08", 5000, None),
]


# booking slots (预约挂号) the demo hospitals publish for the next days, seeded relative to the day of seeding:
# institution, department code and name, doctor code, name and title, fee (yuan), seats in the morning and afternoon
SCHEDULE = [
    ("H99990100001", "NK", "内科", "D001", "赵文华", "主任医师", "10.00", 20, 15),
    ("H99990100001", "EK", "儿科", "D002", "钱晓红", "副主任医师", "10.00", 15, 10),
    ("H99990100003", "ZJ", "针灸科", "D101", "孙立", "主治医师", "10.00", 12, 8),
]
SCHEDULE_DAYS = 7
REGISTRATION_FEE_ITEM = "001201000010000"  # 普通门诊诊查费


def schedule(now: datetime) -> dict[str, list[Any]]:
    """The demo hospitals' slots not yet ended at ``now``, for ``SCHEDULE_DAYS`` days from ``now``'s day, per
    institution: mornings 08:00–12:00, afternoons 14:00–17:30 (China time), cancellable until two hours before."""
    today = local_date(now)
    out: dict[str, list[Any]] = {}
    for day in (today + timedelta(days=i) for i in range(SCHEDULE_DAYS)):
        for code, dept, dept_name, doc, doc_name, title, fee, am, pm in SCHEDULE:
            for half, (start, end), seats in (("AM", ((8, 0), (12, 0)), am), ("PM", ((14, 0), (17, 30)), pm)):
                at = [datetime(day.year, day.month, day.day, h, m, tzinfo=LOCAL_TZ) for h, m in (start, end)]
                if at[1] <= now:
                    continue
                out.setdefault(code, []).append(SlotInput(
                    f"{day:%Y%m%d}-{dept}-{half}", dept, dept_name, doc, doc_name, title, at[0], at[1], seats,
                    REGISTRATION_FEE_ITEM, fee))
    return out


# the demo's staff key for the admin door (fictional, like everything here; never use it outside the demo)
STAFF = ("演示经办员", "mpk_demostaff001_demo-staff-secret-do-not-use-in-production")


def seed(factory: sessionmaker[Session], cipher: FieldCipher) -> dict[str, Any]:
    d = Directory(factory, cipher, operator="demo seed")
    d.add_region(*REGION)
    for code, name, level, paasid, token in INSTITUTIONS:
        d.add_institution(code, name, REGION[0], level, paasid, token, kind=INSTITUTION_KIND.get(code, "general"))
    for code, name, level, paasid, token in PHARMACIES:
        d.add_institution(code, name, REGION[0], level, paasid, token, fixmedins_type=RETAIL_PHARMACY)
    for p in PERSONS:
        d.add_person(p)
    for psn_no, amount in ACCOUNT_BALANCES.items():
        d.top_up(psn_no, amount, ref=f"demo-2026-{psn_no}")
    for payer, beneficiary, relation in FAMILY:
        d.link_family(payer, beneficiary, relation)
    for code, name, lv, typ, limit, prop in CATALOG:
        d.add_catalog_item(code, name, lv, typ, limit, prop)
    for psn_no, insutype, biz_appy_type, choice, code in DESIGNATIONS:
        Designations(factory).designate(psn_no, insutype, biz_appy_type, choice, code, DESIGNATED_FROM)
    now = datetime.now(timezone.utc)
    with factory() as s:  # only slots not published yet: what the demo HIS changed or withdrew stays so
        known = set(s.execute(select(BookingSlotRow.slot_id)).scalars())
    for code, slots in schedule(now).items():
        fresh = [x for x in slots if slot_id_for(code, x.his_slot_id) not in known]
        if fresh:
            publish_slots(factory, code, fresh, now)
    try:
        StaffKeys(factory).create(STAFF[0], key=STAFF[1])
    except Conflict:  # an operator revoked the demo key: it stays revoked
        log.warning("the demo staff key was revoked or replaced; not restoring it")
    return summary()


def summary(*, reveal: bool = True) -> dict[str, Any]:
    """What a HIS integrator needs to point a client at the demo. ``reveal`` shows full ID numbers
    (they are fictional); logs use the masked form."""
    return {
        "region": {"admdvs": REGION[0], "name": REGION[1]},
        "institutions": [
            {"fixmedins_code": c, "fixmedins_name": n, "admdvs": REGION[0], "level": lv, "paasid": pid, "token": tok,
             "fixmedins_type": kind, "inst_kind": INSTITUTION_KIND.get(c, "general")}
            for kind, group in ((MEDICAL_INSTITUTION, INSTITUTIONS), (RETAIL_PHARMACY, PHARMACIES))
            for c, n, lv, pid, tok in group
        ],
        "persons": [
            {"psn_no": p.psn_no, "psn_name": p.psn_name, "certno": p.certno if reveal else mask_certno(p.certno),
             "card_no": p.card_no, "card_sn": p.card_sn, "phone": p.phone, "insutype": p.insutype, "psn_type": p.psn_type, "insuplc_admdvs": p.insuplc_admdvs,
             "cvlserv_flag": "1" if p.cvlserv_flag else "0", "identities": list(p.identities),
             "brdy": p.brdy.isoformat(), "psn_insu_date": p.psn_insu_date.isoformat(),
             "retr_date": p.retr_date.isoformat() if p.retr_date else None, "pay_grade": p.pay_grade,
             "salary": format_yuan(p.salary) if p.salary is not None else None,
             "acct_balc": format_yuan(ACCOUNT_BALANCES.get(p.psn_no, 0)),
             "family_payers": [{"psn_no": a, "relation": r} for a, b, r in FAMILY if b == p.psn_no]}
            for p in PERSONS
        ],
        "staff": [{"name": STAFF[0], "key": STAFF[1]}],
        "catalog": [
            {"med_list_codg": c, "name": n, "chrgitm_lv": lv, "med_chrgitm_type": t,
             "pric_uplmt_amt": format_yuan(lim) if lim is not None else None, "selfpay_prop": prop}
            for c, n, lv, t, lim, prop in CATALOG
        ],
    }
