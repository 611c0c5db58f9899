"""Pure rules of a visit's diagnosis lists (``diseinfo`` of 2203, 2401 and 2402; answered by 5202). No I/O.

- Each list belongs to one 出入院诊断类别 (``inout_diag_type``): 2401 入院办理 sends the admission list (1 入院诊断),
  2402 出院办理 the discharge list (2 出院诊断). 2203 门诊就诊信息上传's table has no such field; its list is the
  visit's diagnoses at the time of the visit, kept as type 1 — the one the platform already answered for an
  outpatient visit's main diagnosis — so a 2203 sent for an admission replaces its admission list.
- A later list of the same type for the same visit replaces the earlier one (a corrected 2203; a 2402 sent again
  after 2405 出院撤销); a replayed message stores nothing (its msgid answers first).
- 主诊断标志 (``maindiag_flag``): as sent; a list that flags none (2203's table has no such field) has its first
  row of the lowest 诊断排序号 as the main diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

ADMISSION, DISCHARGE = "1", "2"  # 出入院诊断类别
OUTPATIENT = ADMISSION  # 2203's list (see above)
MAIN, NOT_MAIN = "1", "0"


@dataclass(frozen=True)
class Diagnosis:
    """One ``diseinfo`` row as a visit's transaction sent it (checked)."""

    diag_type: str  # 诊断类别: 1 西医诊断, 2 中医主病诊断, 3 中医主证诊断
    diag_srt_no: int  # 诊断排序号
    diag_code: str
    diag_name: str
    diag_dept: str
    dise_dor_no: str
    dise_dor_name: str
    diag_time: datetime
    vali_flag: str = "1"  # 有效标志
    maindiag_flag: str = ""  # "" when the row did not say


def with_main_flags(rows: Sequence[Diagnosis]) -> tuple[Diagnosis, ...]:
    """The list with every row's ``maindiag_flag`` set: as sent when any row says; otherwise the first row of the
    lowest ``diag_srt_no`` is the main one."""
    if any(r.maindiag_flag for r in rows):
        return tuple(r if r.maindiag_flag else replace(r, maindiag_flag=NOT_MAIN) for r in rows)
    if not rows:
        return ()
    main = min(range(len(rows)), key=lambda i: (rows[i].diag_srt_no, i))
    return tuple(replace(r, maindiag_flag=MAIN if i == main else NOT_MAIN) for i, r in enumerate(rows))
