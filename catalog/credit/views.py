"""What people read of credit: a learner's year (我的学时) against the requirement, and a provider's
per-session table of who attended how long, with the evidence behind each figure. Read models only: the
ledger is written by catalog.credit.settle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import queries
from catalog.courseware import credit as courseware_credit
from catalog.credit import engine, store
from catalog.credit.evidence import Beat, Span
from catalog.credit.policies import by_version, current
from catalog.credit.policy import CreditPolicy
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, mask_phone
from catalog.intervals import closed
from catalog.models import (
    ClientSession,
    Course,
    CreditDecision,
    CreditEntry,
    Enrollment,
    FraudFlag,
    Heartbeat,
    HlsFetch,
    LiveInterval,
    OfflineAttendance,
    Person,
    PresenceAnswer,
    PresenceCheckRecord,
    Recording,
    Session,
)
from infra.errors import Forbidden, NotFound

# -- the figures an entry's evidence carries (engine.LiveCredit / ReplayCredit.to_dict) ----------------


def figures(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The figures shown for an entry, read from its evidence summary wherever settlement put it (top
    level, or under "figures"/"summary"); absent figures are None."""
    source: Mapping[str, Any] = evidence
    for key in ("figures", "summary"):
        inner = evidence.get(key)
        if isinstance(inner, Mapping) and ("checks_total" in inner or "present_s" in inner):
            source = inner
    return {
        "correction_id": evidence.get("correction_id"),
    } | {
        name: source.get(name)
        for name in (
            "present_s",
            "window_s",
            "ratio",
            "coverage",
            "covered_s",
            "duration_s",
            "checks_total",
            "checks_answered",
            "fraction",
        )
    }


def _entry_view(e: CreditEntry, session_title: str | None) -> dict[str, Any]:
    return {
        "id": e.id,
        "session_id": e.session_id,
        "session_title": session_title,
        "kind": e.kind,
        "minutes": round(float(e.minutes), 1),
        "xueshi": str(e.xueshi),
        "status": e.status,
        "policy_version": e.policy_version,
        "credit_day": e.credit_day,
        "computed_at": e.computed_at.isoformat(),
        "reversal_of_id": e.reversal_of_id,
        "note": e.note,
        **figures(e.evidence or {}),
    }


# Credit of no course (catalog.mentorship's fixed award) is listed as one group under this title.
NO_COURSE_TITLE = "师承带徒"

# -- 我的学时 -------------------------------------------------------------------------------------------


def _year_bounds(year: int) -> Span:
    start = datetime(year, 1, 1, tzinfo=engine.BEIJING)
    return start, datetime(year + 1, 1, 1, tzinfo=engine.BEIJING)


