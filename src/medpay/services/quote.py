"""Stand-alone quotes for policy analysts: a bill, a person and a policy in, setlinfo/setldetail out.

Nothing is read from or written to the database; the document carries everything (the person's
year-to-date accumulators and account balances too), so a rule change can be checked on paper bills.

Document shape (amounts in yuan, as the interface writes them)::

    {"person": {"psn_no", "insutype", "psn_type", "insuplc_admdvs", "cvlserv_flag", "identities": [...],
                "brdy", "retr_date", "pay_grade", "insu_date", "salary"},
     "visit": {"med_type", "level", "setl_date", "admission_seq", "final", "dise_codg",
               "inst_kind", "admdvs", "filed", "referred"},
     "lines": [{"feedetl_sn", "med_list_codg", "chrgitm_lv", "med_chrgitm_type", "pric_uplmt_amt",
                "selfpay_prop", "cnt", "pric", "det_item_fee_sumamt"}],
     "accumulators": {"emp_pool.fund": "1200.00", ...}, "visit_accumulators": {...},
     "accounts": [{"psn_no", "relation": "self", "balance": "300.00"}], "acct_used_flag": "1"}

The facts some regions' rules need are optional, and a rule that needs one the document lacks refuses the bill
naming it: the person's ``brdy`` (birth date), ``retr_date`` (retirement date), ``insu_date`` (start of continuous
enrolment) — dates ``YYYY-MM-DD`` —, ``pay_grade`` (resident payment grade "1", "2" …) and ``salary`` (yearly salary
base, yuan); the visit's ``inst_kind`` (the institution's kind: general, tcm, specialist, grassroots; default
general), ``admdvs`` (the treating region, default the person's ``insuplc_admdvs``: another one makes the visit
异地), ``filed`` (备案) and ``referred`` (转诊), "0" or "1" (default "0"). Each is refused naming it when malformed
(``person.brdy: must be a date YYYY-MM-DD``), as is a key the shape does not have.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from collections.abc import Mapping
from typing import Any

from medpay.domain.adjudication import Adjudication, AdjudicationError, adjudicate
from medpay.domain.model import AccountSource, Accumulators, CatalogItem, ChrgitmLv, FeeLine, Institution, Person, VisitContext
from medpay.domain.policy import Policy
from medpay.money import MoneyError, format_yuan, parse_ratio, parse_yuan, to_decimal
from medpay.services.directory import inst_kind, pay_grade, retirement_date
from medpay.services.errors import Invalid

PERSON_KEYS = frozenset({"psn_no", "psn_name", "insutype", "psn_type", "insuplc_admdvs", "cvlserv_flag", "identities",
                         "brdy", "retr_date", "pay_grade", "insu_date", "salary"})
VISIT_KEYS = frozenset({"mdtrt_id", "med_type", "level", "setl_date", "admission_seq", "final", "dise_codg",
                        "inst_kind", "admdvs", "filed", "referred"})


def _get(doc: Mapping[str, Any], key: str, path: str, default: Any = ...) -> Any:
    if key in doc and doc[key] not in (None, ""):
        return doc[key]
    if default is ...:
        raise Invalid(f"{path}.{key}" if path else key, "missing")
    return default


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise Invalid(key, "must be an object")
    return value


def _money(value: Any, field: str) -> int:
    try:
        return parse_yuan(value, field)
    except MoneyError as e:
        raise Invalid(e.field, e.problem) from None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def _strict_flag(doc: Mapping[str, Any], key: str, path: str) -> bool:
    """"0"/"1" (or 0/1, false/true); anything else is refused naming the field."""
    value = doc.get(key, "0")
    if value in ("0", "1") or isinstance(value, (bool, int)) and value in (0, 1):
        return value in ("1", 1, True)
    raise Invalid(f"{path}.{key}", f"must be \"0\" or \"1\"; got {value!r}")


def _date(doc: Mapping[str, Any], key: str, path: str) -> date | None:
    """An optional date: ``YYYY-MM-DD`` (or a date, as a TOML file writes one)."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    if type(value) is date:
        return value
    if isinstance(value, str) and len(value) == 10 and value[4] == value[7] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise Invalid(f"{path}.{key}", f"must be a date YYYY-MM-DD; got {value!r}")


