"""Importing a session's external attendance (a file, or pages of an API pull) as one batch, the manual
matching queue, matching a record by hand, and learners linking their own platform accounts.

Every way in (an exported file, an API pull, a Tencent webhook delivery) stores its records here, in
chunks, with a per-row outcome. An import is a batch (`external_import_batches`) with the hash of its
payload: the same payload again returns the first import's report and changes nothing; records are stored
by `row_key`, so a row seen in an earlier batch is not stored twice: it is reported as a duplicate, or,
when it was stored as an open join (no leave time yet) and now brings its leave time, that time is added
(reason `leave_time_added`). Every row gets a line in the report: matched (to whom, how), needs review
(why) or skipped (why). Identity rules: integrations.identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from typing import IO, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, EnrollmentStatus, mask_phone
from catalog.models import (
    AuditEntry,
    Course,
    Enrollment,
    ExternalAccountLink,
    ExternalImportBatch,
    ExternalRecordRow,
    Person,
    Session,
)
from infra.errors import Conflict, Forbidden, Invalid, NotFound
from integrations import identity
from integrations.files import AttendanceFile, FileRow, Skip, open_attendance
from integrations.identity import Decision, Link, Match, PhoneIndex, Reason
from integrations.records import ExternalRecord, Platform, Source, Vendor, vendor_of

CHUNK_ROWS = 1000  # rows parsed, matched and inserted together
REPORT_ROWS_STORED = 1000  # rows other than "matched" kept in the batch's stored report
MAX_FILE_BYTES = 20 * 1024 * 1024  # an upload's limit: 50,000 join rows are about 3 MB of .xlsx

MATCHED, NEEDS_REVIEW, SKIPPED = "matched", "needs_review", "skipped"
DUPLICATE = "duplicate"  # a skip reason: the row is already stored (an earlier batch or earlier in this one)
LEAVE_TIME_ADDED = "leave_time_added"  # a stored open join whose leave time this row brought


@dataclass(frozen=True, slots=True)
class RowResult:
    ref: str
    status: str  # matched, needs_review, skipped
    reason: str  # integrations.identity.Reason or integrations.files.Skip value, or "duplicate"
    name: str = ""
    person_id: int | None = None
    detail: str = ""

    def line(self) -> str:
        who = f" person {self.person_id}" if self.person_id else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.ref}\t{self.status}\t{self.reason}{detail}\t{self.name}{who}"


@dataclass
class ImportReport:
    batch_id: int
    session_id: int
    platform: str
    source: str
    file_name: str | None
    already_imported: bool
    counts: dict[str, int]
    reasons: dict[str, int]
    layout: dict[str, Any]
    rows: list[RowResult] = field(default_factory=list)  # every row, or only the first problems
    rows_complete: bool = True

    def as_json(self, max_rows: int = REPORT_ROWS_STORED) -> dict[str, Any]:
        problems = [r for r in self.rows if r.status != MATCHED]
        shown = problems[:max_rows]
        return {
            "batch_id": self.batch_id,
            "session_id": self.session_id,
            "platform": self.platform,
            "source": self.source,
            "file_name": self.file_name,
            "already_imported": self.already_imported,
            "counts": self.counts,
            "reasons": self.reasons,
            "layout": self.layout,
            "rows": [asdict(r) for r in shown],
            "rows_truncated": not self.rows_complete or len(problems) > len(shown),
        }


# -- the pipeline shared by files and API pulls ----------------------------------------------------------


async def _session_for_import(
    s: AsyncSession, caller: Caller | None, session_id: int
) -> tuple[Session, Course]:
    # Locks the session row on PostgreSQL: two imports of one session run one after the other.
    session = (await s.scalars(select(Session).where(Session.id == session_id).with_for_update())).first()
    if session is None:
        raise NotFound(f"session {session_id} not found", field="session_id")
    course = await queries.course_or_404(s, session.course_id)
    _require_provider(course, caller)
    return session, course


async def check_import_access(db: Database, caller: Caller, session_id: int) -> None:
    """NotFound / Forbidden before an upload is read: who may not import learns it without sending a file."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_provider(session.course, caller)


