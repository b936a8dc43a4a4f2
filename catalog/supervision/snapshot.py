"""The snapshot of a year's supervision figures: computed by one walk over the year (catalog.supervision.
walk) and stored per provider and per session, replaced whole in one transaction. The bureau's overview
and its list of a provider's sessions read it (a few hundred rows) instead of aggregating the ledger per
request; a session's entries are always read live.

`Snapshots` serializes refreshes in this process (one year at a time) and knows how old each year's
figures may grow: the background round (`refresh_context`) refreshes the years that have a snapshot once it
is older than `LECTERN_SUPERVISION_REFRESH_EVERY_S`, and the current year at start; a year asked for with no
snapshot yet is computed on the spot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog import periodic
from catalog.credit import engine
from catalog.db import Database
from catalog.domain import PROVIDER_TYPES
from catalog.keys import DATABASE
from catalog.models import (
    CreditEntry,
    Organization,
    SupervisionProviderStats,
    SupervisionSessionStats,
    SupervisionSnapshot,
)
from catalog.supervision.walk import (
    LooseBlock,
    Provider,
    ProviderDone,
    ProviderFigures,
    Reader,
    SessionBlock,
    SessionFigures,
    latest,
    policies,
    walk,
)
from infra.appkeys import SETTINGS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Info:
    year: int
    refreshed_at: datetime
    took_s: float
    providers: int
    sessions: int
    entries: int

    def to_dict(self, now: datetime, max_age_s: float) -> dict[str, Any]:
        return {
            "year": self.year,
            "refreshed_at": self.refreshed_at.isoformat(),
            "age_s": round(max(0.0, (now - self.refreshed_at).total_seconds()), 1),
            "refresh_every_s": max_age_s,
            "took_s": round(self.took_s, 2),
            "entries": self.entries,
        }


async def all_providers(conn: AsyncConnection, ids: Sequence[int] | None = None) -> list[Provider]:
    """Every provider organization (CE bases, training institutions), or those of `ids`, by id."""
    stmt = select(Organization.id, Organization.name, Organization.type, Organization.sector).where(
        Organization.type.in_([t.value for t in PROVIDER_TYPES])
    )
    if ids is not None:
        stmt = stmt.where(Organization.id.in_(ids))
    return [
        Provider(r.id, r.name, r.type, r.sector) for r in await conn.execute(stmt.order_by(Organization.id))
    ]


LATE_MONTHS = 3  # the previous year is kept fresh until the end of March (employers approve late)
SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?$")


@contextlib.asynccontextmanager
async def reading(db: Database, connections: int = 1) -> AsyncIterator[Reader]:
    """Connections in one read-only transaction: on PostgreSQL repeatable read, so a whole walk sees the
    ledger as of one instant however long it takes, and a second connection joins the first's snapshot
    (pg_export_snapshot) so that the walk can read ahead on it. SQLite gets one connection.
    `connections=0`: one connection in autocommit, for a few short statements (one session's entries),
    each seeing the latest committed data."""
    async with contextlib.AsyncExitStack() as stack:
        if connections == 0:
            yield Reader([await stack.enter_async_context(db.reading())])  # autocommit: no BEGIN, no COMMIT
            return
        first = await stack.enter_async_context(db.engine.connect())
        if first.dialect.name != "postgresql":
            await stack.enter_async_context(first.begin())
            yield Reader([first])
            return
        conns: list[AsyncConnection] = []
        snapshot_id = ""
        for n in range(connections):
            base = first if n == 0 else await stack.enter_async_context(db.engine.connect())
            conn = await base.execution_options(isolation_level="REPEATABLE READ")
            await stack.enter_async_context(conn.begin())
            if n == 0:
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                if connections > 1:
                    snapshot_id = str(await conn.scalar(text("SELECT pg_export_snapshot()")))
                    if not SNAPSHOT_ID.match(snapshot_id):
                        raise RuntimeError(f"unexpected snapshot id {snapshot_id!r}")
            else:
                # Must come first in its transaction: this connection now sees what the first one sees.
                await conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            # The walk's few large sorts (a chunk's entries, the year's approval latencies) in memory.
            await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            conns.append(conn)
        yield Reader(conns)


async def compute(
    db: Database, year: int
) -> tuple[list[ProviderFigures], list[tuple[int, SessionFigures]], int]:
    """Every provider's and every listed session's figures for the year (and how many entries were read)."""
    provider_rows: list[ProviderFigures] = []
    session_rows: list[tuple[int, SessionFigures]] = []
    entries = 0
    async with reading(db, connections=2) as reader:
        conn = reader.connections[0]
        versions = await policies(conn)
        current = latest(versions)
        walking = walk(reader, year, await all_providers(conn), versions, current, detail=False)
        async with contextlib.aclosing(walking) as blocks:
            async for block in blocks:
                if isinstance(block, SessionBlock):
                    session_rows.append((block.provider.id, block.figures))
                    entries += len(block.entries)
                elif isinstance(block, LooseBlock):
                    entries += len(block.entries)
                elif isinstance(block, ProviderDone):
                    provider_rows.append(block.figures)
    return provider_rows, session_rows, entries


def _provider_row(year: int, f: ProviderFigures) -> dict[str, Any]:
    return {
        "year": year,
        "provider_org_id": f.provider.id,
        "courses": f.courses,
        "sessions": f.sessions,
        "sessions_held": f.sessions_held,
        "over_sessions": f.over_sessions,
        "attendees": f.attendees,
        "entries": f.sums.entries,
        "pending_xs": f.sums.xs["pending"],
        "registered_xs": f.sums.xs["registered"],
        "rejected_xs": f.sums.xs["rejected"],
        "revoked_xs": f.sums.xs["revoked"],
        "decided": f.decided,
        "latency_median_s": f.latency_median_s,
        "latency_p90_s": f.latency_p90_s,
        "flags_open": f.sums.flags_open,
        "flags_total": f.sums.flags_total,
    }


def _session_row(year: int, provider_id: int, f: SessionFigures) -> dict[str, Any]:
    return {
        "year": year,
        "session_id": f.session_id,
        "provider_org_id": provider_id,
        "course_id": f.course_id,
        "starts_at": f.starts_at,
        "held": f.held,
        "window_start": f.window[0] if f.window else None,
        "window_end": f.window[1] if f.window else None,
        "window_source": f.window_source,
        "allowed_xs": f.allowed_xs,
        "max_person_xs": f.max_person_xs,
        "credited": f.credited,
        "without_attendance": f.without_attendance,
        "attending": f.attending,
        "attendees": f.attendees,
        "enrolled": f.enrolled,
        "capacity": f.capacity,
        "entries": f.sums.entries,
        "pending_xs": f.sums.xs["pending"],
        "registered_xs": f.sums.xs["registered"],
        "rejected_xs": f.sums.xs["rejected"],
        "revoked_xs": f.sums.xs["revoked"],
        "flags_open": f.sums.flags_open,
        "flags_total": f.sums.flags_total,
        "over": f.over,
        "reasons": f.reasons,
    }


async def refresh(db: Database, year: int, now: datetime) -> Info:
    """Compute the year's figures and replace its snapshot with them (one transaction)."""
    started = time.perf_counter()
    providers, sessions, entries = await compute(db, year)
    took = time.perf_counter() - started
    info = Info(year, now, took, len(providers), len(sessions), entries)
    async with db.sessions.begin() as s:
        await s.execute(delete(SupervisionSessionStats).where(SupervisionSessionStats.year == year))
        await s.execute(delete(SupervisionProviderStats).where(SupervisionProviderStats.year == year))
        await s.execute(delete(SupervisionSnapshot).where(SupervisionSnapshot.year == year))
        for at in range(0, len(sessions), 1000):
            await s.execute(
                insert(SupervisionSessionStats),
                [_session_row(year, p, f) for p, f in sessions[at : at + 1000]],
            )
        if providers:
            await s.execute(insert(SupervisionProviderStats), [_provider_row(year, f) for f in providers])
        s.add(
            SupervisionSnapshot(
                year=year, refreshed_at=now, took_s=took, providers=len(providers), sessions=len(sessions),
                entries=entries,
            )
        )  # fmt: skip
    log.info(
        "supervision snapshot year=%s providers=%d sessions=%d entries=%d took_s=%.2f",
        year,
        len(providers),
        len(sessions),
        entries,
        took,
    )
    return info


async def info(conn: AsyncConnection, year: int) -> Info | None:
    row = (await conn.execute(select(SupervisionSnapshot).where(SupervisionSnapshot.year == year))).first()
    if row is None:
        return None
    return Info(row.year, row.refreshed_at, row.took_s, row.providers, row.sessions, row.entries)


@dataclass
class Snapshots:
    """This process's refreshes: one at a time per year; `max_age_s` is how old figures may grow."""

    db: Database
    max_age_s: float
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    def _lock(self, year: int) -> asyncio.Lock:
        return self._locks.setdefault(year, asyncio.Lock())

    async def ensure(self, year: int) -> Info:
        """The year's snapshot, computed now if there is none yet."""
        async with self.db.reading() as conn:
            found = await info(conn, year)
        if found is not None:
            return found
        async with self._lock(year):
            async with self.db.reading() as conn:
                found = await info(conn, year)
            return found if found is not None else await refresh(self.db, year, self.clock())

    async def refresh(self, year: int, *, min_age_s: float = 0.0) -> Info:
        """Recompute the year now, unless its snapshot is younger than `min_age_s` (a second press of the
        button, or a refresh that waited for another one, gets the figures just made)."""
        async with self._lock(year):
            async with self.db.reading() as conn:
                found = await info(conn, year)
            now = self.clock()
            if found is not None and now - found.refreshed_at < timedelta(seconds=min_age_s):
                return found
            return await refresh(self.db, year, now)

    async def round(self) -> None:
        """The background round: the current credit year (first computed once it has credit), and the
        previous one during the first quarter (its late approvals), whenever their snapshot is older than
        `max_age_s`. Older years change rarely: they are refreshed on request (立即更新) only."""
        now = self.clock()
        current = engine.credit_year(now)
        async with self.db.reading() as conn:
            years: dict[int, datetime] = {
                y: at
                for y, at in await conn.execute(
                    select(SupervisionSnapshot.year, SupervisionSnapshot.refreshed_at)
                )
            }
            credited = await conn.scalar(
                select(CreditEntry.id).where(CreditEntry.credit_year == current).limit(1)
            )
        if current not in years and credited is not None:
            await self.ensure(current)
        kept = {current, current - 1} if engine.beijing_day(now).month <= LATE_MONTHS else {current}
        for year, at in sorted(years.items()):
            if year in kept and now - at >= timedelta(seconds=self.max_age_s):
                await self.refresh(year, min_age_s=self.max_age_s)


SNAPSHOTS: web.AppKey[Snapshots] = web.AppKey("catalog_supervision_snapshots", Snapshots)


async def refresh_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the app's Snapshots, and the background refresh while the app runs (not at all
    when LECTERN_SUPERVISION_REFRESH_EVERY_S is 0: then figures are computed when first asked for and
    refreshed only on request)."""
    every_s = app[SETTINGS].supervision_refresh_every_s
    snapshots = Snapshots(app[DATABASE], every_s if every_s > 0 else float("inf"))
    app[SNAPSHOTS] = snapshots
    async with periodic.every("supervision snapshot", every_s, snapshots.round):
        yield
