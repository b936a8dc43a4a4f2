"""Resumable courseware uploads straight to the object store (docs/courseware.md, "Upload").

An expert starts an upload (declared size, content type); the server starts a multipart upload in the
object store and hands out short-lived URLs per part on demand; the browser PUTs the parts there (never
through the application), asks which parts are stored to resume after a cut connection or a reload, and
completes with the parts' ETags, which are checked against what the store lists. A completed upload
becomes a version through catalog.courseware.authoring.add_version.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import fields as f
from catalog.db import Database
from catalog.domain import Caller, Role
from catalog.models import CoursewareUpload
from infra.errors import Conflict, Forbidden, Invalid, NotFound
from infra.multipart import MAX_PARTS, MultipartStore, StoredPart, UploadNotFound

log = logging.getLogger(__name__)

MiB = 1024 * 1024
PART_BYTES = 16 * MiB  # the usual part; larger for files of more than MAX_PARTS of them
PART_URL_TTL_S = 600  # a part URL is good for ten minutes (the PUT must start before then)
UPLOAD_TTL = timedelta(days=7)  # an upload not completed by then is aborted (its parts deleted)
MAX_URLS = 100  # part URLs per request
FILE_NAME_MAX = 255
PDF = "application/pdf"
# Content types experts may upload: any video/* (PyAV decides later whether it is one) and PDF slides.
EXTENSIONS = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm", PDF: ".pdf"}


class State:
    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass(frozen=True)
class UploadRequest:
    file_name: str
    size_bytes: int
    content_type: str


# -- pure rules ---------------------------------------------------------------------------------------


def part_size_for(size_bytes: int) -> int:
    """16 MiB parts, or whole MiB large enough that the file fits in MAX_PARTS of them."""
    return max(PART_BYTES, math.ceil(size_bytes / MAX_PARTS / MiB) * MiB)


def part_count(size_bytes: int, part_size: int) -> int:
    return max(1, math.ceil(size_bytes / part_size))


def expected_size(number: int, size_bytes: int, part_size: int) -> int:
    """Bytes part `number` must hold: `part_size`, the last one the rest."""
    return min(part_size, size_bytes - (number - 1) * part_size)


def check_content_type(content_type: str) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    top, _, sub = kind.partition("/")
    if kind != PDF and not (top == "video" and sub and all(c.isalnum() or c in ".+-" for c in sub)):
        raise Invalid(
            "only videos (video/*) and slides as PDF (application/pdf) are accepted", field="content_type"
        )
    return kind


def upload_request(body: Mapping[str, Any], max_bytes: int) -> UploadRequest:
    f.reject_unknown(body, {"file_name", "size_bytes", "content_type"})
    name = f.required_text(body, "file_name", max_len=FILE_NAME_MAX)
    size = f.integer(body, "size_bytes", minimum=1)
    assert size is not None
    if size > max_bytes:
        raise Invalid(
            f"the file is larger than the {max_bytes} bytes allowed",
            field="size_bytes",
            details={"max_bytes": max_bytes},
        )
    ctype = check_content_type(f.required_text(body, "content_type", max_len=128))
    return UploadRequest(name, size, ctype)


def part_numbers(body: Mapping[str, Any]) -> list[int]:
    f.reject_unknown(body, {"numbers"})
    numbers = f.id_list(body, "numbers", max_items=MAX_URLS)
    if not numbers:
        raise Invalid("numbers must name at least one part", field="numbers")
    return numbers


def completion(body: Mapping[str, Any]) -> list[tuple[int, str]]:
    """The `parts: [{number, etag}]` of a completion, in ascending order of number."""
    f.reject_unknown(body, {"parts"})
    raw = body.get("parts")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_PARTS:
        raise Invalid(f"parts must be a list of 1 to {MAX_PARTS} {{number, etag}}", field="parts")
    out: dict[int, str] = {}
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"number", "etag"}:
            raise Invalid("each part is {number, etag}", field="parts")
        number, etag = item["number"], item["etag"]
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PARTS:
            raise Invalid(f"part numbers run from 1 to {MAX_PARTS}", field="parts")
        if not isinstance(etag, str) or not 1 <= len(etag) <= 128:
            raise Invalid("a part's etag is the ETag its upload answered", field="parts")
        if number in out:
            raise Invalid(f"part {number} is listed twice", field="parts")
        out[number] = etag.strip().strip('"')
    return sorted(out.items())


def verify_parts(
    wanted: Sequence[tuple[int, str]], stored: Sequence[StoredPart], size_bytes: int, part_size: int
) -> None:
    """Invalid unless `wanted` names exactly parts 1..N of the file, each stored with that etag and the
    size the declared file gives it."""
    count = part_count(size_bytes, part_size)
    numbers = [n for n, _ in wanted]
    missing = sorted(set(range(1, count + 1)) - set(numbers))
    extra = sorted(set(numbers) - set(range(1, count + 1)))
    if missing or extra:
        raise Invalid(
            f"a completion names parts 1 to {count}",
            field="parts",
            details={"missing": missing[:50], "unexpected": extra[:50]},
        )
    by_number = {p.number: p for p in stored}
    wrong = [
        n
        for n, etag in wanted
        if (p := by_number.get(n)) is None
        or p.etag != etag
        or p.size != expected_size(n, size_bytes, part_size)
    ]
    if wrong:
        raise Invalid(
            "some parts are not stored with these ETags and sizes: upload them again",
            field="parts",
            details={"parts": wrong[:50]},
        )


# -- the service ----------------------------------------------------------------------------------------


def view(upload: CoursewareUpload, stored: Sequence[StoredPart] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": upload.id,
        "file_name": upload.file_name,
        "content_type": upload.content_type,
        "size_bytes": upload.size_bytes,
        "part_size": upload.part_size,
        "part_count": part_count(upload.size_bytes, upload.part_size),
        "state": upload.state,
        "version_id": upload.version_id,
        "created_at": upload.created_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
        "completed_at": upload.completed_at.isoformat() if upload.completed_at else None,
    }
    if stored is not None:
        good = [p for p in stored if p.size == expected_size(p.number, upload.size_bytes, upload.part_size)]
        out["parts"] = [{"number": p.number, "etag": p.etag, "size": p.size} for p in good]
        out["stored_bytes"] = sum(p.size for p in good)
    return out


async def _own(s: AsyncSession, caller: Caller, upload_id: int, *, lock: bool = False) -> CoursewareUpload:
    upload = await s.get(CoursewareUpload, upload_id, with_for_update=lock)
    if upload is None or upload.owner_person_id != caller.person_id:
        raise NotFound(f"upload {upload_id} not found", field="upload_id")
    return upload


def _open(upload: CoursewareUpload, now: datetime) -> None:
    if upload.state != State.OPEN:
        raise Conflict(
            f"upload {upload.id} is {upload.state}", field="upload_id", details={"state": upload.state}
        )
    if upload.expires_at <= now:
        raise Conflict(f"upload {upload.id} expired; start it again", field="upload_id")


async def start(
    db: Database, store: MultipartStore, caller: Caller, req: UploadRequest, now: datetime
) -> dict[str, Any]:
    if not caller.holds(Role.EXPERT, anywhere=True):
        raise Forbidden("only experts upload courseware")
    ext = EXTENSIONS.get(req.content_type, ".pdf" if req.content_type == PDF else ".bin")
    key = f"courseware/{caller.person_id}/{uuid.uuid4().hex}{ext}"
    s3_upload_id = await store.start_multipart(key, req.content_type)
    async with db.sessions.begin() as s:
        upload = CoursewareUpload(
            owner_person_id=caller.person_id,
            object_key=key,
            s3_upload_id=s3_upload_id,
            size_bytes=req.size_bytes,
            part_size=part_size_for(req.size_bytes),
            content_type=req.content_type,
            file_name=req.file_name,
            state=State.OPEN,
            created_at=now,
            expires_at=now + UPLOAD_TTL,
        )
        s.add(upload)
        await s.flush()
        out = view(upload, [])
    log.info("upload started upload=%s person=%s bytes=%d", upload.id, caller.person_id, req.size_bytes)
    return out


async def get(db: Database, store: MultipartStore, caller: Caller, upload_id: int) -> dict[str, Any]:
    """The upload and, while it is open, the parts the store holds (what a resuming browser skips)."""
    async with db.sessions.begin() as s:
        upload = await _own(s, caller, upload_id)
    stored: list[StoredPart] | None = None
    if upload.state == State.OPEN:
        try:
            stored = await store.list_parts(upload.object_key, upload.s3_upload_id)
        except UploadNotFound:
            stored = []
    return view(upload, stored)


async def part_urls(
    db: Database, store: MultipartStore, caller: Caller, upload_id: int, numbers: Sequence[int], now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        upload = await _own(s, caller, upload_id)
        _open(upload, now)
    count = part_count(upload.size_bytes, upload.part_size)
    beyond = [n for n in numbers if n > count]
    if beyond:
        raise Invalid(f"this upload has parts 1 to {count}", field="numbers", details={"numbers": beyond})
    parts = [
        {
            "number": n,
            "size": expected_size(n, upload.size_bytes, upload.part_size),
            "url": await store.part_url(upload.object_key, upload.s3_upload_id, n, PART_URL_TTL_S),
        }
        for n in numbers
    ]
    return {"parts": parts, "expires_at": (now + timedelta(seconds=PART_URL_TTL_S)).isoformat()}


async def complete(
    db: Database,
    store: MultipartStore,
    caller: Caller,
    upload_id: int,
    parts: Sequence[tuple[int, str]],
    now: datetime,
) -> dict[str, Any]:
    """Join the parts into the object, after checking them against the store's own list (ListParts): the
    client's word about its ETags is not taken."""
    async with db.sessions.begin() as s:
        upload = await _own(s, caller, upload_id, lock=True)
        _open(upload, now)
        try:
            stored = await store.list_parts(upload.object_key, upload.s3_upload_id)
        except UploadNotFound:
            raise Conflict(f"upload {upload_id} is gone from the object store; start it again") from None
        verify_parts(parts, stored, upload.size_bytes, upload.part_size)
        await store.complete_multipart(upload.object_key, upload.s3_upload_id, parts)
        upload.state = State.COMPLETED
        upload.completed_at = now
        out = view(upload)
    log.info("upload completed upload=%s person=%s bytes=%d", upload_id, caller.person_id, upload.size_bytes)
    return out


async def abort(
    db: Database, store: MultipartStore, caller: Caller, upload_id: int, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        upload = await _own(s, caller, upload_id, lock=True)
        if upload.state != State.OPEN:
            raise Conflict(f"upload {upload_id} is {upload.state}", field="upload_id")
        await store.abort_multipart(upload.object_key, upload.s3_upload_id)
        upload.state = State.ABORTED
        out = view(upload)
    log.info("upload aborted upload=%s person=%s", upload_id, caller.person_id)
    return out


async def abort_expired(db: Database, store: MultipartStore, now: datetime, limit: int = 50) -> int:
    """Abort open uploads past their expiry (their parts would otherwise stay in the store forever)."""
    async with db.sessions.begin() as s:
        stale = list(
            await s.scalars(
                select(CoursewareUpload)
                .where(CoursewareUpload.state == State.OPEN, CoursewareUpload.expires_at <= now)
                .order_by(CoursewareUpload.id)
                .limit(limit)
            )
        )
        for upload in stale:
            await store.abort_multipart(upload.object_key, upload.s3_upload_id)
            upload.state = State.ABORTED
    if stale:
        log.info("aborted %d expired uploads", len(stale))
    return len(stale)
