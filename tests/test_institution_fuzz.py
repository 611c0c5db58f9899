"""Fuzzing every institution transaction (hypothesis) through the real FastAPI app, in process.

Every infno in ``HANDLERS`` is fuzzed — a new transaction is picked up without touching this file. Inputs start
from the transaction's OpenAPI example (``examples.EXAMPLES``), with real ids swapped in (an open visit with
fee lines, a settled visit, a cancelled settlement, an admission, a discharged admission, another
institution's visit, an uploaded file, a pharmacy's purchase), then mutated: keys dropped, values replaced by random JSON (odd strings,
huge and negative numbers, NaN, 3-decimal amounts, nested lists and objects, null, booleans), envelope fields
broken; each sent to one of the URLs that reach its transaction (the single endpoint, its named path, a base URL
with the infno appended), with or without the body's infno. Fully random envelopes and raw byte bodies too, to any
of those URLs.

Properties of every answer: HTTP 200 or 401, never 5xx; the response envelope shape; ``infcode`` 0 or −2, never
−1 (a −1 is a fault of ours: the failure shows the request and the server's trace); no traceback in the body;
a −2 ``err_msg`` starts with a field name and ':'. A refused request writes nothing: every table but
``gateway_nonces`` is identical before and after it. After the run the ledger invariants hold.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import logging
import os
import re
import zipfile
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db import schema
from medpay.adapters.db.catalog_tables import CatalogMappingRow
from medpay.adapters.db.ledger_store import check_ledger
from medpay.adapters.db.migrate import upgrade
from medpay.adapters.db.tables import FeeLineRow, VisitRow
from medpay.adapters.sm2 import generate_keypair, sign_sm2
from medpay.api.app import create_app
from medpay.api.institution import examples
from medpay.api.institution.envelope import LOCAL_TZ, STRING_FIELDS
from medpay.api.institution.transactions import HANDLERS
from medpay.api.platform import Platform, build_platform
from medpay.domain.gateway_signature import canonical_body, sign_headers
from medpay.nhsa_paths import CALL_SERVICE, PATHS, institution_paths
from medpay.services import demo
from tests.conftest import _postgresql_schema_url

H1, H2 = demo.INSTITUTIONS[0], demo.INSTITUTIONS[1]
P1 = demo.PHARMACIES[0]  # 2101/2102/2103 are sent mostly as the pharmacy, sometimes as H1 (refused)
PHARMACY_INFNOS = {"2101", "2102", "2103"}
EMP, RETIREE, CIVIL, CHILD = demo.PERSONS[0], demo.PERSONS[1], demo.PERSONS[2], demo.PERSONS[3]
DRUG, EXAM, BED = "XM01AEB002", "002100000020000", "001102000010000"
INFNOS = sorted(HANDLERS)
PERSONS = {p.psn_no: p for p in demo.PERSONS}
DECLARED_AMOUNTS = {"medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt"}
# examples per infno, random envelopes, raw bodies — per backend (the file: < ~60 s SQLite, < ~30 s PostgreSQL)
BUDGET = {"sqlite": (30, 150, 120), "postgresql": (12, 60, 40)}
IGNORED_TABLES = {"gateway_nonces"}  # every request (refused or not) spends a nonce
RESPONSE_KEYS = {"infcode", "inf_refmsgid", "refmsg_time", "respond_time", "err_msg", "output"}
FIELD_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]\-]*: ")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------ the world


class FaultLog(logging.Handler):
    """Keeps the server's last logged trace, to show next to a failing request."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = self.format(record)


