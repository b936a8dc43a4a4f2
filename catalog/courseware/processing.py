"""After an upload becomes a version (`processing`): check it and, for a video, make its replay (HLS)
through the recorder's pipeline, in the background (docs/courseware.md, "Check and rendition").

- A video is checked with PyAV (it opens, has a decodable video stream, its duration is > 0), read from
  the object store by ranged reads; then `render` records it as a recording of the version's own session
  (catalog.courseware.placement) and registers the `recordings` row exactly as `recording.finalized` does
  for a lecture (catalog.replays.register). Then `processing = ready`, with duration, size and picture.
- A PDF (the version's file or its slides) is parsed with pypdf for its page count.
- A file that fails a check: `processing = failed` with `check_error` "中文原因 / English reason".

The catalog knows nothing of live media (import-linter): the PyAV work is `CoursewareMedia`, which the
composition root provides under COURSEWARE_MEDIA (streaming/courseware_media.py, on recorder.ingest). The
`Processor` runs only where it is set; it picks versions in `processing` (claiming each, so that several
processes never work on one) and also aborts uploads left open past their expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Protocol, cast

import pypdf
from aiohttp import web
from sqlalchemy import or_, select, update

from catalog import replays
from catalog.courseware import placement, upload
from catalog.courseware.rules import Processing
from catalog.db import Database
from catalog.keys import DATABASE
from catalog.models import CoursewareVersion
from infra.appkeys import OBJECTS
from infra.errors import NotFound
from infra.events import RecordingFinalized
from infra.multipart import MultipartStore
from infra.objects import ObjectNotFound, ObjectStore, StoreUnavailable
from infra.objects_reader import ObjectReader
from infra.tasks import OwnedTasks

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often the processor looks for versions to process
CLAIM_LEASE = timedelta(hours=6)  # a claim older than this is a process that died: taken over
EXPIRED_UPLOADS_EVERY = timedelta(minutes=10)
STORE_RETRY_S = 30.0
HASH_CHUNK_BYTES = 8 * 1024 * 1024


class MediaRejected(Exception):
    """The file is not what it should be; the message is "中文原因 / English reason"."""


@dataclass(frozen=True)
class VideoCheck:
    duration_s: float
    width: int
    height: int
    copy_video: bool  # the recorder can take the video as it is (H.264 without B-frames)


class CoursewareMedia(Protocol):
    """The media work the catalog asks for (streaming/courseware_media.py implements it on the recorder)."""

    async def check_video(self, key: str, size: int) -> VideoCheck:
        """MediaRejected unless `key` is a decodable video with a duration."""

    async def render(
        self, key: str, size: int, check: VideoCheck, session_id: int, recording_id: str
    ) -> RecordingFinalized:
        """Record the video as recording `recording_id` of session `session_id` through the recorder's
        pipeline (hls/{session_id}/{recording_id}/...); what `recording.finalized` would announce."""


COURSEWARE_MEDIA: web.AppKey[CoursewareMedia] = web.AppKey("courseware_media", CoursewareMedia)


@dataclass(frozen=True)
class Rendition:
    """What `render` made: the version's replay."""

    version_id: int
    session_id: int
    recording_id: str
    duration_s: float
    master_key: str | None
    playlist_key: str

    def view(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "session_id": self.session_id,
            "recording_id": self.recording_id,
            "duration_s": self.duration_s,
            "master_url": replays.hls_url(self.master_key),
            "hls_url": replays.hls_url(self.playlist_key),
        }


@dataclass(frozen=True)
class Context:
    db: Database
    store: ObjectStore
    media: CoursewareMedia


# -- checks --------------------------------------------------------------------------------------------


