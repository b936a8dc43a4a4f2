"""Reads stored evidence into the engine's inputs (catalog.credit.evidence types), with the ids of the rows
they came from so that a ledger entry can name its evidence.

Live: a session's window (the server's actual start..end, or the latest audited correction, named), and
per person the delivery spans (live intervals), attention changes, overflow-HLS clients (heartbeats of
kind hls, with their client sessions when the server opened one) and segment fetch times, the session's
live checks and the person's answers. Replay: a (person, recording)'s playback clients with their
heartbeats, replay checks and answers, the recording's duration. External meetings (Tencent Meeting,
DingTalk): the session's imported records by person, and its window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.credit.evidence import Beat, Check, Client, Span
from catalog.models import (
    AttentionChange,
    ClientSession,
    Course,
    ExternalRecordRow,
    Heartbeat,
    HlsFetch,
    LiveInterval,
    Person,
    PresenceAnswer,
    PresenceCheckRecord,
    Recording,
    Session,
    SessionTimeCorrection,
)

LIVE = "live"
HLS = "hls"
REPLAY = "replay"


@dataclass(frozen=True)
class Window:
    """The span credit is clipped to (R8), and where it came from."""

    span: Span
    correction_id: int | None  # None: the server's own actual_start/actual_end


@dataclass(frozen=True)
class CourseInfo:
    course_id: int
    category: str
    credit_hours: Decimal


@dataclass
class PersonLive:
    """One person's live evidence in one session."""

    delivery: list[tuple[int, Span]] = field(default_factory=list)  # (live_intervals.id, span)
    peers: dict[str, list[Span]] = field(default_factory=dict)
    attention: list[tuple[str, bool, datetime]] = field(default_factory=list)
    hls_clients: list[Client] = field(default_factory=list)
    segment_times: list[datetime] = field(default_factory=list)
    answers: dict[str, tuple[datetime, int | None]] = field(default_factory=dict)
    late_at: list[datetime] = field(default_factory=list)  # evidence stamped after the window's end

    @property
    def has_live(self) -> bool:
        """Media was delivered over WebRTC (a seat in the room). The room channel's attention alone is not:
        an overflow learner is in the room channel too, and watches the HLS."""
        return bool(self.delivery)


@dataclass(frozen=True)
class SessionEvidence:
    session_id: int
    course: CourseInfo
    window: Window
    checks: list[PresenceCheckRecord]
    people: dict[int, PersonLive]  # known people only: evidence of unknown ones is kept, never credited

    def checks_of(self, person_id: int) -> list[Check]:
        answers = self.people[person_id].answers
        out = []
        for c in self.checks:
            answered_at, latency_ms = answers.get(c.id, (None, None))
            out.append(Check(c.id, c.issued_at, c.deadline_at, answered_at, latency_ms))
        return out


async def course_of_session(s: AsyncSession, session_id: int) -> tuple[Session, CourseInfo] | None:
    row = (
        await s.execute(
            select(Session, Course.id, Course.category, Course.credit_hours)
            .join(Course, Course.id == Session.course_id)
            .where(Session.id == session_id)
        )
    ).first()
    if row is None:
        return None
    session, course_id, category, credit_hours = row
    return session, CourseInfo(course_id, category, credit_hours)


async def window(s: AsyncSession, session: Session) -> Window | None:
    """The latest audited correction of the session's times, else the server's own; None while the
    session has not ended (or never started)."""
    correction = await latest_correction(s, session.id)
    if correction is not None:
        return correction
    if session.actual_start is None or session.actual_end is None:
        return None
    return Window((session.actual_start, session.actual_end), None)


def _clients(beats: list[Heartbeat], opened: dict[str, ClientSession]) -> dict[tuple[int, str], Client]:
    by_client: dict[str, list[Heartbeat]] = defaultdict(list)
    for b in beats:
        by_client[b.client_id].append(b)
    out: dict[tuple[int, str], Client] = {}
    for client_id, rows in by_client.items():
        rows.sort(key=lambda b: (b.at, b.seq))
        cs = opened.get(client_id)
        out[(rows[0].person_id, client_id)] = Client(
            client_id=client_id,
            opened_at=cs.opened_at if cs is not None else rows[0].at,
            superseded_at=cs.superseded_at if cs is not None else None,
            beats=tuple(Beat(b.client_id, b.seq, b.at, b.position_s, b.rate, b.visible) for b in rows),
            first_viewing=cs.first_viewing if cs is not None else None,
        )
    return out


async def _client_sessions(s: AsyncSession, ids: set[str]) -> dict[str, ClientSession]:
    if not ids:
        return {}
    return {c.id: c for c in await s.scalars(select(ClientSession).where(ClientSession.id.in_(ids)))}


