"""Forwarding encoded frames, never decoding: keyframe detection, per-room track slots that fan a
publisher's frames out to bounded per-viewer queues, and merged, rate-limited keyframe requests.

Pure asyncio: no aiortc, no av, no aiohttp (streaming/rtc_adapter.py converts to and from aiortc).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

H264 = "video/H264"
VP8 = "video/VP8"

# A new source's first frame is placed this far (in seconds) after the previous source's last
# frame, so that a republish keeps each viewer's RTP timestamps increasing.
_SOURCE_GAP_S = 0.02


@dataclass(slots=True)
class EncodedFrame:
    """One encoded frame (a whole video picture or one audio packet) as the publisher sent it."""

    kind: str  # "audio" | "video"
    mime_type: str  # e.g. "video/H264", "video/VP8", "audio/opus"
    data: bytes = field(repr=False)  # H.264: Annex-B stream; VP8: the VP8 frame; Opus: one packet
    timestamp: int  # in `clock_rate` units, on the timeline of whoever set it
    clock_rate: int
    keyframe: bool
    # The adapter's media object for this frame (an av.Packet), built once and shared by every
    # viewer of the slot, since they all send the same bytes with the same timestamp.
    media: object | None = field(default=None, repr=False)
    # The adapter's RTP payloads for this frame, cut once for every viewer of the slot.
    packed: object | None = field(default=None, repr=False)


def h264_is_keyframe(data: bytes) -> bool:
    """True if an Annex-B access unit holds an IDR slice (NAL type 5)."""
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        if data[pos + 3] & 0x1F == 5:
            return True
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return False


def vp8_is_keyframe(data: bytes) -> bool:
    """True for a VP8 key frame: P bit clear in the frame tag and the 9d 01 2a start code."""
    return len(data) >= 6 and data[0] & 0x01 == 0 and data[3:6] == b"\x9d\x01\x2a"


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether a frame can be decoded on its own. Audio frames always can."""
    mime = mime_type.lower()
    if mime == H264.lower():
        return h264_is_keyframe(data)
    if mime == VP8.lower():
        return vp8_is_keyframe(data)
    return not mime.startswith("video/")


class KeyframeRequests:
    """Merges keyframe requests and rate-limits them: at most one per `min_interval_s`.

    Viewers joining together share one request; a keyframe that arrives while a request waits for
    its turn satisfies it. `run(send)` is the loop that sends; its owner cancels and awaits it.
    """

    def __init__(self, min_interval_s: float = 0.5) -> None:
        self.min_interval_s = min_interval_s
        self.sent = 0
        self._wanted = asyncio.Event()

    def request(self) -> None:
        self._wanted.set()

    def satisfied(self) -> None:
        """A keyframe went through: requests made before it need nothing more."""
        self._wanted.clear()

    @property
    def pending(self) -> bool:
        return self._wanted.is_set()

    async def run(self, send: Callable[[], Awaitable[bool]]) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if await send():
                self.sent += 1
            else:
                # Nothing to send to yet (a publisher whose RTP has not arrived): try again next turn,
                # unless its first keyframe satisfies the request meanwhile.
                self._wanted.set()
            # The rate limit itself: requests made meanwhile wait here and merge into one.
            await asyncio.sleep(self.min_interval_s)


@dataclass(slots=True)
class QueueStats:
    delivered: int = 0
    dropped: int = 0
    resyncs: int = 0  # times the queue overflowed and waited for a keyframe
    max_frames_seen: int = 0


