"""Rooms: one per live session — its publishers (WHIP: the expert's slots and the speakers' stage
seats), viewers (WHEP), track slots, seat limit and lifecycle (the expert's first publish starts it; the
expert leaving, or gone past a grace period, ends it, and it cannot go live again in this process),
announced on the bus as session.started / session.ended (topic "sessions") and viewer.joined /
viewer.left (topic "attendance"); what each room publishes is told to the `RoomHooks` as a MediaState.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NewType, Protocol

from infra import events, ice
from infra.bus import BusUnavailable, EventSink
from infra.errors import Conflict, Forbidden, Invalid, NotFound
from infra.ice import IceServer
from infra.tasks import OwnedTasks
from streaming import rtc_adapter
from streaming.forwarding import H264, VP8, EncodedFrame, FrameQueue, KeyframeRequests, TrackSlot
from streaming.room_media import MediaState, MediaStatus, StageSeat

log = logging.getLogger(__name__)

ResourceId = NewType("ResourceId", str)
SessionId = NewType("SessionId", int)

# The expert's slots and their media kind; whoever publishes them keeps the room alive.
EXPERT_SLOTS = {"camera": "video", "screen": "video", "audio": "audio"}
VIDEO_LABELS = ("camera", "screen")  # what an expert's video m-lines may be labelled
# Promoted learners ("speaker" tokens) publish into stage seats 1..STAGE_SEATS, one video and one audio.
STAGE_SEATS = 2


def stage_slot(seat: int, kind: str) -> str:
    """The slot of stage seat `seat` for `kind` ("video" | "audio"), e.g. "stage1.video"."""
    return f"stage{seat}.{kind}"


STAGE_SLOTS = {stage_slot(n, k): k for n in range(1, STAGE_SEATS + 1) for k in ("video", "audio")}
# Slots every room has, and their media kind.
SLOT_KINDS = {**EXPERT_SLOTS, **STAGE_SLOTS}
# What a viewer's m-lines receive, in this order (docs/protocol.md): the n-th video m-line of an offer
# gets the n-th video slot here and the n-th audio m-line the n-th audio slot, so the layout itself,
# or any prefix of it, maps position by position.
VIEWER_LAYOUT: tuple[str, ...] = ("camera", "screen", "audio", *STAGE_SLOTS)
# What we ask publishers for: H.264 remuxes straight into HLS; VP8 still works live.
PUBLISH_VIDEO_PREFERENCE = (H264, VP8)
PUBLISHER_ROLES = frozenset({"expert", "speaker"})
VIEWER_ROLES = frozenset({"learner", "staff", "expert"})


# Background tasks that close a peer connection whose state went "failed" or "closed".
_DROP = "drop-peer"
_DROP_SETTLE_S = 10.0


class RoomFull(Conflict):
    code = "room_full"


class SlotTaken(Conflict):
    code = "slot_taken"


class StageFull(Conflict):
    code = "stage_full"


class SessionOver(Conflict):
    code = "session_ended"


class RoomHooks(Protocol):
    """What the rooms tell the rest of the server, and the one thing they ask of it; `streaming.live`
    implements it (recordings, room channel). Hooks must not raise."""

    async def room_started(self, session_id: int) -> None:
        """A room's first media arrived (called in a task the rooms own): the recording starts."""

    async def room_ended(self, session_id: int, reason: str) -> None:
        """A room ended, its peers closed: the recording finishes, the channel tells everyone."""

    def media_changed(self, media: MediaState) -> None:
        """What a room publishes changed (who is connected, which slots, the stage), or it ended."""

    def live_playlist_url(self, session_id: int) -> str | None:
        """The live HLS playlist of a session (its recording's), for viewers beyond the seat limit."""


class NoHooks:
    """Rooms on their own (tests of the live path alone)."""

    async def room_started(self, session_id: int) -> None:
        return None

    async def room_ended(self, session_id: int, reason: str) -> None:
        return None

    def media_changed(self, media: MediaState) -> None:
        return None

    def live_playlist_url(self, session_id: int) -> str | None:
        return None


@dataclass(frozen=True)
class RoomConfig:
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs
    turn_secret: str = field(default="", repr=False)  # TURN credentials for the server's own peers
    turn_credential_ttl_s: int = 24 * 3600
    ice_host_addresses: tuple[str, ...] = ()
    seat_limit: int = 50
    grace_s: float = 30.0
    keyframe_interval_s: float = 0.5
    video_queue_frames: int = 60
    video_queue_bytes: int = 4 * 1024 * 1024
    audio_queue_frames: int = 50
    audio_queue_bytes: int = 256 * 1024
    hls_url_template: str = "/hls/sessions/{session_id}/index.m3u8"
    # A peer that has not connected this long after its answer is dropped (its seat or slot freed).
    connect_timeout_s: float = 20.0
    # The expert counts as lost when none of their publications has sent media this long: a browser
    # that vanished sends nothing, but ICE takes ~30 s to notice (their audio alone sends 50 frames/s).
    stall_s: float = 5.0
    # A learner's delivery interval closes ("stalled") when media went out to their viewer and no RTCP
    # receiver report has acknowledged new packets for this long (browsers report every 1–5 s); it opens
    # again at the next acknowledgement.
    delivery_stall_s: float = 10.0


