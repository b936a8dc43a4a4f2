"""Text that people type, made safe to store, show and log: one normaliser for names, titles and chat,
and one escaper for log lines. Pure; raises UnsafeText (a ValueError) for what cannot be repaired.

Rules (docs/security.md, "Input and headers"):
- a lone surrogate (U+D800–U+DFFF: what `\\ud800` in JSON decodes to) is refused: it cannot be encoded
  as UTF-8, so it could be neither stored nor sent to anyone;
- text is put in Unicode NFC, so that the same words typed on two keyboards compare equal;
- bidirectional controls (embeddings, overrides, isolates, marks) are removed: they reorder what others
  see ("gpj.exe" shown as "exe.jpg"), and nothing a person means to write needs them;
- control characters are removed; line breaks (CR LF, CR, LF, VT, FF, NEL, U+2028, U+2029) and tabs
  become a space in one-line text (names, titles, chat); multi-line text (descriptions) keeps tabs and
  turns every line break into LF.
"""

from __future__ import annotations

import unicodedata

# Embedding/override (LRE RLE PDF LRO RLO), isolates (LRI RLI FSI PDI), marks (LRM RLM ALM).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# What breaks a line or moves to the next column: in one-line text these become a space.
_SPACING = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")


class UnsafeText(ValueError):
    """Text that cannot be repaired (a lone surrogate); the message says why, in English."""


def has_lone_surrogate(value: str) -> bool:
    """Whether `value` holds a surrogate code point: a Python str holds a valid astral character as one
    code point, so any surrogate in it is unpaired (from a `\\udXXX` escape or undecodable bytes)."""
    try:
        value.encode("utf-8")  # strict UTF-8 fails on surrogates and nothing else; and it runs in C
    except UnicodeEncodeError:
        return True
    return False


def is_control(char: str) -> bool:
    """C0 and C1 controls and DEL (Unicode category Cc)."""
    return unicodedata.category(char) == "Cc"


def normalise(value: str, *, multiline: bool = False) -> str:
    """`value` in NFC without bidi controls or control characters (see the module's rules); the caller
    strips and measures the result. UnsafeText for a lone surrogate."""
    if has_lone_surrogate(value):
        raise UnsafeText("contains a lone surrogate (not valid Unicode text)")
    if value.isascii() and value.isprintable():
        return value  # the common case, already clean
    out: list[str] = []
    for char in unicodedata.normalize("NFC", value.replace("\r\n", "\n")):
        if char in BIDI_CONTROLS:
            continue
        if char in _SPACING:
            out.append(("\t" if char == "\t" else "\n") if multiline else " ")
        elif not is_control(char):
            out.append(char)
    return "".join(out)


def for_log(value: str, max_chars: int = 200) -> str:
    """`value` safe inside one log line: backslash, controls, bidi controls, line separators and
    surrogates are written as escapes (`\\n`, `\\x1b`, `\\u202e`), and a long value is cut with "…"."""
    cut = value[:max_chars]
    if cut.isascii() and cut.isprintable() and "\\" not in cut:
        return cut if len(value) <= max_chars else cut + "…"
    out: list[str] = []
    for char in cut:
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable() and char not in BIDI_CONTROLS:
            out.append(char)
        elif char in "\n\r\t":
            out.append(repr(char)[1:-1])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out) + ("…" if len(value) > max_chars else "")
