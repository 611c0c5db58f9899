"""Stand-alone quotes for policy analysts: a bill, a person and a policy in, setlinfo/setldetail out.

Nothing is read from or written to the database; the document carries everything (the person's
year-to-date accumulators and account balances too), so a rule change can be checked on paper bills.

Document shape (amounts in yuan, as the interface writes them)::

    {"person": {"psn_no", "insutype", "psn_type", "insuplc_admdvs", "cvlserv_flag", "identities": [...]},
     "visit": {"med_type", "level", "setl_date", "admission_seq", "final", "dise_codg"},
     "lines": [{"feedetl_sn", "med_list_codg", "chrgitm_lv", "med_chrgitm_type", "pric_uplmt_amt",
                "selfpay_prop", "cnt", "pric", "det_item_fee_sumamt"}],
     "accumulators": {"emp_pool.fund": "1200.00", ...}, "visit_accumulators": {...},
     "accounts": [{"psn_no", "relation": "self", "balance": "300.00"}], "acct_used_flag": "1"}
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from collections.abc import Mapping
from typing import Any

from medpay.domain.adjudication import AdjudicationError, adjudicate
from medpay.domain.model import AccountSource, Accumulators, CatalogItem, ChrgitmLv, FeeLine, Institution, Person, VisitContext
from medpay.domain.policy import Policy
from medpay.money import MoneyError, format_yuan, parse_ratio, parse_yuan, to_decimal
from medpay.services.errors import Invalid


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


def parse_quote(doc: Mapping[str, Any]) -> tuple[Person, VisitContext, list[FeeLine], Accumulators, Accumulators,
                                                  tuple[AccountSource, ...], bool]:
    if not isinstance(doc, Mapping):
        raise Invalid("body", "must be a JSON object")
    p = _table(doc, "person")
    person = Person(
        psn_no=str(_get(p, "psn_no", "person", "QUOTE")), psn_name=str(p.get("psn_name", "")),
        insutype=str(_get(p, "insutype", "person")), psn_type=str(_get(p, "psn_type", "person")),
        insuplc_admdvs=str(_get(p, "insuplc_admdvs", "person", "")), cvlserv_flag=_flag(p.get("cvlserv_flag", "0")),
        identities=frozenset(str(x) for x in p.get("identities", [])),
    )
    v = _table(doc, "visit")
    try:
        setl_date = date.fromisoformat(str(_get(v, "setl_date", "visit", date.today().isoformat())))
    except ValueError:
        raise Invalid("visit.setl_date", "must be a date YYYY-MM-DD") from None
    level = str(_get(v, "level", "visit", "3"))
    seq = v.get("admission_seq", 1)
    if not isinstance(seq, int) or seq < 1:
        raise Invalid("visit.admission_seq", "must be a whole number ≥ 1")
    visit = VisitContext(mdtrt_id=str(v.get("mdtrt_id", "QUOTE")), med_type=str(_get(v, "med_type", "visit")),
                         setl_date=setl_date, institution=Institution("QUOTE", "", person.insuplc_admdvs, level),
                         admission_seq=seq, final=_flag(v.get("final", "1")), dise_codg=str(v.get("dise_codg", "")))
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


def quote(policy: Policy, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Adjudicate the document against ``policy``; amounts in fen (render with interface_format.to_yuan)."""
    person, visit, lines, year, visit_acc, accounts, use_account = parse_quote(doc)
    try:
        adj = adjudicate(policy, person, visit, lines, year, visit_acc, accounts, use_account)
    except AdjudicationError as e:
        raise Invalid(e.field, e.problem) from None
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
