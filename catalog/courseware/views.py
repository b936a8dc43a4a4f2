"""How courseware, its versions and their reviews look in the API (read models; no decisions here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.models import Course, Courseware, CoursewareReview, CoursewareVersion


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def review_view(r: CoursewareReview, names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "id": r.id,
        "decision": r.decision,
        "comments": r.comments,
        "reviewer_id": r.reviewer_person_id,
        "reviewer_name": names.get(r.reviewer_person_id, ""),
        "decided_at": r.decided_at.isoformat(),
    }


def version_view(
    v: CoursewareVersion, reviews: Sequence[CoursewareReview], names: Mapping[int, str]
) -> dict[str, Any]:
    """A version as its owner and the reviewers see it. `recording_id` names its HLS rendition (opened with
    GET /api/replays/{id}, which admits only the people who may watch it); object keys are never shown."""
    return {
        "id": v.id,
        "courseware_id": v.courseware_id,
        "version": v.version,
        "media_kind": v.media_kind,
        "size_bytes": v.size_bytes,
        "duration_s": v.duration_s,
        "width": v.width,
        "height": v.height,
        "page_count": v.page_count,
        "processing": v.processing,
        "check_error": v.check_error,
        "review_state": v.review_state,
        "recording_id": v.recording_id,
        "has_slides": v.slides_object_key is not None or v.media_kind == "pdf",
        "created_at": v.created_at.isoformat(),
        "submitted_at": _iso(v.submitted_at),
        "decided_at": _iso(v.decided_at),
        "reviews": [review_view(r, names) for r in reviews],
    }


def courseware_view(
    cw: Courseware,
    versions: Sequence[CoursewareVersion],
    reviews: Iterable[CoursewareReview],
    names: Mapping[int, str],
    course_status: str | None,
) -> dict[str, Any]:
    by_version: dict[int, list[CoursewareReview]] = {}
    for r in sorted(reviews, key=lambda r: (r.decided_at, r.id)):
        by_version.setdefault(r.version_id, []).append(r)
    approved = [v.version for v in versions if v.review_state == "approved"]
    return {
        "id": cw.id,
        "owner_id": cw.owner_person_id,
        "owner_name": names.get(cw.owner_person_id, ""),
        "title": cw.title,
        "category": cw.category,
        "description": cw.description,
        "course_id": cw.course_id,
        "course_status": course_status,
        "approved_version": approved[0] if approved else None,
        "created_at": cw.created_at.isoformat(),
        "updated_at": cw.updated_at.isoformat(),
        "versions": [
            version_view(v, by_version.get(v.id, []), names)
            for v in sorted(versions, key=lambda v: -v.version)
        ],
    }


async def load(s: AsyncSession, courseware: Sequence[Courseware]) -> list[dict[str, Any]]:
    """The views of `courseware`: versions (newest first), reviews, the shared course's status."""
    ids = [cw.id for cw in courseware]
    if not ids:
        return []
    versions = list(
        await s.scalars(select(CoursewareVersion).where(CoursewareVersion.courseware_id.in_(ids)))
    )
    reviews = (
        list(
            await s.scalars(
                select(CoursewareReview).where(CoursewareReview.version_id.in_([v.id for v in versions]))
            )
        )
        if versions
        else []
    )
    course_ids = [cw.course_id for cw in courseware if cw.course_id is not None]
    statuses = (
        dict((await s.execute(select(Course.id, Course.status).where(Course.id.in_(course_ids)))).all())
        if course_ids
        else {}
    )
    names = await queries.names_of(
        s, sorted({cw.owner_person_id for cw in courseware} | {r.reviewer_person_id for r in reviews})
    )
    of: dict[int, list[CoursewareVersion]] = {}
    for v in versions:
        of.setdefault(v.courseware_id, []).append(v)
    return [
        courseware_view(
            cw,
            of.get(cw.id, []),
            reviews,
            names,
            statuses.get(cw.course_id) if cw.course_id is not None else None,
        )
        for cw in courseware
    ]