class World:
    """The app, a signed-in operator and real objects for fuzzed inputs to hit."""

    def __init__(self, backend: str, platform: Platform, client: TestClient, faults: FaultLog):
        self.backend, self.platform, self.client, self.faults = backend, platform, client, faults
        self.serial = itertools.count(1)
        self.sent_msgids: list[str] = []
        self.pools: dict[str, list[Any]] = {}
        self.sign_no = ""
        self.latest: dict[str, dict[str, str]] = {}  # role → the newest object in that state
        self.targets: list[dict[str, str]] = []  # every object made: mdtrt_id, psn_no (, setl_id)
        self.sm2_private = ""  # H2's: its key makes SM2 mandatory for it (H1 sends plain bodies)
        self.h2_sign_no = ""
        self.p1_sign_no = ""

    # -------------------------------------------------------------- transport

    def msgid(self, inst=H1) -> str:
        return f"{inst[0]}{datetime.now(LOCAL_TZ):%Y%m%d}{next(self.serial):010d}"  # 12 + 8 + 10 = 30

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None, inst=H1):
        headers = headers if headers is not None else sign_headers(inst[3], inst[4])
        self.faults.last = ""
        try:
            return self.client.post(path, content=body, headers={**headers, "content-type": "application/json"})
        except Exception as e:  # raise_server_exceptions: an unhandled error escaped the route (a 500)
            raise AssertionError(f"unhandled server exception {e!r}\n{repro(path, body)}") from e

    def envelope(self, infno: str, input_: Any, inst=H1, sign_no: str | None = None, msgid: str | None = None) -> dict:
        return {"infno": infno, "msgid": msgid or self.msgid(inst), "mdtrtarea_admvs": "999901",
                "insuplc_admdvs": "999901", "recer_sys_code": "YBXT", "infver": "V1.0", "opter_type": "1",
                "opter": "1001", "opter_name": "收费员", "inf_time": f"{datetime.now(LOCAL_TZ):%Y-%m-%d %H:%M:%S}",
                "fixmedins_code": inst[0], "fixmedins_name": inst[1],
                "sign_no": self.sign_no if sign_no is None else sign_no, "input": input_}

    def call(self, infno: str, input_: Any, inst=H1, sign_no: str | None = None, msgid: str | None = None) -> dict:
        """A setup call that must succeed."""
        env = self.envelope(infno, input_, inst, sign_no, msgid)
        if inst == H2:
            self.sign(env)
        r = self.post(CALL_SERVICE, json.dumps(env).encode(), inst=inst)
        doc = r.json()
        assert r.status_code == 200 and doc["infcode"] == 0, (infno, input_, doc)
        self.sent_msgids.append(env["msgid"])
        return doc["output"]

    # -------------------------------------------------------------- real objects

    def add(self, pool: str, value: Any) -> Any:
        values = self.pools.setdefault(pool, [])
        if value not in values:
            values.append(value)
        return value

    def target(self, **ids: str) -> dict[str, str]:
        for pool, value in ids.items():
            self.add(pool, value)
        self.targets = [t for t in self.targets if t["mdtrt_id"] != ids["mdtrt_id"]] + [ids]
        return ids

    def sign(self, env: dict) -> None:
        """Sign ``env`` as H2 (signtype SM2, cainfo over the final envelope)."""
        env["signtype"] = "SM2"
        try:
            signed = canonical_body(env)
        except (TypeError, ValueError):  # NaN, unpaired surrogates: not canonicalisable
            signed = b""
        # a wrong signature when it can't be signed, or is too long to sign quickly (pure-Python SM3)
        env["cainfo"] = sign_sm2(self.sm2_private, signed) if 0 < len(signed) < 20_000 else "00" * 64

    def sign_in(self, inst=H1) -> str:
        return self.call("9001", {"signIn": {"opter_no": "1001", "mac": "00:16:3e:00:00:01", "ip": "127.0.0.1"}},
                         inst=inst, sign_no="")["signinoutb"]["sign_no"]

    def present(self, person, inst=H1, sign_no: str | None = None) -> None:
        self.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": person.certno, "psn_cert_type": "01",
                                    "certno": person.certno}}, inst=inst, sign_no=sign_no)

    def outpatient(self, person=EMP, inst=H1, sign_no: str | None = None) -> tuple[str, Decimal]:
        visit = self.call("2201", {"data": {"psn_no": person.psn_no, "insutype": person.insutype, "mdtrt_cert_type": "02",
                                            "mdtrt_cert_no": person.certno, "ipt_otp_no": "MZ1"}},
                          inst=inst, sign_no=sign_no)["data"]["mdtrt_id"]
        lines = [(DRUG, 2, "30.50"), (EXAM, 1, "350.00")]
        self.call("2204", {"feedetail": [
            {"feedetl_sn": str(i), "mdtrt_id": visit, "psn_no": person.psn_no, "chrg_bchno": "B1", "med_list_codg": c,
             "cnt": n, "pric": p, "det_item_fee_sumamt": str(n * Decimal(p))}
            for i, (c, n, p) in enumerate(lines, start=1)]}, inst=inst, sign_no=sign_no)
        self.target(mdtrt_id=visit, psn_no=person.psn_no)
        return visit, sum(n * Decimal(p) for _, n, p in lines)

    def opened(self) -> dict[str, str]:
        self.outpatient()
        return self.targets[-1]

    def settled(self) -> dict[str, str]:
        visit, total = self.outpatient()
        msgid = self.msgid()
        setl = self.call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": visit, "medfee_sumamt": str(total),
                                           "acct_used_flag": "1"}}, msgid=msgid)["setlinfo"]["setl_id"]
        self.add("omsgid", msgid)
        return self.target(mdtrt_id=visit, psn_no=EMP.psn_no, setl_id=setl)

    def purchased(self) -> dict[str, str]:
        """A purchase settled at the pharmacy (2102), its lines as the 2102 example's."""
        msgid = self.msgid(P1)
        info = self.call("2102", {"data": {**examples.PURCHASE, "mdtrt_cert_type": "02", "mdtrt_cert_no": EMP.certno},
                                  "drugdetail": examples.DRUGDETAIL}, inst=P1, sign_no=self.p1_sign_no,
                         msgid=msgid)["setlinfo"]
        self.add("omsgid", msgid)
        return self.target(mdtrt_id=info["mdtrt_id"], psn_no=EMP.psn_no, setl_id=info["setl_id"])

    def admission(self, discharged: bool = False) -> dict[str, str]:
        msgid = self.msgid()
        visit = self.call("2401", {"mdtrtinfo": {"psn_no": RETIREE.psn_no, "insutype": "310", "med_type": "21",
                                                 "ipt_no": "ZY1", "dise_codg": "K35.800"}}, msgid=msgid)["result"]["mdtrt_id"]
        self.add("omsgid", msgid)
        self.call("2301", {"feedetail": [{"feedetl_sn": "1", "mdtrt_id": visit, "psn_no": RETIREE.psn_no,
                                          "med_list_codg": BED, "cnt": 3, "pric": "60.00", "det_item_fee_sumamt": 180}]})
        if discharged:
            self.call("2402", {"dscginfo": {"mdtrt_id": visit, "psn_no": RETIREE.psn_no,
                                            "endtime": f"{datetime.now(LOCAL_TZ):%Y-%m-%d %H:%M:%S}"}})
        return self.target(mdtrt_id=visit, psn_no=RETIREE.psn_no)

    def setup(self) -> None:
        self.sm2_private, public = generate_keypair()  # H2 must sign its bodies: fuzzed ones are verified
        self.platform.gateway.set_sm2_public_key(H2[0], public)
        self.sign_no = self.sign_in()
        self.pools["sign_no"] = [self.sign_in() for _ in range(3)]  # 9002 fuzz signs these out, never self.sign_no
        for person in (EMP, RETIREE, CIVIL, CHILD):
            self.present(person)
        self.p1_sign_no = self.sign_in(P1)  # the pharmacy, and persons who showed it a card
        for person in (EMP, RETIREE, CIVIL, CHILD):
            self.present(person, P1, self.p1_sign_no)
        self.refresh()
        visit, total = self.outpatient()  # a settlement, then its cancellation
        msgid = self.msgid()
        setl = self.call("2207", {"data": {"psn_no": EMP.psn_no, "mdtrt_id": visit, "medfee_sumamt": str(total)}},
                         msgid=msgid)["setlinfo"]["setl_id"]
        cancel_msgid = self.msgid()
        cancel = self.call("2208", {"data": {"setl_id": setl, "mdtrt_id": visit, "psn_no": EMP.psn_no}},
                           msgid=cancel_msgid)["setlinfo"]["setl_id"]
        self.target(mdtrt_id=visit, psn_no=EMP.psn_no, setl_id=setl)
        self.target(mdtrt_id=visit, psn_no=EMP.psn_no, setl_id=cancel)
        self.add("omsgid", msgid)
        self.add("omsgid", cancel_msgid)
        self.h2_sign_no = h2_sign_no = self.sign_in(H2)  # a visit of another institution
        self.present(EMP, H2, h2_sign_no)
        self.outpatient(EMP, H2, h2_sign_no)
        self.add("sign_no", h2_sign_no)
        upload = self.call("9101", {"fsUploadIn": {"in": detail_zip(), "filename": "detail.zip"}})
        self.add("file_qury_no", upload["file_qury_no"])
        self.add("filename", "detail.zip")
        self.add("in", detail_zip())
        for pool, values in {
            "psn_no": [p.psn_no for p in demo.PERSONS] + ["99990100000099"],
            "oinfno": ["2207", "2208", "2304", "2305", "2401", "2201", "2102", "2103", "9999"],
            "feedetl_sn": ["1", "2", "3"], "chrg_bchno": ["B1", "B2"],
            "med_list_codg": [c[0] for c in demo.CATALOG] + ["NOSUCHCODE"],
            "fixmedins_code": [H1[0], H1[0], H1[0], H2[0]], "insutype": ["310", "390"],
            "mdtrt_cert_type": ["01", "02", "03"], "mdtrt_cert_no": [EMP.certno, RETIREE.card_no, CHILD.certno],
            "certno": [EMP.certno, RETIREE.certno], "med_type": ["11", "14", "21", "41", "99"],
            # the catalog and its mapping (1312, 1317, 3301, 3302): the example's mapping YP0001 stands (refresh)
            "hilist_code": [c[0] for c in demo.CATALOG[:3]] + ["NOSUCHCODE"],
            "fixmedins_hilist_id": ["YP0001", "YP0001", "YP0002", "NOSUCH"], "medins_list_codg": ["YP0001", "YP0002"],
            "list_type": ["101", "101", "201", "301", "999"], "vali_flag": ["1", "0", "2"],
            "page_num": [1, 1, "2", 0, 10**7], "page_size": [100, 2, "50", 0, 1001],
            "updt_time": ["2000-01-01 00:00:00", "2999-01-01 00:00:00", "0001-01-01 00:00:00"],
            "begndate": ["2026-01-01", "0001-01-01", "9999-12-31"], "enddate": ["2099-12-31", "2000-01-01", ""],
            "query_date": ["", f"{datetime.now(LOCAL_TZ):%Y-%m-%d}", "9999-12-31"],
            # 5201/5205 time ranges, 5302 businesses, 4101's person and funds
            "begntime": [f"{datetime.now(LOCAL_TZ) - timedelta(days=1):%Y-%m-%d %H:%M:%S}", "2026-01-01"],
            "endtime": [f"{datetime.now(LOCAL_TZ) + timedelta(days=1):%Y-%m-%d}", ""], "biz_appy_type": ["03", "01"],
            "hi_no": [EMP.psn_no, RETIREE.psn_no], "fund_pay_type": ["310100", "310200", "390100", "610100"],
        }.items():
            self.pools.setdefault(pool, []).extend(values)

    def state(self, mdtrt_id: str) -> tuple[str, bool]:
        """The visit's status, and whether it has live fee lines not yet settled."""
        with self.platform.factory() as session:
            status = session.execute(select(VisitRow.status).where(VisitRow.mdtrt_id == mdtrt_id)).scalar_one()
            unsettled = session.execute(select(FeeLineRow.id).where(
                FeeLineRow.mdtrt_id == mdtrt_id, FeeLineRow.status == "active", FeeLineRow.setl_id.is_(None))).first()
        return status, unsettled is not None

    def refresh(self) -> None:
        """Between examples: keep one object in each interesting state (a fuzzed success may consume it)."""
        if not self.platform.sign_in.check(H1[0], self.sign_no):
            self.sign_no = self.sign_in()
        if not self.platform.sign_in.check(H2[0], self.h2_sign_no):
            self.h2_sign_no = self.sign_in(H2)
        if not self.mapped():  # a fuzzed 3302 may have cancelled the example's mapping: map it again
            self.call("3301", examples.EXAMPLES["3301"]["value"]["input"])
        if not self.platform.sign_in.check(P1[0], self.p1_sign_no):
            self.p1_sign_no = self.sign_in(P1)
        wanted = {"open": (self.opened, ("open", True)), "settled": (self.settled, ("settled", False)),
                  "admitted": (self.admission, ("open", True)), "purchased": (self.purchased, ("settled", False)),
                  "discharged": (lambda: self.admission(discharged=True), ("discharged", True))}
        for role, (make, state) in wanted.items():
            if role not in self.latest or self.state(self.latest[role]["mdtrt_id"]) != state:
                self.latest[role] = make()

    # -------------------------------------------------------------- state

    def mapped(self) -> bool:
        """Does H1's code YP0001 (the 3301/3302 examples') have a standing mapping?"""
        with self.platform.factory() as session:
            return session.execute(select(CatalogMappingRow.id).where(
                CatalogMappingRow.fixmedins_code == H1[0], CatalogMappingRow.fixmedins_hilist_id == "YP0001",
                CatalogMappingRow.status == "active")).first() is not None

    def snapshot(self, only: str | None = None) -> dict[str, str]:
        """A digest of every table but the ignored ones (row by row, in primary-key order)."""
        out = {}
        with self.platform.engine.connect() as conn:
            for table in schema.metadata.sorted_tables:
                if table.name in IGNORED_TABLES or only not in (None, table.name):
                    continue
                rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
                out[table.name] = f"{len(rows)} rows " + hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
        return out


