"""One pass over a credit year, provider by provider and session by session: the figures of the
supervision view (per session, with its reconciliation; per provider) and, for the export, every ledger
entry behind them. Both the snapshot (catalog.supervision.snapshot) and the export read the year through
this walk, so the file a bureau downloads and the figures it sees on the page are computed the same way.

Memory stays bounded by two chunks of sessions (CHUNK each: the one handed on, the one read ahead) and the
largest provider's set of people, never by the year: a chunk's entries are handed on, session by session,
before the chunk after next is read.

The figures, for a provider P and a credit year Y (Beijing):
- sessions: P's sessions held in Y or credited in Y (a ledger entry of year Y); `sessions_held` counts
  those held in Y: started on the server in Y, or, for an offline session or an external meeting (never
  started on the server), scheduled in Y with someone's attendance on record (was_held);
- courses: P's courses with a listed session or an entry of Y;
- entries and 学时 by status (pending, registered, rejected, revoked): the ledger entries of year Y,
  reversals included with their (negative) 学时 under the status they carry, so the sums are net of
  reversals;
- attendees: distinct people with an entry of Y or attendance evidence in a listed session;
- approval latency: median and p90 (interpolated) of (the approve/reject decision − the entry's
  computed_at) over P's entries of Y that were decided (credit_decisions: an entry leaves `pending` once;
  reversals are never decided on their own; a later revocation or override is not latency);
- flags: fraud flags on the listed sessions, and those on P's courses without a session raised in Y;
- per session, its reconciliation (catalog.supervision.reconcile).

Entries come as plain tuples (`E_*` positions) of ints, floats and strings, without the models'
per-value conversions.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Numeric,
    and_,
    cast,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union,
)
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
    OfflineAttendance,
    Person,
    Session,
    SessionTimeCorrection,
)
from catalog.supervision import reconcile

_T = TypeVar("_T")

OFF_SERVER_KINDS = ("external", "offline")  # sessions held elsewhere: never started on the server
CHUNK = 200  # sessions read at once (their entries are held together; the bound of an IN list)
BATCH = 5000  # entries fetched from the database's cursor at once
STATUSES = ("pending", "registered", "rejected", "revoked")
MATCHED = ("linked", "phone", "manual")  # external records mapped to a person (R20)
ZERO = Decimal("0.00")

# Positions in an entry tuple: the first five always, the rest with `detail` (the export). 学时 come as
# integer hundredths (E_CENTS), instants as seconds since the epoch (E_COMPUTED, E_DECIDED): a year is
# millions of rows, and ints and floats cost the driver and the sums far less than Decimals and datetimes.
E_SESSION, E_PERSON, E_CENTS, E_STATUS, E_VERSION = range(5)
E_ID, E_KIND, E_CATEGORY, E_MINUTES, E_COMPUTED, E_DECIDED, E_REVERSAL_OF, E_NOTE = range(5, 13)
E_NAME, E_PHONE = 13, 14


def cents_to_xueshi(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def year_bounds(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=engine.BEIJING), datetime(year + 1, 1, 1, tzinfo=engine.BEIJING)


@dataclass(frozen=True)
class Reader:
    """The connections a walk reads through, all in one read-only transaction seeing one snapshot of the
    database (catalog.supervision.snapshot.reading): one, or two to read ahead."""

    connections: Sequence[AsyncConnection]


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
        for k, v in other.xs.items():
            self.xs[k] = self.xs.get(k, ZERO) + v
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
    """A listed session: its figures and its entries of the year (`E_*` tuples; with `detail`, in person
    order)."""

    provider: Provider
    course: Course_
    figures: SessionFigures
    entries: Sequence[Sequence[Any]]
    people: frozenset[int]  # attendees: with an entry or with attendance evidence
    attending: frozenset[int]  # with attendance evidence


@dataclass(frozen=True)
class LooseBlock:
    """A course's entries of the year that name no session (e.g. a mentorship award)."""

    provider: Provider
    course: Course_
    entries: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class ProviderDone:
    figures: ProviderFigures


Block = SessionBlock | LooseBlock | ProviderDone


