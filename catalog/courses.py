"""Courses and their sessions: search, create and edit by the provider's admins, publish/archive, experts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import forms, queries, replays
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
from catalog.fields import Page
from catalog.models import Course, Organization, Session, SessionExpert
from infra.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)

COUNT_CAP = 2000  # search totals beyond this are reported as a lower bound


def like_pattern(text: str) -> str:
    """`%text%` for LIKE/ILIKE with the wildcards in `text` escaped (escape character: backslash)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _visible(course: Course, caller: Caller | None) -> bool:
    if course.status == CourseStatus.PUBLISHED:
        return True
    return caller is not None and (caller.is_supervisor or caller.manages_provider(course.provider_org_id))


def _require_manager(course: Course, caller: Caller) -> None:
    if not caller.manages_provider(course.provider_org_id):
        raise Forbidden("only the provider's administrators may change this course")


def course_view(course: Course, *, provider_name: str | None = None) -> dict[str, Any]:
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


def session_view(session: Session, expert_names: dict[int, str] | None) -> dict[str, Any]:
    """The session; with its experts unless `expert_names` is None (experts not loaded)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    view: dict[str, Any] = {
        "id": session.id,
        "course_id": session.course_id,
        "title": session.title,
        "kind": session.kind,
        "scheduled_start": iso(session.scheduled_start),
        "scheduled_end": iso(session.scheduled_end),
        "actual_start": iso(session.actual_start),
        "actual_end": iso(session.actual_end),
        "external_platform": session.external_platform,
        "external_ids": dict(session.external_ids),
    }
    if expert_names is not None:
        view["experts"] = [
            {"id": e.person_id, "name": expert_names.get(e.person_id, "")} for e in session.experts
        ]
    return view


async def _provider_name(s: AsyncSession, org_id: int) -> str | None:
    return await s.scalar(select(Organization.name).where(Organization.id == org_id))


async def search(
    db: Database, caller: Caller | None, query: forms.CourseQuery, page: Page, now: datetime
) -> dict[str, Any]:
    """Courses matching the filters, one page of them and the total. Anyone sees published courses;
    a provider's own drafts and archive only its administrators and supervisors."""
    conds: list[ColumnElement[bool]] = []
    if query.status != CourseStatus.PUBLISHED:
        assert query.provider_id is not None  # forms.course_query guarantees it
        if caller is None or not (caller.is_supervisor or caller.manages_provider(query.provider_id)):
            raise Forbidden("only the provider's administrators may list its unpublished courses")
    if query.status is not None:
        conds.append(Course.status == query.status.value)
    if query.category:
        conds.append(Course.category == query.category.value)
    if query.industry:
        conds.append(Course.industry == query.industry)
    if query.provider_id:
        conds.append(Course.provider_org_id == query.provider_id)
    if query.delivery:
        conds.append(Course.delivery == query.delivery.value)
    if query.starts_from or query.starts_to:
        in_range: list[ColumnElement[bool]] = [Session.course_id == Course.id]
        if query.starts_from:
            in_range.append(Session.scheduled_start >= query.starts_from)
        if query.starts_to:
            in_range.append(Session.scheduled_start <= query.starts_to)
        conds.append(exists().where(*in_range))
    if query.q:
        conds.extend(_text_match(query.q, postgres=db.url.startswith("postgresql")))
    next_start = (
        select(func.min(Session.scheduled_start))
        .where(Session.course_id == Course.id, Session.scheduled_start >= now)
        .correlate(Course)
        .scalar_subquery()
    )
    orders: dict[str, list[Any]] = {
        "title": [Course.title.asc()],
        "-created_at": [Course.created_at.desc()],
        "credit_hours": [Course.credit_hours.asc()],
        "next_session": [next_start.asc().nulls_last()],
    }
    order = orders[query.sort]
    async with db.sessions.begin() as s:
        # Counting every match of a broad word costs more than the page itself; past COUNT_CAP the
        # total is reported as a lower bound ("2000+ courses").
        capped = select(Course.id).where(*conds).limit(COUNT_CAP + 1).subquery()
        total = int(await s.scalar(select(func.count()).select_from(capped)) or 0)
        rows = (
            await s.execute(
                select(Course, Organization.name, next_start.label("next_start"))
                .join(Organization, Organization.id == Course.provider_org_id)
                .where(*conds)
                .order_by(*order, Course.id.asc())
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
    items = []
    for course, provider_name, next_at in rows:
        view = course_view(course, provider_name=provider_name)
        view["next_session_start"] = _aware_iso(next_at)
        items.append(view)
    return {
        "items": items,
        "total": min(total, COUNT_CAP),
        "total_is_lower_bound": total > COUNT_CAP,
        "page": page.page,
        "page_size": page.page_size,
    }


# One search text per course; migration 0004 indexes this expression on PostgreSQL (columns qualified
# here because the search joins other tables; the planner matches the expression, not its spelling).
SEARCH_TEXT_SQL = "(courses.title || ' ' || courses.industry || ' ' || courses.description)"


def _text_match(q: str, *, postgres: bool) -> list[ColumnElement[bool]]:
    """`q` anywhere in title, industry or description (case-insensitive, wildcards literal).
    On PostgreSQL a bigram-containment filter lets the GIN index find candidates first; ILIKE stays
    as the exact check (bigrams also match when the characters are apart)."""
    search_text: ColumnElement[str] = literal_column(SEARCH_TEXT_SQL)
    conds: list[ColumnElement[bool]] = [search_text.ilike(like_pattern(q), escape="\\")]
    if postgres and len(q) >= 2:
        bigrams = func.catalog_bigrams(search_text).op("@>")(func.catalog_bigrams(q))
        conds.insert(0, bigrams)
    return conds


def _aware_iso(value: Any) -> str | None:
    """Scalar subqueries bypass the column type: SQLite hands back naive text or datetimes in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.isoformat())


async def get(db: Database, caller: Caller | None, course_id: int) -> dict[str, Any]:
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
    view = course_view(course, provider_name=provider_name)
    view["enrolled"] = enrolled  # whether the caller is enrolled (false for anonymous callers)
    view["sessions"] = [session_view(ss, names) for ss in course.sessions]
    titles = {ss.id: ss.title for ss in course.sessions}
    view["replays"] = [replays.replay_summary(r, titles.get(r.session_id, "")) for r in recordings]
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
        course.status = next_course_status(CourseStatus(course.status), action).value
        course.updated_at = now
        provider_name = await _provider_name(s, course.provider_org_id)
    log.info("course %s course=%s person=%s", action, course.id, caller.person_id)
    return course_view(course, provider_name=provider_name)


async def add_session(
    db: Database, caller: Caller, course_id: int, draft: forms.SessionDraft
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        course = await _changeable_course(s, caller, course_id, "an archived course takes no new sessions")
        session = Session(
            course_id=course.id,
            title=draft.title,
            kind=draft.kind.value,
            scheduled_start=draft.scheduled_start,
            scheduled_end=draft.scheduled_end,
            external_platform=draft.external_platform.value,
            external_ids=draft.external_ids,
        )
        s.add(session)
        await s.flush()
        session = await queries.session_or_404(s, session.id)
    return session_view(session, {})


async def _managed_session(s: AsyncSession, caller: Caller, session_id: int) -> Session:
    session = await queries.session_or_404(s, session_id)
    if not _visible(session.course, caller):
        raise NotFound(f"session {session_id} not found", field="session_id")
    _require_manager(session.course, caller)
    if session.course.status == CourseStatus.ARCHIVED:
        raise Conflict("the course is archived", field="status")
    return session


async def get_session(db: Database, caller: Caller | None, session_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        if not _visible(session.course, caller):
            raise NotFound(f"session {session_id} not found", field="session_id")
        names = await queries.names_of(s, [e.person_id for e in session.experts])
    return session_view(session, names)


async def update_session(
    db: Database, caller: Caller, session_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await _managed_session(s, caller, session_id)
        for name, value in changes.items():
            setattr(session, name, value.value if hasattr(value, "value") else value)
        forms.check_schedule(session.scheduled_start, session.scheduled_end)
        if session.actual_start and session.actual_end:
            forms.check_schedule(session.actual_start, session.actual_end, "actual_end")
        forms.check_platform(SessionKind(session.kind), ExternalPlatform(session.external_platform))
        names = await queries.names_of(s, [e.person_id for e in session.experts])
    return session_view(session, names)


async def set_experts(db: Database, caller: Caller, session_id: int, person_ids: list[int]) -> dict[str, Any]:
    """Replace the session's experts; each must hold the expert role."""
    async with db.sessions.begin() as s:
        session = await _managed_session(s, caller, session_id)
        experts = await queries.holders_of_role(s, Role.EXPERT, person_ids)
        missing = [pid for pid in person_ids if pid not in experts]
        if missing:
            raise Invalid(
                f"not experts: {', '.join(map(str, missing))}",
                field="person_ids",
                details={"person_ids": missing},
            )
        await s.execute(delete(SessionExpert).where(SessionExpert.session_id == session.id))
        s.add_all(SessionExpert(session_id=session.id, person_id=pid) for pid in person_ids)
        await s.flush()
        s.expire(session, ["experts"])
        session = await queries.session_or_404(s, session_id)
        names = await queries.names_of(s, person_ids)
    return session_view(session, names)


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
