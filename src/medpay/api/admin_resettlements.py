"""Admin door: re-settlement after a policy correction (``medpay.services.resettlement``) — plan a run for a region
and period under a loaded corrected policy version, show it, confirm it. Staff key required (included with the
admin router's dependency). Amounts in yuan; accumulator differences in yuan too, except ``admissions`` (a count).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from medpay.api import described
from medpay.api.deps import platform, staff
from medpay.api.platform import Platform
from medpay.domain.adjudication import ADMISSIONS_KEY
from medpay.money import yuan_number
from medpay.services.errors import Invalid
from medpay.services.resettlement import ResettlementService
from medpay.services.staff import Staff

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

RUN_ID = Path(..., min_length=1, max_length=30, pattern=r"^[0-9]+$", description="the run's id (plan answers it)")


class ResettlementPlan(BaseModel):
    region: StrictStr = Field(..., pattern=r"^[0-9]{6}$", description="医保区划 admdvs: whose insured persons")
    from_: date = Field(..., alias="from", description="first local day of the period (settlement date), YYYY-MM-DD")
    to: date = Field(..., description="last local day of the period, included")
    policy_id: StrictStr = Field(..., min_length=1, max_length=40,
                                 description="the corrected version, a loaded policy (GET /policies), e.g. 999901@2026.2")

    model_config = ConfigDict(extra="forbid", populate_by_name=False, json_schema_extra={"examples": [
        {"region": "999901", "from": "2026-01-01", "to": "2026-03-31", "policy_id": "999901@2026.2"}]})


def service(p: Platform) -> ResettlementService:
    return ResettlementService(p.factory, p.cipher)


@router.post("/resettlements", status_code=201,
             summary="重新结算试算 / plan a re-settlement under a corrected policy (posts nothing)",
             description="Recomputes every standing settlement of the region's insured persons settled in the period "
                         "under the corrected policy version, in time order per person with accumulators replayed, "
                         "and stores the differences as a run to confirm later. 按更正后的政策版本重新计算区划内"
                         "参保人在期间内的结算，列出差额，待经办人员确认后入账。",
             responses=described.answers(router.prefix, {
                 404: "unknown region",
                 422: "a field is missing or malformed (named): the policy is not loaded or of another region, the "
                      "period is empty or outside the policy's validity, or holds no settlement"}))
def plan_resettlement(req: ResettlementPlan, p: Platform = Depends(platform),
                      who: Staff = Depends(staff)) -> dict[str, Any]:
    corrected = next((x for x in p.policies if x.policy_id == req.policy_id), None)
    if corrected is None:
        raise Invalid("policy_id", f"no loaded policy {req.policy_id!r} (GET /api/v1/admin/policies)")
    return yuan_view(service(p).plan(req.region, req.from_, req.to, corrected, who.name))


@router.get("/resettlements", summary="重新结算批次 / re-settlement runs, newest first (without their lines)")
def list_resettlements(region: str | None = Query(None, pattern=r"^[0-9]{6}$"),
                       limit: int = Query(50, ge=1, le=500),
                       p: Platform = Depends(platform)) -> list[dict[str, Any]]:
    return [yuan_view(r) for r in service(p).list_runs(region, limit)]


@router.get("/resettlements/{run_id}", summary="重新结算差额 / a re-settlement run and its differences",
            responses=described.answers(router.prefix, {404: "no such run"}))
def show_resettlement(run_id: str = RUN_ID, p: Platform = Depends(platform)) -> dict[str, Any]:
    return yuan_view(service(p).show(run_id))


@router.post("/resettlements/{run_id}/confirm",
             summary="确认重新结算 / confirm a run: post its differences (once; a second call answers the first)",
             description="All or nothing, in one transaction: per settlement, balanced transfers between the funds "
                         "and the institution, and between the institution and the patient (who gets a refund or "
                         "pays the rest at the institution); accumulators move by the differences; each adjustment "
                         "is audited with the staff member. A run planned before a newer settlement, cancellation "
                         "or adjustment of its persons is refused (409): plan again. 全部成功或全部不入账；重复确认"
                         "返回首次结果。",
             responses=described.answers(router.prefix, {404: "no such run",
                                                         409: "the run is stale (plan again)"}))
def confirm_resettlement(run_id: str = RUN_ID, p: Platform = Depends(platform),
                         who: Staff = Depends(staff)) -> dict[str, Any]:
    return yuan_view(service(p).confirm(run_id, who.name))


# the run's fen amounts, by where they sit in a run's view
_AMOUNT_MAPS = ("by_field", "by_fund")
_TRIPLES = ("changes", "funds")
_DELTAS = ("year_deltas_diff", "visit_deltas_diff")


def yuan_view(view: dict[str, Any]) -> dict[str, Any]:
    """A run (``ResettlementService`` view, fen) with its amounts in yuan."""
    out = dict(view)
    summary = dict(out["summary"])
    for k in ("fund_diff", "patient_diff"):
        summary[k] = yuan_number(summary[k])
    for k in _AMOUNT_MAPS:
        summary[k] = {f: yuan_number(v) for f, v in summary[k].items()}
    out["summary"] = summary
    if "lines" in out:
        out["lines"] = [_yuan_line(ln) for ln in out["lines"]]
    return out


def _yuan_line(line: dict[str, Any]) -> dict[str, Any]:
    out = dict(line, fund_diff=yuan_number(line["fund_diff"]), patient_diff=yuan_number(line["patient_diff"]))
    for k in _TRIPLES:
        out[k] = {f: {x: yuan_number(v) for x, v in t.items()} for f, t in line[k].items()}
    for k in _DELTAS:
        out[k] = {f: (v if f == ADMISSIONS_KEY else yuan_number(v)) for f, v in line[k].items()}
    return out
