"""师承带徒 use cases: propose, confirm, cancel, record and confirm completion (which posts the award to
the ledger), and what each person sees. One transaction each; every change is written to the audit log.

The mentor cap (R26) is checked under a lock on the mentor's person row, taken by every proposal and
confirmation that names the mentor, so two requests at the cap cannot both pass (PostgreSQL; SQLite
runs one writer at a time). What is counted:
- a **proposal** counts the distinct mentees of the mentor's agreements of that year that are not
  cancelled (proposed, confirmed, completed): a pending proposal holds a place;
- a **confirmation** counts the agreements in force (confirmed, completed) only, under the policy in
  force then: if the cap was lowered while proposals were pending, the first confirmed win.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import audit, queries
from catalog.credit import ledger
from catalog.credit.evidence import Flag
from catalog.credit.flags import raise_flags
from catalog.credit.policies import current
from catalog.db import Database
from catalog.domain import Caller, Role
from catalog.mentorship import rules
from catalog.mentorship.rules import HOLDING, IN_FORCE, MentorshipStatus, Side
from catalog.models import CreditEntry, Mentorship, Person
from infra.errors import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def view(m: Mentorship, names: dict[int, str], caller: Caller) -> dict[str, Any]:
    facts = rules.Facts(m.status, m.proposed_by, m.mentor_person_id, m.completed_at)
    waiting = rules.waiting_for(facts)
    mine = (
        Side.MENTOR
        if caller.person_id == m.mentor_person_id
        else Side.MENTEE
        if caller.person_id == m.mentee_person_id
        else None
    )
    return {
        "id": m.id,
        "year": m.year,
        "mentor": {"id": m.mentor_person_id, "name": names.get(m.mentor_person_id, "")},
        "mentee": {"id": m.mentee_person_id, "name": names.get(m.mentee_person_id, "")},
        "plan": m.plan,
        "terms": m.terms,
        "start_date": m.start_date.isoformat(),
        "end_date": m.end_date.isoformat(),
        "status": m.status,
        "proposed_by": "mentor" if m.proposed_by == m.mentor_person_id else "mentee",
        "proposed_at": m.proposed_at.isoformat(),
        "mentor_confirmed_at": _iso(m.mentor_confirmed_at),
        "mentee_confirmed_at": _iso(m.mentee_confirmed_at),
        "cancelled_at": _iso(m.cancelled_at),
        "completion_summary": m.completion_summary,
        "completed_at": _iso(m.completed_at),
        "mentee_completion_confirmed_at": _iso(m.mentee_completion_confirmed_at),
        "credit_entry_id": m.credit_entry_id,
        "waiting_for": waiting.value if waiting else None,
        "my_side": mine.value if mine else None,
    }


async def _view(s: AsyncSession, m: Mentorship, caller: Caller) -> dict[str, Any]:
    return view(m, await queries.names_of(s, [m.mentor_person_id, m.mentee_person_id]), caller)


async def _lock_mentor(s: AsyncSession, mentor_id: int) -> None:
    """Serialise proposals and confirmations naming this mentor (R26 under concurrency)."""
    await s.execute(select(Person.id).where(Person.id == mentor_id).with_for_update())


async def _mentees(
    s: AsyncSession, mentor_id: int, year: int, statuses: tuple[MentorshipStatus, ...], *, besides: int
) -> int:
    """Distinct mentees of the mentor's agreements of the year in these statuses, other than `besides`."""
    return int(
        await s.scalar(
            select(func.count(func.distinct(Mentorship.mentee_person_id))).where(
                Mentorship.mentor_person_id == mentor_id,
                Mentorship.year == year,
                Mentorship.status.in_([st.value for st in statuses]),
                Mentorship.mentee_person_id != besides,
            )
        )
        or 0
    )


async def _counterpart(s: AsyncSession, p: rules.Proposal) -> None:
    """The other person exists, holds the role their side needs, and has the name the caller gave. One
    answer for every miss, so that a proposal reveals nobody's name or role."""
    needs = Role.LEARNER if p.side == Side.MENTOR else Role.EXPERT
    person = await s.get(Person, p.counterpart_id)
    ok = (
        person is not None
        and person.name == p.counterpart_name
        and bool(await queries.holders_of_role(s, needs, [p.counterpart_id]))
    )
    if not ok:
        raise NotFound(
            f"no {'learner' if needs == Role.LEARNER else 'expert'} with this id and name",
            field="counterpart_id",
        )


