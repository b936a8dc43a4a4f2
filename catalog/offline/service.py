"""Offline training at the venue: the staff's rotating code, learners' sign-in and sign-out with it, what a
learner's phone shows of their state, and the staff's attendance list. One use case, one transaction.

Sign-in is refused unless the person is enrolled in the course, the session takes sign-ins now, the code
is genuine, current and not used by them before; and refused while they hold an open sign-in anywhere
(two venues at once) or an active online learning client (a live seat, a replay or overflow HLS player,
R18/R29): nobody is credited offline and online for the same minutes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.credit import policies, store
from catalog.credit.policy import CreditPolicy
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, SessionKind, mask_phone
from catalog.lifecycle import session_status
from catalog.models import (
    ClientSession,
    Heartbeat,
    LiveInterval,
    OfflineAttendance,
    OfflineCodeUse,
    Person,
    Session,
)
from catalog.offline import rules
from catalog.replays import experts_of
from infra.errors import Conflict, Forbidden, NotFound

log = logging.getLogger(__name__)

# An open live delivery interval older than this is a leftover of a crash, not a person watching now.
LIVE_SEAT_MAX_AGE = timedelta(hours=12)
USER_AGENT_MAX = 512


@dataclass(frozen=True)
class Device:
    """Where an act came from, kept with the attendance (who scanned with what)."""

    ip: str
    user_agent: str


# -- who and what ------------------------------------------------------------------------------------------


def _may_see(caller: Caller | None, session: Session) -> bool:
    course = session.course
    if course.status == CourseStatus.PUBLISHED:
        return True
    return caller is not None and caller.reads_provider(course.provider_org_id)


async def offline_session(s: AsyncSession, caller: Caller | None, session_id: int) -> Session:
    """The session with its course and experts; NotFound when the caller may not see it, NotOffline when
    it is not held offline."""
    session = await queries.session_or_404(s, session_id)
    if not _may_see(caller, session):
        raise NotFound(f"session {session_id} not found", field="session_id")
    if session.kind != SessionKind.OFFLINE:
        raise rules.refuse(
            rules.NotOffline,
            "this session is not held offline",
            "本课次不是线下培训，无需现场签到。",
            field="session_id",
        )
    return session


def is_venue_staff(caller: Caller, session: Session) -> bool:
    """The course's provider administrators (and admins), and the session's experts: who runs the venue."""
    return caller.manages_provider(session.course.provider_org_id) or caller.person_id in experts_of(session)


async def window_of(s: AsyncSession, session: Session) -> rules.Window:
    correction = await store.latest_correction(s, session.id)
    return rules.window(
        (session.scheduled_start, session.scheduled_end),
        session.actual_start,
        session.actual_end,
        correction.span if correction is not None else None,
        correction.correction_id if correction is not None else None,
    )


async def _lock_person(s: AsyncSession, person_id: int) -> None:
    """Serialise one person's acts (two phones, a double tap): the open-sign-in and code checks read what
    an earlier act wrote. PostgreSQL: a row lock; SQLite: a no-op write takes the database's write lock."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(select(Person.id).where(Person.id == person_id).with_for_update())
    else:
        await s.execute(update(Person).where(Person.id == person_id).values(name=Person.name))


async def _open_row(s: AsyncSession, person_id: int) -> OfflineAttendance | None:
    return (
        await s.scalars(
            select(OfflineAttendance).where(
                OfflineAttendance.person_id == person_id, OfflineAttendance.signed_out_at.is_(None)
            )
        )
    ).first()


async def _check_unused(s: AsyncSession, session_id: int, person_id: int, slot: int) -> None:
    used = await s.scalar(
        select(OfflineCodeUse.action).where(
            OfflineCodeUse.session_id == session_id,
            OfflineCodeUse.person_id == person_id,
            OfflineCodeUse.code_slot == slot,
        )
    )
    if used is not None:
        raise rules.refuse(
            rules.CodeUsed,
            f"you used this code already ({used})",
            "这个二维码您已经用过了：签到和签退各需扫描一次现场大屏上新出现的二维码。",
            field="code",
        )


