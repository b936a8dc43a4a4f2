"""The supervision report as a file, the same for the API's download and `lectern report`: an XLSX workbook
(机构汇总 per provider, 课次核对 per session with its reconciliation, 学时明细 one row per ledger entry,
continued on further sheets past 1,000,000 rows) or a CSV of the 学时明细 rows (UTF-8 with a byte-order
mark, for Excel on Chinese Windows). Streamed: one walk over the year (catalog.supervision.walk) writes
rows as it reads them, so memory stays bounded whatever the year holds; people are masked."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from catalog.credit.export import csv_chunk
from catalog.db import Database
from catalog.domain import mask_phone
from catalog.supervision import xlsx
from catalog.supervision.reconcile import mask_name
from catalog.supervision.snapshot import all_providers, reading
from catalog.supervision.walk import (
    E_CATEGORY,
    E_CENTS,
    E_COMPUTED,
    E_DECIDED,
    E_ID,
    E_KIND,
    E_MINUTES,
    E_NAME,
    E_NOTE,
    E_PERSON,
    E_PHONE,
    E_REVERSAL_OF,
    E_STATUS,
    E_VERSION,
    Block,
    Course_,
    Provider,
    ProviderDone,
    ProviderFigures,
    SessionBlock,
    SessionFigures,
    count_entries,
    latest,
    policies,
    walk,
)
from infra.errors import Invalid, NotFound

FORMATS = ("xlsx", "csv")
CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
}
STATUS = {"pending": "待审核", "registered": "已认定", "rejected": "已驳回", "revoked": "已撤销"}
KIND = {
    "live": "直播",
    "hls": "分流直播",
    "replay": "回放",
    "external": "外部会议",
    "offline": "线下培训",
    "mentorship": "师承带徒",
    "reversal": "冲正",
}
CATEGORY = {"public": "公需科目", "professional": "专业科目"}
ORG_TYPE = {"ce_base": "继续教育基地", "training_institution": "培训机构"}
REASON = {
    "duration": "学时超过课次时长",
    "not_held": "课次未举办",
    "attendance": "计入学时者无出勤记录",
    "enrolled": "计入人数超过报名人数",
    "capacity": "计入人数超过容量",
}
WINDOW = {"correction": "核定时间", "actual": "实际时间", "schedule": "计划时间", "none": "无"}
LABELS = {**CATEGORY, **KIND, **STATUS}  # the codes do not overlap

PROVIDER_HEADER = (
    "机构ID", "机构名称", "机构类型", "行业", "课程数", "课次数", "已举办课次", "超额课次", "学员人数",
    "学时记录数", "待审核学时", "已认定学时", "已驳回学时", "已撤销学时", "已审核记录数",
    "审核用时中位数（小时）", "审核用时P90（小时）", "待核查标记（未处理）", "待核查标记（全部）",
)  # fmt: skip
SESSION_HEADER = (
    "机构ID", "机构名称", "行业", "课程ID", "课程", "课次ID", "课次", "形式", "计划开始", "计时开始",
    "计时结束", "时长依据", "时长（分钟）", "每人最多可计学时", "个人最高学时", "计入学时人数",
    "无出勤记录人数", "有出勤记录人数", "学员人数", "报名人数", "容量", "学时记录数", "待审核学时",
    "已认定学时", "已驳回学时", "已撤销学时", "待核查标记（未处理）", "待核查标记（全部）", "核对结果",
    "超额原因",
)  # fmt: skip
ENTRY_HEADER = (
    "记录ID", "机构ID", "机构名称", "行业", "课程ID", "课程", "科目类别", "课次ID", "课次", "课次核对",
    "学员ID", "学员", "手机号", "方式", "计入分钟", "学时", "状态", "计算时间", "审核时间", "学时规则版本",
    "冲正记录ID", "备注",
)  # fmt: skip

Progress = Callable[[int, int], None]
Flush = Callable[[], Awaitable[None]]


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def provider_row(f: ProviderFigures) -> list[xlsx.Cell]:
    p = f.provider
    xs = f.sums.xs
    return [
        p.id, p.name, ORG_TYPE.get(p.type, p.type), p.sector or "", f.courses, f.sessions, f.sessions_held,
        f.over_sessions, f.attendees, f.sums.entries, xs["pending"], xs["registered"], xs["rejected"],
        xs["revoked"], f.decided, _hours(f.latency_median_s), _hours(f.latency_p90_s), f.sums.flags_open,
        f.sums.flags_total,
    ]  # fmt: skip


def session_row(p: Provider, course: Course_, f: SessionFigures) -> list[xlsx.Cell]:
    xs = f.sums.xs
    minutes = round((f.window[1] - f.window[0]).total_seconds() / 60, 1) if f.window else None
    start, end = f.window or (None, None)
    return [
        p.id, p.name, p.sector or "", course.id, course.title, f.session_id, f.title,
        KIND.get(f.kind, f.kind), f.scheduled_start, start, end,
        WINDOW[f.window_source], minutes, f.allowed_xs, f.max_person_xs, f.credited, f.without_attendance,
        f.attending, f.attendees, f.enrolled, f.capacity, f.sums.entries, xs["pending"], xs["registered"],
        xs["rejected"], xs["revoked"], f.sums.flags_open, f.sums.flags_total, "超额" if f.over else "正常",
        "；".join(REASON[r] for r in f.reasons),
    ]  # fmt: skip


class _Memo(dict[Any, str]):
    """A dict that makes a missing value with `make` (and keeps it): a plain, C-speed lookup per row."""

    def __init__(self, make: Callable[[Any], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Any) -> str:
        value = self[key] = self.make(key)
        return value


class Cells:
    """XLSX cells of texts, memoized: labels (category, kind, status) in Chinese, masked names and phones,
    and any other text, each made once per distinct value (a year repeats a few thousand of them)."""

    def __init__(self, strings: xlsx.Strings) -> None:
        self.strings = strings
        self.text = _Memo(self._text)
        self.label = _Memo(lambda code: self.text[LABELS.get(code, code)])
        self.name = _Memo(lambda raw: self.text[mask_name(raw)])
        self.phone = _Memo(lambda raw: self.text[mask_phone(raw or "")])
        # person id -> the person's three cells (id, masked name, masked phone): one lookup per row. As
        # many as the people in the report (about 80 bytes each), never as many as its rows.
        self.person: dict[int, str] = {}

    def person_cell(self, person: int, name: str | None, phone: str | None) -> str:
        cell = self.person[person] = f"<c><v>{person}</v></c>{self.name[name]}{self.phone[phone]}"
        return cell

    def _text(self, value: str) -> str:
        return f'<c t="s"><v>{self.strings.index_of(value)}</v></c>' if value else "<c/>"


class Detail:
    """The 学时明细 rows of one block (a session's entries, or a course's without a session): what all its
    rows share is made once, each entry then costs one string format. Rows go out as XLSX XML (shared
    strings, instants as Beijing-time dates) or as CSV rows, both with the same cells (ENTRY_HEADER)."""

    def __init__(self, p: Provider, course: Course_, f: SessionFigures | None) -> None:
        self.p, self.course, self.f = p, course, f
        self.check = ("超额" if f.over else "正常") if f else ""

    # -- XLSX ----------------------------------------------------------------------------------------------

    def xml(self, entries: Sequence[Sequence[Any]], cells: Cells) -> str:
        """The rows as XLSX XML: one format per row; the cells of texts and masked people come from
        `cells` (made once per distinct value), and runs of cells that repeat are made once per block."""
        p, course, f, text = self.p, self.course, self.f, cells.text
        head = (
            f"<c><v>{p.id}</v></c>{text[p.name]}{text[p.sector or '']}"
            f"<c><v>{course.id}</v></c>{text[course.title]}"
        )
        mid = f"<c><v>{f.session_id}</v></c>{text[f.title]}{text[self.check]}" if f else "<c/><c/><c/>"
        label, person_cells = cells.label, cells.person
        day = xlsx.EXCEL_DAY_OFFSET
        # A block's entries share few values of these: each run of cells is made once.
        around = _Memo(lambda category: f"{head}{label[category]}{mid}")
        middle = _Memo(
            lambda k: (
                f"{label[k[0]]}<c><v>{k[1]:.1f}</v></c><c><v>{k[2] / 100}</v></c>{label[k[3]]}"
                f'<c s="1"><v>{k[4] / 86400 + day}</v></c>'
            )
        )
        version_cell = _Memo(lambda v: f"<c><v>{v}</v></c>")
        out = []
        # One unpacking per row (the E_* order) instead of an index per cell.
        for (_s, person, cents, status, version, eid, kind, category, minutes, computed, decided,
             reversal, note, person_name, phone_number, *_) in entries:  # fmt: skip
            who = person_cells.get(person)
            if who is None:
                who = cells.person_cell(person, person_name, phone_number)
            cells_ = middle[kind, minutes, cents, status, computed]
            out.append(
                f"<row><c><v>{eid}</v></c>{around[category]}{who}{cells_}"
                + ("<c/>" if decided is None else f'<c s="1"><v>{decided / 86400 + day}</v></c>')
                + version_cell[version]
                + ("<c/>" if reversal is None else f"<c><v>{reversal}</v></c>")
                + (text[note] if note else "<c/>")
                + "</row>"
            )
        return "".join(out)

    # -- CSV -----------------------------------------------------------------------------------------------

    def rows(self, entries: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        p, course, f = self.p, self.course, self.f
        fixed = (p.id, _safe(p.name), _safe(p.sector or ""), course.id, _safe(course.title))
        session = (f.session_id, _safe(f.title), self.check) if f else ("", "", "")
        out = []
        for e in entries:
            decided = e[E_DECIDED]
            out.append(
                (e[E_ID], *fixed, CATEGORY.get(e[E_CATEGORY], e[E_CATEGORY]), *session, e[E_PERSON],
                 _safe(mask_name(e[E_NAME])), mask_phone(e[E_PHONE] or ""), KIND.get(e[E_KIND], e[E_KIND]),
                 f"{e[E_MINUTES]:.1f}", f"{e[E_CENTS] / 100:.2f}", STATUS.get(e[E_STATUS], e[E_STATUS]),
                 _beijing(e[E_COMPUTED]), _beijing(decided) if decided is not None else "", e[E_VERSION],
                 "" if e[E_REVERSAL_OF] is None else e[E_REVERSAL_OF], _safe(e[E_NOTE]))
            )  # fmt: skip
        return out


def _safe(text: str) -> str:
    """A text that a spreadsheet would run as a formula (= + - @ first: CSV injection) is quoted."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _beijing(epoch: float) -> str:
    """An instant (seconds since the epoch) in Beijing time, as the CSV shows instants."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch + 8 * 3600))


def _csv_cell(value: xlsx.Cell) -> str | int | float | None:
    if isinstance(value, datetime):
        return _beijing(value.timestamp())
    if isinstance(value, Decimal):
        return str(value)
    return value


class Chunks:
    """A sink that keeps what is written until `take` hands it on (to an HTTP response). Written from
    the workbook's deflate thread, taken from the event loop's: a lock keeps the two apart."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._lock = threading.Lock()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        with self._lock:
            self._parts.append(bytes(data))
            self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        with self._lock:
            out = b"".join(self._parts)
            self._parts.clear()
            self.size = 0
        return out