def detail_zip() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("detail.txt", "setl_id\tmdtrt_id\tpsn_no\tmedfee_sumamt\tfund_pay_sumamt\tacct_pay\trefd_setl_flag\n")
    return base64.b64encode(buf.getvalue()).decode()


def repro(path: str, body: bytes) -> str:
    shown = body if len(body) <= 20_000 else body[:20_000] + b"...(%d bytes)" % len(body)
    return f"reproduce: POST {path} with fresh x-tif-* headers (demo H1) and body {shown!r}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'medpay.db'}"])
    else:
        urls = _postgresql_schema_url()
    url = next(urls)
    platform = build_platform(url, cipher=FieldCipher(os.urandom(32)))
    faults = FaultLog()
    logger = logging.getLogger("medpay")
    logger.addHandler(faults)
    try:
        upgrade(platform.engine)
        demo.seed(platform.factory, platform.cipher)
        with TestClient(create_app(platform), raise_server_exceptions=True) as client:
            w = World(request.param, platform, client, faults)
            w.setup()
            yield w
    finally:
        logger.removeHandler(faults)
        platform.engine.dispose()
        for _ in urls:  # drop the PostgreSQL schema
            pass


# ------------------------------------------------------------------------------------------ strategies

ODD_STRINGS = ["", " ", "\t\n", "\x00", "\x00abc", "null", "None", "true", "0", "-0", "00", "01", "1", "-1", "2",
               "12.345", "0.005", "-0.01", "61.0", " 61.00 ", "+61", "1e400", "-1e-400", "1E2", "nan", "NaN", "inf",
               "-Infinity", "１２.５", "٣", "12,5", "0x10", "99999999999999999999999999.99", "9" * 5000,
               "2026-02-30 10:00:00", "2026-11-23", "20261123100000", "9999-12-31 23:59:59", "0000-00-00 00:00:00",
               "2026-11-23T10:00:00+08:00", "\ud800", "😀", "张三", "'; DROP TABLE visits; --", "%s%n", "{}", "[]",
               '{"a": 1}', "x" * 31, "甲" * 201, "y" * 100_000]
