"""Storage keys, segment names, HLS playlist text and the recording manifest (pure, no media code)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ANGLES = ("camera", "screen")
State = Literal["open", "finalized"]
MANIFEST_VERSION = 1


# Everything a player fetches lives under hls/{session}/: /hls/<key> serves it to holders of that session's
# media cookie only (infra.media_access; nginx caches it by path after the same check).
RECORDINGS_ROOT = "hls/"
# One summary per finalized recording, outside hls/ (listing it must not reveal recording ids), so that
# finalized recordings can be listed without walking every segment (recorder/index.py).
SUMMARIES_ROOT = "recordings/"


def recording_prefix(session_id: int, recording_id: str) -> str:
    return f"{RECORDINGS_ROOT}{session_id}/{recording_id}"


def init_name(period: int) -> str:
    """The init segment of an angle's `period` (a new one starts at each resolution change)."""
    return "init.mp4" if period == 1 else f"init_{period:03d}.mp4"


def segment_name(seq: int) -> str:
    return f"seg_{seq:06d}.m4s"


def angle_key(session_id: int, recording_id: str, angle: str, name: str) -> str:
    return f"{recording_prefix(session_id, recording_id)}/{angle}/{name}"


def manifest_key(session_id: int, recording_id: str) -> str:
    return f"{recording_prefix(session_id, recording_id)}/manifest.json"


def master_key(session_id: int, recording_id: str) -> str:
    return f"{recording_prefix(session_id, recording_id)}/master.m3u8"


def mp4_key(session_id: int, recording_id: str, angle: str) -> str:
    return f"{recording_prefix(session_id, recording_id)}/{angle}.mp4"


def summary_key(session_id: int, recording_id: str) -> str:
    return f"{SUMMARIES_ROOT}{session_id}/{recording_id}.json"


def parse_summary_key(key: str) -> tuple[int, str] | None:
    """(session_id, recording_id) of a `summary_key`, or None for any other key."""
    parts = key.removeprefix(SUMMARIES_ROOT).split("/")
    if not key.startswith(SUMMARIES_ROOT) or len(parts) != 2 or not parts[1].endswith(".json"):
        return None
    if not parts[0].isdigit() or len(parts[1]) <= len(".json"):
        return None
    return int(parts[0]), parts[1].removesuffix(".json")


@dataclass(frozen=True)
class Segment:
    """One closed media segment of an angle; times are on the recording's common timeline."""

    seq: int
    period: int
    start_s: float
    duration_s: float
    size: int
    discontinuity: bool = (
        False  # set when the segment before it was lost (spool overflow) or the init changed
    )

    @property
    def name(self) -> str:
        return segment_name(self.seq)


@dataclass
class AngleTrack:
    """What the manifest knows about one angle (camera or screen)."""

    angle: str
    codecs: str = "avc1.42e01f,mp4a.40.2"
    width: int = 0
    height: int = 0
    segments: list[Segment] = field(default_factory=list)

    @property
    def start_s(self) -> float:
        return self.segments[0].start_s if self.segments else 0.0

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    def bandwidth_bps(self) -> int:
        duration = self.duration_s
        return int(self.size * 8 / duration) if duration > 0 else 0


@dataclass
class Manifest:
    """The small JSON document beside the media that lets `recover()` finish an interrupted recording."""

    session_id: int
    recording_id: str
    target_duration_s: float
    state: State = "open"
    angles: dict[str, AngleTrack] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    # Wall clock (unix s) when the first frame reached the recorder: timeline 0. With the segments' ends
    # it dates the last stored media (when a crashed session really ended). None in older manifests.
    started_at: float | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        doc: dict[str, Any] = json.loads(raw)
        angles = {
            name: AngleTrack(
                angle=a["angle"],
                codecs=a["codecs"],
                width=int(a["width"]),
                height=int(a["height"]),
                segments=[Segment(**s) for s in a["segments"]],
            )
            for name, a in doc["angles"].items()
        }
        return cls(
            session_id=int(doc["session_id"]),
            recording_id=str(doc["recording_id"]),
            target_duration_s=float(doc["target_duration_s"]),
            state=doc["state"],
            angles=angles,
            version=int(doc.get("version", MANIFEST_VERSION)),
            started_at=float(doc["started_at"]) if doc.get("started_at") is not None else None,
        )

    @property
    def media_end_s(self) -> float:
        """End of the last stored segment of any angle, on the recording's timeline (0 when none)."""
        return max((s.start_s + s.duration_s for t in self.angles.values() for s in t.segments), default=0.0)


def target_duration(segments: list[Segment], target_duration_s: float) -> int:
    """EXT-X-TARGETDURATION: an integer no EXTINF (rounded) may exceed (RFC 8216 4.3.3.1)."""
    longest = max((s.duration_s for s in segments), default=0.0)
    return max(math.ceil(target_duration_s), round(longest), 1)


def media_playlist(segments: list[Segment], target_duration_s: float, *, final: bool) -> str:
    """An angle's playlist: live (rewritten after each segment) or VOD with EXT-X-ENDLIST."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target_duration(segments, target_duration_s)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if final:
        lines.insert(2, "#EXT-X-PLAYLIST-TYPE:VOD")
    period = 0
    for segment in segments:
        if segment.period != period:
            if period:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="{init_name(segment.period)}"')
            period = segment.period
        elif segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXTINF:{segment.duration_s:.3f},")
        lines.append(segment.name)
    if final:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_playlist(angles: list[AngleTrack]) -> str:
    """Lists the angles as alternative VIDEO renditions (camera first); each angle playlist is self-contained
    (its own AAC audio), so a page may also load `{angle}/index.m3u8` directly to switch angles."""
    present = [a for a in sorted(angles, key=lambda a: ANGLES.index(a.angle)) if a.segments]
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for i, angle in enumerate(present):
        default = "YES" if i == 0 else "NO"
        lines.append(
            f'#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="angles",NAME="{angle.angle}",'
            f'DEFAULT={default},AUTOSELECT={default},URI="{angle.angle}/index.m3u8"'
        )
    for angle in present[:1]:
        resolution = f",RESOLUTION={angle.width}x{angle.height}" if angle.width and angle.height else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={max(angle.bandwidth_bps(), 1)}{resolution},"
            f'CODECS="{angle.codecs}",VIDEO="angles"'
        )
        lines.append(f"{angle.angle}/index.m3u8")
    return "\n".join(lines) + "\n"