async def session_evidence(s: AsyncSession, session_id: int) -> SessionEvidence | None:
    """Everything live credit of a session rests on; None for an unknown or unfinished session."""
    found = await course_of_session(s, session_id)
    if found is None:
        return None
    session, course = found
    win = await window(s, session)
    if win is None:
        return None
    end = win.span[1]
    people: dict[int, PersonLive] = defaultdict(PersonLive)
    for row in await s.scalars(
        select(LiveInterval).where(LiveInterval.session_id == session_id).order_by(LiveInterval.id)
    ):
        if row.joined_at is None:
            continue  # only its end is known: no span
        left_at = row.left_at if row.left_at is not None else max(end, row.joined_at)
        span = (row.joined_at, left_at)
        people[row.person_id].delivery.append((row.id, span))
        people[row.person_id].peers.setdefault(row.peer_id, []).append(span)
        if row.joined_at > end:
            people[row.person_id].late_at.append(row.joined_at)
    for a in await s.scalars(
        select(AttentionChange).where(AttentionChange.session_id == session_id).order_by(AttentionChange.at)
    ):
        people[a.person_id].attention.append((a.conn_id, a.visible, a.at))
        if a.visible and a.at > end:
            people[a.person_id].late_at.append(a.at)
    beats = list(
        await s.scalars(select(Heartbeat).where(Heartbeat.session_id == session_id, Heartbeat.kind == HLS))
    )
    opened = await _client_sessions(s, {b.client_id for b in beats})
    for (person_id, _cid), client in _clients(beats, opened).items():
        people[person_id].hls_clients.append(client)
        people[person_id].late_at.extend(b.at for b in client.beats if b.at > end)
    for f in await s.scalars(select(HlsFetch).where(HlsFetch.session_id == session_id)):
        people[f.person_id].segment_times.append(f.at)
    checks = list(
        await s.scalars(
            select(PresenceCheckRecord)
            .where(PresenceCheckRecord.session_id == session_id, PresenceCheckRecord.kind == LIVE)
            .order_by(PresenceCheckRecord.issued_at)
        )
    )
    if checks:
        for ans in await s.scalars(
            select(PresenceAnswer).where(PresenceAnswer.check_id.in_([c.id for c in checks]))
        ):
            if ans.person_id in people:
                people[ans.person_id].answers[ans.check_id] = (ans.answered_at, ans.latency_ms)
    known = set(await s.scalars(select(Person.id).where(Person.id.in_(list(people))))) if people else set()
    return SessionEvidence(
        session_id, course, win, checks, {pid: p for pid, p in people.items() if pid in known}
    )


async def ended_sessions(s: AsyncSession, ended_before: datetime) -> list[int]:
    """Sessions whose (corrected or own) actual end is before `ended_before`."""
    own = set(
        await s.scalars(
            select(Session.id).where(Session.actual_end.is_not(None), Session.actual_end <= ended_before)
        )
    )
    corrected = set(
        await s.scalars(
            select(SessionTimeCorrection.session_id).where(SessionTimeCorrection.actual_end <= ended_before)
        )
    )
    return sorted(own | corrected)


# -- replays ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayEvidence:
    person_id: int
    recording_id: str
    session_id: int
    course: CourseInfo
    duration_s: float
    session_window: Window | None
    clients: list[Client]
    checks: list[Check]
    first_viewing: bool


async def replay_evidence(s: AsyncSession, person_id: int, recording_id: str) -> ReplayEvidence | None:
    """A person's playback of one recording; None when the recording, its session or the person is
    unknown, or nothing was played."""
    recording = await s.get(Recording, recording_id)
    if recording is None or await s.get(Person, person_id) is None:
        return None
    found = await course_of_session(s, recording.session_id)
    if found is None:
        return None
    session, course = found
    beats = list(
        await s.scalars(
            select(Heartbeat).where(
                Heartbeat.person_id == person_id,
                Heartbeat.recording_id == recording_id,
                Heartbeat.kind == REPLAY,
            )
        )
    )
    if not beats:
        return None
    opened = await _client_sessions(s, {b.client_id for b in beats})
    clients = sorted(_clients(beats, opened).values(), key=lambda c: (c.opened_at, c.client_id))
    records = list(
        await s.scalars(
            select(PresenceCheckRecord)
            .where(
                PresenceCheckRecord.kind == REPLAY,
                PresenceCheckRecord.person_id == person_id,
                PresenceCheckRecord.recording_id == recording_id,
            )
            .order_by(PresenceCheckRecord.issued_at)
        )
    )
    answers: dict[str, PresenceAnswer] = {}
    if records:
        answers = {
            a.check_id: a
            for a in await s.scalars(
                select(PresenceAnswer).where(
                    PresenceAnswer.person_id == person_id,
                    PresenceAnswer.check_id.in_([r.id for r in records]),
                )
            )
        }
    checks = [
        Check(
            r.id,
            r.issued_at,
            r.deadline_at,
            answers[r.id].answered_at if r.id in answers else None,
            answers[r.id].latency_ms if r.id in answers else None,
        )
        for r in records
    ]
    first_viewing = all(c.first_viewing is not False for c in clients)
    return ReplayEvidence(
        person_id,
        recording_id,
        session.id,
        course,
        recording.duration_s,
        await window(s, session),
        clients,
        checks,
        first_viewing,
    )


# -- external meetings ------------------------------------------------------------------------------------

