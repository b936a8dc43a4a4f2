"""One pass over a credit year, provider by provider and session by session: the figures of the
supervision view (per session, with its reconciliation; per provider) and, for the export, every ledger
entry behind them. Both the snapshot (catalog.supervision.snapshot) and the export read the year through
this walk, so the file a bureau downloads and the figures it sees on the page are computed the same way.

Memory stays bounded by the largest session and the largest provider's set of people, never by the year:
sessions are read in chunks, their entries in (session, person) order, and a session's entries are
handed on before the next session's are read.

The figures, for a provider P and a credit year Y (Beijing):
- sessions: P's sessions held in Y (actual start in Y) or credited in Y (a ledger entry of year Y);
  `sessions_held` counts those with an actual start in Y;
- courses: P's courses with a listed session or an entry of Y;
- entries and 学时 by status (pending, registered, rejected, revoked): the ledger entries of year Y,
  reversals included with their (negative) 学时 under the status they carry, so the sums are net of
  reversals;
- attendees: distinct people with an entry of Y or attendance evidence in a listed session;
- approval latency: median and p90 of (first approve/reject decision − the entry's computed_at) over
  P's entries of Y that were decided (credit_decisions; reversals are never decided on their own);
- flags: fraud flags on the listed sessions, and those on P's courses without a session raised in Y;
- per session, its reconciliation (catalog.supervision.reconcile).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.credit import engine
from catalog.credit.policy import CreditPolicy
from catalog.models import (
    ClientSession,
    Course,
    CreditDecision,
    CreditEntry,
    CreditPolicyVersion,
    Enrollment,
    ExternalRecordRow,
    FraudFlag,
    HlsFetch,
    LiveInterval,
    Person,
    Session,
    SessionTimeCorrection,
)
from catalog.supervision import reconcile

CHUNK = 500  # sessions read at once (and the bound of an IN list)
STATUSES = ("pending", "registered", "rejected", "revoked")
MATCHED = ("linked", "phone", "manual")  # external records mapped to a person (R20)
ZERO = Decimal("0.00")


def year_bounds(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=engine.BEIJING), datetime(year + 1, 1, 1, tzinfo=engine.BEIJING)


@dataclass(frozen=True)
class Provider:
    id: int
    name: str
    type: str
    sector: str | None


@dataclass
class Sums:
    """Entries and net 学时 by status, and open/total flags."""

    entries: int = 0
    xs: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(STATUSES, ZERO))
    flags_open: int = 0
    flags_total: int = 0

    def add(self, other: Sums) -> None:
        self.entries += other.entries
        for k in STATUSES:
            self.xs[k] += other.xs[k]
        self.flags_open += other.flags_open
        self.flags_total += other.flags_total


@dataclass
class SessionFigures:
    session_id: int
    course_id: int
    title: str
    kind: str
    scheduled_start: datetime
    starts_at: datetime
    held: bool
    window: tuple[datetime, datetime] | None
    window_source: str  # correction, actual, schedule, none
    allowed_xs: Decimal | None
    max_person_xs: Decimal
    credited: int
    without_attendance: int
    attending: int
    attendees: int
    enrolled: int
    capacity: int | None
    sums: Sums
    reasons: list[str]

    @property
    def over(self) -> bool:
        return bool(self.reasons)


@dataclass
class ProviderFigures:
    provider: Provider
    courses: int = 0
    sessions: int = 0
    sessions_held: int = 0
    over_sessions: int = 0
    attendees: int = 0
    decided: int = 0
    latency_median_s: float | None = None
    latency_p90_s: float | None = None
    sums: Sums = field(default_factory=Sums)


@dataclass(frozen=True)
class Course_:
    id: int
    title: str
    category: str
    capacity: int | None


@dataclass(frozen=True)
class SessionBlock:
    """A listed session: its figures and its entries of the year (`entry_columns`, in person order)."""

    provider: Provider
    course: Course_
    figures: SessionFigures
    entries: Sequence[Row[Any]]
    people: frozenset[int]  # attendees: with an entry or with attendance evidence
    attending: frozenset[int]  # with attendance evidence


@dataclass(frozen=True)
class LooseBlock:
    """A course's entries of the year that name no session (e.g. a mentorship award)."""

    provider: Provider
    course: Course_
    entries: Sequence[Row[Any]]


@dataclass(frozen=True)
class ProviderDone:
    figures: ProviderFigures


Block = SessionBlock | LooseBlock | ProviderDone


