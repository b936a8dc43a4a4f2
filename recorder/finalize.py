"""Turning a recording's stored segments into its replay: MP4 per angle, VOD playlists, master, manifest."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.objects import ObjectStore
from recorder.layout import (
    AngleTrack,
    Manifest,
    angle_key,
    manifest_key,
    master_key,
    master_playlist,
    media_playlist,
    mp4_key,
    summary_key,
)
from recorder.mp4 import build_mp4

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


@dataclass(frozen=True)
class AngleSummary:
    angle: str
    start_s: float
    duration_s: float
    segments: int
    width: int
    height: int
    playlist_key: str
    mp4_key: str
    mp4_bytes: int

    @classmethod
    def of(cls, sid: int, rid: str, name: str, track: AngleTrack, mp4_bytes: int) -> AngleSummary:
        """The summary of angle `name` of recording `rid` of session `sid`, stored as the layout says."""
        return cls(
            angle=name,
            start_s=track.start_s,
            duration_s=track.duration_s,
            segments=len(track.segments),
            width=track.width,
            height=track.height,
            playlist_key=angle_key(sid, rid, name, "index.m3u8"),
            mp4_key=mp4_key(sid, rid, name),
            mp4_bytes=mp4_bytes,
        )


@dataclass(frozen=True)
class RecordingSummary:
    """What the catalog needs to publish a replay: duration, size, angles, and where everything is."""

    session_id: int
    recording_id: str
    duration_s: float
    bytes: int  # segments + init segments' worth of media, plus the MP4s
    angles: tuple[AngleSummary, ...]
    master_key: str
    manifest_key: str
    # When the last stored media was recorded (wall clock), None when unknown (an older manifest).
    media_end_at: datetime | None = None
    finalized_at: datetime | None = None


# Module functions, not methods: inside the class, `bytes` names the field.
def summary_to_json(summary: RecordingSummary) -> bytes:
    doc: dict[str, Any] = asdict(summary)
    for name in ("media_end_at", "finalized_at"):
        value = getattr(summary, name)
        doc[name] = value.isoformat() if value is not None else None
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def summary_from_json(raw: bytes) -> RecordingSummary:
    doc: dict[str, Any] = json.loads(raw)
    times = {
        name: datetime.fromisoformat(doc[name]) if doc.get(name) else None
        for name in ("media_end_at", "finalized_at")
    }
    return RecordingSummary(
        session_id=int(doc["session_id"]),
        recording_id=str(doc["recording_id"]),
        duration_s=float(doc["duration_s"]),
        bytes=int(doc["bytes"]),
        angles=tuple(AngleSummary(**a) for a in doc["angles"]),
        master_key=str(doc["master_key"]),
        manifest_key=str(doc["manifest_key"]),
        **times,
    )


def media_end_at(manifest: Manifest) -> datetime | None:
    """Wall-clock time of the end of the recording's last stored segment, when the manifest knows when
    the recording started."""
    if manifest.started_at is None:
        return None
    return datetime.fromtimestamp(manifest.started_at + manifest.media_end_s, UTC)


async def finalize(
    store: ObjectStore, manifest: Manifest, local_dir: Path, executor: Executor | None = None
) -> RecordingSummary:
    """Every segment named in `manifest` is already stored and present under `local_dir/{angle}/`.
    Order: MP4s, then VOD playlists, then the master, then the summary (recorder/index.py), then the
    manifest marked finalized (the commit: a crash before it leaves the recording to recover())."""
    loop = asyncio.get_running_loop()
    sid, rid = manifest.session_id, manifest.recording_id
    summaries: list[AngleSummary] = []
    total = 0
    for name, track in sorted(manifest.angles.items()):
        if not track.segments:
            continue
        out = local_dir / f"{name}.mp4"
        packets = await loop.run_in_executor(executor, build_mp4, local_dir / name, track.segments, out)
        size = out.stat().st_size
        log.info("session=%s recording=%s angle=%s mp4 %d packets %d bytes", sid, rid, name, packets, size)
        await store.put_file(mp4_key(sid, rid, name), out, "video/mp4")
        playlist = media_playlist(track.segments, manifest.target_duration_s, final=True)
        await store.put(angle_key(sid, rid, name, "index.m3u8"), playlist.encode(), PLAYLIST_TYPE)
        total += track.size + size
        summaries.append(AngleSummary.of(sid, rid, name, track, size))
    await store.put(
        master_key(sid, rid), master_playlist(list(manifest.angles.values())).encode(), PLAYLIST_TYPE
    )
    starts = [a.start_s for a in summaries]
    ends = [a.start_s + a.duration_s for a in summaries]
    summary = RecordingSummary(
        session_id=sid,
        recording_id=rid,
        duration_s=(max(ends) - min(starts)) if summaries else 0.0,
        bytes=total,
        angles=tuple(summaries),
        master_key=master_key(sid, rid),
        manifest_key=manifest_key(sid, rid),
        media_end_at=media_end_at(manifest),
        finalized_at=datetime.now(UTC),
    )
    await store.put(summary_key(sid, rid), summary_to_json(summary), "application/json")
    manifest.state = "finalized"
    await store.put(manifest_key(sid, rid), manifest.to_json(), "application/json")
    return summary