def _pdf_pages(reader: ObjectReader) -> int:
    try:
        pages = len(pypdf.PdfReader(cast(IO[bytes], reader), strict=False).pages)
    except Exception as exc:  # pypdf raises many kinds on a broken file; every one means "not a PDF"
        raise MediaRejected(f"无法解析的PDF文件 / not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if pages <= 0:
        raise MediaRejected("PDF没有页面 / the PDF has no pages")
    return pages


async def check_pdf(store: ObjectStore, key: str) -> int:
    """The page count of the PDF at `key` (parsed by pypdf over ranged reads); MediaRejected if it is not
    one."""
    size = (await store.stat(key)).size
    loop = asyncio.get_running_loop()
    return await asyncio.to_thread(lambda: _pdf_pages(ObjectReader(store, key, size, loop)))


async def content_sha256(store: ObjectStore, key: str, size: int) -> str:
    """SHA-256 of a stored object, read in chunks (never whole)."""
    digest = hashlib.sha256()
    for start in range(0, size, HASH_CHUNK_BYTES):
        chunk = await store.get(key, start, min(start + HASH_CHUNK_BYTES, size) - 1)
        await asyncio.to_thread(digest.update, chunk)
    return digest.hexdigest()


# -- the steps -----------------------------------------------------------------------------------------


async def _version(db: Database, version_id: int) -> CoursewareVersion:
    async with db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id)
    if version is None:
        raise NotFound(f"courseware version {version_id} not found", field="version_id")
    return version


async def _set(db: Database, version_id: int, **values: Any) -> None:
    async with db.sessions.begin() as s:
        await s.execute(update(CoursewareVersion).where(CoursewareVersion.id == version_id).values(**values))


async def render(ctx: Context, version_id: int, check: VideoCheck | None = None) -> Rendition:
    """Make version `version_id`'s replay: record its video through the recorder's pipeline under the
    version's own session (placement.rendition_session), register the `recordings` row as a lecture's
    is registered, and note it on the version (`recording_id`). Checks the video first unless `check`
    is given. MediaRejected when the video is not one; the store's errors as they come."""
    version = await _version(ctx.db, version_id)
    if version.media_kind != "video":
        raise MediaRejected("只有视频才生成回放 / only videos get a replay")
    size = (await ctx.store.stat(version.object_key)).size
    check = check or await ctx.media.check_video(version.object_key, size)
    now = datetime.now(UTC)
    session_id = await placement.rendition_session(ctx.db, version_id, now)
    recording_id = secrets.token_urlsafe(12)  # as the live recorder names them
    log.info(
        "courseware rendition started version=%s session=%s recording=%s",
        version_id,
        session_id,
        recording_id,
    )
    event = await ctx.media.render(version.object_key, size, check, session_id, recording_id)
    await replays.register(ctx.db, event, datetime.now(UTC))
    await _set(ctx.db, version_id, recording_id=event.recording_id)
    log.info(
        "courseware rendition registered version=%s recording=%s duration_s=%.1f",
        version_id,
        event.recording_id,
        event.duration_s,
    )
    return Rendition(
        version_id=version_id,
        session_id=session_id,
        recording_id=event.recording_id,
        duration_s=event.duration_s,
        master_key=event.master_key,
        playlist_key=event.playlist_key,
    )


async def process(ctx: Context, version_id: int) -> str:
    """Check version `version_id` (and its slides), make its replay when it is a video; leave it `ready`
    or `failed` (with the reason). Returns the processing state it ends in."""
    version = await _version(ctx.db, version_id)
    values: dict[str, Any] = {}
    try:
        try:
            info = await ctx.store.stat(version.object_key)
        except ObjectNotFound:
            raise MediaRejected("文件不在存储中 / the uploaded file is missing from the store") from None
        values["size_bytes"] = info.size
        if version.media_kind == "pdf":
            values["page_count"] = await check_pdf(ctx.store, version.object_key)
        if version.slides_object_key:
            await check_pdf(ctx.store, version.slides_object_key)
        check = (
            await ctx.media.check_video(version.object_key, info.size)
            if version.media_kind == "video"
            else None
        )
        values["content_sha256"] = await content_sha256(ctx.store, version.object_key, info.size)
        if check is not None:
            values.update(duration_s=check.duration_s, width=check.width, height=check.height)
            await _set(ctx.db, version_id, **values)
            rendition = await render(ctx, version_id, check)
            values["duration_s"] = rendition.duration_s or check.duration_s
    except MediaRejected as exc:
        await _set(ctx.db, version_id, **values, processing=Processing.FAILED.value, check_error=str(exc))
        log.info("courseware version failed its check version=%s: %s", version_id, exc)
        return Processing.FAILED.value
    await _set(ctx.db, version_id, **values, processing=Processing.READY.value, check_error=None)
    log.info("courseware version ready version=%s", version_id)
    return Processing.READY.value