# integrations.identity.CREDITED: only records mapped to a person through a verified account, the
# platform's phone or a provider's manual match are credited (R20); dial-in and unmatched ones never are.
CREDITED_MATCHES = ("linked", "phone", "manual")


@dataclass(frozen=True)
class ExternalRow:
    """One stored external record (catalog.models.ExternalRecordRow) as settlement reads it."""

    record_id: int
    batch_id: int
    person_id: int | None
    match: str
    join_at: datetime | None
    leave_at: datetime | None
    watched_s: float | None
    trust: str
    is_pstn: bool


@dataclass(frozen=True)
class ExternalEvidence:
    session_id: int
    platform: str
    course: CourseInfo
    window: Window
    window_source: str  # correction, actual, records (the meeting's records within the schedule), schedule
    people: dict[int, list[ExternalRow]]  # credited records of known people
    uncredited: list[ExternalRow]  # dial-in, unmatched, rejected: listed, never credited (R20)


def external_window(
    session: Session, rows: Sequence[ExternalRow], correction: Window | None
) -> tuple[Window, str]:
    """An external session's window (R8): an audited correction, else the session's actual times, else
    the meeting's own times as its records show them (first join to last leave, any participant) within
    the schedule, else the schedule (totals only, DingTalk live)."""
    if correction is not None:
        return correction, "correction"
    if session.actual_start is not None and session.actual_end is not None:
        return Window((session.actual_start, session.actual_end), None), "actual"
    joins = [r.join_at for r in rows if r.join_at is not None]
    ends = [t for r in rows for t in (r.leave_at, r.join_at) if t is not None]
    if joins:
        start = max(session.scheduled_start, min(joins))
        end = min(session.scheduled_end, max(ends))
        if end > start:
            return Window((start, end), None), "records"
    return Window((session.scheduled_start, session.scheduled_end), None), "schedule"


async def latest_correction(s: AsyncSession, session_id: int) -> Window | None:
    """The session's latest audited time correction as a window, or None."""
    correction = (
        await s.scalars(
            select(SessionTimeCorrection)
            .where(SessionTimeCorrection.session_id == session_id)
            .order_by(SessionTimeCorrection.at.desc(), SessionTimeCorrection.id.desc())
            .limit(1)
        )
    ).first()
    if correction is None:
        return None
    return Window((correction.actual_start, correction.actual_end), correction.id)


async def external_evidence(s: AsyncSession, session_id: int) -> ExternalEvidence | None:
    """A linked external session's records; None for an unknown session or one without records."""
    found = await course_of_session(s, session_id)
    if found is None:
        return None
    session, course = found
    rows = [
        ExternalRow(
            r.id, r.batch_id, r.person_id, r.match, r.join_at, r.leave_at, r.watched_s, r.trust, r.is_pstn
        )
        for r in await s.scalars(
            select(ExternalRecordRow)
            .where(ExternalRecordRow.session_id == session_id)
            .order_by(ExternalRecordRow.id)
        )
    ]
    if not rows:
        return None
    win, source = external_window(session, rows, await latest_correction(s, session_id))
    credited = [r for r in rows if r.person_id is not None and r.match in CREDITED_MATCHES and not r.is_pstn]
    wanted = {r.person_id for r in credited}
    known = set(await s.scalars(select(Person.id).where(Person.id.in_(wanted)))) if wanted else set()
    people: dict[int, list[ExternalRow]] = defaultdict(list)
    for r in credited:
        if r.person_id in known:
            people[r.person_id].append(r)
    taken = {r.record_id for rs in people.values() for r in rs}
    return ExternalEvidence(
        session_id,
        session.external_platform,
        course,
        win,
        source,
        dict(people),
        [r for r in rows if r.record_id not in taken],
    )


async def external_fingerprints(
    s: AsyncSession, ended_before: datetime, session_id: int | None = None
) -> dict[int, str]:
    """External sessions scheduled to end before `ended_before` that have records: what their records and
    corrections look like now (rows, rows with a person, rows with a leave time, the last change, the
    latest correction), to settle again only what changed."""
    rows = await s.execute(
        select(
            ExternalRecordRow.session_id,
            func.count(),
            func.count(ExternalRecordRow.person_id),
            func.count(ExternalRecordRow.leave_at),
            func.max(ExternalRecordRow.updated_at),
        )
        .join(Session, Session.id == ExternalRecordRow.session_id)
        .where(
            Session.scheduled_end <= ended_before,
            *([ExternalRecordRow.session_id == session_id] if session_id is not None else []),
        )
        .group_by(ExternalRecordRow.session_id)
    )
    out = {
        sid: f"{n}|{people}|{closed}|{last.isoformat() if last else ''}"
        for sid, n, people, closed, last in rows
    }
    if out:
        corrections = await s.execute(
            select(SessionTimeCorrection.session_id, func.max(SessionTimeCorrection.id))
            .where(SessionTimeCorrection.session_id.in_(list(out)))
            .group_by(SessionTimeCorrection.session_id)
        )
        for sid, cid in corrections:
            out[sid] += f"|c{cid}"
    return out
