"""Lectern's events: topic names, typed payloads that validate themselves, and the wire form of event
data shared by both bus implementations. docs/events.md is the catalogue; tests/unit/test_events.py
keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Final, Self

from infra.bus import Delivery, EventSink
from infra.errors import Invalid

SESSIONS: Final = "sessions"
ATTENDANCE: Final = "attendance"
PRESENCE: Final = "presence"
RECORDINGS: Final = "recordings"
EVIDENCE: Final = "evidence"  # heartbeats and replay checks: high volume, consumed in batches
TOPICS: Final = (SESSIONS, ATTENDANCE, PRESENCE, RECORDINGS, EVIDENCE)
# Evidence behind credit: never trimmed before the catalog's consumer group has acknowledged it.
KEPT_UNTIL_CONSUMED: Final = (ATTENDANCE, PRESENCE, EVIDENCE)


# -- the wire form, shared by infra.bus_memory and infra.bus_redis -----------------------------------

_ID_RE = re.compile(r"^(\d+)-(\d+)$")


def encode_data(data: dict[str, Any]) -> str:
    """Event data as strict JSON text (no NaN, non-ASCII kept); Invalid unless it is a JSON object."""
    if not isinstance(data, dict):
        raise Invalid("event data must be a JSON object", field="data")
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise Invalid(f"event data is not JSON: {exc}", field="data") from exc


def parse_event_id(event_id: str) -> tuple[int, int]:
    """A bus id "<ms>-<seq>" as (ms, seq), which compares in id order; Invalid for anything else."""
    match = _ID_RE.match(event_id) if isinstance(event_id, str) else None
    if match is None:
        raise Invalid(f"not an event id: {event_id!r}", field="ids")
    return int(match.group(1)), int(match.group(2))


def require_name(value: str, what: str) -> None:
    """Topic, group, consumer and type names are non-empty strings."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"{what} must be a non-empty string", field=what)


def require_count(count: int) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise Invalid("count must be a positive integer", field="count")


