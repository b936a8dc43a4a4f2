"""Turning a recording's stored segments into its replay: MP4 per angle, VOD playlists, master, manifest."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from infra.objects import ObjectStore
from recorder.layout import (
    Manifest,
    angle_key,
    manifest_key,
    master_key,
    master_playlist,
    media_playlist,
    mp4_key,
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


async def finalize(
    store: ObjectStore, manifest: Manifest, local_dir: Path, executor: Executor | None = None
) -> RecordingSummary:
    """Every segment named in `manifest` is already stored and present under `local_dir/{angle}/`.
    Order: MP4s, then VOD playlists, then the master, then the manifest marked finalized (the commit)."""
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
        summaries.append(
            AngleSummary(
                angle=name,
                start_s=track.start_s,
                duration_s=track.duration_s,
                segments=len(track.segments),
                width=track.width,
                height=track.height,
                playlist_key=angle_key(sid, rid, name, "index.m3u8"),
                mp4_key=mp4_key(sid, rid, name),
                mp4_bytes=size,
            )
        )
    await store.put(
        master_key(sid, rid), master_playlist(list(manifest.angles.values())).encode(), PLAYLIST_TYPE
    )
    manifest.state = "finalized"
    await store.put(manifest_key(sid, rid), manifest.to_json(), "application/json")
    starts = [a.start_s for a in summaries]
    ends = [a.start_s + a.duration_s for a in summaries]
    return RecordingSummary(
        session_id=sid,
        recording_id=rid,
        duration_s=(max(ends) - min(starts)) if summaries else 0.0,
        bytes=total,
        angles=tuple(summaries),
        master_key=master_key(sid, rid),
        manifest_key=manifest_key(sid, rid),
    )
