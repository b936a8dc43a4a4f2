"""Enrollments: learners enrolling themselves, employers enrolling their staff, capacity, withdrawal."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from catalog import queries
from catalog.courses import course_view, session_view
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, EnrollmentSource, EnrollmentStatus, Role, mask_phone
from catalog.fields import Page
from catalog.models import Course, Enrollment, Organization, Person, Session
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)


def enrollment_view(e: Enrollment) -> dict[str, Any]:
    return {
        "id": e.id,
        "person_id": e.person_id,
        "course_id": e.course_id,
        "source": e.source,
        "status": e.status,
        "enrolled_at": e.enrolled_at.isoformat(),
        "withdrawn_at": e.withdrawn_at.isoformat() if e.withdrawn_at else None,
    }


def _check_open(course: Course, seats_needed: int, enrolled: int) -> None:
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
        _check_open(course, 1, await queries.active_count(s, course.id))
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


async def withdraw(db: Database, caller: Caller, course_id: int, now: datetime) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        course = await queries.course_or_404(s, course_id)
        existing = await queries.active_enrollment(s, caller.person_id, course.id)
        if existing is None:
            raise Conflict("you are not enrolled in this course", field="course_id")
        existing.status = EnrollmentStatus.WITHDRAWN.value
        existing.withdrawn_at = now
    log.info("withdrew course=%s person=%s", course_id, caller.person_id)
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
            _check_open(course, len(new_ids), await queries.active_count(s, course.id))
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


UPCOMING_LIMIT = 20


async def my_learning(db: Database, caller: Caller, page: Page, now: datetime) -> dict[str, Any]:
    """One page of the caller's active enrollments, each with its course and upcoming sessions, plus
    the next sessions across all of them (for the "upcoming" list, whatever the page)."""
    active = (
        Enrollment.person_id == caller.person_id,
        Enrollment.status == EnrollmentStatus.ENROLLED.value,
    )
    async with db.sessions.begin() as s:
        total = int(await s.scalar(select(func.count()).select_from(Enrollment).where(*active)) or 0)
        rows = (
            await s.execute(
                select(Enrollment, Course, Organization.name)
                .join(Course, Course.id == Enrollment.course_id)
                .join(Organization, Organization.id == Course.provider_org_id)
                .where(*active)
                .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
        sessions = await queries.upcoming_sessions(s, [c.id for _, c, _ in rows], now)
        next_sessions = (
            await s.execute(
                select(Session, Course.title)
                .join(Course, Course.id == Session.course_id)
                .join(Enrollment, Enrollment.course_id == Session.course_id)
                .where(*active, Session.scheduled_end > now)
                .order_by(Session.scheduled_start, Session.id)
                .limit(UPCOMING_LIMIT)
            )
        ).all()
    by_course: dict[int, list[dict[str, Any]]] = {}
    for ss in sessions:
        view = session_view(ss, None)  # experts are on the course page
        by_course.setdefault(ss.course_id, []).append(view)
    items = [
        {
            "enrollment": enrollment_view(e),
            "course": course_view(c, provider_name=name),
            "upcoming_sessions": by_course.get(c.id, []),
        }
        for e, c, name in rows
    ]
    upcoming = [{**session_view(ss, None), "course_title": title} for ss, title in next_sessions]
    return {
        "items": items,
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
        "upcoming": upcoming,
    }


async def of_course(db: Database, caller: Caller, course_id: int, page: Page) -> dict[str, Any]:
    """Who is enrolled: for the provider's admins, the bureau and admins."""
    async with db.sessions.begin() as s:
        course = await queries.course_or_404(s, course_id)
        if not (caller.is_supervisor or caller.manages_provider(course.provider_org_id)):
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