async def _flag_reciprocal(s: AsyncSession, m: Mentorship, now: datetime) -> None:
    """A reverse agreement (the mentee mentoring the mentor) in the same year: both are flagged."""
    reverse = await s.scalar(
        select(Mentorship.id).where(
            Mentorship.mentor_person_id == m.mentee_person_id,
            Mentorship.mentee_person_id == m.mentor_person_id,
            Mentorship.year == m.year,
            Mentorship.status.in_([st.value for st in HOLDING]),
        )
    )
    if reverse is None:
        return
    ids = sorted((m.id, reverse))
    evidence = {"mentorship_ids": ids, "year": m.year, "persons": [m.mentor_person_id, m.mentee_person_id]}
    flag = Flag(rules.FLAG_RECIPROCAL, rules.FLAG_SEVERITY, {})
    for person in (m.mentor_person_id, m.mentee_person_id):
        await raise_flags(
            s,
            [flag],
            person_id=person,
            subject=f"mentorships:{ids[0]},{ids[1]}",
            session_id=None,
            course_id=None,
            now=now,
            evidence=evidence,
        )


async def _flag_backdated(s: AsyncSession, m: Mentorship, detail: dict[str, Any], now: datetime) -> None:
    await raise_flags(
        s,
        [Flag(rules.FLAG_BACKDATED, rules.FLAG_SEVERITY, detail)],
        person_id=m.mentee_person_id,
        subject=f"mentorship:{m.id}:{detail['reason']}",
        session_id=None,
        course_id=None,
        now=now,
        evidence={"mentorship_id": m.id, "mentor_person_id": m.mentor_person_id, "year": m.year},
    )


def _audit(s: AsyncSession, caller: Caller, m: Mentorship, action: str, now: datetime, **detail: Any) -> None:
    audit.record(
        s,
        actor=caller.person_id,
        action=f"mentorship.{action}",
        subject_type="mentorship",
        subject_id=m.id,
        detail={"mentor": m.mentor_person_id, "mentee": m.mentee_person_id, "year": m.year, **detail},
        at=now,
    )


async def propose(db: Database, caller: Caller, p: rules.Proposal, now: datetime) -> dict[str, Any]:
    """Record a proposal by one side (its confirmation is the proposal itself); flags a backdated start
    and a reciprocal pair. Forbidden for a caller without the role of their side; Conflict for
    self-mentoring, an agreement of the same pair and year already standing, or the mentor's cap."""
    mine = Role.EXPERT if p.side == Side.MENTOR else Role.LEARNER
    if not caller.holds(mine, anywhere=True):
        raise Forbidden(f"only {'experts' if mine == Role.EXPERT else 'learners'} propose as {p.side.value}")
    mentor, mentee = (
        (caller.person_id, p.counterpart_id)
        if p.side == Side.MENTOR
        else (p.counterpart_id, caller.person_id)
    )
    rules.refuse_self(mentor, mentee)
    try:
        async with db.sessions.begin() as s:
            await _counterpart(s, p)
            await _lock_mentor(s, mentor)
            if await _standing(s, mentor, mentee, p.year):
                raise Conflict(
                    f"an agreement of this mentor and mentee for {p.year} already exists",
                    field="counterpart_id",
                )
            policy = await current(s)
            holding = await _mentees(s, mentor, p.year, HOLDING, besides=mentee)
            rules.check_cap(
                holding,
                policy.mentor_cap,
                year=p.year,
                policy_version=policy.version,
                stage="agreements proposed or in force",
            )
            m = Mentorship(
                mentor_person_id=mentor,
                mentee_person_id=mentee,
                year=p.year,
                plan=p.plan,
                terms=p.terms,
                start_date=p.start_date,
                end_date=p.end_date,
                status=MentorshipStatus.PROPOSED.value,
                proposed_by=caller.person_id,
                proposed_at=now,
                mentor_confirmed_at=now if p.side == Side.MENTOR else None,
                mentee_confirmed_at=now if p.side == Side.MENTEE else None,
            )
            s.add(m)
            await s.flush()
            backdated = rules.backdated_start(p.start_date, now)
            if backdated is not None:
                await _flag_backdated(s, m, backdated, now)
            await _flag_reciprocal(s, m, now)
            _audit(s, caller, m, "proposed", now, side=p.side.value, policy_version=policy.version)
            out = await _view(s, m, caller)
    except IntegrityError:
        # The same pair and year proposed twice at once: the partial unique index refused the second.
        raise Conflict(
            f"an agreement of this mentor and mentee for {p.year} already exists", field="counterpart_id"
        ) from None
    log.info("mentorship proposed id=%s mentor=%s mentee=%s year=%s", m.id, mentor, mentee, p.year)
    return out


