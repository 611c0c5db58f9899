"""Admin door (医保经办): loaded policies, stand-alone quotes, ledger invariant check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel

from medpay.adapters.db.ledger_store import check_ledger
from medpay.api.deps import platform
from medpay.api.errors import ErrorResponse
from medpay.api.platform import Platform
from medpay.domain.policy import select_policy
from medpay.interface_format import to_yuan
from medpay.services.errors import Invalid
from medpay.services.quote import parse_quote, quote

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class PolicySummary(BaseModel):
    policy_id: str
    admdvs: str
    name: str
    version: str
    effective_from: str
    effective_to: str | None
    source: str
    tiers: list[str]


@router.get("/policies", response_model=list[PolicySummary], summary="在用政策 / loaded region policies")
def list_policies(p: Platform = Depends(platform)) -> list[PolicySummary]:
    return [PolicySummary(policy_id=x.policy_id, admdvs=x.admdvs, name=x.name, version=x.version,
                          effective_from=x.effective_from.isoformat(),
                          effective_to=x.effective_to.isoformat() if x.effective_to else None, source=x.source,
                          tiers=[f"{t.code} ({t.fund_pay_type})" for t in x.tiers]) for x in p.policies]


QUOTE_EXAMPLE = {
    "person": {"psn_no": "Q1", "insutype": "310", "psn_type": "1101", "insuplc_admdvs": "999901"},
    "visit": {"med_type": "21", "level": "3", "setl_date": "2026-05-01"},
    "lines": [{"feedetl_sn": "1", "med_list_codg": "X1", "chrgitm_lv": "01", "cnt": 1, "pric": 12000,
               "det_item_fee_sumamt": "12000.00"},
              {"feedetl_sn": "2", "med_list_codg": "X2", "chrgitm_lv": "02", "selfpay_prop": "0.10", "cnt": 2,
               "pric": 400, "det_item_fee_sumamt": 800}],
    "accounts": [{"relation": "self", "balance": "1500.00"}],
}


@router.post("/quote", summary="政策试算 / quote a bill against a region policy (writes nothing)",
             responses={422: {"model": ErrorResponse}})
def post_quote(doc: dict[str, Any] = Body(..., examples=[QUOTE_EXAMPLE]), policy_id: str | None = None,
               p: Platform = Depends(platform)) -> dict[str, Any]:
    person, visit, *_ = parse_quote(doc)
    if policy_id:
        chosen = next((x for x in p.policies if x.policy_id == policy_id), None)
        if chosen is None:
            raise Invalid("policy_id", f"unknown policy {policy_id!r}")
    else:
        try:
            chosen = select_policy(p.policies, person.insuplc_admdvs, visit.setl_date)
        except LookupError as e:
            raise Invalid("person.insuplc_admdvs", str(e)) from None
    return to_yuan(quote(chosen, doc))


class LedgerCheck(BaseModel):
    ok: bool
    violations: list[dict[str, str]]


@router.get("/ledger/check", response_model=LedgerCheck, summary="账务平衡检查 / verify ledger invariants")
def ledger_check(p: Platform = Depends(platform)) -> LedgerCheck:
    session = p.factory()
    try:
        found = check_ledger(session)
    finally:
        session.close()
    return LedgerCheck(ok=not found, violations=[{"code": str(getattr(v.code, "value", v.code)), "message": v.message}
                                                 for v in found])