def _require_provider(course: Course, caller: Caller | None) -> None:
    """Provider administrators of the course (and platform admins); None is the operator's CLI."""
    if caller is None or caller.manages_provider(course.provider_org_id):
        return
    if course.status == CourseStatus.DRAFT and not caller.supervises_provider(course.provider_org_id):
        raise NotFound(f"course {course.id} not found", field="course_id")
    raise Forbidden("only the course provider's administrators import and match attendance")


async def _enrolled_phones(s: AsyncSession, course_id: int) -> dict[int, str]:
    rows = await s.execute(
        select(Person.id, Person.phone)
        .join(Enrollment, Enrollment.person_id == Person.id)
        .where(Enrollment.course_id == course_id, Enrollment.status == EnrollmentStatus.ENROLLED)
    )
    return {pid: phone for pid, phone in rows}


async def _links(s: AsyncSession, vendor: Vendor, uids: set[str]) -> dict[str, Link]:
    if not uids:
        return {}
    rows = await s.execute(
        select(
            ExternalAccountLink.external_user_id,
            ExternalAccountLink.person_id,
            ExternalAccountLink.verified_at,
        ).where(ExternalAccountLink.vendor == vendor.value, ExternalAccountLink.external_user_id.in_(uids))
    )
    return {uid: Link(pid, verified_at is not None) for uid, pid, verified_at in rows}


def _closes(join_at: datetime | None, leave_at: datetime | None, record: ExternalRecord) -> bool:
    """Whether `record` brings the leave time of a stored open join (never one before the join)."""
    if leave_at is not None or record.leave_at is None:
        return False
    return join_at is None or record.leave_at >= join_at


def _status_of(match: str) -> str:
    if match in identity.CREDITED:
        return MATCHED
    return SKIPPED if match == Match.REJECTED else NEEDS_REVIEW


def _result(row: FileRow, decision: Decision) -> RowResult:
    status = MATCHED if decision.match in identity.CREDITED else NEEDS_REVIEW
    return RowResult(row.ref, status, decision.reason.value, row.name, decision.person_id)


def _stored(
    record: ExternalRecord, decision: Decision, batch_id: int, session_id: int, now: datetime
) -> dict[str, Any]:
    phone_hash, scheme = identity.stored_phone_hash(record)
    return {
        "batch_id": batch_id,
        "session_id": session_id,
        "platform": record.platform.value,
        "row_key": record.row_key,
        "external_meeting_ref": record.external_meeting_ref[:128],
        "external_user_id": record.external_user_id,
        "phone_hash": phone_hash,
        "phone_scheme": scheme,
        "display_name": record.display_name[:200],
        "join_at": record.join_at,
        "leave_at": record.leave_at,
        "watched_s": record.watched_s,
        "instance": record.instance,
        "connection_id": record.connection_id,
        "is_pstn": record.is_pstn,
        "trust": record.trust.value,
        "person_id": decision.person_id,
        "match": decision.match.value,
        "matched_by": None,
        "matched_at": now if decision.person_id is not None else None,
        "row_ref": record.raw_ref[:200],
        "created_at": now,
        "updated_at": now,
    }


