"""The supervision report as a file, the same for the API's download and `lectern report`: an XLSX workbook
(机构汇总 per provider, 课次核对 per session with its reconciliation, 学时明细 one row per ledger entry,
continued on further sheets past 1,000,000 rows) or a CSV of the 学时明细 rows (UTF-8 with a byte-order
mark, for Excel on Chinese Windows). Streamed: one walk over the year (catalog.supervision.walk) writes
rows as it reads them, so memory stays bounded whatever the year holds; people are masked."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Row

from catalog.credit.export import csv_chunk
from catalog.credit.policies import current as current_policy
from catalog.db import Database
from catalog.domain import mask_phone
from catalog.supervision import xlsx
from catalog.supervision.reconcile import mask_name
from catalog.supervision.snapshot import all_providers, reading_snapshot
from catalog.supervision.walk import (
    Block,
    Course_,
    Provider,
    ProviderDone,
    ProviderFigures,
    SessionBlock,
    SessionFigures,
    count_entries,
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


def entry_row(p: Provider, course: Course_, f: SessionFigures | None, e: Row[Any]) -> list[xlsx.Cell]:
    return [
        e.id, p.id, p.name, p.sector or "", course.id, course.title, CATEGORY.get(e.category, e.category),
        e.session_id, f.title if f else "", ("超额" if f.over else "正常") if f else "", e.person_id,
        mask_name(e.person_name), mask_phone(e.person_phone or ""), KIND.get(e.kind, e.kind),
        round(float(e.minutes), 1), e.xueshi, STATUS.get(e.status, e.status), e.computed_at, e.decided_at,
        e.policy_version, e.reversal_of_id, e.note,
    ]  # fmt: skip


def _csv_cell(value: xlsx.Cell) -> str | int | float | None:
    if isinstance(value, datetime):
        return (value + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")  # Beijing time
    if isinstance(value, Decimal):
        return str(value)
    return value


class Chunks:
    """A sink that keeps what is written until `take` hands it on (to an HTTP response)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
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
    async with reading_snapshot(db) as conn:
        out.total = await count_entries(conn, year, [p.id for p in providers])
        versions = await policies(conn)
        current = await current_policy(conn)
        if on_progress:
            on_progress(0, out.total)
        # aclosing: a reader that went away closes the walk's cursor before its connection.
        async with contextlib.aclosing(walk(conn, year, providers, versions, current, people=True)) as blocks:
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
    async for block in blocks:
        if isinstance(block, ProviderDone):
            out.written.providers += 1
            continue
        f = block.figures if isinstance(block, SessionBlock) else None
        rows = [entry_row(block.provider, block.course, f, e) for e in block.entries]
        out.sink.write(csv_chunk([[_csv_cell(v) for v in row] for row in rows]))
        out.written.sessions += int(f is not None)
        await out.wrote(len(rows))


async def _xlsx(blocks: AsyncIterator[Block], out: _Output) -> None:
    book = xlsx.Workbook(out.sink)
    try:
        summary = book.deferred("机构汇总", PROVIDER_HEADER, position=0)
        sessions = book.deferred("课次核对", SESSION_HEADER, position=1)
        detail = book.sheet("学时明细", ENTRY_HEADER)
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
            rows = [entry_row(block.provider, block.course, f, e) for e in block.entries]
            count = len(rows)
            while rows:  # a sheet holds MAX_ROWS; the table goes on in 学时明细2, 3, …
                if detail.rows >= xlsx.MAX_ROWS:
                    book.end(detail)
                    part += 1
                    detail = book.sheet(f"学时明细{part}", ENTRY_HEADER)
                room = xlsx.MAX_ROWS - detail.rows
                detail.write(rows[:room])
                rows = rows[room:]
            await out.wrote(count)
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