strings = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40),
                    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12))
amounts = st.one_of(
    st.decimals(min_value=-10**7, max_value=10**7, places=3, allow_nan=False).map(str),
    st.decimals(min_value=-10**7, max_value=10**7, places=3, allow_nan=False).map(float),
    st.decimals(min_value=0, max_value=10**4, places=2, allow_nan=False).map(str),
    st.sampled_from(["nan", "NaN", "Infinity", "-inf", "1e400", "1e-400", "-0", "0.005", "１２", " 7 ", "1_000"]),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e308, 5e-324, 0.1 + 0.2]),
)
numbers = st.one_of(st.integers(), st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63, -2**63, 2**64, 10**30, -10**30, 10**300]),
                    st.floats(allow_nan=True, allow_infinity=True), amounts)
leaves = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(
        ["data", "mdtrt_id", "psn_no", "setl_id", "feedetail", "input"])), inner, max_size=4)), max_leaves=12)


def to_body(data: st.DataObject, doc: Any) -> bytes:
    ascii_only = data.draw(st.booleans(), label="ensure_ascii")
    return json.dumps(doc, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def base_input(world: World, infno: str) -> dict:
    """The transaction's example input, or a plausible one for transactions without an example."""
    example = examples.EXAMPLES.get(infno) or examples.EXAMPLES.get(infno[:4])
    if example is not None:
        return json.loads(json.dumps(example["value"]["input"]))
    today = f"{datetime.now(LOCAL_TZ):%Y-%m-%d}"
    week_ago = f"{datetime.now(LOCAL_TZ) - timedelta(days=7):%Y-%m-%d}"
    file_qury_no = world.pools["file_qury_no"][0]
    return {
        "3201": {"data": {"insutype": "310", "clr_type": "11", "setl_optins": "999901", "stmt_begndate": week_ago,
                          "stmt_enddate": today, "medfee_sumamt": "0.00", "fund_pay_sumamt": 0, "acct_pay": 0,
                          "fixmedins_setl_cnt": 0, "refd_setl_flag": "1"}},
        "3202": {"data": {"file_qury_no": file_qury_no, "setl_optins": "999901", "clr_type": "11",
                          "stmt_begndate": week_ago, "stmt_enddate": today, "medfee_sumamt": 0, "fund_pay_sumamt": 0,
                          "cash_payamt": 0, "fixmedins_setl_cnt": 0}},
        "9101": {"fsUploadIn": {"in": detail_zip(), "filename": "detail.zip", "fixmedins_code": H1[0]}},
        "9102": {"fsDownloadIn": {"file_qury_no": file_qury_no, "filename": "detail.zip"}},
    }.get(infno, {"data": {"mdtrt_id": world.latest["open"]["mdtrt_id"], "psn_no": EMP.psn_no}})


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key / index path inside a JSON document."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(prefix + (k,))
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append(prefix + (i,))
            out += paths(v, prefix + (i,))
    return out


def swap_ids(data: st.DataObject, world: World, doc: Any) -> None:
    """Aim the input at a real object (mostly one of them, with its own person), swapping real ids in for
    the example's; sometimes drop the declared amounts (so that settlements can succeed) and use a new line
    number (so that uploads can)."""
    if data.draw(st.integers(0, 3), label="newest object?") > 0:
        target = world.latest[pick(data, sorted(world.latest), "role")]
    else:
        target = pick(data, world.targets, "object")
    certno = PERSONS[target["psn_no"]].certno
    own = {"setl_id": world.pools["setl_id"][-1], **target, "certno": certno, "mdtrt_cert_no": certno,
           "mdtrt_cert_type": "02"}  # the same keys whatever the object, so that replays draw alike
    for path in paths(doc):
        key, parent = path[-1], doc
        for p in path[:-1]:
            parent = parent[p]
        if not isinstance(key, str):
            continue
        if key in DECLARED_AMOUNTS and ("mdtrt_id" in parent or "med_type" in parent) and \
                data.draw(st.booleans(), label=f"drop {key}?"):
            del parent[key]
        elif key == "feedetl_sn" and data.draw(st.booleans(), label="new line number?"):
            parent[key] = f"F{next(world.serial)}"
        elif key in own and data.draw(st.integers(0, 4), label=f"own {key}?") > 0:
            parent[key] = own[key]
        elif key in world.pools and data.draw(st.integers(0, 9), label=f"real {key}?") < 9:
            parent[key] = pick(data, world.pools[key], f"real {key}")


def mutate(data: st.DataObject, world: World, doc: Any) -> Any:
    for _ in range(data.draw(st.integers(0, 4), label="mutations")):
        candidates = paths(doc)
        if not candidates:
            break
        path = data.draw(st.sampled_from(candidates), label="path")
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        key = path[-1]
        op = data.draw(st.sampled_from(["drop", "json", "amount", "string", "real", "retype", "extra"]), label="op")
        if op == "drop":
            del parent[key]
        elif op == "json":
            parent[key] = data.draw(json_values, label="json")
        elif op == "amount":
            parent[key] = data.draw(amounts, label="amount")
        elif op == "string":
            parent[key] = data.draw(strings, label="string")
        elif op == "real":
            parent[key] = pick(data, world.pools[pick(data, sorted(world.pools), "pool")], "real value")
        elif op == "retype":
            value = parent[key]
            parent[key] = data.draw(st.sampled_from([
                lambda v: [v], lambda v: {"value": v}, str, lambda v: json.dumps(v, allow_nan=True),
                lambda v: None, lambda v: True, as_number]), label="retype")(value)
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=12), label="extra key")] = data.draw(json_values, label="extra")
        else:
            parent.append(data.draw(json_values, label="extra item"))
    return doc