async def _standing(s: AsyncSession, mentor: int, mentee: int, year: int) -> bool:
    return (
        await s.scalar(
            select(Mentorship.id).where(
                Mentorship.mentor_person_id == mentor,
                Mentorship.mentee_person_id == mentee,
                Mentorship.year == year,
                Mentorship.status != MentorshipStatus.CANCELLED.value,
            )
        )
    ) is not None


async def _party_or_404(s: AsyncSession, caller: Caller, mentorship_id: int) -> Mentorship:
    """The agreement, for one of its two people (anyone else: not found)."""
    m = await s.get(Mentorship, mentorship_id)
    if m is None or caller.person_id not in (m.mentor_person_id, m.mentee_person_id):
        raise NotFound(f"mentorship {mentorship_id} not found", field="mentorship_id")
    return m


async def confirm(db: Database, caller: Caller, mentorship_id: int, now: datetime) -> dict[str, Any]:
    """The other side confirms a proposal; the cap is checked again against agreements in force."""
    async with db.sessions.begin() as s:
        m = await _party_or_404(s, caller, mentorship_id)
        await _lock_mentor(s, m.mentor_person_id)
        await s.refresh(m)  # as it stands now that the lock is held
        if m.status != MentorshipStatus.PROPOSED:
            raise Conflict(f"a {m.status} agreement cannot be confirmed", field="status")
        if m.proposed_by == caller.person_id:
            raise Conflict("the other side confirms a proposal, not the one who made it", field="status")
        policy = await current(s)
        in_force = await _mentees(s, m.mentor_person_id, m.year, IN_FORCE, besides=m.mentee_person_id)
        rules.check_cap(
            in_force,
            policy.mentor_cap,
            year=m.year,
            policy_version=policy.version,
            stage="agreements in force",
        )
        if caller.person_id == m.mentor_person_id:
            m.mentor_confirmed_at = now
        else:
            m.mentee_confirmed_at = now
        m.status = MentorshipStatus.CONFIRMED.value
        late = rules.confirmed_late(m.end_date, now)
        if late is not None:
            await _flag_backdated(s, m, late, now)
        await _flag_reciprocal(s, m, now)
        _audit(s, caller, m, "confirmed", now, policy_version=policy.version)
        out = await _view(s, m, caller)
    log.info("mentorship confirmed id=%s by=%s", mentorship_id, caller.person_id)
    return out


async def cancel(db: Database, caller: Caller, mentorship_id: int, now: datetime) -> dict[str, Any]:
    """Either side withdraws a proposal before the other confirmed it."""
    async with db.sessions.begin() as s:
        m = await _party_or_404(s, caller, mentorship_id)
        await _lock_mentor(s, m.mentor_person_id)
        await s.refresh(m)
        if m.status != MentorshipStatus.PROPOSED:
            raise Conflict(f"a {m.status} agreement cannot be cancelled", field="status")
        m.status = MentorshipStatus.CANCELLED.value
        m.cancelled_at = now
        _audit(s, caller, m, "cancelled", now)
        out = await _view(s, m, caller)
    return out


async def record_completion(
    db: Database, caller: Caller, mentorship_id: int, summary: str, now: datetime
) -> dict[str, Any]:
    """The mentor records completion (a summary) after the end date; again to amend it until the mentee
    has confirmed."""
    async with db.sessions.begin() as s:
        m = await _party_or_404(s, caller, mentorship_id)
        if caller.person_id != m.mentor_person_id:
            raise Forbidden("only the mentor records completion")
        m = await _locked(s, mentorship_id)
        if m.status != MentorshipStatus.CONFIRMED:
            raise Conflict(
                f"completion is recorded for confirmed agreements, not {m.status} ones", field="status"
            )
        if not rules.completion_open(m.end_date, now):
            raise Conflict(
                f"completion is recorded after the end date ({m.end_date.isoformat()})",
                field="status",
                details={"end_date": m.end_date.isoformat()},
            )
        m.completion_summary = summary
        m.completed_at = now
        _audit(s, caller, m, "completion_recorded", now)
        out = await _view(s, m, caller)
    return out


async def _locked(s: AsyncSession, mentorship_id: int) -> Mentorship:
    m = (await s.scalars(select(Mentorship).where(Mentorship.id == mentorship_id).with_for_update())).one()
    await s.refresh(m)
    return m


