"""Offline credit: once an offline session's window has ended, everyone with a closed sign-in (signed in
and out, or corrected by staff) gets a pending `offline` ledger entry: the union of their intervals
clipped to the window (R7, R8), at the policy's rate (R5), through the same rules as live and external
credit (catalog.credit.settle: R24 once per session and year, the course cap, R6 the Beijing day's cap,
R29 no instant credited twice across courses, subtracted and flagged `multi_course_overlap`).

A sign-in never closed earns nothing until staff correct it. Idempotent per person, as external meetings:
a person whose standing entry names the same attendance rows, intervals and window is left alone; one
whose attendance changed since (a late sign-out, a staff correction, a time correction of the session)
gets that entry reversed and a new one. `settle_offline_due` (called by settle_due, every settlement round)
settles the sessions whose attendance or window changed since their last settlement, by a fingerprint
kept in the audit row `credit.offline_settled`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.credit import engine, flags, ledger, policies, settle, store
from catalog.credit.evidence import MEDIUM, Flag, Span
from catalog.credit.policy import CreditPolicy
from catalog.db import Database
from catalog.domain import SessionKind
from catalog.models import AuditEntry, CreditEntry, OfflineAttendance, Person, Session, SessionTimeCorrection
from catalog.offline import rules
from infra.errors import Conflict

log = logging.getLogger(__name__)

SETTLED = "credit.offline_settled"
AUTO_REASON = "线下签到记录或课次时间已变更，重新结算"


@dataclass(frozen=True)
class Row:
    attendance_id: int
    span: Span
    corrected: bool


@dataclass(frozen=True)
class OfflineEvidence:
    session_id: int
    course: store.CourseInfo
    window: rules.Window
    people: dict[int, list[Row]]  # closed intervals of known people
    open_people: list[int]  # signed in and never out: nothing credited until corrected
    fingerprint: str


def _spans_json(spans: list[Span] | tuple[Span, ...]) -> list[list[str]]:
    return [[a.isoformat(), b.isoformat()] for a, b in spans]


def _fingerprint(rows: int, closed: int, last: datetime | None, win: rules.Window) -> str:
    """What the session's attendance and window look like now: settled again only when it changes."""
    return (
        f"{rows}|{closed}|{last.isoformat() if last else ''}"
        f"|{win.span[0].isoformat()}|{win.span[1].isoformat()}|c{win.correction_id or ''}"
    )


async def offline_evidence(s: AsyncSession, session_id: int) -> OfflineEvidence | None:
    """An offline session's attendance by person and its window; None for an unknown or other session."""
    found = await store.course_of_session(s, session_id)
    if found is None or found[0].kind != SessionKind.OFFLINE:
        return None
    session, course = found
    correction = await store.latest_correction(s, session_id)
    win = rules.window(
        (session.scheduled_start, session.scheduled_end),
        session.actual_start,
        session.actual_end,
        correction.span if correction is not None else None,
        correction.correction_id if correction is not None else None,
    )
    rows = list(
        await s.scalars(
            select(OfflineAttendance)
            .where(OfflineAttendance.session_id == session_id)
            .order_by(OfflineAttendance.signed_in_at, OfflineAttendance.id)
        )
    )
    wanted = {r.person_id for r in rows}
    known = set(await s.scalars(select(Person.id).where(Person.id.in_(wanted)))) if wanted else set()
    people: dict[int, list[Row]] = defaultdict(list)
    open_people: set[int] = set()
    for r in rows:
        if r.person_id not in known:
            continue  # kept, never credited (as other evidence of unknown people)
        if r.signed_out_at is None:
            open_people.add(r.person_id)
        else:
            people[r.person_id].append(
                Row(r.id, (r.signed_in_at, r.signed_out_at), r.corrected_at is not None)
            )
    closed = sum(1 for r in rows if r.signed_out_at is not None)
    last = max((r.updated_at for r in rows), default=None)
    return OfflineEvidence(
        session_id, course, win, dict(people), sorted(open_people), _fingerprint(len(rows), closed, last, win)
    )


def _evidence_of(rows: list[Row], win: rules.Window) -> dict[str, Any]:
    """What decides an entry is up to date: the rows, their intervals and the window."""
    return {
        "attendance_ids": [r.attendance_id for r in rows],
        "intervals": _spans_json([r.span for r in rows]),
        "window": _spans_json([win.span]),
    }


def _up_to_date(entry: CreditEntry, rows: list[Row], win: rules.Window) -> bool:
    now = _evidence_of(rows, win)
    return all(entry.evidence.get(k) == v for k, v in now.items())