def as_number(value: Any) -> Any:
    """A numeric string as the number it spells (a real HIS quirk), anything else unchanged."""
    if isinstance(value, str) and len(value) < 40:
        try:
            return int(value) if value.strip().isascii() and value.strip().isdigit() else float(value)
        except ValueError:
            pass
    return value


def pick(data: st.DataObject, values: list, label: str) -> Any:
    """One of ``values``; drawn as an index of a fixed range, so that replays stay valid while pools grow."""
    return values[data.draw(st.integers(0, 255), label=label) % len(values)]


def mutate_envelope(data: st.DataObject, world: World, env: dict) -> None:
    if data.draw(st.integers(0, 3), label="envelope mutation?") > 0:
        return
    name = data.draw(st.sampled_from(sorted(STRING_FIELDS) + ["input"]), label="envelope field")
    choice = data.draw(st.sampled_from(["drop", "json", "string", "special"]), label="envelope op")
    if choice == "drop":
        env.pop(name, None)
    elif choice == "json":
        env[name] = data.draw(json_values, label="envelope json")
    elif choice == "string":
        env[name] = data.draw(strings, label="envelope string")
    else:
        specials = {
            "msgid": world.sent_msgids[-50:] + ["x" * 31, ""],
            "sign_no": world.pools["sign_no"] + ["", "1" * 30],
            "fixmedins_code": [H2[0], "H00000000000", f" {H1[0]} "],
            "infno": INFNOS + ["7777", "", " 2207 ", 2207],
            "input": [json.dumps(env["input"], allow_nan=True), [env["input"]], "not json", "", "[]", "null", 0],
            "signtype": ["SM2", "sm2", "RSA"],
            "cainfo": ["", "00" * 64, "not hex"],
        }.get(name, ["", "x" * 100, 12345])
        env[name] = pick(data, specials, "envelope special")
    if name == "msgid" and env.get("msgid") in world.sent_msgids:
        note("msgid replay")


