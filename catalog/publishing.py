"""What a course must have before learners can see and join it: every live session of a published course
has an expert (someone who can go live), and a 录播 (recorded) course has a replay to watch. Checked when
publishing, enrolling and by the edits that could break it; each rule raises a domain error naming the
field, in the transaction of the caller (query functions: they take the session and never commit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.domain import CourseStatus, Delivery, RecordingState, SessionKind
from catalog.models import Course, Recording, Session, SessionExpert
from infra.errors import Conflict, Invalid

NEEDS_EXPERT = "a live session of a published course needs at least one expert"
EXPERTS_BEFORE_PUBLISHING = "live sessions without an expert cannot be published"
REPLAY_BEFORE_PUBLISHING = "a recorded course needs a replay to watch before it is published"
RECORDED_WITHOUT_REPLAY = "a published course cannot become recorded before it has a replay to watch"
NOTHING_TO_WATCH = "this recorded course has nothing to watch yet"


async def has_replay(s: AsyncSession, course_id: int) -> bool:
    """Whether any session of the course has a finalized recording (a replay)."""
    found = await s.scalar(
        select(Recording.id)
        .join(Session, Session.id == Recording.session_id)
        .where(Session.course_id == course_id, Recording.state == RecordingState.FINALIZED.value)
        .limit(1)
    )
    return found is not None


async def check_publishable(s: AsyncSession, course: Course) -> None:
    """Conflict unless every live session has an expert (field `sessions`, their ids and titles in
    details) and, for a recorded course, a replay exists (field `delivery`)."""
    rows = (
        await s.execute(
            select(Session.id, Session.title)
            .outerjoin(SessionExpert, SessionExpert.session_id == Session.id)
            .where(
                Session.course_id == course.id,
                Session.kind == SessionKind.LIVE.value,
                SessionExpert.person_id.is_(None),
            )
            .order_by(Session.scheduled_start, Session.id)
        )
    ).all()
    if rows:
        raise Conflict(
            f"{EXPERTS_BEFORE_PUBLISHING}: {'、'.join(title for _id, title in rows)}",
            field="sessions",
            details={"session_ids": [sid for sid, _t in rows], "titles": [t for _id, t in rows]},
        )
    if course.delivery == Delivery.RECORDED and not await has_replay(s, course.id):
        raise Conflict(REPLAY_BEFORE_PUBLISHING, field="delivery")


async def check_delivery_change(s: AsyncSession, course: Course, delivery: Delivery) -> None:
    """A published course may become recorded only when it already has a replay."""
    if (
        course.status == CourseStatus.PUBLISHED
        and delivery == Delivery.RECORDED
        and course.delivery != Delivery.RECORDED
        and not await has_replay(s, course.id)
    ):
        raise Conflict(RECORDED_WITHOUT_REPLAY, field="delivery")


def check_session_experts(course: Course, kind: str, expert_count: int, field: str) -> None:
    """A live session of a published course keeps at least one expert: learners see it at once, with a way
    into its live room, and only an expert can go live. Drafts may plan sessions without one yet
    (publishing checks them all). Invalid for a new session, Conflict for a change."""
    if course.status == CourseStatus.PUBLISHED and kind == SessionKind.LIVE and expert_count == 0:
        error = Invalid if field == "expert_ids" else Conflict
        raise error(NEEDS_EXPERT, field=field)


async def check_open_for_enrollment(s: AsyncSession, course: Course) -> None:
    """Learners enroll in a recorded course only when there is something to watch."""
    if course.delivery == Delivery.RECORDED and not await has_replay(s, course.id):
        raise Conflict(NOTHING_TO_WATCH, field="course_id")
