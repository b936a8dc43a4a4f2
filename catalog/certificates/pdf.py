"""The certificate as a PDF (专业技术人员继续教育学时证明): one A4 page in Chinese with an embedded CJK
TrueType font, the figures, the serial and verification code, and a QR code of the verification URL.

Deterministic: the same `Document` and font give the same bytes (reportlab's invariant mode: no creation
time, no random document id), so a certificate's PDF is rendered again from its row on every download and
its SHA-256 matches the one stored at issue for as long as the font, reportlab and the public URL stay
the same. No font, or a font without a glyph the page needs, is `Unavailable` (HTTP 503): never a PDF
with empty boxes. Rendering is blocking (tens of ms): call `render` from a worker thread.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import segno
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from infra.errors import Unavailable

TITLE = "专业技术人员继续教育学时证明"
WIDTH, HEIGHT = A4
MARGIN = 72.0
INK = (0.10, 0.10, 0.12)
ACCENT = (0.55, 0.10, 0.10)
MUTED = (0.35, 0.35, 0.38)


@dataclass(frozen=True)
class Document:
    """Everything printed on a certificate, already formatted (学时 as text, the date as a Beijing date).
    All of it comes from the certificate's row (and the public URL), so the bytes can be made again."""

    name: str
    scope: str  # "course" or "annual"
    year: int
    course_title: str | None
    public_xueshi: str
    professional_xueshi: str
    total_xueshi: str
    issuer: str
    issued_on: date
    serial: str
    code: str
    verify_url: str  # what the QR code holds
    verify_page: str  # where to type the serial and code by hand


class FontUnavailable(Unavailable):
    pass


class Renderer:
    """Renders certificates with the CJK TrueType font at `font_path` (a .ttc collection: its first font).

    The font is loaded on first use and kept; a missing or unusable font is tried again on the next
    call (an operator may install it without a restart). One render at a time: reportlab keeps a font's
    subset state and its font registry process-wide."""

    def __init__(self, font_path: Path) -> None:
        self.font_path = font_path
        self._font: TTFont | None = None
        self._lock = threading.Lock()

    def _load(self) -> TTFont:
        if self._font is not None:
            return self._font
        name = f"LecternCJK-{self.font_path.stem}"
        try:
            font = TTFont(name, str(self.font_path), subfontIndex=0)
        except (TTFError, OSError) as exc:
            # Noto CJK (PostScript outlines) lands here too: reportlab embeds TrueType outlines only.
            raise FontUnavailable(
                f"certificates cannot be rendered: the font {self.font_path} is not a usable TrueType font"
                f" ({exc}); install fonts-wqy-zenhei or set LECTERN_CERTIFICATE_FONT",
                field="LECTERN_CERTIFICATE_FONT",
            ) from None
        pdfmetrics.registerFont(font)
        self._font = font
        return font

    def check(self) -> None:
        """Raise FontUnavailable unless certificates can be rendered."""
        with self._lock:
            self._load()

    def render(self, doc: Document) -> bytes:
        with self._lock:
            font = self._load()
            glyphs = font.face.charToGlyph
            missing = sorted(
                {ch for t in _texts(doc) for ch in t if not ch.isspace() and ord(ch) not in glyphs}
            )
            if missing:
                raise FontUnavailable(
                    f"the certificate font {self.font_path.name} has no glyph for {''.join(missing)!r}",
                    details={"characters": "".join(missing)},
                )
            return _draw(doc, font.fontName)


# -- layout ----------------------------------------------------------------------------------------------


def _subtitle(doc: Document) -> str:
    return "（课程学时证明）" if doc.scope == "course" else f"（{doc.year} 年度学时证明）"


def _statement(doc: Document) -> str:
    what = f"参加《{doc.course_title}》的学习" if doc.scope == "course" else f"在 {doc.year} 年度参加继续教育"
    return f"兹证明 {doc.name} {what}，经审核登记，取得继续教育学时如下："


def _rows(doc: Document) -> list[tuple[str, str]]:
    rows = [("姓　　名", doc.name)]
    if doc.scope == "course":
        rows.append(("课　　程", doc.course_title or ""))
    rows.append(("年　　度", f"{doc.year} 年度"))
    return rows


def _figures(doc: Document) -> list[tuple[str, str]]:
    return [
        ("公需科目", f"{doc.public_xueshi} 学时"),
        ("专业科目", f"{doc.professional_xueshi} 学时"),
        ("合　　计", f"{doc.total_xueshi} 学时"),
    ]


def _issue_rows(doc: Document) -> list[tuple[str, str]]:
    d = doc.issued_on
    return [
        ("发证单位", doc.issuer),
        ("发证日期", f"{d.year} 年 {d.month:02d} 月 {d.day:02d} 日"),
        ("证书编号", doc.serial),
        ("验 证 码", doc.code),
    ]