@dataclass(eq=False)
class Publisher:
    rid: ResourceId
    session_id: SessionId
    person_id: int
    role: str
    pc: rtc_adapter.PeerConnection
    labels: tuple[str, ...]  # per m-line, in the offer's order
    seat: int | None = None  # a speaker's stage seat; None for the expert's slots
    keyframes: dict[str, KeyframeRequests] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    last_media_at: float = 0.0  # time.monotonic() of its last frame (or of connecting)


@dataclass(eq=False)
class Viewer:
    rid: ResourceId
    session_id: SessionId
    person_id: int
    role: str = "learner"
    pc: rtc_adapter.PeerConnection | None = None
    queues: dict[str, FrameQueue] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    # Delivery (learners only): viewer.joined once connected and media is acknowledged by the viewer's
    # receiver reports, viewer.left when it stops (stalled, dropped); it may open again.
    delivery: rtc_adapter.DeliveryProbe | None = None
    delivering: bool = False  # an interval is open (viewer.joined published, no viewer.left since)
    delivered_at: datetime | None = None  # wall time of the last acknowledgement
    opened_at: datetime | None = None  # of the open interval (its viewer.joined)
    # The last viewer.* publication: each waits for the one before, so that they stay in order.
    last_emit: asyncio.Task[None] | None = None
    watchdog: asyncio.Task[None] | None = None


@dataclass(eq=False)
class Room:
    session_id: SessionId
    slots: dict[str, TrackSlot]
    started_at: datetime | None = None  # when the first publisher's media arrived
    publishers: dict[ResourceId, Publisher] = field(default_factory=dict)
    viewers: dict[ResourceId, Viewer] = field(default_factory=dict)
    grace_task: asyncio.Task[None] | None = None
    grace_ends_at: float | None = None  # while grace_task runs (unix s)
    # The expert's publications are connected but none has sent media for RoomConfig.stall_s.
    expert_stalled: bool = False
    watchdog: asyncio.Task[None] | None = None
    # person -> when the expert took them off the stage (unix s): speaker tokens granted before no
    # longer admit them (a token lives minutes; a demotion must hold at once).
    taken_off_stage: dict[int, float] = field(default_factory=dict)

    @classmethod
    def new(cls, session_id: SessionId) -> Room:
        return cls(session_id, {label: TrackSlot(label, kind) for label, kind in SLOT_KINDS.items()})

    @property
    def expert_present(self) -> bool:
        """Someone publishes the expert's slots, and media flows or may still start: what keeps the
        room alive (speakers do not)."""
        return not self.expert_stalled and any(p.seat is None for p in self.publishers.values())

    def media(self) -> MediaState:
        """What this room publishes: the expert's slots and the stage seats of connected publications.
        Live once media has arrived (the session's start) while the expert is connected."""
        connected = [p for p in self.publishers.values() if p.connected.is_set()]
        expert = frozenset(
            label for p in connected if p.seat is None and not self.expert_stalled for label in p.labels
        )
        stage = tuple(
            StageSeat(
                p.seat,
                p.person_id,
                video=stage_slot(p.seat, "video") in p.labels,
                audio=stage_slot(p.seat, "audio") in p.labels,
            )
            for p in sorted(connected, key=lambda p: p.seat or 0)
            if p.seat is not None
        )
        started = self.started_at is not None
        status: MediaStatus = ("live" if expert else "reconnecting") if started else "waiting"
        grace_ends_at = self.grace_ends_at if status == "reconnecting" else None
        return MediaState(self.session_id, status, expert, stage, grace_ends_at)

    def stage(self) -> dict[int, Publisher | None]:
        """Stage seat → its speaker's publication (None: free)."""
        seats: dict[int, Publisher | None] = dict.fromkeys(range(1, STAGE_SEATS + 1))
        for publisher in self.publishers.values():
            if publisher.seat is not None:
                seats[publisher.seat] = publisher
        return seats


