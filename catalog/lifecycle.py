"""A session's lifecycle as people see it: scheduled, live, ended or missed, read from its schedule and the
live server's start/end (`session.started` / `session.ended`), and which recording is its replay.

Pure: imports nothing of aiohttp or SQLAlchemy; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from catalog.domain import SessionKind


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