def _notes(doc: Document) -> list[str]:
    return [
        "验证方法：用手机扫描右侧二维码；或在浏览器中打开",
        doc.verify_page,
        "输入证书编号和验证码。证书是否有效，以验证页面显示为准。",
        "本证明依据学时台账中已登记的学时自动生成。",
    ]


def _texts(doc: Document) -> list[str]:
    pairs = _rows(doc) + _figures(doc) + _issue_rows(doc)
    return [TITLE, _subtitle(doc), _statement(doc), "扫码验证", *_notes(doc), *(a + b for a, b in pairs)]


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of at most `width` points, broken between any two characters (Chinese has no spaces)."""
    lines: list[str] = []
    line = ""
    for ch in text:
        if line and pdfmetrics.stringWidth(line + ch, font, size) > width:
            lines.append(line)
            line = ""
        line += ch
    if line:
        lines.append(line)
    return lines


def _label_rows(c: Canvas, font: str, rows: list[tuple[str, str]], y: float, size: float = 12.5) -> float:
    """Label and value per row (values wrapped); returns the y below the last row."""
    value_x = MARGIN + 6 * size
    for label, value in rows:
        c.setFillColorRGB(*MUTED)
        c.setFont(font, size)
        c.drawString(MARGIN, y, f"{label}：")
        c.setFillColorRGB(*INK)
        for line in _wrap(value, font, size, WIDTH - MARGIN - value_x) or [""]:
            c.drawString(value_x, y, line)
            y -= size * 1.75
    return y


def _qr(c: Canvas, data: str, x: float, y: float, size: float) -> None:
    """The QR code as vector squares (crisp at any zoom, no image to embed), bottom-left at (x, y)."""
    matrix = segno.make(data, error="m", boost_error=False).matrix
    n = len(matrix)
    quiet = 2
    cell = size / (n + 2 * quiet)
    c.setFillColorRGB(1, 1, 1)
    c.rect(x, y, size, size, stroke=0, fill=1)
    c.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(matrix):
        for col, dark in enumerate(row):
            if dark:
                c.rect(
                    x + (quiet + col) * cell, y + size - (quiet + r + 1) * cell, cell, cell, stroke=0, fill=1
                )


def _draw(doc: Document, font: str) -> bytes:
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    c.setTitle(f"{TITLE} {doc.serial}")
    c.setAuthor(doc.issuer)
    c.setSubject(f"{doc.name} {doc.year}")
    c.setCreator("Lectern")

    c.setStrokeColorRGB(*ACCENT)
    c.setLineWidth(2.5)
    c.rect(28, 28, WIDTH - 56, HEIGHT - 56)
    c.setLineWidth(0.8)
    c.rect(36, 36, WIDTH - 72, HEIGHT - 72)

    c.setFillColorRGB(*ACCENT)
    c.setFont(font, 24)
    c.drawCentredString(WIDTH / 2, HEIGHT - 118, TITLE)
    c.setFillColorRGB(*MUTED)
    c.setFont(font, 13)
    c.drawCentredString(WIDTH / 2, HEIGHT - 146, _subtitle(doc))

    y = HEIGHT - 200
    c.setFillColorRGB(*INK)
    c.setFont(font, 13)
    for line in _wrap(_statement(doc), font, 13, WIDTH - 2 * MARGIN):
        c.drawString(MARGIN, y, line)
        y -= 22
    y -= 12
    y = _label_rows(c, font, _rows(doc), y)

    # The figures in a ruled box: what a reader looks for first.
    y -= 6
    box_top = y + 20
    y = _label_rows(c, font, _figures(doc), y, size=15)
    c.setStrokeColorRGB(*MUTED)
    c.setLineWidth(0.6)
    c.rect(MARGIN - 10, y + 12, WIDTH - 2 * MARGIN + 20, box_top - y - 12)
    y -= 18
    y = _label_rows(c, font, _issue_rows(doc), y)

    qr_size = 132.0
    qr_x, qr_y = WIDTH - MARGIN - qr_size + 8, 76.0
    _qr(c, doc.verify_url, qr_x, qr_y, qr_size)
    c.setFillColorRGB(*MUTED)
    c.setFont(font, 10)
    c.drawCentredString(qr_x + qr_size / 2, qr_y - 12, "扫码验证")

    ny = qr_y + qr_size - 16
    for note in _notes(doc):
        for line in _wrap(note, font, 9.5, qr_x - MARGIN - 16):
            c.drawString(MARGIN, ny, line)
            ny -= 15
    c.showPage()
    c.save()
    return out.getvalue()
