"""Who may reach a courseware version's media (R27): asked by catalog.replays.watcher_role (replays, the
`/hls/` media cookie) and catalog.media (every media request's admission check).

A version's session sits in the courseware's staging course until it is approved (placement): there
only its owner (the session's expert) and the association's reviewers may watch it; nobody else, not
even a supervisor or an administrator, is admitted to media no reviewer has approved. In the shared
course (the approved version) the usual rule holds (enrolled learners, the provider's staff, supervisors),
and the reviewers may watch it too (to decide on a revocation).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Courseware

REVIEWER = "reviewer"  # the watcher role (media cookie role) of a reviewer


async def is_staging(s: AsyncSession, course_id: int) -> bool:
    """Whether the course is a courseware's staging course (unapproved versions' sessions)."""
    found = await s.scalar(select(Courseware.id).where(Courseware.staging_course_id == course_id).limit(1))
    return found is not None


async def is_courseware_course(s: AsyncSession, course_id: int) -> bool:
    """Whether the course is a courseware's staging or shared course."""
    found = await s.scalar(
        select(Courseware.id)
        .where(or_(Courseware.staging_course_id == course_id, Courseware.course_id == course_id))
        .limit(1)
    )
    return found is not None