async def _store_chunk(
    s: AsyncSession,
    chunk: list[FileRow],
    *,
    batch_id: int,
    session_id: int,
    vendor: Vendor,
    phones: PhoneIndex,
    seen: set[str],
    now: datetime,
) -> list[RowResult]:
    records = [r.record for r in chunk if r.record is not None]
    keys = {r.row_key for r in records}
    platforms = {r.platform.value for r in records}
    stored: dict[str, tuple[int, datetime | None, datetime | None, str]] = {}
    if keys:
        stored = {
            key: (rid, join_at, leave_at, match)
            for rid, key, join_at, leave_at, match in await s.execute(
                select(
                    ExternalRecordRow.id,
                    ExternalRecordRow.row_key,
                    ExternalRecordRow.join_at,
                    ExternalRecordRow.leave_at,
                    ExternalRecordRow.match,
                ).where(
                    ExternalRecordRow.session_id == session_id,
                    ExternalRecordRow.platform.in_(platforms),
                    ExternalRecordRow.row_key.in_(keys),
                )
            )
        }
    links = await _links(s, vendor, {r.external_user_id for r in records if r.external_user_id})
    results: list[RowResult] = []
    inserts: list[dict[str, Any]] = []
    verify: set[str] = set()
    new_links: dict[str, int] = {}
    for row in chunk:
        record = row.record
        if record is None:
            skip = row.skip or Skip.MALFORMED
            results.append(RowResult(row.ref, SKIPPED, skip.value, row.name, None, row.detail))
            continue
        if record.row_key in stored:
            rid, join_at, leave_at, match = stored[record.row_key]
            if _closes(join_at, leave_at, record):
                # An open join stored by an earlier pull or webhook; this row brings its leave time.
                await s.execute(
                    update(ExternalRecordRow)
                    .where(ExternalRecordRow.id == rid)
                    .values(leave_at=record.leave_at, updated_at=now)
                )
                stored[record.row_key] = (rid, join_at, record.leave_at, match)
                results.append(RowResult(row.ref, _status_of(match), LEAVE_TIME_ADDED, row.name))
            else:
                results.append(RowResult(row.ref, SKIPPED, DUPLICATE, row.name))
            continue
        if record.row_key in seen:
            results.append(RowResult(row.ref, SKIPPED, DUPLICATE, row.name))
            continue
        seen.add(record.row_key)
        decision = identity.decide(record, links, phones)
        uid = record.external_user_id
        if uid and decision.verify_link:
            verify.add(uid)
            links[uid] = Link(links[uid].person_id, True)
        if uid and decision.new_link and decision.person_id is not None and uid not in links:
            new_links[uid] = decision.person_id
            links[uid] = Link(decision.person_id, True)
        inserts.append(_stored(record, decision, batch_id, session_id, now))
        results.append(_result(row, decision))
    if inserts:
        await s.execute(insert(ExternalRecordRow), inserts)
    if verify:
        await s.execute(
            update(ExternalAccountLink)
            .where(
                ExternalAccountLink.vendor == vendor.value,
                ExternalAccountLink.external_user_id.in_(verify),
                ExternalAccountLink.verified_at.is_(None),
            )
            .values(verified_at=now)
        )
    for uid, person_id in new_links.items():
        # Found by phone hash: the account is this learner's, confirmed by the platform's own data.
        s.add(
            ExternalAccountLink(
                person_id=person_id,
                vendor=vendor.value,
                external_user_id=uid,
                verified_at=now,
                created_at=now,
            )
        )
    return results


@dataclass
class _Tally:
    """The counts and the report lines of a batch, as its chunks are stored."""

    keep_all_rows: bool = False
    counts: dict[str, int] = field(
        default_factory=lambda: {"rows": 0, MATCHED: 0, NEEDS_REVIEW: 0, SKIPPED: 0}
    )
    reasons: dict[str, int] = field(default_factory=dict)
    kept: list[RowResult] = field(default_factory=list)
    complete: bool = True

    def add(self, results: list[RowResult]) -> None:
        for r in results:
            self.counts["rows"] += 1
            self.counts[r.status] += 1
            self.reasons[r.reason] = self.reasons.get(r.reason, 0) + 1
            if self.keep_all_rows:
                self.kept.append(r)
            elif r.status != MATCHED:
                if len(self.kept) < REPORT_ROWS_STORED:
                    self.kept.append(r)
                else:
                    self.complete = False

    def finish(self, batch: ExternalImportBatch, layout: dict[str, Any], now: datetime, status: str) -> None:
        stored_problems = [asdict(r) for r in self.kept if r.status != MATCHED][:REPORT_ROWS_STORED]
        batch.status = status
        batch.finished_at = now
        batch.counts = {**self.counts, "reasons": dict(self.reasons)}
        batch.report = {
            "layout": layout,
            "rows": stored_problems,
            "rows_truncated": self.counts[NEEDS_REVIEW] + self.counts[SKIPPED] > len(stored_problems),
        }


