"""The index of finalized recordings: one summary object per recording under `recordings/`, written by
`finalize()` before its commit, so that finalized recordings can be listed (and announced again, when the
catalog lost them) without walking every segment under `hls/`."""

from __future__ import annotations

import logging
from datetime import datetime

from infra.objects import ObjectNotFound, ObjectStore
from recorder.finalize import (
    AngleSummary,
    RecordingSummary,
    media_end_at,
    summary_from_json,
    summary_to_json,
)
from recorder.layout import (
    SUMMARIES_ROOT,
    Manifest,
    manifest_key,
    master_key,
    mp4_key,
    parse_summary_key,
    summary_key,
)

log = logging.getLogger(__name__)


async def finalized_recordings(store: ObjectStore) -> list[tuple[int, str]]:
    """(session_id, recording_id) of every recording in the index, oldest session first."""
    found = [parse_summary_key(info.key) for info in await store.list(SUMMARIES_ROOT)]
    return sorted(ref for ref in found if ref is not None)


async def read_summary(store: ObjectStore, session_id: int, recording_id: str) -> RecordingSummary:
    """The summary written when the recording was finalized; ObjectNotFound when there is none."""
    return summary_from_json(await store.get(summary_key(session_id, recording_id)))


async def index_finalized(store: ObjectStore, manifest: Manifest, finalized_at: datetime) -> bool:
    """Write the summary of a recording finalized before the index existed (from its manifest and its
    stored MP4s); False when it was already indexed."""
    sid, rid = manifest.session_id, manifest.recording_id
    try:
        await store.stat(summary_key(sid, rid))
        return False
    except ObjectNotFound:
        pass
    angles: list[AngleSummary] = []
    total = 0
    for name, track in sorted(manifest.angles.items()):
        if not track.segments:
            continue
        try:
            mp4_bytes = (await store.stat(mp4_key(sid, rid, name))).size
        except ObjectNotFound:
            mp4_bytes = 0
        total += track.size + mp4_bytes
        angles.append(AngleSummary.of(sid, rid, name, track, mp4_bytes))
    starts = [a.start_s for a in angles]
    ends = [a.start_s + a.duration_s for a in angles]
    summary = RecordingSummary(
        session_id=sid,
        recording_id=rid,
        duration_s=(max(ends) - min(starts)) if angles else 0.0,
        bytes=total,
        angles=tuple(angles),
        master_key=master_key(sid, rid),
        manifest_key=manifest_key(sid, rid),
        media_end_at=media_end_at(manifest),
        finalized_at=finalized_at,
    )
    await store.put(summary_key(sid, rid), summary_to_json(summary), "application/json")
    log.info("session=%s recording=%s added to the index of finalized recordings", sid, rid)
    return True