async def my_credits(db: Database, caller: Caller, year: int, now: datetime) -> dict[str, Any]:
    """The caller's credit year: totals by category against the policy's requirement (only registered
    credit counts, R23; pending shown apart), entries per course with their status and the latest
    decision on each (a rejection's or revocation's reason), and sessions attended without credit yet
    with the reason."""
    async with db.sessions.begin() as s:
        policy = await current(s)
        rows = (
            await s.execute(
                select(CreditEntry, Course.title, Course.credit_hours, Session.title)
                # Outer: credit of no course (a mentorship's award) is listed too, as its own group.
                .outerjoin(Course, Course.id == CreditEntry.course_id)
                .outerjoin(Session, Session.id == CreditEntry.session_id)
                .where(CreditEntry.person_id == caller.person_id, CreditEntry.credit_year == year)
                .order_by(CreditEntry.computed_at, CreditEntry.id)
            )
        ).all()
        waiting = await _uncredited(s, caller.person_id, year, policy, now, {r[0].session_id for r in rows})
        versions = {v: await by_version(s, v) for v in {r[0].policy_version for r in rows}}
        revoked = await courseware_credit.marks(s, {r[0].session_id for r in rows})
        decisions = await _latest_decisions(s, [r[0].id for r in rows])
    reversed_ids = {e.reversal_of_id for e, *_ in rows if e.reversal_of_id is not None}
    summary = engine.annual_summary([(e.category, e.status, e.xueshi) for e, *_ in rows], policy)
    courses: dict[int | None, dict[str, Any]] = {}
    for e, course_title, credit_hours, session_title in rows:
        c = courses.setdefault(
            e.course_id,
            {
                "course_id": e.course_id,
                "title": course_title if e.course_id is not None else NO_COURSE_TITLE,
                "category": e.category,
                "credit_hours": str(credit_hours) if credit_hours is not None else None,
                "pending_xueshi": Decimal(0),
                "registered_xueshi": Decimal(0),
                "entries": [],
            },
        )
        if e.status == engine.PENDING:
            c["pending_xueshi"] += e.xueshi
        elif e.status == engine.REGISTERED:
            c["registered_xueshi"] += e.xueshi
        c["entries"].append(
            _entry_view(e, session_title)
            | {
                "decided_at": e.decided_at.isoformat() if e.decided_at else None,
                "decision": decisions.get(e.id),
                "reversed": e.id in reversed_ids,
            }
            | revoked.get(e.session_id or 0, {})
        )
        if e.xueshi == 0 and e.kind != "reversal":
            # Assessed and credited nothing: the learner is told why, beside the sessions still waiting.
            waiting.append(
                {
                    "session_id": e.session_id,
                    "session_title": session_title or ("师承带徒" if e.course_id is None else "课程回放"),
                    "course_id": e.course_id,
                    "course_title": course_title if e.course_id is not None else NO_COURSE_TITLE,
                    "scheduled_start": None,
                    **_zero_reason(e, versions[e.policy_version]),
                }
            )
    for c in courses.values():
        c["pending_xueshi"] = str(c["pending_xueshi"])
        c["registered_xueshi"] = str(c["registered_xueshi"])
    return {
        "year": year,
        "policy_version": policy.version,
        "summary": summary.to_dict() | {"met": summary.met},
        "courses": list(courses.values()),
        "uncredited": waiting,
    }


