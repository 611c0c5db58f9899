"""Reconciliation with an institution (对账): 3201 totals, 3202 detail file, and the 9101/9102 files.

Settlement records
    Every row of ``settlements`` is one settlement record, dated by its ``setl_time`` (days are Asia/Shanghai
    days): a settlement (2207/2304, ``kind`` settle, refd_setl_flag "0", positive amounts) or a cancellation
    (2208/2305 or a 2601 reversal of a settlement, ``kind`` cancel, refd_setl_flag "1" 退费结算, negative
    amounts). A cancelled settlement stays a record of its own day; its cancellation is a second record of
    the day it happened — so a closed period's totals never change afterwards. A cancellation that a 2601
    reversal voided (``cancelled`` on a cancel row) is no record: it was undone, money included.
    A record belongs to the clearing region ``setl_optins`` = ``setlinfo.clr_optins`` (the person's
    insuplc_admdvs) and carries ``insutype`` and ``clr_type``.

3201 totals, per (insutype, clr_type, setl_optins) and period [stmt_begndate, stmt_enddate]:
    refd_setl_flag "1" (含退费): every record — amounts are net (cancellations negative), and a cancellation
    counts as one record in fixmedins_setl_cnt.  refd_setl_flag "0" (不含退费): settlements only (kind
    settle, including ones cancelled later). Compared: medfee_sumamt, fund_pay_sumamt, acct_pay,
    fixmedins_setl_cnt. stmt_rslt "0" 平 / "1" 不平; stmt_rslt_dscr names each difference in yuan.

3202 details (after a 9101 upload): a zip holding one tab-separated .txt (UTF-8 or GB18030), one record per
    line, 7 columns ``setl_id, mdtrt_id, psn_no, medfee_sumamt, fund_pay_sumamt, acct_pay, refd_setl_flag``
    (yuan; a cancellation is its own line with negative amounts and flag "1"; a first line of column names is
    skipped). Matched by setl_id against every record of the institution in the period, of ``clr_type`` and
    ``setl_optins`` (all insutypes). The header totals (medfee_sumamt, fund_pay_sumamt, cash_payamt =
    psn_cash_pay, fixmedins_setl_cnt) are compared with the net of those records (as 3201 with "1").
    The result is a zip holding ``<file_qury_no>.txt``, no header, UTF-8, one line per record, columns
    ``psn_no, mdtrt_id, setl_id, msgid, stmt_rslt, refd_setl_flag, memo, medfee_sumamt, fund_pay_sumamt,
    acct_pay``: the file's lines in order, then records only we have. Values are ours where we know the
    record (msgid = the HIS's message id of that settlement, for 2601), the hospital's otherwise. memo:
    "" (平), "医院有医保无" (with the reason when the setl_id is one of ours outside the scope), "医保有医院无",
    "金额不符: …", "就诊ID不符: …", "人员编号不符: …", "退费结算标志不符: …".

Files live ``FILE_TTL`` after they were stored (``dld_endtime``); only their institution may use them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import secrets
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from medpay.adapters.db.base import utcnow
from medpay.adapters.db.file_tables import InterfaceFileRow
from medpay.adapters.db.tables import SettlementRow
from medpay.local_time import LOCAL_TZ, format_local, local_date
from medpay.money import MoneyError, format_yuan, parse_yuan
from medpay.services import records
from medpay.services import idempotency
from medpay.services.errors import Invalid, NotFound
from medpay.services.unit_of_work import UnitOfWork, unit_of_work

FILE_TTL = timedelta(days=7)
MAX_FILE_BYTES = 20 * 1024 * 1024  # an uploaded file (the zip), after base64 decoding
MAX_TXT_BYTES = 100 * 1024 * 1024  # the .txt inside it, uncompressed
MAX_FILENAME = 200
BALANCED, UNBALANCED = "0", "1"
DETAIL_COLUMNS = ("setl_id", "mdtrt_id", "psn_no", "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "refd_setl_flag")
RESULT_COLUMNS = ("psn_no", "mdtrt_id", "setl_id", "msgid", "stmt_rslt", "refd_setl_flag", "memo",
                  "medfee_sumamt", "fund_pay_sumamt", "acct_pay")
ROW_AMOUNTS = (("medfee_sumamt", "医疗费总额"), ("fund_pay_sumamt", "基金支付总额"), ("acct_pay", "个人账户支出"))
HOSPITAL_ONLY, OURS_ONLY = "医院有医保无", "医保有医院无"
_IN_CLAUSE = 500


@dataclass(frozen=True)
class Record:
    """One settlement record as reconciliation sees it (amounts in fen)."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    msgid: str
    refd_setl_flag: str  # "0" settlement, "1" cancellation
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    psn_cash_pay: int
    setl_time: datetime
    insutype: str
    clr_type: str
    setl_optins: str