def require_seconds(value: float, what: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise Invalid(f"{what} must be a finite number ≥ 0", field=what)


# -- typed events ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Event:
    """Base of the typed events. Each subclass names its `topic` and `type` and lists its fields.

    Field rules, checked on construction and so also by `from_dict`: `int` ≥ 0 (≥ 1 for `*_id`),
    never a bool; `bool` only true/false; `str` non-empty; `float` finite and ≥ 0 (ints accepted);
    `datetime` timezone-aware, kept in UTC, ISO 8601 on the wire; `X | None` may be null;
    `tuple[V, ...]` of a `Value` dataclass is a JSON array of objects. Unknown keys in `from_dict` are
    ignored so that an older consumer can read events from a newer producer; a field with a default may
    be missing, so that a newer consumer can read events from an older producer.
    """

    topic: ClassVar[str]
    type: ClassVar[str]

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_field(type(self).type, f.name, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Rules across fields; subclasses override."""

    def to_dict(self) -> dict[str, Any]:
        """The event data as published: JSON types only."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate received data; Invalid names the first missing or malformed field."""
        if not isinstance(data, Mapping):
            raise Invalid(f"{cls.type}: event data must be an object", field="data")
        hints = _type_hints(cls)
        return cls(**_kwargs(cls.type, cls, hints, data))


@dataclasses.dataclass(frozen=True)
class Value:
    """A structured field value inside an event (e.g. one angle of a recording); same field rules."""

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_field(type(self).__name__, f.name, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _kwargs(what: str, cls: type[Any], hints: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue  # added after the first version of the event: older producers omit it
            raise Invalid(f"{what}: missing field {f.name}", field=f.name)
        value = data[f.name]
        if _base_type(hints[f.name]) is datetime and isinstance(value, str):
            value = _parse_datetime(what, f.name, value)
        kwargs[f.name] = value
    return kwargs


@dataclasses.dataclass(frozen=True)
class SessionStarted(Event):
    topic: ClassVar[str] = SESSIONS
    type: ClassVar[str] = "session.started"
    session_id: int
    at: datetime


@dataclasses.dataclass(frozen=True)
class SessionEnded(Event):
    topic: ClassVar[str] = SESSIONS
    type: ClassVar[str] = "session.ended"
    session_id: int
    at: datetime
    reason: str


@dataclasses.dataclass(frozen=True)
class ViewerJoined(Event):
    topic: ClassVar[str] = ATTENDANCE
    type: ClassVar[str] = "viewer.joined"
    session_id: int
    person_id: int
    peer_id: str
    at: datetime


@dataclasses.dataclass(frozen=True)
class ViewerLeft(Event):
    topic: ClassVar[str] = ATTENDANCE
    type: ClassVar[str] = "viewer.left"
    session_id: int
    person_id: int
    peer_id: str
    at: datetime
    # Why delivery stopped counting: deleted, disconnected, stalled, ended (docs/events.md). Optional:
    # older producers omit it.
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class AttentionChanged(Event):
    """The room channel's view of a learner's live page: visible (the page reports it shown and keeps
    sending heartbeats) or not (hidden, heartbeats stopped for > 2 periods, channel closed). Credited live
    time is delivery (viewer.joined/left) intersected with attention."""

    topic: ClassVar[str] = ATTENDANCE
    type: ClassVar[str] = "attention.changed"
    session_id: int
    person_id: int
    conn_id: str  # one room-channel connection (a tab)
    visible: bool
    at: datetime
    reason: str  # shown, hidden, heartbeat_gap, closed, superseded


@dataclasses.dataclass(frozen=True)
class HlsHeartbeat(Event):
    """An overflow (HLS) viewer's heartbeat, stamped by the server; accepted only in the live window."""

    topic: ClassVar[str] = EVIDENCE
    type: ClassVar[str] = "hls.heartbeat"
    session_id: int
    person_id: int
    client_id: str
    seq: int
    at: datetime  # server time of receipt
    media_sequence: int  # EXT-X-MEDIA-SEQUENCE + index of the segment playing
    position_s: float
    rate: float
    visible: bool


@dataclasses.dataclass(frozen=True)
class LiveHeartbeat(Event):
    """A learner's live page heartbeat on the room channel, stamped by the server: raw evidence, one per
    heartbeat (attention.changed carries only the transitions)."""

    topic: ClassVar[str] = EVIDENCE
    type: ClassVar[str] = "live.heartbeat"
    session_id: int
    person_id: int
    client_id: str  # the channel connection's key (attention.changed's conn_id)
    seq: int
    at: datetime  # server time of receipt
    visible: bool  # the page's attention after this heartbeat (as attention.changed would say)


@dataclasses.dataclass(frozen=True)
class HlsSegmentFetched(Event):
    """A live segment the server (or nginx's auth_request) handed to an overflow viewer."""

    topic: ClassVar[str] = EVIDENCE
    type: ClassVar[str] = "hls.segment_fetched"
    session_id: int
    person_id: int
    key: str
    at: datetime


@dataclasses.dataclass(frozen=True)
class PlaybackHeartbeat(Event):
    """A replay client's heartbeat, bound to its server-opened playback (client) session."""

    topic: ClassVar[str] = EVIDENCE
    type: ClassVar[str] = "playback.heartbeat"
    client_id: str
    person_id: int
    recording_id: str
    seq: int
    at: datetime  # server time of receipt
    position_s: float
    rate: float
    visible: bool
    angle: str


@dataclasses.dataclass(frozen=True)
class ReplayCheckIssued(Event):
    """A presence check shown in a replay (at a media position the server chose), with its window."""

    topic: ClassVar[str] = EVIDENCE
    type: ClassVar[str] = "replay_check.issued"
    client_id: str
    person_id: int
    recording_id: str
    check_id: str
    position_s: float
    issued_at: datetime
    deadline_at: datetime

    def _check(self) -> None:
        if self.deadline_at <= self.issued_at:
            raise Invalid(f"{self.type}: deadline_at must be after issued_at", field="deadline_at")


@dataclasses.dataclass(frozen=True)
class ReplayCheckAnswered(Event):
    topic: ClassVar[str] = EVIDENCE
    type: ClassVar[str] = "replay_check.answered"
    client_id: str
    person_id: int
    recording_id: str
    check_id: str
    answered_at: datetime
    latency_ms: int  # from the check reaching the page to the answer, as the server measured it


@dataclasses.dataclass(frozen=True)
class PresenceCheckIssued(Event):
    topic: ClassVar[str] = PRESENCE
    type: ClassVar[str] = "presence_check.issued"
    session_id: int
    check_id: str
    issued_at: datetime
    deadline_at: datetime

    def _check(self) -> None:
        if self.deadline_at <= self.issued_at:
            raise Invalid(f"{self.type}: deadline_at must be after issued_at", field="deadline_at")


@dataclasses.dataclass(frozen=True)
class PresenceCheckAnswered(Event):
    topic: ClassVar[str] = PRESENCE
    type: ClassVar[str] = "presence_check.answered"
    session_id: int
    check_id: str
    person_id: int
    answered_at: datetime
    # Added with credit: ms from the prompt reaching this learner to the answer (server-measured).
    latency_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class RecordingSegmentStored(Event):
    topic: ClassVar[str] = RECORDINGS
    type: ClassVar[str] = "recording.segment_stored"
    session_id: int
    recording_id: str
    track: str
    seq: int
    duration_s: float


@dataclasses.dataclass(frozen=True)
class RecordingAngle(Value):
    """One angle (camera, screen) of a finalized recording, as in recorder.AngleSummary."""

    angle: str
    start_s: float  # on the recording's common timeline
    duration_s: float
    segments: int
    width: int
    height: int
    playlist_key: str
    mp4_key: str | None
    mp4_bytes: int


@dataclasses.dataclass(frozen=True)
class RecordingFinalized(Event):
    topic: ClassVar[str] = RECORDINGS
    type: ClassVar[str] = "recording.finalized"
    session_id: int
    recording_id: str
    segment_count: int
    duration_s: float
    playlist_key: str
    mp4_key: str | None
    at: datetime
    # Added with the replay catalog; optional so that events of an older producer still decode.
    size_bytes: int | None = None
    master_key: str | None = None
    angles: tuple[RecordingAngle, ...] = ()


EVENT_TYPES: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {
        cls.type: cls
        for cls in (
            SessionStarted,
            SessionEnded,
            ViewerJoined,
            ViewerLeft,
            AttentionChanged,
            LiveHeartbeat,
            HlsHeartbeat,
            HlsSegmentFetched,
            PlaybackHeartbeat,
            ReplayCheckIssued,
            ReplayCheckAnswered,
            PresenceCheckIssued,
            PresenceCheckAnswered,
            RecordingSegmentStored,
            RecordingFinalized,
        )
    }
)


def decode(delivery: Delivery) -> Event:
    """The typed event of a delivery; Invalid for an unknown type, a wrong topic or bad data."""
    cls = EVENT_TYPES.get(delivery.type)
    if cls is None:
        raise Invalid(f"unknown event type {delivery.type!r}", field="type")
    if cls.topic != delivery.topic:
        raise Invalid(f"{delivery.type} does not belong on topic {delivery.topic!r}", field="topic")
    return cls.from_dict(delivery.data)


async def publish(bus: EventSink, event: Event) -> str:
    """Publish a typed event on its topic (on the bus, or into the outbox); returns the sink's id."""
    return await bus.publish(event.topic, event.type, event.to_dict())


# -- field checks ------------------------------------------------------------------------------------


_HINTS: dict[type[Any], Mapping[str, Any]] = {}  # a memo, filled once per class


def _type_hints(cls: type[Any]) -> Mapping[str, Any]:
    """`typing.get_type_hints` of an event or value class, resolved once per class: it evaluates the
    string annotations every time, and events are built on every heartbeat."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = MappingProxyType(typing.get_type_hints(cls))
    return hints


@functools.cache
def _shape(annotation: Any) -> tuple[bool, Any]:
    """(may be null, base type) of a field annotation, worked out once per annotation."""
    optional = isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)
    return optional, _base_type(annotation)


def _base_type(annotation: Any) -> Any:
    """`X | None` → X; anything else unchanged."""
    if isinstance(annotation, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _check_field(event_type: str, name: str, annotation: Any, value: Any) -> Any:
    def bad(why: str) -> Invalid:
        return Invalid(f"{event_type}: {name} {why} (got {value!r})", field=name)

    optional, kind = _shape(annotation)
    if value is None:
        if optional:
            return None
        raise bad("is required")
    if typing.get_origin(kind) is tuple:
        return _check_values(event_type, name, typing.get_args(kind)[0], value)
    if kind is bool:
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("must be an integer")
        if value < (1 if name.endswith("_id") else 0):
            raise bad("must be positive" if name.endswith("_id") else "must not be negative")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("must be a number")
        if not math.isfinite(value) or value < 0:
            raise bad("must be a finite number ≥ 0")
        return float(value)
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise bad("must be a non-empty string")
        return value
    if kind is datetime:
        if not isinstance(value, datetime):
            raise bad("must be an ISO 8601 time")
        if value.utcoffset() is None:
            raise bad("must carry a time zone")
        return value.astimezone(UTC)
    raise TypeError(f"{event_type}.{name}: unsupported field type {annotation!r}")  # a programming error


def _check_values(event_type: str, name: str, item_type: Any, value: Any) -> tuple[Any, ...]:
    """A JSON array (or tuple) of `Value` objects; Invalid names the event field, e.g. `angles`."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
        raise Invalid(f"{event_type}: {name} must be an array (got {value!r})", field=name)
    items: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, item_type):
            items.append(item)
            continue
        if not isinstance(item, Mapping):
            raise Invalid(f"{event_type}: {name}[{i}] must be an object (got {item!r})", field=name)
        try:
            items.append(item_type(**_kwargs(item_type.__name__, item_type, _type_hints(item_type), item)))
        except Invalid as exc:
            raise Invalid(f"{event_type}: {name}[{i}]: {exc.message}", field=name) from None
    return tuple(items)


def _parse_datetime(event_type: str, name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(f"{event_type}: {name} must be an ISO 8601 time (got {text!r})", field=name) from exc
    if value.utcoffset() is None:
        raise Invalid(f"{event_type}: {name} must carry a time zone (got {text!r})", field=name)
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [item.to_dict() if isinstance(item, Value) else _to_json(item) for item in value]
    return value
