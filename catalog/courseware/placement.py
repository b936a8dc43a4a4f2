"""Where a courseware version's media live in the catalog (R27: a learner reaches only approved media).

Each version gets a session of its own, created when its rendition is made (`rendition_session`): the
rendition's `recordings` row hangs on it, so its HLS keys (`hls/{session_id}/...`) and the media cookie
that opens them (infra.media_access, one per person and session) belong to that version alone. A cookie
for the approved version never opens another version's playlist or segments.

A version's session sits in one of two courses of its courseware:
- the **staging course** (draft, never published, `courseware.staging_course_id`) while the version is
  not approved, or no longer is (rejected, revoked, superseded). Nobody can enroll in a draft, so no
  learner may watch it (catalog.replays.watcher_role); its owner (the session's expert) and the
  association's reviewers may;
- the **shared course** (`courseware.course_id`, delivery recorded, published) while it is the approved
  version: every learner may enroll in it and watch it as a replay (catalog.courseware.review moves it).

Both courses are provided by the CE association: the staging course by the association the courseware
is reviewed by (`association_org`), the shared course by the association of the reviewer who first
approved a version of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db import Database
from catalog.domain import CourseStatus, Delivery, OrgType, SessionKind
from catalog.models import Course, Courseware, CoursewareVersion, Organization, Session, SessionExpert
from infra.errors import Conflict, NotFound

TITLE_MAX = 200


def version_title(title: str, version: int) -> str:
    """A version's session title as learners see it on the course page: the courseware's title and 第N版."""
    suffix = f"（第{version}版）"
    return title[: TITLE_MAX - len(suffix)] + suffix


async def association_org(s: AsyncSession) -> int:
    """The CE association (继续教育协会) that reviews shared courseware: Qingdao has one; with several,
    the first registered. Conflict when there is none (nobody could review)."""
    org_id = await s.scalar(
        select(Organization.id)
        .where(Organization.type == OrgType.CE_ASSOCIATION.value)
        .order_by(Organization.id)
        .limit(1)
    )
    if org_id is None:
        raise Conflict("no CE association is registered to review courseware", field="courseware_id")
    return int(org_id)


async def staging_course(s: AsyncSession, courseware: Courseware, now: datetime) -> int:
    """The courseware's staging course (a draft recorded course nobody can enroll in), made on first use."""
    if courseware.staging_course_id is not None:
        return courseware.staging_course_id
    course = Course(
        provider_org_id=await association_org(s),
        title=courseware.title,
        description=courseware.description,
        category=courseware.category,
        industry="",
        specialty_tags=[],
        credit_hours=Decimal("0"),
        delivery=Delivery.RECORDED.value,
        status=CourseStatus.DRAFT.value,
        capacity=None,
        created_at=now,
        updated_at=now,
    )
    s.add(course)
    await s.flush()
    courseware.staging_course_id = course.id
    return course.id


async def version_session(s: AsyncSession, version: CoursewareVersion, now: datetime) -> int:
    """The version's session (made on first use, in the staging course, with the courseware's owner as its
    expert): the session its rendition's recording hangs on. Query function: the caller commits."""
    if version.session_id is not None:
        return version.session_id
    courseware = await s.get(Courseware, version.courseware_id, with_for_update=True)
    if courseware is None:
        raise NotFound(f"courseware {version.courseware_id} not found", field="courseware_id")
    course_id = await staging_course(s, courseware, now)
    session = Session(
        course_id=course_id,
        title=version_title(courseware.title, version.version),
        kind=SessionKind.LIVE.value,
        scheduled_start=now,
        scheduled_end=now + timedelta(seconds=max(1.0, version.duration_s or 0.0)),
        external_platform="none",
        external_ids={},
    )
    s.add(session)
    await s.flush()
    s.add(SessionExpert(session_id=session.id, person_id=courseware.owner_person_id))
    version.session_id = session.id
    await s.flush()
    return session.id


async def rendition_session(db: Database, version_id: int, now: datetime) -> int:
    """The session id to render version `version_id` under (`hls/{session_id}/{recording_id}/...`) and to
    register its recording for; the same id every time it is asked (one transaction of its own)."""
    async with db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id, with_for_update=True)
        if version is None:
            raise NotFound(f"courseware version {version_id} not found", field="version_id")
        return await version_session(s, version, now)


def settle_times(session: Session, duration_s: float, at: datetime) -> None:
    """Give an approved version's session the times of a finished recording: it ended at `at` (its
    approval) and lasted the video's length, so the course page shows it ended with its replay, and a
    replay of it is credited at most its length (the session's window caps replay credit)."""
    length = timedelta(seconds=max(1.0, duration_s))
    session.scheduled_start = session.actual_start = at - length
    session.scheduled_end = session.actual_end = at