async def _latest_decisions(s: AsyncSession, entry_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The latest decision on each entry (approve, reject, revoke, override): what the learner is told,
    a rejection's or a revocation's reason included."""
    if not entry_ids:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for d in await s.scalars(
        select(CreditDecision).where(CreditDecision.entry_id.in_(entry_ids)).order_by(CreditDecision.id)
    ):
        out[d.entry_id] = {
            "action": d.action,
            "reason": d.reason,
            "decided_as": d.decided_as,
            "decided_at": d.decided_at.isoformat(),
        }
    return out


async def _uncredited(
    s: AsyncSession, person_id: int, year: int, policy: CreditPolicy, now: datetime, credited: set[int | None]
) -> list[dict[str, Any]]:
    """Sessions of the year the person attended (live, overflow HLS, replay or signed in at an offline
    venue) with no ledger entry."""
    start, end = _year_bounds(year)
    live = select(LiveInterval.session_id).where(LiveInterval.person_id == person_id)
    hls = select(HlsFetch.session_id).where(HlsFetch.person_id == person_id)
    replay = select(ClientSession.session_id).where(
        ClientSession.person_id == person_id, ClientSession.session_id.is_not(None)
    )
    venue = select(OfflineAttendance.session_id).where(OfflineAttendance.person_id == person_id)
    attended = (
        await s.execute(
            select(Session, Course.title)
            .join(Course, Course.id == Session.course_id)
            .where(
                Session.id.in_(live.union(hls, replay, venue).scalar_subquery()),
                Session.scheduled_start >= start,
                Session.scheduled_start < end,
            )
            .order_by(Session.scheduled_start)
        )
    ).all()
    out = []
    for session, course_title in attended:
        if session.id in credited:
            continue
        if session.kind == "offline":
            signed = (
                await s.execute(
                    select(OfflineAttendance.signed_in_at, OfflineAttendance.signed_out_at).where(
                        OfflineAttendance.session_id == session.id, OfflineAttendance.person_id == person_id
                    )
                )
            ).all()
            out.append(_attended(session, course_title, _venue_reason(session, signed, now)))
            continue
        intervals = (
            await s.execute(
                select(LiveInterval.joined_at, LiveInterval.left_at).where(
                    LiveInterval.session_id == session.id,
                    LiveInterval.person_id == person_id,
                    LiveInterval.joined_at.is_not(None),
                )
            )
        ).all()
        out.append(_attended(session, course_title, _waiting_reason(session, intervals, policy, now)))
    return out


def _attended(session: Session, course_title: str, reason: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "session_title": session.title,
        "course_id": session.course_id,
        "course_title": course_title,
        "scheduled_start": session.scheduled_start.isoformat(),
        **reason,
    }


def _venue_reason(session: Session, signed: Sequence[Any], now: datetime) -> dict[str, Any]:
    """Why an offline class signed into has no credit yet: still signed in, a missed sign-out (which the
    provider's administrators correct), or signed out and waiting for the class to end and be settled."""
    if any(out is None for _, out in signed):
        if now < session.scheduled_end:
            return {"reason": "signed_in", "reason_text": "已现场签到，离场时请扫码签退"}
        return {"reason": "no_sign_out", "reason_text": "未签退，暂无学时：请联系培训机构补录签退时间"}
    return {"reason": "settling", "reason_text": "已签退，课次结束后结算"}


def _zero_reason(e: CreditEntry, policy: CreditPolicy) -> dict[str, Any]:
    """Why an assessed entry credits nothing, from its evidence and the policy version it names."""
    f = figures(e.evidence or {})
    source = e.evidence.get("figures", {}) if isinstance(e.evidence, dict) else {}
    if e.note == "already credited" and e.kind == "mentorship":
        return {"reason": "already_credited", "reason_text": "本年度已计入一次师承带徒学时（每年只计一次）"}
    if e.note == "already credited":
        return {"reason": "already_credited", "reason_text": "本课次已通过其他方式计入学时（每年只计一次）"}
    if source.get("threshold_met") is False and f["ratio"] is not None:
        need = round(100 * policy.live_presence_threshold)
        return {
            "reason": "below_threshold",
            "reason_text": f"出勤比例不足{need}%（本次约{round(100 * float(f['ratio']))}%）",
            "presence_ratio": round(float(f["ratio"]), 3),
        }
    if source.get("complete") is False:
        need = round(100 * policy.replay_completion_threshold)
        return {"reason": "replay_incomplete", "reason_text": f"回放观看不足{need}%"}
    if f["fraction"] == 0:
        return {"reason": "checks", "reason_text": "签到应答不足，未计学时"}
    if e.evidence.get("course_cap_applied") or e.evidence.get("daily_cap_cut"):
        return {"reason": "capped", "reason_text": "已达每日或课程学时上限"}
    return {"reason": "no_credit", "reason_text": "未计学时：出勤或签到未达要求"}


def _waiting_reason(
    session: Session, intervals: Sequence[Any], policy: CreditPolicy, now: datetime
) -> dict[str, Any]:
    """Why a session attended has no credit yet, in words a learner reads."""
    if session.actual_end is None:
        if session.actual_start is None and session.scheduled_end < now:
            return {"reason": "not_held", "reason_text": "课次未按计划开播，暂无学时"}
        return {"reason": "in_progress", "reason_text": "课次进行中，结束后结算"}
    if now < session.actual_end + timedelta(seconds=2 * policy.heartbeat_period_s + 60):
        return {"reason": "settling", "reason_text": "课次结束后结算，请稍候"}
    window_start = session.actual_start or session.scheduled_start
    window_s = (session.actual_end - window_start).total_seconds()
    spans = [i for j, left in intervals if (i := closed(j, left, session.actual_end, now)) is not None]
    present = engine.seconds(engine.clip(spans, (window_start, session.actual_end)))
    if spans and window_s > 0 and present / window_s < policy.live_presence_threshold:
        share = round(100 * present / window_s)
        need = round(100 * policy.live_presence_threshold)
        return {
            "reason": "below_threshold",
            "reason_text": f"出勤比例不足{need}%（本次约{share}%）",
            "presence_ratio": round(present / window_s, 3),
        }
    if not spans:
        return {"reason": "replay_incomplete", "reason_text": "回放尚未看完，看完后计入学时"}
    return {"reason": "no_credit", "reason_text": "未计学时：出勤或签到未达要求"}


# -- the provider's per-session table --------------------------------------------------------------------


def _require_reader(course: Course, caller: Caller) -> None:
    """The course's provider administrators, the bureau and admins; a draft is not found by others."""
    if caller.reads_provider(course.provider_org_id):
        return
    if course.status == CourseStatus.DRAFT:
        raise NotFound(f"course {course.id} not found", field="course_id")
    raise Forbidden("only the provider's administrators see attendance")


async def session_credits(db: Database, caller: Caller, session_id: int, now: datetime) -> dict[str, Any]:
    """Per learner of one session: live present time (union of delivery intervals in the session's
    window), overflow HLS time (visible heartbeats), replay clients, checks answered of those issued,
    credited minutes and 学时 with their status, and open flags."""
    async with db.sessions.begin() as s:
        session = await queries.session_or_404(s, session_id)
        _require_reader(session.course, caller)
        policy = await current(s)
        # What settlement clips to (R8): the latest audited correction, else the server's own times (up to
        # now while live); before the session started there is no window yet.
        correction = await store.latest_correction(s, session.id)
        window: Span | None = correction.span if correction is not None else None
        if window is None and session.actual_start is not None:
            window = (session.actual_start, session.actual_end or now)
        if window is not None and window[1] <= window[0]:
            window = None
        live = await _live_spans(s, session, now)
        hls = await _hls_spans(s, session.id, policy, window)
        replay_clients = await _replay_clients(s, session.id)
        issued, answered = await _checks(s, session.id)
        entries = (
            await s.scalars(
                select(CreditEntry).where(CreditEntry.session_id == session.id).order_by(CreditEntry.id)
            )
        ).all()
        flags = (
            await s.execute(
                select(FraudFlag.person_id, FraudFlag.code, FraudFlag.status).where(
                    FraudFlag.session_id == session.id
                )
            )
        ).all()
        enrolled = set(
            (
                await s.scalars(select(Enrollment.person_id).where(Enrollment.course_id == session.course_id))
            ).all()
        )
        people = set(live) | set(hls) | set(replay_clients) | {e.person_id for e in entries} | set(answered)
        people &= enrolled | {e.person_id for e in entries}  # the course's learners, not its staff previewing
        contacts = {
            pid: (name, phone)
            for pid, name, phone in await s.execute(
                select(Person.id, Person.name, Person.phone).where(Person.id.in_(people))
            )
        }
    by_person: dict[int, list[CreditEntry]] = defaultdict(list)
    for e in entries:
        by_person[e.person_id].append(e)
    flags_of: dict[int, list[dict[str, str]]] = defaultdict(list)
    for pid, code, status in flags:
        flags_of[pid].append({"code": code, "status": status})
    rows: list[dict[str, Any]] = []
    for pid in people:
        name, phone = contacts.get(pid, ("", ""))
        mine = by_person[pid]
        live_s = (
            engine.seconds(engine.clip(live.get(pid, []), window))
            if window
            else engine.seconds(live.get(pid, []))
        )
        rows.append(
            {
                "person_id": pid,
                "name": name,
                "phone": mask_phone(phone),
                "live_present_s": round(live_s, 1),
                "hls_present_s": round(engine.seconds(hls.get(pid, [])), 1),
                "replay_clients": replay_clients.get(pid, 0),
                "checks_issued": issued,
                "checks_answered": answered.get(pid, 0),
                "credited_minutes": round(sum(float(e.minutes) for e in mine), 1),
                "xueshi": str(sum((e.xueshi for e in mine), Decimal(0))),
                "status": _status(mine),
                "policy_versions": sorted({e.policy_version for e in mine}),
                "entries": [_entry_view(e, session.title) for e in mine],
                "flags": flags_of[pid],
            }
        )
    rows.sort(key=lambda r: (-float(r["live_present_s"]) - float(r["hls_present_s"]), int(r["person_id"])))
    return {
        "session_id": session.id,
        "session_title": session.title,
        "course_id": session.course_id,
        "course_title": session.course.title,
        "window": [window[0].isoformat(), window[1].isoformat()] if window else None,
        "window_s": round((window[1] - window[0]).total_seconds(), 1) if window else None,
        "policy_version": policy.version,
        "learners": rows,
    }


def _status(entries: Sequence[CreditEntry]) -> str:
    """none (no entry), pending, registered, or mixed."""
    statuses = {e.status for e in entries if e.kind != "reversal"}
    if not statuses:
        return "none"
    return statuses.pop() if len(statuses) == 1 else "mixed"


async def _live_spans(s: AsyncSession, session: Session, now: datetime) -> dict[int, list[Span]]:
    rows = await s.execute(
        select(LiveInterval.person_id, LiveInterval.joined_at, LiveInterval.left_at).where(
            LiveInterval.session_id == session.id, LiveInterval.joined_at.is_not(None)
        )
    )
    out: dict[int, list[Span]] = defaultdict(list)
    for pid, joined, left in rows:
        assert joined is not None  # selected so
        span = closed(joined, left, session.actual_end, now)
        if span is not None:
            out[pid].append(span)
    return out


async def _hls_spans(
    s: AsyncSession, session_id: int, policy: CreditPolicy, window: Span | None
) -> dict[int, list[Span]]:
    rows = await s.execute(
        select(
            Heartbeat.person_id,
            Heartbeat.client_id,
            Heartbeat.seq,
            Heartbeat.at,
            Heartbeat.position_s,
            Heartbeat.rate,
            Heartbeat.visible,
        )
        .where(Heartbeat.session_id == session_id, Heartbeat.kind == "hls")
        .order_by(Heartbeat.client_id, Heartbeat.seq)
    )
    beats: dict[int, list[Beat]] = defaultdict(list)
    for pid, client_id, seq, at, position_s, rate, visible in rows:
        beats[pid].append(Beat(client_id, seq, at, position_s, rate, visible))
    return {pid: engine.beat_spans(b, policy.heartbeat_period_s, window=window) for pid, b in beats.items()}


async def _replay_clients(s: AsyncSession, session_id: int) -> dict[int, int]:
    rows = await s.execute(
        select(ClientSession.person_id, func.count())
        .outerjoin(Recording, Recording.id == ClientSession.recording_id)
        .where(
            ClientSession.kind == "replay",
            (ClientSession.session_id == session_id) | (Recording.session_id == session_id),
        )
        .group_by(ClientSession.person_id)
    )
    return {pid: int(n) for pid, n in rows}


async def _checks(s: AsyncSession, session_id: int) -> tuple[int, dict[int, int]]:
    """Live checks issued in the session, and per person how many they answered."""
    ids = select(PresenceCheckRecord.id).where(
        PresenceCheckRecord.session_id == session_id, PresenceCheckRecord.kind == "live"
    )
    issued = await s.scalar(select(func.count()).select_from(ids.subquery())) or 0
    rows = await s.execute(
        select(PresenceAnswer.person_id, func.count())
        .where(PresenceAnswer.check_id.in_(ids.scalar_subquery()))
        .group_by(PresenceAnswer.person_id)
    )
    return int(issued), {pid: int(n) for pid, n in rows}
