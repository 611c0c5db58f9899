"""The settlement slip drawn as an A5 PDF with fpdf2: the font embedded as a subset (a few KB), the check code as a
QR image (segno). The words and amounts come ready from ``services.mobile.records``; this only lays them out."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import segno
from fpdf import FPDF

from medpay.adapters.slips.font import FontFile, cjk_font


@dataclass(frozen=True)
class Slip:
    title: str
    subtitle: str
    facts: list[tuple[str, str]]  # (label, value) above the amounts
    amounts: list[tuple[str, str]]  # (label, "¥…") — the split
    status: str  # "" or a notice (cancelled …)
    check_url: str  # what the QR code holds
    check_label: str
    footer: str


@lru_cache(maxsize=1)
def _font() -> FontFile:
    return cjk_font()


def render(slip: Slip) -> bytes:
    font = _font()
    pdf = FPDF(format=(148, 210), unit="mm")  # A5
    pdf.set_title(slip.title)
    pdf.set_creator("medpay")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_font("cjk", fname=str(font.path), collection_font_number=font.index)
    pdf.add_page()
    pdf.set_font("cjk", size=15)
    pdf.cell(0, 9, slip.title, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("cjk", size=8)
    pdf.set_text_color(70, 86, 106)
    pdf.multi_cell(0, 4.5, slip.subtitle, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_text_color(27, 42, 58)
    pdf.ln(3)
    _rows(pdf, slip.facts, size=9)
    pdf.ln(2)
    pdf.set_draw_color(207, 217, 212)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.ln(2)
    _rows(pdf, slip.amounts, size=10, right=True)
    if slip.status:
        pdf.ln(2)
        pdf.set_text_color(179, 38, 30)
        pdf.set_font("cjk", size=11)
        pdf.multi_cell(0, 6, slip.status, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(27, 42, 58)
    pdf.ln(4)
    qr = io.BytesIO()
    segno.make(slip.check_url, error="m").save(qr, kind="png", scale=6, border=2)
    qr.seek(0)
    top = pdf.get_y()
    pdf.image(qr, x=pdf.l_margin, y=top, w=34, h=34)
    pdf.set_xy(pdf.l_margin + 38, top + 2)
    pdf.set_font("cjk", size=8)
    pdf.multi_cell(pdf.w - pdf.r_margin - pdf.l_margin - 38, 4.5, slip.check_label, new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(top + 38)
    pdf.set_font("cjk", size=7)
    pdf.set_text_color(70, 86, 106)
    pdf.multi_cell(0, 4, slip.footer, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _rows(pdf: FPDF, rows: list[tuple[str, str]], *, size: int, right: bool = False) -> None:
    pdf.set_font("cjk", size=size)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for label, value in rows:
        pdf.cell(width * 0.42, 6, label)
        pdf.multi_cell(width * 0.58, 6, value, new_x="LMARGIN", new_y="NEXT", align="R" if right else "L")
