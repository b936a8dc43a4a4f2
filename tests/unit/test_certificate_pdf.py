"""The certificate PDF with the installed CJK TrueType font: the same document gives the same bytes, the
text reads back (pypdf), the QR code decodes (pypdfium2 + zxing-cpp) to the verification URL; no font,
a font reportlab cannot embed, or a character the font lacks is FontUnavailable, never empty boxes."""

from __future__ import annotations

import dataclasses
import io
from datetime import date
from pathlib import Path

import pypdf
import pypdfium2  # type: ignore[import-untyped]
import pytest
import zxingcpp

from catalog.certificates.pdf import Document, FontUnavailable, Renderer
from infra.settings import Settings

FONT = Settings().certificate_font
NOTO = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
DOC = Document(
    name="张小三",
    scope="course",
    year=2026,
    course_title="建筑工程新技术与绿色施工管理实务（第二期）高级研修班专题讲座，一个需要换行的很长的课程名称",
    public_xueshi="0",
    professional_xueshi="12.5",
    total_xueshi="12.5",
    issuer="青岛继续教育基地",
    issued_on=date(2026, 12, 6),
    serial="QDCE-2026-7KQ4M9XP2D",
    code="ABCD2345",
    verify_url="https://lectern.example.cn/verify?serial=QDCE-2026-7KQ4M9XP2D&code=ABCD2345",
    verify_page="https://lectern.example.cn/verify",
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    if not FONT.is_file():
        pytest.fail(f"{FONT} is missing: run scripts/install-system (fonts-wqy-zenhei)")
    return Renderer(FONT)


def text_of(data: bytes) -> str:
    return pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()


def test_the_same_certificate_renders_to_the_same_bytes(renderer: Renderer) -> None:
    first = renderer.render(DOC)
    assert first.startswith(b"%PDF-")
    assert renderer.render(DOC) == first
    assert Renderer(FONT).render(DOC) == first  # another renderer (as after a restart)
    assert renderer.render(dataclasses.replace(DOC, code="ABCD2346")) != first


def test_the_text_reads_back_in_chinese(renderer: Renderer) -> None:
    text = text_of(renderer.render(DOC))
    for expected in ("专业技术人员继续教育学时证明", "（课程学时证明）", "张小三", "12.5 学时", "0 学时",
                     "青岛继续教育基地", "2026 年 12 月 06 日", "QDCE-2026-7KQ4M9XP2D", "ABCD2345",
                     "https://lectern.example.cn/verify", "扫码验证"):  # fmt: skip
        assert expected in text, expected
    annual = text_of(renderer.render(dataclasses.replace(DOC, scope="annual", course_title=None)))
    assert "2026 年度学时证明" in annual
    assert "课　　程" not in annual


def test_the_qr_code_decodes_to_the_verification_url(renderer: Renderer) -> None:
    page = pypdfium2.PdfDocument(renderer.render(DOC))[0]
    found = zxingcpp.read_barcodes(page.render(scale=2).to_pil())
    assert [r.text for r in found] == [DOC.verify_url]


def test_a_missing_font_is_unavailable_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(FontUnavailable, match="LECTERN_CERTIFICATE_FONT"):
        Renderer(tmp_path / "none.ttc").render(DOC)
    not_a_font = tmp_path / "fake.ttc"
    not_a_font.write_bytes(b"not a font at all")
    with pytest.raises(FontUnavailable, match="not a usable TrueType font"):
        Renderer(not_a_font).check()


@pytest.mark.skipif(not NOTO.is_file(), reason="fonts-noto-cjk is not installed")
def test_noto_cjk_cannot_be_embedded_and_says_so() -> None:
    with pytest.raises(FontUnavailable, match="postscript outlines"):
        Renderer(NOTO).render(DOC)


def test_a_character_the_font_lacks_is_unavailable_not_an_empty_box(renderer: Renderer) -> None:
    with pytest.raises(FontUnavailable) as caught:
        renderer.render(dataclasses.replace(DOC, name="𠮷田"))  # U+20BB7, outside the font
    assert caught.value.details == {"characters": "𠮷"}