def _admdvs(value: Any, field: str) -> str:
    if not (isinstance(value, str) and len(value) == 6 and value.isascii() and value.isdigit()):
        raise Invalid(field, f"must be a region code of 6 digits; got {value!r}")
    return value


def _known_keys(doc: Mapping[str, Any], keys: frozenset[str], path: str) -> None:
    for key in doc:
        if key not in keys:
            raise Invalid(f"{path}.{key}", "is not a field of the quote document")


def _person(p: Mapping[str, Any]) -> Person:
    _known_keys(p, PERSON_KEYS, "person")
    brdy = _date(p, "brdy", "person")
    salary = p.get("salary")
    try:
        return Person(
            psn_no=str(_get(p, "psn_no", "person", "QUOTE")), psn_name=str(p.get("psn_name", "")),
            insutype=str(_get(p, "insutype", "person")), psn_type=str(_get(p, "psn_type", "person")),
            insuplc_admdvs=str(_get(p, "insuplc_admdvs", "person", "")),
            cvlserv_flag=_flag(p.get("cvlserv_flag", "0")),
            identities=frozenset(str(x) for x in p.get("identities", [])),
            brdy=brdy, retr_date=retirement_date(_date(p, "retr_date", "person"), brdy, "person.retr_date"),
            pay_grade=pay_grade(p.get("pay_grade", ""), "person.pay_grade"), insu_date=_date(p, "insu_date", "person"),
            salary=None if salary in (None, "") else parse_yuan(salary, "person.salary"),
        )
    except MoneyError as e:
        raise Invalid(e.field, e.problem) from None


def _visit(v: Mapping[str, Any], person: Person) -> VisitContext:
    _known_keys(v, VISIT_KEYS, "visit")
    try:
        setl_date = date.fromisoformat(str(_get(v, "setl_date", "visit", date.today().isoformat())))
    except ValueError:
        raise Invalid("visit.setl_date", "must be a date YYYY-MM-DD") from None
    level = str(_get(v, "level", "visit", "3"))
    seq = v.get("admission_seq", 1)
    if not isinstance(seq, int) or seq < 1:
        raise Invalid("visit.admission_seq", "must be a whole number ≥ 1")
    treating = _admdvs(v["admdvs"], "visit.admdvs") if "admdvs" in v else person.insuplc_admdvs
    kind = inst_kind(v.get("inst_kind", "general"), "visit.inst_kind")
    return VisitContext(mdtrt_id=str(v.get("mdtrt_id", "QUOTE")), med_type=str(_get(v, "med_type", "visit")),
                        setl_date=setl_date, institution=Institution("QUOTE", "", treating, level, inst_kind=kind),
                        admission_seq=seq, final=_flag(v.get("final", "1")), dise_codg=str(v.get("dise_codg", "")),
                        filed=_strict_flag(v, "filed", "visit"), referred=_strict_flag(v, "referred", "visit"),
                        insured_admdvs=person.insuplc_admdvs)