# ------------------------------------------------------------------------------------------ properties


def check(world: World, path: str, body: bytes, headers: dict[str, str] | None = None, *,
          may_present: bool = True) -> dict:
    """Send one request and check every property; returns the response envelope. ``may_present``: the request
    may be a 1101, whose success records a credential presentation (no other success may)."""
    before = world.snapshot()
    r = world.post(path, body, headers)
    text = r.text
    where = f"\n{repro(path, body)}\nresponse {r.status_code}: {text[:2000]}\nserver log: {world.faults.last}"
    assert r.status_code in (200, 401), "HTTP status" + where
    assert "Traceback" not in text and 'File "' not in text, "traceback in the body" + where
    doc = r.json()
    assert isinstance(doc, dict) and RESPONSE_KEYS <= set(doc), "not the response envelope" + where
    assert doc["infcode"] in (0, -2), "infcode (−1 is a fault of ours)" + where
    assert isinstance(doc["output"], dict) or (doc["infcode"] == 0 and isinstance(doc["output"], list)), \
        "output (an object; 5204's rows a list)" + where
    if r.status_code == 401:
        assert doc["infcode"] == -2, "401 with infcode" + where
    if doc["infcode"] == -2:
        assert isinstance(doc["err_msg"], str) and FIELD_PREFIX.match(doc["err_msg"]), "err_msg names no field" + where
        after = world.snapshot()
        changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
        assert not changed, f"refused request wrote {changed}" + where
    else:
        assert doc["err_msg"] in (None, ""), "err_msg on success" + where
        if not may_present:
            table = "credential_presentations"
            assert world.snapshot(table) == {table: before[table]}, "a presentation recorded by a non-1101" + where
    return doc


