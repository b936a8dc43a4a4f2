"""A session's attendance table as files a provider opens in Excel or WPS: CSV (UTF-8 with a byte-order
mark, which Excel on Chinese Windows needs to read UTF-8) and a minimal XLSX (Office Open XML written with
zipfile: one sheet, inline strings, numbers as numbers). Pure: rows in, bytes out. Large exports use the
streamed forms (`XlsxStream`, `csv_chunk`): rows go in batch by batch and the bytes made so far come out,
so memory stays bounded whatever the number of rows."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape

Cell = str | int | float | None

STATUS = {"none": "未计学时", "pending": "待审核", "registered": "已认定", "mixed": "部分待审核"}
HEADER = (
    "姓名",
    "手机号",
    "直播在场（分钟）",
    "分流直播观看（分钟）",
    "回放次数",
    "签到应答",
    "签到发出",
    "计入分钟",
    "学时",
    "状态",
    "学时规则版本",
    "待核查标记",
)


def table(view: dict[str, Any]) -> list[list[Cell]]:
    """The rows of catalog.credit.views.session_credits as a sheet: a header, then one row per learner."""
    rows: list[list[Cell]] = [list(HEADER)]
    for r in view["learners"]:
        rows.append(
            [
                r["name"],
                r["phone"],
                round(r["live_present_s"] / 60, 1),
                round(r["hls_present_s"] / 60, 1),
                r["replay_clients"],
                r["checks_answered"],
                r["checks_issued"],
                r["credited_minutes"],
                float(r["xueshi"]),
                STATUS.get(r["status"], r["status"]),
                ",".join(str(v) for v in r["policy_versions"]),
                ",".join(f["code"] for f in r["flags"] if f["status"] == "open"),
            ]
        )
    return rows


def _safe(value: Cell) -> Cell:
    # A name starting with = + - @ would be run as a formula by a spreadsheet (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: Sequence[Sequence[Cell]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else _safe(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell(ref: str, value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = escape(str(value)).replace("\n", "&#10;")
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    return f'<c r="{ref}"><v>{value!r}</v></c>'


def _sheet(rows: Sequence[Sequence[Cell]]) -> str:
    body = "".join(
        f'<row r="{i + 1}">' + "".join(_cell(f"{_column(j)}{i + 1}", v) for j, v in enumerate(row)) + "</row>"
        for i, row in enumerate(rows)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{body}</sheetData></worksheet>"
    )


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>'
)


def _workbook(sheet_name: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{escape(sheet_name)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )


def to_xlsx(rows: Sequence[Sequence[Cell]], sheet_name: str = "出勤与学时") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _ROOT_RELS)
        z.writestr("xl/workbook.xml", _workbook(sheet_name))
        z.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        z.writestr("xl/worksheets/sheet1.xml", _sheet(rows))
    return out.getvalue()


# -- streamed: rows in by batches, bytes out as they are made ------------------------------------------


class _Sink:
    """A write-only, unseekable file for zipfile (which then writes data descriptors): it keeps what was
    written until `take` hands it on."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


class XlsxStream:
    """A one-sheet XLSX written as it goes: `write(rows)` returns the compressed bytes made so far (often
    none: deflate holds data until it has a block), `close()` the rest with the zip's directory. Only one
    batch of rows is in memory at a time. The sheet may hold up to 2 GiB of XML (zip without ZIP64).
    Close it even when the download is abandoned: zipfile cannot close a file with an entry open."""

    def __init__(self, sheet_name: str, *, compresslevel: int = 6) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel)
        self._zip.writestr("[Content_Types].xml", _CONTENT_TYPES)
        self._zip.writestr("_rels/.rels", _ROOT_RELS)
        self._zip.writestr("xl/workbook.xml", _workbook(sheet_name))
        self._zip.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        self._sheet = self._zip.open("xl/worksheets/sheet1.xml", "w")
        self._sheet.write(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        )
        self.rows = 0

    def write(self, rows: Iterable[Sequence[Cell]]) -> bytes:
        parts = []
        for row in rows:
            self.rows += 1
            n = self.rows
            parts.append(f'<row r="{n}">' + "".join(_cell(f"{_column(j)}{n}", v) for j, v in enumerate(row)))
            parts.append("</row>")
        if parts:
            self._sheet.write("".join(parts).encode("utf-8"))
        return self._sink.take()

    def close(self) -> bytes:
        """The rest of the file; closing again gives nothing."""
        if self._sheet.closed:
            return b""
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()
        self._zip.close()
        return self._sink.take()


def csv_chunk(rows: Iterable[Sequence[Cell]], *, first: bool = False) -> bytes:
    """Rows as CSV bytes (the byte-order mark before the first chunk), for a streamed CSV download."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else _safe(v) for v in row])
    return (("\ufeff" if first else "") + out.getvalue()).encode("utf-8")