# -- the background worker ------------------------------------------------------------------------------


class Processor:
    """Processes versions in `processing`, one at a time (media work is heavy), oldest first: each is
    claimed in the database first (`processing_claimed_at`), so two processes never take the same one and a
    claim left by a process that died is taken over after CLAIM_LEASE. `wake()` looks at once."""

    def __init__(self, ctx: Context, poll_s: float = POLL_S) -> None:
        self._ctx = ctx
        self._poll_s = poll_s
        self._wakeup = asyncio.Event()
        self._tasks = OwnedTasks(log, "courseware processing")
        self._expired_at: datetime | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._tasks.spawn(self._run(), name="courseware-processing")

    async def close(self) -> None:
        await self._tasks.cancel()

    async def _claim(self, now: datetime) -> int | None:
        async with self._ctx.db.sessions.begin() as s:
            candidates = list(
                await s.scalars(
                    select(CoursewareVersion.id)
                    .where(
                        CoursewareVersion.processing == Processing.PROCESSING.value,
                        or_(
                            CoursewareVersion.processing_claimed_at.is_(None),
                            CoursewareVersion.processing_claimed_at < now - CLAIM_LEASE,
                        ),
                    )
                    .order_by(CoursewareVersion.id)
                    .limit(5)
                )
            )
        for version_id in candidates:
            async with self._ctx.db.sessions.begin() as s:
                claimed = await s.execute(
                    update(CoursewareVersion)
                    .where(
                        CoursewareVersion.id == version_id,
                        CoursewareVersion.processing == Processing.PROCESSING.value,
                        or_(
                            CoursewareVersion.processing_claimed_at.is_(None),
                            CoursewareVersion.processing_claimed_at < now - CLAIM_LEASE,
                        ),
                    )
                    .values(processing_claimed_at=now)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return version_id
        return None

    async def run_once(self) -> int | None:
        """Process the next version waiting, if any; its id."""
        now = datetime.now(UTC)
        if isinstance(self._ctx.store, MultipartStore) and (
            self._expired_at is None or now - self._expired_at >= EXPIRED_UPLOADS_EVERY
        ):
            self._expired_at = now
            await upload.abort_expired(self._ctx.db, self._ctx.store, now)
        version_id = await self._claim(now)
        if version_id is None:
            return None
        try:
            await process(self._ctx, version_id)
        except (StoreUnavailable, asyncio.CancelledError):
            # Not the file's fault (the store is down, the server is stopping): released, so that it is
            # taken again once the store answers, or at the next start, not only after the lease.
            await _set(self._ctx.db, version_id, processing_claimed_at=None)
            raise
        return version_id

    async def _run(self) -> None:
        while True:
            wait_s = self._poll_s
            try:
                if await self.run_once() is not None:
                    continue  # there may be more waiting
            except StoreUnavailable as exc:
                log.warning("courseware processing waits for the object store: %s", exc)
                wait_s = STORE_RETRY_S
            except Exception:
                # A bug or a database outage: the claim stays, so the version is tried again after its
                # lease, not in a loop.
                log.exception("courseware processing failed; the version is tried again after its lease")
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait_s)


PROCESSOR: web.AppKey[Processor] = web.AppKey("courseware_processor", Processor)


def context_of(app: web.Application) -> Context | None:
    """The processing context of a started app (its database, object store and courseware media), or
    None where no media are provided (then nothing can be checked or rendered)."""
    media, store = app.get(COURSEWARE_MEDIA), app.get(OBJECTS)
    if media is None or store is None or DATABASE not in app:
        return None
    return Context(app[DATABASE], store, media)


def wake(app: web.Application) -> None:
    """Look for versions to process now (after a version was added), where a processor runs."""
    processor = app.get(PROCESSOR)
    if processor is not None:
        processor.wake()


async def processing_context(app: web.Application) -> AsyncIterator[None]:
    """The processor, where the composition root provides COURSEWARE_MEDIA (the full app; a catalog on its
    own processes nothing)."""
    ctx = context_of(app)
    if ctx is None:
        yield
        return
    processor = Processor(ctx)
    app[PROCESSOR] = processor
    processor.start()
    yield
    await processor.close()
