"""Courses and their sessions: create and edit by the provider's admins, publish/archive, experts (search
is catalog.search)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import forms, publishing, queries, replays
from catalog.db import Database
from catalog.domain import (
    PROVIDER_TYPES,
    Caller,
    CourseStatus,
    ExternalPlatform,
    OrgType,
    Role,
    SessionKind,
    next_course_status,
)
from catalog.lifecycle import replays_by_session, session_status
from catalog.models import Course, Organization, Session, SessionExpert
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)


def _visible(course: Course, caller: Caller | None) -> bool:
    if course.status == CourseStatus.PUBLISHED:
        return True
    return caller is not None and caller.reads_provider(course.provider_org_id)


def _require_manager(course: Course, caller: Caller) -> None:
    if not caller.manages_provider(course.provider_org_id):
        raise Forbidden("only the provider's administrators may change this course")


class CourseFields(Protocol):
    """What course_view reads: a Course, or a row of the same columns (catalog.search selects them)."""

    @property
    def id(self) -> int: ...
    @property
    def provider_org_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def industry(self) -> str: ...
    @property
    def specialty_tags(self) -> list[str]: ...
    @property
    def credit_hours(self) -> Decimal: ...
    @property
    def delivery(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def capacity(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


# The columns course_view reads and its provider's name (`provider_name`), for Core selects of courses.
COURSE_COLUMNS = (
    Course.id,
    Course.provider_org_id,
    Course.title,
    Course.description,
    Course.category,
    Course.industry,
    Course.specialty_tags,
    Course.credit_hours,
    Course.delivery,
    Course.status,
    Course.capacity,
    Course.created_at,
    Course.updated_at,
    Organization.name.label("provider_name"),
)


def course_view(course: CourseFields, *, provider_name: str | None = None) -> dict[str, Any]:
    return {
        "id": course.id,
        "provider_id": course.provider_org_id,
        "provider_name": provider_name,
        "title": course.title,
        "description": course.description,
        "category": course.category,
        "industry": course.industry,
        "specialty_tags": list(course.specialty_tags),
        "credit_hours": str(course.credit_hours),
        "delivery": course.delivery,
        "status": course.status,
        "capacity": course.capacity,
        "created_at": course.created_at.isoformat(),
        "updated_at": course.updated_at.isoformat(),
    }


class SessionFields(Protocol):
    """What session_fields_view reads: a Session, or a row of the same columns."""

    @property
    def id(self) -> int: ...
    @property
    def course_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def scheduled_start(self) -> datetime: ...
    @property
    def scheduled_end(self) -> datetime: ...
    @property
    def actual_start(self) -> datetime | None: ...
    @property
    def actual_end(self) -> datetime | None: ...
    @property
    def external_platform(self) -> str: ...
    @property
    def external_ids(self) -> dict[str, Any]: ...
    @property
    def location(self) -> str | None: ...


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def session_fields_view(
    session: SessionFields, now: datetime, replay: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The session without its experts (those are on the course page); `status` at `now` and its
    `replay` (`{"id", "duration_s"}` or None), see catalog.lifecycle."""
    return {
        "id": session.id,
        "course_id": session.course_id,
        "title": session.title,
        "kind": session.kind,
        "scheduled_start": _iso(session.scheduled_start),
        "scheduled_end": _iso(session.scheduled_end),
        "actual_start": _iso(session.actual_start),
        "actual_end": _iso(session.actual_end),
        "external_platform": session.external_platform,
        "external_ids": dict(session.external_ids),
        "location": session.location,
        "status": session_status(
            session.kind,
            session.scheduled_start,
            session.scheduled_end,
            session.actual_start,
            session.actual_end,
            now,
        ).value,
        "replay": replay,
    }