def entry_columns(dialect: str, detail: bool) -> list[Any]:
    """The entry tuple's columns (E_*), the same values on PostgreSQL and SQLite."""

    def epoch(column: Any) -> Any:
        if dialect == "postgresql":
            return type_coerce(func.date_part("epoch", column), Float())
        # SQLite keeps instants as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): julianday reads that.
        return type_coerce((func.julianday(column) - 2440587.5) * 86400.0, Float())

    cols: list[Any] = [
        CreditEntry.session_id,
        CreditEntry.person_id,
        cast(func.round(type_coerce(CreditEntry.xueshi, Numeric()) * 100), BigInteger),
        CreditEntry.status,
        CreditEntry.policy_version,
    ]
    if detail:
        cols += [
            CreditEntry.id,
            CreditEntry.kind,
            CreditEntry.category,
            CreditEntry.minutes,
            epoch(CreditEntry.computed_at),
            epoch(CreditEntry.decided_at),
            CreditEntry.reversal_of_id,
            CreditEntry.note,
            Person.name,
            Person.phone,
        ]
    return cols


async def policies(conn: AsyncConnection) -> dict[int, CreditPolicy]:
    """Every stored policy version, and version 0 (the built-in defaults)."""
    rows = await conn.execute(select(CreditPolicyVersion.version, CreditPolicyVersion.params))
    out = {0: CreditPolicy()}
    for version, params in rows:
        out[version] = CreditPolicy.from_dict(params, version)
    return out


def latest(versions: Mapping[int, CreditPolicy]) -> CreditPolicy:
    """The current policy: the latest version (catalog.credit.policies.current, from what is read)."""
    return versions[max(versions)]


def _of_providers(provider_ids: Sequence[int]) -> Any:
    return select(Course.id).where(Course.provider_org_id.in_(provider_ids)).scalar_subquery()


async def count_entries(conn: AsyncConnection, year: int, provider_ids: Sequence[int] | None) -> int:
    """How many ledger entries the walk will hand on (for a progress bar)."""
    stmt = select(func.count()).select_from(CreditEntry).where(CreditEntry.credit_year == year)
    if provider_ids is not None:
        stmt = stmt.where(CreditEntry.course_id.in_(_of_providers(provider_ids)))
    return int(await conn.scalar(stmt) or 0)


@dataclass(frozen=True)
class Latency:
    decided: int
    median_s: float | None
    p90_s: float | None


async def latencies(conn: AsyncConnection, year: int, provider_ids: Sequence[int]) -> dict[int, Latency]:
    """Approval latency per provider over the year's decided entries (see the module's docstring): on
    PostgreSQL computed by the database (percentile_cont, one pass); elsewhere from the values here."""
    decision = and_(
        CreditDecision.entry_id == CreditEntry.id, CreditDecision.action.in_(("approve", "reject"))
    )
    where = (
        CreditEntry.credit_year == year,
        CreditEntry.kind != "reversal",
        Course.provider_org_id.in_(provider_ids),
    )
    if conn.dialect.name == "postgresql":
        seconds = func.greatest(0, extract("epoch", CreditDecision.decided_at - CreditEntry.computed_at))
        rows = await conn.execute(
            select(
                Course.provider_org_id,
                func.count(),
                func.percentile_cont(literal(0.5)).within_group(seconds),
                func.percentile_cont(literal(0.9)).within_group(seconds),
            )
            .select_from(CreditEntry)
            .join(CreditDecision, decision)
            .join(Course, Course.id == CreditEntry.course_id)
            .where(*where)
            .group_by(Course.provider_org_id)
        )
        return {p: Latency(int(n), float(m), float(p90)) for p, n, m, p90 in rows}
    values: dict[int, list[float]] = defaultdict(list)
    for provider, computed, decided in await conn.execute(
        select(Course.provider_org_id, CreditEntry.computed_at, CreditDecision.decided_at)
        .select_from(CreditEntry)
        .join(CreditDecision, decision)
        .join(Course, Course.id == CreditEntry.course_id)
        .where(*where)
    ):
        values[provider].append(max(0.0, (decided - computed).total_seconds()))
    out = {}
    for provider, seconds_ in values.items():
        seconds_.sort()
        out[provider] = Latency(
            len(seconds_), reconcile.percentile(seconds_, 50), reconcile.percentile(seconds_, 90)
        )
    return out


def _matched_record() -> tuple[ColumnElement[bool], ...]:
    """An external meeting record is attendance once matched to a person."""
    return (ExternalRecordRow.person_id.is_not(None), ExternalRecordRow.match.in_(MATCHED))


