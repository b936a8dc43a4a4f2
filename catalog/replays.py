"""Replays: finalized recordings registered from `recording.finalized`, who may watch them, and what
their page needs to play them (with the resume point the catalog keeps from playback heartbeats:
catalog.playback for the evidence itself)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.courseware import access as courseware_access
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, RecordingState, Role
from catalog.models import Course, Recording, ReplayProgress, Session
from infra import media_access
from infra.errors import Forbidden, NotFound
from infra.events import RecordingFinalized

log = logging.getLogger(__name__)

HLS_PREFIX = "hls/"
ANGLE_ORDER = ("camera", "screen")


# -- pure helpers ------------------------------------------------------------------------------------


def angles_of(event: RecordingFinalized) -> dict[str, dict[str, Any]]:
    """angle -> its keys and times. An event from before `angles` existed names one playlist: its
    directory (`.../{angle}/index.m3u8`) is the angle."""
    if event.angles:
        return {
            a.angle: {
                "playlist_key": a.playlist_key,
                "mp4_key": a.mp4_key,
                "start_s": a.start_s,
                "duration_s": a.duration_s,
                "width": a.width,
                "height": a.height,
                "mp4_bytes": a.mp4_bytes,
            }
            for a in event.angles
        }
    parts = event.playlist_key.split("/")
    name = parts[-2] if len(parts) >= 2 and parts[-1] == "index.m3u8" else "camera"
    return {
        name: {
            "playlist_key": event.playlist_key,
            "mp4_key": event.mp4_key,
            "start_s": 0.0,
            "duration_s": event.duration_s,
            "width": 0,
            "height": 0,
            "mp4_bytes": None,
        }
    }


def hls_url(key: str | None) -> str | None:
    """The path a browser loads an object under hls/ from: `/hls/...` (nginx or streaming.hls_routes)."""
    if not key or not key.startswith(HLS_PREFIX):
        return None
    return "/hls/" + quote(key.removeprefix(HLS_PREFIX), safe="/")


def ordered_angles(angles: dict[str, Any]) -> list[str]:
    """Camera first, then screen, then anything else by name."""
    return sorted(angles, key=lambda a: (ANGLE_ORDER.index(a) if a in ANGLE_ORDER else len(ANGLE_ORDER), a))


def replay_summary(recording: Recording, session_title: str, watchable: bool) -> dict[str, Any]:
    """A replay as listed on its course page; its `id` (the way to its media) only for a caller who may
    watch it (`watchable`), null for anyone else."""
    return {
        "id": recording.id if watchable else None,
        "session_id": recording.session_id,
        "session_title": session_title,
        "duration_s": recording.duration_s,
        "angles": ordered_angles(recording.angles),
        "finalized_at": recording.finalized_at.isoformat() if recording.finalized_at else None,
    }


def _progress_view(progress: ReplayProgress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {
        "position_s": progress.position_s,
        "rate": progress.rate,
        "visible": progress.visible,
        "angle": progress.angle,
        "updated_at": progress.updated_at.isoformat(),
    }


# -- registering recordings (the event consumer) -----------------------------------------------------


async def unlisted_recordings(
    db: Database, recordings: Sequence[tuple[int, str]], batch: int = 500
) -> list[tuple[int, str]]:
    """Of `(session_id, recording_id)` pairs (finalized recordings in the object store), those the catalog
    does not list although it has their session: what reconciliation announces again."""
    unlisted: list[tuple[int, str]] = []
    for start in range(0, len(recordings), batch):
        chunk = recordings[start : start + batch]
        async with db.sessions.begin() as s:
            listed = set(await s.scalars(select(Recording.id).where(Recording.id.in_([r for _, r in chunk]))))
            known = set(await s.scalars(select(Session.id).where(Session.id.in_({sid for sid, _ in chunk}))))
        unlisted += [(sid, rid) for sid, rid in chunk if rid not in listed and sid in known]
    return unlisted


async def register(db: Database, event: RecordingFinalized, now: datetime) -> bool:
    """Record a finalized recording as a replay of its session; False when it already was (events are
    delivered at least once). NotFound when the session does not exist."""
    try:
        async with db.sessions.begin() as s:
            if await s.get(Session, event.session_id) is None:
                raise NotFound(f"session {event.session_id} not found", field="session_id")
            existing = await s.get(Recording, event.recording_id)
            if existing is not None:
                if existing.session_id != event.session_id:
                    log.warning(
                        "recording=%s already registered for session=%s, not session=%s",
                        event.recording_id,
                        existing.session_id,
                        event.session_id,
                    )
                return False
            s.add(
                Recording(
                    id=event.recording_id,
                    session_id=event.session_id,
                    state=RecordingState.FINALIZED.value,
                    duration_s=event.duration_s,
                    size_bytes=event.size_bytes,
                    angles=angles_of(event),
                    master_key=event.master_key,
                    created_at=now,
                    finalized_at=event.at,
                )
            )
    except IntegrityError:
        # Another consumer registered it between our check and our insert: the same outcome.
        log.info("recording=%s registered concurrently", event.recording_id)
        return False
    log.info(
        "replay registered session=%s recording=%s duration_s=%.1f",
        event.session_id,
        event.recording_id,
        event.duration_s,
    )
    return True


# -- watching ----------------------------------------------------------------------------------------


async def watcher_role(
    s: AsyncSession, caller: Caller, course: Course, expert_ids: Collection[int]
) -> str | None:
    """Who `caller` is among the people who may watch a session's media (live HLS and replays): "expert"
    (one of the session's `expert_ids`), "staff" (the course provider's), "learner" (enrolled in the
    course), "reviewer" (the association's, for courseware) or "supervisor" (bureau, admins); None for
    anyone else."""
    if caller.person_id in expert_ids:
        return "expert"
    # A courseware version not approved (its session in the staging course, a draft): its owner (the
    # expert above) and the association's reviewers only (R27, catalog.courseware.access).
    if course.status == CourseStatus.DRAFT and await courseware_access.is_staging(s, course.id):
        return courseware_access.REVIEWER if caller.holds(Role.REVIEWER, anywhere=True) else None
    if caller.manages_provider(course.provider_org_id):
        return "staff"
    if await queries.active_enrollment(s, caller.person_id, course.id) is not None:
        return "learner"
    if caller.holds(Role.REVIEWER, anywhere=True) and await courseware_access.is_courseware_course(
        s, course.id
    ):
        return courseware_access.REVIEWER
    return "supervisor" if caller.supervises_provider(course.provider_org_id) else None


def experts_of(session: Session) -> set[int]:
    return {e.person_id for e in session.experts}


async def watchable(s: AsyncSession, caller: Caller, recording_id: str) -> tuple[Recording, Session]:
    """The recording and its session, when `caller` may watch it (watcher_role). Forbidden otherwise."""
    recording = await s.get(Recording, recording_id)
    if recording is None or recording.state != RecordingState.FINALIZED:
        raise NotFound(f"replay {recording_id} not found", field="recording_id")
    session = await queries.session_or_404(s, recording.session_id)
    if await watcher_role(s, caller, session.course, experts_of(session)) is None:
        raise Forbidden(
            "only the course's enrolled learners, its provider, the session's experts and supervisors"
            " may watch this replay"
        )
    return recording, session


@dataclass(frozen=True)
class MediaCookie:
    """The `lectern_media` cookie (infra.media_access) to set: `value` on `path` for `max_age_s`."""

    value: str
    path: str
    max_age_s: int
    expires_at: datetime


async def grant_media(
    db: Database, secret_key: str, caller: Caller, session_id: int, now: datetime
) -> MediaCookie:
    """The cookie that lets `caller` fetch everything under `/hls/{session_id}/` (the live HLS, the
    replay's playlists, segments and MP4 downloads) for an hour; Forbidden for anyone watcher_role
    refuses, NotFound for a session that does not exist."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        role = await watcher_role(s, caller, session.course, experts_of(session))
    if role is None:
        raise Forbidden(
            "only the course's enrolled learners, its provider, the session's experts and supervisors"
            " may watch this session's media"
        )
    value = media_access.issue(secret_key, caller.person_id, session_id, role, now.timestamp())
    return MediaCookie(
        value=value,
        path=media_access.cookie_path(session_id),
        max_age_s=media_access.TTL_S,
        expires_at=now + timedelta(seconds=media_access.TTL_S),
    )


async def playback(db: Database, caller: Caller, recording_id: str) -> dict[str, Any]:
    """What the replay page needs: the angles' HLS and MP4 URLs, the duration, the caller's progress."""
    async with db.sessions.begin() as s:
        recording, session = await watchable(s, caller, recording_id)
        progress = await s.get(ReplayProgress, (caller.person_id, recording.id))
        course_title = session.course.title
    angles = []
    for name in ordered_angles(recording.angles):
        info = recording.angles[name]
        angles.append(
            {
                "name": name,
                "hls_url": hls_url(info.get("playlist_key")),
                "mp4_url": hls_url(info.get("mp4_key")),
                "start_s": info.get("start_s", 0.0),
                "duration_s": info.get("duration_s", recording.duration_s),
                "width": info.get("width", 0),
                "height": info.get("height", 0),
                "mp4_bytes": info.get("mp4_bytes"),
            }
        )
    return {
        "id": recording.id,
        "session_id": session.id,
        "session_title": session.title,
        "course_id": session.course_id,
        "course_title": course_title,
        "duration_s": recording.duration_s,
        "size_bytes": recording.size_bytes,
        "finalized_at": recording.finalized_at.isoformat() if recording.finalized_at else None,
        "master_url": hls_url(recording.master_key),
        "angles": angles,
        "progress": _progress_view(progress),
    }