@dataclass
class Written:
    providers: int = 0
    sessions: int = 0
    entries: int = 0


async def write_report(
    db: Database,
    providers: Sequence[Provider],
    year: int,
    fmt: str,
    sink: xlsx.Sink,
    *,
    flush: Flush | None = None,
    on_progress: Progress | None = None,
    flush_bytes: int = 256 * 1024,
) -> Written:
    """Write the year's report for `providers` to `sink` in `fmt` (xlsx or csv). `flush` is awaited
    whenever some output is ready (an HTTP response sends it); `on_progress(entries written, total)`."""
    chunks = sink if isinstance(sink, Chunks) else None

    async def ready() -> None:
        if flush is not None and (chunks is None or chunks.size >= flush_bytes):
            await flush()

    out = _Output(sink, ready, on_progress)
    async with reading(db, connections=2) as reader:
        conn = reader.connections[0]
        out.total = await count_entries(conn, year, [p.id for p in providers])
        versions = await policies(conn)
        current = latest(versions)
        if on_progress:
            on_progress(0, out.total)
        # aclosing: a reader that went away closes the walk's cursor before its connection.
        async with contextlib.aclosing(
            walk(reader, year, providers, versions, current, detail=True)
        ) as blocks:
            await (_csv(blocks, out) if fmt == "csv" else _xlsx(blocks, out))
    if flush is not None:
        await flush()
    return out.written