@dataclass(frozen=True)
class DetailRow:
    """One line of an uploaded 3202 file (amounts in fen); ``line`` is its 1-based line number."""

    line: int
    setl_id: str
    mdtrt_id: str
    psn_no: str
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int
    refd_setl_flag: str


@dataclass(frozen=True)
class StoredFile:
    file_qury_no: str
    filename: str
    kind: str  # upload | download
    content: bytes
    created_at: datetime
    dld_endtime: datetime


class ReconciliationService:
    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock

    # ---------------------------------------------------------------- 3201

    def totals(self, fixmedins_code: str, insutype: str, clr_type: str, setl_optins: str, begndate: Any,
               enddate: Any, medfee_sumamt: Any, fund_pay_sumamt: Any, acct_pay: Any, fixmedins_setl_cnt: Any,
               refd_setl_flag: Any) -> dict[str, Any]:
        insutype = _required(insutype, "insutype")
        clr_type = _required(clr_type, "clr_type")
        setl_optins = _required(setl_optins, "setl_optins")
        start, end = _period(begndate, enddate)
        declared = {"medfee_sumamt": _amount(medfee_sumamt, "medfee_sumamt"),
                    "fund_pay_sumamt": _amount(fund_pay_sumamt, "fund_pay_sumamt"),
                    "acct_pay": _amount(acct_pay, "acct_pay")}
        count = _count(fixmedins_setl_cnt, "fixmedins_setl_cnt")
        refd = _flag(refd_setl_flag, "refd_setl_flag")
        session = self.factory()
        try:
            records.institution(session, fixmedins_code)
            recs = self._records(session, fixmedins_code, start, end, insutype=insutype, clr_type=clr_type,
                                 setl_optins=setl_optins)
        finally:
            session.close()
        if refd == "0":
            recs = [r for r in recs if r.refd_setl_flag == "0"]
        ours = {k: sum(getattr(r, k) for r in recs) for k in declared}
        diffs = [_amount_diff(label, declared[k], ours[k]) for k, label in ROW_AMOUNTS if declared[k] != ours[k]]
        if count != len(recs):
            diffs.append(f"结算笔数不符: 医院 {count} 笔, 医保 {len(recs)} 笔")
        scope = (f"{local_date(start).isoformat()} 至 {local_date(end - timedelta(seconds=1)).isoformat()} 险种 {insutype} 清算类别 {clr_type} "
                 f"清算经办机构 {setl_optins} {'含退费' if refd == '1' else '不含退费'}")
        if diffs:
            rslt, dscr = UNBALANCED, f"不平 ({scope}): " + "; ".join(diffs)
        else:
            rslt, dscr = BALANCED, (f"平 ({scope}): {len(recs)} 笔, 医疗费总额 {format_yuan(ours['medfee_sumamt'])}, "
                                    f"基金支付总额 {format_yuan(ours['fund_pay_sumamt'])}, "
                                    f"个人账户支出 {format_yuan(ours['acct_pay'])}")
        return {"stmtinfo": {"setl_optins": setl_optins, "stmt_rslt": rslt, "stmt_rslt_dscr": dscr}}

    # ---------------------------------------------------------------- 9101 / 9102

    def upload(self, fixmedins_code: str, filename: Any, base64_content: Any, msgid: str | None = None) -> str:
        """9101: store a file of the institution; returns its ``file_qury_no``. With ``msgid``, exactly once:
        a resent upload gets the first file_qury_no back and stores no second copy."""
        name = _filename(filename)
        data = _decode_base64(base64_content)

        def work(uow: UnitOfWork) -> dict:
            records.institution(uow.session, fixmedins_code)
            return {"file_qury_no": self._store(uow.session, fixmedins_code, name, data, "upload").file_qury_no}

        body = {"filename": name, "sha256": hashlib.sha256(data).hexdigest()}
        return idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "file_upload", body,
                                 work, look_first=True)["file_qury_no"]

    def file(self, fixmedins_code: str, file_qury_no: Any) -> StoredFile:
        """A file of the institution (upload or 3202 result), while it is available."""
        session = self.factory()
        try:
            return self._own_file(session, fixmedins_code, file_qury_no)
        finally:
            session.close()

    def purge_expired_files(self) -> int:
        """Delete the files (uploads and 3202 results) past their ``FILE_TTL``: nobody may fetch them any more."""
        with unit_of_work(self.factory) as uow:
            result = uow.session.execute(delete(InterfaceFileRow).where(
                InterfaceFileRow.created_at < self.clock() - FILE_TTL))
            return result.rowcount or 0

    def download(self, fixmedins_code: str, file_qury_no: Any) -> bytes:
        """9102: the content of a file of the institution."""
        return self.file(fixmedins_code, file_qury_no).content

    # ---------------------------------------------------------------- 3202

    def details(self, fixmedins_code: str, file_qury_no: Any, setl_optins: str, clr_type: str, begndate: Any,
                enddate: Any, medfee_sumamt: Any, fund_pay_sumamt: Any, cash_payamt: Any,
                fixmedins_setl_cnt: Any, msgid: str | None = None) -> dict[str, Any]:
        """3202: compare the uploaded detail file with our records; store the result file for 9102. With
        ``msgid``, exactly once: a resent 3202 gets the first answer and result file back."""
        setl_optins = _required(setl_optins, "setl_optins")
        clr_type = _required(clr_type, "clr_type")
        start, end = _period(begndate, enddate)
        declared = {"medfee_sumamt": _amount(medfee_sumamt, "medfee_sumamt"),
                    "fund_pay_sumamt": _amount(fund_pay_sumamt, "fund_pay_sumamt"),
                    "psn_cash_pay": _amount(cash_payamt, "cash_payamt")}
        count = _count(fixmedins_setl_cnt, "fixmedins_setl_cnt")
        # the file is parsed and compared outside any write transaction (it may be large); only storing
        # the result takes the write lock
        upload = self.file(fixmedins_code, file_qury_no)
        if upload.kind != "upload":
            raise Invalid("file_qury_no", f"{upload.file_qury_no!r} is a result file, not an upload (9101)")
        rows = parse_detail_file(upload.content)
        session = self.factory()
        try:
            recs = self._records(session, fixmedins_code, start, end, clr_type=clr_type, setl_optins=setl_optins)
            ours = {r.setl_id: r for r in recs}
            unknown = [row.setl_id for row in rows if row.setl_id not in ours]
            elsewhere = self._own_rows(session, fixmedins_code, unknown)
        finally:
            session.close()
        result: list[tuple[str, ...]] = []
        unbalanced = 0
        for row in rows:
            rec = ours.pop(row.setl_id, None)
            if rec is None:
                line = _hospital_only(row, elsewhere.get(row.setl_id), (start, end, clr_type, setl_optins))
            else:
                line = _matched(row, rec)
            unbalanced += line[4] == UNBALANCED
            result.append(line)
        for rec in ours.values():  # records the file doesn't have, in time order
            result.append(_result_line(rec, rec, UNBALANCED, OURS_ONLY))
            unbalanced += 1
        totals = {k: sum(getattr(r, k) for r in recs) for k in declared}
        labels = {"medfee_sumamt": "医疗费总额", "fund_pay_sumamt": "基金支付总额", "psn_cash_pay": "现金支付金额"}
        diffs = [_amount_diff(labels[k], declared[k], totals[k]) for k in declared if declared[k] != totals[k]]
        if count != len(recs):
            diffs.append(f"结算笔数不符: 医院 {count} 笔, 医保 {len(recs)} 笔")
        if unbalanced:
            diffs.append(f"明细 {unbalanced} 笔不平")
        summary = (f"医院文件 {len(rows)} 笔, 医保 {len(recs)} 笔, 明细平 {len(result) - unbalanced} 笔, "
                   f"不平 {unbalanced} 笔")
        no = self._new_no()
        content = _result_zip(result, f"{no}.txt", self.clock())
        rslt = UNBALANCED if diffs else BALANCED
        dscr = ("不平: " + "; ".join(diffs) if diffs else "平") + f" ({summary})"

        def work(uow: UnitOfWork) -> dict:
            stored = self._store(uow.session, fixmedins_code, f"{no}.zip", content, "download", no)
            info = {"file_qury_no": stored.file_qury_no, "filename": stored.filename,
                    "dld_endtime": format_local(stored.dld_endtime)}
            return {"fileinfo": info, "stmtinfo": {"setl_optins": setl_optins, "stmt_rslt": rslt, "stmt_rslt_dscr": dscr}}

        body = {"file_qury_no": upload.file_qury_no, "setl_optins": setl_optins, "clr_type": clr_type,
                "period": [start.isoformat(), end.isoformat()], "declared": declared, "count": count}
        return idempotency.write(self.factory, self.clock, fixmedins_code, msgid, "stmt_detail", body, work,
                                 look_first=True)

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _records(session: Session, fixmedins_code: str, start: datetime, end: datetime, *, insutype: str = "",
                 clr_type: str = "", setl_optins: str = "") -> list[Record]:
        query = select(SettlementRow).where(SettlementRow.fixmedins_code == fixmedins_code,
                                            SettlementRow.setl_time >= start, SettlementRow.setl_time < end)
        if insutype:
            query = query.where(SettlementRow.insutype == insutype)
        if clr_type:
            query = query.where(SettlementRow.clr_type == clr_type)
        out = []
        for row in session.execute(query.order_by(SettlementRow.setl_time, SettlementRow.setl_id)).scalars():
            if _is_record(row) and (not setl_optins or _optins(row) == setl_optins):
                out.append(_record(row))
        return out

    @staticmethod
    def _own_rows(session: Session, fixmedins_code: str, setl_ids: list[str]) -> dict[str, SettlementRow]:
        found: dict[str, SettlementRow] = {}
        for i in range(0, len(setl_ids), _IN_CLAUSE):
            chunk = setl_ids[i:i + _IN_CLAUSE]
            query = select(SettlementRow).where(SettlementRow.fixmedins_code == fixmedins_code,
                                                SettlementRow.setl_id.in_(chunk))
            found.update((r.setl_id, r) for r in session.execute(query).scalars())
        return found

    def _own_file(self, session: Session, fixmedins_code: str, file_qury_no: Any) -> StoredFile:
        no = _required(file_qury_no, "file_qury_no")
        row = session.get(InterfaceFileRow, no)
        if row is None or row.fixmedins_code != fixmedins_code:  # another's: refused like an unknown one
            raise NotFound("file_qury_no", f"no file {no!r} at this institution")
        stored = _stored(row)
        if self.clock() > stored.dld_endtime:
            raise NotFound("file_qury_no", f"file {no!r} expired at {format_local(stored.dld_endtime)}; upload or reconcile again")
        return stored

    def _new_no(self) -> str:
        """A file_qury_no: local time to the second, then 16 random hex digits (30 characters, unguessable)."""
        return self.clock().astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S") + secrets.token_hex(8)

    def _store(self, session: Session, fixmedins_code: str, filename: str, content: bytes, kind: str,
               no: str | None = None) -> StoredFile:
        no = no or self._new_no()
        row = InterfaceFileRow(file_qury_no=no, fixmedins_code=fixmedins_code, filename=filename, content=content,
                               created_at=self.clock(), kind=kind)
        session.add(row)
        session.flush()
        return _stored(row)


