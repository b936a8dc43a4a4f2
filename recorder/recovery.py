"""Finishing recordings a crash left open, from what reached the spool and the object store."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from infra.objects import ObjectNotFound, ObjectStore
from recorder.finalize import RecordingSummary, finalize
from recorder.index import finalized_recordings, index_finalized
from recorder.layout import RECORDINGS_ROOT, Manifest, Segment, angle_key, init_name, recording_prefix
from recorder.recording import INIT_TYPE, SEGMENT_TYPE
from recorder.spool import remove_recording_dir

log = logging.getLogger(__name__)


async def recover(store: ObjectStore, spool_dir: Path) -> list[RecordingSummary]:
    """Finalize every recording whose manifest is still `open`: first those in the local spool (their
    missing objects are uploaded), then those only the store knows (segments are downloaded). Run at start
    up, before any Recorder of the recovered sessions starts. Finalized recordings missing from the index
    of finalized recordings (finalized before it existed) are added to it on the way."""
    summaries: list[RecordingSummary] = []
    seen: set[tuple[int, str]] = set()
    for path in sorted(await asyncio.to_thread(lambda: list(spool_dir.glob("*/*/manifest.json")))):
        manifest = Manifest.from_json(await asyncio.to_thread(path.read_bytes))
        seen.add((manifest.session_id, manifest.recording_id))
        if manifest.state == "open":
            await _upload_missing(store, manifest, path.parent)
            summaries.append(await _finalize_logged(store, manifest, path.parent))
        await asyncio.to_thread(remove_recording_dir, path.parent)
    indexed = set(await finalized_recordings(store))
    for info in await store.list(RECORDINGS_ROOT):
        if not info.key.endswith("/manifest.json"):
            continue
        manifest = Manifest.from_json(await store.get(info.key))
        if manifest.state == "finalized":
            if (manifest.session_id, manifest.recording_id) not in indexed:
                await index_finalized(store, manifest, info.modified_at)
            continue
        if (manifest.session_id, manifest.recording_id) in seen:
            continue
        await asyncio.to_thread(spool_dir.mkdir, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=spool_dir, prefix="recover-") as tmp:
            local = Path(tmp)
            await _download(store, manifest, local)
            summaries.append(await _finalize_logged(store, manifest, local))
    return summaries


async def _finalize_logged(store: ObjectStore, manifest: Manifest, local: Path) -> RecordingSummary:
    summary = await finalize(store, manifest, local)
    log.warning(
        "session=%s recording=%s recovered after a crash: %.1f s in %d angles",
        manifest.session_id,
        manifest.recording_id,
        summary.duration_s,
        len(summary.angles),
    )
    return summary


def _keep(manifest: Manifest, available: set[str]) -> None:
    """Drop segments that exist nowhere; the one after a hole gets a discontinuity."""
    for name, track in manifest.angles.items():
        kept: list[Segment] = []
        hole = False
        for segment in track.segments:
            if angle_key(manifest.session_id, manifest.recording_id, name, segment.name) not in available:
                hole = True
                continue
            kept.append(replace(segment, discontinuity=True) if hole and kept else segment)
            hole = False
        track.segments = kept


async def _upload_missing(store: ObjectStore, manifest: Manifest, local: Path) -> None:
    prefix = recording_prefix(manifest.session_id, manifest.recording_id) + "/"
    stored = {i.key: i.size for i in await store.list(prefix)}
    available = set(stored)
    for name, track in manifest.angles.items():
        periods = sorted({s.period for s in track.segments})
        files = [(init_name(p), INIT_TYPE) for p in periods] + [
            (s.name, SEGMENT_TYPE) for s in track.segments
        ]
        for filename, content_type in files:
            key = angle_key(manifest.session_id, manifest.recording_id, name, filename)
            path = local / name / filename
            exists = await asyncio.to_thread(path.exists)
            if exists and stored.get(key) != (await asyncio.to_thread(path.stat)).st_size:
                await store.put_file(key, path, content_type)
            if exists or key in stored:
                available.add(key)
    _keep(manifest, available)


async def _download(store: ObjectStore, manifest: Manifest, local: Path) -> None:
    available: set[str] = set()
    for name, track in manifest.angles.items():
        await asyncio.to_thread((local / name).mkdir, parents=True, exist_ok=True)
        periods = sorted({s.period for s in track.segments})
        for filename in [init_name(p) for p in periods] + [s.name for s in track.segments]:
            key = angle_key(manifest.session_id, manifest.recording_id, name, filename)
            try:
                data = await store.get(key)
            except ObjectNotFound:
                continue
            await asyncio.to_thread((local / name / filename).write_bytes, data)
            available.add(key)
    _keep(manifest, available)