@dataclass
class _Output:
    sink: xlsx.Sink
    ready: Flush
    on_progress: Progress | None
    total: int = 0
    written: Written = field(default_factory=Written)

    async def wrote(self, entries: int) -> None:
        self.written.entries += entries
        if self.on_progress:
            self.on_progress(self.written.entries, self.total)
        await self.ready()


async def _csv(blocks: AsyncIterator[Block], out: _Output) -> None:
    out.sink.write(csv_chunk([ENTRY_HEADER], first=True))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    async for block in blocks:
        if isinstance(block, ProviderDone):
            out.written.providers += 1
            continue
        f = block.figures if isinstance(block, SessionBlock) else None
        writer.writerows(Detail(block.provider, block.course, f).rows(block.entries))
        out.sink.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
        out.written.sessions += int(f is not None)
        await out.wrote(len(block.entries))


async def _xlsx(blocks: AsyncIterator[Block], out: _Output) -> None:
    book = xlsx.Workbook(out.sink)
    try:
        summary = book.deferred("机构汇总", PROVIDER_HEADER, position=0)
        sessions = book.deferred("课次核对", SESSION_HEADER, position=1)
        detail = book.sheet("学时明细", ENTRY_HEADER)
        cells = Cells(book.strings)
        part = 1
        async for block in blocks:
            if isinstance(block, ProviderDone):
                summary.write([provider_row(block.figures)])
                out.written.providers += 1
                continue
            f = block.figures if isinstance(block, SessionBlock) else None
            if f is not None:
                sessions.write([session_row(block.provider, block.course, f)])
                out.written.sessions += 1
            rows = Detail(block.provider, block.course, f)
            entries = block.entries
            while entries:  # a sheet holds MAX_ROWS; the table goes on in 学时明细2, 3, …
                if detail.rows >= xlsx.MAX_ROWS:
                    book.end(detail)
                    part += 1
                    detail = book.sheet(f"学时明细{part}", ENTRY_HEADER)
                room = xlsx.MAX_ROWS - detail.rows
                detail.write_xml(rows.xml(entries[:room], cells), len(entries[:room]))
                entries = entries[room:]
            await out.wrote(len(block.entries))
        book.end(detail)
        book.close()
    finally:
        book.discard()  # the spooled sheets, when the reader went away (after close: nothing left)


def format_of(path: str) -> str:
    """xlsx or csv, from a file name's extension (Invalid otherwise)."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext not in FORMATS:
        raise Invalid("the output file must end in .xlsx or .csv", field="out")
    return ext


async def report_to_file(
    db: Database, year: int, provider_id: int | None, path: Path, *, on_progress: Progress | None = None
) -> Written:
    """`lectern report`: the report of every provider (or one) at the operator's console, into `path`
    (written next to it first and moved into place when complete, so a failed run leaves no half file)."""
    fmt = format_of(path.name)
    async with db.reading() as conn:
        providers = await all_providers(conn, None if provider_id is None else [provider_id])
    if provider_id is not None and not providers:
        raise NotFound(f"provider {provider_id} not found", field="provider")
    fd, partial = tempfile.mkstemp(prefix=".lectern-report-", suffix=f".{fmt}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            written = await write_report(db, providers, year, fmt, out, on_progress=on_progress)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return written
