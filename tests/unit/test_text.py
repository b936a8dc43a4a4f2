"""infra.text: what names, titles and chat become, what is refused, and how log lines escape user text."""

from __future__ import annotations

import unicodedata

import pytest

from infra.text import UnsafeText, for_log, has_lone_surrogate, normalise


@pytest.mark.parametrize(
    ("raw", "one_line", "multi_line"),
    [
        pytest.param("吴磊", "吴磊", "吴磊", id="chinese-unchanged"),
        pytest.param("Zoe\u0301", "Zoé", "Zoé", id="nfd-becomes-nfc"),
        pytest.param("\u202egpj.exe", "gpj.exe", "gpj.exe", id="right-to-left-override-removed"),
        pytest.param("a\u2066b\u2069c", "abc", "abc", id="isolates-removed"),
        pytest.param("a\u200e\u200fb\u061c", "ab", "ab", id="marks-removed"),
        pytest.param("a\x00b\x1b[31m", "ab[31m", "ab[31m", id="c0-controls-removed"),
        pytest.param("a\x85b\x9fc", "a bc", "a\nbc", id="c1-controls-removed-nel-is-a-break"),
        pytest.param("a\x7fb", "ab", "ab", id="delete-removed"),
        pytest.param("line one\nline two", "line one line two", "line one\nline two", id="newline"),
        pytest.param("a\r\nb\rc", "a b c", "a\nb\nc", id="crlf-and-cr"),
        pytest.param("a\tb", "a b", "a\tb", id="tab"),
        pytest.param("a\u2028b\u2029c", "a b c", "a\nb\nc", id="unicode-line-separators"),
        pytest.param("👩\u200d💻", "👩\u200d💻", "👩\u200d💻", id="zero-width-joiner-kept-for-emoji"),
        pytest.param("ﬁ", "ﬁ", "ﬁ", id="compatibility-forms-kept-nfc-not-nfkc"),
    ],
)
def test_text_is_normalised_without_bidi_or_control_characters(
    raw: str, one_line: str, multi_line: str
) -> None:
    assert normalise(raw) == one_line
    assert normalise(raw, multiline=True) == multi_line
    assert unicodedata.is_normalized("NFC", normalise(raw))


@pytest.mark.parametrize("raw", ["\ud800", "a\udfffb", "\udcff\udcfe"], ids=["high", "low", "escaped-bytes"])
def test_a_lone_surrogate_is_refused(raw: str) -> None:
    assert has_lone_surrogate(raw)
    with pytest.raises(UnsafeText, match="lone surrogate"):
        normalise(raw)


def test_a_character_outside_the_basic_plane_is_not_a_lone_surrogate() -> None:
    assert not has_lone_surrogate("𠀀😀")
    assert normalise("𠀀😀") == "𠀀😀"


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        pytest.param("/api/courses/1", "/api/courses/1", id="plain"),
        pytest.param("/课程/1", "/课程/1", id="chinese-kept"),
        pytest.param("/x\n2026-01-01 ERROR forged", "/x\\n2026-01-01 ERROR forged", id="newline"),
        pytest.param("/x\r\x1b[2J", "/x\\r\\x1b[2J", id="carriage-return-and-escape"),
        pytest.param("/\u202egpj", "/\\u202egpj", id="bidi-override"),
        pytest.param("/a\u2028b", "/a\\u2028b", id="line-separator"),
        pytest.param("/a\\nb", "/a\\\\nb", id="a-literal-backslash-cannot-pose-as-an-escape"),
        pytest.param("/\udcff", "/\\udcff", id="surrogate"),
    ],
)
def test_log_values_cannot_start_a_line_or_reorder_it(raw: str, logged: str) -> None:
    assert for_log(raw) == logged
    assert "\n" not in for_log(raw)
    assert "\r" not in for_log(raw)


def test_a_long_log_value_is_cut() -> None:
    assert for_log("x" * 300) == "x" * 200 + "…"
    assert for_log("x" * 300, max_chars=10) == "x" * 10 + "…"
