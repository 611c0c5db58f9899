"""A visit's diagnosis lists in the database: stored by the visit's own transaction (2203 ``update_visit``, 2401
``register_visit``, 2402 ``discharge``, in their unit of work and so exactly once per msgid), withdrawn by 2405,
read by 5202. Rules in ``medpay.domain.diagnoses``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from medpay.adapters.db.diagnosis_tables import VisitDiagnosisRow
from medpay.domain.diagnoses import Diagnosis, with_main_flags

visit_diagnoses = VisitDiagnosisRow.__table__


def replace_list(conn: Connection, mdtrt_id: str, inout_diag_type: str, rows: Sequence[Diagnosis], *, msgid: str,
                 now: datetime) -> None:
    """The visit's list of ``inout_diag_type`` becomes ``rows`` (an earlier one is replaced)."""
    withdraw(conn, mdtrt_id, inout_diag_type)
    conn.execute(insert(visit_diagnoses), [
        {"mdtrt_id": mdtrt_id, "inout_diag_type": inout_diag_type, "position": i, "diag_type": r.diag_type,
         "diag_srt_no": r.diag_srt_no, "maindiag_flag": r.maindiag_flag, "diag_code": r.diag_code,
         "diag_name": r.diag_name, "diag_dept": r.diag_dept, "dise_dor_no": r.dise_dor_no,
         "dise_dor_name": r.dise_dor_name, "diag_time": r.diag_time, "vali_flag": r.vali_flag, "msgid": msgid,
         "created_at": now}
        for i, r in enumerate(with_main_flags(rows), start=1)])


def withdraw(conn: Connection, mdtrt_id: str, inout_diag_type: str) -> None:
    conn.execute(delete(visit_diagnoses).where(visit_diagnoses.c.mdtrt_id == mdtrt_id,
                                               visit_diagnoses.c.inout_diag_type == inout_diag_type))


def of_visit(conn: Connection, mdtrt_id: str) -> list[Any]:
    """The visit's stored rows: the admission (or outpatient) list, then the discharge list, each as sent."""
    return list(conn.execute(select(visit_diagnoses).where(visit_diagnoses.c.mdtrt_id == mdtrt_id)
                             .order_by(visit_diagnoses.c.inout_diag_type, visit_diagnoses.c.position)))


def request_body(rows: Sequence[Diagnosis]) -> list[dict[str, Any]]:
    """The rows as a message's body holds them for its msgid's hash (a retry with other rows is refused)."""
    return [{"diag_type": r.diag_type, "diag_srt_no": r.diag_srt_no, "diag_code": r.diag_code,
             "diag_name": r.diag_name, "diag_dept": r.diag_dept, "dise_dor_no": r.dise_dor_no,
             "dise_dor_name": r.dise_dor_name, "diag_time": r.diag_time.isoformat(), "vali_flag": r.vali_flag,
             "maindiag_flag": r.maindiag_flag} for r in rows]
