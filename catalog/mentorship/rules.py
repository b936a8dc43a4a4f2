"""The pure rules of 师承带徒 agreements (R22, R26, fraud 20): what a proposal must hold, who acts next,
the mentor cap, the flags (reciprocal pairs, backdating) and the fixed award's ledger fields. No SQL, no
HTTP, no clock: `now` and the stored facts are passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from catalog import fields as f
from catalog.credit.engine import beijing_day
from infra.errors import Conflict, Invalid


class MentorshipStatus(StrEnum):
    PROPOSED = "proposed"  # one side proposed (and so confirmed); waiting for the other
    CONFIRMED = "confirmed"  # both confirmed; completion may be recorded after the end date
    COMPLETED = "completed"  # the mentor recorded completion and the mentee confirmed it: credited
    CANCELLED = "cancelled"  # withdrawn by either side before the other confirmed


# Agreements that hold one of the mentor's places for the year (R26): everything not cancelled.
HOLDING = (MentorshipStatus.PROPOSED, MentorshipStatus.CONFIRMED, MentorshipStatus.COMPLETED)
# Agreements that are in force: what the cap is checked against when an agreement is confirmed.
IN_FORCE = (MentorshipStatus.CONFIRMED, MentorshipStatus.COMPLETED)


class Side(StrEnum):
    """The caller's side of an agreement."""

    MENTOR = "mentor"
    MENTEE = "mentee"


TEXT_MAX = 5000  # plan, terms, completion summary
# A start date this far before the day it was proposed is flagged as backdated (fraud 20): paperwork
# written a few days after the first meeting is normal, months later is not.
BACKDATE_GRACE = timedelta(days=7)
# Agreements may be recorded for last year (paperwork in January), this year and next year.
YEARS_BACK = 1
YEARS_AHEAD = 1

FLAG_RECIPROCAL = "reciprocal_mentorship"
FLAG_BACKDATED = "backdated_mentorship"
FLAG_SEVERITY = "medium"

AWARD_CATEGORY = "professional"  # the seed policy: mentorship is 专业 continuing education


@dataclass(frozen=True)
class Proposal:
    """A proposal as the caller sent it: their side, the other person (id and name, which must match:
    a proposal confirms who the other person is, it never reveals a name), and the agreement."""

    side: Side
    counterpart_id: int
    counterpart_name: str
    year: int
    plan: str
    terms: str
    start_date: date
    end_date: date


PROPOSAL_FIELDS = {
    "side",
    "counterpart_id",
    "counterpart_name",
    "year",
    "plan",
    "terms",
    "start_date",
    "end_date",
}


def _date(body: Mapping[str, Any], name: str) -> date:
    value = body.get(name)
    if value is None:
        raise Invalid(f"{name} is required", field=name)
    if not isinstance(value, str) or len(value) != 10 or not value.isascii():
        raise Invalid(f"{name} must be a date (YYYY-MM-DD)", field=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name} must be a date (YYYY-MM-DD)", field=name) from None


def _long_text(body: Mapping[str, Any], name: str) -> str:
    """Required text of up to TEXT_MAX characters, line breaks kept."""
    value = f.text(body, name, max_len=TEXT_MAX, multiline=True)
    assert value is not None  # required
    return value


def parse_proposal(body: Any, today: date) -> Proposal:
    """A proposal from a JSON body; Invalid names the first bad field. `today` is the Beijing day."""
    if not isinstance(body, dict):
        raise Invalid("a proposal is a JSON object", field="body")
    f.reject_unknown(body, PROPOSAL_FIELDS)
    side = f.required_choice(body, "side", Side)
    counterpart_id = f.identifier(body, "counterpart_id")
    counterpart_name = f.required_text(body, "counterpart_name", max_len=f.NAME_MAX)
    year = f.integer(body, "year", minimum=today.year - YEARS_BACK, maximum=today.year + YEARS_AHEAD)
    assert year is not None
    plan, terms = _long_text(body, "plan"), _long_text(body, "terms")
    start, end = _date(body, "start_date"), _date(body, "end_date")
    check_dates(year, start, end)
    return Proposal(side, counterpart_id, counterpart_name, year, plan, terms, start, end)


def check_dates(year: int, start: date, end: date) -> None:
    """Both dates within the agreement's year, the start not after the end."""
    if start.year != year:
        raise Invalid(f"start_date must lie in {year}", field="start_date")
    if end.year != year:
        raise Invalid(f"end_date must lie in {year}", field="end_date")
    if end < start:
        raise Invalid("end_date must not be before start_date", field="end_date")