def attendance_pairs(session_ids: Sequence[int]) -> Any:
    """(session_id, person_id) of everyone with attendance evidence in the sessions: live delivery,
    overflow HLS segments, a replay client, a matched external record, a sign-in at an offline venue."""
    return union(
        select(LiveInterval.session_id, LiveInterval.person_id).where(
            LiveInterval.session_id.in_(session_ids)
        ),
        select(HlsFetch.session_id, HlsFetch.person_id).where(HlsFetch.session_id.in_(session_ids)),
        select(ClientSession.session_id, ClientSession.person_id).where(
            ClientSession.session_id.in_(session_ids), ClientSession.kind == "replay"
        ),
        select(ExternalRecordRow.session_id, ExternalRecordRow.person_id).where(
            ExternalRecordRow.session_id.in_(session_ids), *_matched_record()
        ),
        select(OfflineAttendance.session_id, OfflineAttendance.person_id).where(
            OfflineAttendance.session_id.in_(session_ids)
        ),
    )


def was_held(
    kind: str,
    scheduled_start: datetime,
    actual_start: datetime | None,
    attended: bool,
    year: tuple[datetime, datetime],
) -> bool:
    """Whether a session counts as held in the year: started on the server in it, or (an offline session
    at a venue, an external meeting: neither starts on the server) scheduled in it with someone's
    attendance on record (a sign-in, a matched meeting record)."""
    y0, y1 = year
    if actual_start is not None:
        return y0 <= actual_start < y1
    return kind in OFF_SERVER_KINDS and attended and y0 <= scheduled_start < y1


def session_window(
    kind: str,
    scheduled: tuple[datetime, datetime],
    actual: tuple[datetime | None, datetime | None],
    correction: tuple[datetime, datetime] | None,
) -> tuple[tuple[datetime, datetime] | None, str]:
    """What settlement clips a session's credit to (R8): the latest audited correction, else the server's
    actual start..end, else for an external meeting (whose records the schedule caps) or an offline session
    (held at a venue, not started on the server: catalog.offline.rules.window) its schedule."""
    if correction is not None:
        return correction, "correction"
    if actual[0] is not None and actual[1] is not None:
        return (actual[0], actual[1]), "actual"
    if kind in OFF_SERVER_KINDS:
        return scheduled, "schedule"
    return None, "none"


@dataclass
class Folded:
    sums: Sums
    people: set[int]
    best: Decimal  # the largest net 学时 of one person
    credited: int  # people with positive net 学时
    without: int  # of those, people without attendance evidence
    versions: set[int]


def fold_entries(entries: Sequence[Sequence[Any]], attending: set[int] | frozenset[int]) -> Folded:
    """The figures of a session's (or a course's) entries, in any order."""
    cents: dict[str, int] = dict.fromkeys(STATUSES, 0)
    nets: dict[int, int] = {}
    versions: set[int] = set()
    for e in entries:
        person, amount, status = e[E_PERSON], e[E_CENTS], e[E_STATUS]
        nets[person] = nets.get(person, 0) + amount
        cents[status] = cents.get(status, 0) + amount
        versions.add(e[E_VERSION])
    credited = [person for person, net in nets.items() if net > 0]
    sums = Sums(len(entries), {k: cents_to_xueshi(v) for k, v in cents.items()})
    return Folded(
        sums,
        set(nets),
        cents_to_xueshi(max(nets.values(), default=0)),
        len(credited),
        sum(1 for person in credited if person not in attending),
        versions,
    )


_person_then_id = itemgetter(E_PERSON, E_ID)
_session_of = itemgetter(E_SESSION)


