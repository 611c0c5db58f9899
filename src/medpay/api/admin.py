"""Admin door (医保经办): loaded policies, stand-alone quotes, ledger invariant check, counter activations."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from medpay.adapters.db.ledger_store import check_ledger
from medpay.api import described
from medpay.api.bodies import json_body, raw_body
from medpay.api.deps import platform, staff
from medpay.api.mobile.ecert import activation_service
from medpay.api.platform import Platform
from medpay.domain import payment_time as payment_time_rules
from medpay.domain.payment_time import summarize
from medpay.domain.policy import select_policy
from medpay.interface_format import to_yuan
from medpay.local_time import LOCAL_TZ
from medpay.services.payment_times import payment_times
from medpay.services.errors import Invalid, NotFound
from medpay.services.policy_view import policy_view
from medpay.services.quote import parse_quote, quote
from medpay.services.staff import Staff

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class PolicyHead(BaseModel):
    policy_id: str
    admdvs: str
    name: str
    version: str
    effective_from: str
    effective_to: str | None
    source: str


class PolicySummary(PolicyHead):
    tiers: list[str]


@router.get("/policies", response_model=list[PolicySummary], summary="在用政策 / loaded region policies")
def list_policies(p: Platform = Depends(platform)) -> list[PolicySummary]:
    return [PolicySummary(policy_id=x.policy_id, admdvs=x.admdvs, name=x.name, version=x.version,
                          effective_from=x.effective_from.isoformat(),
                          effective_to=x.effective_to.isoformat() if x.effective_to else None, source=x.source,
                          tiers=[f"{t.code} ({t.fund_pay_type})" for t in x.tiers]) for x in p.policies]


class HeadLine(BaseModel):
    label: str
    value: str


class TierWords(BaseModel):
    code: str
    title: str = Field(..., description="the tier's name and code")
    lines: list[str] = Field(..., description="its settings in words, one a line (rules indented)")


class ExampleAmount(BaseModel):
    field: str = Field(..., description="a setlinfo field (hifp_pay …) or tiers.<code>.<figure>")
    label: str
    expected: str = Field(..., description="yuan, as the policy file states it")
    computed: str | None = Field(..., description="yuan, as the engine computes it; null when the example could "
                                                  "not be settled or the tier did not apply")
    ok: bool


class ExampleCheck(BaseModel):
    name: str
    source: str
    note: str
    passed: bool = Field(..., description="every expected amount reproduced to the fen (medpay policy check's verdict)")
    error: str = Field(..., description="why the example could not be settled at all (field: problem), else empty")
    amounts: list[ExampleAmount]


class PolicyDetail(PolicyHead):
    references: list[str]
    head: list[HeadLine] = Field(..., description="the policy's general settings in words")
    tiers: list[TierWords]
    examples: list[ExampleCheck]


@router.get("/policies/{policy_id}", response_model=PolicyDetail,
            summary="政策详情 / one policy in words: tiers, sources, worked examples run against the engine",
            description="The admin page /admin/policies/{policy_id} shows this. `lang=en` for English words.",
            responses=described.answers(router.prefix, {404: "no loaded policy has this policy_id"}))
def policy_detail(policy_id: str, lang: Literal["zh", "en"] = Query("zh"),
                  p: Platform = Depends(platform)) -> PolicyDetail:
    chosen = next((x for x in p.policies if x.policy_id == policy_id), None)
    if chosen is None:
        raise NotFound("policy_id", f"no loaded policy {policy_id!r}; GET /api/v1/admin/policies lists them")
    return PolicyDetail(**policy_view(chosen, lang))


QUOTE_EXAMPLE = {
    "person": {"psn_no": "Q1", "insutype": "310", "psn_type": "1201", "insuplc_admdvs": "999901",
               "brdy": "1955-03-15", "retr_date": "2005-04-01", "insu_date": "1999-01-01"},
    "visit": {"med_type": "21", "level": "3", "setl_date": "2026-05-01", "inst_kind": "general", "admdvs": "999901"},
    "lines": [{"feedetl_sn": "1", "med_list_codg": "X1", "chrgitm_lv": "01", "cnt": 1, "pric": 12000,
               "det_item_fee_sumamt": "12000.00"},
              {"feedetl_sn": "2", "med_list_codg": "X2", "chrgitm_lv": "02", "selfpay_prop": "0.10", "cnt": 2,
               "pric": 400, "det_item_fee_sumamt": 800}],
    "accounts": [{"relation": "self", "balance": "1500.00"}],
}


Yuan = StrictInt | StrictFloat | StrictStr  # a number of yuan, or its text (at most two decimals)
Flag = Literal["0", "1"]
DATE = r"^\d{4}-\d{2}-\d{2}$"  # a date YYYY-MM-DD (checked for a real day by parse_quote)


class QuotePerson(BaseModel):
    psn_no: StrictStr = Field("QUOTE", max_length=30)
    psn_name: StrictStr = Field("", max_length=50)
    insutype: StrictStr = Field(..., min_length=1, max_length=6, description="险种, e.g. 310 employee, 390 resident")
    psn_type: StrictStr = Field(..., min_length=1, max_length=6, description="人员类别, e.g. 1101 in service")
    insuplc_admdvs: StrictStr = Field(..., min_length=6, max_length=6, description="参保地医保区划: whose policy")
    cvlserv_flag: Flag = "0"
    identities: list[StrictStr] = Field([], max_length=20, description="psn_idet_type codes (医疗救助 identities)")
    # facts some regions' rules need; a rule that needs one the person lacks refuses the bill naming it
    brdy: StrictStr | None = Field(None, pattern=DATE, description="birth date YYYY-MM-DD (age rules)")
    retr_date: StrictStr | None = Field(None, pattern=DATE, description="retirement date YYYY-MM-DD (retirement cohorts)")
    pay_grade: StrictStr = Field("", max_length=2, description="resident payment grade: 1 一档, 2 二档 …")
    insu_date: StrictStr | None = Field(None, pattern=DATE,
                                        description="start of continuous enrolment YYYY-MM-DD (caps by months enrolled)")
    salary: Yuan | None = Field(None, description="yearly salary base, yuan (civil-servant subsidy deductibles)")

    model_config = {"extra": "forbid"}


class QuoteVisit(BaseModel):
    med_type: StrictStr = Field(..., min_length=1, max_length=6, description="医疗类别, e.g. 11 outpatient, 21 inpatient")
    level: Literal["0", "1", "2", "3"] = Field("3", description="the institution's level")
    setl_date: date | None = Field(None, description="the policy version in force that day (default: today)")
    admission_seq: StrictInt = Field(1, ge=1, description="the admission's number in the year")
    final: Flag = "1"
    dise_codg: StrictStr = Field("", max_length=30)
    mdtrt_id: StrictStr = Field("QUOTE", max_length=30)
    inst_kind: StrictStr = Field("general", max_length=12, description="the institution's kind: general 综合医院, "
                                                                       "tcm 中医院, specialist 专科医院, grassroots 基层")
    admdvs: StrictStr | None = Field(None, min_length=6, max_length=6,
                                     description="the treating region (default: the person's insuplc_admdvs; "
                                                 "another one is 异地就医)")
    filed: Flag = Field("0", description="异地就医: the stay was filed (备案) with the insured region")
    referred: Flag = Field("0", description="the patient was referred (转诊)")

    model_config = {"extra": "forbid"}


class QuoteLine(BaseModel):
    feedetl_sn: StrictStr | StrictInt | None = None
    med_list_codg: StrictStr = Field("", max_length=50)
    name: StrictStr = Field("", max_length=200)
    chrgitm_lv: Literal["01", "02", "03"] = Field(..., description="01 甲, 02 乙, 03 丙")
    med_chrgitm_type: StrictStr = Field("", max_length=6)
    pric_uplmt_amt: Yuan | None = Field(None, description="unit price limit, yuan")
    selfpay_prop: Yuan | None = Field(None, description="乙类 first self-pay ratio, 0–1")
    cnt: Yuan = 1
    pric: Yuan | None = Field(None, description="unit price, yuan (default: the line's amount)")
    det_item_fee_sumamt: Yuan = Field(..., description="the line's amount, yuan")

    model_config = {"extra": "forbid"}


class QuoteAccount(BaseModel):
    psn_no: StrictStr | None = Field(None, max_length=30)
    relation: StrictStr = Field("self", max_length=20, description="self, or the family relation (共济)")
    balance: Yuan

    model_config = {"extra": "forbid"}


class QuoteRequest(BaseModel):
    person: QuotePerson
    visit: QuoteVisit
    lines: list[QuoteLine] = Field(..., min_length=1, max_length=10_000)
    accumulators: dict[str, Yuan] = Field({}, description="the person's year totals so far, yuan (admissions: a count)")
    visit_accumulators: dict[str, Yuan] = {}
    accounts: list[QuoteAccount] = Field([], max_length=20)
    acct_used_flag: Flag = "1"

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [QUOTE_EXAMPLE]}}


@router.post("/quote", summary="政策试算 / quote a bill against a region policy (writes nothing)",
             openapi_extra=described.json_body(QuoteRequest),
             responses=described.answers(router.prefix, {422: "a field is missing or malformed (named), or no "
                                                               "policy covers the person's region on that day"}))
def post_quote(body: bytes = Depends(raw_body), policy_id: str | None = Query(None, max_length=40),
               p: Platform = Depends(platform)) -> dict[str, Any]:
    doc = json_body(QuoteRequest, body).model_dump(exclude_none=True, mode="json")
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


class CounterActivation(BaseModel):
    psn_no: str = Field(..., min_length=1, max_length=30, description="人员编号")
    certno: str = Field(..., min_length=1, max_length=30, description="the ID number on the card the staff member saw")
    consent: StrictBool = Field(..., json_schema_extra={"const": True},
                                description="the person's separate consent (个人信息处理单独同意), given at the counter")
    id_checked: StrictBool = Field(..., json_schema_extra={"const": True},
                                   description="the staff member saw the person and their ID card; must be true")

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{
        "psn_no": "99990100000006", "certno": "999901194811110066", "consent": True, "id_checked": True}]}}


class CounterCode(BaseModel):
    activation_id: str
    counter_code: str = Field(..., description="shown once: hand it to the person, who enters it in the app")
    expires_at: datetime
    userName: str = Field(..., description="the person's name, masked: check it is who stands at the counter")
    idNo: str = Field(..., description="the person's ID number, masked")


@router.post("/ecert/counter-activations", status_code=201, response_model=CounterCode,
             operation_id="counter_activation",
             responses={201: {"description": "a counter code for the person", "links": {"Confirm": {
                 "operationId": "confirm_activation",
                 "requestBody": {"counter_code": "$response.body#/counter_code"},
                 "description": "the person enters the counter code in the app, which sends its device's key"}}},
                        **described.answers(router.prefix, {
                            422: "a field is missing or malformed, the ID number is not this person's, or "
                                 "id_checked is not true"})},
             summary="柜台激活 / activation at a counter: the staff member saw the ID card; a code for the app",
             description="For people without a phone on record, or whose SMS activation is blocked or lost. It "
                         "cancels an activation pending by SMS (so nobody who knows a person's numbers can block "
                         "them) and is recorded in the audit log with the staff key that made it.")
def counter_activation(req: CounterActivation, request: Request, who: Staff = Depends(staff)) -> CounterCode:
    if req.id_checked is not True:
        raise Invalid("id_checked", "a counter activation needs the person and their ID card seen at the counter")
    started = activation_service(request).start_at_counter(req.psn_no, req.certno, req.consent,
                                                           staff=f"staff:{who.key_id}")
    return CounterCode(activation_id=started.activation_id, counter_code=started.counter_code or "",
                       expires_at=started.expires_at, **(started.holder or {}))


class DoorTimes(BaseModel):
    count: int = Field(..., description="payments in the period")
    p50_s: int = Field(..., description="median payment time, seconds")
    p90_s: int = Field(..., description="90th percentile, seconds")


class PaymentTimes(BaseModel):
    definition: str
    date_from: date
    date_to: date
    doors: dict[str, DoorTimes] = Field(..., description="window, scan, mobile")


@router.get("/payment-times", response_model=PaymentTimes,
            summary="缴费时长 / payment time (bill available → paid) by door, p50 and p90")
def get_payment_times(date_from: date = Query(..., description="first local day"),
                      date_to: date = Query(..., description="last local day (inclusive)"),
                      fixmedins_code: str | None = Query(None, max_length=30),
                      p: Platform = Depends(platform)) -> PaymentTimes:
    if date_to < date_from:
        raise Invalid("date_to", "must not be before date_from")
    if (date_to - date_from).days > 366:
        raise Invalid("date_to", "at most a year at a time")
    start = datetime.combine(date_from, datetime.min.time(), LOCAL_TZ)
    end = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), LOCAL_TZ)
    times = payment_times(p.factory, start, end, fixmedins_code)
    return PaymentTimes(definition=(payment_time_rules.__doc__ or "").strip(), date_from=date_from, date_to=date_to,
                        doors={k: DoorTimes(**v) for k, v in summarize(times).items()})
