"""A person's sessions as their home pages list them: those not over yet (live now or to come, soonest
first) and those over (ended or missed, most recent first), each with its status and replay.

The two SQL conditions split sessions exactly as catalog.lifecycle's statuses do: NOT_OVER holds for
`scheduled` and `live`, OVER for `ended` and `missed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.courses import session_fields_view
from catalog.domain import RecordingState
from catalog.lifecycle import replays_by_session
from catalog.models import Recording, Session, UTCDateTime

NOW = bindparam("now", type_=UTCDateTime())
NOT_OVER = and_(
    Session.actual_end.is_(None), or_(Session.actual_start.is_not(None), Session.scheduled_end > NOW)
)
OVER = or_(
    Session.actual_end.is_not(None), and_(Session.actual_start.is_(None), Session.scheduled_end <= NOW)
)
# When a session that is over ended: the live server's end, else its scheduled end.
ENDED_AT = func.coalesce(Session.actual_end, Session.scheduled_end)

# The columns session_fields_view reads, for Core selects of sessions.
SESSION_COLUMNS = (
    Session.id,
    Session.course_id,
    Session.title,
    Session.kind,
    Session.scheduled_start,
    Session.scheduled_end,
    Session.actual_start,
    Session.actual_end,
    Session.external_platform,
    Session.external_ids,
    Session.location,
)

_REPLAYS = (
    select(Recording.id, Recording.session_id, Recording.duration_s)
    .where(
        Recording.session_id.in_(bindparam("session_ids", expanding=True)),
        Recording.state == RecordingState.FINALIZED.value,
    )
    .order_by(Recording.finalized_at, Recording.id)
)


async def replays_of(conn: AsyncConnection, session_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """session id -> its replay (catalog.lifecycle.replays_by_session), for the sessions that have one."""
    if not session_ids:
        return {}
    rows = (await conn.execute(_REPLAYS, {"session_ids": sorted(set(session_ids))})).all()
    return replays_by_session(rows)


def titled_view(row: Row[Any], now: datetime, replays: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A session row that also holds `course_title`, as the home pages list it."""
    return {**session_fields_view(row, now, replays.get(row.id)), "course_title": row.course_title}
