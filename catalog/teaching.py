"""The expert's home (/api/me/teaching): the sessions they teach, live now or to come and over, each with
its status and replay, so that their studio is one tap away."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, literal, select, union_all

from catalog.agenda import ENDED_AT, NOT_OVER, OVER, SESSION_COLUMNS, replays_of, titled_view
from catalog.db import Database
from catalog.domain import Caller, CourseStatus
from catalog.models import Course, Session, SessionExpert

UPCOMING_LIMIT = 50
PAST_LIMIT = 50

# Sessions of published courses only: the pages of a draft or archived course are not open to experts.
_MINE = (
    SessionExpert.person_id == bindparam("person_id"),
    Course.status == CourseStatus.PUBLISHED.value,
)


def _taught(part: int, *where: Any) -> Any:
    return (
        select(literal(part, Integer).label("part"), *SESSION_COLUMNS)
        .add_columns(Course.title.label("course_title"), ENDED_AT.label("ended_at"))
        .join(SessionExpert, SessionExpert.session_id == Session.id)
        .join(Course, Course.id == Session.course_id)
        .where(*_MINE, *where)
    )


_UPCOMING = (
    _taught(0, NOT_OVER).order_by(Session.scheduled_start, Session.id).limit(UPCOMING_LIMIT).subquery()
)
_PAST = _taught(1, OVER).order_by(ENDED_AT.desc(), Session.id.desc()).limit(PAST_LIMIT).subquery()
_TEACHING = union_all(select(_UPCOMING), select(_PAST))


async def my_teaching(db: Database, caller: Caller, now: datetime) -> dict[str, Any]:
    """`upcoming`: the caller's sessions live now or to come, soonest first; `past`: those over (ended or
    missed), the latest first. Anyone logged in may ask; who teaches nothing gets two empty lists."""
    async with db.reading() as conn:
        rows = (await conn.execute(_TEACHING, {"person_id": caller.person_id, "now": now})).all()
        replays = await replays_of(conn, [r.id for r in rows])
    upcoming = sorted((r for r in rows if r.part == 0), key=lambda r: (r.scheduled_start, r.id))
    past = sorted((r for r in rows if r.part == 1), key=lambda r: (r.ended_at, r.id), reverse=True)
    return {
        "upcoming": [titled_view(r, now, replays) for r in upcoming],
        "past": [titled_view(r, now, replays) for r in past],
    }