def infno_of(env: Any, path: str) -> str:
    """The transaction a request names (the envelope's infno, else the one its URL names)."""
    route = institution_paths().route(path)
    by_path = route.infnos[0] if route is not None and route.infnos else ""
    value = env.get("infno") if isinstance(env, dict) else None
    return str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else by_path


def paths_for(infno: str) -> list[str]:
    """Every URL style that reaches ``infno``: the single endpoint, its named path, a base URL + infno."""
    return [CALL_SERVICE, *([PATHS[infno]] if infno in PATHS else []), f"{CALL_SERVICE}/{infno}",
            f"/fsi/hsa/hgs/{infno}"]


ANY_PATH = st.one_of(st.sampled_from([CALL_SERVICE, *sorted(PATHS.values())]),
                     st.sampled_from(INFNOS + ["7777", "2207B"]).map(lambda i: f"{CALL_SERVICE}/{i}"))


def send_transaction(data: st.DataObject, world: World, infno: str) -> None:
    world.refresh()
    input_ = base_input(world, infno)
    swap_ids(data, world, input_)
    input_ = mutate(data, world, input_)
    as_pharmacy = infno in PHARMACY_INFNOS and data.draw(st.integers(0, 5), label="as the pharmacy?") > 0
    env = world.envelope(infno, input_, *((P1, world.p1_sign_no) if as_pharmacy else ()))
    mutate_envelope(data, world, env)
    path = data.draw(st.sampled_from(paths_for(infno)), label="URL style")
    if path != CALL_SERVICE and data.draw(st.booleans(), label="omit infno?"):
        env.pop("infno", None)
    headers = None
    if data.draw(st.integers(0, 7), label="SM2 body signature?") == 0:  # sent as H2, signed over the final envelope
        if env.get("fixmedins_code") == H1[0]:
            env["fixmedins_code"], env["fixmedins_name"] = H2[0], H2[1]
        if env.get("sign_no") == world.sign_no:
            env["sign_no"] = world.h2_sign_no
        world.sign(env)
        headers = sign_headers(H2[3], H2[4])
    body = to_body(data, env)
    note(repro(path, body)[:5000])
    doc = check(world, path, body, headers, may_present=infno_of(env, path) == "1101")
    if doc["infcode"] == 0 and isinstance(env.get("msgid"), str):
        world.sent_msgids.append(env["msgid"])


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("infno", INFNOS)
def test_fuzz_every_transaction(world: World, infno: str) -> None:
    @settings(max_examples=BUDGET[world.backend][0], **SETTINGS)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        send_transaction(data, world, infno)

    run()