async def settle_offline(
    db: Database,
    session_id: int,
    now: datetime,
    *,
    policy: CreditPolicy | None = None,
    actor: int | None = None,
    reason: str = AUTO_REASON,
) -> settle.Report:
    """Credit everyone with closed attendance in one offline session, once its window has ended; bring
    entries whose attendance changed since up to date (reversal + new entry). Nothing before the end."""
    report = settle.Report()
    async with db.sessions.begin() as s:
        pol = policy or await policies.current(s)
        ev = await offline_evidence(s, session_id)
        if ev is None or ev.window.span[1] > now:
            return report
        entries = list(
            await s.scalars(
                select(CreditEntry)
                .where(CreditEntry.session_id == session_id, CreditEntry.kind == ledger.OFFLINE)
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
    standing = {e.person_id: e for e in ledger.standing([*entries, *reversals])}
    stale = [e.id for pid, e in standing.items() if not _up_to_date(e, ev.people.get(pid, []), ev.window)]
    for entry_id in stale:
        with contextlib.suppress(Conflict):  # reversed concurrently: the same end state
            await ledger.reverse(db, entry_id, actor, reason, now)
    async with db.sessions.begin() as s:
        if s.get_bind().dialect.name == "postgresql":  # one settler per session at a time
            await s.execute(select(Session.id).where(Session.id == session_id).with_for_update())
        await settle._lock_people(s, ev.people)
        for person_id in sorted(ev.people):
            made, raised = await _settle_person(s, ev, person_id, pol, now)
            report.entries += made
            report.flags += raised
        s.add(
            AuditEntry(
                actor_person_id=actor,
                action=SETTLED,
                subject_type="session",
                subject_id=str(session_id),
                detail={
                    "people": len(ev.people),
                    "entries": report.entries,
                    "reversed_entries": stale,
                    "open_sign_ins": ev.open_people,
                    "policy_version": pol.version,
                    "window": _spans_json([ev.window.span]),
                    "window_source": ev.window.source,
                    "correction_id": ev.window.correction_id,
                    "fingerprint": ev.fingerprint,
                },
                at=now,
            )
        )
        report.sessions = 1
    log.info(
        "credit settled offline session=%s entries=%d reversed=%d open=%d flags=%d policy=%d",
        session_id,
        report.entries,
        len(stale),
        len(ev.open_people),
        report.flags,
        pol.version,
    )
    return report


async def _settle_person(
    s: AsyncSession, ev: OfflineEvidence, person_id: int, policy: CreditPolicy, now: datetime
) -> tuple[int, int]:
    rows = ev.people[person_id]
    win = ev.window.span
    year = engine.credit_year(win[0])
    entries = await ledger.person_entries(s, person_id, year)
    of_session = [e for e in entries if e.session_id == ev.session_id]
    if any(e.kind == ledger.OFFLINE for e in ledger.standing(of_session)):
        return 0, 0  # up to date (stale ones were reversed before this transaction)
    credit = rules.offline_credit([r.span for r in rows], win, policy)
    extra: list[Flag] = []
    # R29 (fraud 16): instants already credited in another course — a live lecture or a replay on the
    # phone while signed in here — are credited once, not twice.
    others = ledger.credited_spans(entries, other_than_course=ev.course.course_id)
    overlap = engine.overlaps(credit.present, [span for _id, span in others])
    if overlap:
        credit = rules.offline_credit(settle.subtract(credit.present, overlap), win, policy)
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
    evidence: dict[str, Any] = {
        "figures": credit.to_dict(),
        **_evidence_of(rows, ev.window),
        "corrected_attendance_ids": [r.attendance_id for r in rows if r.corrected],
        "policy_version": policy.version,
        "window_source": ev.window.source,
        "correction_id": ev.window.correction_id,
        "credited_spans": _spans_json(credit.present),
    }
    settle._append_session_entry(
        s,
        ev.session_id,
        ev.course,
        person_id,
        credit,
        ledger.OFFLINE,
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
        extra,
        person_id=person_id,
        subject=f"offline:{ev.session_id}",
        session_id=ev.session_id,
        course_id=ev.course.course_id,
        now=now,
    )
    return 1, raised


async def _due_fingerprints(s: AsyncSession, now: datetime) -> dict[int, str]:
    """Offline sessions with attendance whose window has ended by `now`, with their fingerprints: one
    grouped query over the attendance, the sessions' times and their corrections (never every row)."""
    counts = (
        await s.execute(
            select(
                OfflineAttendance.session_id,
                func.count(),
                func.count(OfflineAttendance.signed_out_at),
                func.max(OfflineAttendance.updated_at),
            )
            .join(Session, Session.id == OfflineAttendance.session_id)
            .where(Session.kind == SessionKind.OFFLINE.value)
            .group_by(OfflineAttendance.session_id)
        )
    ).all()
    if not counts:
        return {}
    ids = [row[0] for row in counts]
    sessions = {ss.id: ss for ss in await s.scalars(select(Session).where(Session.id.in_(ids)))}
    latest: dict[int, SessionTimeCorrection] = {}
    for c in await s.scalars(select(SessionTimeCorrection).where(SessionTimeCorrection.session_id.in_(ids))):
        kept = latest.get(c.session_id)
        if kept is None or (c.at, c.id) > (kept.at, kept.id):
            latest[c.session_id] = c
    out: dict[int, str] = {}
    for session_id, rows, closed, last in counts:
        ss = sessions[session_id]
        fix = latest.get(session_id)
        win = rules.window(
            (ss.scheduled_start, ss.scheduled_end),
            ss.actual_start,
            ss.actual_end,
            (fix.actual_start, fix.actual_end) if fix is not None else None,
            fix.id if fix is not None else None,
        )
        if win.span[1] <= now:
            out[session_id] = _fingerprint(int(rows), int(closed), last, win)
    return out


async def settle_offline_due(
    db: Database, now: datetime, *, policy: CreditPolicy | None = None
) -> settle.Report:
    """Settle the offline sessions whose window has ended and whose attendance (or window) changed since
    their last settlement."""
    report = settle.Report()
    async with db.sessions.begin() as s:
        pol = policy or await policies.current(s)
        due = await _due_fingerprints(s, now)
        last = await settle.last_fingerprints(s, SETTLED, due)
    for session_id, fingerprint in sorted(due.items()):
        if last.get(str(session_id)) != fingerprint:
            report.add(await settle_offline(db, session_id, now, policy=pol))
    return report