class FrameQueue:
    """One viewer's queue for one slot, bounded in frames and bytes.

    Video: on overflow the queue is emptied and drops every frame until the next keyframe (and asks
    for one, again with each frame it drops meanwhile), so a slow viewer costs bounded memory and
    resumes on a decodable picture. A new queue starts the same way: waiting for a keyframe. Audio:
    the oldest frame is dropped. Frames of another codec than the viewer negotiated are dropped
    (forwarding cannot transcode).
    """

    def __init__(
        self,
        kind: str,
        *,
        mime_type: str | None,
        max_frames: int,
        max_bytes: int,
        on_need_keyframe: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self.mime_type = mime_type
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.stats = QueueStats()
        self.waiting_for_keyframe = kind == "video"
        self.on_need_keyframe = on_need_keyframe
        self._frames: deque[EncodedFrame] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def bytes_queued(self) -> int:
        return self._bytes

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, frame: EncodedFrame) -> None:
        """Queue a frame without ever blocking the publisher; drop according to the policy."""
        if self._closed:
            return
        if self.mime_type is not None and frame.mime_type.lower() != self.mime_type.lower():
            self.stats.dropped += 1
            return
        if self.kind == "video":
            if self.waiting_for_keyframe:
                if not frame.keyframe:
                    self.stats.dropped += 1
                    # Keep asking while waiting: one request can be lost (a PLI is a UDP datagram) and
                    # publishers send no keyframe unasked. KeyframeRequests merges and rate-limits these.
                    self.on_need_keyframe()
                    return
                self.waiting_for_keyframe = False
            elif len(self._frames) >= self.max_frames or self._bytes + len(frame.data) > self.max_bytes:
                self.stats.dropped += len(self._frames) + 1
                self.stats.resyncs += 1
                self._frames.clear()
                self._bytes = 0
                if frame.keyframe:
                    self._append(frame)
                else:
                    self.waiting_for_keyframe = True
                    self.on_need_keyframe()
                return
        else:
            while self._frames and (
                len(self._frames) >= self.max_frames or self._bytes + len(frame.data) > self.max_bytes
            ):
                old = self._frames.popleft()
                self._bytes -= len(old.data)
                self.stats.dropped += 1
        self._append(frame)

    def _append(self, frame: EncodedFrame) -> None:
        self._frames.append(frame)
        self._bytes += len(frame.data)
        self.stats.max_frames_seen = max(self.stats.max_frames_seen, len(self._frames))
        self._ready.set()

    async def get(self) -> EncodedFrame | None:
        """The next frame, or None once the queue is closed."""
        while not self._frames:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        self._bytes -= len(frame.data)
        self.stats.delivered += 1
        return frame

    def close(self) -> None:
        self._closed = True
        self._frames.clear()
        self._bytes = 0
        self._ready.set()


@dataclass(slots=True)
class _Source:
    token: object
    request_keyframe: Callable[[], None]
    offset: int | None = None


@dataclass
class TrackSlot:
    """A named place in a room ("camera", "screen", "audio") that viewers' senders are bound to.

    The publisher currently feeding it may change (a republish feeds the same slot), so viewers
    never renegotiate; timestamps are rebased so they keep increasing across sources.
    """

    label: str
    kind: str
    mime_type: str | None = None  # codec of the current or last source
    frames_in: int = 0
    keyframes_in: int = 0
    _queues: set[FrameQueue] = field(default_factory=set)
    _source: _Source | None = None
    _last_out: int | None = None
    _last_clock_rate: int = 90_000
    _last_frame_at: float = 0.0

    @property
    def live(self) -> bool:
        return self._source is not None

    @property
    def viewers(self) -> int:
        return len(self._queues)

    def attach(self, token: object, mime_type: str, request_keyframe: Callable[[], None]) -> None:
        """A publisher's track starts feeding this slot (replacing any previous one)."""
        self._source = _Source(token, request_keyframe)
        self.mime_type = mime_type
        for queue in self._queues:
            if queue.kind == "video":
                queue.waiting_for_keyframe = True
        if self._queues:
            request_keyframe()

    def detach(self, token: object) -> None:
        if self._source is not None and self._source.token is token:
            self._source = None

    def request_keyframe(self) -> None:
        if self._source is not None and self.kind == "video":
            self._source.request_keyframe()

    def subscribe(self, queue: FrameQueue) -> None:
        queue.on_need_keyframe = self.request_keyframe
        self._queues.add(queue)
        self.request_keyframe()

    def unsubscribe(self, queue: FrameQueue) -> None:
        self._queues.discard(queue)
        queue.close()

    def push(self, token: object, frame: EncodedFrame) -> None:
        """Fan one frame of the current source out to every viewer's queue (never blocks)."""
        source = self._source
        if source is None or source.token is not token:
            return  # a replaced publisher's late frames
        if source.offset is None:
            if self._last_out is None:
                start = 0
            else:
                elapsed_s = max(time.monotonic() - self._last_frame_at, _SOURCE_GAP_S)
                start = self._last_out + int(elapsed_s * frame.clock_rate)
            source.offset = start - frame.timestamp
        frame.timestamp += source.offset
        self.mime_type = frame.mime_type
        self._last_out = frame.timestamp
        self._last_clock_rate = frame.clock_rate
        self._last_frame_at = time.monotonic()
        self.frames_in += 1
        if frame.keyframe:
            self.keyframes_in += 1
        for queue in self._queues:
            queue.offer(frame)

    def close(self) -> None:
        for queue in list(self._queues):
            queue.close()
        self._queues.clear()
        self._source = None
