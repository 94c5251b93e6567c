"""The export as a PDF (fpdf2), in a font that has the Chinese characters.

The font is Debian's WenQuanYi Micro Hei (``fonts-wqy-microhei``, installed
by ``scripts/setup``) unless ``ANJUKA_PDF_FONT`` names another TrueType file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from anjuka.core.errors import AppError

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)

SECTIONS = (
    ("residences", "居住登记 Residences"),
    ("cards", "安居e卡 Cards"),
    ("inspections", "查验 Inspections"),
    ("transfers", "迁移 Transfers"),
    ("access_report", "访问记录 Access report (unmasked views, look-ups, exports)"),
)


def font_path() -> Path:
    """The CJK font the PDF is set in; refused (500 ``pdf_font_missing``) when absent."""
    configured = os.environ.get("ANJUKA_PDF_FONT")
    for path in ([Path(configured)] if configured else []) + list(FONT_CANDIDATES):
        if path.is_file():
            return path
    raise AppError(
        "No font with Chinese characters for the PDF: install fonts-wqy-microhei"
        " or set ANJUKA_PDF_FONT.",
        code="pdf_font_missing",
        status=500,
    )


def _line(pdf: FPDF, text: str, *, size: float = 9) -> None:
    pdf.set_font("cjk", size=size)
    pdf.multi_cell(0, size * 0.55, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _fields(record: dict[str, Any]) -> str:
    return "  ".join(f"{k}: {v}" for k, v in record.items() if v not in (None, "", []))


def render_pdf(export: dict[str, Any]) -> bytes:
    """The export as a PDF document: identity first, then each section, one entry a paragraph."""
    pdf = FPDF(format="A4")
    pdf.set_title("个人信息副本 Personal data export")
    pdf.set_creator("Anjuka")
    pdf.add_font("cjk", fname=str(font_path()))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    _line(pdf, "个人信息副本 Personal data export", size=16)
    _line(pdf, f"generated_at: {export['generated_at']}  format: {export['format']}")
    pdf.ln(3)
    _line(pdf, "身份 Identity", size=12)
    for key, value in export["person"].items():
        _line(pdf, f"{key}: {'' if value is None else value}")
    for key, title in SECTIONS:
        pdf.ln(3)
        entries = export[key]
        _line(pdf, f"{title} ({len(entries)})", size=12)
        if not entries:
            _line(pdf, "—")
        for entry in entries:
            _line(pdf, _fields(entry))
    return bytes(pdf.output())