def parse_summary(body: Any) -> str:
    if not isinstance(body, dict):
        raise Invalid("a completion is a JSON object", field="body")
    f.reject_unknown(body, {"summary"})
    return _long_text(body, "summary")


def refuse_self(mentor_id: int, mentee_id: int) -> None:
    """No self-mentoring (fraud 20)."""
    if mentor_id == mentee_id:
        raise Conflict(
            "no self-mentoring: the mentor and the mentee must be different people", field="counterpart_id"
        )


def check_cap(mentees: int, cap: int, *, year: int, policy_version: int, stage: str) -> None:
    """R26: `mentees` other distinct mentees already count against the mentor's year; one more must stay
    within the cap. `stage` says which agreements were counted (for the message)."""
    if mentees >= cap:
        raise Conflict(
            f"this mentor already has {mentees} mentees in {year} ({stage}); the cap is {cap} per year",
            field="counterpart_id",
            details={
                "reason": "mentor_cap",
                "cap": cap,
                "mentees": mentees,
                "year": year,
                "policy_version": policy_version,
            },
        )


def backdated_start(start: date, proposed_at: datetime) -> dict[str, Any] | None:
    """The flag's evidence when the start date lies more than the grace before the proposal's day."""
    proposed_day = beijing_day(proposed_at)
    if start >= proposed_day - BACKDATE_GRACE:
        return None
    return {
        "reason": "start_before_proposal",
        "start_date": start.isoformat(),
        "proposed_on": proposed_day.isoformat(),
        "days_before": (proposed_day - start).days,
        "grace_days": BACKDATE_GRACE.days,
    }


def confirmed_late(end: date, confirmed_at: datetime) -> dict[str, Any] | None:
    """The flag's evidence when an agreement was confirmed after its period ended."""
    confirmed_day = beijing_day(confirmed_at)
    if confirmed_day <= end:
        return None
    return {
        "reason": "confirmed_after_end",
        "end_date": end.isoformat(),
        "confirmed_on": confirmed_day.isoformat(),
        "days_after": (confirmed_day - end).days,
    }


def completion_open(end: date, now: datetime) -> bool:
    """Completion is recorded after the agreement's end date (Beijing days)."""
    return beijing_day(now) > end


@dataclass(frozen=True)
class Facts:
    """What `waiting_for` needs of an agreement."""

    status: str
    proposed_by: int
    mentor_id: int
    completed_at: datetime | None


def waiting_for(m: Facts) -> Side | None:
    """Whose move it is: the side that has not confirmed a proposal; the mentor to record completion; the
    mentee to confirm it; nobody once completed or cancelled."""
    if m.status == MentorshipStatus.PROPOSED:
        return Side.MENTEE if m.proposed_by == m.mentor_id else Side.MENTOR
    if m.status == MentorshipStatus.CONFIRMED:
        return Side.MENTEE if m.completed_at is not None else Side.MENTOR
    return None


def award(
    *,
    mentorship_id: int,
    mentor_id: int,
    mentee_id: int,
    year: int,
    start: date,
    end: date,
    xueshi: Decimal,
    policy_version: int,
    already_awarded: bool,
    now: datetime,
) -> dict[str, Any]:
    """The ledger entry's fields for a completed agreement (R22): the policy's fixed 专业 award, pending the
    employer's approval, in the agreement's year, on its end date. A mentee is awarded once per year: a
    second completed agreement in the same year is recorded with 0 学时, noted "already credited" (R24).
    A fixed award holds no time: it takes nothing from any day's cap (R6, `credited_by_day` empty) and
    has no credited spans (R29)."""
    credited = Decimal(0) if already_awarded else xueshi
    return {
        "person_id": mentee_id,
        "course_id": None,
        "session_id": None,
        "credit_year": year,
        "credit_day": end.isoformat(),
        "category": AWARD_CATEGORY,
        "minutes": 0.0,
        "xueshi": credited,
        "policy_version": policy_version,
        "computed_at": now,
        "note": "already credited" if already_awarded else "",
        "evidence": {
            "mentorship_id": mentorship_id,
            "mentor_person_id": mentor_id,
            "year": year,
            "period": [start.isoformat(), end.isoformat()],
            "fixed_award_xueshi": str(xueshi),
            "already_awarded": already_awarded,
            "policy_version": policy_version,
            "credited_by_day": {},
        },
    }
