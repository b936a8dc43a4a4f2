"""What the supervision page reads: providers in the caller's scope with their year (from the snapshot),
one provider's sessions with their reconciliation (snapshot), one session's entries (live), and which
providers an export covers. Every function checks the caller's scope first (catalog.supervision.scope)."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.credit import engine
from catalog.credit.views import figures as evidence_figures
from catalog.db import Database
from catalog.domain import PROVIDER_TYPES, Caller, mask_phone
from catalog.fields import Page
from catalog.models import (
    Course,
    CreditDecision,
    CreditEntry,
    Organization,
    Session,
    SupervisionProviderStats,
    SupervisionSessionStats,
)
from catalog.supervision import scope as rules
from catalog.supervision.reconcile import mask_name
from catalog.supervision.snapshot import Snapshots, all_providers, reading
from catalog.supervision.walk import (
    E_CATEGORY,
    E_CENTS,
    E_COMPUTED,
    E_DECIDED,
    E_ID,
    E_KIND,
    E_MINUTES,
    E_NAME,
    E_NOTE,
    E_PERSON,
    E_PHONE,
    E_REVERSAL_OF,
    E_STATUS,
    E_VERSION,
    STATUSES,
    ZERO,
    Provider,
    SessionBlock,
    cents_to_xueshi,
    latest,
    policies,
    walk,
)
from infra.errors import NotFound

PROVIDER_TYPE_VALUES = tuple(t.value for t in PROVIDER_TYPES)


async def scope_for(conn: AsyncConnection, caller: Caller) -> rules.Scope:
    """The caller's scope (Forbidden for non-supervisors), from the organizations they hold `bureau` in."""
    ids = rules.bureau_org_ids(caller)
    orgs: dict[int, rules.OrgFacts] = {}
    if ids:
        rows = await conn.execute(
            select(Organization.id, Organization.type, Organization.sector).where(Organization.id.in_(ids))
        )
        orgs = {r.id: rules.OrgFacts(r.type, r.sector) for r in rows}
    return rules.scope_of(caller, orgs)


