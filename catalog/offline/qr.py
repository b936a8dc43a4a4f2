"""The venue's QR code as SVG (segno, pure Python): drawn by the server so that the display page needs no
QR library, scaled by CSS (a viewBox, no fixed size)."""

from __future__ import annotations

import io

import segno

# Medium error correction: readable from a projector across a room, and with glare on part of the screen.
ERROR = "m"
QUIET_ZONE = 4  # modules of white border: scanners need it


def svg(text: str) -> str:
    out = io.BytesIO()
    segno.make(text, error=ERROR, micro=False).save(
        out, kind="svg", border=QUIET_ZONE, omitsize=True, xmldecl=False, dark="#000", light="#fff"
    )
    return out.getvalue().decode()
