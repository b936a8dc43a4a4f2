"""Staff corrections of offline attendance: a missed sign-out (or a wrong time) recorded by the course's
provider administrators with a reason. The row takes the corrected times and says who corrected it, when
and why; the audit log keeps the times it replaced (`offline.attendance_corrected`). Credit already
settled for the person is reversed and settled again on the corrected times (reversal entries, as after a
session time correction). Nobody's sign-in is invented: only a recorded sign-in can be corrected."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog import audit, fields
from catalog.db import Database
from catalog.domain import Caller
from catalog.models import OfflineAttendance
from catalog.offline import rules, service, settlement
from infra.errors import Forbidden, Invalid, NotFound

REASON_MAX = 1000


def parse(body: Any) -> tuple[datetime | None, datetime, str]:
    """(signed_in_at or None to keep it, signed_out_at, reason)."""
    if not isinstance(body, dict):
        raise Invalid("the body is a JSON object", field="signed_out_at")
    fields.reject_unknown(body, {"signed_in_at", "signed_out_at", "reason"})
    signed_in = fields.instant(body, "signed_in_at", required=False) if "signed_in_at" in body else None
    signed_out = fields.instant(body, "signed_out_at")
    assert signed_out is not None  # required and not nullable
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise Invalid("reason is required: say why the attendance is corrected", field="reason")
    if len(reason) > REASON_MAX:
        raise Invalid(f"reason must be at most {REASON_MAX} characters", field="reason")
    return signed_in, signed_out, reason.strip()


async def correct(
    db: Database,
    caller: Caller,
    attendance_id: int,
    signed_in_at: datetime | None,
    signed_out_at: datetime,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        row = await s.get(OfflineAttendance, attendance_id, with_for_update=True)
        if row is None:
            raise NotFound(f"attendance {attendance_id} not found", field="attendance_id")
        session = await service.offline_session(s, caller, row.session_id)
        if not caller.manages_provider(session.course.provider_org_id):
            raise Forbidden("only the provider's administrators correct attendance")
        start = signed_in_at or row.signed_in_at
        lo = session.scheduled_start - rules.CORRECTION_SLACK
        hi = session.scheduled_end + rules.CORRECTION_SLACK
        for name, value in (("signed_in_at", start), ("signed_out_at", signed_out_at)):
            if not lo <= value <= hi:
                raise Invalid(
                    f"{name} must lie within a day of the session's schedule",
                    field=name,
                    details={"from": lo.isoformat(), "to": hi.isoformat()},
                )
        if signed_out_at <= start:
            raise Invalid("signed_out_at must be after the sign-in", field="signed_out_at")
        if signed_out_at > now:
            raise Invalid("signed_out_at cannot be in the future", field="signed_out_at")
        before = {
            "signed_in_at": row.signed_in_at.isoformat(),
            "signed_out_at": row.signed_out_at.isoformat() if row.signed_out_at else None,
        }
        row.signed_in_at = start
        row.signed_out_at = signed_out_at
        row.corrected_by = caller.person_id
        row.corrected_at = now
        row.corrected_reason = reason
        row.updated_at = now
        await s.flush()
        audit.record(
            s,
            actor=caller.person_id,
            action="offline.attendance_corrected",
            subject_type="offline_attendance",
            subject_id=row.id,
            detail={
                "session_id": row.session_id,
                "person_id": row.person_id,
                "before": before,
                "after": {"signed_in_at": start.isoformat(), "signed_out_at": signed_out_at.isoformat()},
                "reason": reason,
            },
            at=now,
        )
        view = service.attendance_view(row)
        session_id = row.session_id
    # Settled credit of the session is brought up to date at once (reversal + new entry for this person);
    # a session whose window has not ended yet is settled in the normal round.
    report = await settlement.settle_offline(
        db, session_id, now, actor=caller.person_id, reason=f"签到记录更正后重新结算：{reason}"
    )
    view["resettled"] = report.sessions > 0
    return view