async def batches(
    conn: AsyncConnection, stmt: Any, *, few: bool = False
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The statement's rows, BATCH at a time, through a cursor. On PostgreSQL straight from asyncpg (its
    records, in the connection's transaction): SQLAlchemy's result machinery costs about a microsecond a
    row, which at millions of rows is most of the walk. `few`: one plain query (one session's rows)."""
    if few:
        yield (await conn.execute(stmt)).all()
        return
    if conn.dialect.name == "postgresql":
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.params  # a property that builds the dict each time it is read
        args = [params[name] for name in compiled.positiontup or ()]
        cursor = await driver.cursor(str(compiled), *args)
        while batch := await cursor.fetch(BATCH):
            yield batch
        return
    result = await conn.stream(stmt, execution_options={"yield_per": BATCH})
    async for partition in result.partitions():
        yield partition


def _flag_counts(rows: Any) -> dict[Any, tuple[int, int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for key, status, n in rows:
        out[key][1] += int(n)
        if status == "open":
            out[key][0] += int(n)
    return {k: (v[0], v[1]) for k, v in out.items()}


@dataclass(frozen=True)
class _Year:
    """What the walk reads once for all its providers."""

    year: int
    bounds: tuple[datetime, datetime]
    versions: Mapping[int, CreditPolicy]
    current: CreditPolicy
    enrolled: Mapping[int, int]
    loose_flags: Mapping[int, tuple[int, int]]


@dataclass(frozen=True)
class _Chunk:
    """Some of a provider's listed sessions (`last`: then its entries without a session and its figures)."""

    provider: Provider
    sessions: Sequence[Any]
    last: bool


@dataclass
class _Loaded:
    by_session: dict[int, list[Sequence[Any]]]
    evidence: dict[int, set[int]]
    corrections: dict[int, tuple[datetime, datetime]]
    flags: dict[Any, tuple[int, int]]
    loose: dict[int, list[Sequence[Any]]]


async def walk(
    reader: Reader,
    year: int,
    providers: Sequence[Provider],
    versions: Mapping[int, CreditPolicy],
    current: CreditPolicy,
    *,
    detail: bool,
    session_ids: Sequence[int] | None = None,
) -> AsyncGenerator[Block, None]:
    """Blocks for each provider in turn (its sessions in id order, then its entries without a session,
    then its figures). `detail`: the entries carry every column and the person's name and phone (the
    export), else only what the figures need; `session_ids`: only these sessions (one session's
    drill-down), figures for them alone.

    With two connections (Reader on PostgreSQL: one snapshot), the next chunk of sessions is read on one
    while this one is folded and written: the database's work and ours overlap."""
    if not providers:
        return
    conn = reader.connections[0]
    y0, y1 = year_bounds(year)
    ids = [p.id for p in providers]
    courses_of = _of_providers(ids)
    one = session_ids is not None
    enrolled_of = (
        Enrollment.course_id.in_(select(Session.course_id).where(Session.id.in_(session_ids)))
        if session_ids is not None
        else Enrollment.course_id.in_(courses_of)
    )
    enrolled = {
        cid: int(n)
        for cid, n in await conn.execute(
            select(Enrollment.course_id, func.count(func.distinct(Enrollment.person_id)))
            .where(enrolled_of)
            .group_by(Enrollment.course_id)
        )
    }
    loose_flags: dict[int, tuple[int, int]] = {}
    if not one:
        loose_flags = _flag_counts(
            await conn.execute(
                select(Course.provider_org_id, FraudFlag.status, func.count())
                .join(Course, Course.id == FraudFlag.course_id)
                .where(
                    Course.provider_org_id.in_(ids),
                    FraudFlag.session_id.is_(None),
                    FraudFlag.created_at >= y0,
                    FraudFlag.created_at < y1,
                )
                .group_by(Course.provider_org_id, FraudFlag.status)
            )
        )
    y = _Year(year, (y0, y1), versions, current, enrolled, loose_flags)
    courses: dict[int, dict[int, Course_]] = defaultdict(dict)
    of_courses = (
        Course.id.in_(select(Session.course_id).where(Session.id.in_(session_ids)))
        if session_ids is not None
        else Course.provider_org_id.in_(ids)
    )
    for r in await conn.execute(
        select(Course.provider_org_id, Course.id, Course.title, Course.category, Course.capacity).where(
            of_courses
        )
    ):
        courses[r.provider_org_id][r.id] = Course_(r.id, r.title, r.category, r.capacity)
    chunks = await _plan(conn, y, providers, session_ids)
    columns = entry_columns(conn.dialect.name, detail)
    free: asyncio.Queue[AsyncConnection] = asyncio.Queue()
    for c in reader.connections:
        free.put_nowait(c)

    async def on_a_free_connection(work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        c = await free.get()
        try:
            return await work(c)
        finally:
            free.put_nowait(c)

    pending: dict[int, asyncio.Task[_Loaded]] = {}

    def start(i: int) -> None:
        if i < len(chunks) and i not in pending:
            chunk = chunks[i]
            pending[i] = asyncio.create_task(
                on_a_free_connection(lambda c: _load(c, y, chunk, columns, detail, one)),
                name=f"supervision-chunk-{i}",
            )

    # Latency is one query over the year: on PostgreSQL it runs beside the first chunks.
    latency = asyncio.create_task(
        on_a_free_connection(lambda c: latencies(c, year, ids) if not one else _no_latency()),
        name="supervision-latency",
    )
    try:
        for i in range(len(reader.connections)):
            start(i)
        figures: ProviderFigures | None = None
        everyone: set[int] = set()
        used: set[int] = set()
        for i, chunk in enumerate(chunks):
            loaded = await pending.pop(i)
            start(i + len(reader.connections))
            provider = chunk.provider
            if figures is None:
                figures, everyone, used = ProviderFigures(provider), set(), set()
            mine = courses[provider.id]
            for s in chunk.sessions:
                entries = loaded.by_session.pop(s.id, [])
                evidence, correction = loaded.evidence.get(s.id, set()), loaded.corrections.get(s.id)
                flags = loaded.flags.get(s.id, (0, 0))
                block = _session_block(provider, mine, s, entries, evidence, correction, flags, y)
                figures.sessions += 1
                figures.sessions_held += int(block.figures.held)
                figures.over_sessions += int(block.figures.over)
                figures.sums.add(block.figures.sums)
                used.add(block.course.id)
                everyone |= block.people
                yield block
                # Let the read-ahead send its next statement and take in what arrived while we worked.
                await asyncio.sleep(0)
            if not chunk.last:
                continue
            for cid, entries in loaded.loose.items():
                if detail:
                    entries.sort(key=_person_then_id)
                folded = fold_entries(entries, set())
                figures.sums.add(folded.sums)
                everyone |= folded.people
                used.add(cid)
                yield LooseBlock(provider, mine[cid], entries)
            n_open, n_total = y.loose_flags.get(provider.id, (0, 0))
            figures.sums.flags_open += n_open
            figures.sums.flags_total += n_total
            lat = (await latency).get(provider.id)
            if lat is not None:
                figures.decided, figures.latency_median_s, figures.latency_p90_s = (
                    lat.decided, lat.median_s, lat.p90_s,
                )  # fmt: skip
            figures.attendees = len(everyone)
            figures.courses = len(used)
            yield ProviderDone(figures)
            figures = None
    finally:
        # A reader that stopped early (a closed download): no read is left running on the connections.
        for task in [*pending.values(), latency]:
            task.cancel()
        await asyncio.gather(*pending.values(), latency, return_exceptions=True)


async def _no_latency() -> dict[int, Latency]:
    return {}


async def _plan(
    conn: AsyncConnection, y: _Year, providers: Sequence[Provider], session_ids: Sequence[int] | None
) -> list[_Chunk]:
    """Every provider's listed sessions, in chunks of at most CHUNK (a provider without any still gets
    one, empty, for its entries without a session and its figures)."""
    y0, y1 = y.bounds
    listed: ColumnElement[bool] = Course.provider_org_id.in_([p.id for p in providers])
    if session_ids is not None:
        listed = and_(listed, Session.id.in_(session_ids))
    else:
        held_in_year = or_(
            and_(Session.actual_start >= y0, Session.actual_start < y1),
            and_(
                Session.actual_start.is_(None),
                Session.kind.in_(OFF_SERVER_KINDS),
                Session.scheduled_start >= y0,
                Session.scheduled_start < y1,
                or_(
                    exists().where(OfflineAttendance.session_id == Session.id),
                    exists().where(ExternalRecordRow.session_id == Session.id, *_matched_record()),
                ),
            ),
        )
        credited_in_year = exists().where(
            CreditEntry.session_id == Session.id, CreditEntry.credit_year == y.year
        )
        listed = and_(listed, or_(held_in_year, credited_in_year))
    by_provider: dict[int, list[Any]] = defaultdict(list)
    for s in await conn.execute(
        select(
            Course.provider_org_id,
            Session.id,
            Session.course_id,
            Session.title,
            Session.kind,
            Session.scheduled_start,
            Session.scheduled_end,
            Session.actual_start,
            Session.actual_end,
        )
        .join(Course, Course.id == Session.course_id)
        .where(listed)
        .order_by(Session.id)
    ):
        by_provider[s.provider_org_id].append(s)
    chunks: list[_Chunk] = []
    for p in providers:
        sessions = by_provider.get(p.id, [])
        parts = [sessions[at : at + CHUNK] for at in range(0, len(sessions), CHUNK)] or [[]]
        chunks += [_Chunk(p, part, n == len(parts) - 1) for n, part in enumerate(parts)]
    return chunks


async def _load(
    conn: AsyncConnection, y: _Year, chunk: _Chunk, columns: list[Any], detail: bool, one: bool
) -> _Loaded:
    """A chunk's entries (grouped by session), evidence, latest corrections and flags; with its
    provider's last chunk, the provider's entries without a session (grouped by course)."""
    ids = [s.id for s in chunk.sessions]
    loaded = _Loaded(defaultdict(list), defaultdict(set), {}, {}, defaultdict(list))
    if ids:
        if conn.dialect.name == "postgresql":
            # One array per session: the driver decodes it at C speed, not a row per person.
            pairs = attendance_pairs(ids).subquery()
            for sid, people in await conn.execute(
                select(pairs.c.session_id, func.array_agg(pairs.c.person_id)).group_by(pairs.c.session_id)
            ):
                loaded.evidence[sid] = set(people)
        else:
            async for rows in batches(conn, attendance_pairs(ids), few=one):
                for sid, pid in rows:
                    loaded.evidence[sid].add(pid)
        for sid, start, end in await conn.execute(
            select(
                SessionTimeCorrection.session_id,
                SessionTimeCorrection.actual_start,
                SessionTimeCorrection.actual_end,
            )
            .where(SessionTimeCorrection.session_id.in_(ids))
            .order_by(SessionTimeCorrection.at, SessionTimeCorrection.id)
        ):
            loaded.corrections[sid] = (start, end)  # the latest wins
        loaded.flags = _flag_counts(
            await conn.execute(
                select(FraudFlag.session_id, FraudFlag.status, func.count())
                .where(FraudFlag.session_id.in_(ids))
                .group_by(FraudFlag.session_id, FraudFlag.status)
            )
        )
        stmt = select(*columns).where(CreditEntry.session_id.in_(ids), CreditEntry.credit_year == y.year)
        if detail:
            stmt = stmt.outerjoin(Person, Person.id == CreditEntry.person_id)
        # Sorted by the database (on its own core, while we work on the previous chunk), grouped here at C
        # speed; with `detail` in person order too, as the report lists them.
        order = (
            (CreditEntry.session_id, CreditEntry.person_id, CreditEntry.id)
            if detail
            else (CreditEntry.session_id,)
        )
        by_session = loaded.by_session
        async for rows in batches(conn, stmt.order_by(*order), few=one):
            for sid, group in groupby(rows, _session_of):
                by_session[sid].extend(group)
    if chunk.last and not one:
        courses = select(Course.id).where(Course.provider_org_id == chunk.provider.id).scalar_subquery()
        loose = (
            select(*columns, CreditEntry.course_id)
            .where(
                CreditEntry.course_id.in_(courses),
                CreditEntry.credit_year == y.year,
                CreditEntry.session_id.is_(None),
            )
            .order_by(CreditEntry.course_id)
        )
        if detail:
            loose = loose.outerjoin(Person, Person.id == CreditEntry.person_id)
        async for rows in batches(conn, loose):
            for e in rows:
                loaded.loose[e[-1]].append(e)
    return loaded


def _session_block(
    provider: Provider,
    courses: Mapping[int, Course_],
    s: Any,
    entries: list[Sequence[Any]],
    attending: set[int],
    correction: tuple[datetime, datetime] | None,
    flags: tuple[int, int],
    y: _Year,
) -> SessionBlock:
    course = courses[s.course_id]
    folded = fold_entries(entries, attending)
    folded.sums.flags_open, folded.sums.flags_total = flags
    window, source = session_window(
        s.kind, (s.scheduled_start, s.scheduled_end), (s.actual_start, s.actual_end), correction
    )
    facts = reconcile.SessionFacts(
        window=window,
        policies=tuple(y.versions[v] for v in sorted(folded.versions) if v in y.versions) or (y.current,),
        max_person_xs=folded.best,
        credited=folded.credited,
        without_attendance=folded.without,
        enrolled=y.enrolled.get(s.course_id, 0),
        capacity=course.capacity,
    )
    y0, y1 = y.bounds
    figures = SessionFigures(
        session_id=s.id,
        course_id=s.course_id,
        title=s.title,
        kind=s.kind,
        scheduled_start=s.scheduled_start,
        starts_at=window[0] if window else s.scheduled_start,
        held=was_held(s.kind, s.scheduled_start, s.actual_start, bool(attending), (y0, y1)),
        window=window,
        window_source=source,
        allowed_xs=reconcile.allowed(facts),
        max_person_xs=folded.best,
        credited=folded.credited,
        without_attendance=folded.without,
        attending=len(attending),
        attendees=len(folded.people | attending),
        enrolled=facts.enrolled,
        capacity=course.capacity,
        sums=folded.sums,
        reasons=reconcile.reasons(facts),
    )
    return SessionBlock(
        provider, course, figures, entries, frozenset(folded.people | attending), frozenset(attending)
    )
