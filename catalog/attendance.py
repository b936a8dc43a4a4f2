"""Attendance: `viewer.joined` / `viewer.left` (topic `attendance`) stored as present intervals per session,
person and peer, idempotently; and what a provider's console reads of them: per session, the learners
who attended live with the time each was present (the union of their intervals: two tabs count once),
and the learners who watched its replay."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, RecordingState, mask_phone
from catalog.intervals import Interval, closed, union_seconds
from catalog.models import Course, Enrollment, LiveInterval, Person, Recording, ReplayProgress, Session
from infra.errors import Forbidden, NotFound
from infra.events import ViewerJoined, ViewerLeft

log = logging.getLogger(__name__)


# -- storing events (the catalog's consumer) ---------------------------------------------------------


async def _check_known(s: AsyncSession, session_id: int, person_id: int) -> None:
    """NotFound (the consumer drops the event) for a session or person the catalog does not have."""
    if await s.get(Session, session_id) is None:
        raise NotFound(f"session {session_id} not found", field="session_id")
    if await s.get(Person, person_id) is None:
        raise NotFound(f"person {person_id} not found", field="person_id")


def _of_peer(event: ViewerJoined | ViewerLeft) -> Any:
    return (LiveInterval.session_id == event.session_id, LiveInterval.peer_id == event.peer_id)


async def record_joined(db: Database, event: ViewerJoined) -> bool:
    """Open the interval that starts at `event.at`; False when it exists (a redelivery). If the peer's
    `viewer.left` for it arrived first, that half-known interval gets its start."""
    try:
        async with db.sessions.begin() as s:
            await _check_known(s, event.session_id, event.person_id)
            same = await s.scalar(
                select(LiveInterval.id).where(*_of_peer(event), LiveInterval.joined_at == event.at)
            )
            if same is not None:
                return False
            early_left = (
                await s.scalars(
                    select(LiveInterval)
                    .where(
                        *_of_peer(event), LiveInterval.joined_at.is_(None), LiveInterval.left_at >= event.at
                    )
                    .order_by(LiveInterval.left_at)
                    .limit(1)
                    .with_for_update()
                )
            ).first()
            if early_left is not None:
                early_left.joined_at = event.at
                return True
            s.add(
                LiveInterval(
                    session_id=event.session_id,
                    person_id=event.person_id,
                    peer_id=event.peer_id,
                    joined_at=event.at,
                    left_at=None,
                )
            )
    except IntegrityError:
        # Another consumer stored the same joined event between our check and our insert.
        log.info(
            "session=%s peer=%s joined at %s stored concurrently", event.session_id, event.peer_id, event.at
        )
        return False
    return True


async def record_left(db: Database, event: ViewerLeft) -> bool:
    """Close the peer's latest interval that began at or before `event.at` (the earlier end wins, so a
    redelivery changes nothing). A left with no such open interval is kept as a half-known interval,
    completed when its `viewer.joined` arrives."""
    async with db.sessions.begin() as s:
        await _check_known(s, event.session_id, event.person_id)
        latest = (
            await s.scalars(
                select(LiveInterval)
                .where(*_of_peer(event), LiveInterval.joined_at <= event.at)
                .order_by(LiveInterval.joined_at.desc())
                .limit(1)
                .with_for_update()
            )
        ).first()
        if latest is not None and latest.left_at == event.at:
            return False
        if latest is not None and (latest.left_at is None or event.at < latest.left_at):
            latest.left_at = event.at
            latest.reason = event.reason
            return True
        # Out of order: this left belongs to an interval whose joined event has not been stored yet.
        orphan = await s.scalar(
            select(LiveInterval.id).where(
                *_of_peer(event), LiveInterval.joined_at.is_(None), LiveInterval.left_at == event.at
            )
        )
        if orphan is not None:
            return False
        s.add(
            LiveInterval(
                session_id=event.session_id,
                person_id=event.person_id,
                peer_id=event.peer_id,
                joined_at=None,
                left_at=event.at,
                reason=event.reason,
            )
        )
    log.info(
        "session=%s peer=%s left at %s before its join was stored", event.session_id, event.peer_id, event.at
    )
    return True


# -- reading (the provider's console) ----------------------------------------------------------------


def _require_staff(course: Course, caller: Caller) -> None:
    """Attendance is for the provider's administrators and platform admins; a draft is not found by
    anyone else, a published course is forbidden to them."""
    if caller.manages_provider(course.provider_org_id):
        return
    if course.status == CourseStatus.DRAFT and not caller.supervises_provider(course.provider_org_id):
        raise NotFound(f"course {course.id} not found", field="course_id")
    raise Forbidden("only the provider's administrators see attendance")


async def _live_by_person(
    s: AsyncSession, session_ids: list[int], ends: dict[int, datetime | None], now: datetime
) -> dict[int, dict[int, list[tuple[Interval, bool]]]]:
    """session -> person -> [(counted interval, still open)] of every interval whose start is known."""
    rows = await s.execute(
        select(LiveInterval.session_id, LiveInterval.person_id, LiveInterval.joined_at, LiveInterval.left_at)
        .where(LiveInterval.session_id.in_(session_ids), LiveInterval.joined_at.is_not(None))
        .order_by(LiveInterval.joined_at)
    )
    out: dict[int, dict[int, list[tuple[Interval, bool]]]] = defaultdict(lambda: defaultdict(list))
    for session_id, person_id, joined_at, left_at in rows:
        assert joined_at is not None  # selected so
        interval = closed(joined_at, left_at, ends.get(session_id), now)
        is_open = left_at is None and ends.get(session_id) is None
        # A zero-length interval (joined and left in the same instant) still shows the person came.
        out[session_id][person_id].append((interval or (joined_at, joined_at), is_open))
    return out


def _replay_query(session_ids: list[int], course_id: int) -> Any:
    """(session, person, furthest position, last report) of the course's learners with progress on a
    replay of those sessions. Learners: people who hold or held an enrollment in the course (the
    provider's own staff previewing a replay are not its audience)."""
    enrolled = select(Enrollment.person_id).where(Enrollment.course_id == course_id)
    return (
        select(
            Recording.session_id,
            ReplayProgress.person_id,
            func.max(ReplayProgress.position_s),
            func.max(ReplayProgress.updated_at),
        )
        .join(Recording, Recording.id == ReplayProgress.recording_id)
        .where(
            Recording.session_id.in_(session_ids),
            Recording.state == RecordingState.FINALIZED.value,
            ReplayProgress.person_id.in_(enrolled),
        )
        .group_by(Recording.session_id, ReplayProgress.person_id)
    )


async def of_course(db: Database, caller: Caller, course_id: int, now: datetime) -> dict[str, Any]:
    """Per session of the course: learners who attended live, of them still watching now, replay
    viewers."""
    async with db.sessions.begin() as s:
        course = await queries.course_with_sessions(s, course_id)
        if course is None:
            raise NotFound(f"course {course_id} not found", field="course_id")
        _require_staff(course, caller)
        ids = [ss.id for ss in course.sessions]
        live = await _live_by_person(s, ids, {ss.id: ss.actual_end for ss in course.sessions}, now)
        replay_rows = (await s.execute(_replay_query(ids, course.id))).all() if ids else []
    replay_counts: dict[int, int] = defaultdict(int)
    for session_id, *_rest in replay_rows:
        replay_counts[session_id] += 1
    return {
        "course_id": course.id,
        "sessions": [
            {
                "session_id": sid,
                "live_learners": len(live[sid]),
                "watching_now": sum(any(o for _i, o in v) for v in live[sid].values()),
                "replay_learners": replay_counts[sid],
            }
            for sid in ids
        ],
    }


async def of_session(db: Database, caller: Caller, session_id: int, now: datetime) -> dict[str, Any]:
    """One session's attendance, learner by learner: live (time present, first join, last leave, whether
    still watching, connections) and replay (furthest position, last report)."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_staff(session.course, caller)
        live = (await _live_by_person(s, [session.id], {session.id: session.actual_end}, now))[session.id]
        replay_rows = (await s.execute(_replay_query([session.id], session.course_id))).all()
        people = set(live) | {row[1] for row in replay_rows}
        contacts = {
            pid: (name, phone)
            for pid, name, phone in await s.execute(
                select(Person.id, Person.name, Person.phone).where(Person.id.in_(people))
            )
        }
        peers = dict(
            (
                await s.execute(
                    select(LiveInterval.person_id, func.count(distinct(LiveInterval.peer_id)))
                    .where(LiveInterval.session_id == session.id)
                    .group_by(LiveInterval.person_id)
                )
            ).all()
        )

    def who(pid: int) -> dict[str, Any]:
        name, phone = contacts.get(pid, ("", ""))
        return {"person_id": pid, "name": name, "phone": mask_phone(phone)}

    live_view = []
    for pid, entries in live.items():
        intervals = [i for i, _o in entries]
        still = any(o for _i, o in entries)
        live_view.append(
            {
                **who(pid),
                "present_s": round(union_seconds(intervals), 1),
                "first_joined_at": min(i[0] for i in intervals).isoformat(),
                "last_left_at": None if still else max(i[1] for i in intervals).isoformat(),
                "watching_now": still,
                "connections": int(peers.get(pid, 0)),
            }
        )
    live_view.sort(key=lambda p: (-p["present_s"], p["person_id"]))
    replay_view = sorted(
        (
            {**who(pid), "position_s": round(position, 1), "updated_at": updated_at.isoformat()}
            for _sid, pid, position, updated_at in replay_rows
        ),
        key=lambda p: (-p["position_s"], p["person_id"]),
    )
    return {
        "session_id": session.id,
        "live_learners": len(live_view),
        "live": live_view,
        "replay_learners": len(replay_view),
        "replay": replay_view,
    }
