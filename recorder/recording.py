"""The Recorder: one per live session; frames in on the event loop, segments out to the object store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from infra.objects import ObjectStore, StoreUnavailable
from recorder.finalize import PLAYLIST_TYPE, RecordingSummary, finalize
from recorder.frames import EncodedFrame
from recorder.layout import AngleTrack, Manifest, angle_key, manifest_key, media_playlist
from recorder.media import ClosedSegment, MediaPipeline
from recorder.spool import SpoolAccount, remove_recording_dir
from recorder.timeline import KeyframeCadence
from recorder.uploader import Uploader, UploadJob

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SEGMENT_TYPE = "video/iso.segment"
INIT_TYPE = "video/mp4"


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class Recorder:
    """Records one live session: `push()` every encoded frame, `finish()` at the end.

    Media work happens on one worker thread (a single-worker executor owns the PyAV containers). Each
    closed segment is written to `spool_dir/{session_id}/{recording_id}/` and uploaded in order, segment
    before the playlist and manifest that name it; while the store is down they wait there, up to
    `spool_limit_bytes` of not-yet-uploaded media (beyond it new segments are dropped, logged, counted)."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        session_id: int,
        recording_id: str,
        spool_dir: Path,
        request_keyframe: Callable[[str], None],
        segment_duration_s: float = 2.0,
        spool_limit_bytes: int = 512 * MiB,
        queue_limit_bytes: int = 64 * MiB,
        finish_timeout_s: float = 60.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        self._store = store
        self._sid = session_id
        self._rid = recording_id
        self._prefix = f"session={session_id} recording={recording_id}"
        self._dir = spool_dir / str(session_id) / recording_id
        self._segment_s = segment_duration_s
        self._request_keyframe = request_keyframe
        self._queue_limit_bytes = queue_limit_bytes
        self._finish_timeout_s = finish_timeout_s
        self._manifest = Manifest(session_id, recording_id, segment_duration_s)
        self._spool = SpoolAccount(spool_limit_bytes)
        self._uploader = Uploader(
            store,
            self._spool,
            log_prefix=self._prefix,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
        )
        self._cadence = KeyframeCadence(segment_duration_s)
        self._executor: ThreadPoolExecutor | None = None
        self._pipeline: MediaPipeline | None = None
        self._pending: list[EncodedFrame] = []
        self._pending_bytes = 0
        self._frames_ready = asyncio.Event()
        self._batch_done = asyncio.Event()  # the worker took a batch (what `feed` waits on)
        self._feeder: asyncio.Task[None] | None = None
        self._upload_task: asyncio.Task[None] | None = None
        self._closing = False
        self._gap_after_drop: set[str] = set()
        self._generation = 0
        self._queue_full_warned = False
        self.dropped_frames = 0

    @property
    def local_dir(self) -> Path:
        return self._dir

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"recorder-{self._rid}")
        self._pipeline = await loop.run_in_executor(self._executor, MediaPipeline, self._dir, self._segment_s)
        self._upload_task = asyncio.create_task(self._uploader.run(), name=f"recorder-upload-{self._rid}")
        self._feeder = asyncio.create_task(self._feed(), name=f"recorder-feed-{self._rid}")
        await self._publish_manifest()  # an open manifest from the start: recover() can find this recording
        log.info("%s recording started", self._prefix)

    def push(self, frame: EncodedFrame) -> None:
        """Non-blocking; called on the event loop for every frame of every track."""
        if self._closing or self._pipeline is None:
            return
        if self._pending_bytes + len(frame.data) > self._queue_limit_bytes:
            self.dropped_frames += 1
            if not self._queue_full_warned:
                log.warning(
                    "%s recorder worker behind by %d bytes; dropping frames",
                    self._prefix,
                    self._pending_bytes,
                )
                self._queue_full_warned = True
            return
        if self._manifest.started_at is None:
            # Timeline 0 is this frame (the pipeline places the first frame it gets at 0): noted in the
            # manifest so that recovery can date the last stored media of a crashed recording.
            self._manifest.started_at = time.time()
        if frame.track != "audio" and self._cadence.observe(
            frame.track, frame.pts, frame.time_base, frame.keyframe
        ):
            self._request_keyframe(frame.track)
        self._pending.append(frame)
        self._pending_bytes += len(frame.data)
        self._frames_ready.set()

    async def feed(self, frames: Sequence[EncodedFrame]) -> None:
        """`push()` with back-pressure, for media that comes faster than real time (a file being recorded,
        recorder.ingest): first wait until the worker's queue is under half its limit and the spool under
        half of its own, so that no frame and no segment is ever dropped."""
        while self._pending_bytes > self._queue_limit_bytes // 2:
            self._raise_if_feeder_failed()
            self._batch_done.clear()
            await self._batch_done.wait()
        if self._spool.pending_bytes > self._spool.limit_bytes // 2:
            await self._uploader.wait_idle()
        self._raise_if_feeder_failed()
        for frame in frames:
            self.push(frame)

    def _raise_if_feeder_failed(self) -> None:
        if self._feeder is not None and self._feeder.done():
            self._feeder.result()  # its exception, if it has one
            raise RuntimeError("the recorder no longer takes frames")

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._pipeline is not None
        try:
            while not (self._closing and not self._pending):
                await self._frames_ready.wait()
                self._frames_ready.clear()
                while self._pending:
                    batch, self._pending = self._pending, []
                    closed = await loop.run_in_executor(self._executor, self._pipeline.process, batch)
                    self._pending_bytes -= sum(len(f.data) for f in batch)
                    if self._pending_bytes < self._queue_limit_bytes // 2:
                        self._queue_full_warned = False
                    self._batch_done.set()
                    await self._accept(closed)
        finally:
            self._batch_done.set()  # a `feed` waiting on a worker that stopped wakes and sees why

    async def _accept(self, closed: list[ClosedSegment]) -> None:
        if not closed:
            return
        touched: list[str] = []
        for item in closed:
            angle, segment = item.angle, item.segment
            if item.init_path is not None:
                # Inits are tiny and every later segment of the period needs one: never dropped.
                self._spool.admit(self._key(angle, item.init_path.name), item.init_path.stat().st_size)
                self._uploader.enqueue(
                    UploadJob(self._key(angle, item.init_path.name), INIT_TYPE, path=item.init_path)
                )
            key = self._key(angle, segment.name)
            if not self._spool.admit(key, segment.size):
                log.error(
                    "%s spool full (%d of %d bytes pending): dropping %s",
                    self._prefix,
                    self._spool.pending_bytes,
                    self._spool.limit_bytes,
                    key,
                )
                await asyncio.to_thread(item.path.unlink, missing_ok=True)
                self._gap_after_drop.add(angle)
                continue
            if angle in self._gap_after_drop:
                segment = replace(segment, discontinuity=True)
                self._gap_after_drop.discard(angle)
            track = self._manifest.angles.setdefault(angle, AngleTrack(angle))
            track.codecs, track.width, track.height = item.codecs, item.width, item.height
            track.segments.append(segment)
            self._uploader.enqueue(UploadJob(key, SEGMENT_TYPE, path=item.path))
            if angle not in touched:
                touched.append(angle)
        self._generation += 1
        for angle in touched:
            track = self._manifest.angles[angle]
            text = media_playlist(track.segments, self._segment_s, final=False)
            self._uploader.enqueue(
                UploadJob(
                    self._key(angle, "index.m3u8"),
                    PLAYLIST_TYPE,
                    data=text.encode(),
                    generation=self._generation,
                )
            )
        await self._publish_manifest()

    async def _publish_manifest(self) -> None:
        data = self._manifest.to_json()
        # The local copy lists every spooled segment; recover() uploads what the store is missing.
        await asyncio.to_thread(write_atomic, self._dir / "manifest.json", data)
        self._generation += 1
        self._uploader.enqueue(
            UploadJob(
                manifest_key(self._sid, self._rid), "application/json", data=data, generation=self._generation
            )
        )

    def _key(self, angle: str, name: str) -> str:
        return angle_key(self._sid, self._rid, angle, name)

    async def finish(self) -> RecordingSummary:
        """Close the last segments, wait for every upload, then write the VOD playlists and MP4s.
        If the store stays down past `finish_timeout_s`, raise StoreUnavailable and leave the spool
        for `recover()`."""
        if self._feeder is None or self._pipeline is None or self._executor is None:
            raise RuntimeError("finish() before start()")
        self._closing = True
        self._frames_ready.set()
        try:
            await self._feeder
            closed = await asyncio.get_running_loop().run_in_executor(self._executor, self._pipeline.close)
            await self._accept(closed)
            try:
                await asyncio.wait_for(self._uploader.wait_idle(), self._finish_timeout_s)
            except TimeoutError as exc:
                log.error("%s store still unavailable at finish; left in spool %s", self._prefix, self._dir)
                raise StoreUnavailable(
                    "recording uploads did not complete; recover() will finish it"
                ) from exc
            summary = await finalize(self._store, self._manifest, self._dir, self._executor)
        finally:
            await self._stop()
        await asyncio.to_thread(remove_recording_dir, self._dir)
        log.info("%s recording finalized: %.1f s, %d bytes", self._prefix, summary.duration_s, summary.bytes)
        return summary

    async def abandon(self) -> None:
        """Stop without finalizing (shutdown without a session end): the spool and the open manifest stay
        for `recover()`."""
        self._closing = True
        await self._stop()

    async def _stop(self) -> None:
        for task in (self._feeder, self._upload_task):
            if task is not None and not task.done():
                task.cancel()
        tasks = [t for t in (self._feeder, self._upload_task) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    @property
    def health(self) -> dict[str, Any]:
        feeder_error = None
        if self._feeder is not None and self._feeder.done() and not self._feeder.cancelled():
            exc = self._feeder.exception()
            feeder_error = repr(exc) if exc is not None else None
        return {
            "session_id": self._sid,
            "recording_id": self._rid,
            "spool_bytes": self._spool.pending_bytes,
            "spool_limit_bytes": self._spool.limit_bytes,
            "spool_over_limit": self._spool.over_limit,
            "spool_dropped_segments": self._spool.dropped_files,
            "upload_backlog": self._uploader.backlog,
            "store_available": self._uploader.store_available,
            "segments": sum(len(t.segments) for t in self._manifest.angles.values()),
            "queued_frame_bytes": self._pending_bytes,
            "dropped_frames": self.dropped_frames,
            "last_error": feeder_error or self._uploader.last_error,
        }