async def online_client(s: AsyncSession, person_id: int, now: datetime, policy: CreditPolicy) -> str | None:
    """What online learning the person is doing now, if any (R18: one active learning client): a seat in
    a live room that has not ended, or a replay / overflow HLS / live page that sent a heartbeat or was
    opened within the last 2 heartbeat periods (the gap that closes an interval, R16)."""
    horizon = now - timedelta(seconds=2 * policy.heartbeat_period_s)
    seat = await s.scalar(
        select(LiveInterval.session_id)
        .join(Session, Session.id == LiveInterval.session_id)
        .where(
            LiveInterval.person_id == person_id,
            LiveInterval.joined_at.is_not(None),
            LiveInterval.joined_at >= now - LIVE_SEAT_MAX_AGE,
            LiveInterval.left_at.is_(None),
            Session.actual_end.is_(None),
        )
        .limit(1)
    )
    if seat is not None:
        return "live"
    beat = await s.scalar(
        select(Heartbeat.kind).where(Heartbeat.person_id == person_id, Heartbeat.at >= horizon).limit(1)
    )
    if beat is not None:
        return str(beat)
    opened = await s.scalar(
        select(ClientSession.kind)
        .where(
            ClientSession.person_id == person_id,
            ClientSession.superseded_at.is_(None),
            ClientSession.opened_at >= horizon,
        )
        .limit(1)
    )
    return None if opened is None else str(opened)


# -- views --------------------------------------------------------------------------------------------------


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def attendance_view(row: OfflineAttendance) -> dict[str, Any]:
    return {
        "id": row.id,
        "session_id": row.session_id,
        "person_id": row.person_id,
        "signed_in_at": row.signed_in_at.isoformat(),
        "signed_out_at": _iso(row.signed_out_at),
        "open": row.signed_out_at is None,
        "corrected": None
        if row.corrected_at is None
        else {"by": row.corrected_by, "at": row.corrected_at.isoformat(), "reason": row.corrected_reason},
    }


def session_brief(session: Session, now: datetime) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "location": session.location,
        "scheduled_start": session.scheduled_start.isoformat(),
        "scheduled_end": session.scheduled_end.isoformat(),
        "status": session_status(
            session.kind,
            session.scheduled_start,
            session.scheduled_end,
            session.actual_start,
            session.actual_end,
            now,
        ).value,
        "course": {
            "id": session.course.id,
            "title": session.course.title,
            "category": session.course.category,
        },
    }


# -- the learner ---------------------------------------------------------------------------------------------


async def my_state(db: Database, caller: Caller, session_id: int, now: datetime) -> dict[str, Any]:
    """What the check-in page shows: the session, whether the caller is enrolled, signed in here or
    elsewhere, their intervals here, and when sign-in and sign-out are taken."""
    async with db.sessions.begin() as s:
        session = await offline_session(s, caller, session_id)
        enrolled = await queries.active_enrollment(s, caller.person_id, session.course_id) is not None
        rows = list(
            await s.scalars(
                select(OfflineAttendance)
                .where(
                    OfflineAttendance.session_id == session.id,
                    OfflineAttendance.person_id == caller.person_id,
                )
                .order_by(OfflineAttendance.signed_in_at, OfflineAttendance.id)
            )
        )
        open_row = await _open_row(s, caller.person_id)
        elsewhere = None
        if open_row is not None and open_row.session_id != session.id:
            other = await s.get(Session, open_row.session_id)
            elsewhere = {
                "session_id": open_row.session_id,
                "title": other.title if other else "",
                "location": other.location if other else None,
                "signed_in_at": open_row.signed_in_at.isoformat(),
            }
        win = await window_of(s, session)
        policy = await policies.current(s)
    state = (
        "signed_in"
        if any(r.signed_out_at is None for r in rows)
        else "signed_out"
        if rows
        else "not_signed_in"
    )
    return {
        "session": session_brief(session, now),
        "enrolled": enrolled,
        "state": state,
        "intervals": [attendance_view(r) for r in rows],
        "elsewhere": elsewhere,
        "hours": rules.hours(session.scheduled_start, win).to_dict(),
        "code_valid_s": policy.offline_code_valid_s,
        "server_time": now.isoformat(),
    }


def _signed_elsewhere(row: OfflineAttendance, other: Session | None) -> Exception:
    where = f"「{other.title}」（{other.location or '地点未填'}）" if other is not None else "另一个课次"
    return rules.refuse(
        rules.SignedInElsewhere,
        f"you are signed in at session {row.session_id}: sign out there first",
        f"您已在{where}签到，同一时间只能在一处参加培训：请先在那里签退。",
        field="session_id",
        session_id=row.session_id,
    )


