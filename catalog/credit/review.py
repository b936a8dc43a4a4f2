"""The review list (待核查): fraud flags with their evidence, read by a course's provider administrators
(flags on their courses) and by the bureau and admins (all); resolved as dismissed or confirmed by the
provider's administrators or an admin, with an audit row. The bureau reads only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from catalog import audit
from catalog.db import Database
from catalog.domain import Caller, Role, mask_phone
from catalog.fields import Page
from catalog.models import Course, FraudFlag, Person, Session
from infra.errors import Conflict, Forbidden, Invalid, NotFound

STATUSES = ("open", "dismissed", "confirmed")
DECISIONS = ("dismissed", "confirmed")
RESOLUTION_MAX = 1000


def _provider_orgs(caller: Caller) -> set[int]:
    """The providers whose flags the caller reads (short of every one): those they administer and, for an
    industry department, those of its sector."""
    own = {org for role, org in caller.roles if role == Role.PROVIDER_ADMIN and org is not None}
    if caller.holds(Role.BUREAU, anywhere=True) and caller.sector_providers is not None:
        own |= caller.sector_providers
    return own


def _view(
    flag: FraudFlag, course_title: str | None, session_title: str | None, name: str, phone: str
) -> dict[str, Any]:
    return {
        "id": flag.id,
        "person_id": flag.person_id,
        "name": name,
        "phone": mask_phone(phone),
        "course_id": flag.course_id,
        "course_title": course_title,
        "session_id": flag.session_id,
        "session_title": session_title,
        "code": flag.code,
        "severity": flag.severity,
        "evidence": flag.evidence,
        "status": flag.status,
        "created_at": flag.created_at.isoformat(),
        "resolved_by": flag.resolved_by,
        "resolved_at": flag.resolved_at.isoformat() if flag.resolved_at else None,
        "resolution": flag.resolution,
    }


async def list_flags(
    db: Database, caller: Caller, status: str | None, course_id: int | None, page: Page
) -> dict[str, Any]:
    """Flags newest first; a provider administrator sees those on their providers' courses only, an
    industry department those of its sector's providers."""
    orgs = _provider_orgs(caller)
    if not caller.is_supervisor and not orgs and not caller.holds(Role.BUREAU, anywhere=True):
        raise Forbidden("only provider administrators, the bureau and admins see the review list")
    stmt = (
        select(FraudFlag, Course.title, Session.title, Person.name, Person.phone)
        .outerjoin(Course, Course.id == FraudFlag.course_id)
        .outerjoin(Session, Session.id == FraudFlag.session_id)
        .outerjoin(Person, Person.id == FraudFlag.person_id)
    )
    if not caller.is_supervisor:
        stmt = stmt.where(Course.provider_org_id.in_(orgs))
    if status is not None:
        stmt = stmt.where(FraudFlag.status == status)
    if course_id is not None:
        stmt = stmt.where(FraudFlag.course_id == course_id)
    async with db.sessions.begin() as s:
        rows = (
            await s.execute(
                stmt.order_by(FraudFlag.created_at.desc(), FraudFlag.id.desc())
                .offset(page.offset)
                .limit(page.page_size + 1)
            )
        ).all()
    items = [_view(f, ct, st, n or "", p or "") for f, ct, st, n, p in rows[: page.page_size]]
    return {
        "items": items,
        "page": page.page,
        "page_size": page.page_size,
        "has_more": len(rows) > page.page_size,
    }


def parse_resolution(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object", field="status")
    unknown = sorted(set(body) - {"status", "resolution"})
    if unknown:
        raise Invalid(f"unknown field {unknown[0]}", field=unknown[0])
    status = body.get("status")
    if status not in DECISIONS:
        raise Invalid("status must be one of dismissed, confirmed", field="status")
    resolution = body.get("resolution", "")
    if not isinstance(resolution, str) or not resolution.strip():
        raise Invalid("resolution is required: say what was found", field="resolution")
    if len(resolution) > RESOLUTION_MAX:
        raise Invalid(f"resolution must be at most {RESOLUTION_MAX} characters", field="resolution")
    return str(status), resolution.strip()


async def resolve(
    db: Database, caller: Caller, flag_id: int, status: str, resolution: str, now: datetime
) -> dict[str, Any]:
    """Dismiss or confirm an open flag (the course's provider administrators or an admin)."""
    async with db.sessions.begin() as s:
        flag = await s.get(FraudFlag, flag_id, with_for_update=True)
        if flag is None:
            raise NotFound(f"flag {flag_id} not found", field="flag_id")
        course = await s.get(Course, flag.course_id) if flag.course_id is not None else None
        may_read = caller.is_supervisor or (
            course is not None and caller.reads_provider(course.provider_org_id)
        )
        if not may_read:
            raise NotFound(f"flag {flag_id} not found", field="flag_id")
        if not (caller.is_admin or (course is not None and caller.manages_provider(course.provider_org_id))):
            raise Forbidden("only the provider's administrators or an admin resolve a flag")
        if flag.status != "open":
            raise Conflict(
                f"the flag is already {flag.status}", field="status", details={"status": flag.status}
            )
        flag.status = status
        flag.resolution = resolution
        flag.resolved_by = caller.person_id
        flag.resolved_at = now
        audit.record(
            s,
            actor=caller.person_id,
            action=f"fraud_flag.{status}",
            subject_type="fraud_flag",
            subject_id=flag.id,
            detail={"code": flag.code, "person_id": flag.person_id, "resolution": resolution},
            at=now,
        )
        session = await s.get(Session, flag.session_id) if flag.session_id is not None else None
        person = await s.get(Person, flag.person_id)
    return _view(
        flag,
        course.title if course else None,
        session.title if session else None,
        person.name if person else "",
        person.phone if person else "",
    )