def parse_quote(doc: Mapping[str, Any]) -> tuple[Person, VisitContext, list[FeeLine], Accumulators, Accumulators,
                                                  tuple[AccountSource, ...], bool]:
    if not isinstance(doc, Mapping):
        raise Invalid("body", "must be a JSON object")
    person = _person(_table(doc, "person"))
    visit = _visit(_table(doc, "visit"), person)
    raw_lines = doc.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise Invalid("lines", "must be a non-empty list of fee lines")
    lines = []
    for i, ln in enumerate(raw_lines):
        path = f"lines[{i}]"
        if not isinstance(ln, Mapping):
            raise Invalid(path, "must be an object")
        try:
            lv = ChrgitmLv(str(_get(ln, "chrgitm_lv", path)))
        except ValueError:
            raise Invalid(f"{path}.chrgitm_lv", "must be 01 (甲), 02 (乙) or 03 (丙)") from None
        limit = ln.get("pric_uplmt_amt")
        try:
            item = CatalogItem(
                med_list_codg=str(_get(ln, "med_list_codg", path, f"ITEM{i}")), name=str(ln.get("name", "")),
                chrgitm_lv=lv, med_chrgitm_type=str(ln.get("med_chrgitm_type", "")),
                pric_uplmt_amt=_money(limit, f"{path}.pric_uplmt_amt") if limit not in (None, "") else None,
                selfpay_prop=parse_ratio(ln["selfpay_prop"], f"{path}.selfpay_prop") if ln.get("selfpay_prop") not in (None, "") else None,
            )
            amount = _money(_get(ln, "det_item_fee_sumamt", path), f"{path}.det_item_fee_sumamt")
            cnt = to_decimal(ln.get("cnt", 1), f"{path}.cnt")
            pric = to_decimal(ln.get("pric", Decimal(amount) / 100), f"{path}.pric")
        except MoneyError as e:
            raise Invalid(e.field, e.problem) from None
        lines.append(FeeLine(str(ln.get("feedetl_sn", i + 1)), item, cnt, pric, amount))

    def accumulators(key: str) -> Accumulators:
        return Accumulators({str(k): _money(val, f"{key}.{k}") if k != "admissions" else int(val)
                             for k, val in _table(doc, key).items()})

    accounts = []
    for i, a in enumerate(doc.get("accounts", [])):
        accounts.append(AccountSource(str(_get(a, "psn_no", f"accounts[{i}]", person.psn_no)),
                                      str(_get(a, "relation", f"accounts[{i}]", "self")),
                                      _money(_get(a, "balance", f"accounts[{i}]"), f"accounts[{i}].balance")))
    return (person, visit, lines, accumulators("accumulators"), accumulators("visit_accumulators"), tuple(accounts),
            _flag(doc.get("acct_used_flag", "1")))


def adjudicate_document(policy: Policy, doc: Mapping[str, Any]) -> tuple[Person, VisitContext, Adjudication]:
    """The document settled by the engine against ``policy`` (nothing written); a bad field raises Invalid.
    The one way quotes, worked examples and explanations turn a document into a split."""
    person, visit, lines, year, visit_acc, accounts, use_account = parse_quote(doc)
    try:
        return person, visit, adjudicate(policy, person, visit, lines, year, visit_acc, accounts, use_account)
    except AdjudicationError as e:
        raise Invalid(e.field, e.problem) from None


def quote(policy: Policy, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Adjudicate the document against ``policy``; amounts in fen (render with interface_format.to_yuan)."""
    person, visit, adj = adjudicate_document(policy, doc)
    setlinfo = {"psn_no": person.psn_no, "insutype": person.insutype, "psn_type": person.psn_type,
                "med_type": visit.med_type, **adj.amounts, "pool_prop_selfpay": str(adj.pool_prop_selfpay),
                "balc": adj.balc, "policy_ver": adj.policy_id}
    setldetail = [{"fund_pay_type": d.fund_pay_type, "fund_pay_type_name": d.fund_pay_type_name,
                   "inscp_scp_amt": d.inscp_scp_amt, "crt_payb_lmt_amt": d.crt_payb_lmt_amt,
                   "fund_payamt": d.fund_payamt, "setl_proc_info": d.setl_proc_info} for d in adj.setldetail]
    # deltas in the same yuan form the document's accumulators take, so a quote's output can feed the next
    def yuan_deltas(deltas: dict[str, int]) -> dict[str, Any]:
        return {k: (v if k == "admissions" else format_yuan(v)) for k, v in deltas.items()}

    return {"setlinfo": setlinfo, "setldetail": setldetail,
            "year_deltas": yuan_deltas(adj.year_deltas), "visit_deltas": yuan_deltas(adj.visit_deltas)}