def session_view(
    session: Session, expert_names: dict[int, str], now: datetime, replay: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The session with its experts (loaded with it)."""
    view = session_fields_view(session, now, replay)
    view["experts"] = [
        {"id": e.person_id, "name": expert_names.get(e.person_id, "")} for e in session.experts
    ]
    return view


async def _provider_name(s: AsyncSession, org_id: int) -> str | None:
    return await s.scalar(select(Organization.name).where(Organization.id == org_id))


async def _replay_of(s: AsyncSession, session_id: int) -> dict[str, Any] | None:
    return replays_by_session(await queries.finalized_recordings(s, [session_id])).get(session_id)


async def _watchable(
    s: AsyncSession, caller: Caller | None, course: Course, sessions: list[Session]
) -> set[int]:
    """The ids of the course's `sessions` whose media the caller may watch (replays.watcher_role)."""
    if caller is None:
        return set()
    if await replays.watcher_role(s, caller, course, ()) is not None:
        return {ss.id for ss in sessions}
    return {ss.id for ss in sessions if caller.person_id in replays.experts_of(ss)}


def _shown(replay: dict[str, Any] | None, watchable: bool) -> dict[str, Any] | None:
    """A session's replay as the caller may see it: that there is one and how long, and its id (the way
    to its media) only for a caller who may watch it."""
    return replay if replay is None or watchable else {**replay, "id": None}


async def get(db: Database, caller: Caller | None, course_id: int, now: datetime) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        course = await queries.course_with_sessions(s, course_id)
        if course is None or not _visible(course, caller):
            raise NotFound(f"course {course_id} not found", field="course_id")
        names = await queries.names_of(s, [e.person_id for ss in course.sessions for e in ss.experts])
        provider_name = await _provider_name(s, course.provider_org_id)
        recordings = await queries.finalized_recordings(s, [ss.id for ss in course.sessions])
        enrolled = (
            caller is not None and await queries.active_enrollment(s, caller.person_id, course.id) is not None
        )
        watchable = await _watchable(s, caller, course, list(course.sessions))
    view = course_view(course, provider_name=provider_name)
    view["enrolled"] = enrolled  # whether the caller is enrolled (false for anonymous callers)
    by_session = replays_by_session(recordings)
    view["sessions"] = [
        session_view(ss, names, now, _shown(by_session.get(ss.id), ss.id in watchable))
        for ss in course.sessions
    ]
    titles = {ss.id: ss.title for ss in course.sessions}
    view["replays"] = [
        replays.replay_summary(r, titles.get(r.session_id, ""), r.session_id in watchable) for r in recordings
    ]
    return view


async def create(db: Database, caller: Caller, draft: forms.CourseDraft, now: datetime) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        org = await s.get(Organization, draft.provider_org_id)
        if org is None:
            raise Invalid(f"organization {draft.provider_org_id} not found", field="provider_id")
        if not caller.manages_provider(org.id):
            raise Forbidden("only the provider's administrators may create its courses")
        if OrgType(org.type) not in PROVIDER_TYPES:
            raise Invalid("provider_id must be a CE base or a training institution", field="provider_id")
        course = Course(
            provider_org_id=org.id,
            title=draft.title,
            description=draft.description,
            category=draft.category.value,
            industry=draft.industry,
            specialty_tags=draft.specialty_tags,
            credit_hours=draft.credit_hours,
            delivery=draft.delivery.value,
            status=CourseStatus.DRAFT.value,
            capacity=draft.capacity,
            created_at=now,
            updated_at=now,
        )
        s.add(course)
        await s.flush()
    log.info("course created course=%s provider=%s person=%s", course.id, org.id, caller.person_id)
    return course_view(course, provider_name=org.name)


async def _changeable_course(s: AsyncSession, caller: Caller, course_id: int, archived: str) -> Course:
    """The course, if the caller may see it (else NotFound), manages it (else Forbidden) and it is not
    archived (else Conflict with the message `archived`)."""
    course = await queries.course_or_404(s, course_id)
    if not _visible(course, caller):
        raise NotFound(f"course {course_id} not found", field="course_id")
    _require_manager(course, caller)
    if course.status == CourseStatus.ARCHIVED:
        raise Conflict(archived, field="status")
    return course


async def update(
    db: Database, caller: Caller, course_id: int, changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        course = await _changeable_course(s, caller, course_id, "an archived course cannot be changed")
        if "capacity" in changes and changes["capacity"] is not None:
            enrolled = await queries.active_count(s, course.id)
            if changes["capacity"] < enrolled:
                raise Conflict(f"capacity below the {enrolled} learners already enrolled", field="capacity")
        if "delivery" in changes:
            await publishing.check_delivery_change(s, course, changes["delivery"])
        for name, value in changes.items():
            setattr(course, name, value.value if hasattr(value, "value") else value)
        course.updated_at = now
        provider_name = await _provider_name(s, course.provider_org_id)
    return course_view(course, provider_name=provider_name)


async def transition(
    db: Database, caller: Caller, course_id: int, action: str, now: datetime
) -> dict[str, Any]:
    """publish / archive, following the state machine in catalog.domain; Conflict otherwise."""
    async with db.sessions.begin() as s:
        course = await queries.course_or_404(s, course_id, for_update=True)
        if not _visible(course, caller):
            raise NotFound(f"course {course_id} not found", field="course_id")
        _require_manager(course, caller)
        status = next_course_status(CourseStatus(course.status), action)
        if action == "publish":
            await publishing.check_publishable(s, course)
        course.status = status.value
        course.updated_at = now
        provider_name = await _provider_name(s, course.provider_org_id)
    log.info("course %s course=%s person=%s", action, course.id, caller.person_id)
    return course_view(course, provider_name=provider_name)


async def add_session(
    db: Database, caller: Caller, course_id: int, draft: forms.SessionDraft, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        course = await _changeable_course(s, caller, course_id, "an archived course takes no new sessions")
        await _check_experts(s, draft.expert_ids, "expert_ids")
        publishing.check_session_experts(course, draft.kind, len(draft.expert_ids), "expert_ids")
        session = Session(
            course_id=course.id,
            title=draft.title,
            kind=draft.kind.value,
            scheduled_start=draft.scheduled_start,
            scheduled_end=draft.scheduled_end,
            external_platform=draft.external_platform.value,
            external_ids=draft.external_ids,
            location=draft.location,
        )
        s.add(session)
        await s.flush()
        s.add_all(SessionExpert(session_id=session.id, person_id=pid) for pid in draft.expert_ids)
        await s.flush()
        session = await queries.session_or_404(s, session.id)
        names = await queries.names_of(s, draft.expert_ids)
    return session_view(session, names, now)


async def _managed_session(s: AsyncSession, caller: Caller, session_id: int) -> Session:
    session = await queries.session_or_404(s, session_id)
    if not _visible(session.course, caller):
        raise NotFound(f"session {session_id} not found", field="session_id")
    _require_manager(session.course, caller)
    if session.course.status == CourseStatus.ARCHIVED:
        raise Conflict("the course is archived", field="status")
    return session


async def get_session(db: Database, caller: Caller | None, session_id: int, now: datetime) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        if not _visible(session.course, caller):
            raise NotFound(f"session {session_id} not found", field="session_id")
        names = await queries.names_of(s, [e.person_id for e in session.experts])
        watchable = await _watchable(s, caller, session.course, [session])
        replay = _shown(await _replay_of(s, session.id), session.id in watchable)
    return session_view(session, names, now, replay)


async def update_session(
    db: Database, caller: Caller, session_id: int, changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await _managed_session(s, caller, session_id)
        for name, value in changes.items():
            setattr(session, name, value.value if hasattr(value, "value") else value)
        forms.check_schedule(session.scheduled_start, session.scheduled_end)
        if session.actual_start and session.actual_end:
            forms.check_schedule(session.actual_start, session.actual_end, "actual_end")
        forms.check_platform(SessionKind(session.kind), ExternalPlatform(session.external_platform))
        forms.check_location(SessionKind(session.kind), session.location)
        if "kind" in changes:
            publishing.check_session_experts(session.course, session.kind, len(session.experts), "kind")
        names = await queries.names_of(s, [e.person_id for e in session.experts])
        replay = await _replay_of(s, session.id)
    return session_view(session, names, now, replay)


async def _check_experts(s: AsyncSession, person_ids: list[int], field: str) -> None:
    """Invalid unless each person holds the expert role."""
    experts = await queries.holders_of_role(s, Role.EXPERT, person_ids) if person_ids else set()
    missing = [pid for pid in person_ids if pid not in experts]
    if missing:
        raise Invalid(
            f"not experts: {', '.join(map(str, missing))}", field=field, details={"person_ids": missing}
        )


async def set_experts(
    db: Database, caller: Caller, session_id: int, person_ids: list[int], now: datetime
) -> dict[str, Any]:
    """Replace the session's experts; each must hold the expert role."""
    async with db.sessions.begin() as s:
        session = await _managed_session(s, caller, session_id)
        await _check_experts(s, person_ids, "person_ids")
        publishing.check_session_experts(session.course, session.kind, len(person_ids), "person_ids")
        await s.execute(delete(SessionExpert).where(SessionExpert.session_id == session.id))
        s.add_all(SessionExpert(session_id=session.id, person_id=pid) for pid in person_ids)
        await s.flush()
        s.expire(session, ["experts"])
        session = await queries.session_or_404(s, session_id)
        names = await queries.names_of(s, person_ids)
        replay = await _replay_of(s, session.id)
    return session_view(session, names, now, replay)


async def record_actual_start(db: Database, session_id: int, at: datetime) -> bool:
    """From `session.started`: the first start wins (a redelivered event or a later restart changes
    nothing). True when written; NotFound for an unknown session."""
    async with db.sessions.begin() as s:
        session = await s.get(Session, session_id, with_for_update=True)
        if session is None:
            raise NotFound(f"session {session_id} not found", field="session_id")
        if session.actual_start is not None:
            return False
        session.actual_start = at
    return True


async def record_actual_end(db: Database, session_id: int, at: datetime) -> bool:
    """From `session.ended`: the latest end wins (a room restarted after an end ends again later); an end
    before the recorded start is ignored. True when written; NotFound for an unknown session."""
    async with db.sessions.begin() as s:
        session = await s.get(Session, session_id, with_for_update=True)
        if session is None:
            raise NotFound(f"session {session_id} not found", field="session_id")
        if session.actual_start is not None and at <= session.actual_start:
            log.warning("session=%s end %s before its start %s ignored", session_id, at, session.actual_start)
            return False
        if session.actual_end is not None and session.actual_end >= at:
            return False
        session.actual_end = at
    return True
