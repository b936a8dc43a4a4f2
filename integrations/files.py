"""Attendance files people download from Tencent Meeting (会议成员明细 / 成员参会概况) and DingTalk (视频会议
参会人员, 直播观看数据), as .xlsx or as CSV saved from Excel, read into `ExternalRecord`s row by row.

What real exports do, and what this module therefore accepts (DOMAIN §6.1 "Exported attendance file",
§6.2, §7): meeting information rows above the header (会议主题, 会议号); Chinese header variants in any
order (入会时间 / 加入时间, 参会者 / 用户昵称（入会昵称）, a unit in the header such as 观看时长(分钟));
several rows per person (rejoins, several devices); dial-in (电话入会 / PSTN) rows; summary rows (合计,
总计) and notes at the end; blank rows; CSV in UTF-8 with or without BOM, GBK/GB18030 (Excel's
"CSV" on Chinese Windows) or UTF-16 ("Unicode text"); times with or without seconds, with / - . 年月日
separators, Excel date cells and Excel serial numbers. Times without a zone are Beijing time.

Every row yields one `FileRow`: a record, or the reason it was skipped (a malformed row names what is
wrong and is the only thing lost). A sheet's columns nobody knows are listed in `Layout.unknown_columns`
rather than guessed at. Memory stays bounded: CSV is read line by line, .xlsx through the streaming
reader in `integrations.xlsx`.

Pure: the standard library and `integrations.records` only.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import IO

from infra.errors import Invalid
from integrations.identity import sha256_phone
from integrations.records import ExternalRecord, Platform, Trust, make_row_key
from integrations.xlsx import CellValue, SheetInfo, Workbook, XlsxError

BEIJING = timezone(timedelta(hours=8))
HEADER_SEARCH_ROWS = 40  # meeting information above the header: Tencent uses 8 rows
SNIFF_BYTES = 64 * 1024
MAX_NAME_CHARS = 200  # the external_records column


class Field(StrEnum):
    NAME = "name"
    USER_ID = "user_id"
    UNION_ID = "union_id"
    JOB_NUMBER = "job_number"
    PHONE = "phone"
    JOIN = "join"
    LEAVE = "leave"
    FIRST_JOIN = "first_join"
    LAST_LEAVE = "last_leave"
    DURATION = "duration"  # of one row (one join)
    TOTAL = "total"  # a person's cumulative / watch time
    PLAYBACK = "playback"  # DingTalk replay watch time: never live attendance
    DEVICE = "device"
    DEPARTMENT = "department"
    ROLE = "role"
    JOIN_COUNT = "join_count"
    EXTERNAL_MEMBER = "external_member"
    WATCHED = "watched"


# Header spellings seen in exports (compared after `normalize_header`), one line per field.
_ALIASES: dict[Field, str] = {
    Field.NAME: "用户昵称 入会昵称 昵称 参会者 参会人 参会人员 参会成员 成员 成员昵称 成员名称 姓名 用户名 "
    "用户名称 名称 观看者 观众 观看人 学员 学员姓名 user_name usernick nick name",
    Field.USER_ID: "用户id userid user_id 用户账号 企业用户id 成员id 用户标识 账号",
    Field.UNION_ID: "unionid union_id",
    Field.JOB_NUMBER: "工号 员工工号 jobnumber",
    Field.PHONE: "手机号 手机号码 手机 电话 电话号码 联系电话 联系方式 phone mobile",
    Field.JOIN: "入会时间 加入时间 加入会议时间 进入会议时间 进入时间 开始时间 jointime join_time",
    Field.LEAVE: "离会时间 退会时间 离开时间 离开会议时间 退出时间 退出会议时间 结束时间 leavetime left_time "
    "leave_time",
    Field.FIRST_JOIN: "首次入会时间 首次加入时间 首次进入时间 首次观看时间 开始观看时间 第一次入会时间 "
    "firstwatchtime",
    Field.LAST_LEAVE: "最后退会时间 最后离会时间 最后离开时间 最后退出时间 最晚离会时间",
    Field.DURATION: "参会时长 单次参会时长 在会时长 本次参会时长 时长 duration",
    Field.TOTAL: "累计参会时长 累计时长 累计在会时长 总时长 总参会时长 观看时长 观看直播时长 直播观看时长 "
    "累计观看时长 watchlivetime",
    Field.PLAYBACK: "观看回放时长 回放观看时长 回放时长 watchplaybacktime",
    Field.DEVICE: "设备类型 入会设备 设备 终端类型 终端 房间类型 入会方式 参会方式 加入方式 设备名称 "
    "devicetype instanceid",
    Field.DEPARTMENT: "部门 所在部门 部门名称 deptname",
    Field.ROLE: "身份 角色 用户角色 参会角色 是否主持人",
    Field.JOIN_COUNT: "入会次数 参会次数 加入次数",
    Field.EXTERNAL_MEMBER: "是否外部成员 外部成员",
    Field.WATCHED: "是否观看",
}
ALIASES: dict[str, Field] = {alias: f for f, names in _ALIASES.items() for alias in names.split()}

# Header unit (in parentheses) -> seconds per unit.
UNITS: dict[str, float] = {
    "秒": 1, "s": 1, "sec": 1, "秒钟": 1, "分钟": 60, "分": 60, "min": 60, "mins": 60, "minutes": 60,
    "小时": 3600, "时": 3600, "h": 3600, "hour": 3600, "hours": 3600, "毫秒": 0.001, "ms": 0.001,
}  # fmt: skip
_SUMMARY_WORDS = ("合计", "总计", "小计", "汇总", "总数", "总人数", "总人次", "统计")
_NOTE_PREFIXES = ("注", "备注", "说明", "导出", "数据说明", "*")
_PSTN_MARKERS = ("电话", "pstn", "固话", "拨入", "dial", "手机拨号")
_MEETING_CODE_KEYS = ("会议号", "会议id", "会议编号", "会议code", "meetingcode")
_SUBJECT_KEYS = ("会议主题", "会议名称", "主题", "直播主题", "直播标题", "会议标题")
_MASKED_PHONE = re.compile(r"^\+?\d{3}\*{4}\d{4}$")
_DATETIME = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*[T ]?\s*"
    r"(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})(?:\.\d+)?)?\s*秒?$"
)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:\.\d+)?$")
_WORDS = re.compile(r"^(?:(\d+(?:\.\d+)?)\s*(?:小时|时|h))?\s*(?:(\d+(?:\.\d+)?)\s*(?:分钟|分|min|m))?\s*"
                    r"(?:(\d+(?:\.\d+)?)\s*(?:秒钟|秒|s))?$", re.IGNORECASE)  # fmt: skip
_EMPTY = frozenset({"", "-", "--", "—", "/", "无", "n/a", "null", "none"})


class Skip(StrEnum):
    """Why a row gave no record."""

    BLANK = "blank"
    SUMMARY = "summary"  # 合计 / 总计
    HEADER = "header"  # the header again (concatenated exports)
    NOTE = "note"  # a note or title line, not a person
    NO_TIME = "no_time"  # a person without any attendance time (invited, never came)
    MALFORMED = "malformed"  # what was there could not be read: `detail` says what


class Kind(StrEnum):
    INTERVALS = "intervals"  # one row per join, with join (and leave) times
    TOTALS = "totals"  # one row per person, with a total time only (R21: low trust)


@dataclass(frozen=True, slots=True)
class FileRow:
    ref: str  # "row 14" (CSV) or "成员参会明细!14" (.xlsx): where to look in the file
    record: ExternalRecord | None
    skip: Skip | None = None
    detail: str = ""
    name: str = ""  # the row's display name, for the report (also when skipped)


@dataclass(frozen=True)
class Layout:
    """What was found in the file: where its header is and what its columns mean."""

    file_format: str  # "csv" or "xlsx"
    sheet: str  # the sheet read ("" for CSV)
    header_row: int
    kind: Kind
    columns: dict[Field, int]
    units: dict[Field, str]
    headers: tuple[str, ...]
    unknown_columns: tuple[str, ...]
    meeting_code: str = ""
    subject: str = ""
    encoding: str = ""
    ignored_sheets: tuple[str, ...] = ()

    def guess_platform(self) -> Platform:
        """The platform the layout looks like, for a session not linked to one."""
        dingtalk = {Field.UNION_ID, Field.JOB_NUMBER, Field.DEPARTMENT, Field.PLAYBACK, Field.WATCHED}
        dingtalk |= {Field.EXTERNAL_MEMBER}
        if dingtalk & set(self.columns) or any(h in ("参会人", "姓名") for h in self.headers):
            return Platform.DINGTALK_CONF if self.kind is Kind.INTERVALS else Platform.DINGTALK_LIVE
        return Platform.TENCENT


# -- cell values ---------------------------------------------------------------------------------------


def normalize_header(text: str) -> tuple[str, str]:
    """(header without its unit, unit or "") in a comparable form: NFKC (full-width brackets and
    colons become ASCII), lower case, no spaces, no required-marks."""
    value = unicodedata.normalize("NFKC", text).lower()
    value = re.sub(r"[\s*\ufeff]", "", value)
    found = re.match(r"^(.*?)[(\[]([^()\[\]]*)[)\]]$", value)
    if found:
        base, inner = found.group(1), found.group(2)
        if inner in UNITS or inner in ("hh:mm:ss", "h:mm:ss", "时:分:秒"):
            return base, inner
        if base in ALIASES and value not in ALIASES:
            return base, ""
    return value, ""


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def _is_empty(value: CellValue) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _EMPTY)


def parse_time(value: CellValue) -> datetime | None:
    """An instant from a cell (Beijing time unless it says otherwise), None for an empty cell;
    ValueError saying why for anything else."""
    if _is_empty(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value} is not a time")
    if isinstance(value, datetime):
        return (value.replace(tzinfo=BEIJING) if value.tzinfo is None else value).astimezone(UTC)
    if isinstance(value, timedelta):
        raise ValueError("a time of day without a date")
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        found = _DATETIME.match(text)
        if found:
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in found.groups())
            try:
                return datetime(y, mo, d, h, mi, s, tzinfo=BEIJING).astimezone(UTC)
            except ValueError as exc:
                raise ValueError(f"{text!r} is not a valid date and time ({exc})") from None
        if re.fullmatch(r"\d+(\.\d+)?", text):
            value = float(text)
        else:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a date and time") from None
            return (parsed.replace(tzinfo=BEIJING) if parsed.tzinfo is None else parsed).astimezone(UTC)
    if value is None:
        return None
    number = float(value)
    if 20_000 < number < 100_000:  # an Excel serial date (1900 system) that lost its cell format
        naive = datetime(1899, 12, 30) + timedelta(seconds=round(number * 86400))  # noqa: DTZ001
        return naive.replace(tzinfo=BEIJING).astimezone(UTC)
    if 1e9 <= number < 1e10:  # Unix seconds
        return datetime.fromtimestamp(number, UTC)
    if 1e12 <= number < 1e13:  # Unix milliseconds
        return datetime.fromtimestamp(number / 1000, UTC)
    raise ValueError(f"{_text(value)} is not a date and time")


def parse_duration_s(value: CellValue, unit: str) -> float | None:
    """Seconds from a duration cell: "1:02:03", "62:03", "1小时2分3秒", "45分钟", an Excel elapsed-time
    cell, or a number in the header's unit ("观看时长(分钟)"). A bare number with no unit is refused:
    guessing minutes or seconds would be wrong by 60× one way or the other."""
    if _is_empty(value):
        return None
    if isinstance(value, bool | datetime):
        raise ValueError(f"{_text(value)} is not a duration")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(" ", "")
        found = _CLOCK.match(text)
        if found:
            h, m, s = (int(g) if g else 0 for g in found.groups())
            return float(h * 3600 + m * 60 + s)
        if not re.fullmatch(r"\d+(\.\d+)?", text):
            words = _WORDS.match(text)
            if words and any(words.groups()):
                h2, m2, s2 = (float(g) if g else 0.0 for g in words.groups())
                return h2 * 3600 + m2 * 60 + s2
            raise ValueError(f"{text!r} is not a duration")
        value = float(text)
    if value is None:
        return None
    number = float(value)
    if number < 0:
        raise ValueError(f"negative duration {_text(value)}")
    if unit in UNITS:
        return number * UNITS[unit]
    raise ValueError(
        f"duration {_text(value)} has no unit: name it in the header, e.g. 参会时长(分钟), or write 0:45:00"
    )


def normalize_phone(value: CellValue) -> str | None:
    """11 mainland mobile digits, or None (absent, masked as 138****8000, or not a mobile number)."""
    text = _text(value)
    if not text or "*" in text:
        return None
    digits = re.sub(r"[\s\-()+]", "", unicodedata.normalize("NFKC", text))
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if re.fullmatch(r"1\d{10}", digits) else None


# -- header and layout ---------------------------------------------------------------------------------


def _map_header(cells: Sequence[CellValue]) -> tuple[dict[Field, int], dict[Field, str], list[str]]:
    columns: dict[Field, int] = {}
    units: dict[Field, str] = {}
    unknown: list[str] = []
    for index, cell in enumerate(cells):
        text = _text(cell)
        if not text:
            continue
        base, unit = normalize_header(text)
        found = ALIASES.get(base)
        if found is None or found in columns:
            unknown.append(text)
            continue
        columns[found] = index
        if unit:
            units[found] = unit
    return columns, units, unknown


_WHO = frozenset({Field.NAME, Field.USER_ID, Field.UNION_ID, Field.PHONE, Field.JOB_NUMBER})
_WHEN = frozenset({Field.JOIN, Field.FIRST_JOIN, Field.DURATION, Field.TOTAL})


def _is_header(columns: dict[Field, int]) -> bool:
    return bool(_WHO & set(columns)) and bool(_WHEN & set(columns)) and len(columns) >= 2


def _meeting_info(cells: Sequence[CellValue], info: dict[str, str]) -> None:
    """会议主题 / 会议号 from the rows above the header: "key | value" or "key：value" in one cell."""
    texts = [_text(c) for c in cells if _text(c)]
    if not texts:
        return
    first = unicodedata.normalize("NFKC", texts[0]).replace(" ", "")
    key, _sep, rest = first.partition(":")
    key = key.lower()
    value = rest or (texts[1] if len(texts) > 1 else "")
    if key in _MEETING_CODE_KEYS:
        info.setdefault("meeting_code", re.sub(r"[\s-]", "", value))
    elif key in _SUBJECT_KEYS:
        info.setdefault("subject", value.strip())


def _layout_from(
    rows: Iterator[tuple[int, list[CellValue]]], file_format: str, sheet: str, encoding: str
) -> tuple[Layout, list[CellValue]] | None:
    """Reads rows until the header (within HEADER_SEARCH_ROWS); None if there is none."""
    info: dict[str, str] = {}
    for seen, (number, cells) in enumerate(rows):
        if seen >= HEADER_SEARCH_ROWS:
            return None
        columns, units, unknown = _map_header(cells)
        if not _is_header(columns):
            _meeting_info(cells, info)
            continue
        has_join = Field.JOIN in columns
        kind = Kind.INTERVALS if has_join else Kind.TOTALS
        layout = Layout(
            file_format=file_format,
            sheet=sheet,
            header_row=number,
            kind=kind,
            columns=columns,
            units=units,
            headers=tuple(_text(c) for c in cells),
            unknown_columns=tuple(unknown),
            meeting_code=info.get("meeting_code", ""),
            subject=info.get("subject", ""),
            encoding=encoding,
        )
        return layout, cells
    return None


# -- rows ----------------------------------------------------------------------------------------------


@dataclass
class _RowReader:
    layout: Layout
    platform: Platform
    meeting_ref: str
    header_keys: frozenset[str] = field(default_factory=frozenset)

    def read(self, ref: str, cells: Sequence[CellValue]) -> FileRow:
        non_empty = [c for c in cells if not _is_empty(c)]
        if not non_empty:
            return FileRow(ref, None, Skip.BLANK)
        get = self._getter(cells)
        name = _text(get(Field.NAME))[:MAX_NAME_CHARS]
        leading = [unicodedata.normalize("NFKC", _text(c)).replace(" ", "") for c in non_empty[:2]]
        if any(t.startswith(_SUMMARY_WORDS) for t in leading if isinstance(t, str)):
            return FileRow(ref, None, Skip.SUMMARY, name=name)
        first_key = normalize_header(_text(non_empty[0]))[0]  # cheap test first: most rows are not headers
        if first_key in self.header_keys and (
            sum(1 for c in non_empty if normalize_header(_text(c))[0] in self.header_keys) >= 2
        ):
            return FileRow(ref, None, Skip.HEADER)
        if len(non_empty) == 1 and (not name or name.startswith(_NOTE_PREFIXES)):
            # A title or note line: one cell, not a person's name.
            return FileRow(ref, None, Skip.NOTE, _text(non_empty[0])[:80], name=name)
        try:
            return self._record(ref, get, name)
        except ValueError as exc:
            return FileRow(ref, None, Skip.MALFORMED, str(exc), name=name)

    def _getter(self, cells: Sequence[CellValue]) -> Callable[[Field], CellValue]:
        columns = self.layout.columns

        def get(f: Field) -> CellValue:
            index = columns.get(f)
            return cells[index] if index is not None and index < len(cells) else None

        return get

    def _record(self, ref: str, get: Callable[[Field], CellValue], name: str) -> FileRow:
        user_id = _text(get(Field.UNION_ID)) or _text(get(Field.USER_ID)) or None
        phone = normalize_phone(get(Field.PHONE))
        if not (name or user_id or phone):
            raise ValueError("no name, user id or phone")
        device = _text(get(Field.DEVICE))[:32] or None
        pstn = any(m in (device or "").lower() for m in _PSTN_MARKERS) or any(
            m in name.lower() for m in ("电话用户", "pstn")
        )
        if device is None and not user_id and _MASKED_PHONE.match(name):
            pstn = True  # a dial-in shows as its masked number when the file has no device column
        units = self.layout.units
        if self.layout.kind is Kind.INTERVALS:
            join_at = parse_time(get(Field.JOIN))
            leave_at = parse_time(get(Field.LEAVE))
            duration = parse_duration_s(get(Field.DURATION), units.get(Field.DURATION, ""))
            if join_at is None:
                if leave_at is None and duration is None:
                    return FileRow(ref, None, Skip.NO_TIME, name=name)
                raise ValueError("no join time")
            if leave_at is None and duration is not None:
                leave_at = join_at + timedelta(seconds=duration)
            if leave_at is not None and leave_at < join_at:
                raise ValueError("leave time before join time")
            watched_s = None
            # Tencent and DingTalk export .xlsx; a CSV is a file someone re-saved (and could edit) in Excel.
            trust = Trust.HIGH if self.layout.file_format == "xlsx" else Trust.LOW
        else:
            join_at = leave_at = None
            watched_s = parse_duration_s(get(Field.TOTAL), units.get(Field.TOTAL, ""))
            if watched_s is None:
                watched_s = parse_duration_s(get(Field.DURATION), units.get(Field.DURATION, ""))
            # Read (and so checked) for the report's sake; totals carry no instants (R21).
            parse_time(get(Field.FIRST_JOIN))
            parse_time(get(Field.LAST_LEAVE))
            if watched_s is None:
                return FileRow(ref, None, Skip.NO_TIME, name=name)
            trust = Trust.LOW
        who = f"id:{user_id}" if user_id else f"phone:{sha256_phone(phone)}" if phone else f"name:{name}"
        record = ExternalRecord(
            platform=self.platform,
            external_meeting_ref=self.meeting_ref,
            row_key=make_row_key(
                "file",
                self.platform.value,
                who,
                join_at.isoformat() if join_at else None,
                leave_at.isoformat() if leave_at else None,
                watched_s,
                device,
            ),
            external_user_id=user_id,
            display_name=name,
            join_at=join_at,
            leave_at=leave_at,
            instance=device,
            is_pstn=pstn,
            phone=phone,
            phone_hashed=False,
            watched_s=watched_s,
            trust=trust,
            raw_ref=ref,
        )
        return FileRow(ref, record, name=name)


# -- files ---------------------------------------------------------------------------------------------


def _sniff_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(head) >= SNIFF_BYTES:
            return "utf-8"  # a character cut by the sniff's end
        return "gb18030"  # GBK's superset: what Excel writes on Chinese Windows


def _utf16_lines(file: IO[bytes], chunk_bytes: int = 64 * 1024) -> Iterator[str]:
    """Lines of a UTF-16 file (with BOM), decoded incrementally (b"\\n" is not a line end in UTF-16)."""
    decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
    pending = ""
    while True:
        chunk = file.read(chunk_bytes)
        pending += decoder.decode(chunk, final=not chunk)
        *lines, pending = pending.split("\n")
        yield from (line + "\n" for line in lines)
        if not chunk:
            break
    if pending:
        yield pending


class AttendanceFile:
    """An attendance file opened for reading: `layout`, then `rows()` once; `progress()` is the fraction
    read so far (for a progress bar). The caller owns `file` and closes it."""

    def __init__(self, file: IO[bytes], platform: Platform | None, meeting_ref: str) -> None:
        self._file = file
        self._workbook: Workbook | None = None
        self._done = 0
        self._total = 1
        file.seek(0, 2)
        self._size = max(1, file.tell())
        file.seek(0)
        head = file.read(SNIFF_BYTES)
        file.seek(0)
        if head.startswith(b"\xd0\xcf\x11\xe0"):
            raise Invalid("this is an old Excel .xls file: save it as .xlsx or CSV first", field="file")
        if head.startswith(b"PK\x03\x04"):
            self._rows, found = self._open_xlsx()
        else:
            self._rows, found = self._open_csv(head)
        self.layout = found
        self.platform = platform or found.guess_platform()
        self._reader = _RowReader(
            found,
            self.platform,
            meeting_ref or found.meeting_code or "file",
            frozenset(
                normalize_header(h)[0] for h in found.headers if h and normalize_header(h)[0] in ALIASES
            ),
        )

    # -- CSV

    def _csv_lines(self, encoding: str) -> Iterator[tuple[int, list[CellValue]]]:
        text_lines = (
            _utf16_lines(self._file)
            if encoding == "utf-16"
            else (raw.decode(encoding, errors="replace") for raw in self._file)
        )
        sample = ""
        for number, line in enumerate(text_lines, start=1):
            if not sample:
                sample = line
                self._delimiter = "\t" if line.count("\t") > line.count(",") else ","
            line = line.rstrip("\r\n")
            if "\ufffd" in line:
                self._bad_line = number
            try:
                cells: list[CellValue] = list(
                    next(csv.reader([line], delimiter=self._delimiter, strict=True))
                )
            except csv.Error as exc:
                self._csv_error = f"CSV: {exc}"
                cells = [line]
            except StopIteration:
                cells = []
            yield number, cells

    def _open_csv(self, head: bytes) -> tuple[Iterator[tuple[int, list[CellValue]]], Layout]:
        encoding = _sniff_encoding(head)
        self._delimiter = ","
        self._csv_error = ""
        self._bad_line = 0
        lines = self._csv_lines(encoding)
        found = _layout_from(lines, "csv", "", encoding)
        if found is None:
            raise Invalid(
                "no header row found in the first rows: expected columns such as 用户昵称/参会者/姓名 and "
                "入会时间/离会时间 or 观看时长",
                field="file",
            )
        self._total = self._size
        return lines, found[0]

    # -- XLSX

    def _open_xlsx(self) -> tuple[Iterator[tuple[int, list[CellValue]]], Layout]:
        try:
            book = Workbook(self._file)
        except XlsxError as exc:
            raise Invalid(str(exc), field="file") from None
        self._workbook = book
        candidates: list[tuple[Layout, SheetInfo]] = []
        try:
            for sheet in book.sheets:
                head = book.rows(sheet)
                found = _layout_from(head, "xlsx", sheet.name, "")
                head.close()
                if found is not None:
                    candidates.append((found[0], sheet))
        except XlsxError as exc:
            book.close()
            raise Invalid(str(exc), field="file") from None
        if not candidates:
            book.close()
            raise Invalid(
                "no sheet has a header row: expected columns such as 用户昵称/参会者/姓名 and "
                "入会时间/离会时间 or 观看时长",
                field="file",
            )
        # Presence is computed from per-join rows, never from a total (DOMAIN §6.1): detail sheets first.
        candidates.sort(key=lambda c: c[0].kind is not Kind.INTERVALS)
        layout, sheet = candidates[0]
        ignored = tuple(s.name for s in book.sheets if s.name != sheet.name)
        layout = replace(layout, ignored_sheets=ignored)
        self._total = max(1, (book.dimension_rows(sheet) or 0) - layout.header_row)
        rows = book.rows(sheet)
        for number, _cells in rows:
            if number >= layout.header_row:
                break
        return rows, layout

    # -- reading

    def rows(self) -> Iterator[FileRow]:
        xlsx = self.layout.file_format == "xlsx"
        prefix = f"{self.layout.sheet}!" if xlsx else "row "
        try:
            for number, cells in self._rows:
                self._done = number - self.layout.header_row if xlsx else self._file.tell()
                ref = f"{prefix}{number}"
                if not xlsx and self._csv_error:
                    detail, self._csv_error = self._csv_error, ""
                    yield FileRow(ref, None, Skip.MALFORMED, detail)
                    continue
                if not xlsx and self._bad_line == number:
                    enc = self.layout.encoding
                    yield FileRow(ref, None, Skip.MALFORMED, f"bytes that are not {enc} text")
                    continue
                yield self._reader.read(ref, cells)
        except XlsxError as exc:
            yield FileRow(
                f"{prefix}{self._done + self.layout.header_row + 1}", None, Skip.MALFORMED, str(exc)
            )
        finally:
            self._done = self._total

    def progress(self) -> float:
        return min(1.0, self._done / self._total)

    def close(self) -> None:
        if self._workbook is not None:
            self._workbook.close()

    def __enter__(self) -> AttendanceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_attendance(file: IO[bytes], *, platform: Platform | None, meeting_ref: str = "") -> AttendanceFile:
    """Opens a CSV or .xlsx attendance export (told apart by content, not by name); Invalid when it is
    neither or has no recognizable header. `platform` None: guessed from the layout."""
    return AttendanceFile(file, platform, meeting_ref)
