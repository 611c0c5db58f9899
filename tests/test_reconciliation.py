"""Reconciliation (3201 totals, 9101/3202/9102 detail file), on SQLite and PostgreSQL.

Settlements are made with the real SettlementService on the demo data, on fixed Shanghai days:
day 1 (2026-03-10): at H1 S1 (employee, 310), S2 (retiree, 310), S3 (resident, 390: fund and cash pay);
at H2 S4 (employee).
day 2 (2026-03-11): at H1 S2 is cancelled (C2, negative amounts, refd_setl_flag 1).
Every declared total below is summed from the settlement outputs, so the tests check the rules, not the
adjudication.
"""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from medpay.adapters.crypto import FieldCipher
from medpay.adapters.db.file_tables import InterfaceFileRow
from medpay.adapters.policy_files import builtin_policies
from medpay.api.institution import reconciliation_handlers  # noqa: F401  (registers 3201/3202/9101/9102)
from medpay.api.institution.envelope import Envelope
from medpay.api.institution.transactions import HANDLERS, Call
from medpay.api.platform import Platform
from medpay.money import format_yuan
from medpay.services import demo, reconciliation
from medpay.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from medpay.services.gateway_auth import GatewayAuth
from medpay.services.persons import PersonService
from medpay.services.reconciliation import ReconciliationService, detail_file, read_result_file
from medpay.services.settlement import FeeLineInput, SettleRequest, SettlementService
from medpay.services.sign_in import SignInService

H1, H2 = "H99990100001", "H99990100002"
EMP, RETIRED, RESIDENT = "99990100000001", "99990100000002", "99990100000005"
OPTINS = "999901"
DAY1, DAY2, DAY3 = "2026-03-10", "2026-03-11", "2026-03-12"


class Clock:
    """Every reading one second later; ``jump`` moves to another time."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def jump(self, to: datetime) -> None:
        self.now = to


def utc(local_day: str, hour: int = 9) -> datetime:
    """``hour`` o'clock in Shanghai on ``local_day`` (UTC+8), as UTC."""
    return datetime.fromisoformat(local_day).replace(hour=hour, tzinfo=timezone(timedelta(hours=8))).astimezone(timezone.utc)