def _new_batch(
    session_id: int,
    platform: Platform,
    source: Source,
    created_by: int | None,
    payload_hash: str,
    now: datetime,
    file_name: str | None = None,
) -> ExternalImportBatch:
    return ExternalImportBatch(
        session_id=session_id,
        platform=platform.value,
        source=source.value,
        created_by=created_by,
        fetched_at=now,
        payload_hash=payload_hash,
        file_name=file_name,
        status="running",
        counts={},
        report={},
        error="",
    )


async def import_rows(
    db: Database,
    caller: Caller | None,
    *,
    session_id: int,
    platform: Platform,
    source: Source,
    payload_hash: str,
    chunks: AsyncIterator[list[FileRow]],
    now: datetime,
    file_name: str | None = None,
    layout: dict[str, Any] | None = None,
    tencent_secret_id: str | None = None,
    keep_all_rows: bool = False,
    on_chunk: Callable[[int], None] | None = None,
) -> ImportReport:
    """Stores one batch: every row matched, queued for review or skipped, in one transaction. The same
    payload (hash) imported before for this session returns that import's report and changes nothing."""
    async with db.sessions.begin() as s:
        _session, course = await _session_for_import(s, caller, session_id)
        earlier = (
            await s.scalars(
                select(ExternalImportBatch)
                .where(
                    ExternalImportBatch.session_id == session_id,
                    ExternalImportBatch.source == source.value,
                    ExternalImportBatch.payload_hash == payload_hash,
                    ExternalImportBatch.status == "done",
                )
                .order_by(ExternalImportBatch.id)
            )
        ).first()
        if earlier is not None:
            return _report_of(earlier, already_imported=True)
        batch = _new_batch(
            session_id, platform, source, caller.person_id if caller else None, payload_hash, now, file_name
        )
        s.add(batch)
        await s.flush()
        phones = PhoneIndex(await _enrolled_phones(s, course.id), tencent_secret_id)
        vendor = vendor_of(platform)
        seen: set[str] = set()
        tally = _Tally(keep_all_rows)
        async for chunk in chunks:
            results = await _store_chunk(
                s, chunk, batch_id=batch.id, session_id=session_id, vendor=vendor, phones=phones, seen=seen,
                now=now,
            )  # fmt: skip
            tally.add(results)
            if on_chunk is not None:
                on_chunk(len(results))
        tally.finish(batch, layout or {}, now, "done")
    return ImportReport(
        batch_id=batch.id,
        session_id=session_id,
        platform=platform.value,
        source=source.value,
        file_name=file_name,
        already_imported=False,
        counts=tally.counts,
        reasons=tally.reasons,
        layout=layout or {},
        rows=tally.kept,
        rows_complete=tally.complete,
    )


