"""A streaming reader of .xlsx workbooks: sheet rows one at a time, in bounded memory (the workbook's
shared strings are the only table held), with date and time cells turned into values by their style.

Only what attendance files need: cell values, no formulas evaluated (their cached value is read), no
formatting beyond "is this number a date, a time of day or an elapsed time". Pure: the standard library
only (zipfile, xml.etree.ElementTree.iterparse).
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO
from xml.etree.ElementTree import Element, iterparse

CellValue = str | float | int | bool | datetime | timedelta | None

MAX_COLUMNS = 256  # attendance files have a dozen; a cell at XFD1 must not make a 16,384-wide row
MAX_SHARED_CHARS = 64 * 1024 * 1024  # the shared-string table is held in memory: bound it

_EPOCH_1900 = datetime(1899, 12, 30)  # noqa: DTZ001 - Excel serials are wall-clock values, no zone
_EPOCH_1904 = datetime(1904, 1, 1)  # noqa: DTZ001
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_REL_NS_STRICT = "http://purl.oclc.org/ooxml/officeDocument/relationships"

# Built-in number formats (ECMA-376 §18.8.30, with the zh-CN locale's 27–36 and 50–58).
_BUILTIN_DATES = frozenset({14, 15, 16, 17, 22, 27, 28, 29, 30, 31, 36, *range(50, 59)})
_BUILTIN_CLOCK = frozenset({18, 19, 20, 21, 32, 33, 34, 35})
_BUILTIN_ELAPSED = frozenset({45, 46, 47})


class XlsxError(ValueError):
    """The file is not a readable .xlsx workbook (not a zip, no workbook part, broken XML)."""


@dataclass(frozen=True)
class SheetInfo:
    name: str
    part: str  # path inside the zip, e.g. "xl/worksheets/sheet1.xml"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _column_index(ref: str) -> int:
    """0-based column of a cell reference such as "C10"; -1 when it has no letters."""
    index = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            index = index * 26 + (ord(ch) - 64)
        elif "a" <= ch <= "z":
            index = index * 26 + (ord(ch) - 96)
        else:
            break
    return index - 1


def _format_kind(code: str) -> str | None:
    """'date', 'clock', 'elapsed' or None for a custom number format code."""
    stripped = re.sub(r'"[^"]*"|\\.|_.|\*.', "", code)  # quoted text, escapes, padding
    elapsed = re.search(r"\[(h+|m+|s+)\]", stripped, re.IGNORECASE) is not None
    stripped = re.sub(r"\[[^\]]*\]", "", stripped).lower()  # colours, conditions, locales
    if elapsed:
        return "elapsed"
    if "y" in stripped or "d" in stripped:
        return "date"
    if "h" in stripped or "s" in stripped:
        return "clock"
    return None


def _text_of(element: Element) -> str:
    """The text of a shared or inline string: its `t` runs, without phonetic (`rPh`) runs."""
    parts: list[str] = []
    for child in element:
        name = _local(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return "".join(parts)


class Workbook:
    """An open .xlsx: `sheets` in workbook order, `rows(sheet)` streamed. Close it (or use `with`)."""

    def __init__(self, file: IO[bytes]) -> None:
        try:
            self._zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError) as exc:
            raise XlsxError("not an .xlsx file (not a zip archive)") from exc
        try:
            self._date1904, self.sheets = self._read_workbook()
            self._styles = self._read_styles()
        except (KeyError, SyntaxError) as exc:
            self._zip.close()
            raise XlsxError(f"not an .xlsx workbook ({exc})") from exc
        self._shared: list[str] | None = None

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    # -- workbook parts ------------------------------------------------------------------------------

    def _read_workbook(self) -> tuple[bool, list[SheetInfo]]:
        targets: dict[str, str] = {}
        rels_name = "xl/_rels/workbook.xml.rels"
        if rels_name in self._zip.namelist():
            with self._zip.open(rels_name) as f:
                for _ev, el in iterparse(f):
                    if _local(el.tag) == "Relationship":
                        target = el.get("Target", "")
                        path = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
                        targets[el.get("Id", "")] = posixpath.normpath(path)
        date1904 = False
        sheets: list[SheetInfo] = []
        with self._zip.open("xl/workbook.xml") as f:
            for _ev, el in iterparse(f):
                name = _local(el.tag)
                if name == "workbookPr":
                    date1904 = el.get("date1904", "0").lower() in ("1", "true")
                elif name == "sheet":
                    rid = el.get(f"{{{_REL_NS}}}id") or el.get(f"{{{_REL_NS_STRICT}}}id") or ""
                    part = targets.get(rid, f"xl/worksheets/sheet{len(sheets) + 1}.xml")
                    sheets.append(SheetInfo(el.get("name", f"Sheet{len(sheets) + 1}"), part))
        return date1904, sheets

    def _read_styles(self) -> list[str | None]:
        """Per cell style index (a cell's `s`): 'date', 'clock', 'elapsed' or None."""
        if "xl/styles.xml" not in self._zip.namelist():
            return []
        custom: dict[int, str | None] = {}
        kinds: list[str | None] = []
        with self._zip.open("xl/styles.xml") as f:
            in_xfs = False
            for ev, el in iterparse(f, events=("start", "end")):
                name = _local(el.tag)
                if name == "cellXfs":
                    in_xfs = ev == "start"
                elif ev == "end" and name == "numFmt":
                    custom[int(el.get("numFmtId", "0"))] = _format_kind(el.get("formatCode", ""))
                elif ev == "end" and name == "xf" and in_xfs:
                    fmt = int(el.get("numFmtId", "0"))
                    if fmt in custom:
                        kinds.append(custom[fmt])
                    elif fmt in _BUILTIN_DATES:
                        kinds.append("date")
                    elif fmt in _BUILTIN_CLOCK:
                        kinds.append("clock")
                    elif fmt in _BUILTIN_ELAPSED:
                        kinds.append("elapsed")
                    else:
                        kinds.append(None)
        return kinds

    def _shared_strings(self) -> list[str]:
        if self._shared is not None:
            return self._shared
        shared: list[str] = []
        names = self._zip.namelist()
        part = next((n for n in ("xl/sharedStrings.xml", "xl/SharedStrings.xml") if n in names), None)
        if part is not None:
            total = 0
            with self._zip.open(part) as f:
                for _ev, el in iterparse(f):
                    if _local(el.tag) == "si":
                        text = _text_of(el)
                        total += len(text)
                        if total > MAX_SHARED_CHARS:
                            raise XlsxError("the workbook's shared strings are too large")
                        shared.append(text)
                        el.clear()
        self._shared = shared
        return shared

    # -- rows ------------------------------------------------------------------------------------------

    def dimension_rows(self, sheet: SheetInfo) -> int | None:
        """The last row the sheet declares (`<dimension ref="A1:F5000"/>`), read from its start only:
        a progress bar's total. None when absent."""
        try:
            with self._zip.open(sheet.part) as f:
                head = f.read(4096).decode("utf-8", "replace")
        except KeyError:
            return None
        found = re.search(r'<(?:\w+:)?dimension ref="[A-Z]*\d*:?[A-Z]*(\d+)"', head)
        return int(found.group(1)) if found else None

    def _convert(self, number: float, style: int) -> CellValue:
        kind = self._styles[style] if 0 <= style < len(self._styles) else None
        if kind is None:
            return int(number) if number.is_integer() else number
        if kind == "elapsed" or (kind == "clock" and number < 1):
            return timedelta(seconds=round(number * 86400))
        epoch = _EPOCH_1904 if self._date1904 else _EPOCH_1900
        try:
            return epoch + timedelta(seconds=round(number * 86400))
        except OverflowError:
            return number

    def _cell(self, el: Element) -> CellValue:
        kind = el.get("t", "n")
        if kind == "inlineStr":
            inline = next((c for c in el if _local(c.tag) == "is"), None)
            return _text_of(inline) if inline is not None else ""
        raw = next((c.text for c in el if _local(c.tag) == "v"), None)
        if raw is None:
            return None
        if kind == "s":
            shared = self._shared_strings()
            try:
                return shared[int(raw)]
            except (ValueError, IndexError):
                raise XlsxError(
                    f"cell {el.get('r', '?')} names a shared string that does not exist"
                ) from None
        if kind in ("str", "e", "d"):
            return raw
        if kind == "b":
            return raw.strip() in ("1", "true")
        try:
            number = float(raw)
        except ValueError:
            return raw
        return self._convert(number, int(el.get("s", "0") or 0))

    def rows(self, sheet: SheetInfo) -> Generator[tuple[int, list[CellValue]], None, None]:
        """(1-based row number, values by column) for every row the sheet stores, in order; columns
        without a cell are None. Rows the sheet does not store (blank) are not yielded."""
        self._shared_strings()  # before the sheet stream opens: one member read at a time
        try:
            member = self._zip.open(sheet.part)
        except KeyError as exc:
            raise XlsxError(f"sheet {sheet.name!r} has no part {sheet.part}") from exc
        with member:
            parent: Element | None = None
            number = 0
            values: list[CellValue] = []
            try:
                for ev, el in iterparse(member, events=("start", "end")):
                    name = _local(el.tag)
                    if ev == "start":
                        if name == "sheetData":
                            parent = el
                        elif name == "row":
                            given = el.get("r")
                            number = int(given) if given and given.isdigit() else number + 1
                            values = []
                        continue
                    if name == "c":
                        ref = el.get("r")
                        column = _column_index(ref) if ref else len(values)
                        if column < 0:
                            column = len(values)
                        if column < MAX_COLUMNS:
                            if column >= len(values):
                                values.extend([None] * (column + 1 - len(values)))
                            values[column] = self._cell(el)
                        el.clear()
                    elif name == "row":
                        yield number, values
                        if parent is not None:
                            parent.clear()  # drop finished rows: memory stays bounded
            except SyntaxError as exc:
                raise XlsxError(f"sheet {sheet.name!r} is not well-formed XML ({exc})") from exc
