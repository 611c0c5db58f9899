"""Paging as the catalog queries (1312, 1317) answer it: the page asked for, and what the answer says of it.

The specification's paged outputs carry, beside ``data``, the counters of the Java page helper behind the national
platform (newtouch-cloud/openhis Output_1312.cs / Output_1317.cs list them): ``pageNum``, ``pageSize``, ``size``
(rows on this page), ``startRow`` (1-based number of its first row; 0 when empty), ``recordCounts`` (rows in all),
``pages``, ``firstPage`` and ``lastPage``. All are numbers (数值型), on every page, empty ones included.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAGE_SIZE = 1000  # rows per page at most; the spec's page_size is 数值型(4), a larger one is refused


@dataclass(frozen=True)
class Page:
    page_num: int  # 1-based
    page_size: int

    def __post_init__(self) -> None:
        if self.page_num < 1:
            raise ValueError("page_num must be 1 or more")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}")

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.page_size

    def counters(self, total: int, size: int) -> dict[str, int]:
        """What the answer says of this page, given ``total`` rows in all and ``size`` on it."""
        pages = -(-total // self.page_size)
        return {"pageNum": self.page_num, "pageSize": self.page_size, "size": size,
                "startRow": self.offset + 1 if size else 0, "recordCounts": total, "pages": pages,
                "firstPage": 1, "lastPage": max(pages, 1)}