async def confirm_completion(
    db: Database, caller: Caller, mentorship_id: int, now: datetime
) -> dict[str, Any]:
    """The mentee confirms the recorded completion: the agreement is completed and the award posted as a
    pending ledger entry (R22), for the employer to approve as any other credit."""
    async with db.sessions.begin() as s:
        m = await _party_or_404(s, caller, mentorship_id)
        if caller.person_id != m.mentee_person_id:
            raise Forbidden("only the mentee confirms completion")
        m = await _locked(s, mentorship_id)
        if m.status != MentorshipStatus.CONFIRMED or m.completed_at is None:
            raise Conflict("the mentor has not recorded completion yet", field="status")
        # One award per mentee and year: two agreements completing at once are awarded one after the other.
        await s.execute(select(Person.id).where(Person.id == m.mentee_person_id).with_for_update())
        policy = await current(s)
        already = await _awarded(s, m.mentee_person_id, m.year)
        fields = rules.award(
            mentorship_id=m.id,
            mentor_id=m.mentor_person_id,
            mentee_id=m.mentee_person_id,
            year=m.year,
            start=m.start_date,
            end=m.end_date,
            xueshi=policy.mentorship_award_xueshi,
            policy_version=policy.version,
            already_awarded=already,
            now=now,
        )
        entry = ledger.append(s, CreditEntry(kind=ledger.MENTORSHIP, status=ledger.PENDING, **fields))
        await s.flush()
        m.status = MentorshipStatus.COMPLETED.value
        m.mentee_completion_confirmed_at = now
        m.credit_entry_id = entry.id
        _audit(
            s,
            caller,
            m,
            "completed",
            now,
            credit_entry_id=entry.id,
            xueshi=str(entry.xueshi),
            policy_version=policy.version,
        )
        out = await _view(s, m, caller)
    log.info("mentorship completed id=%s entry=%s xueshi=%s", mentorship_id, entry.id, entry.xueshi)
    return out


async def _awarded(s: AsyncSession, mentee: int, year: int) -> bool:
    """Whether a standing mentorship award already credits the mentee's year (R24: once per year)."""
    entries = await s.scalars(
        select(CreditEntry).where(CreditEntry.person_id == mentee, CreditEntry.credit_year == year)
    )
    return any(e.kind == ledger.MENTORSHIP and e.xueshi > 0 for e in ledger.standing(entries))


async def get(db: Database, caller: Caller, mentorship_id: int) -> dict[str, Any]:
    """One agreement: for its two people, the bureau and admins, and the administrators of the mentee's
    employer (who approve its credit)."""
    async with db.sessions.begin() as s:
        m = await s.get(Mentorship, mentorship_id)
        if m is None:
            raise NotFound(f"mentorship {mentorship_id} not found", field="mentorship_id")
        if caller.person_id not in (m.mentor_person_id, m.mentee_person_id) and not caller.is_supervisor:
            mentee = await s.get(Person, m.mentee_person_id)
            employer = mentee.employer_org_id if mentee else None
            if employer is None or not caller.holds(Role.EMPLOYER_ADMIN, employer):
                raise NotFound(f"mentorship {mentorship_id} not found", field="mentorship_id")
        return await _view(s, m, caller)


async def mine(db: Database, caller: Caller, year: int | None) -> dict[str, Any]:
    """The caller's agreements as mentor and as mentee (of one year, or all), newest first; with the cap
    in force and, for the year asked, how many places the caller holds as a mentor."""
    async with db.sessions.begin() as s:
        stmt = select(Mentorship).where(
            or_(
                Mentorship.mentor_person_id == caller.person_id,
                Mentorship.mentee_person_id == caller.person_id,
            )
        )
        if year is not None:
            stmt = stmt.where(Mentorship.year == year)
        rows = list(await s.scalars(stmt.order_by(Mentorship.year.desc(), Mentorship.id.desc())))
        names = await queries.names_of(
            s, sorted({p for m in rows for p in (m.mentor_person_id, m.mentee_person_id)})
        )
        policy = await current(s)
    as_mentor = [view(m, names, caller) for m in rows if m.mentor_person_id == caller.person_id]
    as_mentee = [view(m, names, caller) for m in rows if m.mentee_person_id == caller.person_id]
    places = len(
        {m.mentee_person_id for m in rows if m.mentor_person_id == caller.person_id and m.status in HOLDING}
    )
    return {
        "person_id": caller.person_id,
        "year": year,
        "mentor_cap": policy.mentor_cap,
        "policy_version": policy.version,
        "places_held": places if year is not None else None,
        "award_xueshi": str(policy.mentorship_award_xueshi),
        "as_mentor": as_mentor,
        "as_mentee": as_mentee,
    }
