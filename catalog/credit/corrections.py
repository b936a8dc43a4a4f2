"""Session time corrections: a provider administrator's audited statement of when a session really ran,
when the server's own times are wrong (fraud 17: never a field edit). The server's times stay as they
were; settlement uses the latest correction and names it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from catalog import audit, fields, queries
from catalog.credit import settle
from catalog.db import Database
from catalog.domain import Caller, CourseStatus
from catalog.models import SessionTimeCorrection
from infra.errors import Forbidden, Invalid, NotFound

# A correction may move the times at most this far outside the schedule: a lecture that started a day
# early or ran a day over is a different lecture.
SCHEDULE_SLACK = timedelta(days=1)
REASON_MAX = 1000


def parse(body: Any) -> tuple[datetime, datetime, str]:
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object", field="actual_start")
    fields.reject_unknown(body, {"actual_start", "actual_end", "reason"})
    start = fields.instant(body, "actual_start")
    end = fields.instant(body, "actual_end")
    assert start is not None  # required and not nullable
    assert end is not None
    if end <= start:
        raise Invalid("actual_end must be after the start", field="actual_end")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise Invalid("reason is required: say why the times are corrected", field="reason")
    if len(reason) > REASON_MAX:
        raise Invalid(f"reason must be at most {REASON_MAX} characters", field="reason")
    return start, end, reason.strip()


def _view(c: SessionTimeCorrection) -> dict[str, Any]:
    return {
        "id": c.id,
        "session_id": c.session_id,
        "actual_start": c.actual_start.isoformat(),
        "actual_end": c.actual_end.isoformat(),
        "reason": c.reason,
        "corrected_by": c.corrected_by,
        "at": c.at.isoformat(),
    }


async def create(
    db: Database, caller: Caller, session_id: int, start: datetime, end: datetime, reason: str, now: datetime
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        course = session.course
        if not caller.manages_provider(course.provider_org_id):
            if course.status == CourseStatus.DRAFT and not caller.supervises_provider(course.provider_org_id):
                raise NotFound(f"session {session_id} not found", field="session_id")
            raise Forbidden("only the provider's administrators correct a session's times")
        lo, hi = session.scheduled_start - SCHEDULE_SLACK, session.scheduled_end + SCHEDULE_SLACK
        for name, value in (("actual_start", start), ("actual_end", end)):
            if not lo <= value <= hi:
                raise Invalid(
                    f"{name} must lie within a day of the session's schedule",
                    field=name,
                    details={"from": lo.isoformat(), "to": hi.isoformat()},
                )
        if end > now:
            raise Invalid("actual_end cannot be in the future", field="actual_end")
        row = SessionTimeCorrection(
            session_id=session.id,
            actual_start=start,
            actual_end=end,
            reason=reason,
            corrected_by=caller.person_id,
            at=now,
        )
        s.add(row)
        await s.flush()
        audit.record(
            s,
            actor=caller.person_id,
            action="session.time_correction",
            subject_type="session",
            subject_id=session.id,
            detail={
                "correction_id": row.id,
                "actual_start": start.isoformat(),
                "actual_end": end.isoformat(),
                "server_actual_start": session.actual_start.isoformat() if session.actual_start else None,
                "server_actual_end": session.actual_end.isoformat() if session.actual_end else None,
                "reason": reason,
            },
            at=now,
        )
    view = _view(row)
    # Credit already settled on the server's times is reversed and settled again on the corrected ones
    # (reversal entries, audit rows); a session not settled yet is settled on them in the normal round.
    report = await settle.resettle_session(db, session_id, caller.person_id, reason, now)
    view["resettled"] = report.sessions > 0
    return view


async def list_for(db: Database, caller: Caller, session_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        course = session.course
        if not caller.reads_provider(course.provider_org_id):
            if course.status == CourseStatus.DRAFT:
                raise NotFound(f"session {session_id} not found", field="session_id")
            raise Forbidden("only the provider's administrators, the bureau and admins see corrections")
        rows = (
            await s.scalars(
                select(SessionTimeCorrection)
                .where(SessionTimeCorrection.session_id == session.id)
                .order_by(SessionTimeCorrection.at.desc(), SessionTimeCorrection.id.desc())
            )
        ).all()
        server = {
            "actual_start": session.actual_start.isoformat() if session.actual_start else None,
            "actual_end": session.actual_end.isoformat() if session.actual_end else None,
        }
    return {"session_id": session_id, "server": server, "items": [_view(r) for r in rows]}