class World:
    def __init__(self, factory, clock: Clock, cipher: FieldCipher):
        self.factory = factory
        self.clock = clock
        self.svc = SettlementService(factory, builtin_policies(), cipher, clock=clock)
        self.rec = ReconciliationService(factory, clock)
        self.out: dict[str, dict[str, Any]] = {}

    def settle(self, name: str, inst: str, psn_no: str, lines: list[FeeLineInput]) -> dict[str, Any]:
        visit = self.svc.register_visit(inst, psn_no, "11")
        self.svc.upload_fees(inst, visit.mdtrt_id, lines)
        out = self.svc.settle(SettleRequest(inst, f"MSG-{name}", visit.mdtrt_id))
        self.out[name] = out["setlinfo"]
        return out["setlinfo"]

    def cancel(self, name: str, inst: str, of: str) -> dict[str, Any]:
        out = self.svc.cancel(inst, f"MSG-{name}", self.out[of]["setl_id"])
        self.out[name] = out["setlinfo"]
        return out["setlinfo"]

    def sums(self, *names: str) -> dict[str, str]:
        return {k: format_yuan(sum(self.out[n][k] for n in names))
                for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay")}

    def row(self, name: str, **change: Any) -> tuple[str, ...]:
        """The 7-column file line of a settlement as the HIS would write it."""
        info = self.out[name]
        line = {"setl_id": info["setl_id"], "mdtrt_id": info["mdtrt_id"], "psn_no": info["psn_no"],
                "medfee_sumamt": format_yuan(info["medfee_sumamt"]), "fund_pay_sumamt": format_yuan(info["fund_pay_sumamt"]),
                "acct_pay": format_yuan(info["acct_pay"]), "refd_setl_flag": "1" if info["medfee_sumamt"] < 0 else "0"}
        line.update(change)
        return tuple(line[c] for c in reconciliation.DETAIL_COLUMNS)

    def files(self) -> int:
        with self.factory() as s:
            return s.scalar(select(func.count()).select_from(InterfaceFileRow))


@pytest.fixture
def world(session_factory, cipher) -> World:
    demo.seed(session_factory, cipher)
    w = World(session_factory, Clock(utc(DAY1)), cipher)
    w.settle("S1", H1, EMP, [FeeLineInput("1", "XM01AEB002", "2", "30.50", "61.00")])
    w.settle("S2", H1, RETIRED, [FeeLineInput("1", "002101000010000", "1", "25.00", "25.00"),
                                 FeeLineInput("2", "XJ01CAA001", "3", "12.40", "37.20")])
    w.settle("S3", H1, RESIDENT, [FeeLineInput("1", "002100000020000", "1", "280.00", "280.00"),
                                  FeeLineInput("2", "XM01AEB002", "1", "30.50", "30.50")])
    assert w.out["S3"]["fund_pay_sumamt"] > 0 and w.out["S3"]["psn_cash_pay"] > 0
    w.settle("S4", H2, EMP, [FeeLineInput("1", "XJ01CAA001", "1", "12.40", "12.40")])
    w.clock.jump(utc(DAY2))
    w.cancel("C2", H1, "S2")
    return w


def totals(w: World, names: tuple[str, ...], *, inst: str = H1, insutype: str = "310", begn: str = DAY1,
           end: str = DAY1, refd: str = "0", cnt: Any = None, optins: str = OPTINS, **override: Any) -> dict[str, str]:
    s = w.sums(*names) if names else {k: "0.00" for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
    args = dict(medfee_sumamt=s["medfee_sumamt"], fund_pay_sumamt=s["fund_pay_sumamt"], acct_pay=s["acct_pay"],
                fixmedins_setl_cnt=len(names) if cnt is None else cnt)
    args.update(override)
    return w.rec.totals(inst, insutype, "11", optins, begn, end, refd_setl_flag=refd, **args)["stmtinfo"]


def upload(w: World, rows: list[tuple[str, ...]], inst: str = H1) -> str:
    return w.rec.upload(inst, "detail.zip", base64.b64encode(detail_file(rows)).decode())


def details(w: World, file_qury_no: str, names: tuple[str, ...], *, inst: str = H1, begn: str = DAY1,
            end: str = DAY2, **override: Any) -> dict[str, Any]:
    s = w.sums(*names)
    args = dict(medfee_sumamt=s["medfee_sumamt"], fund_pay_sumamt=s["fund_pay_sumamt"],
                cash_payamt=s["psn_cash_pay"], fixmedins_setl_cnt=len(names))
    args.update(override)
    return w.rec.details(inst, file_qury_no, OPTINS, "11", begn, end, **args)


def result_rows(w: World, out: dict[str, Any], inst: str = H1) -> dict[str, dict[str, str]]:
    rows = read_result_file(w.rec.download(inst, out["fileinfo"]["file_qury_no"]))
    return {r["setl_id"]: r for r in rows}


def refused(w: World, error: type[ServiceError], field: str, call, match: str = "") -> ServiceError:
    before = w.files()
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error and info.value.field == field, info.value
    assert match in str(info.value), info.value
    assert w.files() == before
    return info.value


ALL_H1 = ("S1", "S2", "S3", "C2")  # H1's records of day 1..2, clr_type 11, all insutypes


# ------------------------------------------------------------------------------------------------ 3201


def test_totals_balanced(world):
    info = totals(world, ("S1", "S2"))
    assert info["stmt_rslt"] == "0" and info["setl_optins"] == OPTINS
    assert info["stmt_rslt_dscr"].startswith("平") and "2 笔" in info["stmt_rslt_dscr"]
    assert totals(world, ("S3",), insutype="390")["stmt_rslt"] == "0"
    # amounts may arrive as numbers; H2's settlement is H2's alone
    s4 = world.sums("S4")
    assert world.rec.totals(H2, "310", "11", OPTINS, DAY1, DAY1, float(s4["medfee_sumamt"]),
                            float(s4["fund_pay_sumamt"]), float(s4["acct_pay"]), 1, "0")["stmtinfo"]["stmt_rslt"] == "0"
    # nothing in another clearing region
    assert totals(world, (), optins="999902")["stmt_rslt"] == "0"


def test_totals_with_refunds(world):
    # "0": settlements only — S2 still counts on day 1 and the day-2 cancellation is left out
    assert totals(world, ("S1", "S2"), end=DAY2)["stmt_rslt"] == "0"
    # "1": every record, net; the cancellation is one record with negative amounts
    assert totals(world, ("S1", "S2", "C2"), end=DAY2, refd="1")["stmt_rslt"] == "0"
    assert totals(world, ("C2",), begn=DAY2, end=DAY2, refd="1")["stmt_rslt"] == "0"
    # S2 and its cancellation net to nothing: the amounts are S1's, the records three
    assert totals(world, ("S1",), end=DAY2, refd="1", cnt=3)["stmt_rslt"] == "0"


def test_totals_unbalanced_names_the_difference(world):
    s = world.sums("S1", "S2")
    more = format_yuan(world.out["S1"]["medfee_sumamt"] + world.out["S2"]["medfee_sumamt"] + 100)
    info = totals(world, ("S1", "S2"), medfee_sumamt=more, cnt=3)
    assert info["stmt_rslt"] == "1"
    dscr = info["stmt_rslt_dscr"]
    assert f"医疗费总额不符: 医院 {more}, 医保 {s['medfee_sumamt']}, 差额 1.00" in dscr
    assert "结算笔数不符: 医院 3 笔, 医保 2 笔" in dscr
    assert "基金支付总额" not in dscr and "个人账户支出" not in dscr
    s3 = world.out["S3"]
    info = totals(world, ("S3",), insutype="390", fund_pay_sumamt=format_yuan(s3["fund_pay_sumamt"] - 1))
    assert info["stmt_rslt"] == "1" and info["stmt_rslt_dscr"].endswith(
        f"基金支付总额不符: 医院 {format_yuan(s3['fund_pay_sumamt'] - 1)}, 医保 {format_yuan(s3['fund_pay_sumamt'])}, 差额 -0.01")
    # refunds left out by the HIS but asked for
    info = totals(world, ("S1", "S2"), end=DAY2, refd="1")
    assert info["stmt_rslt"] == "1" and "结算笔数不符: 医院 2 笔, 医保 3 笔" in info["stmt_rslt_dscr"]


def test_totals_reversed_cancellation_is_no_record(world):
    world.cancel("C1", H1, "S1")
    world.svc.reverse(H1, "MSG-R1", "MSG-C1", "2208")  # 2601 voids the cancellation: S1 stands
    assert totals(world, ("S1", "S2", "C2"), end=DAY2, refd="1")["stmt_rslt"] == "0"


@pytest.mark.parametrize("override, field", [
    ({"medfee_sumamt": "abc"}, "medfee_sumamt"),
    ({"fund_pay_sumamt": "1.001"}, "fund_pay_sumamt"),
    ({"acct_pay": None}, "acct_pay"),
    ({"fixmedins_setl_cnt": "-1"}, "fixmedins_setl_cnt"),
    ({"fixmedins_setl_cnt": "two"}, "fixmedins_setl_cnt"),
    ({"refd": "2"}, "refd_setl_flag"),
    ({"begn": "2026/03/10"}, "stmt_begndate"),
    ({"begn": DAY2, "end": DAY1}, "stmt_enddate"),
    ({"insutype": ""}, "insutype"),
])
def test_totals_bad_input(world, override, field):
    with pytest.raises(Invalid) as info:
        totals(world, ("S1", "S2"), **override)
    assert info.value.field == field, info.value


# ------------------------------------------------------------------------------------------------ 3202


def test_details_balanced(world):
    rows = [world.row(n) for n in ALL_H1]
    no = upload(world, rows)
    out = details(world, no, ALL_H1)
    assert out["stmtinfo"]["stmt_rslt"] == "0", out
    info = out["fileinfo"]
    assert info["file_qury_no"] != no and info["filename"] == f"{info['file_qury_no']}.zip" and info["dld_endtime"]
    with zipfile.ZipFile(io.BytesIO(world.rec.download(H1, info["file_qury_no"]))) as zf:
        assert zf.namelist() == [f"{info['file_qury_no']}.txt"]
    result = result_rows(world, out)
    assert set(result) == {world.out[n]["setl_id"] for n in ALL_H1}
    for name in ALL_H1:
        r = result[world.out[name]["setl_id"]]
        assert (r["stmt_rslt"], r["memo"], r["msgid"]) == ("0", "", f"MSG-{name}")
        assert r["medfee_sumamt"] == format_yuan(world.out[name]["medfee_sumamt"])
    c2 = result[world.out["C2"]["setl_id"]]
    assert c2["refd_setl_flag"] == "1" and c2["medfee_sumamt"].startswith("-")
    # the HIS downloads the uploaded file too, unchanged
    assert read_zip(world.rec.download(H1, no)) == "".join("\t".join(r) + "\n" for r in rows)


def read_zip(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        return zf.read(zf.infolist()[0]).decode()


def test_details_rows_missing_on_each_side(world):
    fake = ("99999999999999999999", "M0", EMP, "10.00", "5.00", "0.00", "0")
    no = upload(world, [world.row("S2"), world.row("S3"), world.row("C2"), fake])
    out = details(world, no, ALL_H1)
    assert out["stmtinfo"]["stmt_rslt"] == "1"
    assert "明细 2 笔不平" in out["stmtinfo"]["stmt_rslt_dscr"]
    result = result_rows(world, out)
    hosp = result["99999999999999999999"]
    assert (hosp["stmt_rslt"], hosp["memo"], hosp["msgid"], hosp["medfee_sumamt"]) == ("1", "医院有医保无", "", "10.00")
    ours = result[world.out["S1"]["setl_id"]]
    assert (ours["stmt_rslt"], ours["memo"], ours["msgid"]) == ("1", "医保有医院无", "MSG-S1")
    assert ours["medfee_sumamt"] == "61.00" and ours["psn_no"] == EMP
    # the HIS's settlement outside the period or of another institution is not ours to match
    no = upload(world, [world.row(n) for n in ALL_H1] + [world.row("S4")])
    result = result_rows(world, details(world, no, ALL_H1))
    assert result[world.out["S4"]["setl_id"]]["memo"] == "医院有医保无"  # H2's: nothing revealed
    no = upload(world, [world.row(n) for n in ("S1", "S2", "S3", "C2")])
    result = result_rows(world, details(world, no, ("S1", "S2", "S3"), end=DAY1))
    assert result[world.out["C2"]["setl_id"]]["memo"].startswith("医院有医保无 (医保结算时间 2026-03-11")


def test_details_amount_differs(world):
    s3 = world.out["S3"]
    changed = format_yuan(s3["medfee_sumamt"] + 1)
    no = upload(world, [world.row("S1"), world.row("S2"), world.row("S3", medfee_sumamt=changed), world.row("C2")])
    out = details(world, no, ALL_H1)
    assert out["stmtinfo"]["stmt_rslt"] == "1"
    r = result_rows(world, out)[s3["setl_id"]]
    assert r["stmt_rslt"] == "1"
    assert r["memo"] == f"金额不符: 医疗费总额 医院 {changed}, 医保 {format_yuan(s3['medfee_sumamt'])}"
    assert r["medfee_sumamt"] == format_yuan(s3["medfee_sumamt"])  # ours, for the HIS to correct to


def test_details_cancelled_settlement(world):
    # the HIS knows S2 but missed its cancellation
    no = upload(world, [world.row(n) for n in ("S1", "S2", "S3")])
    result = result_rows(world, details(world, no, ("S1", "S2", "S3")))
    c2 = result[world.out["C2"]["setl_id"]]
    assert (c2["stmt_rslt"], c2["memo"], c2["refd_setl_flag"], c2["msgid"]) == ("1", "医保有医院无", "1", "MSG-C2")
    assert c2["medfee_sumamt"] == format_yuan(world.out["C2"]["medfee_sumamt"])
    assert result[world.out["S2"]["setl_id"]]["stmt_rslt"] == "0"
    # the HIS wrote the cancellation as an ordinary settlement
    no = upload(world, [world.row("S1"), world.row("S2"), world.row("S3"), world.row("C2", refd_setl_flag="0")])
    r = result_rows(world, details(world, no, ALL_H1))[world.out["C2"]["setl_id"]]
    assert r["stmt_rslt"] == "1" and r["memo"] == "退费结算标志不符: 医院 0, 医保 1"


def test_details_header_totals(world):
    no = upload(world, [world.row(n) for n in ALL_H1])
    out = details(world, no, ALL_H1, cash_payamt="0.01", fixmedins_setl_cnt=3)
    dscr = out["stmtinfo"]["stmt_rslt_dscr"]
    assert out["stmtinfo"]["stmt_rslt"] == "1"
    assert "现金支付金额不符: 医院 0.01" in dscr and "结算笔数不符: 医院 3 笔, 医保 4 笔" in dscr
    assert all(r["stmt_rslt"] == "0" for r in result_rows(world, out).values())


def zip_of(members: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("content, field, match", [
    (base64.b64encode(b"setl_id\tmdtrt_id\n").decode(), "file_qury_no", "not a zip"),
    (zip_of({"a.txt": b"", "b.txt": b""}), "file_qury_no", "exactly one .txt"),
    (zip_of({"a.csv": b""}), "file_qury_no", "must hold a .txt"),
    (zip_of({"a.txt": b"1\tM1\tP1\t1.00\t1.00\t0.00\t0\n2\tM2\tP2\t1.00\t1.00\t0.00\n"}), "file row 2", "has 6"),
    (zip_of({"a.txt": b"1\tM1\tP1\t1.00\t1.00\t0.00\t0\t\n"}), "file row 1", "has 8"),
    (zip_of({"a.txt": b"1\tM1\tP1\t1.00\t1.00\t0.00\t0\n\n3\tM3\tP3\tabc\t1.00\t0.00\t0\n"}),
     "file row 3 column 4 (medfee_sumamt)", "not a number"),
    (zip_of({"a.txt": b"1\tM1\tP1\t1.00\t1.005\t0.00\t0\n"}), "file row 1 column 5 (fund_pay_sumamt)", "two decimals"),
    (zip_of({"a.txt": b"1\tM1\tP1\t1.00\t1.00\t0.00\tY\n"}), "file row 1 column 7 (refd_setl_flag)", "0 or 1"),
    (zip_of({"a.txt": b"1\t\tP1\t1.00\t1.00\t0.00\t0\n"}), "file row 1 column 2 (mdtrt_id)", "empty"),
    (zip_of({"a.txt": b"1\tM1\tP1\t1.00\t1.00\t0.00\t0\n1\tM1\tP1\t1.00\t1.00\t0.00\t0\n"}),
     "file row 2 column 1 (setl_id)", "row 1"),
])
def test_details_bad_file(world, content, field, match):
    no = world.rec.upload(H1, "detail.zip", content)
    refused(world, Invalid, field, lambda: details(world, no, ALL_H1), match)


def test_details_file_tolerances(world):
    """A line of column names, CRLF line ends, a UTF-8 BOM and GB18030 are all read."""
    header = "\t".join(reconciliation.DETAIL_COLUMNS)
    lines = [header] + ["\t".join(world.row(n)) for n in ALL_H1]
    body = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
    no = world.rec.upload(H1, "d.zip", zip_of({"dir/detail.txt": body}))
    assert details(world, no, ALL_H1)["stmtinfo"]["stmt_rslt"] == "0"
    no = world.rec.upload(H1, "d.zip", zip_of({"明细.txt": "\n".join(lines).encode("gb18030")}))
    assert details(world, no, ALL_H1)["stmtinfo"]["stmt_rslt"] == "0"


def test_details_bad_header_input(world):
    no = upload(world, [world.row(n) for n in ALL_H1])
    refused(world, Invalid, "cash_payamt", lambda: details(world, no, ALL_H1, cash_payamt="x"))
    refused(world, Invalid, "fixmedins_setl_cnt", lambda: details(world, no, ALL_H1, fixmedins_setl_cnt="1.5"))
    refused(world, Invalid, "stmt_enddate", lambda: details(world, no, ALL_H1, begn=DAY2, end=DAY1))
    refused(world, NotFound, "file_qury_no", lambda: details(world, "nope", ALL_H1))
    out = details(world, no, ALL_H1)  # a result file is not an upload
    refused(world, Invalid, "file_qury_no", lambda: details(world, out["fileinfo"]["file_qury_no"], ALL_H1), "not an upload")


# ------------------------------------------------------------------------------------------------ 9101 / 9102


def test_upload_refusals(world, monkeypatch):
    refused(world, Invalid, "in", lambda: world.rec.upload(H1, "a.zip", "not base64!"), "not base64")
    refused(world, Invalid, "in", lambda: world.rec.upload(H1, "a.zip", ""), "empty")
    refused(world, Invalid, "in", lambda: world.rec.upload(H1, "a.zip", "  \n"), "empty")
    refused(world, Invalid, "in", lambda: world.rec.upload(H1, "a.zip", None), "missing")
    refused(world, Invalid, "filename", lambda: world.rec.upload(H1, "../a.zip", "QUJD"))
    refused(world, Invalid, "filename", lambda: world.rec.upload(H1, "", "QUJD"))
    too_big = base64.b64encode(bytes(reconciliation.MAX_FILE_BYTES + 1)).decode()
    refused(world, Invalid, "in", lambda: world.rec.upload(H1, "a.zip", too_big), "larger than 20 MB")
    monkeypatch.setattr(reconciliation, "MAX_FILE_BYTES", 10)
    refused(world, Invalid, "in", lambda: world.rec.upload(H1, "a.zip", base64.b64encode(bytes(11)).decode()))
    no = world.rec.upload(H1, "a.zip", base64.b64encode(bytes(10)).decode())
    assert world.rec.download(H1, no) == bytes(10)


def test_files_belong_to_their_institution(world):
    no = upload(world, [world.row(n) for n in ALL_H1])
    refused(world, NotFound, "file_qury_no", lambda: world.rec.download(H2, no))  # like an unknown one: no probing
    refused(world, NotFound, "file_qury_no", lambda: world.rec.details(H2, no, OPTINS, "11", DAY1, DAY2, 0, 0, 0, 0))
    out = details(world, no, ALL_H1)
    result_no = out["fileinfo"]["file_qury_no"]
    refused(world, NotFound, "file_qury_no", lambda: world.rec.download(H2, result_no))
    refused(world, NotFound, "file_qury_no", lambda: world.rec.download(H1, "20260310000000deadbeefdeadbeef"))
    assert world.rec.download(H1, result_no)
    # files live a week
    world.clock.jump(utc(DAY1) + reconciliation.FILE_TTL + timedelta(days=2))
    refused(world, NotFound, "file_qury_no", lambda: world.rec.download(H1, result_no), "expired")


def test_a_resent_upload_or_detail_reconciliation_acts_once(world):
    """9101 and 3202 are exactly once by msgid: a resend gets the first answer and stores no second file."""
    content = base64.b64encode(detail_file([world.row(n) for n in ALL_H1])).decode()
    no = world.rec.upload(H1, "d.zip", content, msgid="M9101")
    files = world.files()
    assert world.rec.upload(H1, "d.zip", content, msgid="M9101") == no and world.files() == files
    refused(world, Conflict, "msgid", lambda: world.rec.upload(H1, "other.zip", content, msgid="M9101"))
    first = details(world, no, ALL_H1, msgid="M3202")
    files = world.files()
    assert details(world, no, ALL_H1, msgid="M3202") == first and world.files() == files
    refused(world, Conflict, "msgid", lambda: details(world, no, ALL_H1, msgid="M3202", fixmedins_setl_cnt=9))
    assert details(world, no, ALL_H1, msgid="M3202b")["fileinfo"]["file_qury_no"] != first["fileinfo"]["file_qury_no"]


# ------------------------------------------------------------------------------------------------ handlers


def test_handlers_shapes(world, engine, cipher):
    platform = Platform(engine, world.factory, builtin_policies(), cipher, world.svc, PersonService(world.factory, cipher),
                        SignInService(world.factory), GatewayAuth(world.factory, cipher))

    def call(infno: str, inp: dict[str, Any], inst: str = H1) -> Any:
        return HANDLERS[infno](Call(Envelope(infno, f"M{infno}", inst, inp), inst, platform))

    s = world.sums("S1", "S2")
    out = call("3201", {"data": {"insutype": "310", "clr_type": "11", "setl_optins": OPTINS, "stmt_begndate": DAY1,
                                 "stmt_enddate": DAY1, "medfee_sumamt": s["medfee_sumamt"],
                                 "fund_pay_sumamt": float(s["fund_pay_sumamt"]), "acct_pay": s["acct_pay"],
                                 "fixmedins_setl_cnt": "2", "refd_setl_flag": "0"}})
    assert out["stmtinfo"]["stmt_rslt"] == "0"
    zipped = detail_file([world.row(n) for n in ALL_H1])
    up = call("9101", {"fsUploadIn": {"in": base64.b64encode(zipped).decode(), "filename": "d.zip", "fixmedins_code": H1}})
    assert up["filename"] == "d.zip"
    again = call("9101", {"fsUploadIn": {"in": list(zipped), "filename": "d.zip"}})  # byte array form
    s = world.sums(*ALL_H1)
    out = call("3202", {"data": {"file_qury_no": again["file_qury_no"], "setl_optins": OPTINS, "clr_type": "11",
                                 "stmt_begndate": DAY1, "stmt_enddate": DAY2, "medfee_sumamt": s["medfee_sumamt"],
                                 "fund_pay_sumamt": s["fund_pay_sumamt"], "cash_payamt": s["psn_cash_pay"],
                                 "fixmedins_setl_cnt": 4}})
    assert out["stmtinfo"]["stmt_rslt"] == "0" and set(out["fileinfo"]) == {"file_qury_no", "filename", "dld_endtime"}
    down = call("9102", {"fsDownloadIn": {"file_qury_no": out["fileinfo"]["file_qury_no"],
                                          "filename": out["fileinfo"]["filename"], "fixmedins_code": H1}})
    rows = read_result_file(base64.b64decode(down["content"]))
    assert len(rows) == 4 and down["file_size"] == len(base64.b64decode(down["content"]))
    with pytest.raises(Forbidden) as info:
        call("9101", {"fsUploadIn": {"in": "QUJD", "filename": "d.zip", "fixmedins_code": H2}})
    assert info.value.field == "fsUploadIn.fixmedins_code"
    with pytest.raises(NotFound):
        call("9102", {"fsDownloadIn": {"file_qury_no": up["file_qury_no"]}}, inst=H2)
    with pytest.raises(Invalid) as info:
        call("3201", {"data": {"insutype": "310"}})
    assert info.value.field == "data.clr_type"