async def sign_in(
    db: Database, caller: Caller, session_id: int, code: str, key: str, device: Device, now: datetime
) -> dict[str, Any]:
    try:
        async with db.sessions.begin() as s:
            session = await offline_session(s, caller, session_id)
            if session.course.status != CourseStatus.PUBLISHED:
                raise rules.refuse(
                    Conflict,
                    "the course is not published",
                    "该课程未发布或已归档，不能签到。",
                    field="course_id",
                )
            if await queries.active_enrollment(s, caller.person_id, session.course_id) is None:
                raise rules.refuse(
                    rules.NotEnrolled,
                    "you are not enrolled in this course",
                    "您没有报名该课程，不能签到：请先报名，或联系培训机构。",
                    field="course_id",
                    course_id=session.course_id,
                )
            policy = await policies.current(s)
            slot = rules.verify(key, session.id, code, now, policy)
            win = await window_of(s, session)
            rules.check_sign_in_time(rules.hours(session.scheduled_start, win), now)
            await _lock_person(s, caller.person_id)
            await _check_unused(s, session.id, caller.person_id, slot)
            open_row = await _open_row(s, caller.person_id)
            if open_row is not None:
                if open_row.session_id == session.id:
                    raise rules.refuse(
                        rules.AlreadySignedIn,
                        "you are signed in here already",
                        "您已签到。离开时请扫描现场大屏上的二维码签退。",
                        field="session_id",
                    )
                raise _signed_elsewhere(open_row, await s.get(Session, open_row.session_id))
            online = await online_client(s, caller.person_id, now, policy)
            if online is not None:
                raise rules.refuse(
                    rules.LearningOnline,
                    f"you are learning online now ({online}): close it before signing in here",
                    "您正在线上学习（直播或回放），线上和线下不能同时计学时：请先关闭线上学习页面，再签到。",
                    field="session_id",
                    client=online,
                )
            s.add(
                OfflineCodeUse(
                    session_id=session.id,
                    person_id=caller.person_id,
                    code_slot=slot,
                    action=rules.SIGN_IN,
                    used_at=now,
                )
            )
            row = OfflineAttendance(
                session_id=session.id,
                person_id=caller.person_id,
                signed_in_at=now,
                in_code_slot=slot,
                sign_in_ip=device.ip[:64],
                sign_in_user_agent=device.user_agent[:USER_AGENT_MAX],
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            await s.flush()
            view = attendance_view(row)
    except IntegrityError:
        # Another act of the same person committed between our checks and our insert (two phones).
        raise rules.refuse(
            rules.AlreadySignedIn,
            "another sign-in of yours was just recorded",
            "刚刚已记录了您的一次签到，请刷新页面查看。",
            field="session_id",
        ) from None
    log.info("offline sign-in session=%s person=%s slot=%s", session_id, caller.person_id, slot)
    return view


async def sign_out(
    db: Database, caller: Caller, session_id: int, code: str, key: str, device: Device, now: datetime
) -> dict[str, Any]:
    try:
        async with db.sessions.begin() as s:
            session = await offline_session(s, caller, session_id)
            policy = await policies.current(s)
            slot = rules.verify(key, session.id, code, now, policy)
            win = await window_of(s, session)
            await _lock_person(s, caller.person_id)
            open_row = await _open_row(s, caller.person_id)
            if open_row is None or open_row.session_id != session.id:
                if open_row is not None:
                    raise _signed_elsewhere(open_row, await s.get(Session, open_row.session_id))
                raise rules.refuse(
                    rules.NotSignedIn,
                    "you are not signed in here",
                    "您还没有在本课次签到，无需签退。",
                    field="session_id",
                )
            rules.check_sign_out_time(rules.hours(session.scheduled_start, win), now)
            await _check_unused(s, session.id, caller.person_id, slot)
            if slot <= open_row.in_code_slot:
                # A code shown before the sign-in (an old photo) says nothing about being there after it.
                raise rules.refuse(
                    rules.CodeUsed,
                    "sign out with a code shown after your sign-in",
                    "请扫描现场大屏上新出现的二维码签退。",
                    field="code",
                )
            s.add(
                OfflineCodeUse(
                    session_id=session.id,
                    person_id=caller.person_id,
                    code_slot=slot,
                    action=rules.SIGN_OUT,
                    used_at=now,
                )
            )
            open_row.signed_out_at = max(now, open_row.signed_in_at + timedelta(microseconds=1))
            open_row.out_code_slot = slot
            open_row.sign_out_ip = device.ip[:64]
            open_row.sign_out_user_agent = device.user_agent[:USER_AGENT_MAX]
            open_row.updated_at = now
            await s.flush()
            view = attendance_view(open_row)
    except IntegrityError:
        raise rules.refuse(
            rules.CodeUsed,
            "this code was just used",
            "这个二维码刚刚已用过，请刷新页面查看。",
            field="code",
        ) from None
    log.info("offline sign-out session=%s person=%s slot=%s", session_id, caller.person_id, slot)
    return view


# -- the staff ----------------------------------------------------------------------------------------------


async def _counts(s: AsyncSession, session_id: int) -> tuple[int, int]:
    """(people signed in now, people who signed in at all)."""
    present = await s.scalar(
        select(func.count())
        .select_from(OfflineAttendance)
        .where(OfflineAttendance.session_id == session_id, OfflineAttendance.signed_out_at.is_(None))
    )
    people = await s.scalar(
        select(func.count(distinct(OfflineAttendance.person_id))).where(
            OfflineAttendance.session_id == session_id
        )
    )
    return int(present or 0), int(people or 0)


@dataclass(frozen=True)
class ShownCode:
    code: rules.VenueCode
    url: str
    view: dict[str, Any]


async def venue_code(
    db: Database, caller: Caller, session_id: int, key: str, base_url: str, now: datetime
) -> ShownCode:
    """The code the venue shows now, the URL its QR code encodes, and the counts on the display. For the
    venue's staff only; while sign-in or sign-out is taken."""
    async with db.sessions.begin() as s:
        session = await offline_session(s, caller, session_id)
        if not is_venue_staff(caller, session):
            raise Forbidden(
                "only the provider's administrators and the session's experts show the venue code"
            )
        if session.course.status != CourseStatus.PUBLISHED:
            raise rules.refuse(
                Conflict,
                "the course is not published",
                "课程未发布或已归档：发布后才能签到。",
                field="course_id",
            )
        policy = await policies.current(s)
        win = await window_of(s, session)
        h = rules.hours(session.scheduled_start, win)
        rules.check_venue_open(h, now)
        present, people = await _counts(s, session.id)
        brief = session_brief(session, now)
    code = rules.issue(key, session_id, now, policy)
    url = f"{base_url.rstrip('/')}/checkin/{session_id}?c={code.text}"
    view = {
        "session": brief,
        "code": code.text,
        "url": url,
        "issued_at": code.issued_at.isoformat(),
        "expires_at": code.expires_at.isoformat(),
        "next_at": code.next_at.isoformat(),
        "next_in_s": max(0.0, (code.next_at - now).total_seconds()),
        "period_s": policy.offline_code_period_s,
        "valid_s": policy.offline_code_valid_s,
        "signed_in_now": present,
        "signed_in_total": people,
        "hours": h.to_dict(),
        "server_time": now.isoformat(),
    }
    return ShownCode(code, url, view)


async def attendance(db: Database, caller: Caller, session_id: int, now: datetime) -> dict[str, Any]:
    """Everyone who signed in, with their times and corrections: for the venue's staff and supervisors."""
    async with db.sessions.begin() as s:
        session = await offline_session(s, caller, session_id)
        if not (
            is_venue_staff(caller, session) or caller.supervises_provider(session.course.provider_org_id)
        ):
            raise Forbidden(
                "only the provider's administrators, the session's experts and supervisors see this"
            )
        rows = (
            await s.execute(
                select(OfflineAttendance, Person.name, Person.phone)
                .join(Person, Person.id == OfflineAttendance.person_id)
                .where(OfflineAttendance.session_id == session.id)
                .order_by(OfflineAttendance.signed_in_at, OfflineAttendance.id)
            )
        ).all()
        win = await window_of(s, session)
        present, people = await _counts(s, session.id)
        brief = session_brief(session, now)
    return {
        "session": brief,
        "window": {
            "start": win.span[0].isoformat(),
            "end": win.span[1].isoformat(),
            "source": win.source,
            "correction_id": win.correction_id,
        },
        "hours": rules.hours(session.scheduled_start, win).to_dict(),
        "signed_in_now": present,
        "signed_in_total": people,
        "may_correct": caller.manages_provider(session.course.provider_org_id),
        "items": [
            {**attendance_view(row), "name": name, "phone": mask_phone(phone)} for row, name, phone in rows
        ],
    }
