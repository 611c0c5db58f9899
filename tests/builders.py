"""Builders shared by the adjudication engine tests: the demo policy, inline policies, persons, visits, and a
settle helper that checks the amount identities and that no amount is negative on every result."""

from __future__ import annotations

import copy
import tomllib
from datetime import date

from medpay.adapters.policy_files import BUILTIN_DIR, load_policy_file
from medpay.domain.adjudication import Adjudication, adjudicate, identity_violations
from medpay.domain.model import (
    AccountSource,
    Accumulators,
    ChrgitmLv,
    FeeLine,
    Institution,
    Person,
    VisitContext,
)
from medpay.domain.policy import Policy, parse_policy

JIA, YI, BING = ChrgitmLv.JIA, ChrgitmLv.YI, ChrgitmLv.BING

DEMO_PATH = BUILTIN_DIR / "999901-demo-2026.toml"
DEMO_DOC = tomllib.loads(DEMO_PATH.read_text(encoding="utf-8"))
DEMO = load_policy_file(DEMO_PATH)


def demo_doc() -> dict:
    """A fresh deep copy of the demo policy's TOML document, free to edit."""
    return copy.deepcopy(DEMO_DOC)


def policy_from_toml(text: str, name: str) -> Policy:
    return parse_policy(tomllib.loads(text), name)


def person(insutype: str, psn_type: str, admdvs: str = "999901", *identities: str, psn_no: str = "P001",
           psn_name: str = "参保人", cvlserv_flag: bool = False) -> Person:
    return Person(psn_no=psn_no, psn_name=psn_name, insutype=insutype, psn_type=psn_type, insuplc_admdvs=admdvs,
                  cvlserv_flag=cvlserv_flag, identities=frozenset(identities))


def visit(med_type: str = "21", level: str = "3", admdvs: str = "999901", *, admission_seq: int = 1,
          final: bool = True, on: date = date(2026, 3, 1)) -> VisitContext:
    inst = Institution(fixmedins_code="H001", fixmedins_name="医院", admdvs=admdvs, level=level)
    return VisitContext(mdtrt_id="M1", med_type=med_type, setl_date=on, institution=inst,
                        admission_seq=admission_seq, final=final)


def settle(policy: Policy, psn: Person, vis: VisitContext, lines: list[FeeLine],
           year: Accumulators | None = None, visit_acc: Accumulators | None = None,
           accounts: tuple[AccountSource, ...] = (), use_account: bool = True) -> Adjudication:
    r = adjudicate(policy, psn, vis, lines, year or Accumulators(), visit_acc, accounts, use_account)
    assert identity_violations(r.amounts, r.setldetail) == []
    assert all(v >= 0 for v in r.amounts.values()), r.amounts
    return r
