"""Recordings of live rooms: one recorder.Recorder per live session, fed the encoded frames of the
room's track slots; finalized off the hot path when the room ends and announced as recording.finalized;
recordings a crash left open finished at start-up; the recorders' spool and upload state for /readyz.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from aiohttp import web

from infra import events
from infra.appkeys import OBJECTS, READINESS, SETTINGS, event_sink
from infra.bus import BusUnavailable, EventSink
from infra.errors import Unavailable
from infra.objects import ObjectStore, StoreUnavailable
from infra.tasks import OwnedTasks
from recorder import EncodedFrame, Recorder, RecordingSummary, recover
from streaming.forwarding import EncodedFrame as LiveFrame
from streaming.forwarding import FrameQueue
from streaming.rooms import Room

log = logging.getLogger(__name__)

# The recorder's codec names for the publishers' mime types; anything else is not recorded.
CODECS = {"video/h264": "h264", "video/vp8": "vp8", "audio/opus": "opus"}
# The slots recorded (the expert's); the recorder knows these labels. Stage seats are not recorded yet.
RECORDED_SLOTS = ("camera", "screen", "audio")
# Written beside a recording's spool when finish() could not reach the store: the session did end
# (session.ended was published), so recovery must not announce a restart for it.
ENDED_MARKER = "ended.json"


def live_playlist_url(session_id: int, recording_id: str, angle: str) -> str:
    """The URL the app serves a live angle playlist at: key `hls/…` (docs/recordings.md) → `/hls/…`."""
    return f"/hls/{session_id}/{recording_id}/{angle}/index.m3u8"


def finalized_event(summary: RecordingSummary, at: datetime) -> events.RecordingFinalized:
    """recording.finalized from the recorder's summary (the first angle, camera when present, leads)."""
    first = summary.angles[0]
    return events.RecordingFinalized(
        session_id=summary.session_id,
        recording_id=summary.recording_id,
        segment_count=sum(a.segments for a in summary.angles),
        duration_s=summary.duration_s,
        playlist_key=first.playlist_key,
        mp4_key=first.mp4_key,
        at=at,
        size_bytes=summary.bytes,
        master_key=summary.master_key,
        angles=tuple(
            events.RecordingAngle(
                angle=a.angle,
                start_s=a.start_s,
                duration_s=a.duration_s,
                segments=a.segments,
                width=a.width,
                height=a.height,
                playlist_key=a.playlist_key,
                mp4_key=a.mp4_key,
                mp4_bytes=a.mp4_bytes,
            )
            for a in summary.angles
        ),
    )


@dataclass(frozen=True)
class RecordingConfig:
    spool_dir: Path
    segment_duration_s: float = 2.0
    spool_limit_bytes: int = 512 * 1024 * 1024
    finish_timeout_s: float = 60.0
    # Uploads are "behind" when the backlog has not emptied for this many segment durations.
    behind_after_segments: float = 2.0
    watch_interval_s: float = 0.5
    # How long shutdown waits for recordings still finalizing before it cancels them (left for recover()).
    close_timeout_s: float = 30.0
    # The recorder's queue per slot: generous, since its consumer only hands frames to Recorder.push().
    video_queue_frames: int = 900
    video_queue_bytes: int = 64 * 1024 * 1024
    audio_queue_frames: int = 1500
    audio_queue_bytes: int = 4 * 1024 * 1024
    # Frames are handed to the recorder in batches this often: each hand-over costs a trip to its worker
    # thread, and per frame (80 a second) those trips cost more CPU than the remuxing itself.
    batch_interval_s: float = 0.1


@dataclass(eq=False)
class _Run:
    """One session's recording while it is live and until it is finalized."""

    session_id: int
    recording_id: str
    room: Room
    recorder: Recorder
    queues: dict[str, FrameQueue]
    video_seen: set[str] = field(default_factory=set)
    batch: list[EncodedFrame] = field(default_factory=list)  # in arrival order across the tracks
    flush_at: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    backlog_since: float | None = None
    behind: bool = False

    @property
    def prefix(self) -> str:
        return f"session={self.session_id} recording={self.recording_id}"


