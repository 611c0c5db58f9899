"""The pure rule of a diagnosis list's main diagnosis (``medpay.domain.diagnoses``)."""

from __future__ import annotations

from datetime import datetime

from medpay.domain.diagnoses import Diagnosis, with_main_flags
from medpay.local_time import LOCAL_TZ

WHEN = datetime(2026, 11, 23, 10, 0, tzinfo=LOCAL_TZ)


def row(srt_no: int, code: str, main: str = "") -> Diagnosis:
    return Diagnosis("1", srt_no, code, code, "内科", "D001", "李医生", WHEN, maindiag_flag=main)


def flags(rows: tuple[Diagnosis, ...]) -> list[tuple[str, str]]:
    return [(r.diag_code, r.maindiag_flag) for r in rows]


def test_a_list_that_flags_none_has_its_lowest_sort_number_as_main() -> None:
    assert flags(with_main_flags([row(2, "B"), row(1, "A"), row(3, "C")])) == [("B", "0"), ("A", "1"), ("C", "0")]


def test_of_rows_sharing_the_lowest_sort_number_the_first_sent_is_main() -> None:
    assert flags(with_main_flags([row(1, "A"), row(1, "B")])) == [("A", "1"), ("B", "0")]


def test_flags_sent_are_kept_and_rows_without_one_are_not_main() -> None:
    assert flags(with_main_flags([row(1, "A", "0"), row(2, "B", "1"), row(3, "C")])) == [
        ("A", "0"), ("B", "1"), ("C", "0")]


def test_an_empty_list_stays_empty() -> None:
    assert with_main_flags([]) == ()