# -------------------------------------------------------------------------------------- the detail file


def parse_detail_file(content: bytes) -> list[DetailRow]:
    """The rows of an uploaded 3202 file. Raises Invalid naming the file, row or column at fault."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise Invalid("file_qury_no", "the uploaded file is not a zip archive") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(members) != 1:
        names = ", ".join(m.filename for m in members) or "nothing"
        raise Invalid("file_qury_no", f"the zip must hold exactly one .txt file; it holds {names}")
    member = members[0]
    if not member.filename.lower().endswith(".txt"):
        raise Invalid("file_qury_no", f"the zip must hold a .txt file; it holds {member.filename!r}")
    if member.file_size > MAX_TXT_BYTES:
        raise Invalid("file_qury_no", f"{member.filename} is larger than {MAX_TXT_BYTES // 2**20} MB uncompressed")
    try:
        with archive.open(member) as fh:
            data = fh.read(MAX_TXT_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, zlib.error) as e:
        raise Invalid("file_qury_no", f"can't read {member.filename} from the zip: {e}") from None
    if len(data) > MAX_TXT_BYTES:
        raise Invalid("file_qury_no", f"{member.filename} is larger than {MAX_TXT_BYTES // 2**20} MB uncompressed")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise Invalid("file_qury_no", f"{member.filename} is neither UTF-8 nor GB18030 text") from None
    rows: list[DetailRow] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if not rows and not first_line and cells[0].lower() == "setl_id":
            continue  # a line of column names
        if len(cells) != len(DETAIL_COLUMNS):
            raise Invalid(f"file row {number}", f"has {len(cells)} tab-separated columns; expected "
                                                f"{len(DETAIL_COLUMNS)}: {', '.join(DETAIL_COLUMNS)}")
        values: dict[str, Any] = {}
        for col, (name, cell) in enumerate(zip(DETAIL_COLUMNS, cells), 1):
            where = f"file row {number} column {col} ({name})"
            if name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay"):
                try:
                    values[name] = parse_yuan(cell, where, allow_negative=True)
                except MoneyError as e:
                    raise Invalid(where, e.problem) from None
            elif name == "refd_setl_flag":
                if cell not in ("0", "1"):
                    raise Invalid(where, f"must be 0 or 1; got {cell!r}")
                values[name] = cell
            else:
                if not cell:
                    raise Invalid(where, "is empty")
                if len(cell) > 30:
                    raise Invalid(where, "is longer than 30 characters")
                values[name] = cell
        if values["setl_id"] in first_line:
            raise Invalid(f"file row {number} column 1 (setl_id)",
                          f"{values['setl_id']!r} already appears on row {first_line[values['setl_id']]}")
        first_line[values["setl_id"]] = number
        rows.append(DetailRow(line=number, **values))
    return rows


def detail_file(rows: Iterable[tuple[Any, ...]], name: str = "detail.txt") -> bytes:
    """A 3202 upload (zip of one tab-separated .txt) from 7-tuples; for HIS clients and tests."""
    text = "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, text.encode("utf-8"))
    return buf.getvalue()


def read_result_file(content: bytes) -> list[dict[str, str]]:
    """The rows of a 3202 result file (from 9102), keyed by RESULT_COLUMNS."""
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        (member,) = zf.infolist()
        text = zf.read(member).decode("utf-8")
    return [dict(zip(RESULT_COLUMNS, line.split("\t"))) for line in text.split("\n") if line]


# -------------------------------------------------------------------------------------- comparison


def _matched(row: DetailRow, rec: Record) -> tuple[str, ...]:
    problems = []
    if row.mdtrt_id != rec.mdtrt_id:
        problems.append(f"就诊ID不符: 医院 {row.mdtrt_id}, 医保 {rec.mdtrt_id}")
    if row.psn_no != rec.psn_no:
        problems.append(f"人员编号不符: 医院 {row.psn_no}, 医保 {rec.psn_no}")
    if row.refd_setl_flag != rec.refd_setl_flag:
        problems.append(f"退费结算标志不符: 医院 {row.refd_setl_flag}, 医保 {rec.refd_setl_flag}")
    amounts = [f"{label} 医院 {format_yuan(getattr(row, k))}, 医保 {format_yuan(getattr(rec, k))}"
               for k, label in ROW_AMOUNTS if getattr(row, k) != getattr(rec, k)]
    if amounts:
        problems.append("金额不符: " + "; ".join(amounts))
    return _result_line(rec, rec, UNBALANCED if problems else BALANCED, "; ".join(problems))


def _hospital_only(row: DetailRow, own: SettlementRow | None, scope: tuple[datetime, datetime, str, str]) -> tuple[str, ...]:
    """A line of the file we have no record for in the scope; if the setl_id is one of ours, say why."""
    memo = HOSPITAL_ONLY
    if own is not None:
        start, end, clr_type, setl_optins = scope
        if not _is_record(own):
            why = "该退费结算已被冲正(2601)撤销"
        elif not start <= own.setl_time < end:
            why = f"医保结算时间 {format_local(own.setl_time)} 不在对账期间"
        elif own.clr_type != clr_type:
            why = f"医保清算类别为 {own.clr_type}"
        else:
            why = f"医保清算经办机构为 {_optins(own)}"
        memo = f"{HOSPITAL_ONLY} ({why})"
    return _result_line(row, None, UNBALANCED, memo)


def _result_line(values: Record | DetailRow, rec: Record | None, rslt: str, memo: str) -> tuple[str, ...]:
    return (values.psn_no, values.mdtrt_id, values.setl_id, rec.msgid if rec else "", rslt, values.refd_setl_flag,
            memo, format_yuan(values.medfee_sumamt), format_yuan(values.fund_pay_sumamt), format_yuan(values.acct_pay))


def _result_zip(lines: list[tuple[str, ...]], name: str, now: datetime) -> bytes:
    text = "".join("\t".join(_cell(v) for v in line) + "\n" for line in lines)
    info = zipfile.ZipInfo(name, date_time=now.astimezone(LOCAL_TZ).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


def _cell(value: str) -> str:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _is_record(row: SettlementRow) -> bool:
    return row.kind == "settle" or not row.cancelled  # a cancellation voided by 2601 is no record


def _optins(row: SettlementRow) -> str:
    return str(((row.output or {}).get("setlinfo") or {}).get("clr_optins") or "")


def _record(row: SettlementRow) -> Record:
    return Record(setl_id=row.setl_id, mdtrt_id=row.mdtrt_id, psn_no=row.psn_no, msgid=row.msgid,
                  refd_setl_flag="0" if row.kind == "settle" else "1", medfee_sumamt=row.medfee_sumamt,
                  fund_pay_sumamt=row.fund_pay_sumamt, acct_pay=row.acct_pay, psn_cash_pay=row.psn_cash_pay,
                  setl_time=row.setl_time, insutype=row.insutype, clr_type=row.clr_type, setl_optins=_optins(row))


def _stored(row: InterfaceFileRow) -> StoredFile:
    return StoredFile(row.file_qury_no, row.filename, row.kind, bytes(row.content), row.created_at,
                      row.created_at + FILE_TTL)


# -------------------------------------------------------------------------------------- input parsing


def _required(value: Any, field: str) -> str:
    if value is None:
        raise Invalid(field, "missing")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Invalid(field, f"must be a string; got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise Invalid(field, "missing")
    if len(text) > 40:
        raise Invalid(field, "longer than 40 characters")
    return text


def _amount(value: Any, field: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Invalid(field, "missing")
    try:
        return parse_yuan(value, field, allow_negative=True)
    except MoneyError as e:
        raise Invalid(e.field, e.problem) from None


def _count(value: Any, field: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Invalid(field, "missing")
    if isinstance(value, bool):
        raise Invalid(field, "must be a whole number, not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text.isdigit() or not text.isascii() or len(text) > 9:
        raise Invalid(field, f"must be a whole number of settlements; got {value!r}")
    return int(text)


def _flag(value: Any, field: str) -> str:
    text = _required(value, field)
    if text not in ("0", "1"):
        raise Invalid(field, f"must be 0 (不含退费) or 1 (含退费); got {text!r}")
    return text


def _day_or_time(value: Any, field: str) -> tuple[datetime, bool]:
    """A local date (True: whole day) or a local date-time (False: that instant)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)), False
    if isinstance(value, date):
        return datetime.combine(value, time(), LOCAL_TZ), True
    text = _required(value, field)
    for fmt, whole_day in (("%Y-%m-%d", True), ("%Y%m%d", True), ("%Y-%m-%d %H:%M:%S", False)):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=LOCAL_TZ), whole_day
        except ValueError:
            continue
    raise Invalid(field, f"must be a date yyyy-MM-dd; got {text!r}")


