"""The settlement's nouns, as immutable records. Amounts are integer fen; ratios are Decimal.

Field names follow the NHSA institution interface (DESIGN §2) so that a record and the message
that carries it read the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum

from medpay.nhsa_dictionaries import DICTIONARIES


class ChrgitmLv(str, Enum):
    """收费项目等级."""

    JIA = "01"  # 甲类: fully in scope
    YI = "02"  # 乙类: a first self-pay share, the rest in scope
    BING = "03"  # 丙类: fully self-paid


@dataclass(frozen=True)
class Region:
    admdvs: str
    name: str


# 定点医药机构类型 (fixmedins_type): a hospital or clinic settles visits (22xx/23xx/24xx), a retail pharmacy
# settles purchases in one call (2101/2102/2103). "1 定点医疗机构" is the value public HIS data sets carry with that
# label; 2 is its pair in the same dictionary.
MEDICAL_INSTITUTION, RETAIL_PHARMACY = "1", "2"
FIXMEDINS_TYPES = {MEDICAL_INSTITUTION: "定点医疗机构", RETAIL_PHARMACY: "定点零售药店"}


@dataclass(frozen=True)
class Institution:
    fixmedins_code: str
    fixmedins_name: str
    admdvs: str
    level: str  # "1" | "2" | "3" (一级/二级/三级); "0" for unrated clinics and pharmacies
    id_assurance: str = "counter"  # what a 02/03 number without a card read may do here (domain.credentials)
    fee_query_shape: str = "rows"  # 5204's output (domain.interface_settings.FeeQueryShape)
    fixmedins_type: str = MEDICAL_INSTITUTION  # FIXMEDINS_TYPES
    # what a policy may distinguish beyond the level: "general" 综合医院, "tcm" 中医院 (中医/中西医结合), "specialist"
    # 专科医院, "grassroots" 基层 (乡镇卫生院, 社区卫生服务中心, 村卫生室) — INSTITUTION_KINDS
    inst_kind: str = "general"

    @property
    def is_pharmacy(self) -> bool:
        return self.fixmedins_type == RETAIL_PHARMACY


@dataclass(frozen=True)
class CatalogItem:
    med_list_codg: str
    name: str
    chrgitm_lv: ChrgitmLv
    med_chrgitm_type: str = ""  # 医疗收费项目类别, e.g. "09" 西药费; policies may set 乙类 ratios per category
    pric_uplmt_amt: int | None = None  # price upper limit per unit, fen; None = no limit
    selfpay_prop: Decimal | None = None  # 乙类 first self-pay ratio of this item; None = policy default
    list_type: str = ""  # 目录类别 (LIST_TYPES): 101 西药中成药, 102 中药饮片, 201 医疗服务项目, 301 医用耗材


INSTITUTION_KINDS = {"general": "综合医院", "tcm": "中医院", "specialist": "专科医院", "grassroots": "基层医疗机构"}


# 目录类别 by 医疗收费项目类别, for a catalog item whose list type is not given: 09 西药 / 11 中成药 → 101, 10 中药饮片 →
# 102, 08 卫材 → 301, any other charge type (bed, examination, test, treatment, operation, …) → 201 (both dictionaries:
# medpay/nhsa_dictionaries.toml, LIST_TYPE and MED_CHRGITM_TYPE).
LIST_TYPES = DICTIONARIES["LIST_TYPE"].labels()
_LIST_TYPE_BY_CHRGITM = {"09": "101", "11": "101", "10": "102", "08": "301"}


def list_type_of(med_chrgitm_type: str) -> str:
    return _LIST_TYPE_BY_CHRGITM.get(med_chrgitm_type, "201")


@dataclass(frozen=True)
class FeeLine:
    """One uploaded fee line (2204/2301). ``det_item_fee_sumamt`` is authoritative; cnt × pric checks it."""

    feedetl_sn: str
    item: CatalogItem
    cnt: Decimal
    pric: Decimal  # yuan per unit, up to 6 decimals as the interface allows
    det_item_fee_sumamt: int
    fee_date: date | None = None  # when the fee arose (fee_ocur_time): a stay across policy years may split by it


@dataclass(frozen=True)
class Person:
    psn_no: str
    psn_name: str
    insutype: str  # 310 employee basic, 390 resident basic, …
    psn_type: str  # 1101 in service, 1201 retired, 1501 resident adult, …
    insuplc_admdvs: str
    cvlserv_flag: bool = False  # 公务员
    identities: frozenset[str] = frozenset()  # psn_idet_type codes eligible for medical assistance
    # facts some regions' rules need; None/"" = not on record, and a rule that needs it refuses the bill naming the field
    brdy: date | None = None  # birth date (from the ID number)
    retr_date: date | None = None  # retirement date (退休时间)
    pay_grade: str = ""  # resident payment grade: "1" 一档, "2" 二档 …
    insu_date: date | None = None  # start of continuous enrolment (参保时间), for caps by months enrolled
    salary: int | None = None  # yearly salary base, fen (civil-servant subsidy deductibles)

    def age_on(self, on: date) -> int | None:
        """Whole years of age on ``on``; None without a birth date."""
        if self.brdy is None:
            return None
        return on.year - self.brdy.year - ((on.month, on.day) < (self.brdy.month, self.brdy.day))

    def months_enrolled(self, on: date) -> int | None:
        """Whole months of continuous enrolment before ``on``; None without an enrolment date."""
        if self.insu_date is None:
            return None
        return max(0, (on.year - self.insu_date.year) * 12 + on.month - self.insu_date.month
                   - (on.day < self.insu_date.day))


@dataclass(frozen=True)
class Accumulators:
    """A person's year-to-date totals, keyed by policy-defined names (e.g. "inpatient.fund").

    Missing keys are zero. The engine reads these and returns deltas; storage adds them up. A delta key written
    "2026/emp_pool.fund" belongs to policy year 2026 rather than the settlement's own (a stay across years).
    """

    values: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> int:
        return self.values.get(key, 0)

    @staticmethod
    def year_of(key: str, default: int) -> tuple[int, str]:
        """(policy year, plain key) of a delta key: "2026/emp_pool.fund" → (2026, "emp_pool.fund")."""
        head, sep, rest = key.partition("/")
        return (int(head), rest) if sep and head.isdigit() else (default, key)

    def plus(self, deltas: dict[str, int]) -> "Accumulators":
        merged = dict(self.values)
        for k, v in deltas.items():
            merged[k] = merged.get(k, 0) + v
        return Accumulators(merged)


@dataclass(frozen=True)
class AccountSource:
    """A personal account that may pay: the patient's own (relation "self") or a family member's."""

    psn_no: str
    relation: str  # "self", "spouse", "parent", "child", …
    balance: int


@dataclass(frozen=True)
class VisitContext:
    """What the engine needs to know about the visit beyond its fee lines."""

    mdtrt_id: str
    med_type: str
    setl_date: date
    institution: Institution
    admission_seq: int = 1  # this admission's number within the year (inpatient deductibles)
    final: bool = True  # False for an interim (mid-stay) settlement
    dise_codg: str = ""  # chronic/special disease code for 门诊慢特病
    # 异地就医: whether the stay was filed (备案) with the insured region, and whether it was referred (转诊)
    filed: bool = False
    referred: bool = False
    insured_admdvs: str = ""  # the person's insured region (insuplc_admdvs); set by whoever builds the context

    @property
    def cross_region(self) -> str:
        """"local" in the insured city's pooling region (same first four digits of admdvs: a county such as 宁乡
        430182 pools with its city 长沙 4301xx), "province" elsewhere in the province, "national" in another one."""
        treating, insured = self.institution.admdvs, self.insured_admdvs
        if not insured or treating[:4] == insured[:4]:
            return "local"
        return "province" if treating[:2] == insured[:2] else "national"
