"""Enrollments: learners enrolling themselves, employers enrolling their staff, capacity, withdrawal; and
the learner's home (/api/me/learning): their courses, sessions and replays."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Integer, Row, String, and_, bindparam, func, literal, select, union_all

from catalog import publishing, queries
from catalog.agenda import ENDED_AT, NOT_OVER, OVER, SESSION_COLUMNS, replays_of, titled_view
from catalog.courses import COURSE_COLUMNS, course_view, session_fields_view
from catalog.db import Database
from catalog.domain import (
    Caller,
    CourseStatus,
    EnrollmentSource,
    EnrollmentStatus,
    RecordingState,
    Role,
    mask_phone,
)
from catalog.fields import Page
from catalog.models import Course, Enrollment, Organization, Person, Recording, ReplayProgress, Session
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)


class EnrollmentFields(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def person_id(self) -> int: ...
    @property
    def course_id(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def enrolled_at(self) -> datetime: ...
    @property
    def withdrawn_at(self) -> datetime | None: ...


def enrollment_view(e: EnrollmentFields) -> dict[str, Any]:
    return {
        "id": e.id,
        "person_id": e.person_id,
        "course_id": e.course_id,
        "source": e.source,
        "status": e.status,
        "enrolled_at": e.enrolled_at.isoformat(),
        "withdrawn_at": e.withdrawn_at.isoformat() if e.withdrawn_at else None,
    }


def check_open(course: Course, seats_needed: int, enrolled: int) -> None:
    """Conflict unless the course is published with `seats_needed` more seats (also catalog.plans)."""
    if course.status != CourseStatus.PUBLISHED:
        raise Conflict("enrollment is open only for published courses", field="course_id")
    if course.capacity is not None and enrolled + seats_needed > course.capacity:
        raise Conflict(
            "the course is full",
            field="course_id",
            details={"capacity": course.capacity, "enrolled": enrolled},
        )


async def enroll(db: Database, caller: Caller, course_id: int, now: datetime) -> tuple[dict[str, Any], bool]:
    """Enroll the caller (a learner); (enrollment, created). Enrolling twice returns the first."""
    if not caller.holds(Role.LEARNER, anywhere=True):
        raise Forbidden("only learners enroll in courses")
    async with db.sessions.begin() as s:
        course = await queries.course_or_404(s, course_id, for_update=True)
        if course.status == CourseStatus.DRAFT:
            raise NotFound(f"course {course_id} not found", field="course_id")
        existing = await queries.active_enrollment(s, caller.person_id, course.id)
        if existing is not None:
            return enrollment_view(existing), False
        check_open(course, 1, await queries.active_count(s, course.id))
        await publishing.check_open_for_enrollment(s, course)
        enrollment = Enrollment(
            person_id=caller.person_id,
            course_id=course.id,
            source=EnrollmentSource.SELF.value,
            status=EnrollmentStatus.ENROLLED.value,
            enrolled_at=now,
        )
        s.add(enrollment)
        await s.flush()
    log.info("enrolled course=%s person=%s", course_id, caller.person_id)
    return enrollment_view(enrollment), True


async def withdraw(
    db: Database,
    caller: Caller,
    course_id: int,
    now: datetime,
    on_withdrawn: Callable[[int, Sequence[int]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Withdraw the caller from the course. Their media tokens issued before now stop admitting them
    (catalog.media.check_grant); `on_withdrawn(person_id, session_ids)`, called once committed, lets the
    live server close what they have open in the course's live rooms."""
    async with db.sessions.begin() as s:
        course = await queries.course_or_404(s, course_id)
        existing = await queries.active_enrollment(s, caller.person_id, course.id)
        if existing is None:
            raise Conflict("you are not enrolled in this course", field="course_id")
        existing.status = EnrollmentStatus.WITHDRAWN.value
        existing.withdrawn_at = now
        session_ids = list(await s.scalars(select(Session.id).where(Session.course_id == course.id)))
    log.info("withdrew course=%s person=%s", course_id, caller.person_id)
    if on_withdrawn is not None:
        await on_withdrawn(caller.person_id, session_ids)
    return enrollment_view(existing)


