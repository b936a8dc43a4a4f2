"""Replay credit of shared courseware (R27: credit only for viewing a version while it was the approved
one) and the mark on credit whose courseware approval was later revoked.

`approved_only` is applied by replay settlement (catalog.credit.settle.settle_replay) to every replay's
evidence: for the rendition of a courseware version it keeps only the heartbeats the server received
while that version was approved (from its approval until its revocation or until another version of
the courseware was approved), so playback of a draft, submitted, rejected, revoked or superseded
version earns nothing, whatever a client sends with a token it still holds. The credit goes to the
courseware's shared course (the session of a version no longer approved sits in the staging course).

`marks`: credit already earned stays in the ledger when an approval is revoked (the ledger is append-only);
a learner's entries resting on a revoked version carry `courseware_revoked: true` where they are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.courseware.rules import Decision, Event, ReviewState, approved_spans, inside
from catalog.credit.store import CourseInfo, ReplayEvidence
from catalog.models import Course, Courseware, CoursewareReview, CoursewareVersion


async def approved_only(s: AsyncSession, ev: ReplayEvidence, now: datetime) -> ReplayEvidence:
    """`ev` as R27 allows it to be credited: unchanged for a recording that is no courseware rendition;
    for one that is, only heartbeats received while its version was approved, credited to the shared
    course."""
    version = await s.scalar(
        select(CoursewareVersion).where(CoursewareVersion.recording_id == ev.recording_id).limit(1)
    )
    if version is None:
        return ev
    cw = await s.get(Courseware, version.courseware_id)
    rows = (
        await s.execute(
            select(CoursewareReview.version_id, CoursewareReview.decision, CoursewareReview.decided_at)
            .join(CoursewareVersion, CoursewareVersion.id == CoursewareReview.version_id)
            .where(
                CoursewareVersion.courseware_id == version.courseware_id,
                CoursewareReview.decision.in_([Decision.APPROVED.value, Decision.REVOKED.value]),
            )
        )
    ).all()
    spans = approved_spans(version.id, [Event(v, Decision(d), at) for v, d, at in rows], now)
    clients = [
        dataclasses.replace(c, beats=tuple(b for b in c.beats if inside(b.at, spans))) for c in ev.clients
    ]
    course = ev.course
    if cw is not None and cw.course_id is not None:
        shared = await s.get(Course, cw.course_id)
        if shared is not None:
            course = CourseInfo(shared.id, shared.category, shared.credit_hours)
    return dataclasses.replace(ev, clients=clients, course=course)


async def marks(s: AsyncSession, session_ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    """session id -> the mark its credit entries carry when the session is a courseware version whose
    approval was revoked: `{"courseware_revoked": true, "courseware_id", "courseware_version",
    "revoked_at"}`."""
    ids = sorted({i for i in session_ids if i is not None})
    if not ids:
        return {}
    rows = (
        await s.execute(
            select(
                CoursewareVersion.session_id,
                CoursewareVersion.courseware_id,
                CoursewareVersion.version,
                CoursewareVersion.decided_at,
            ).where(
                CoursewareVersion.session_id.in_(ids),
                CoursewareVersion.review_state == ReviewState.REVOKED.value,
            )
        )
    ).all()
    return {
        sid: {
            "courseware_revoked": True,
            "courseware_id": cw_id,
            "courseware_version": number,
            "revoked_at": at.isoformat() if at else None,
        }
        for sid, cw_id, number, at in rows
        if sid is not None
    }