async def store_into(
    s: AsyncSession,
    batch: ExternalImportBatch,
    course_id: int,
    records: list[ExternalRecord],
    now: datetime,
    *,
    tencent_secret_id: str | None = None,
) -> list[RowResult]:
    """Stores records into an open batch inside the caller's transaction (Tencent webhook deliveries:
    one batch per session, kept open), with the same rules as `import_rows`; the batch's counts grow."""
    phones = PhoneIndex(await _enrolled_phones(s, course_id), tencent_secret_id)
    rows = [FileRow(r.raw_ref, r, name=r.display_name) for r in records]
    results = await _store_chunk(
        s, rows, batch_id=batch.id, session_id=batch.session_id, vendor=vendor_of(Platform(batch.platform)),
        phones=phones, seen=set(), now=now,
    )  # fmt: skip
    tally = _Tally()
    previous = dict(batch.counts or {})
    for key in tally.counts:
        tally.counts[key] = int(previous.get(key, 0))
    tally.reasons = {str(k): int(v) for k, v in dict(previous.get("reasons", {})).items()}
    tally.kept = [RowResult(**r) for r in (batch.report or {}).get("rows", [])]
    tally.add(results)
    tally.finish(batch, {}, now, "open")
    return results


async def open_batch(
    s: AsyncSession, session_id: int, platform: Platform, source: Source, now: datetime
) -> ExternalImportBatch:
    """The session's open batch of `source` (webhook deliveries), created on first use."""
    batch = (
        await s.scalars(
            select(ExternalImportBatch)
            .where(ExternalImportBatch.session_id == session_id, ExternalImportBatch.source == source.value)
            .order_by(ExternalImportBatch.id)
        )
    ).first()
    if batch is None:
        batch = _new_batch(session_id, platform, source, None, "", now)
        s.add(batch)
        await s.flush()
    return batch


async def unchanged_batch(
    db: Database, session_id: int, platform: Platform, caller: Caller | None, payload_hash: str, now: datetime
) -> int:
    """A batch recording an API pull that brought exactly what an earlier one did (nothing stored): the
    console and the automatic pull see that the meeting was pulled again."""
    async with db.sessions.begin() as s:
        batch = _new_batch(
            session_id, platform, Source.API, caller.person_id if caller else None, payload_hash, now
        )
        batch.status = "unchanged"
        batch.finished_at = now
        s.add(batch)
        await s.flush()
        return batch.id


async def failed_batch(
    db: Database,
    session_id: int,
    platform: Platform,
    source: Source,
    caller: Caller | None,
    message: str,
    now: datetime,
) -> int:
    """A batch recording a pull that failed (the console lists it with its error)."""
    async with db.sessions.begin() as s:
        batch = _new_batch(session_id, platform, source, caller.person_id if caller else None, "", now)
        batch.status = "failed"
        batch.finished_at = now
        batch.error = message[:1000]
        s.add(batch)
        await s.flush()
        return batch.id


def records_hash(records: Iterable[ExternalRecord]) -> str:
    """The payload hash of an API pull: its rows and what may still change in them."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(f"{r.row_key}|{r.leave_at}|{r.watched_s}\n".encode())
    return digest.hexdigest()


def _report_of(batch: ExternalImportBatch, *, already_imported: bool) -> ImportReport:
    counts = {k: v for k, v in batch.counts.items() if k != "reasons"}
    return ImportReport(
        batch_id=batch.id,
        session_id=batch.session_id,
        platform=batch.platform,
        source=batch.source,
        file_name=batch.file_name,
        already_imported=already_imported,
        counts=counts,
        reasons=dict(batch.counts.get("reasons", {})),
        layout=dict(batch.report.get("layout", {})),
        rows=[RowResult(**r) for r in batch.report.get("rows", [])],
        rows_complete=not batch.report.get("rows_truncated", False),
    )


async def record_chunks(records: AsyncIterator[list[ExternalRecord]]) -> AsyncIterator[list[FileRow]]:
    """API pages (lists of records) as the pipeline's chunks."""
    async for page in records:
        yield [FileRow(r.raw_ref, r, name=r.display_name) for r in page]


# -- files -----------------------------------------------------------------------------------------------