async def enroll_staff(
    db: Database, caller: Caller, org_id: int, course_id: int, person_ids: list[int], now: datetime
) -> dict[str, Any]:
    """An employer's admin enrolls its own staff; all or nothing (capacity is checked for the batch)."""
    async with db.sessions.begin() as s:
        org = await s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organization {org_id} not found", field="org_id")
        if not (caller.is_admin or caller.holds(Role.EMPLOYER_ADMIN, org_id)):
            raise Forbidden("only this employer's administrators may enroll its staff")
        course = (await s.scalars(select(Course).where(Course.id == course_id).with_for_update())).first()
        if course is None or course.status == CourseStatus.DRAFT:
            raise Invalid(f"course {course_id} not found", field="course_id")
        staff = set(
            await s.scalars(
                select(Person.id).where(Person.id.in_(person_ids), Person.employer_org_id == org_id)
            )
        )
        outsiders = [pid for pid in person_ids if pid not in staff]
        if outsiders:
            raise Forbidden(
                f"not staff of this employer: {', '.join(map(str, outsiders))}",
                field="person_ids",
                details={"person_ids": outsiders},
            )
        already = {
            e.person_id: e
            for e in await s.scalars(
                select(Enrollment).where(
                    Enrollment.course_id == course.id,
                    Enrollment.person_id.in_(person_ids),
                    Enrollment.status == EnrollmentStatus.ENROLLED.value,
                )
            )
        }
        new_ids = [pid for pid in person_ids if pid not in already]
        if new_ids:
            check_open(course, len(new_ids), await queries.active_count(s, course.id))
            await publishing.check_open_for_enrollment(s, course)
        created = [
            Enrollment(
                person_id=pid,
                course_id=course.id,
                source=EnrollmentSource.EMPLOYER.value,
                status=EnrollmentStatus.ENROLLED.value,
                enrolled_at=now,
            )
            for pid in new_ids
        ]
        s.add_all(created)
        await s.flush()
    log.info(
        "employer enrolled org=%s course=%s count=%s by=%s", org_id, course_id, len(created), caller.person_id
    )
    return {
        "created": [enrollment_view(e) for e in created],
        "already_enrolled": [enrollment_view(already[pid]) for pid in person_ids if pid in already],
    }


UPCOMING_LIMIT = 20  # sessions not over yet, across every enrolled course
PAST_LIMIT = 20  # sessions over, the most recent
REPLAYS_LIMIT = 20  # replays, the last watched first, then the newest


@dataclass(frozen=True)
class _EnrollmentRecord:
    """An enrollment read as columns (EnrollmentFields) from a row that also holds its course's."""

    id: int
    person_id: int
    course_id: int
    source: str
    status: str
    enrolled_at: datetime
    withdrawn_at: datetime | None


_ENROLLMENT_COLUMNS = (
    Enrollment.id.label("enrollment_id"),
    Enrollment.person_id,
    Enrollment.course_id,
    Enrollment.source,
    Enrollment.status.label("enrollment_status"),
    Enrollment.enrolled_at,
    Enrollment.withdrawn_at,
)
_ACTIVE = (
    Enrollment.person_id == bindparam("person_id"),
    Enrollment.status == EnrollmentStatus.ENROLLED.value,
)
_ACTIVE_COUNT = select(func.count()).select_from(Enrollment).where(*_ACTIVE)
# The page of enrollments, sorted and cut before their courses are joined (a learner has ~100).
_ENROLLMENT_PAGE = (
    select(*_ENROLLMENT_COLUMNS)
    .where(*_ACTIVE)
    .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
    .subquery("e")
)
# ... with their courses, and the total (every row carries it).
_LEARNING_PAGE = (
    select(_ENROLLMENT_PAGE, *COURSE_COLUMNS, _ACTIVE_COUNT.scalar_subquery().label("total"))
    .join(Course, Course.id == _ENROLLMENT_PAGE.c.course_id)
    .join(Organization, Organization.id == Course.provider_org_id)
    .order_by(_ENROLLMENT_PAGE.c.enrolled_at.desc(), _ENROLLMENT_PAGE.c.enrollment_id.desc())
)
# The next UPCOMING_LIMIT sessions (live or to come) of all the caller's courses; titles joined after.
_NEXT_SESSIONS = (
    select(*SESSION_COLUMNS)
    .join(Enrollment, Enrollment.course_id == Session.course_id)
    .where(*_ACTIVE, NOT_OVER)
    .order_by(Session.scheduled_start, Session.id)
    .limit(UPCOMING_LIMIT)
    .subquery("n")
)
# The PAST_LIMIT sessions of all the caller's courses that are over, the latest first.
_PAST_SESSIONS = (
    select(*SESSION_COLUMNS)
    .join(Enrollment, Enrollment.course_id == Session.course_id)
    .where(*_ACTIVE, OVER)
    .order_by(ENDED_AT.desc(), Session.id.desc())
    .limit(PAST_LIMIT)
    .subquery("p")
)
# One statement for the lists of sessions: part 0, the sessions not over of the page's courses; part 1,
# the next sessions of all, part 2 the past ones, with their course titles.
_PAGE_SESSIONS = select(
    literal(0, Integer).label("part"),
    *SESSION_COLUMNS,
    literal(None, String).label("course_title"),
).where(Session.course_id.in_(bindparam("course_ids", expanding=True)), NOT_OVER)
_TITLED = [
    select(literal(part, Integer).label("part"), sub, Course.title.label("course_title")).join(
        Course, Course.id == sub.c.course_id
    )
    for part, sub in ((1, _NEXT_SESSIONS), (2, _PAST_SESSIONS))
]
_LEARNING_SESSIONS = union_all(_PAGE_SESSIONS, *_TITLED).subquery()
_LEARNING_SESSIONS_ORDERED = select(_LEARNING_SESSIONS).order_by(
    _LEARNING_SESSIONS.c.part, _LEARNING_SESSIONS.c.scheduled_start, _LEARNING_SESSIONS.c.id
)
# The replays of the caller's courses with where the caller is in each: the last watched first, then
# the newest.
_MY_REPLAYS = (
    select(
        Recording.id,
        Recording.session_id,
        Recording.duration_s,
        Recording.finalized_at,
        Session.title.label("session_title"),
        Session.course_id,
        Course.title.label("course_title"),
        ReplayProgress.position_s,
        ReplayProgress.updated_at.label("progress_at"),
    )
    .join(Session, Session.id == Recording.session_id)
    .join(Enrollment, Enrollment.course_id == Session.course_id)
    .join(Course, Course.id == Session.course_id)
    .outerjoin(
        ReplayProgress,
        and_(ReplayProgress.recording_id == Recording.id, ReplayProgress.person_id == bindparam("person_id")),
    )
    .where(*_ACTIVE, Recording.state == RecordingState.FINALIZED.value)
    .order_by(
        ReplayProgress.updated_at.is_(None),
        ReplayProgress.updated_at.desc(),
        Recording.finalized_at.desc(),
        Recording.id,
    )
    .limit(REPLAYS_LIMIT)
)


