"""The CE association's review of shared courseware (R27): the queue, and the decisions that open a version
to every learner (approve), refuse it (reject) or withdraw it (revoke).

Approving a version publishes it as the courseware's shared recorded course (made at the first approval,
provided by the approving reviewer's association) by moving the version's session into that course
(catalog.courseware.placement); the version approved before is superseded and its session goes back to
the staging course. Revoking archives the course (it leaves the catalog) and moves the session back:
learners' media cookies stop opening it at once (catalog.media.check_media_grant). Credit already
earned stays in the ledger, marked on the learner's entries (catalog.courseware.credit.marks).
Each decision is an append-only `courseware_reviews` row and an audit row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import audit, queries
from catalog import fields as f
from catalog.courseware import placement, views
from catalog.courseware.authoring import is_reviewer
from catalog.courseware.rules import COMMENTS_MAX, Decision, ReviewState, decide
from catalog.credit import policies
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, Delivery, RecordingState, Role
from catalog.models import Course, Courseware, CoursewareReview, CoursewareVersion, Recording, Session
from infra.errors import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)

QUEUE_STATES = {
    "submitted": (ReviewState.SUBMITTED,),
    "approved": (ReviewState.APPROVED,),
    "decided": (ReviewState.APPROVED, ReviewState.REJECTED, ReviewState.REVOKED, ReviewState.SUPERSEDED),
}


def decision_request(body: Mapping[str, Any]) -> tuple[Decision, str]:
    f.reject_unknown(body, {"decision", "comments"})
    decision = f.required_choice(body, "decision", Decision)
    comments = f.text(body, "comments", max_len=COMMENTS_MAX, min_len=0, required=False, multiline=True)
    comments = comments or ""
    return decision, comments


def reviewer_org(caller: Caller) -> int:
    """The association the caller reviews for (the first one, if several); Forbidden for non-reviewers."""
    orgs = sorted(org for role, org in caller.roles if role == Role.REVIEWER and org is not None)
    if not orgs:
        raise Forbidden("only the CE association's reviewers review courseware")
    return orgs[0]


def credit_hours(duration_s: float, minutes_per_xueshi: int) -> Decimal:
    """The shared course's 学时 (its course cap): the video's minutes in 学时 under the policy in force,
    floored to 0.1 (what a course's credit hours hold)."""
    minutes = Decimal(repr(max(0.0, duration_s))) / 60
    return (minutes / minutes_per_xueshi).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


async def queue(db: Database, caller: Caller, state: str, page: f.Page) -> dict[str, Any]:
    """Versions waiting for review, oldest submission first (`state` submitted), or the approved ones
    (to revoke), or every decided one, newest decision first. Reviewers and supervisors."""
    if not (is_reviewer(caller) or caller.is_supervisor):
        raise Forbidden("only the CE association's reviewers see the review queue")
    states = [st.value for st in QUEUE_STATES[state]]
    order = (
        (CoursewareVersion.submitted_at, CoursewareVersion.id)
        if state == "submitted"
        else (CoursewareVersion.decided_at.desc(), CoursewareVersion.id.desc())
    )
    async with db.sessions.begin() as s:
        rows = (
            await s.execute(
                select(CoursewareVersion, Courseware)
                .join(Courseware, Courseware.id == CoursewareVersion.courseware_id)
                .where(CoursewareVersion.review_state.in_(states))
                .order_by(*order)
                .offset(page.offset)
                .limit(page.page_size + 1)
            )
        ).all()
        more = len(rows) > page.page_size
        rows = rows[: page.page_size]
        loaded = {v["id"]: v for v in await views.load(s, list({cw.id: cw for _v, cw in rows}.values()))}
    items = []
    for version, cw in rows:
        view = loaded[cw.id]
        items.append(
            {
                "courseware": {k: v for k, v in view.items() if k != "versions"},
                "version": next(v for v in view["versions"] if v["id"] == version.id),
                "history": [v for v in view["versions"] if v["id"] != version.id],
            }
        )
    return {"items": items, "page": page.page, "page_size": page.page_size, "has_more": more}


async def _course_for_approval(
    s: AsyncSession, cw: Courseware, version: CoursewareVersion, caller: Caller, now: datetime
) -> Course:
    """The shared course, made at the first approval, showing the courseware as approved now."""
    policy = await policies.current(s)
    hours = credit_hours(version.duration_s or 0.0, policy.minutes_per_xueshi)
    course = await s.get(Course, cw.course_id, with_for_update=True) if cw.course_id is not None else None
    if course is None:
        course = Course(
            provider_org_id=reviewer_org(caller),
            industry="",
            specialty_tags=[],
            capacity=None,
            delivery=Delivery.RECORDED.value,
            created_at=now,
        )
        s.add(course)
    course.title = cw.title
    course.description = cw.description
    course.category = cw.category
    course.credit_hours = hours
    course.status = CourseStatus.PUBLISHED.value  # also after a revocation archived it
    course.updated_at = now
    await s.flush()
    cw.course_id = course.id
    return course


async def _rendition(s: AsyncSession, version: CoursewareVersion) -> Session:
    """The version's session with its finalized rendition; Conflict when it has none yet."""
    recording = await s.get(Recording, version.recording_id) if version.recording_id else None
    if recording is None or recording.state != RecordingState.FINALIZED or version.session_id is None:
        raise Conflict("the version has no playable rendition yet", field="recording_id")
    if recording.session_id != version.session_id:
        raise Conflict("the version's rendition belongs to another session", field="recording_id")
    return await queries.session_or_404(s, version.session_id)


async def _to_staging(s: AsyncSession, cw: Courseware, version: CoursewareVersion, now: datetime) -> None:
    if version.session_id is None:
        return
    session = await s.get(Session, version.session_id, with_for_update=True)
    if session is not None:
        session.course_id = await placement.staging_course(s, cw, now)


async def _approve(
    s: AsyncSession, caller: Caller, cw: Courseware, version: CoursewareVersion, now: datetime
) -> dict[str, Any]:
    session = await _rendition(s, version)
    course = await _course_for_approval(s, cw, version, caller, now)
    superseded = list(
        await s.scalars(
            select(CoursewareVersion)
            .where(
                CoursewareVersion.courseware_id == cw.id,
                CoursewareVersion.review_state == ReviewState.APPROVED.value,
                CoursewareVersion.id != version.id,
            )
            .with_for_update()
        )
    )
    for old in superseded:
        old.review_state = ReviewState.SUPERSEDED.value
        await _to_staging(s, cw, old, now)
    session.course_id = course.id
    placement.settle_times(session, version.duration_s or 0.0, now)
    return {"course_id": course.id, "superseded": [v.version for v in superseded]}


async def decide_version(
    db: Database, caller: Caller, version_id: int, decision: Decision, comments: str, now: datetime
) -> dict[str, Any]:
    """A reviewer's decision on a version (approve a submitted one, reject it with comments, revoke an
    approved one with comments). Reviewers of the association only, never on their own courseware."""
    org = reviewer_org(caller)
    async with db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id, with_for_update=True)
        if version is None:
            raise NotFound(f"courseware version {version_id} not found", field="version_id")
        cw = await s.get(Courseware, version.courseware_id, with_for_update=True)
        if cw is None:
            raise NotFound(f"courseware version {version_id} not found", field="version_id")
        if cw.owner_person_id == caller.person_id:
            raise Forbidden("a reviewer does not review their own courseware")
        state = decide(ReviewState(version.review_state), decision, comments)
        detail: dict[str, Any] = {"courseware_id": cw.id, "version": version.version, "comments": comments}
        if decision == Decision.APPROVED:
            detail.update(await _approve(s, caller, cw, version, now))
        elif decision == Decision.REVOKED:
            await _to_staging(s, cw, version, now)
            course = await s.get(Course, cw.course_id, with_for_update=True) if cw.course_id else None
            if course is not None:
                course.status = CourseStatus.ARCHIVED.value
                course.updated_at = now
        version.review_state = state.value
        version.decided_at = now
        s.add(
            CoursewareReview(
                version_id=version.id,
                reviewer_person_id=caller.person_id,
                reviewer_org_id=org,
                decision=decision.value,
                comments=comments,
                decided_at=now,
            )
        )
        audit.record(
            s,
            actor=caller.person_id,
            action=f"courseware.{decision.value}",
            subject_type="courseware_version",
            subject_id=version.id,
            detail=detail,
            at=now,
        )
        await s.flush()
        [view] = await views.load(s, [cw])
    log.info(
        "courseware version %s version=%s courseware=%s reviewer=%s",
        decision.value,
        version_id,
        cw.id,
        caller.person_id,
    )
    return view