def payload_sha256(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    file.seek(0)
    while block := file.read(1024 * 1024):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


def _layout_json(opened: AttendanceFile) -> dict[str, Any]:
    layout = opened.layout
    return {
        "format": layout.file_format,
        "sheet": layout.sheet,
        "header_row": layout.header_row,
        "kind": layout.kind.value,
        "columns": {f.value: layout.headers[i] for f, i in layout.columns.items()},
        "unknown_columns": list(layout.unknown_columns),
        "ignored_sheets": list(layout.ignored_sheets),
        "encoding": layout.encoding,
        "meeting_code": layout.meeting_code,
        "subject": layout.subject,
    }


async def _file_chunks(rows: Iterator[FileRow]) -> AsyncIterator[list[FileRow]]:
    """The file's rows in chunks, each parsed in a worker thread (parsing is CPU work)."""
    loop = asyncio.get_running_loop()
    while True:
        chunk = await loop.run_in_executor(None, lambda: list(islice(rows, CHUNK_ROWS)))
        if not chunk:
            return
        yield chunk


def _linked_meeting(session: Session) -> tuple[Platform | None, str, str]:
    """(platform, meeting ref, meeting code) of the session's link, if any."""
    try:
        platform = Platform(session.external_platform)
    except ValueError:
        return None, "", ""
    ids = session.external_ids or {}
    ref = str(ids.get("meeting_id") or ids.get("conference_id") or ids.get("live_id") or "")
    if ids.get("sub_meeting_id"):
        ref = f"{ref}:{ids['sub_meeting_id']}"
    return platform, ref, re.sub(r"\D", "", str(ids.get("meeting_code") or ""))


async def import_file(
    db: Database,
    caller: Caller | None,
    *,
    session_id: int,
    file: IO[bytes],
    file_name: str,
    now: datetime,
    platform: Platform | None = None,
    keep_all_rows: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> ImportReport:
    """Imports an exported attendance file (CSV or .xlsx) into the session. The platform is the
    session's link, else `platform`, else guessed from the file's columns. Invalid for a file that
    cannot be read at all or that names another meeting than the session's."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_provider(session.course, caller)
    linked, ref, code = _linked_meeting(session)
    loop = asyncio.get_running_loop()
    payload_hash = await loop.run_in_executor(None, payload_sha256, file)
    opened = await loop.run_in_executor(
        None, lambda: open_attendance(file, platform=linked or platform, meeting_ref=ref)
    )
    with opened:
        file_code = re.sub(r"\D", "", opened.layout.meeting_code)
        if code and file_code and code != file_code:
            raise Invalid(
                f"this file is for meeting {opened.layout.meeting_code}, the session is linked to {code}",
                field="file",
                details={"file_meeting_code": file_code, "session_meeting_code": code},
            )

        def progressed(_rows: int) -> None:
            if on_progress is not None:
                on_progress(opened.progress())

        return await import_rows(
            db,
            caller,
            session_id=session_id,
            platform=opened.platform,
            source=Source.FILE,
            payload_hash=payload_hash,
            chunks=_file_chunks(opened.rows()),
            now=now,
            file_name=file_name[:255],
            layout=_layout_json(opened),
            keep_all_rows=keep_all_rows,
            on_chunk=progressed,
        )


# -- the manual queue ------------------------------------------------------------------------------------


def _participant_key(row: ExternalRecordRow) -> tuple[Any, ...]:
    """Rows of one participant in one batch, as a reviewer sees them (a hint for grouping, not identity)."""
    who = row.external_user_id or row.phone_hash or row.display_name
    return (row.batch_id, row.platform, who)


def _review_reason(row: ExternalRecordRow, links: dict[tuple[str, str], ExternalAccountLink]) -> str:
    if row.is_pstn:
        return Reason.DIAL_IN.value
    if row.external_user_id:
        link = links.get((vendor_of(Platform(row.platform)).value, row.external_user_id))
        return (Reason.LINK_NOT_VERIFIED if link else Reason.ACCOUNT_NOT_LINKED).value
    if row.phone_hash:
        return Reason.PHONE_NOT_ENROLLED.value
    return Reason.NAME_ONLY.value


async def review_queue(db: Database, caller: Caller, session_id: int) -> dict[str, Any]:
    """The session's records waiting for a person, grouped by participant within a batch."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_provider(session.course, caller)
        rows = list(
            await s.scalars(
                select(ExternalRecordRow)
                .where(
                    ExternalRecordRow.session_id == session_id, ExternalRecordRow.match.in_(identity.REVIEW)
                )
                .order_by(ExternalRecordRow.display_name, ExternalRecordRow.join_at, ExternalRecordRow.id)
            )
        )
        uids = {r.external_user_id for r in rows if r.external_user_id}
        links = {
            (link.vendor, link.external_user_id): link
            for link in await s.scalars(
                select(ExternalAccountLink).where(ExternalAccountLink.external_user_id.in_(uids))
            )
        }
        suggested = {link.person_id for link in links.values()}
        people = {
            pid: (name, phone)
            for pid, name, phone in await s.execute(
                select(Person.id, Person.name, Person.phone).where(Person.id.in_(suggested))
            )
        }
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        group = groups.get(_participant_key(row))
        if group is None:
            link = links.get((vendor_of(Platform(row.platform)).value, row.external_user_id or ""))
            hint = None
            if link is not None and link.person_id in people:
                name, phone = people[link.person_id]
                hint = {"person_id": link.person_id, "name": name, "phone": mask_phone(phone)}
            group = groups[_participant_key(row)] = {
                "record_id": row.id,
                "record_ids": [],
                "batch_id": row.batch_id,
                "platform": row.platform,
                "display_name": row.display_name,
                "external_user_id": row.external_user_id,
                "has_phone": row.phone_hash is not None,
                "is_pstn": row.is_pstn,
                "reason": _review_reason(row, links),
                "suggested_person": hint,
                "rows": [],
            }
        group["record_ids"].append(row.id)
        group["rows"].append(
            {
                "record_id": row.id,
                "row_ref": row.row_ref,
                "join_at": row.join_at.isoformat() if row.join_at else None,
                "leave_at": row.leave_at.isoformat() if row.leave_at else None,
                "watched_s": row.watched_s,
                "device": row.instance,
                "trust": row.trust,
            }
        )
    return {"session_id": session_id, "participants": len(groups), "items": list(groups.values())}


async def match_record(
    db: Database, caller: Caller, record_id: int, person_id: int | None, now: datetime
) -> dict[str, Any]:
    """A provider administrator decides who a record is: `person_id` (an enrolled learner of the course)
    or None (nobody to credit: rejected). The decision applies to the record and the other records of the
    same participant in its batch still waiting for review; it is written to the audit log. A record that
    carries a platform account with no link yet links that account to the person (verified: the provider
    vouches), so the next import matches it without help."""
    async with db.sessions.begin() as s:
        record = await s.get(ExternalRecordRow, record_id, with_for_update=True)
        if record is None:
            raise NotFound(f"external record {record_id} not found", field="record_id")
        session = await queries.session_or_404(s, record.session_id)
        _require_provider(session.course, caller)
        if person_id is not None:
            enrolled = await s.scalar(
                select(Enrollment.id).where(
                    Enrollment.person_id == person_id,
                    Enrollment.course_id == session.course_id,
                    Enrollment.status == EnrollmentStatus.ENROLLED,
                )
            )
            if enrolled is None:
                raise Conflict(f"person {person_id} is not enrolled in this course", field="person_id")
        group = [
            r
            for r in await s.scalars(
                select(ExternalRecordRow).where(
                    ExternalRecordRow.batch_id == record.batch_id,
                    ExternalRecordRow.match.in_(identity.REVIEW),
                )
            )
            if _participant_key(r) == _participant_key(record) and r.id != record.id
        ]
        previous = {"match": record.match, "person_id": record.person_id}
        ids = [record.id, *(r.id for r in group)]
        await s.execute(
            update(ExternalRecordRow)
            .where(ExternalRecordRow.id.in_(ids))
            .values(
                person_id=person_id,
                match=(Match.MANUAL if person_id is not None else Match.REJECTED).value,
                matched_by=caller.person_id,
                matched_at=now,
                updated_at=now,
            )
        )
        linked = False
        if person_id is not None and record.external_user_id:
            vendor = vendor_of(Platform(record.platform)).value
            exists = await s.scalar(
                select(ExternalAccountLink.id).where(
                    ExternalAccountLink.vendor == vendor,
                    ExternalAccountLink.external_user_id == record.external_user_id,
                )
            )
            if exists is None:
                s.add(
                    ExternalAccountLink(
                        person_id=person_id,
                        vendor=vendor,
                        external_user_id=record.external_user_id,
                        verified_at=now,
                        created_at=now,
                    )
                )
                linked = True
        s.add(
            AuditEntry(
                actor_person_id=caller.person_id,
                action="external_record.match" if person_id is not None else "external_record.reject",
                subject_type="external_record",
                subject_id=str(record.id),
                detail={
                    "session_id": record.session_id,
                    "person_id": person_id,
                    "record_ids": ids,
                    "previous": previous,
                    "linked_account": linked,
                },
                at=now,
            )
        )
    return {
        "record_id": record_id,
        "record_ids": ids,
        "person_id": person_id,
        "match": (Match.MANUAL if person_id is not None else Match.REJECTED).value,
        "linked_account": linked,
    }


# -- learners' own accounts ------------------------------------------------------------------------------

_USER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: what both platforms issue


def vendor_param(value: str) -> Vendor:
    aliases = {"tencent": Vendor.TENCENT, "dingtalk": Vendor.DINGTALK}
    if value not in aliases:
        raise NotFound(f"no platform {value!r}: tencent or dingtalk", field="platform")
    return aliases[value]


async def link_my_account(
    db: Database, caller: Caller, vendor: Vendor, external_user_id: Any, now: datetime
) -> dict[str, Any]:
    """Links the caller's own Tencent userid / DingTalk unionId, unverified: an import credits through it
    only once the platform's own data confirms it (the same record carries the learner's phone) or a
    provider matched a record of it by hand. Replaces the caller's earlier link for that platform."""
    if not isinstance(external_user_id, str) or not _USER_ID.match(external_user_id.strip()):
        raise Invalid("external_user_id: 1–128 printable characters without spaces", field="external_user_id")
    uid = external_user_id.strip()
    async with db.sessions.begin() as s:
        taken = (
            await s.scalars(
                select(ExternalAccountLink).where(
                    ExternalAccountLink.vendor == vendor.value, ExternalAccountLink.external_user_id == uid
                )
            )
        ).first()
        if taken is not None and taken.person_id != caller.person_id:
            raise Conflict("this account is linked to someone else", field="external_user_id")
        if taken is None:
            await s.execute(
                delete(ExternalAccountLink).where(
                    ExternalAccountLink.person_id == caller.person_id,
                    ExternalAccountLink.vendor == vendor.value,
                )
            )
            taken = ExternalAccountLink(
                person_id=caller.person_id, vendor=vendor.value, external_user_id=uid, verified_at=None,
                created_at=now,
            )  # fmt: skip
            s.add(taken)
    return _link_json(taken)


async def my_accounts(db: Database, caller: Caller) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        links = list(
            await s.scalars(
                select(ExternalAccountLink)
                .where(ExternalAccountLink.person_id == caller.person_id)
                .order_by(ExternalAccountLink.vendor)
            )
        )
    return {"accounts": [_link_json(link) for link in links]}


def _link_json(link: ExternalAccountLink) -> dict[str, Any]:
    return {
        "platform": link.vendor,
        "external_user_id": link.external_user_id,
        "verified": link.verified_at is not None,
        "verified_at": link.verified_at.isoformat() if link.verified_at else None,
    }