async def my_learning(db: Database, caller: Caller, page: Page, now: datetime) -> dict[str, Any]:
    """One page of the caller's active enrollments, each with its course and sessions not over yet; and
    across all of them (whatever the page): `upcoming`, the next sessions (live or to come, soonest
    first), `past`, the latest sessions that are over, and `replays` with the caller's progress."""
    params = {"person_id": caller.person_id, "now": now}
    async with db.reading() as conn:
        rows = (
            await conn.execute(_LEARNING_PAGE, {**params, "limit": page.page_size, "offset": page.offset})
        ).all()
        total = rows[0].total if rows else int(await conn.scalar(_ACTIVE_COUNT, params) or 0)
        sessions = (
            await conn.execute(
                _LEARNING_SESSIONS_ORDERED, {**params, "course_ids": [r.course_id for r in rows]}
            )
        ).all()
        replays = await replays_of(conn, [ss.id for ss in sessions])
        watched = (await conn.execute(_MY_REPLAYS, params)).all()
    by_course: dict[int, list[dict[str, Any]]] = {}
    upcoming: list[Row[Any]] = []
    past: list[Row[Any]] = []
    for ss in sessions:
        if ss.part == 0:
            by_course.setdefault(ss.course_id, []).append(session_fields_view(ss, now, replays.get(ss.id)))
        else:
            (upcoming if ss.part == 1 else past).append(ss)
    past.sort(key=lambda ss: (ss.actual_end or ss.scheduled_end, ss.id), reverse=True)
    items = [
        {
            "enrollment": enrollment_view(
                _EnrollmentRecord(
                    r.enrollment_id,
                    r.person_id,
                    r.course_id,
                    r.source,
                    r.enrollment_status,
                    r.enrolled_at,
                    r.withdrawn_at,
                )
            ),
            "course": course_view(r, provider_name=r.provider_name),
            "upcoming_sessions": by_course.get(r.course_id, []),
        }
        for r in rows
    ]
    return {
        "items": items,
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
        "upcoming": [titled_view(ss, now, replays) for ss in upcoming],
        "past": [titled_view(ss, now, replays) for ss in past],
        "replays": [
            {
                "id": r.id,
                "session_id": r.session_id,
                "session_title": r.session_title,
                "course_id": r.course_id,
                "course_title": r.course_title,
                "duration_s": r.duration_s,
                "finalized_at": r.finalized_at.isoformat() if r.finalized_at else None,
                "progress": (
                    None
                    if r.progress_at is None
                    else {"position_s": r.position_s, "updated_at": r.progress_at.isoformat()}
                ),
            }
            for r in watched
        ],
    }


async def of_course(db: Database, caller: Caller, course_id: int, page: Page) -> dict[str, Any]:
    """Who is enrolled: for the provider's admins, the bureau and admins."""
    async with db.sessions.begin() as s:
        course = await queries.course_or_404(s, course_id)
        if not caller.reads_provider(course.provider_org_id):
            raise Forbidden("only the provider's administrators and supervisors see enrollments")
        cond = (Enrollment.course_id == course.id, Enrollment.status == EnrollmentStatus.ENROLLED.value)
        total = int(await s.scalar(select(func.count()).select_from(Enrollment).where(*cond)) or 0)
        rows = (
            await s.execute(
                select(Enrollment, Person.name, Person.phone)
                .join(Person, Person.id == Enrollment.person_id)
                .where(*cond)
                .order_by(Enrollment.id)
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
    items = [
        {**enrollment_view(e), "person_name": name, "person_phone": mask_phone(phone)}
        for e, name, phone in rows
    ]
    return {"items": items, "total": total, "page": page.page, "page_size": page.page_size}
