"""Query functions shared by the catalog's services: each takes an open session and never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from catalog.domain import EnrollmentStatus, RecordingState, Role
from catalog.models import (
    Course,
    Enrollment,
    Person,
    Recording,
    ReplayProgress,
    RoleAssignment,
    Session,
    SessionExpert,
)
from infra.errors import NotFound


async def person_by_phone(s: AsyncSession, phone: str) -> Person | None:
    return (await s.scalars(select(Person).where(Person.phone == phone))).first()


async def course_or_404(s: AsyncSession, course_id: int, *, for_update: bool = False) -> Course:
    stmt = select(Course).where(Course.id == course_id)
    if for_update:
        # Serialises enrollments of one course on PostgreSQL (capacity); SQLite serialises writers anyway.
        stmt = stmt.with_for_update()
    course = (await s.scalars(stmt)).first()
    if course is None:
        raise NotFound(f"course {course_id} not found", field="course_id")
    return course


async def course_with_sessions(s: AsyncSession, course_id: int) -> Course | None:
    stmt = (
        select(Course)
        .where(Course.id == course_id)
        .options(selectinload(Course.sessions).selectinload(Session.experts))
    )
    return (await s.scalars(stmt)).first()


async def session_or_404(s: AsyncSession, session_id: int) -> Session:
    stmt = (
        select(Session)
        .where(Session.id == session_id)
        .options(selectinload(Session.course), selectinload(Session.experts))
    )
    session = (await s.scalars(stmt)).first()
    if session is None:
        raise NotFound(f"session {session_id} not found", field="session_id")
    return session


async def names_of(s: AsyncSession, person_ids: Sequence[int]) -> dict[int, str]:
    if not person_ids:
        return {}
    rows = await s.execute(select(Person.id, Person.name).where(Person.id.in_(person_ids)))
    return {pid: name for pid, name in rows}


async def holders_of_role(s: AsyncSession, role: Role, person_ids: Sequence[int]) -> set[int]:
    rows = await s.scalars(
        select(RoleAssignment.person_id).where(
            RoleAssignment.role == role.value, RoleAssignment.person_id.in_(person_ids)
        )
    )
    return set(rows)


async def active_enrollment(s: AsyncSession, person_id: int, course_id: int) -> Enrollment | None:
    return (
        await s.scalars(
            select(Enrollment).where(
                Enrollment.person_id == person_id,
                Enrollment.course_id == course_id,
                Enrollment.status == EnrollmentStatus.ENROLLED.value,
            )
        )
    ).first()


async def active_count(s: AsyncSession, course_id: int) -> int:
    return int(
        await s.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(Enrollment.course_id == course_id, Enrollment.status == EnrollmentStatus.ENROLLED.value)
        )
        or 0
    )


async def is_session_expert(s: AsyncSession, session_id: int, person_id: int) -> bool:
    found = await s.scalar(
        select(SessionExpert.person_id).where(
            SessionExpert.session_id == session_id, SessionExpert.person_id == person_id
        )
    )
    return found is not None


async def finalized_recordings(s: AsyncSession, session_ids: Sequence[int]) -> Sequence[Recording]:
    if not session_ids:
        return []
    return (
        await s.scalars(
            select(Recording)
            .where(Recording.session_id.in_(session_ids), Recording.state == RecordingState.FINALIZED.value)
            .order_by(Recording.finalized_at, Recording.id)
        )
    ).all()


async def upsert_progress(
    s: AsyncSession,
    *,
    person_id: int,
    recording_id: str,
    values: dict[str, Any],
    now: datetime,
    not_since: datetime,
) -> bool:
    """Insert or overwrite the person's progress on the recording unless it was written after `not_since`;
    True when written. One statement (INSERT … ON CONFLICT DO UPDATE … WHERE), so two concurrent
    reports cannot both pass the rate check, on PostgreSQL and SQLite alike."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(ReplayProgress).values(
        person_id=person_id, recording_id=recording_id, updated_at=now, **values
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[ReplayProgress.person_id, ReplayProgress.recording_id],
        set_={**{name: stmt.excluded[name] for name in values}, "updated_at": stmt.excluded.updated_at},
        where=ReplayProgress.updated_at <= not_since,
    ).returning(ReplayProgress.person_id)
    return (await s.execute(upsert)).first() is not None
