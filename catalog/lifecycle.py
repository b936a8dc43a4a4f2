"""A session's lifecycle as people see it: scheduled, live, ended or missed, read from its schedule and the
live server's start/end (`session.started` / `session.ended`); when its media tokens may be used (the
media window); and which recording is its replay.

Pure: imports nothing of aiohttp or SQLAlchemy; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from catalog.domain import CourseStatus, SessionKind

# Policy: an expert may go live (WHIP) from this long before the scheduled start, to set up and test.
WHIP_OPENS_BEFORE_START = timedelta(minutes=30)


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"  # not started yet, its scheduled end still ahead
    LIVE = "live"  # started and not ended (for sessions Lectern does not host: within the schedule)
    ENDED = "ended"  # over: a live session ended by the live server, another kind past its scheduled end
    MISSED = "missed"  # a live session whose scheduled end passed without it ever going live


def session_status(
    kind: str,
    scheduled_start: datetime,
    scheduled_end: datetime,
    actual_start: datetime | None,
    actual_end: datetime | None,
    now: datetime,
) -> SessionStatus:
    """What a session is at `now`. The live server's start and end win over the schedule: a lecture that
    starts early is live before its scheduled start, one that overruns is live after its scheduled end.
    A live session that was never started stays `scheduled` until its scheduled end and is `missed`
    after it (its expert may still go live late, and it is `live` then). External and offline sessions
    are not seen by the live server: unless actual times were recorded for them, their schedule says."""
    if actual_end is not None:
        return SessionStatus.ENDED
    if actual_start is not None:
        return SessionStatus.LIVE
    if now < scheduled_end:
        if kind != SessionKind.LIVE and now >= scheduled_start:
            return SessionStatus.LIVE
        return SessionStatus.SCHEDULED
    return SessionStatus.MISSED if kind == SessionKind.LIVE else SessionStatus.ENDED


class MediaRefusal(StrEnum):
    """Why a session's media (publishing, watching, the room channel) is closed now; the error codes."""

    COURSE_NOT_PUBLISHED = "course_not_published"  # a draft or archived course has no live room
    TOO_EARLY = "too_early"  # publishing before WHIP_OPENS_BEFORE_START ahead of the scheduled start
    SESSION_ENDED = "session_ended"  # over: nothing of its live room may be opened again


def whip_opens_at(scheduled_start: datetime) -> datetime:
    """The earliest moment the session's expert may go live."""
    return scheduled_start - WHIP_OPENS_BEFORE_START


def media_refusal(
    *,
    publishing: bool,
    course_status: str,
    status: SessionStatus,
    scheduled_start: datetime,
    now: datetime,
) -> MediaRefusal | None:
    """Whether the session's live room may be used at `now` (None) or why not: only for published courses
    and sessions not ended. Publishing (the expert's WHIP) also opens only WHIP_OPENS_BEFORE_START before
    the scheduled start, unless the session is live already (a reconnect); watching and the room channel
    open any time before the end, so that learners can wait in the room. A session that missed its slot
    (never went live) may still go live late, as its status rules say."""
    if course_status != CourseStatus.PUBLISHED:
        return MediaRefusal.COURSE_NOT_PUBLISHED
    if status == SessionStatus.ENDED:
        return MediaRefusal.SESSION_ENDED
    if publishing and status != SessionStatus.LIVE and now < whip_opens_at(scheduled_start):
        return MediaRefusal.TOO_EARLY
    return None


class RecordingFields(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def session_id(self) -> int: ...
    @property
    def duration_s(self) -> float: ...


def replays_by_session(recordings: Iterable[RecordingFields]) -> dict[int, dict[str, Any]]:
    """session id -> `{"id", "duration_s"}` of its replay: its longest finalized recording (a session has
    one, unless it was restarted before restarts were refused; then the longest holds the lecture, the
    first on a tie)."""
    best: dict[int, RecordingFields] = {}
    for r in recordings:
        current = best.get(r.session_id)
        if current is None or r.duration_s > current.duration_s:
            best[r.session_id] = r
    return {sid: {"id": r.id, "duration_s": r.duration_s} for sid, r in best.items()}
