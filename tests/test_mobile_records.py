"""报销记录 and the settlement slip (issue 13, item 6), end to end over HTTP on both backends: a bill paid in the app
is listed with its fund-by-fund split and policy version; a HIS cancel shows as cancelled with its cash refunded;
the year exports as CSV; the slip is a PDF whose Chinese text reads back and whose QR code — decoded from the PDF's
own image — checks out on the platform, while a forged or altered code does not. Pure tests of the check code too.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime, timezone

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from medpay.adapters import qr_images
from medpay.domain.ecert_code import CodeError
from medpay.domain.slip_code import SlipClaims, make_slip_payload, parse_slip
from medpay.services import demo
from tests.helpers_qr import App, EMP, H1, app_code, fen, his_bill, his_client, qr_stack, scan_image
from tests.helpers_server import audit_events

CLAIMS = SlipClaims("S1", "H1", 1_764_000_000, 18000, 12000, 3000, 3000)


def test_a_check_code_verifies_and_any_change_breaks_it() -> None:
    key = Ed25519PrivateKey.generate()
    code = make_slip_payload(key, CLAIMS)
    assert parse_slip(code, key.public_key()) == CLAIMS
    head, body, sig = code.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["k"] = 0  # "I paid nothing"
    altered = ".".join([head, base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode(), sig])
    for bad, kind in ((altered, "signature"), (make_slip_payload(Ed25519PrivateKey.generate(), CLAIMS), "signature"),
                      ("MPSLIP1.x", "format"), ("", "format"), (None, "format"), ("x" * 700, "format"),
                      ("MPBILL1." + code.split(".", 1)[1], "format")):
        with pytest.raises(CodeError) as e:
            parse_slip(bad, key.public_key())
        assert e.value.field == "code" and e.value.kind == kind


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from qr_stack(request.param, tmp_path_factory.mktemp("records"))


def paid_visit(stack, amount: str) -> tuple[App, str, dict]:
    """EMP's visit billed by the HIS and paid in the app; (app, mdtrt_id, the payment's answer)."""
    identity = scan_image(stack, app_code(stack))["data"]
    mdtrt_id = his_bill(stack, identity["ecToken"], amount=amount)
    app = App(stack)
    path = f"/api/v1/mobile/visits/{H1[0]}/{mdtrt_id}"
    paid = app.post(path + "/pay", {"version": app.get(path).json()["version"]})
    assert paid.status_code == 200 and paid.json()["state"] == "captured", paid.text
    return app, mdtrt_id, paid.json()


def test_records_list_the_split_fund_by_fund_and_a_cancel_with_its_refund(stack) -> None:
    app, _mdtrt_id, paid = paid_visit(stack, "12000.00")
    setl_id = paid["setl_id"]
    year = datetime.now(timezone.utc).year
    r = app.get(f"/api/v1/mobile/records?year={year}")
    assert r.status_code == 200, r.text
    mine = next(x for x in r.json()["settlements"] if x["setl_id"] == setl_id)
    split = fen(paid["settlement"]["setlinfo"])
    assert fen(mine)["medfee_sumamt"] == split["medfee_sumamt"] == 1_200_000
    assert fen(mine)["psn_cash_pay"] == split["psn_cash_pay"] and mine["status"] == "standing"
    # setldetail: every fund that paid, the personal account among them (as the interface lists it)
    paid_by_funds = sum(round(d["fund_payamt"] * 100) for d in mine["setldetail"])
    assert paid_by_funds == split["fund_pay_sumamt"] + split["acct_pay"]
    assert mine["setldetail"] and all(d["name"] for d in mine["setldetail"]) and mine["policy_ver"]
    assert r.json()["accumulators"] and audit_events(stack["db_url"], "records.view")

    his_client(stack).cancel_outpatient(setl_id, paid["settlement"]["setlinfo"]["mdtrt_id"], EMP.psn_no)
    after = next(x for x in app.get(f"/api/v1/mobile/records?year={year}").json()["settlements"]
                 if x["setl_id"] == setl_id)
    assert after["status"] == "cancelled" and after["cancelled_at"]
    assert split["psn_cash_pay"] > 0  # a bill this size leaves the patient a cash share to refund
    assert after["cash_refund"] == {"captured": split["psn_cash_pay"] / 100,
                                    "refunded": split["psn_cash_pay"] / 100, "state": "done"}

    told = app.get("/api/v1/mobile/notices").json()  # what happened on the account, newest first
    kinds = [n["kind"] for n in told if n.get("setl_id") in (setl_id, None)]
    assert set(kinds[:2]) == {"refunded", "cancelled"}
    assert "settled" in kinds and "activated" in kinds and [n["at"] for n in told] == sorted(
        (n["at"] for n in told), reverse=True)
    refunded = next(n for n in told if n["kind"] == "refunded" and n["setl_id"] == setl_id)
    assert refunded["amount"] == split["psn_cash_pay"] / 100
    seen = app.get("/api/v1/mobile/accesses").json()  # who was shown this person's data: the hospital, the app
    assert {"institution", "patient"} <= {e["actor_kind"] for e in seen}
    assert any(e["action"] == "records.view" for e in seen) and seen[0]["at"] >= seen[-1]["at"]

    exported = app.get(f"/api/v1/mobile/records.csv?year={year}")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    line = next(x for x in rows if x["setl_id"] == setl_id)
    assert line["medfee_sumamt"] == "12000.00" and line["status"] == "cancelled" and line["fixmedins_name"]


def test_the_slip_reads_back_in_chinese_and_its_qr_code_checks_out(stack) -> None:
    app, _mdtrt_id, paid = paid_visit(stack, "180.00")
    setl_id = paid["setl_id"]
    r = app.get(f"/api/v1/mobile/records/{setl_id}/slip.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    page = PdfReader(io.BytesIO(r.content)).pages[0]
    words = page.extract_text().replace(" ", "").replace("\x00", "")  # pypdf reads the UTF-16 map with NULs
    for expected in ("医疗保障结算单", "不是医疗机构开具的财政电子票据", setl_id, "¥180.00", "演示市第一人民医院"):
        assert expected in words, expected
    assert "王建国" not in words and "王**" in words  # the holder, masked
    [image] = page.images
    check_url = qr_images.decode(image.data)
    assert check_url.startswith(f"{stack['base']}/m/verify?code=MPSLIP1.")
    code = check_url.split("code=", 1)[1]
    checked = httpx.get(f"{stack['base']}/api/v1/mobile/slips/verify", params={"code": code}, timeout=10)
    assert checked.status_code == 200 and checked.json()["genuine"] is True, checked.text
    assert checked.json()["setl_id"] == setl_id and checked.json()["status"] == "standing"
    assert "psn_no" not in checked.json() and "psn_name" not in checked.json()  # nothing of the person
    forged = code[:-4] + ("AAAA" if not code.endswith("AAAA") else "BBBB")
    r = httpx.get(f"{stack['base']}/api/v1/mobile/slips/verify", params={"code": forged}, timeout=10)
    assert r.status_code == 422 and r.json()["error"]["field"] == "code"
    en = app.get(f"/api/v1/mobile/records/{setl_id}/slip.pdf?lang=en")
    english = PdfReader(io.BytesIO(en.content)).pages[0].extract_text().replace(" ", "").replace("\x00", "")
    assert "settlementslip" in english.lower()


def test_another_persons_records_and_slips_are_not_yours(stack) -> None:
    _app, _mdtrt_id, paid = paid_visit(stack, "180.00")
    other = App(stack, demo.PERSONS[1])
    r = other.get(f"/api/v1/mobile/records/{paid['setl_id']}/slip.pdf")
    assert r.status_code == 404 and r.json()["error"]["field"] == "setl_id"
    assert all(x["setl_id"] != paid["setl_id"] for x in other.get("/api/v1/mobile/records").json()["settlements"])
    for path in ("/api/v1/mobile/records?year=1999", "/api/v1/mobile/records/..%2F/slip.pdf"):
        r = other.get(path)
        assert r.status_code in (404, 422) and "Traceback" not in r.text
    r = httpx.get(f"{stack['base']}/api/v1/mobile/records", timeout=10)  # unsigned
    assert r.status_code == 401