def test_fuzz_random_envelopes(world: World) -> None:
    envelope_values = st.one_of(json_values, st.sampled_from(INFNOS), strings)

    @settings(max_examples=BUDGET[world.backend][1], **SETTINGS)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        env: dict[str, Any] = data.draw(st.dictionaries(
            st.sampled_from(sorted(STRING_FIELDS) + ["input"]), envelope_values, max_size=8), label="envelope")
        if data.draw(st.booleans(), label="plausible core?"):  # reach past the envelope checks more often
            env.setdefault("infno", data.draw(st.sampled_from(INFNOS), label="infno"))
            env.setdefault("msgid", world.msgid())
            env.setdefault("fixmedins_code", H1[0])
            env.setdefault("sign_no", world.sign_no)
        env.setdefault("input", data.draw(st.one_of(json_values, json_values.map(json.dumps)), label="input"))
        path = data.draw(ANY_PATH, label="path")
        headers = None
        header_fault = data.draw(st.sampled_from(["none"] * 6 + ["stale", "forged", "missing", "other paasid"]),
                                 label="header fault")
        if header_fault == "stale":
            headers = sign_headers(H1[3], H1[4], now=datetime.now(LOCAL_TZ) - timedelta(hours=1))
        elif header_fault == "forged":
            headers = sign_headers(H1[3], "not-the-token")
        elif header_fault == "missing":
            headers = {k: v for k, v in sign_headers(H1[3], H1[4]).items() if k != "x-tif-nonce"}
        elif header_fault == "other paasid":
            headers = sign_headers(H2[3], H2[4])
        body = to_body(data, env)
        note(repro(path, body)[:5000])
        doc = check(world, path, body, headers, may_present=infno_of(env, path) == "1101")
        if header_fault != "none":
            assert doc["infcode"] == -2

    run()


RAW_BODIES = [b"", b" ", b"null", b"0", b"[]", b'"x"', b"{", b"}", b"{}", b'{"input": NaN}', b"\xef\xbb\xbf{}",
              b"\xff\xfe{\x00}\x00", b'{"infno": "9001", "infno": 2207}', b"[" * 100_000 + b"]" * 100_000,
              b'{"input": ' + b"{\"a\": " * 50_000 + b"1" + b"}" * 50_001,
              b'{"infno": "9001", "msgid": ' + b"1" * 5000 + b', "fixmedins_code": "H99990100001", "input": {}}',
              b'{"infno": "9001", "msgid": "M", "fixmedins_code": "H99990100001", "input": {"signIn": {"opter_no": '
              + b"1" * 5000 + b"}}}", b'{"infno": "\xff\xfe", "input": {}}', b"\x00" * 64]


def test_fuzz_raw_bodies(world: World) -> None:
    @settings(max_examples=BUDGET[world.backend][2], **SETTINGS)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        body = data.draw(st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=300),
                                   json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())), label="body")
        if data.draw(st.booleans(), label="truncate a valid envelope?"):
            env = world.envelope(data.draw(st.sampled_from(INFNOS), label="infno"), base_input(world, "2207"))
            full = json.dumps(env).encode()
            body = full[: data.draw(st.integers(0, 10**6), label="cut") % len(full)]
        path = data.draw(ANY_PATH, label="path")
        check(world, path, body)

    run()


def test_ledger_invariants_hold_after_fuzzing(world: World) -> None:
    """Runs after the fuzzing tests of its backend (pytest groups tests by the module-scoped fixture)."""
    with world.platform.factory() as session:
        assert check_ledger(session) == []