def publisher_labels(
    offered: Sequence[rtc_adapter.OfferedMedia], video_labels: Sequence[str] | None
) -> tuple[str, ...]:
    """Slot label per m-line: audio → "audio"; video m-lines take `video_labels` (the `video` query
    parameter) in order, else "screen" for a=content:slides, else camera then screen."""
    videos = [m for m in offered if m.kind == "video"]
    audios = [m for m in offered if m.kind == "audio"]
    if len(audios) > 1:
        raise Invalid("a publisher may send at most one audio track", field="sdp")
    if len(videos) > len(VIDEO_LABELS):
        raise Invalid(f"a publisher may send at most {len(VIDEO_LABELS)} video tracks", field="sdp")
    if video_labels is not None:
        unknown = [v for v in video_labels if v not in VIDEO_LABELS]
        if unknown:
            raise Invalid(f"unknown video label(s) {unknown}; use {list(VIDEO_LABELS)}", field="video")
        if len(video_labels) != len(videos) or len(set(video_labels)) != len(video_labels):
            raise Invalid(
                f"video lists {len(video_labels)} distinct label(s) for {len(videos)} video m-line(s)",
                field="video",
            )
        chosen = list(video_labels)
    else:
        chosen = ["screen" if m.content == "slides" else "" for m in videos]
        free = [label for label in VIDEO_LABELS if label not in chosen]
        chosen = [label or free.pop(0) for label in chosen]
        if len(set(chosen)) != len(chosen):
            raise Invalid("two video m-lines claim the same slot; use the video query parameter")
    it = iter(chosen)
    return tuple("audio" if m.kind == "audio" else next(it) for m in offered)


def speaker_labels(
    offered: Sequence[rtc_adapter.OfferedMedia], video_labels: Sequence[str] | None, seat: int
) -> tuple[str, ...]:
    """A speaker's m-lines feed stage seat `seat`: at most one video and one audio m-line. The `video`
    query parameter, if given, must say "camera" (a speaker has no screen slot)."""
    videos = sum(1 for m in offered if m.kind == "video")
    audios = sum(1 for m in offered if m.kind == "audio")
    if videos > 1 or audios > 1:
        raise Invalid(
            f"a speaker may send at most 1 video and 1 audio m-line "
            f"(offer has {videos} video, {audios} audio)",
            field="sdp",
        )
    if video_labels and list(video_labels) != ["camera"] * videos:
        raise Invalid(
            f"a speaker publishes one camera: video must be 'camera' (or absent), not {list(video_labels)}",
            field="video",
        )
    return tuple(stage_slot(seat, m.kind) for m in offered)


def viewer_labels(offered: Sequence[rtc_adapter.OfferedMedia]) -> tuple[str, ...]:
    """The slot each viewer m-line receives: the n-th video m-line the n-th video slot of VIEWER_LAYOUT,
    the n-th audio m-line its n-th audio slot."""
    layout = {
        kind: [label for label in VIEWER_LAYOUT if SLOT_KINDS[label] == kind] for kind in ("video", "audio")
    }
    videos = sum(1 for m in offered if m.kind == "video")
    audios = sum(1 for m in offered if m.kind == "audio")
    if videos > len(layout["video"]) or audios > len(layout["audio"]):
        raise Invalid(
            f"a viewer may receive at most {len(layout['video'])} video and {len(layout['audio'])} audio "
            f"m-lines (offer has {videos} video, {audios} audio)",
            field="sdp",
        )
    slots = {kind: iter(labels) for kind, labels in layout.items()}
    return tuple(next(slots[m.kind]) for m in offered)


def viewer_codecs(slot: TrackSlot) -> list[str]:
    """The codecs a viewer's video m-line for `slot` is answered with, in preference order.

    The expert's slots: the codec the slot carries (its current or last publisher's), H.264 then VP8
    if never published. Stage slots change hands between speakers: the live speaker's codec first, then
    H.264 and VP8; a free seat H.264 then VP8 (what the pages publish)."""
    if slot.label in EXPERT_SLOTS:
        return [slot.mime_type] if slot.mime_type else list(PUBLISH_VIDEO_PREFERENCE)
    preferred = [slot.mime_type] if slot.live and slot.mime_type else []
    return preferred + [c for c in PUBLISH_VIDEO_PREFERENCE if c not in preferred]


