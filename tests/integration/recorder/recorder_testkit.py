"""Recorder test kit: a real LocalObjectStore behind a spy that logs put order and can simulate an outage,
a synthetic lecture publisher (libx264 / libvpx / libopus), and ffmpeg/ffprobe checks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from infra.objects import ObjectInfo, StoreUnavailable
from infra.objects_local import LocalObjectStore
from recorder import EncodedFrame

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"


class SpyStore:
    """A real LocalObjectStore; logs every successful put in order and fails puts while `down`."""

    def __init__(self, inner: LocalObjectStore, root: Path) -> None:
        self.inner = inner
        self.root = root
        self.puts: list[tuple[str, bytes | None]] = []
        self.down = False
        self.refused = 0

    def _gate(self) -> None:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("simulated outage")

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        self._gate()
        info = await self.inner.put(key, data, content_type)
        self.puts.append((key, data))
        return info

    async def put_file(
        self, key: str, path: Path, content_type: str = "application/octet-stream", part_size: int = 16 << 20
    ) -> ObjectInfo:
        self._gate()
        info = await self.inner.put_file(key, path, content_type, part_size)
        self.puts.append((key, None))
        return info

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        self._gate()
        return await self.inner.get(key, start, end)

    async def stat(self, key: str) -> ObjectInfo:
        return await self.inner.stat(key)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        self._gate()
        return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        return await self.inner.presigned_get(key, expires_s)

    async def check(self) -> None:
        self._gate()

    async def close(self) -> None:
        await self.inner.close()

    def path(self, key: str) -> Path:
        return self.root / key


@dataclass
class _VideoTrack:
    codec: str
    fps: int
    start_s: float
    first_pts: int
    size_at: list[tuple[float, tuple[int, int]]]
    encoder: Any = None
    size: tuple[int, int] = (0, 0)
    sent: int = 0
    force: bool = False


@dataclass
class SyntheticLecture:
    """Encodes a short lecture on demand, in arrival order. Video encoders use a long GOP and honour
    `request_keyframe`, like a browser; RTP timestamps start at arbitrary values (one near the 2**32 wrap)."""

    video: dict[str, str] = field(default_factory=lambda: {"camera": "h264"})
    fps: int = 15
    audio: bool = True
    screen_start_s: float = 1.0
    resize_camera_at_s: float | None = None
    origin_s: float = 1_700_000_000.0
    requests: list[str] = field(default_factory=list)
    audio_sent: int = 0

    def __post_init__(self) -> None:
        self.tracks: dict[str, _VideoTrack] = {}
        for i, (name, codec) in enumerate(self.video.items()):
            sizes = [(0.0, (320, 180))]
            if name == "camera" and self.resize_camera_at_s is not None:
                sizes.append((self.resize_camera_at_s, (240, 136)))
            self.tracks[name] = _VideoTrack(
                codec=codec,
                fps=self.fps,
                start_s=self.screen_start_s if name == "screen" else 0.0,
                first_pts=[1_000_000, 4_294_900_000][i % 2],  # the second one wraps after ~0.8 s
                size_at=sizes,
            )
        self._opus: Any = None

    def request_keyframe(self, track: str) -> None:
        self.requests.append(track)
        self.tracks[track].force = True

    def sent(self, track: str) -> int:
        return self.tracks[track].sent

    def _video_encoder(self, track: _VideoTrack, size: tuple[int, int]) -> Any:
        enc: Any
        if track.codec == "h264":
            enc = av.CodecContext.create("libx264", "w")
            enc.options = {
                "profile": "baseline",
                "preset": "ultrafast",
                "tune": "zerolatency",
                "forced-idr": "1",
                "x264-params": "repeat-headers=1:scenecut=0:keyint=300",
            }
        else:
            enc = av.CodecContext.create("libvpx", "w")
            enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
            enc.gop_size = 300
            enc.bit_rate = 300_000
        enc.width, enc.height = size
        enc.pix_fmt = "yuv420p"
        enc.time_base = Fraction(1, 90_000)
        enc.framerate = self.fps
        return enc

    def _video_frame(self, name: str, track: _VideoTrack, t: float) -> EncodedFrame | None:
        size = [s for at, s in track.size_at if t >= at][-1]
        if size != track.size:
            track.encoder = self._video_encoder(track, size)
            track.size = size
            track.force = True
        n = round((t - track.start_s) * track.fps)
        frame = av.VideoFrame(size[0], size[1], "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(n * 7 + i * 60) % 256]) * plane.buffer_size)
        pts = round((t - track.start_s) * 90_000)
        frame.pts = pts
        frame.time_base = Fraction(1, 90_000)
        frame.pict_type = av.video.frame.PictureType.I if track.force else av.video.frame.PictureType.NONE
        track.force = False
        packets = track.encoder.encode(frame)
        if not packets:
            return None
        p = packets[0]
        track.sent += 1
        return EncodedFrame(
            track=name,
            codec=track.codec,
            data=bytes(p),
            pts=(track.first_pts + int(p.pts)) % (1 << 32),
            time_base=Fraction(1, 90_000),
            keyframe=bool(p.is_keyframe),
            arrival_s=self.origin_s + track.start_s + int(p.pts) / 90_000 + 0.004 * (n % 3),
        )

    def _audio_frame(self, n: int) -> EncodedFrame | None:
        if self._opus is None:
            self._opus = av.CodecContext.create("libopus", "w")
            self._opus.sample_rate = 48_000
            self._opus.layout = "stereo"
            self._opus.format = "s16"
            self._opus.time_base = Fraction(1, 48_000)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        level = (n * 37) % 200
        frame.planes[0].update(bytes([level, 0]) * (960 * 2))
        frame.sample_rate = 48_000
        frame.pts = n * 960
        frame.time_base = Fraction(1, 48_000)
        packets = self._opus.encode(frame)
        if not packets:
            return None
        self.audio_sent += 1
        return EncodedFrame(
            track="audio",
            codec="opus",
            data=bytes(packets[0]),
            pts=3_000_000 + n * 960,
            time_base=Fraction(1, 48_000),
            keyframe=True,
            arrival_s=self.origin_s + 0.02 + n * 0.02 + 0.003 * (n % 4),
        )

    def frames(self, start_s: float, end_s: float) -> Iterator[EncodedFrame]:
        """Frames whose media time is in [start_s, end_s), in time order (encoded lazily, so a keyframe
        requested by the recorder shows up in the next frame of that track)."""
        events: list[tuple[float, str, int]] = []
        if self.audio:
            events += [(n * 0.02, "audio", n) for n in range(round(start_s / 0.02), round(end_s / 0.02))]
        for name, track in self.tracks.items():
            first = max(0, round((start_s - track.start_s) * track.fps))
            last = round((end_s - track.start_s) * track.fps)
            events += [(track.start_s + k / track.fps, name, k) for k in range(first, last)]
        for t, name, n in sorted(events):
            out = self._audio_frame(n) if name == "audio" else self._video_frame(name, self.tracks[name], t)
            if out is not None:
                yield out


def run_ffmpeg_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            FFPROBE, "-v", "error", "-count_packets",
            "-show_entries",
            "format=duration:stream=codec_name,codec_type,nb_read_packets,start_time,width,height",
            "-of", "json", str(path),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def stream(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    matches = [s for s in doc["streams"] if s["codec_type"] == kind]
    assert len(matches) == 1, doc
    found: dict[str, Any] = matches[0]
    return found