def entry_columns(people: bool) -> list[Any]:
    cols: list[Any] = [
        CreditEntry.id,
        CreditEntry.person_id,
        CreditEntry.course_id,
        CreditEntry.session_id,
        CreditEntry.kind,
        CreditEntry.category,
        CreditEntry.minutes,
        CreditEntry.xueshi,
        CreditEntry.status,
        CreditEntry.policy_version,
        CreditEntry.computed_at,
        CreditEntry.decided_at,
        CreditEntry.reversal_of_id,
        CreditEntry.note,
    ]
    if people:
        cols += [Person.name.label("person_name"), Person.phone.label("person_phone")]
    return cols


async def policies(conn: AsyncConnection) -> dict[int, CreditPolicy]:
    """Every stored policy version, and version 0 (the built-in defaults)."""
    rows = await conn.execute(select(CreditPolicyVersion.version, CreditPolicyVersion.params))
    out = {0: CreditPolicy()}
    for version, params in rows:
        out[version] = CreditPolicy.from_dict(params, version)
    return out


async def count_entries(conn: AsyncConnection, year: int, provider_ids: Sequence[int] | None) -> int:
    """How many ledger entries the walk will hand on (for a progress bar)."""
    stmt = select(func.count()).select_from(CreditEntry).where(CreditEntry.credit_year == year)
    if provider_ids is not None:
        stmt = stmt.where(
            CreditEntry.course_id.in_(select(Course.id).where(Course.provider_org_id.in_(provider_ids)))
        )
    return int(await conn.scalar(stmt) or 0)


def attendance_pairs(session_ids: Sequence[int]) -> Any:
    """(session_id, person_id) of everyone with attendance evidence in the sessions: live delivery,
    overflow HLS segments, a replay client, a matched external record."""
    return union(
        select(LiveInterval.session_id, LiveInterval.person_id).where(
            LiveInterval.session_id.in_(session_ids)
        ),
        select(HlsFetch.session_id, HlsFetch.person_id).where(HlsFetch.session_id.in_(session_ids)),
        select(ClientSession.session_id, ClientSession.person_id).where(
            ClientSession.session_id.in_(session_ids), ClientSession.kind == "replay"
        ),
        select(ExternalRecordRow.session_id, ExternalRecordRow.person_id).where(
            ExternalRecordRow.session_id.in_(session_ids),
            ExternalRecordRow.person_id.is_not(None),
            ExternalRecordRow.match.in_(MATCHED),
        ),
    )


def session_window(
    kind: str,
    scheduled: tuple[datetime, datetime],
    actual: tuple[datetime | None, datetime | None],
    correction: tuple[datetime, datetime] | None,
) -> tuple[tuple[datetime, datetime] | None, str]:
    """What settlement clips a session's credit to (R8): the latest audited correction, else the server's
    actual start..end, else for an external meeting its schedule (which caps what its records say)."""
    if correction is not None:
        return correction, "correction"
    if actual[0] is not None and actual[1] is not None:
        return (actual[0], actual[1]), "actual"
    if kind == "external":
        return scheduled, "schedule"
    return None, "none"


def fold_entries(
    entries: Sequence[Row[Any]], attending: set[int]
) -> tuple[Sums, set[int], Decimal, int, int, set[int]]:
    """Sums by status, the people with entries, the largest net 学时 of one person, how many people are
    credited (net > 0), how many of them lack attendance evidence, and the policy versions named. The
    entries come in person order."""
    sums = Sums()
    people: set[int] = set()
    versions: set[int] = set()
    credited_people: list[int] = []
    xs = sums.xs
    nets: list[Decimal] = []
    current: int | None = None
    for e in entries:
        if e.person_id != current:
            current = e.person_id
            people.add(current)
            nets.append(ZERO)
            credited_people.append(current)
        nets[-1] += e.xueshi
        xs[e.status] = xs.get(e.status, ZERO) + e.xueshi
        versions.add(e.policy_version)
    best = max(nets, default=ZERO)
    credited = [pid for pid, net in zip(credited_people, nets, strict=True) if net > 0]
    without = sum(1 for pid in credited if pid not in attending)
    sums.entries = len(entries)
    return sums, people, best, len(credited), without, versions


async def _by_session(result: Any, ids: Sequence[int]) -> AsyncIterator[tuple[int, list[Row[Any]]]]:
    """(session id, its entries) for every id of `ids` (ascending), from entries streamed in session order;
    a session without entries comes with none."""
    pending = iter(ids)
    current: int | None = None
    rows: list[Row[Any]] = []
    async for partition in result.partitions(1000):
        for e in partition:
            if e.session_id != current:
                if current is not None:
                    for sid in pending:
                        if sid == current:
                            yield sid, rows
                            break
                        yield sid, []
                current, rows = e.session_id, []
            rows.append(e)
    if current is not None:
        for sid in pending:
            if sid == current:
                yield sid, rows
                break
            yield sid, []
    for sid in pending:
        yield sid, []


