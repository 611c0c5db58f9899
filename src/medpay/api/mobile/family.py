"""Family (家庭共济 / 代办) in the app (``services.mobile.family``): add a member, the member's answer, and — in
``api.mobile.visits`` — acting for a member (``?for=psn_no``). Every request here comes from a signed-in browser;
changes carry the CSRF token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StrictBool, StrictStr

from medpay.api import described
from medpay.api.mobile import ecert as ecert_door
from medpay.api.mobile.account import CHANGES, SIGNED_IN, signed_in
from medpay.services.mobile.family import RELATIONS, FamilyService

router = APIRouter(prefix="/api/v1/mobile/family", tags=["mobile"])
# ?for=psn_no on the visits and records APIs: act for a family member
For = ecert_door.For  # ?for=psn_no on the app's requests


def family_service(request: Request) -> FamilyService:
    svc = getattr(request.app.state, "family", None)
    if svc is None:
        p = request.app.state.platform
        svc = request.app.state.family = FamilyService(p.factory, p.cipher, clock=p.persons.clock)
    return svc


class AddMember(BaseModel):
    psn_no: StrictStr = Field(..., min_length=1, max_length=30, description="the member's 人员编号")
    certno: StrictStr = Field(..., min_length=1, max_length=30, description="the member's ID number")
    relation: StrictStr = Field(..., description="the member is your …", json_schema_extra={"enum": list(RELATIONS)})
    as_guardian: StrictBool = Field(False, description="a parent acting for a minor child: in force at once "
                                                       "(recorded); otherwise the member consents with their own "
                                                       "sign-in")
    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{
        "psn_no": "99990100000004", "certno": "999901201506010044", "relation": "child", "as_guardian": True}]}}


class Member(BaseModel):
    link_id: str
    psn_no: str
    name: str = Field(..., description="masked")
    relation: str
    status: str = Field(..., description="active, or pending the member's consent")
    consent: str | None


class FamilyRequest(BaseModel):
    link_id: str
    from_name: str = Field(..., description="who asks to act for you, masked")
    relation: str = Field(..., description="they are your …")
    status: str = Field(..., description="pending, or active (you consented; you may withdraw)")
    linked_at: datetime


class Answer(BaseModel):
    consent: StrictBool = Field(..., description="true: consent; false: decline, or withdraw a consent given")
    model_config = {"extra": "forbid"}


class Answered(BaseModel):
    link_id: str
    status: str


@router.post("", response_model=Member, openapi_extra=described.signed("session+csrf"),
             summary="添加家庭成员 / act for a family member (spouse, parent, child)",
             responses=described.answers(router.prefix, {
                 **CHANGES, 409: "link yourself first (your own e-certificate), or added at the same moment",
                 422: "a field is missing or malformed, the ID number is not this person's, or a guardian "
                      "acting for an adult"}))
async def add_member(request: Request, req: AddMember) -> dict[str, Any]:
    caller = await signed_in(request, changes_state=True)
    return await run_in_threadpool(family_service(request).add, caller, req.psn_no, req.certno, req.relation,
                                   req.as_guardian)


@router.get("/requests", response_model=list[FamilyRequest], openapi_extra=described.signed("session"),
            summary="家人的代办请求 / who asks (or may) act for you",
            responses=described.answers(router.prefix, {**SIGNED_IN, 409: "link yourself first"}))
async def requests(request: Request) -> list[dict[str, Any]]:
    caller = await signed_in(request)
    return await run_in_threadpool(family_service(request).requests, caller)


@router.post("/requests/{link_id}", response_model=Answered, openapi_extra=described.signed("session+csrf"),
             summary="同意或拒绝 / consent to a family member acting for you, decline, or withdraw",
             responses=described.answers(router.prefix, {**CHANGES, 404: "no such request to you",
                                                         409: "link yourself first"}))
async def answer(request: Request, req: Answer,
                 link_id: str = PathParam(..., min_length=1, max_length=20, pattern=r"^[A-Z0-9]+$")) -> dict[str, Any]:
    caller = await signed_in(request, changes_state=True)
    return await run_in_threadpool(family_service(request).answer, caller, link_id, req.consent)


async def patient(request: Request, device_psn_no: str, member: str | None, *,
                  changes_state: bool = False) -> tuple[str, str]:
    """(whose bills, who pays the cash part) of an app request signed by the device of ``device_psn_no``: the
    device's own person, or — with ``?for=psn_no`` — a family member the signed-in account acts for, paid by the
    device's person (whose own account the session must speak for)."""
    if not member or member == device_psn_no:
        return device_psn_no, ""
    caller = await signed_in(request, changes_state=changes_state)
    svc = family_service(request)
    await run_in_threadpool(svc.acting_for, caller, device_psn_no)  # the paying device is the account's own
    await run_in_threadpool(svc.acting_for, caller, member)
    return member, device_psn_no