def _period(begndate: Any, enddate: Any) -> tuple[datetime, datetime]:
    """[start, end) in UTC: whole Asia/Shanghai days, or exact times when given with a time (end inclusive)."""
    start, _ = _day_or_time(begndate, "stmt_begndate")
    last, whole_day = _day_or_time(enddate, "stmt_enddate")
    end = last + (timedelta(days=1) if whole_day else timedelta(seconds=1))
    if end <= start:
        raise Invalid("stmt_enddate", "is before stmt_begndate")
    return start, end


def _amount_diff(label: str, hospital: int, ours: int) -> str:
    return f"{label}不符: 医院 {format_yuan(hospital)}, 医保 {format_yuan(ours)}, 差额 {format_yuan(hospital - ours)}"


def _filename(value: Any) -> str:
    name = _required_long(value, "filename")
    if len(name) > MAX_FILENAME:
        raise Invalid("filename", f"longer than {MAX_FILENAME} characters")
    if any(c in name for c in "/\\\0") or name in (".", ".."):
        raise Invalid("filename", f"must be a plain file name; got {name!r}")
    return name


def _required_long(value: Any, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Invalid(field, "missing")
    if not isinstance(value, str):
        raise Invalid(field, f"must be a string; got {type(value).__name__}")
    return value.strip()


def _decode_base64(value: Any) -> bytes:
    if value is None:
        raise Invalid("in", "missing")
    if not isinstance(value, str):
        raise Invalid("in", f"must be a base64 string; got {type(value).__name__}")
    if len(value) > (MAX_FILE_BYTES // 3 + 1) * 4 * 2:  # cheap bound before joining (line breaks allowed)
        raise Invalid("in", f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    compact = "".join(value.split())
    if not compact:
        raise Invalid("in", "the file is empty")
    if len(compact) > (MAX_FILE_BYTES // 3 + 1) * 4:
        raise Invalid("in", f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("in", "is not base64") from None
    if not data:
        raise Invalid("in", "the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise Invalid("in", f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    return data