class Rooms:
    """The live rooms of this process. Owns every peer connection and background task it starts;
    `close()` ends the rooms, cancels and awaits the tasks."""

    def __init__(
        self,
        config: RoomConfig,
        bus: EventSink | None = None,
        *,
        hooks: RoomHooks | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.bus = bus
        self._hooks: RoomHooks = hooks if hooks is not None else NoHooks()
        self._wall_clock = wall_clock
        self._rooms: dict[SessionId, Room] = {}
        # Sessions whose room went live and ended here: their expert cannot go live again.
        self._ended: set[SessionId] = set()
        self._resources: dict[ResourceId, Publisher | Viewer] = {}
        self._tasks = OwnedTasks(log, "room")
        self._publish_lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------------ queries

    def room(self, session_id: int) -> Room | None:
        return self._rooms.get(SessionId(session_id))

    def resource(self, rid: str) -> Publisher | Viewer | None:
        return self._resources.get(ResourceId(rid))

    def media(self, session_id: int) -> MediaState:
        """What the session's room publishes now ("ended" once it ended here, "waiting" before it opens)."""
        sid = SessionId(session_id)
        room = self._rooms.get(sid)
        if room is not None:
            return room.media()
        return MediaState(sid, "ended" if sid in self._ended else "waiting")

    def _media_changed(self, session_id: SessionId) -> None:
        self._hooks.media_changed(self.media(session_id))

    # ------------------------------------------------------------------ publishing

    async def publish(
        self,
        session_id: int,
        person_id: int,
        role: str,
        offer_sdp: str,
        video_labels: Sequence[str] | None = None,
        granted_at: float | None = None,
    ) -> tuple[ResourceId, str]:
        """Accept a WHIP offer; returns the resource id and the SDP answer.

        Role "speaker" publishes into a stage seat of a live room: the one the same person already
        holds (a reconnect), else the first free one (StageFull when none is); `granted_at` is when
        the expert's promotion granted their token, refused if they were taken off stage since."""
        sid = SessionId(session_id)
        offered = rtc_adapter.parse_offer(offer_sdp)
        speaker = role == "speaker"
        # Checked before taking the lock, so that a bad offer never waits behind other publishes.
        labels = (
            speaker_labels(offered, video_labels, 1) if speaker else publisher_labels(offered, video_labels)
        )
        async with self._publish_lock:
            existing = self._rooms.get(sid)
            seat: int | None = None
            if speaker:
                if existing is None:
                    raise NotFound("session is not live: speakers join the expert's room")
                taken_off = existing.taken_off_stage.get(person_id)
                if taken_off is not None and (granted_at is None or granted_at <= taken_off):
                    raise Forbidden("the expert took you off the stage: wait to be invited again")
                seat, replaced = self._take_seat(existing, person_id)
                labels = speaker_labels(offered, video_labels, seat)
            else:
                if existing is None and sid in self._ended:
                    raise SessionOver(
                        "this session has already ended; it cannot go live again",
                        details={"session_id": sid},
                    )
                replaced = self._check_slots(existing, labels, person_id)
            room = existing if existing is not None else Room.new(sid)
            rid = ResourceId(secrets.token_urlsafe(12))
            pc = rtc_adapter.make_peer_connection(self._ice_servers())
            publisher = Publisher(rid, sid, person_id, role, pc, labels, seat)
            sinks = [self._sink(room, publisher, room.slots[label]) for label in labels]
            try:
                answer, tracks = await rtc_adapter.answer_publisher(
                    pc,
                    offered,
                    offer_sdp,
                    self.config.ice_host_addresses,
                    PUBLISH_VIDEO_PREFERENCE,
                    sinks,
                )
            except BaseException:
                await pc.close()
                raise
            for old in replaced:
                await self._drop_publisher(old, reason="replaced by a new publish")
            if self._rooms.get(sid) is not room:  # a new room, or the old one ended meanwhile
                room.started_at = None
                self._rooms[sid] = room
                room.watchdog = self._tasks.spawn(self._watch_media(room), name="room-watchdog")
                log.info("session=%s room opened by person=%s", sid, person_id)
            if seat is None:  # a speaker does not keep the room alive
                self._stop_grace(room)
            room.publishers[rid] = publisher
            self._resources[rid] = publisher
            for label, track in zip(labels, tracks, strict=True):
                mime = rtc_adapter.answer_codec(pc, track.media.index) or ""
                requests = KeyframeRequests(self.config.keyframe_interval_s)
                publisher.keyframes[label] = requests
                if track.media.kind == "video":
                    send = functools.partial(rtc_adapter.send_pli, track.receiver)
                    publisher.tasks.append(self._tasks.spawn(requests.run(send)))
                room.slots[label].attach(publisher, mime, requests.request)
            rtc_adapter.on_connection_state(pc, lambda state: self._on_publisher_state(publisher, state))
            self._tasks.spawn(self._expire_unconnected(publisher))
            log.info("session=%s publisher=%s person=%s role=%s labels=%s", sid, rid, person_id, role, labels)
            return rid, answer

    def _take_seat(self, room: Room, person_id: int) -> tuple[int, list[Publisher]]:
        """The stage seat for a speaker's publish and the publications it replaces (their own)."""
        seats = room.stage()
        own = [p for p in seats.values() if p is not None and p.person_id == person_id]
        if own and own[0].seat is not None:
            return own[0].seat, own
        free = [seat for seat, publisher in seats.items() if publisher is None]
        if not free:
            raise StageFull(
                f"all {STAGE_SEATS} stage seats are taken; ask the expert to demote a speaker",
                details={"stage_seats": STAGE_SEATS},
            )
        return free[0], []

    def _check_slots(self, room: Room | None, labels: Sequence[str], person_id: int) -> list[Publisher]:
        """Publishers of the same person to replace (a reconnect); SlotTaken if someone else holds one."""
        if room is None:
            return []
        replaced: list[Publisher] = []
        for publisher in room.publishers.values():
            overlap = set(publisher.labels) & set(labels)
            if not overlap:
                continue
            if publisher.person_id != person_id:
                raise SlotTaken(
                    f"{sorted(overlap)} already published by another presenter in this session",
                    details={"labels": sorted(overlap)},
                )
            replaced.append(publisher)
        return replaced

    def _sink(self, room: Room, publisher: Publisher, slot: TrackSlot) -> Callable[[EncodedFrame], None]:
        def sink(frame: EncodedFrame) -> None:
            publisher.last_media_at = time.monotonic()
            if room.expert_stalled and publisher.seat is None:
                self._expert_resumed(room)
            if room.started_at is None and self._rooms.get(room.session_id) is room:
                # The session's actual start is when media first arrives (docs/events.md).
                room.started_at = self._wall_clock()
                started = events.SessionStarted(session_id=room.session_id, at=room.started_at)
                self._tasks.spawn(self._emit(started))
                self._tasks.spawn(self._hooks.room_started(room.session_id))
                self._media_changed(room.session_id)
            if frame.keyframe:
                requests = publisher.keyframes.get(slot.label)
                if requests is not None:
                    requests.satisfied()
            slot.push(publisher, frame)

        return sink

    def _on_publisher_state(self, publisher: Publisher, state: str) -> None:
        if state == "connected" and not publisher.connected.is_set():
            publisher.last_media_at = time.monotonic()
            publisher.connected.set()
            room = self._rooms.get(publisher.session_id)
            if room is not None and room.publishers.get(publisher.rid) is publisher:
                self._media_changed(room.session_id)
        elif state in ("failed", "closed") and publisher.rid in self._resources:
            log.info("session=%s publisher=%s connection %s", publisher.session_id, publisher.rid, state)
            self._tasks.spawn(self._drop_publisher(publisher, reason=f"connection {state}"), name=_DROP)

    async def unpublish(self, rid: str, person_id: int) -> None:
        """WHIP DELETE. The expert deleting their last publisher ends the session."""
        publisher = self._resources.get(ResourceId(rid))
        if not isinstance(publisher, Publisher):
            raise NotFound("no such WHIP resource")
        if publisher.person_id != person_id:
            raise Forbidden("this WHIP resource belongs to someone else")
        room = self._rooms.get(publisher.session_id)
        others = [] if room is None else [p for p in room.publishers.values() if p is not publisher]
        if publisher.role == "expert" and not any(p.role == "expert" for p in others):
            await self.end(publisher.session_id, reason="ended_by_expert")
        else:
            await self._drop_publisher(publisher, reason="deleted")

    async def _drop_publisher(self, publisher: Publisher, *, reason: str) -> None:
        if self._resources.pop(publisher.rid, None) is None:
            return
        room = self._rooms.get(publisher.session_id)
        for label in publisher.labels:
            if room is not None:
                room.slots[label].detach(publisher)
        await self._tasks.cancel(publisher.tasks)
        await publisher.pc.close()
        log.info("session=%s publisher=%s gone: %s", publisher.session_id, publisher.rid, reason)
        # The grace period starts when the expert's last publication goes; speakers do not count.
        last_gone = (
            room is not None
            and room.publishers.pop(publisher.rid, None) is not None
            and publisher.seat is None
            and not room.expert_present
        )
        if room is not None and self._rooms.get(room.session_id) is room:
            if last_gone:
                self._start_grace(room)
            self._media_changed(room.session_id)

    def _start_grace(self, room: Room) -> None:
        """The expert is gone (or silent): the room ends after the grace period unless they come back."""
        if room.grace_task is None and not self._closed:
            room.grace_ends_at = self._wall_clock().timestamp() + self.config.grace_s
            room.grace_task = self._tasks.spawn(self._end_after_grace(room))

    def _stop_grace(self, room: Room) -> None:
        if room.grace_task is not None:
            room.grace_task.cancel()
            room.grace_task = None
            room.grace_ends_at = None

    async def _end_after_grace(self, room: Room) -> None:
        await asyncio.sleep(self.config.grace_s)
        room.grace_task = None  # so that end() does not cancel the task running it
        room.grace_ends_at = None
        if self._rooms.get(room.session_id) is room and not room.expert_present:
            await self.end(room.session_id, reason="publisher_lost")

    async def _watch_media(self, room: Room) -> None:
        """Notice an expert whose publications went silent (a closed browser, a dead network) long before
        ICE gives up on them: learners are told at once, and the grace period runs from then."""
        stall_s = self.config.stall_s
        while self._rooms.get(room.session_id) is room:
            await asyncio.sleep(min(1.0, stall_s / 2))
            now = time.monotonic()
            experts = [p for p in room.publishers.values() if p.seat is None and p.connected.is_set()]
            stalled = bool(experts) and all(now - p.last_media_at > stall_s for p in experts)
            if stalled and not room.expert_stalled and room.started_at is not None:
                log.info("session=%s the expert's media stopped %.1f s ago", room.session_id, stall_s)
                room.expert_stalled = True
                self._start_grace(room)
                self._media_changed(room.session_id)

    def _expert_resumed(self, room: Room) -> None:
        log.info("session=%s the expert's media resumed", room.session_id)
        room.expert_stalled = False
        if room.expert_present:
            self._stop_grace(room)
        self._media_changed(room.session_id)

    async def drop_speaker(self, session_id: int, person_id: int, *, reason: str = "demoted") -> bool:
        """End `person_id`'s stage publication in this session (the expert demoted them, or they withdrew
        from the course), freeing the seat; their speaker tokens granted before are void from now. False
        if they had none. Waits for a publish in progress, which it then ends too."""
        async with self._publish_lock:
            room = self._rooms.get(SessionId(session_id))
            if room is None:
                return False
            if reason in ("demoted", "withdrawn"):
                room.taken_off_stage[person_id] = self._wall_clock().timestamp()
            gone = [p for p in room.stage().values() if p is not None and p.person_id == person_id]
            for publisher in gone:
                await self._drop_publisher(publisher, reason=reason)
            return bool(gone)

    async def drop_person(self, session_id: int, person_id: int, *, reason: str) -> int:
        """End what `person_id` has open in the session's room, a learner who withdrew (`reason`
        "withdrawn"): their viewers and their stage publication. How many connections ended."""
        room = self._rooms.get(SessionId(session_id))
        if room is None:
            return 0
        viewers = [v for v in room.viewers.values() if v.person_id == person_id]
        for viewer in viewers:
            await self._drop_viewer(viewer, reason=reason)
        staged = await self.drop_speaker(session_id, person_id, reason=reason)
        if viewers or staged:
            log.info("session=%s person=%s dropped: %s", session_id, person_id, reason)
        return len(viewers) + int(staged)

    # ------------------------------------------------------------------ watching

    async def watch(
        self, session_id: int, person_id: int, offer_sdp: str, role: str = "learner"
    ) -> tuple[ResourceId, str]:
        """Accept a WHEP offer; returns the resource id and the SDP answer (SessionOver once the session
        ended here). A learner's viewer is announced as viewer.joined once connected and its receiver
        reports acknowledge media, and viewer.left when that stops (stalled, gone, ended)."""
        sid = SessionId(session_id)
        room = self._rooms.get(sid)
        if room is None and sid in self._ended:
            raise SessionOver("this session has ended; its live room is closed", details={"session_id": sid})
        if room is None:
            raise NotFound("session is not live")
        offered = rtc_adapter.parse_offer(offer_sdp)
        labels = viewer_labels(offered)
        if len(room.viewers) >= self.config.seat_limit:
            live_url = self._hooks.live_playlist_url(sid)
            hls_url = live_url or self.config.hls_url_template.format(session_id=sid)
            raise RoomFull(
                f"all {self.config.seat_limit} interactive seats are taken; "
                f"watch the HLS stream at {hls_url}",
                details={"hls_url": hls_url, "seat_limit": self.config.seat_limit},
            )
        rid = ResourceId(secrets.token_urlsafe(12))
        viewer = Viewer(rid, sid, person_id, role)
        room.viewers[rid] = viewer  # the seat is taken now, so concurrent joins cannot overbook
        try:
            answer = await self._negotiate_viewer(room, viewer, offered, labels, offer_sdp)
        except BaseException:
            room.viewers.pop(rid, None)
            if viewer.pc is not None:
                await viewer.pc.close()
            raise
        if self._rooms.get(sid) is not room:  # the room ended meanwhile
            room.viewers.pop(rid, None)
            if viewer.pc is not None:
                await viewer.pc.close()
            raise NotFound("session is not live")
        self._resources[rid] = viewer
        self._tasks.spawn(self._expire_unconnected(viewer))
        log.info("session=%s viewer=%s person=%s labels=%s", sid, rid, person_id, labels)
        return rid, answer

    async def _negotiate_viewer(
        self,
        room: Room,
        viewer: Viewer,
        offered: Sequence[rtc_adapter.OfferedMedia],
        labels: Sequence[str],
        offer_sdp: str,
    ) -> str:
        cfg = self.config
        tracks, hooks, video_codecs = [], [], []
        for label in labels:
            slot = room.slots[label]
            if slot.kind == "video":
                queue = FrameQueue(
                    "video",
                    mime_type=None,
                    max_frames=cfg.video_queue_frames,
                    max_bytes=cfg.video_queue_bytes,
                )
                video_codecs.append(viewer_codecs(slot))
            else:
                queue = FrameQueue(
                    "audio",
                    mime_type=None,
                    max_frames=cfg.audio_queue_frames,
                    max_bytes=cfg.audio_queue_bytes,
                )
            viewer.queues[label] = queue
            tracks.append(rtc_adapter.PacketTrack(slot.kind, queue))
            hooks.append(slot.request_keyframe)
        viewer.pc = rtc_adapter.make_peer_connection(self._ice_servers())
        if viewer.role == "learner":
            viewer.delivery = rtc_adapter.DeliveryProbe(functools.partial(self._on_delivered, room, viewer))
        answer, codecs = await rtc_adapter.answer_viewer(
            viewer.pc,
            offered,
            offer_sdp,
            cfg.ice_host_addresses,
            video_codecs or [[H264]],
            tracks,
            hooks,
            viewer.delivery,
        )
        for label, codec in zip(labels, codecs, strict=True):
            viewer.queues[label].mime_type = codec
        rtc_adapter.on_connection_state(viewer.pc, lambda state: self._on_viewer_state(room, viewer, state))
        return answer

    def _on_viewer_state(self, room: Room, viewer: Viewer, state: str) -> None:
        if state == "connected" and not viewer.connected.is_set() and viewer.rid in room.viewers:
            # Subscribing once media can flow: the keyframe asked for now reaches the viewer promptly.
            viewer.connected.set()
            for label, queue in viewer.queues.items():
                room.slots[label].subscribe(queue)
            if viewer.delivery is not None:
                viewer.watchdog = self._tasks.spawn(self._watch_delivery(viewer, viewer.delivery))
                self._open_delivery(room, viewer)
        elif state in ("failed", "closed") and viewer.rid in self._resources:
            # No WHEP DELETE came first: the browser stopped answering (a frozen or suspended tab, a lost
            # network: ICE consent expires after about 30 s) or dropped the connection. Worth a line.
            log.warning(
                "session=%s viewer=%s person=%s connection %s without a WHEP DELETE: dropped",
                viewer.session_id,
                viewer.rid,
                viewer.person_id,
                state,
            )
            self._tasks.spawn(
                self._drop_viewer(viewer, reason=f"connection {state}", left="disconnected"), name=_DROP
            )

    # ------------------------------------------------------------------ delivery (learners)

    def _on_delivered(self, room: Room, viewer: Viewer) -> None:
        """The viewer's receiver report acknowledged new packets."""
        viewer.delivered_at = self._wall_clock()
        self._open_delivery(room, viewer)

    def _open_delivery(self, room: Room, viewer: Viewer) -> None:
        """Open a delivery interval (viewer.joined) once the viewer is connected and acknowledges media."""
        delivery = viewer.delivery
        if (
            delivery is None
            or viewer.delivering
            or not viewer.connected.is_set()
            or viewer.rid not in room.viewers
            or delivery.acked_at is None
            or delivery.stalled(time.monotonic(), self.config.delivery_stall_s)
        ):
            return
        viewer.delivering = True
        viewer.opened_at = self._wall_clock()
        joined = events.ViewerJoined(
            session_id=viewer.session_id, person_id=viewer.person_id, peer_id=viewer.rid, at=viewer.opened_at
        )
        log.info(
            "session=%s viewer=%s person=%s delivery confirmed",
            viewer.session_id,
            viewer.rid,
            viewer.person_id,
        )
        self._emit_in_order(viewer, joined)

    def _close_delivery(self, viewer: Viewer, at: datetime, reason: str) -> None:
        if not viewer.delivering:
            return
        viewer.delivering = False
        if viewer.opened_at is not None:
            at = max(at, viewer.opened_at)  # an interval never ends before it began
        left = events.ViewerLeft(
            session_id=viewer.session_id, person_id=viewer.person_id, peer_id=viewer.rid, at=at, reason=reason
        )
        self._emit_in_order(viewer, left)

    def _emit_in_order(self, viewer: Viewer, event: events.ViewerJoined | events.ViewerLeft) -> None:
        previous = viewer.last_emit

        async def emit() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            await self._emit(event)

        viewer.last_emit = self._tasks.spawn(emit())

    async def _watch_delivery(self, viewer: Viewer, delivery: rtc_adapter.DeliveryProbe) -> None:
        """Close the viewer's interval ("stalled") when media goes out and the viewer stops acknowledging
        it: a frozen tab, a player that stopped reading, a network that drops everything. It ends at the
        last acknowledgement; the next one opens a new interval."""
        stall_s = self.config.delivery_stall_s
        while viewer.rid in self._resources:
            await asyncio.sleep(min(1.0, stall_s / 2))
            if viewer.delivering and delivery.stalled(time.monotonic(), stall_s):
                log.info(
                    "session=%s viewer=%s person=%s delivery stalled: no receiver report for %.1f s",
                    viewer.session_id,
                    viewer.rid,
                    viewer.person_id,
                    stall_s,
                )
                self._close_delivery(viewer, viewer.delivered_at or self._wall_clock(), "stalled")

    def _ice_servers(self) -> list[IceServer]:
        """STUN/TURN for one of the server's own peer connections (TURN credentials made now)."""
        cfg = self.config
        return ice.ice_servers(
            cfg.ice_servers,
            cfg.turn_secret,
            user="lectern",
            now=self._wall_clock().timestamp(),
            ttl_s=cfg.turn_credential_ttl_s,
        )

    async def unwatch(self, rid: str, person_id: int) -> None:
        viewer = self._resources.get(ResourceId(rid))
        if not isinstance(viewer, Viewer):
            raise NotFound("no such WHEP resource")
        if viewer.person_id != person_id:
            raise Forbidden("this WHEP resource belongs to someone else")
        await self._drop_viewer(viewer, reason="deleted", left="deleted")

    async def _drop_viewer(self, viewer: Viewer, *, reason: str, left: str = "disconnected") -> None:
        """End a viewer (`reason` for the log); an open delivery interval closes with `left`
        (docs/events.md: deleted, disconnected, ended)."""
        if self._resources.pop(viewer.rid, None) is None:
            return
        room = self._rooms.get(viewer.session_id)
        if room is not None:
            room.viewers.pop(viewer.rid, None)
            for label, queue in viewer.queues.items():
                room.slots[label].unsubscribe(queue)
        for queue in viewer.queues.values():
            queue.close()
        if viewer.watchdog is not None and viewer.watchdog is not asyncio.current_task():
            viewer.watchdog.cancel()
        self._close_delivery(viewer, self._wall_clock(), left)
        if viewer.pc is not None:
            await viewer.pc.close()
        log.info("session=%s viewer=%s gone: %s", viewer.session_id, viewer.rid, reason)
        if viewer.last_emit is not None:
            await asyncio.wait({viewer.last_emit})  # on the bus (or refused) when the drop is done

    # ------------------------------------------------------------------ lifecycle

    async def _expire_unconnected(self, resource: Publisher | Viewer) -> None:
        try:
            await asyncio.wait_for(resource.connected.wait(), self.config.connect_timeout_s)
        except TimeoutError:
            reason = f"not connected after {self.config.connect_timeout_s:g} s"
            if isinstance(resource, Publisher):
                await self._drop_publisher(resource, reason=reason)
            else:
                await self._drop_viewer(resource, reason=reason)

    async def end(self, session_id: int, *, reason: str) -> None:
        """End a room: close every peer, announce session.ended with `reason` (a docs/events.md code:
        ended_by_expert, publisher_lost, scheduled_end, server_shutdown)."""
        room = self._rooms.pop(SessionId(session_id), None)
        if room is None:
            return
        self._stop_grace(room)
        if room.watchdog is not None and room.watchdog is not asyncio.current_task():
            room.watchdog.cancel()
        if room.started_at is not None and reason != "server_shutdown":
            self._ended.add(room.session_id)
        for slot in room.slots.values():
            slot.close()
        await asyncio.gather(
            *(self._drop_publisher(p, reason="session ended") for p in list(room.publishers.values())),
            *(
                self._drop_viewer(v, reason="session ended", left="ended")
                for v in list(room.viewers.values())
            ),
        )
        log.info("session=%s room ended: %s", session_id, reason)
        self._media_changed(room.session_id)
        if room.started_at is not None:  # no media ever arrived: the session never started
            ended = events.SessionEnded(session_id=session_id, at=self._wall_clock(), reason=reason)
            await self._emit(ended)
        await self._hooks.room_ended(session_id, reason)

    async def close(self) -> None:
        """Shut down: end every room, then cancel and await every task this registry started."""
        self._closed = True
        for session_id in list(self._rooms):
            await self.end(session_id, reason="server_shutdown")
        # Drops under way are closing peer connections (releasing a TURN allocation takes a round trip
        # to the TURN server): cancelled halfway, they would leave sockets open.
        await self._tasks.settle(_DROP, timeout_s=_DROP_SETTLE_S)
        await self._tasks.cancel()

    async def _emit(
        self, event: events.SessionStarted | events.SessionEnded | events.ViewerJoined | events.ViewerLeft
    ) -> None:
        if self.bus is None:
            return
        try:
            # The outbox keeps the event on disk until the bus takes it (infra/outbox.py).
            await events.publish(self.bus, event)
        except BusUnavailable as exc:
            # Only when the outbox is full (or absent and the bus down). Live media must not stop for it.
            log.error("session=%s could not publish %s: %s", event.session_id, event.type, exc)
