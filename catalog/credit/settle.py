"""Settlement: stored evidence → the engine → ledger entries and fraud flags.

Live: once a session has ended (its own actual end, or the latest audited correction) and 2 × heartbeat
period has passed, everyone with evidence in it is settled once, in one transaction that also writes the
audit row `credit.session_settled` (what makes settlement idempotent). A person with both WebRTC and
overflow-HLS evidence is credited once, for (delivery ∩ attention) ∪ corroborated HLS spans.

Replays: a (person, recording) is settled when its player reached the end of the media (checked after each
consumed heartbeat batch, and by the periodic sweep), or stopped past the completion point and stayed idle
for REPLAY_IDLE (the sweep); an incomplete replay gets no entry and may complete later.

External meetings (Tencent Meeting, DingTalk): once a linked session's schedule has ended, everyone matched
in its imported records is credited like live (union of their records clipped to the window, R7/R8/R9;
DingTalk live totals: min(watch time, window), R21, flagged `low_trust`), as `external` entries naming the
import batches and records; settled again when the records or the window change.

Rules applied here around the engine's figures: R24 (once per person, session and credit year: a later
claim on another path is recorded as "already credited" with 0 学时, and flagged `double_claim` only when
its time overlaps the credited one), R29 (time credited in another course at the same instants is
flagged and subtracted), the course cap (a course's entries never exceed its credit hours), a session's
actual length, and R6 (the Beijing day's cap across all of a person's entries; the entry carries the
capped 学时, its evidence the uncapped figure). Rejected and revoked entries hold neither cap
(ledger.holding); they still claim their session for R24, so watching it again does not undo a rejection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.courseware import credit as courseware_credit
from catalog.credit import engine, flags, ledger, policies, store
from catalog.credit.evidence import LOW, MEDIUM, Client, Flag, Span
from catalog.credit.policy import CreditPolicy
from catalog.db import Database
from catalog.models import (
    AuditEntry,
    CreditEntry,
    Person,
    Recording,
    ReplayProgress,
    Session,
)
from infra.errors import Conflict

log = logging.getLogger(__name__)

SETTLED = "credit.session_settled"
UNSETTLED = "credit.session_unsettled"  # a time correction reversed the session's entries
REPLAY_SWEEP_HORIZON = timedelta(days=2)  # the sweep looks at replays played this recently
# A replay past the completion point but short of the end is settled once its player has been idle this
# long: a learner still watching would lose the rest of the media (the entry is written once).
REPLAY_IDLE = timedelta(minutes=10)


# -- the policy in force ---------------------------------------------------------------------------------


async def current_policy(s: AsyncSession) -> CreditPolicy:
    """The newest stored policy version, else the built-in defaults (version 0)."""
    return await policies.current(s)


# -- pure helpers ---------------------------------------------------------------------------------------


def subtract(spans: Iterable[Span], away: Iterable[Span]) -> list[Span]:
    """The instants of `spans` not in `away`."""
    out: list[Span] = []
    cuts = engine.union(away)
    for start, end in engine.union(spans):
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                out.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def concurrent_s(tracks: Sequence[Sequence[Span]]) -> float:
    """Seconds during which two or more tracks (devices, clients) ran at once."""
    return sum(engine.seconds(t) for t in tracks) - engine.seconds(s for t in tracks for s in t)


def _spans_json(spans: Iterable[Span]) -> list[list[str]]:
    return [[a.isoformat(), b.isoformat()] for a, b in spans]


def _days_json(by_day: dict[date, Decimal]) -> dict[str, str]:
    return {d.isoformat(): str(x) for d, x in sorted(by_day.items())}


@dataclass
class Caps:
    """The capped 学时 of one credit and what cut it."""

    xueshi: Decimal
    by_day: dict[date, Decimal]
    uncapped: Decimal
    course_cut: bool
    session_cut: bool
    daily_cut: dict[date, Decimal]  # day -> what R6 took away

    def to_dict(self) -> dict[str, Any]:
        return {
            "uncapped_xueshi": str(self.uncapped),
            "course_cap_applied": self.course_cut,
            "session_length_cap_applied": self.session_cut,
            "daily_cap_cut": _days_json(self.daily_cut),
            "credited_by_day": _days_json(self.by_day),
        }


def apply_caps(
    xueshi: Decimal,
    day_seconds: dict[date, float],
    *,
    session_max: Decimal | None,
    course_hours: Decimal,
    in_course: Decimal,
    already_by_day: dict[date, Decimal],
    policy: CreditPolicy,
) -> Caps:
    """Session length, then the course cap, then R6 per Beijing day."""
    amount = xueshi
    session_cut = session_max is not None and amount > session_max
    if session_max is not None:
        amount = min(amount, session_max)
    course_capped = engine.cap_course(amount, in_course, course_hours)
    course_cut = course_capped < amount
    by_day = engine.allocate_by_day(course_capped, day_seconds, policy) if course_capped > 0 else {}
    capped = engine.cap_daily(by_day, already_by_day, policy)
    cut = {d: by_day[d] - capped[d] for d in by_day if capped[d] < by_day[d]}
    return Caps(sum(capped.values(), Decimal(0)), capped, xueshi, course_cut, session_cut, cut)


# -- settling -------------------------------------------------------------------------------------------


@dataclass
class Report:
    sessions: int = 0
    entries: int = 0
    flags: int = 0
    replays: int = 0

    def add(self, other: Report) -> None:
        self.sessions += other.sessions
        self.entries += other.entries
        self.flags += other.flags
        self.replays += other.replays


async def _lock_people(s: AsyncSession, people: Iterable[int]) -> None:
    """Serialize credit writes per person (R6 and the course cap read what earlier entries hold)."""
    ids = sorted(set(people))
    if not ids:
        return
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        await s.execute(select(Person.id).where(Person.id.in_(ids)).order_by(Person.id).with_for_update())
    elif dialect == "sqlite":
        # No row locks, and the driver begins a transaction only at the first write: two settlements of
        # one person (the consumer's after-batch check and the settler's sweep) both read "no entry yet"
        # and both appended one. A no-op write first takes the database's write lock until commit, so
        # the second waits (busy_timeout) and then reads what the first wrote.
        await s.execute(update(Person).where(Person.id.in_(ids)).values(name=Person.name))


async def settle_due(
    db: Database,
    now: datetime,
    *,
    policy: CreditPolicy | None = None,
    evidence_through: datetime | None = None,
) -> Report:
    """Settle every session that ended at least 2 × heartbeat period before `now` and was not settled yet,
    then sweep recently played replays, external meetings and offline training sessions
    (catalog.offline.settlement). What the background task calls; tests call it directly.

    `evidence_through`: the time up to which the catalog has stored every evidence event (the task asks
    the bus for the consumer's oldest unacknowledged event): a session is settled only once its end plus
    2 × period lies before it, so that a consumer running behind never costs a learner credit."""
    report = Report()
    through = now if evidence_through is None else min(now, evidence_through)
    async with db.sessions.begin() as s:
        pol = policy or await current_policy(s)
        due = await store.ended_sessions(s, through - timedelta(seconds=2 * pol.heartbeat_period_s))
        done = await settled_sessions(s, due)
    for session_id in due:
        if session_id not in done:
            report.add(await settle_session(db, session_id, now, policy=pol))
    report.add(await sweep_replays(db, now, policy=pol))
    report.add(await settle_external_due(db, now, policy=pol))
    # Offline training (issue 15) builds on this module's rules, so it is imported here, not at the top.
    from catalog.offline.settlement import settle_offline_due

    report.add(await settle_offline_due(db, now, policy=pol))
    return report


async def settle_session(
    db: Database, session_id: int, now: datetime, *, policy: CreditPolicy | None = None
) -> Report:
    """Live and overflow-HLS credit of everyone with evidence in one ended session, once."""
    report = Report()
    async with db.sessions.begin() as s:
        pol = policy or await current_policy(s)
        if s.get_bind().dialect.name == "postgresql":  # one settler per session at a time
            await s.execute(select(Session.id).where(Session.id == session_id).with_for_update())
        if await settled_sessions(s, [session_id]):
            return report
        ev = await store.session_evidence(s, session_id)
        if ev is None:
            return report
        await _lock_people(s, ev.people)
        for person_id in sorted(ev.people):
            entries, raised = await _settle_person_live(s, ev, person_id, pol, now)
            report.entries += entries
            report.flags += raised
        s.add(
            AuditEntry(
                actor_person_id=None,
                action=SETTLED,
                subject_type="session",
                subject_id=str(session_id),
                detail={
                    "people": len(ev.people),
                    "entries": report.entries,
                    "policy_version": pol.version,
                    "window": _spans_json([ev.window.span]),
                    "correction_id": ev.window.correction_id,
                },
                at=now,
            )
        )
        report.sessions = 1
    log.info(
        "credit settled session=%s entries=%d flags=%d policy=%d",
        session_id,
        report.entries,
        report.flags,
        pol.version,
    )
    return report


async def settled_sessions(s: AsyncSession, session_ids: Sequence[int]) -> set[int]:
    """Those of the sessions whose latest settlement audit row is `credit.session_settled` (not undone by
    a later `credit.session_unsettled`)."""
    if not session_ids:
        return set()
    rows = await s.execute(
        select(AuditEntry.subject_id, AuditEntry.action, func.max(AuditEntry.id))
        .where(
            AuditEntry.subject_type == "session",
            AuditEntry.action.in_((SETTLED, UNSETTLED)),
            AuditEntry.subject_id.in_([str(sid) for sid in session_ids]),
        )
        .group_by(AuditEntry.subject_id, AuditEntry.action)
    )
    latest: dict[str, dict[str, int]] = {}
    for subject_id, action, last_id in rows:
        latest.setdefault(subject_id, {})[action] = last_id
    return {
        int(subject_id)
        for subject_id, by_action in latest.items()
        if by_action.get(SETTLED, 0) > by_action.get(UNSETTLED, 0)
    }


async def resettle_session(
    db: Database,
    session_id: int,
    actor: int,
    reason: str,
    now: datetime,
    *,
    policy: CreditPolicy | None = None,
) -> Report:
    """After an audited time correction of a settled session: reverse its standing live and HLS entries
    (reversal entries with audit rows, never updates), record `credit.session_unsettled`, and settle it
    again under the policy in force, now bounded by the corrected window. A session not settled yet is
    left to the normal round (which will use the correction)."""
    async with db.sessions.begin() as s:
        if not await settled_sessions(s, [session_id]):
            return Report()
        entries = list(
            await s.scalars(
                select(CreditEntry).where(CreditEntry.session_id == session_id).order_by(CreditEntry.id)
            )
        )
    to_reverse = [e.id for e in ledger.standing(entries) if e.kind in (ledger.LIVE, ledger.HLS)]
    for entry_id in to_reverse:
        with contextlib.suppress(Conflict):  # reversed concurrently: the same end state
            await ledger.reverse(db, entry_id, actor, f"课次时间更正后重新结算：{reason}", now)
    async with db.sessions.begin() as s:
        s.add(
            AuditEntry(
                actor_person_id=actor,
                action=UNSETTLED,
                subject_type="session",
                subject_id=str(session_id),
                detail={"reversed_entries": to_reverse, "reason": reason},
                at=now,
            )
        )
    log.info("credit unsettled session=%s reversed=%d (time correction)", session_id, len(to_reverse))
    return await settle_session(db, session_id, now, policy=policy)


def _devices(p: store.PersonLive, period_s: float) -> list[list[Span]]:
    tracks = [engine.union(spans) for spans in p.peers.values()]
    tracks += [engine.beat_spans(c.beats, period_s) for c in p.hls_clients]
    return tracks


async def _settle_person_live(
    s: AsyncSession, ev: store.SessionEvidence, person_id: int, policy: CreditPolicy, now: datetime
) -> tuple[int, int]:
    p = ev.people[person_id]
    win = ev.window.span
    checks = ev.checks_of(person_id)
    attention = engine.attention_spans(p.attention, until=win[1])
    delivery = [span for _id, span in p.delivery]
    extra: list[Flag] = []
    if p.hls_clients:
        hls_spans, hls_flags, _rej = engine.hls_present(p.hls_clients, p.segment_times, win, policy)
        if p.has_live:
            credit = engine.live_credit(delivery, attention, win, checks, policy, extra_present=hls_spans)
            extra += hls_flags
        else:
            credit = engine.hls_credit(p.hls_clients, p.segment_times, win, checks, policy)
    else:
        credit = engine.live_credit(delivery, attention, win, checks, policy)
    kind = ledger.HLS if p.hls_clients and not p.has_live else ledger.LIVE
    year = engine.credit_year(win[0])
    entries = await ledger.person_entries(s, person_id, year)

    # R29: instants already credited in another course are not credited twice.
    others = ledger.credited_spans(entries, other_than_course=ev.course.course_id)
    overlap = engine.overlaps(credit.present, [span for _id, span in others])
    if overlap:
        overlap_s = engine.seconds(overlap)
        recomputed = engine.live_credit(subtract(credit.present, overlap), [win], win, checks, policy)
        credit = dataclasses.replace(recomputed, kind=credit.kind, rejections=credit.rejections)
        extra.append(
            Flag(
                "multi_course_overlap",
                MEDIUM,
                {
                    "overlap_s": overlap_s,
                    "overlap": _spans_json(overlap),
                    "entry_ids": sorted({i for i, span in others if engine.intersect([span], overlap)}),
                },
            )
        )
    period = policy.heartbeat_period_s
    together_s = concurrent_s(_devices(p, period))
    if together_s > 2 * period:
        extra.append(Flag("two_devices", MEDIUM, {"concurrent_s": together_s, "peers": sorted(p.peers)}))
    late = [t for t in p.late_at if t > win[1] + timedelta(seconds=2 * period)]
    if late:
        extra.append(
            Flag(
                "after_end",
                MEDIUM,
                {"count": len(late), "first_at": min(late).isoformat(), "end": win[1].isoformat()},
            )
        )

    # R24: one credit per person, session and year; this settlement is the live/HLS claim.
    of_session = [e for e in entries if e.session_id == ev.session_id]
    if any(e.kind in (ledger.LIVE, ledger.HLS) for e in ledger.standing(of_session)):
        return 0, 0  # settled before (a reversed one, after a time correction, does not count)
    evidence: dict[str, Any] = {
        "figures": credit.to_dict(),
        "live_interval_ids": [i for i, _span in p.delivery],
        "attention_conn_ids": sorted({c for c, _v, _t in p.attention}),
        "check_ids": [c.check_id for c in checks],
        "client_session_ids": [c.client_id for c in p.hls_clients],
        "policy_version": policy.version,
        "window": _spans_json([win]),
        "correction_id": ev.window.correction_id,
        "credited_spans": _spans_json(credit.present),
    }
    _append_session_entry(
        s,
        ev.session_id,
        ev.course,
        person_id,
        credit,
        kind,
        claim=credit.present,
        entries=entries,
        of_session=of_session,
        year=year,
        window=win,
        evidence=evidence,
        extra=extra,
        policy=policy,
        now=now,
    )
    raised = await flags.raise_flags(
        s,
        [*flags.of_engine(credit.flags), *extra],
        person_id=person_id,
        subject=f"session:{ev.session_id}",
        session_id=ev.session_id,
        course_id=ev.course.course_id,
        now=now,
    )
    return 1, raised


def _append_session_entry(
    s: AsyncSession,
    session_id: int,
    course: store.CourseInfo,
    person_id: int,
    credit: engine.LiveCredit,
    kind: str,
    *,
    claim: Sequence[Span],
    entries: Sequence[CreditEntry],
    of_session: Sequence[CreditEntry],
    year: int,
    window: Span,
    evidence: dict[str, Any],
    extra: list[Flag],
    policy: CreditPolicy,
    now: datetime,
) -> None:
    """Append one person's claim on a session (live, overflow HLS or external) to the ledger: 0 学时 noted
    "already credited" when the session holds credit this year (R24; flagged `double_claim` when the
    claimed time overlaps the credited one), else the engine's 学时 under the course cap and the Beijing
    day's cap (R6, flagged `daily_cap` when it cut). `evidence` gets the caps' figures."""
    prior = [(e.session_id or 0, e.credit_year, e.xueshi) for e in entries]
    note = ""
    if engine.already_credited(prior, session_id, year, policy):
        caps = Caps(Decimal(0), {}, credit.xueshi, False, False, {})
        note = "already credited"
        shared = _credited_spans_of(of_session)
        overlap = engine.double_claim(list(claim), shared, policy, session_id=session_id)
        if overlap is not None:
            extra.append(overlap)
    else:
        caps = apply_caps(
            credit.xueshi,
            credit.day_seconds,
            session_max=None,  # a session's credit is at most its window already
            course_hours=course.credit_hours,
            in_course=ledger.net_xueshi(ledger.holding(entries), course_id=course.course_id),
            already_by_day=ledger.by_day(ledger.holding(entries)),
            policy=policy,
        )
        if caps.daily_cut:
            cut = {"cut": _days_json(caps.daily_cut), "cap": str(policy.daily_cap_xueshi)}
            extra.append(Flag("daily_cap", LOW, cut))
    evidence.update(caps.to_dict())
    ledger.append(
        s,
        CreditEntry(
            person_id=person_id,
            course_id=course.course_id,
            session_id=session_id,
            credit_year=year,
            credit_day=_main_day(caps.by_day, credit.day_seconds, window[0]).isoformat(),
            category=course.category,
            kind=kind,
            minutes=float(credit.minutes),
            xueshi=caps.xueshi,
            policy_version=policy.version,
            computed_at=now,
            status=ledger.PENDING,
            note=note,
            evidence=evidence,
        ),
    )


def _main_day(by_day: dict[date, Decimal], day_seconds: dict[date, float], fallback: datetime) -> date:
    if by_day and max(by_day.values()) > 0:
        return max(by_day, key=lambda d: (by_day[d], d))
    if day_seconds:
        return max(day_seconds, key=lambda d: (day_seconds[d], d))
    return engine.beijing_day(fallback)


def _credited_spans_of(entries: Iterable[CreditEntry]) -> list[Span]:
    out: list[Span] = []
    for e in ledger.standing(entries):
        if e.xueshi > 0:
            out += [
                (datetime.fromisoformat(a), datetime.fromisoformat(b))
                for a, b in e.evidence.get("credited_spans", [])
            ]
    return out


# -- replays ----------------------------------------------------------------------------------------------


def _without(clients: Sequence[Client], away: Sequence[Span]) -> list[Client]:
    """The clients without heartbeats received inside `away` (their pairs then credit nothing)."""
    return [
        dataclasses.replace(c, beats=tuple(b for b in c.beats if not any(a <= b.at <= z for a, z in away)))
        for c in clients
    ]


async def settle_replay(
    db: Database, person_id: int, recording_id: str, now: datetime, *, policy: CreditPolicy | None = None
) -> Report:
    """Credit a person's replay of a recording once its coverage is complete; flags either way."""
    report = Report()
    async with db.sessions.begin() as s:
        pol = policy or await current_policy(s)
        await _lock_people(s, [person_id])
        if await _replay_entry_exists(s, person_id, recording_id):
            return report
        ev = await store.replay_evidence(s, person_id, recording_id)
        if ev is None:
            return report
        # R27: a courseware rendition counts only while its version was the approved one.
        ev = await courseware_credit.approved_only(s, ev, now)
        report.replays = 1
        credit = engine.replay_credit(ev.clients, ev.duration_s, ev.checks, pol)
        subject = f"recording:{recording_id}"
        extra: list[Flag] = []
        period = pol.heartbeat_period_s
        together_s = concurrent_s([engine.beat_spans(c.beats, period) for c in ev.clients])
        if together_s > 2 * period:
            extra.append(
                Flag(
                    "two_devices",
                    MEDIUM,
                    {"concurrent_s": together_s, "client_ids": [c.client_id for c in ev.clients]},
                )
            )
        wall = engine.union((r.wall_from, r.wall_to) for r in credit.ranges)
        year = engine.credit_year(wall[-1][1] if wall else now)
        entries = await ledger.person_entries(s, person_id, year)
        others = ledger.credited_spans(entries, other_than_course=ev.course.course_id)
        overlap = engine.overlaps(wall, [span for _id, span in others])
        if overlap:
            extra.append(
                Flag(
                    "multi_course_overlap",
                    MEDIUM,
                    {"overlap_s": engine.seconds(overlap), "overlap": _spans_json(overlap)},
                )
            )
            credit = engine.replay_credit(_without(ev.clients, overlap), ev.duration_s, ev.checks, pol)
            wall = engine.union((r.wall_from, r.wall_to) for r in credit.ranges)
        of_session = [e for e in entries if e.session_id == ev.session_id]
        written = any(e.kind == ledger.REPLAY for e in of_session)
        credited_before = engine.already_credited(
            [(e.session_id or 0, e.credit_year, e.xueshi) for e in entries], ev.session_id, year, pol
        )
        if credit.complete and credited_before and not written:
            claim = engine.double_claim(wall, _credited_spans_of(of_session), pol, session_id=ev.session_id)
            if claim is not None:
                extra.append(claim)
        report.flags += await flags.raise_flags(
            s,
            [*flags.of_engine(credit.flags), *extra],
            person_id=person_id,
            subject=subject,
            session_id=ev.session_id,
            course_id=ev.course.course_id,
            now=now,
        )
        if written or not credit.complete or (credit.xueshi <= 0 and not credited_before):
            return report
        evidence: dict[str, Any] = {
            "figures": credit.to_dict(),
            "recording_id": recording_id,
            "client_session_ids": [c.client_id for c in ev.clients],
            "check_ids": [c.check_id for c in ev.checks],
            "policy_version": pol.version,
            "credited_spans": _spans_json(wall),
        }
        if credited_before:
            caps = Caps(Decimal(0), {}, credit.xueshi, False, False, {})
            note = "already credited"
        else:
            window_s = (
                (ev.session_window.span[1] - ev.session_window.span[0]).total_seconds()
                if ev.session_window is not None
                else ev.duration_s
            )
            caps = apply_caps(
                credit.xueshi,
                credit.day_seconds,
                session_max=engine.to_xueshi(Decimal(repr(window_s)) / 60, pol),
                course_hours=ev.course.credit_hours,
                in_course=ledger.net_xueshi(ledger.holding(entries), course_id=ev.course.course_id),
                already_by_day=ledger.by_day(ledger.holding(entries)),
                policy=pol,
            )
            note = ""
            if caps.daily_cut:
                report.flags += await flags.raise_flags(
                    s,
                    [
                        Flag(
                            "daily_cap",
                            LOW,
                            {"cut": _days_json(caps.daily_cut), "cap": str(pol.daily_cap_xueshi)},
                        )
                    ],
                    person_id=person_id,
                    subject=subject,
                    session_id=ev.session_id,
                    course_id=ev.course.course_id,
                    now=now,
                )
        evidence.update(caps.to_dict())
        ledger.append(
            s,
            CreditEntry(
                person_id=person_id,
                course_id=ev.course.course_id,
                session_id=ev.session_id,
                credit_year=year,
                credit_day=_main_day(caps.by_day, credit.day_seconds, now).isoformat(),
                category=ev.course.category,
                kind=ledger.REPLAY,
                minutes=float(credit.minutes),
                xueshi=caps.xueshi,
                policy_version=pol.version,
                computed_at=now,
                status=ledger.PENDING,
                note=note,
                evidence=evidence,
            ),
        )
        report.entries = 1
    log.info("credit settled replay person=%s recording=%s", person_id, recording_id)
    return report


async def _replay_entry_exists(s: AsyncSession, person_id: int, recording_id: str) -> bool:
    """Whether the person holds a replay entry of the recording's session (settled: nothing to do)."""
    session_id = await s.scalar(select(Recording.session_id).where(Recording.id == recording_id))
    if session_id is None:
        return False
    found = await s.scalar(
        select(CreditEntry.id).where(
            CreditEntry.person_id == person_id,
            CreditEntry.session_id == session_id,
            CreditEntry.kind == ledger.REPLAY,
        )
    )
    return found is not None


async def _near_end(
    s: AsyncSession, pairs: Iterable[tuple[int, str, float, bool]], policy: CreditPolicy
) -> list[tuple[int, str]]:
    """Of (person, recording, furthest position, idle), those due: the player reached the end of the media
    (a learner crossing the completion point is still watching: settling then would leave the rest of
    the media uncredited), or an idle player stopped past the completion point."""
    listed = list(pairs)
    if not listed:
        return []
    durations = dict(
        (
            await s.execute(
                select(Recording.id, Recording.duration_s).where(
                    Recording.id.in_({r for _p, r, _x, _idle in listed})
                )
            )
        ).all()
    )
    reach = policy.replay_completion_threshold
    slack = policy.seek_tolerance_s
    return sorted(
        {
            (p, r)
            for p, r, x, idle in listed
            if r in durations and (x >= durations[r] - slack or (idle and x >= reach * durations[r] - slack))
        }
    )


def replay_progress_hook(db: Database) -> Callable[[dict[tuple[int, str], float]], Awaitable[None]]:
    """The consumer's after-batch check: settle the pairs whose playback reached the completion point."""

    async def hook(positions: dict[tuple[int, str], float]) -> None:
        async with db.sessions.begin() as s:
            pol = await current_policy(s)
            due = await _near_end(s, ((p, r, x, False) for (p, r), x in positions.items()), pol)
        for person_id, recording_id in due:
            await settle_replay(db, person_id, recording_id, datetime.now(UTC), policy=pol)

    return hook


async def sweep_replays(db: Database, now: datetime, *, policy: CreditPolicy | None = None) -> Report:
    """Settle recently played replays that reached the end (what the after-batch check may have missed: a
    failure, a restart), or stopped past the completion point REPLAY_IDLE ago."""
    report = Report()
    async with db.sessions.begin() as s:
        pol = policy or await current_policy(s)
        rows = (
            await s.execute(
                select(
                    ReplayProgress.person_id,
                    ReplayProgress.recording_id,
                    ReplayProgress.position_s,
                    ReplayProgress.updated_at <= now - REPLAY_IDLE,
                ).where(ReplayProgress.updated_at >= now - REPLAY_SWEEP_HORIZON)
            )
        ).all()
        due = await _near_end(s, ((p, r, x, bool(idle)) for p, r, x, idle in rows), pol)
    for person_id, recording_id in due:
        report.add(await settle_replay(db, person_id, recording_id, now, policy=pol))
    return report


__all__ = [
    "Report",
    "apply_caps",
    "concurrent_s",
    "current_policy",
    "external_credit",
    "replay_progress_hook",
    "settle_due",
    "settle_external",
    "settle_external_due",
    "settle_replay",
    "settle_session",
    "subtract",
    "sweep_replays",
]


# -- external meetings (Tencent Meeting, DingTalk) ---------------------------------------------------------

EXTERNAL_SETTLED = "credit.external_settled"


def external_credit(
    rows: Sequence[store.ExternalRow], win: Span, policy: CreditPolicy
) -> tuple[engine.LiveCredit, bool]:
    """One person's credit from their external records, and whether it rests on totals only.

    Join/leave rows: present = union of the rows (several devices and rejoins are one presence, R7,
    fraud 13), an open join closing at the window's end (DOMAIN §6.3), clipped to the window (R8); then
    the live rule (R9 threshold). Totals only (DingTalk live): present = min(watch time, window length)
    (R21), laid from the window's start for the day it counts on, then the same rule."""
    timed = [r for r in rows if r.join_at is not None]
    if timed:
        spans: list[Span] = []
        for r in timed:
            assert r.join_at is not None
            end = r.leave_at if r.leave_at is not None else max(win[1], r.join_at)
            if end > r.join_at:
                spans.append((r.join_at, end))
        credit = engine.live_credit(spans, [win], win, [], policy)
        return dataclasses.replace(credit, kind=ledger.EXTERNAL), False
    watched = max((r.watched_s or 0.0 for r in rows), default=0.0)
    present_s = min(watched, max((win[1] - win[0]).total_seconds(), 0.0))
    laid = [(win[0], win[0] + timedelta(seconds=present_s))] if present_s > 0 else []
    credit = engine.live_credit(laid, [win], win, [], policy)
    return dataclasses.replace(credit, kind=ledger.EXTERNAL), True


def _external_up_to_date(entry: CreditEntry, record_ids: list[int], win: Span) -> bool:
    return entry.evidence.get("record_ids") == record_ids and entry.evidence.get("window") == _spans_json(
        [win]
    )


async def settle_external(
    db: Database, session_id: int, now: datetime, *, policy: CreditPolicy | None = None
) -> Report:
    """Credit of everyone matched in an external session's imported records, once its schedule has ended.

    Idempotent per person: a person whose standing `external` entry names the same records and window is
    left alone (importing the same meeting again changes nothing); one whose records or window changed
    since (a later pull closed an open join, a provider matched a row, a time correction) gets that
    entry reversed and a new one. R24 holds across paths: a session already credited through live,
    overflow HLS or its replay is recorded as "already credited" with 0 学时 (fraud 15)."""
    report = Report()
    async with db.sessions.begin() as s:
        pol = policy or await current_policy(s)
        ev = await store.external_evidence(s, session_id)
        session = await s.get(Session, session_id)
        if ev is None or session is None or max(session.scheduled_end, ev.window.span[1]) > now:
            return report
        entries = list(
            await s.scalars(
                select(CreditEntry)
                .where(CreditEntry.session_id == session_id, CreditEntry.kind == ledger.EXTERNAL)
                .order_by(CreditEntry.id)
            )
        )
        reversals = list(
            await s.scalars(
                select(CreditEntry).where(
                    CreditEntry.session_id == session_id,
                    CreditEntry.reversal_of_id.in_([e.id for e in entries] or [0]),
                )
            )
        )
    win = ev.window.span
    standing_by_person = {e.person_id: e for e in ledger.standing([*entries, *reversals])}
    stale = [
        e.id
        for pid, e in standing_by_person.items()
        if not _external_up_to_date(e, sorted(r.record_id for r in ev.people.get(pid, [])), win)
    ]
    for entry_id in stale:
        with contextlib.suppress(Conflict):  # reversed concurrently: the same end state
            await ledger.reverse(db, entry_id, None, "外部会议参会记录或课次时间已变更，重新结算", now)
    async with db.sessions.begin() as s:
        if s.get_bind().dialect.name == "postgresql":  # one settler per session at a time
            await s.execute(select(Session.id).where(Session.id == session_id).with_for_update())
        await _lock_people(s, ev.people)
        for person_id in sorted(ev.people):
            entries_made, raised = await _settle_person_external(s, ev, person_id, pol, now)
            report.entries += entries_made
            report.flags += raised
        uncredited: dict[str, int] = {}
        for r in ev.uncredited:
            why = "pstn" if r.is_pstn else r.match
            uncredited[why] = uncredited.get(why, 0) + 1
        prints = await store.external_fingerprints(s, session.scheduled_end, session_id)
        fingerprint = prints.get(session_id, "")
        s.add(
            AuditEntry(
                actor_person_id=None,
                action=EXTERNAL_SETTLED,
                subject_type="session",
                subject_id=str(session_id),
                detail={
                    "people": len(ev.people),
                    "entries": report.entries,
                    "reversed_entries": stale,
                    "uncredited_records": uncredited,
                    "policy_version": pol.version,
                    "window": _spans_json([win]),
                    "window_source": ev.window_source,
                    "correction_id": ev.window.correction_id,
                    "fingerprint": fingerprint,
                },
                at=now,
            )
        )
        report.sessions = 1
    log.info(
        "credit settled external session=%s entries=%d reversed=%d flags=%d policy=%d",
        session_id,
        report.entries,
        len(stale),
        report.flags,
        pol.version,
    )
    return report


async def _settle_person_external(
    s: AsyncSession, ev: store.ExternalEvidence, person_id: int, policy: CreditPolicy, now: datetime
) -> tuple[int, int]:
    rows = ev.people[person_id]
    record_ids = sorted(r.record_id for r in rows)
    win = ev.window.span
    year = engine.credit_year(win[0])
    entries = await ledger.person_entries(s, person_id, year)
    of_session = [e for e in entries if e.session_id == ev.session_id]
    if any(e.kind == ledger.EXTERNAL for e in ledger.standing(of_session)):
        return 0, 0  # up to date (stale ones were reversed before this transaction)
    credit, totals_only = external_credit(rows, win, policy)
    extra: list[Flag] = []
    low = [r.record_id for r in rows if r.trust == LOW]
    if low:
        # R21: a platform-reported total or an editable file: credited, pending, and on the review list.
        extra.append(
            Flag(
                "low_trust",
                MEDIUM,
                {"record_ids": low, "platform": ev.platform, "totals_only": totals_only},
            )
        )
    if not totals_only:
        others = ledger.credited_spans(entries, other_than_course=ev.course.course_id)
        overlap = engine.overlaps(credit.present, [span for _id, span in others])
        if overlap:
            recomputed = engine.live_credit(subtract(credit.present, overlap), [win], win, [], policy)
            credit = dataclasses.replace(recomputed, kind=ledger.EXTERNAL)
            extra.append(
                Flag(
                    "multi_course_overlap",
                    MEDIUM,
                    {
                        "overlap_s": engine.seconds(overlap),
                        "overlap": _spans_json(overlap),
                        "entry_ids": sorted({i for i, span in others if engine.intersect([span], overlap)}),
                    },
                )
            )
    credited_spans = [] if totals_only else list(credit.present)
    evidence: dict[str, Any] = {
        "figures": credit.to_dict(),
        "platform": ev.platform,
        "record_ids": record_ids,
        "batch_ids": sorted({r.batch_id for r in rows}),
        "trust": LOW if low else "high",
        "totals_only": totals_only,
        "watched_s": max((r.watched_s or 0.0 for r in rows), default=0.0) if totals_only else None,
        "policy_version": policy.version,
        "window": _spans_json([win]),
        "window_source": ev.window_source,
        "correction_id": ev.window.correction_id,
        "credited_spans": _spans_json(credited_spans),
    }
    _append_session_entry(
        s,
        ev.session_id,
        ev.course,
        person_id,
        credit,
        ledger.EXTERNAL,
        claim=credited_spans,
        entries=entries,
        of_session=of_session,
        year=year,
        window=win,
        evidence=evidence,
        extra=extra,
        policy=policy,
        now=now,
    )
    raised = await flags.raise_flags(
        s,
        extra,
        person_id=person_id,
        subject=f"external:{ev.session_id}",
        session_id=ev.session_id,
        course_id=ev.course.course_id,
        now=now,
    )
    return 1, raised


async def last_fingerprints(s: AsyncSession, action: str, session_ids: Iterable[int]) -> dict[str, str]:
    """Session id (as text) -> the fingerprint its latest `action` audit row recorded: what a settlement
    that re-runs on changed evidence (external records, offline attendance) compares against."""
    ids = [str(sid) for sid in session_ids]
    if not ids:
        return {}
    latest = (
        select(func.max(AuditEntry.id))
        .where(
            AuditEntry.action == action, AuditEntry.subject_type == "session", AuditEntry.subject_id.in_(ids)
        )
        .group_by(AuditEntry.subject_id)
    )
    rows = await s.scalars(select(AuditEntry).where(AuditEntry.id.in_(latest)))
    return {row.subject_id: str(row.detail.get("fingerprint", "")) for row in rows}


async def settle_external_due(db: Database, now: datetime, *, policy: CreditPolicy | None = None) -> Report:
    """Settle the external sessions whose schedule has ended and whose records (or time corrections)
    changed since their last settlement."""
    report = Report()
    async with db.sessions.begin() as s:
        pol = policy or await current_policy(s)
        prints = await store.external_fingerprints(s, now)
        last = await last_fingerprints(s, EXTERNAL_SETTLED, prints)
    for session_id, fingerprint in sorted(prints.items()):
        if last.get(str(session_id)) != fingerprint:
            report.add(await settle_external(db, session_id, now, policy=pol))
    return report