async def _latencies(conn: AsyncConnection, year: int, courses: Any) -> list[float]:
    first = func.min(CreditDecision.decided_at)
    rows = await conn.execute(
        select(CreditEntry.computed_at, first)
        .join(CreditDecision, CreditDecision.entry_id == CreditEntry.id)
        .where(
            CreditEntry.course_id.in_(courses),
            CreditEntry.credit_year == year,
            CreditEntry.kind != "reversal",
            CreditDecision.action.in_(("approve", "reject")),
        )
        .group_by(CreditEntry.id, CreditEntry.computed_at)
    )
    return sorted(max(0.0, (decided - computed).total_seconds()) for computed, decided in rows)


def _flag_counts(rows: Any) -> dict[Any, tuple[int, int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for key, status, n in rows:
        out[key][1] += int(n)
        if status == "open":
            out[key][0] += int(n)
    return {k: (v[0], v[1]) for k, v in out.items()}


async def walk(
    conn: AsyncConnection,
    year: int,
    providers: Sequence[Provider],
    versions: Mapping[int, CreditPolicy],
    current: CreditPolicy,
    *,
    people: bool,
    session_ids: Sequence[int] | None = None,
) -> AsyncGenerator[Block, None]:
    """Blocks for each provider in turn (its sessions in id order, then its entries without a
    session, then its figures). `people`: the entries carry the person's name and phone (the export);
    `session_ids`: only these sessions (one session's drill-down), figures for them alone."""
    y0, y1 = year_bounds(year)
    for provider in providers:
        courses_q = select(Course.id).where(Course.provider_org_id == provider.id).scalar_subquery()
        courses = {
            r.id: Course_(r.id, r.title, r.category, r.capacity)
            for r in await conn.execute(
                select(Course.id, Course.title, Course.category, Course.capacity).where(
                    Course.provider_org_id == provider.id
                )
            )
        }
        figures = ProviderFigures(provider)
        if not courses:
            yield ProviderDone(figures)
            continue
        enrolled = {
            cid: int(n)
            for cid, n in await conn.execute(
                select(Enrollment.course_id, func.count(func.distinct(Enrollment.person_id)))
                .where(Enrollment.course_id.in_(courses_q))
                .group_by(Enrollment.course_id)
            )
        }
        listed: ColumnElement[bool] = Session.course_id.in_(courses_q)
        if session_ids is not None:
            listed = and_(listed, Session.id.in_(session_ids))
        else:
            held_in_year = and_(Session.actual_start >= y0, Session.actual_start < y1)
            credited_in_year = exists().where(
                CreditEntry.session_id == Session.id, CreditEntry.credit_year == year
            )
            listed = and_(listed, or_(held_in_year, credited_in_year))
        sessions = (
            await conn.execute(
                select(
                    Session.id,
                    Session.course_id,
                    Session.title,
                    Session.kind,
                    Session.scheduled_start,
                    Session.scheduled_end,
                    Session.actual_start,
                    Session.actual_end,
                )
                .where(listed)
                .order_by(Session.id)  # the order their entries are read in
            )
        ).all()
        everyone: set[int] = set()
        used_courses: set[int] = set()
        for at in range(0, len(sessions), CHUNK):
            chunk = sessions[at : at + CHUNK]
            ids = [s.id for s in chunk]
            by_id = {s.id: s for s in chunk}
            evidence: dict[int, set[int]] = defaultdict(set)
            for sid, pid in await conn.execute(attendance_pairs(ids)):
                evidence[sid].add(pid)
            corrections: dict[int, tuple[datetime, datetime]] = {}
            for sid, start, end in await conn.execute(
                select(
                    SessionTimeCorrection.session_id,
                    SessionTimeCorrection.actual_start,
                    SessionTimeCorrection.actual_end,
                )
                .where(SessionTimeCorrection.session_id.in_(ids))
                .order_by(SessionTimeCorrection.at, SessionTimeCorrection.id)
            ):
                corrections[sid] = (start, end)  # the latest wins
            flags = _flag_counts(
                await conn.execute(
                    select(FraudFlag.session_id, FraudFlag.status, func.count())
                    .where(FraudFlag.session_id.in_(ids))
                    .group_by(FraudFlag.session_id, FraudFlag.status)
                )
            )
            stmt = select(*entry_columns(people)).where(
                CreditEntry.session_id.in_(ids), CreditEntry.credit_year == year
            )
            if people:
                stmt = stmt.outerjoin(Person, Person.id == CreditEntry.person_id)
            result = await conn.stream(
                stmt.order_by(CreditEntry.session_id, CreditEntry.person_id, CreditEntry.id)
            )
            async for sid, entries in _by_session(result, ids):
                block = _session_block(
                    provider, courses, by_id[sid], entries, evidence.get(sid, set()), corrections.get(sid),
                    flags.get(sid, (0, 0)), enrolled, versions, current, y0, y1,
                )  # fmt: skip
                figures.sessions += 1
                figures.sessions_held += int(block.figures.held)
                figures.over_sessions += int(block.figures.over)
                figures.sums.add(block.figures.sums)
                used_courses.add(block.course.id)
                everyone |= block.people
                yield block
        if session_ids is None:
            loose = select(*entry_columns(people)).where(
                CreditEntry.course_id.in_(courses_q),
                CreditEntry.credit_year == year,
                CreditEntry.session_id.is_(None),
            )
            if people:
                loose = loose.outerjoin(Person, Person.id == CreditEntry.person_id)
            rows = (
                await conn.execute(
                    loose.order_by(CreditEntry.course_id, CreditEntry.person_id, CreditEntry.id)
                )
            ).all()
            by_course: dict[int, list[Row[Any]]] = defaultdict(list)
            for e in rows:
                by_course[e.course_id].append(e)
            for cid, entries in by_course.items():
                sums, persons, *_ = fold_entries(entries, set())
                figures.sums.add(sums)
                everyone |= persons
                used_courses.add(cid)
                yield LooseBlock(provider, courses[cid], entries)
            loose_flags = _flag_counts(
                await conn.execute(
                    select(FraudFlag.course_id, FraudFlag.status, func.count())
                    .where(
                        FraudFlag.course_id.in_(courses_q),
                        FraudFlag.session_id.is_(None),
                        FraudFlag.created_at >= y0,
                        FraudFlag.created_at < y1,
                    )
                    .group_by(FraudFlag.course_id, FraudFlag.status)
                )
            )
            for n_open, n_total in loose_flags.values():
                figures.sums.flags_open += n_open
                figures.sums.flags_total += n_total
            latencies = await _latencies(conn, year, courses_q)
            figures.decided = len(latencies)
            figures.latency_median_s = reconcile.percentile(latencies, 50)
            figures.latency_p90_s = reconcile.percentile(latencies, 90)
        figures.attendees = len(everyone)
        figures.courses = len(used_courses)
        yield ProviderDone(figures)


def _session_block(
    provider: Provider,
    courses: Mapping[int, Course_],
    s: Any,
    entries: list[Row[Any]],
    attending: set[int],
    correction: tuple[datetime, datetime] | None,
    flags: tuple[int, int],
    enrolled: Mapping[int, int],
    versions: Mapping[int, CreditPolicy],
    current: CreditPolicy,
    y0: datetime,
    y1: datetime,
) -> SessionBlock:
    course = courses[s.course_id]
    sums, persons, best, credited, without, named = fold_entries(entries, attending)
    sums.flags_open, sums.flags_total = flags
    window, source = session_window(
        s.kind, (s.scheduled_start, s.scheduled_end), (s.actual_start, s.actual_end), correction
    )
    facts = reconcile.SessionFacts(
        window=window,
        policies=tuple(versions[v] for v in sorted(named) if v in versions) or (current,),
        max_person_xs=best,
        credited=credited,
        without_attendance=without,
        enrolled=enrolled.get(s.course_id, 0),
        capacity=course.capacity,
    )
    figures = SessionFigures(
        session_id=s.id,
        course_id=s.course_id,
        title=s.title,
        kind=s.kind,
        scheduled_start=s.scheduled_start,
        starts_at=window[0] if window else s.scheduled_start,
        held=s.actual_start is not None and y0 <= s.actual_start < y1,
        window=window,
        window_source=source,
        allowed_xs=reconcile.allowed(facts),
        max_person_xs=best,
        credited=credited,
        without_attendance=without,
        attending=len(attending),
        attendees=len(persons | attending),
        enrolled=facts.enrolled,
        capacity=course.capacity,
        sums=sums,
        reasons=reconcile.reasons(facts),
    )
    return SessionBlock(
        provider, course, figures, entries, frozenset(persons | attending), frozenset(attending)
    )