class RecordingManager:
    """Starts a recording when a room starts (`room_started`), stops and finalizes it when the room ends
    (`room_ended`), and recovers crashed recordings (`recover`). Owns one task per recording and one
    watchdog; `close()` waits for finalizations (bounded), then cancels and awaits everything."""

    def __init__(
        self,
        config: RecordingConfig,
        store: ObjectStore,
        bus: EventSink | None,
        *,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self._wall_clock = wall_clock
        # One monotonic → wall mapping for every track of every recording: the recorder aligns tracks by
        # arrival_s, so they must share a clock that never jumps (aiortc does not expose RTCP SR mapping).
        self._wall_minus_monotonic = time.time() - time.monotonic()
        self._lookup: Callable[[int], Room | None] = lambda _sid: None
        self._runs: dict[int, _Run] = {}
        self._tasks = OwnedTasks(log, "recording")
        self._time_bases: dict[int, Fraction] = {}
        self._finishing: set[asyncio.Task[None]] = set()  # recordings whose room has ended
        self._closed = False

    def bind(self, lookup: Callable[[int], Room | None]) -> None:
        """Where to find a live room by session id (the Rooms registry, built after the manager)."""
        self._lookup = lookup

    # ------------------------------------------------------------------ lifecycle hooks (from Rooms)

    async def room_started(self, session_id: int) -> None:
        room = self._lookup(session_id)
        if room is None or self._closed:
            return  # ended before this ran
        current = self._runs.get(session_id)
        if current is not None and current.room is room:
            return
        rid = secrets.token_urlsafe(12)
        recorder = Recorder(
            self.store,
            session_id=session_id,
            recording_id=rid,
            spool_dir=self.config.spool_dir,
            request_keyframe=lambda track: self._request_keyframe(room, track),
            segment_duration_s=self.config.segment_duration_s,
            spool_limit_bytes=self.config.spool_limit_bytes,
            finish_timeout_s=self.config.finish_timeout_s,
        )
        # Subscribe to every slot now, before any await: frames are queued while the recorder starts,
        # and a slot that goes live later (a screen share at minute 10) feeds its queue from then on.
        queues = {
            label: self._queue(slot.kind)
            for label in RECORDED_SLOTS
            if (slot := room.slots.get(label)) is not None
        }
        for label, queue in queues.items():
            room.slots[label].subscribe(queue)
        run = _Run(session_id, rid, room, recorder, queues)
        self._runs[session_id] = run
        run.task = self._tasks.spawn(self._record(run), name=f"recording-{rid}")
        log.info("%s recording room", run.prefix)

    async def room_ended(self, session_id: int) -> None:
        """Stop feeding the recording; its task finishes it (off the caller's path)."""
        run = self._runs.get(session_id)
        if run is None:
            return
        if run.task is not None:
            self._finishing.add(run.task)
            run.task.add_done_callback(self._finishing.discard)
        for label, queue in run.queues.items():
            run.room.slots[label].unsubscribe(queue)  # closes the queue: the pumps end, finish() follows

    def live_playlist_url(self, session_id: int) -> str | None:
        """The live HLS playlist of a session's recording (camera, else the screen share), or None."""
        run = self._runs.get(session_id)
        if run is None:
            return None
        angle = "screen" if "camera" not in run.video_seen and "screen" in run.video_seen else "camera"
        return live_playlist_url(session_id, run.recording_id, angle)

    # ------------------------------------------------------------------ one recording

    def _flush(self, run: _Run) -> None:
        run.flush_at = None
        batch, run.batch = run.batch, []
        for frame in batch:
            run.recorder.push(frame)

    def _queue(self, kind: str) -> FrameQueue:
        cfg = self.config
        if kind == "video":
            return FrameQueue(
                "video", mime_type=None, max_frames=cfg.video_queue_frames, max_bytes=cfg.video_queue_bytes
            )
        return FrameQueue(
            "audio", mime_type=None, max_frames=cfg.audio_queue_frames, max_bytes=cfg.audio_queue_bytes
        )

    @staticmethod
    def _request_keyframe(room: Room, track: str) -> None:
        slot = room.slots.get(track)
        if slot is not None:
            slot.request_keyframe()

    async def _record(self, run: _Run) -> None:
        try:
            await run.recorder.start()
            async with asyncio.TaskGroup() as pumps:
                for label, queue in run.queues.items():
                    pumps.create_task(self._pump(run, label, queue), name=f"recording-{label}")
        except asyncio.CancelledError:
            # Shutdown before the room ended: the spool and the open manifest stay for recover().
            await self._abandon(run)
            raise
        except Exception:
            log.exception("%s recording failed; left for recovery", run.prefix)
            await self._abandon(run)
            return
        if run.flush_at is not None:
            run.flush_at.cancel()
        self._flush(run)  # the last frames, before finish() closes the segments
        await self._finish(run)

    async def _abandon(self, run: _Run) -> None:
        if run.flush_at is not None:
            run.flush_at.cancel()
        await run.recorder.abandon()
        if self._runs.get(run.session_id) is run:
            del self._runs[run.session_id]

    async def _pump(self, run: _Run, label: str, queue: FrameQueue) -> None:
        warned: set[str] = set()
        while (frame := await queue.get()) is not None:
            converted = self._convert(label, frame)
            if converted is None:
                if frame.mime_type not in warned:
                    warned.add(frame.mime_type)
                    log.warning("%s track=%s codec %s is not recorded", run.prefix, label, frame.mime_type)
                continue
            if frame.kind == "video":
                run.video_seen.add(label)
            run.batch.append(converted)
            if run.flush_at is None:
                run.flush_at = asyncio.get_running_loop().call_later(
                    self.config.batch_interval_s, self._flush, run
                )

    def _convert(self, label: str, frame: LiveFrame) -> EncodedFrame | None:
        codec = CODECS.get(frame.mime_type.lower())
        if codec is None:
            return None
        time_base = self._time_bases.get(frame.clock_rate)
        if time_base is None:
            time_base = self._time_bases[frame.clock_rate] = Fraction(1, frame.clock_rate)
        return EncodedFrame(
            track=label,
            codec=codec,
            data=frame.data,
            pts=frame.timestamp,  # the slot's timeline: rebased to keep increasing across republishes
            time_base=time_base,
            keyframe=frame.keyframe,
            arrival_s=time.monotonic() + self._wall_minus_monotonic,
        )

    async def _finish(self, run: _Run) -> None:
        try:
            summary = await run.recorder.finish()
        except StoreUnavailable:
            # The session did end: note it so that recovery finalizes without announcing a restart.
            marker = run.recorder.local_dir / ENDED_MARKER
            data = json.dumps({"ended_at": self._wall_clock().isoformat()}).encode()
            await asyncio.to_thread(marker.write_bytes, data)
            return
        finally:
            if self._runs.get(run.session_id) is run:
                del self._runs[run.session_id]
        await self._announce(summary)

    async def _announce(self, summary: RecordingSummary) -> None:
        prefix = f"session={summary.session_id} recording={summary.recording_id}"
        if not summary.angles:
            log.warning("%s recorded no video: no replay announced", prefix)
            return
        await self._publish(prefix, finalized_event(summary, self._wall_clock()))

    async def _publish(self, prefix: str, event: events.Event) -> None:
        if self.bus is None:
            return
        try:
            # Into the outbox, which keeps it on disk until the bus takes it.
            await events.publish(self.bus, event)
        except BusUnavailable as exc:
            # The outbox is full: reconciliation announces the recording later (streaming/reconcile.py).
            log.error("%s could not publish %s: %s", prefix, event.type, exc)

    # ------------------------------------------------------------------ start-up recovery

    async def recover(self) -> list[RecordingSummary]:
        """Finalize recordings a crash left open; announce each, and end their sessions (server_restart)
        at the time of their last stored media, unless the session had ended properly and only the store
        was missing at the time."""
        spool = self.config.spool_dir
        ended = await asyncio.to_thread(
            lambda: {(p.parent.parent.name, p.parent.name) for p in spool.glob(f"*/*/{ENDED_MARKER}")}
        )
        try:
            summaries = await recover(self.store, spool)
        except StoreUnavailable as exc:
            log.error("recovery of open recordings failed, retried at the next start: %s", exc)
            return []
        for summary in summaries:
            await self._announce(summary)
            if (str(summary.session_id), summary.recording_id) in ended:
                continue
            # The lecture went on at most until its last stored media: the segment being written when
            # the process died is lost, and nothing is known of the time after it.
            ended_at = summary.media_end_at or self._wall_clock()
            ended_event = events.SessionEnded(
                session_id=summary.session_id, at=ended_at, reason="server_restart"
            )
            await self._publish(f"session={summary.session_id}", ended_event)
        return summaries

    # ------------------------------------------------------------------ health

    async def check(self) -> None:
        """Readiness: Unavailable when a recording's spool is over its limit or its uploads fall behind."""
        problems = [p for run in list(self._runs.values()) if (p := self._problem(run))]
        if problems:
            raise Unavailable("; ".join(problems))

    def _problem(self, run: _Run) -> str | None:
        health = run.recorder.health
        if health["spool_over_limit"]:
            return (
                f"{run.prefix} spool over its limit: {health['spool_bytes']} of "
                f"{health['spool_limit_bytes']} bytes waiting for the object store, "
                f"{health['spool_dropped_segments']} segments dropped ({health['last_error']})"
            )
        if run.behind and run.backlog_since is not None:
            store = "object store unavailable" if not health["store_available"] else "object store slow"
            return (
                f"{run.prefix} uploads behind: {health['upload_backlog']} objects waiting for "
                f"{time.monotonic() - run.backlog_since:.0f} s, {health['spool_bytes']} bytes spooled "
                f"({store}: {health['last_error']})"
            )
        return None

    async def watch(self) -> None:
        """Sample each recorder's upload backlog; warn when it has not emptied for a few segments."""
        behind_after_s = self.config.behind_after_segments * self.config.segment_duration_s
        while True:
            now = time.monotonic()
            for run in list(self._runs.values()):
                health = run.recorder.health
                if health["upload_backlog"] == 0:
                    if run.behind:
                        log.warning("%s uploads caught up", run.prefix)
                    run.backlog_since, run.behind = None, False
                    continue
                if run.backlog_since is None:
                    run.backlog_since = now
                if not run.behind and now - run.backlog_since > behind_after_s:
                    run.behind = True
                    log.warning(
                        "%s uploads behind: %d objects waiting for %.1f s, %d bytes spooled (%s)",
                        run.prefix,
                        health["upload_backlog"],
                        now - run.backlog_since,
                        health["spool_bytes"],
                        health["last_error"],
                    )
            await asyncio.sleep(self.config.watch_interval_s)

    # ------------------------------------------------------------------ tasks

    def start(self) -> None:
        self._tasks.spawn(self.watch(), name="recording-watch")

    async def close(self) -> None:
        """Let recordings that are finalizing finish (up to close_timeout_s), then cancel the rest."""
        self._closed = True
        if self._finishing:
            await asyncio.wait(list(self._finishing), timeout=self.config.close_timeout_s)
        await self._tasks.cancel()


RECORDINGS = web.AppKey("recordings", RecordingManager)


def setup(app: web.Application) -> None:
    """Add the recordings' cleanup context. Call after the object store's and the bus's, before
    `live.setup` (which wires the rooms to `app[RECORDINGS]`, so the rooms end before recordings close)."""
    app.cleanup_ctx.append(_recordings)


async def _recordings(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    config = RecordingConfig(
        spool_dir=settings.data_dir / "spool", segment_duration_s=settings.segment_duration_s
    )
    manager = RecordingManager(config, app[OBJECTS], event_sink(app))
    # Before any recorder starts: recover() takes every open manifest in the spool for a crashed one.
    await manager.recover()
    manager.start()
    app[RECORDINGS] = manager
    app[READINESS]["recordings"] = manager.check
    yield
    await manager.close()