async def provider_in_scope(conn: AsyncConnection, scope: rules.Scope, provider_id: int) -> Provider:
    """The provider (NotFound: no such provider), if the caller supervises it (else Forbidden)."""
    row = (
        await conn.execute(
            select(Organization.id, Organization.name, Organization.type, Organization.sector).where(
                Organization.id == provider_id, Organization.type.in_(PROVIDER_TYPE_VALUES)
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"provider {provider_id} not found", field="provider")
    rules.require_provider(scope, provider_id, row.sector)
    return Provider(row.id, row.name, row.type, row.sector)


def _xs(row: Any) -> dict[str, str]:
    values = {k: getattr(row, f"{k}_xs") for k in STATUSES}
    return {k: str(v) for k, v in values.items()} | {"total": str(sum(values.values(), ZERO))}


def _provider_item(p: Provider, row: Any) -> dict[str, Any]:
    """A provider's figures (a supervision_provider_stats row, or zeros when it had nothing that year)."""
    base: dict[str, Any] = {"provider_id": p.id, "name": p.name, "type": p.type, "sector": p.sector}
    if row is None:
        return base | {
            "courses": 0, "sessions": 0, "sessions_held": 0, "over_sessions": 0, "attendees": 0, "entries": 0,
            "xueshi": dict.fromkeys((*STATUSES, "total"), "0.00"), "decided": 0, "latency_median_s": None,
            "latency_p90_s": None, "flags_open": 0, "flags_total": 0,
        }  # fmt: skip
    return base | {
        "courses": row.courses,
        "sessions": row.sessions,
        "sessions_held": row.sessions_held,
        "over_sessions": row.over_sessions,
        "attendees": row.attendees,
        "entries": row.entries,
        "xueshi": _xs(row),
        "decided": row.decided,
        "latency_median_s": row.latency_median_s,
        "latency_p90_s": row.latency_p90_s,
        "flags_open": row.flags_open,
        "flags_total": row.flags_total,
    }


def _sector_totals(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per sector (行业): the providers' figures added up (attendees are not: one person may learn at
    several providers)."""
    out: dict[str | None, dict[str, Any]] = {}
    for item in items:
        t = out.setdefault(
            item["sector"],
            {"sector": item["sector"], "providers": 0, "sessions": 0, "sessions_held": 0, "over_sessions": 0,
             "entries": 0, "flags_open": 0, "xueshi": defaultdict(Decimal)},
        )  # fmt: skip
        t["providers"] += 1
        for key in ("sessions", "sessions_held", "over_sessions", "entries", "flags_open"):
            t[key] += item[key]
        for key, value in item["xueshi"].items():
            t["xueshi"][key] += Decimal(value)
    totals = sorted(out.values(), key=lambda t: (t["sector"] is None, t["sector"] or ""))
    for t in totals:
        t["xueshi"] = {k: str(v) for k, v in t["xueshi"].items()}
    return totals


async def providers(
    db: Database, snapshots: Snapshots, caller: Caller, year: int, sector: str | None, now: datetime
) -> dict[str, Any]:
    """The providers the caller supervises (of `sector`, if given) with their figures for the year."""
    async with db.reading() as conn:
        scope = await scope_for(conn, caller)
    rules.require_sector(scope, sector)
    info = await snapshots.ensure(year)
    async with db.reading() as conn:
        visible = [p for p in await all_providers(conn) if scope.sees(p.sector)]
        stats = {
            r.provider_org_id: r
            for r in (
                await conn.execute(
                    select(SupervisionProviderStats).where(SupervisionProviderStats.year == year)
                )
            ).all()
        }
    sectors = sorted({p.sector for p in visible if p.sector})
    chosen = [p for p in visible if sector is None or p.sector == sector]
    items = [_provider_item(p, stats.get(p.id)) for p in chosen]
    items.sort(
        key=lambda i: (
            -i["over_sessions"],
            -i["flags_open"],
            -Decimal(i["xueshi"]["total"]),
            i["provider_id"],
        )
    )
    return {
        "year": year,
        "sector": sector,
        "scope": scope.to_dict(),
        "sectors": sectors,
        "snapshot": info.to_dict(now, snapshots.max_age_s),
        "providers": items,
        "by_sector": _sector_totals(items),
    }


def _session_item(row: Any) -> dict[str, Any]:
    s = row  # supervision_session_stats' columns, with the session's and the course's
    window_s = (s.window_end - s.window_start).total_seconds() if s.window_start and s.window_end else None
    return {
        "session_id": s.session_id,
        "title": row.title,
        "kind": row.kind,
        "course_id": s.course_id,
        "course_title": row.course_title,
        "category": row.category,
        "scheduled_start": row.scheduled_start.isoformat(),
        "held": s.held,
        "window": [s.window_start.isoformat(), s.window_end.isoformat()]
        if s.window_start and s.window_end
        else None,
        "window_source": s.window_source,
        "window_s": window_s,
        "allowed_xueshi": None if s.allowed_xs is None else str(s.allowed_xs),
        "max_person_xueshi": str(s.max_person_xs),
        "credited": s.credited,
        "without_attendance": s.without_attendance,
        "attending": s.attending,
        "attendees": s.attendees,
        "enrolled": s.enrolled,
        "capacity": s.capacity,
        "entries": s.entries,
        "xueshi": _xs(s),
        "flags_open": s.flags_open,
        "flags_total": s.flags_total,
        "over": s.over,
        "reasons": list(s.reasons),
    }


async def sessions(
    db: Database,
    snapshots: Snapshots,
    caller: Caller,
    provider_id: int,
    year: int,
    over_only: bool,
    page: Page,
    now: datetime,
) -> dict[str, Any]:
    """One provider's sessions of the year with their figures and reconciliation (newest first; 超额 only
    with `over_only`)."""
    async with db.reading() as conn:
        provider = await provider_in_scope(conn, await scope_for(conn, caller), provider_id)
    info = await snapshots.ensure(year)
    conds = [SupervisionSessionStats.year == year, SupervisionSessionStats.provider_org_id == provider_id]
    if over_only:
        conds.append(SupervisionSessionStats.over.is_(True))
    async with db.reading() as conn:
        total = int(
            await conn.scalar(select(func.count()).select_from(SupervisionSessionStats).where(*conds)) or 0
        )
        rows = (
            await conn.execute(
                select(
                    SupervisionSessionStats,
                    Session.title,
                    Session.kind,
                    Session.scheduled_start,
                    Course.title.label("course_title"),
                    Course.category,
                )
                .join(Session, Session.id == SupervisionSessionStats.session_id)
                .join(Course, Course.id == SupervisionSessionStats.course_id)
                .where(*conds)
                .order_by(SupervisionSessionStats.starts_at.desc(), SupervisionSessionStats.session_id.desc())
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
        summary = (
            await conn.execute(
                select(SupervisionProviderStats).where(
                    SupervisionProviderStats.year == year,
                    SupervisionProviderStats.provider_org_id == provider_id,
                )
            )
        ).first()
    return {
        "year": year,
        "provider": _provider_item(provider, summary),
        "snapshot": info.to_dict(now, snapshots.max_age_s),
        "over_only": over_only,
        "items": [_session_item(r) for r in rows],
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
    }


async def entries(
    db: Database, caller: Caller, session_id: int, year: int | None, page: Page
) -> dict[str, Any]:
    """One session's ledger entries of the year (live, people masked) with the session's figures computed
    now, each entry's evidence summary, and whether its person's 学时 pass what the session allows."""
    async with reading(db, connections=0) as reader:
        conn = reader.connections[0]
        scope = await scope_for(conn, caller)
        row = (
            await conn.execute(
                select(
                    Session.actual_start,
                    Session.scheduled_start,
                    Organization.id,
                    Organization.name,
                    Organization.type,
                    Organization.sector,
                )
                .join(Course, Course.id == Session.course_id)
                .join(Organization, Organization.id == Course.provider_org_id)
                .where(Session.id == session_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"session {session_id} not found", field="session_id")
        rules.require_provider(scope, row.id, row.sector)
        provider = Provider(row.id, row.name, row.type, row.sector)
        if year is None:
            year = engine.credit_year(row.actual_start or row.scheduled_start)
        versions = await policies(conn)
        block: SessionBlock | None = None
        walking = walk(
            reader, year, [provider], versions, latest(versions), detail=True, session_ids=[session_id]
        )
        async with contextlib.aclosing(walking) as blocks:
            async for b in blocks:
                if isinstance(b, SessionBlock):
                    block = b
        assert block is not None  # the session exists and belongs to the provider
        shown = list(block.entries[page.offset : page.offset + page.page_size])
        ids = [e[E_ID] for e in shown]
        evidence: dict[int, dict[str, Any]] = {
            eid: ev
            for eid, ev in await conn.execute(
                select(CreditEntry.id, CreditEntry.evidence).where(CreditEntry.id.in_(ids))
            )
        }
        first_decision: dict[int, datetime] = {
            eid: at
            for eid, at in await conn.execute(
                select(CreditDecision.entry_id, func.min(CreditDecision.decided_at))
                .where(CreditDecision.entry_id.in_(ids), CreditDecision.action.in_(("approve", "reject")))
                .group_by(CreditDecision.entry_id)
            )
        }
    f = block.figures
    net: dict[int, int] = defaultdict(int)
    for e in block.entries:
        net[e[E_PERSON]] += e[E_CENTS]
    items = []
    for e in shown:
        person, decided = e[E_PERSON], first_decision.get(e[E_ID])
        computed = datetime.fromtimestamp(e[E_COMPUTED], UTC)
        person_xs = cents_to_xueshi(net[person])
        items.append(
            {
                "id": e[E_ID],
                "person_id": person,
                "name": mask_name(e[E_NAME]),
                "phone": mask_phone(e[E_PHONE] or ""),
                "kind": e[E_KIND],
                "category": e[E_CATEGORY],
                "minutes": round(float(e[E_MINUTES]), 1),
                "xueshi": str(cents_to_xueshi(e[E_CENTS])),
                "status": e[E_STATUS],
                "policy_version": e[E_VERSION],
                "computed_at": computed.isoformat(),
                "decided_at": None
                if e[E_DECIDED] is None
                else datetime.fromtimestamp(e[E_DECIDED], UTC).isoformat(),
                "approval_latency_s": None
                if decided is None
                else round((decided - computed).total_seconds(), 3),
                "reversal_of_id": e[E_REVERSAL_OF],
                "note": e[E_NOTE],
                "person_xueshi": str(person_xs),
                "attended": person in block.attending,
                "over": f.allowed_xs is not None and person_xs > f.allowed_xs,
                "evidence": evidence_figures(evidence.get(e[E_ID]) or {}),
            }
        )
    window = f.window
    return {
        "year": year,
        "provider": {"provider_id": provider.id, "name": provider.name, "sector": provider.sector},
        "session": {
            "session_id": f.session_id,
            "title": f.title,
            "kind": f.kind,
            "course_id": block.course.id,
            "course_title": block.course.title,
            "scheduled_start": f.scheduled_start.isoformat(),
            "held": f.held,
            "window": [window[0].isoformat(), window[1].isoformat()] if window else None,
            "window_source": f.window_source,
            "window_s": (window[1] - window[0]).total_seconds() if window else None,
            "allowed_xueshi": None if f.allowed_xs is None else str(f.allowed_xs),
            "max_person_xueshi": str(f.max_person_xs),
            "credited": f.credited,
            "without_attendance": f.without_attendance,
            "attending": f.attending,
            "attendees": f.attendees,
            "enrolled": f.enrolled,
            "capacity": f.capacity,
            "entries": f.sums.entries,
            "xueshi": {k: str(v) for k, v in f.sums.xs.items()}
            | {"total": str(sum(f.sums.xs.values(), ZERO))},
            "flags_open": f.sums.flags_open,
            "flags_total": f.sums.flags_total,
            "over": f.over,
            "reasons": f.reasons,
        },
        "items": items,
        "total": len(block.entries),
        "page": page.page,
        "page_size": page.page_size,
    }


async def export_providers(db: Database, caller: Caller, provider_id: int | None) -> list[Provider]:
    """The providers an export covers: the one asked for (if the caller supervises it), else all in scope."""
    async with db.reading() as conn:
        scope = await scope_for(conn, caller)
        if provider_id is not None:
            return [await provider_in_scope(conn, scope, provider_id)]
        return [p for p in await all_providers(conn) if scope.sees(p.sector)]


async def check_supervisor(db: Database, caller: Caller) -> rules.Scope:
    async with db.reading() as conn:
        return await scope_for(conn, caller)
