"""The bureau's supervision view (监管), on SQLite and PostgreSQL: who sees which providers (the HR bureau and
admins all, an industry department its sector, at every drill-down level; everyone else 403), the figures
of a hand-built year (ledger entries appended through catalog.credit.ledger, decided through
catalog.credit.approval, attendance through the consumer's write paths) checked one by one, the
reconciliation marking a provider that claims more than happened (fraud 17), the export read back with
openpyxl and csv (API and `lectern report` alike), and bad parameters answered 400."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from catalog.credit import approval, ledger
from catalog.domain import Caller, CourseStatus, OrgType, Role
from catalog.models import (
    AuditEntry,
    CreditEntry,
    FraudFlag,
    OfflineAttendance,
    Organization,
    Session,
    SessionTimeCorrection,
)
from catalog.supervision import export
from catalog.supervision.snapshot import SNAPSHOTS, Snapshots
from infra.settings import Settings
from tests.integration.catalog import conftest as catalog_fixtures
from tests.integration.catalog.conftest import SECRET, World
from tests.integration.catalog.credit_support import T0, at, ended_session, live

Client = TestClient[web.Request, web.Application]

# The catalog's fixtures (catalog/conftest.py): each test runs on SQLite and on PostgreSQL.
sqlite_template = catalog_fixtures.sqlite_template
postgres_template = catalog_fixtures.postgres_template
engine_template = catalog_fixtures.engine_template
database_url = catalog_fixtures.database_url
client = catalog_fixtures.client
world = catalog_fixtures.world

YEAR = 2026  # T0's credit year
BUILDING = "建筑"
HEALTH = "卫生健康"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The catalog without background rounds: these tests build the year by hand, then refresh."""
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        data_dir=tmp_path / "var",
        credit_settle_every_s=0,
        supervision_refresh_every_s=0,
    )


@dataclass
class Year:
    """The hand-built year: ids of what the tests look at."""

    s1: int  # 90 min, reconciles
    s2: int  # 45 min, claims more than happened
    s4: int  # never held, yet credited
    t1: int  # the other provider's session
    people: dict[str, int]
    entries: dict[str, int]


async def append(
    w: World, course_id: int, session_id: int | None, person_id: int, xueshi: str, computed_at: datetime
) -> int:
    async with w.db.sessions.begin() as s:
        entry = ledger.append(
            s,
            CreditEntry(
                person_id=person_id, course_id=course_id, session_id=session_id, credit_year=YEAR,
                credit_day=computed_at.date().isoformat(), category="professional", kind="live",
                minutes=float(Decimal(xueshi) * 45), xueshi=Decimal(xueshi), policy_version=0,
                computed_at=computed_at, status="pending", note="",
                evidence={"figures": {"present_s": 5400.0, "window_s": 5400.0, "ratio": 1.0}},
            ),
        )  # fmt: skip
        await s.flush()
        return entry.id


def as_employer(w: World) -> Caller:
    return Caller(
        w.actors["employer_admin"].person_id,
        w.orgs["employer"],
        frozenset({(Role.EMPLOYER_ADMIN, w.orgs["employer"])}),
    )


def as_bureau(w: World) -> Caller:
    return Caller(w.actors["bureau"].person_id, None, frozenset({(Role.BUREAU, w.orgs["bureau"])}))


async def set_sector(w: World, org: str, sector: str | None) -> None:
    async with w.db.sessions.begin() as s:
        await s.execute(update(Organization).where(Organization.id == w.orgs[org]).values(sector=sector))


async def build_year(w: World) -> Year:
    """Provider (建筑): course A1 with S1 (90 min, three learners, one reversal) and S4 (never held, one
    entry); course A2 (capacity 1) with S2 (45 min: 3 学时 to one learner, 1 to someone never enrolled nor
    present). The other provider (卫生健康): one session. Decisions at known delays; two flags."""
    await set_sector(w, "provider", BUILDING)
    await set_sector(w, "other_provider", HEALTH)
    dept = await w.org("dept", OrgType.INDUSTRY_DEPT, "青岛市住房和城乡建设局")
    await set_sector(w, "dept", BUILDING)
    await w.person("dept", [(Role.BUREAU, dept)])
    unset = await w.org("dept_unset", OrgType.INDUSTRY_DEPT, "青岛市某行业主管部门")
    await w.person("dept_unset", [(Role.BUREAU, unset)])

    l1, l2 = w.actors["learner"].person_id, w.actors["staff"].person_id
    l3 = (await w.person("l3", [(Role.LEARNER, w.orgs["employer"])], employer=w.orgs["employer"])).person_id
    x = (await w.person("x", [(Role.LEARNER, None)])).person_id  # no employer: the bureau decides
    a1 = await w.course(w.orgs["provider"], title="建筑工程新技术A1", credit_hours=Decimal(10))
    a2 = await w.course(w.orgs["provider"], title="施工安全A2", credit_hours=Decimal(10), capacity=1)
    b1 = await w.course(w.orgs["other_provider"], title="医院感染管理B1", credit_hours=Decimal(10))
    for person, course in ((l1, a1), (l2, a1), (l3, a1), (l1, a2), (l1, b1)):
        await w.enroll(person, course)

    s1 = await ended_session(w, a1, T0, 90)
    s2 = await ended_session(w, a2, T0 + timedelta(days=1), 45)
    s4 = await w.session(a1, start=T0 + timedelta(days=2))  # never held
    t1 = await ended_session(w, b1, T0 + timedelta(days=3), 60)
    for person in (l1, l2, l3):
        await live(w.db, s1, person, T0, at(90))
    await live(w.db, s2, l1, T0 + timedelta(days=1), at(45, T0 + timedelta(days=1)))
    await live(w.db, t1, l1, T0 + timedelta(days=3), at(60, T0 + timedelta(days=3)))

    posted = T0 + timedelta(hours=2)
    e = {
        "l1_s1": await append(w, a1, s1, l1, "2.0", posted),
        "l2_s1": await append(w, a1, s1, l2, "1.5", posted),
        "l3_s1": await append(w, a1, s1, l3, "2.0", posted),
    }
    reversal = await ledger.reverse(w.db, e["l3_s1"], None, "重复计入", posted + timedelta(hours=1))
    e["l3_s1_rev"] = reversal.id
    e["l3_s1_again"] = await append(w, a1, s1, l3, "1.0", posted + timedelta(hours=1))
    e["l1_s2"] = await append(w, a2, s2, l1, "3.0", posted + timedelta(days=1))
    e["x_s2"] = await append(w, a2, s2, x, "1.0", posted + timedelta(days=1))
    e["l2_s4"] = await append(w, a1, s4, l2, "1.0", posted + timedelta(days=2))
    e["l1_t1"] = await append(w, b1, t1, l1, "1.0", posted + timedelta(days=3))

    # First decisions 2 h, 4 h and 6 h after posting; a later revocation does not count as latency.
    await approval.decide(w.db, as_employer(w), [e["l1_s1"]], "approve", "", posted + timedelta(hours=2))
    await approval.decide(
        w.db, as_employer(w), [e["l2_s1"]], "reject", "证明不足", posted + timedelta(hours=4)
    )
    decided_x = posted + timedelta(days=1, hours=6)
    await approval.decide(w.db, as_bureau(w), [e["x_s2"]], "approve", "", decided_x)
    await approval.revoke(w.db, as_bureau(w), e["x_s2"], "核查为代学", decided_x + timedelta(days=3))

    async with w.db.sessions.begin() as s:
        for session_id, status, code in ((s2, "open", "after_end"), (s1, "dismissed", "two_devices")):
            s.add(
                FraudFlag(
                    person_id=l1, session_id=session_id, course_id=None, code=code,
                    subject=f"session:{session_id}", severity="warning", evidence={}, status=status,
                    created_at=posted,
                )
            )  # fmt: skip
    return Year(s1, s2, s4, t1, {"l1": l1, "l2": l2, "l3": l3, "x": x}, e)


async def get(c: Client, w: World, who: str, path: str, status: int = 200, **params: Any) -> dict[str, Any]:
    r = await c.get(path, params={"year": YEAR, **params}, headers=w.actors[who].headers)
    assert r.status == status, await r.text()
    data: dict[str, Any] = await r.json()
    return data


async def refreshed(c: Client, w: World) -> None:
    r = await c.post("/api/supervision/refresh", json={"year": YEAR}, headers=w.actors["bureau"].headers)
    assert r.status == 200, await r.text()


def provider_of(data: dict[str, Any], org_id: int) -> dict[str, Any]:
    return next(p for p in data["providers"] if p["provider_id"] == org_id)


# -- figures -------------------------------------------------------------------------------------------------


async def test_the_bureau_sees_each_providers_year_as_built(client: Client, world: World) -> None:
    await build_year(world)
    await refreshed(client, world)
    data = await get(client, world, "bureau", "/api/supervision/providers")
    assert data["scope"] == {"all": True, "sectors": []}
    assert {p["provider_id"] for p in data["providers"]} == {
        world.orgs["provider"],
        world.orgs["other_provider"],
    }
    p = provider_of(data, world.orgs["provider"])
    assert p["sector"] == BUILDING
    assert (p["courses"], p["sessions"], p["sessions_held"], p["over_sessions"]) == (2, 3, 2, 2)
    assert p["attendees"] == 4  # l1, l2, l3 and x; nobody twice
    assert p["entries"] == 8  # the reversal is an entry too
    # Net of reversals: l3's 2.0 and its −2.0 cancel; x's approved 1.0 was revoked.
    assert p["xueshi"] == {
        "pending": "5.00", "registered": "2.00", "rejected": "1.50", "revoked": "1.00", "total": "9.50",
    }  # fmt: skip
    assert p["decided"] == 3
    assert p["latency_median_s"] == pytest.approx(4 * 3600)
    assert p["latency_p90_s"] == pytest.approx(5.6 * 3600)  # 4 h + 0.8 × (6 h − 4 h)
    assert (p["flags_open"], p["flags_total"]) == (1, 2)
    other = provider_of(data, world.orgs["other_provider"])
    assert (other["sessions"], other["over_sessions"], other["attendees"]) == (1, 0, 1)
    assert other["xueshi"]["pending"] == "1.00"
    sectors = {t["sector"]: t for t in data["by_sector"]}
    assert sectors[BUILDING]["providers"] == 1
    assert sectors[HEALTH]["xueshi"]["total"] == "1.00"
    assert data["sectors"] == sorted([BUILDING, HEALTH])
    assert data["snapshot"]["year"] == YEAR
    assert data["snapshot"]["entries"] == 9
    # The overview puts the provider with 超额 sessions first.
    assert data["providers"][0]["provider_id"] == world.orgs["provider"]


async def test_reconciliation_marks_a_session_that_claims_more_than_happened(
    client: Client, world: World
) -> None:
    y = await build_year(world)
    await refreshed(client, world)
    data = await get(client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions")
    assert data["total"] == 3
    by_id = {s["session_id"]: s for s in data["items"]}
    s1, s2, s4 = by_id[y.s1], by_id[y.s2], by_id[y.s4]
    assert (s1["over"], s1["reasons"]) == (False, [])
    assert (s1["window_s"], s1["allowed_xueshi"], s1["max_person_xueshi"]) == (5400.0, "2.00", "2.00")
    assert (s1["credited"], s1["attending"], s1["enrolled"], s1["entries"]) == (3, 3, 3, 5)
    assert s1["xueshi"]["pending"] == "1.00"
    assert s1["window_source"] == "actual"
    # 45 minutes allow 1 学时 each; 3 were credited to l1, and 1 to someone neither enrolled nor present,
    # in a course of capacity 1 with one enrolment.
    assert s2["over"] is True
    assert s2["reasons"] == ["duration", "attendance", "enrolled", "capacity"]
    assert (s2["allowed_xueshi"], s2["max_person_xueshi"], s2["without_attendance"]) == ("1.00", "3.00", 1)
    assert (s2["flags_open"], s2["flags_total"]) == (1, 1)
    assert s4["reasons"] == ["not_held", "attendance"]
    assert s4["held"] is False
    assert s4["window"] is None
    # Newest first; 超额 only on request.
    assert [s["session_id"] for s in data["items"]] == [y.s4, y.s2, y.s1]
    over = await get(
        client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions", over=1
    )
    assert [s["session_id"] for s in over["items"]] == [y.s4, y.s2]
    assert over["total"] == 2
    # The entries behind the figure: people masked, the offending person's entry marked.
    entries = await get(client, world, "bureau", f"/api/supervision/sessions/{y.s2}/entries")
    assert entries["session"]["over"] is True
    assert entries["total"] == 2
    rows = {r["person_id"]: r for r in entries["items"]}
    l1, x = rows[y.people["l1"]], rows[y.people["x"]]
    assert (l1["over"], l1["attended"], l1["xueshi"], l1["status"]) == (True, True, "3.00", "pending")
    assert (x["over"], x["attended"], x["status"]) == (False, False, "revoked")
    assert x["approval_latency_s"] == pytest.approx(6 * 3600)
    assert l1["name"] == "测" + "*" * 8
    assert l1["phone"].count("*") == 4
    assert l1["evidence"]["present_s"] == 5400.0


async def test_a_session_entries_are_live_and_paged(client: Client, world: World) -> None:
    y = await build_year(world)
    await refreshed(client, world)
    # A new entry after the snapshot shows in the session's entries at once (the session's figures are
    # computed as they are asked for); the snapshot's list catches up on refresh.
    await append(world, await _course_of(world, y.s1), y.s1, y.people["x"], "0.5", T0)
    page1 = await get(client, world, "bureau", f"/api/supervision/sessions/{y.s1}/entries", page_size=4)
    page2 = await get(
        client, world, "bureau", f"/api/supervision/sessions/{y.s1}/entries", page_size=4, page=2
    )
    assert page1["total"] == page2["total"] == 6
    assert len(page1["items"]) == 4
    assert len(page2["items"]) == 2
    # x was never there nor enrolled: 4 credited of 3 enrolled
    assert page1["session"]["reasons"] == ["attendance", "enrolled"]
    listed = await get(
        client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions"
    )
    assert next(s for s in listed["items"] if s["session_id"] == y.s1)["over"] is False
    # The button does not recompute figures younger than 10 s; the background round (here by hand) does.
    before = listed["snapshot"]["refreshed_at"]
    await refreshed(client, world)
    again = await get(
        client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions"
    )
    assert again["snapshot"]["refreshed_at"] == before
    await client.app[SNAPSHOTS].refresh(YEAR)
    listed = await get(
        client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions"
    )
    assert next(s for s in listed["items"] if s["session_id"] == y.s1)["reasons"] == [
        "attendance",
        "enrolled",
    ]


async def _course_of(w: World, session_id: int) -> int:
    async with w.db.sessions.begin() as s:
        session = await s.get(Session, session_id)
        assert session is not None
        return session.course_id


async def test_a_time_correction_is_the_length_a_session_is_held_to(client: Client, world: World) -> None:
    y = await build_year(world)
    start = T0 + timedelta(days=1)
    async with world.db.sessions.begin() as s:  # as catalog.credit.corrections writes it (audited there)
        s.add(
            SessionTimeCorrection(
                session_id=y.s2, actual_start=start, actual_end=at(135, start), reason="实际延长",
                corrected_by=world.actors["provider_admin"].person_id, at=start + timedelta(days=1),
            )
        )  # fmt: skip
    await refreshed(client, world)
    data = await get(client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions")
    s2 = next(s for s in data["items"] if s["session_id"] == y.s2)
    assert (s2["window_source"], s2["allowed_xueshi"]) == ("correction", "3.00")
    assert "duration" not in s2["reasons"]


# -- scope ---------------------------------------------------------------------------------------------------


async def test_an_industry_department_sees_only_its_sector_at_every_level(
    client: Client, world: World
) -> None:
    y = await build_year(world)
    await refreshed(client, world)
    mine, theirs = world.orgs["provider"], world.orgs["other_provider"]
    data = await get(client, world, "dept", "/api/supervision/providers")
    assert data["scope"] == {"all": False, "sectors": [BUILDING]}
    assert [p["provider_id"] for p in data["providers"]] == [mine]
    assert data["sectors"] == [BUILDING]
    await get(client, world, "dept", "/api/supervision/providers", sector=BUILDING)
    await get(client, world, "dept", f"/api/supervision/providers/{mine}/sessions")
    await get(client, world, "dept", f"/api/supervision/sessions/{y.s1}/entries")
    for path, params in (
        ("/api/supervision/providers", {"sector": HEALTH}),
        (f"/api/supervision/providers/{theirs}/sessions", {}),
        (f"/api/supervision/sessions/{y.t1}/entries", {}),
        ("/api/supervision/export.xlsx", {"provider": theirs}),
        ("/api/supervision/export.csv", {"provider": theirs}),
    ):
        error = await get(client, world, "dept", path, 403, **params)
        assert error["error"]["code"] == "forbidden", path
    # What does not exist is not found, for everyone.
    for who in ("dept", "bureau"):
        await get(client, world, who, "/api/supervision/providers/999999/sessions", 404)
        await get(client, world, who, f"/api/supervision/providers/{world.orgs['employer']}/sessions", 404)
        await get(client, world, who, "/api/supervision/sessions/999999/entries", 404)
        await get(client, world, who, "/api/supervision/export.xlsx", 404, provider=999999)
    # Its export holds its sector only.
    r = await client.get(
        "/api/supervision/export.csv", params={"year": YEAR}, headers=world.actors["dept"].headers
    )
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    assert {row[1] for row in rows[1:]} == {str(mine)}
    # A department whose own sector is not set yet supervises nobody.
    empty = await get(client, world, "dept_unset", "/api/supervision/providers")
    assert empty["providers"] == []
    assert empty["scope"] == {"all": False, "sectors": []}


async def test_an_industry_department_reads_only_its_sectors_providers_across_the_catalog(
    client: Client, world: World
) -> None:
    """Beyond /supervision: a session's credit table, its time corrections, the review list, a course's
    enrolments and a provider's unpublished courses are its sector's only; what the HR bureau alone does
    (the audit log, the policy's history, the unaffiliated queue) it does not; it decides no flag."""
    y = await build_year(world)
    mine, theirs = world.orgs["provider"], world.orgs["other_provider"]
    their_draft = await world.course(theirs, status=CourseStatus.DRAFT, title="他行业草稿")
    async with world.db.sessions.begin() as s:
        a1, b1 = (await s.get(Session, y.s1)).course_id, (await s.get(Session, y.t1)).course_id  # type: ignore[union-attr]
        flags = [
            FraudFlag(
                person_id=y.people["l1"], session_id=session_id, course_id=course_id, code="late_join",
                subject=f"session:{session_id}", severity="warning", evidence={}, status="open",
                created_at=T0,
            )
            for session_id, course_id in ((y.s1, a1), (y.t1, b1))
        ]  # fmt: skip
        s.add_all(flags)
        await s.flush()
        my_flag, their_flag = flags[0].id, flags[1].id

    async def status(who: str, path: str, **params: Any) -> int:
        r = await client.get(path, params=params, headers=world.actors[who].headers)
        return r.status

    readable = {
        f"/api/sessions/{y.s1}/credits": f"/api/sessions/{y.t1}/credits",
        f"/api/sessions/{y.s1}/attendance.csv": f"/api/sessions/{y.t1}/attendance.csv",
        f"/api/sessions/{y.s1}/time-corrections": f"/api/sessions/{y.t1}/time-corrections",
        f"/api/courses/{a1}/enrollments": f"/api/courses/{b1}/enrollments",
        f"/api/courses/{world.draft_course_id}": f"/api/courses/{their_draft}",
    }
    for own, other in readable.items():
        assert await status("dept", own) == 200, own
        assert await status("dept", other) in (403, 404), other
        assert await status("bureau", other) == 200, other
    assert await status("dept", "/api/courses", provider_id=mine, status="draft") == 200
    assert await status("dept", "/api/courses", provider_id=theirs, status="draft") == 403

    r = await client.get("/api/fraud-flags", headers=world.actors["dept"].headers)
    assert r.status == 200
    assert {f["id"] for f in (await r.json())["items"]} & {my_flag, their_flag} == {my_flag}
    r = await client.get("/api/fraud-flags", headers=world.actors["bureau"].headers)
    assert {my_flag, their_flag} <= {f["id"] for f in (await r.json())["items"]}
    r = await client.get("/api/fraud-flags", headers=world.actors["dept_unset"].headers)
    assert (r.status, (await r.json())["items"]) == (200, [])
    r = await client.post(
        f"/api/fraud-flags/{my_flag}/resolve",
        json={"status": "dismissed", "resolution": "已核实"},
        headers=world.actors["dept"].headers,
    )
    assert r.status == 403
    r = await client.post(
        f"/api/fraud-flags/{their_flag}/resolve",
        json={"status": "dismissed", "resolution": "已核实"},
        headers=world.actors["dept"].headers,
    )
    assert r.status == 404

    for path in ("/api/audit-log", "/api/credit-policy/versions", "/api/credit-entries/unaffiliated"):
        assert await status("dept", path) == 403, path
        assert await status("bureau", path) == 200, path


async def test_people_who_supervise_nobody_are_refused(client: Client, world: World) -> None:
    paths = (
        "/api/supervision/providers",
        f"/api/supervision/providers/{world.orgs['provider']}/sessions",
        f"/api/supervision/sessions/{world.session_id}/entries",
        "/api/supervision/export.xlsx",
        "/api/supervision/export.csv",
    )
    for who in ("learner", "expert", "provider_admin", "employer_admin", "reviewer"):
        for path in paths:
            assert (await get(client, world, who, path, 403))["error"]["code"] == "forbidden", (who, path)
        r = await client.post("/api/supervision/refresh", json={}, headers=world.actors[who].headers)
        assert r.status == 403, who
    r = await client.get("/api/supervision/providers")
    assert r.status == 401


async def test_only_admins_set_a_sector_and_it_is_audited(client: Client, world: World) -> None:
    org = world.orgs["provider"]
    for who in ("bureau", "provider_admin"):
        r = await client.put(
            f"/api/organizations/{org}/sector", json={"sector": BUILDING}, headers=world.actors[who].headers
        )
        assert r.status == 403
    r = await client.put(
        f"/api/organizations/{org}/sector",
        json={"sector": f" {BUILDING} "},
        headers=world.actors["admin"].headers,
    )
    assert r.status == 200
    assert (await r.json())["sector"] == BUILDING
    r = await client.get(f"/api/organizations/{org}")
    assert (await r.json())["sector"] == BUILDING
    r = await client.put(
        f"/api/organizations/{world.orgs['employer']}/sector",
        json={"sector": BUILDING},
        headers=world.actors["admin"].headers,
    )
    assert r.status == 400
    assert (await r.json())["error"]["field"] == "sector"
    r = await client.put(
        f"/api/organizations/{org}/sector", json={"sector": None}, headers=world.actors["admin"].headers
    )
    assert r.status == 200
    assert (await r.json())["sector"] is None
    async with world.db.sessions.begin() as s:
        audited = (
            await s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "organization.sector_set"))
        ).all()
    assert audited == [{"from": None, "to": BUILDING}, {"from": BUILDING, "to": None}]
    # A new organization may be created with its sector.
    r = await client.post(
        "/api/organizations",
        json={"type": "industry_dept", "name": "青岛市卫生健康委员会", "sector": HEALTH},
        headers=world.actors["admin"].headers,
    )
    assert r.status == 201
    assert (await r.json())["sector"] == HEALTH


# -- export --------------------------------------------------------------------------------------------------


def sheets(data: bytes) -> dict[str, list[tuple[Any, ...]]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in book.worksheets}


async def test_the_export_holds_the_figures_and_every_entry_in_xlsx_and_csv(
    client: Client, world: World, tmp_path: Path, database_url: str
) -> None:
    y = await build_year(world)
    r = await client.get(
        "/api/supervision/export.xlsx", params={"year": YEAR}, headers=world.actors["bureau"].headers
    )
    assert r.status == 200
    assert r.headers["Content-Type"].startswith(export.CONTENT_TYPES["xlsx"])
    assert "attachment" in r.headers["Content-Disposition"]
    book = sheets(await r.read())
    assert list(book) == ["机构汇总", "课次核对", "学时明细"]
    assert book["机构汇总"][0] == export.PROVIDER_HEADER
    summary = {row[0]: row for row in book["机构汇总"][1:]}
    mine = summary[world.orgs["provider"]]
    assert (mine[4], mine[5], mine[6], mine[7], mine[8], mine[9]) == (2, 3, 2, 2, 4, 8)
    assert mine[10:14] == (5, 2, 1.5, 1)  # pending, registered, rejected, revoked 学时
    assert mine[15] == pytest.approx(4.0)  # median approval latency, hours
    sessions = {row[5]: row for row in book["课次核对"][1:]}
    assert sessions[y.s2][-2] == "超额"
    assert sessions[y.s1][-2] == "正常"
    assert "学时超过课次时长" in sessions[y.s2][-1]
    detail = book["学时明细"]
    assert detail[0] == export.ENTRY_HEADER
    assert sorted(row[0] for row in detail[1:]) == sorted(y.entries.values())
    by_id = {row[0]: row for row in detail[1:]}
    l1_s2 = by_id[y.entries["l1_s2"]]
    assert (l1_s2[9], l1_s2[11], l1_s2[15], l1_s2[16]) == ("超额", "测" + "*" * 8, 3, "待审核")
    assert isinstance(l1_s2[17], datetime)  # computed_at, as a date in Beijing time
    assert l1_s2[17] == (T0 + timedelta(days=1, hours=2 + 8)).replace(tzinfo=None)
    assert by_id[y.entries["l3_s1_rev"]][15] == -2
    assert by_id[y.entries["l3_s1_rev"]][20] == y.entries["l3_s1"]

    r = await client.get(
        "/api/supervision/export.csv", params={"year": YEAR}, headers=world.actors["bureau"].headers
    )
    body = await r.read()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert tuple(rows[0]) == export.ENTRY_HEADER
    assert [int(row[0]) for row in rows[1:]] == [row[0] for row in detail[1:]]  # the same rows, in order
    assert rows[1 + [row[0] for row in detail[1:]].index(y.entries["l1_s2"])][17] == "2026-03-03 11:00:00"

    # `lectern report` writes the same rows.
    for name in ("report.xlsx", "report.csv"):
        out = tmp_path / name
        code, stderr = await run_cli(database_url, tmp_path, "report", "--year", str(YEAR), "--out", str(out))
        assert code == 0, stderr
        assert "100%" in stderr
        assert "9/9 rows" in stderr
        if name.endswith(".xlsx"):
            assert sheets(out.read_bytes()) == book
        else:
            assert list(csv.reader(io.StringIO(out.read_text("utf-8-sig")))) == rows
    one = tmp_path / "one.csv"
    provider = str(world.orgs["other_provider"])
    code, _ = await run_cli(
        database_url, tmp_path, "report", "--year", str(YEAR), "--provider", provider, "--out", str(one)
    )
    assert code == 0
    assert [row[1] for row in csv.reader(io.StringIO(one.read_text("utf-8-sig")))][1:] == [provider]
    for bad in (
        ["--out", str(tmp_path / "x.pdf")],
        ["--provider", "999999", "--out", str(tmp_path / "y.csv")],
    ):
        code, stderr = await run_cli(database_url, tmp_path, "report", "--year", str(YEAR), *bad)
        assert code == 2
        assert "lectern report:" in stderr
    assert not (tmp_path / "y.csv").exists()  # a failed run leaves no file
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".lectern-report-")]


async def run_cli(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "LECTERN_SECRET_KEY": SECRET,
        "LECTERN_DATA_DIR": str(tmp_path / "cli-var"),
        "LECTERN_LOG_LEVEL": "WARNING",
    }
    script = "import sys; from streaming.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


# -- bad input -----------------------------------------------------------------------------------------------


BAD_QUERIES = (
    ("/api/supervision/providers", {"year": "abc"}, "year"),
    ("/api/supervision/providers", {"year": "1999"}, "year"),
    ("/api/supervision/providers", {"sector": "行" * 65}, "sector"),
    ("/api/supervision/providers/{p}/sessions", {"over": "2"}, "over"),
    ("/api/supervision/providers/{p}/sessions", {"page": "0"}, "page"),
    ("/api/supervision/providers/{p}/sessions", {"page_size": "101"}, "page_size"),
    ("/api/supervision/sessions/{s}/entries", {"year": "２０２６"}, "year"),
    ("/api/supervision/export.xlsx", {"provider": "abc"}, "provider"),
    ("/api/supervision/export.csv", {"year": "-1"}, "year"),
)


async def test_bad_query_parameters_are_400_json(client: Client, world: World) -> None:
    for path, params, field in BAD_QUERIES:
        url = path.format(p=world.orgs["provider"], s=world.session_id)
        r = await client.get(url, params=params, headers=world.actors["bureau"].headers)
        assert r.status == 400, (url, params, await r.text())
        error = (await r.json())["error"]
        assert (error["code"], error["field"]) == ("invalid", field), (url, params)


async def test_bad_bodies_are_400_json(client: Client, world: World) -> None:
    admin = world.actors["admin"].headers
    for body, field in (({"year": "2026"}, "year"), ({"year": 2026, "x": 1}, "x"), ({"year": 1800}, "year")):
        r = await client.post("/api/supervision/refresh", json=body, headers=admin)
        assert r.status == 400
        assert (await r.json())["error"]["field"] == field
    org = world.orgs["provider"]
    for body, field in (({}, "sector"), ({"sector": 5}, "sector"), ({"sector": "行" * 65}, "sector")):
        r = await client.put(f"/api/organizations/{org}/sector", json=body, headers=admin)
        assert r.status == 400
        assert (await r.json())["error"]["field"] == field


async def test_a_year_without_credit_has_providers_with_zeros(client: Client, world: World) -> None:
    data = await get(client, world, "admin", "/api/supervision/providers", year=2031)
    assert {p["provider_id"] for p in data["providers"]} == {
        world.orgs["provider"],
        world.orgs["other_provider"],
    }
    assert all(p["entries"] == 0 and p["latency_median_s"] is None for p in data["providers"])
    assert data["snapshot"]["entries"] == 0
    # The export of such a year is well formed and holds the providers and headers only.
    r = await client.get(
        "/api/supervision/export.xlsx", params={"year": 2031}, headers=world.actors["admin"].headers
    )
    book = sheets(await r.read())
    assert len(book["机构汇总"]) == 3
    assert book["课次核对"] == [export.SESSION_HEADER]
    assert len(book["学时明细"]) == 1
    now = datetime.now(UTC)
    assert abs((datetime.fromisoformat(data["snapshot"]["refreshed_at"]) - now).total_seconds()) < 60


async def test_the_background_round_keeps_the_current_year_fresh_and_leaves_old_years_alone(
    client: Client, world: World
) -> None:
    await build_year(world)  # credit of 2026
    clock = [datetime(2026, 6, 1, 4, 0, tzinfo=UTC)]
    snapshots = Snapshots(world.db, max_age_s=300, clock=lambda: clock[0])
    old = await snapshots.ensure(2024)  # someone looked at 2024 once
    await snapshots.round()
    first = await snapshots.ensure(YEAR)
    assert first.refreshed_at == clock[0]
    assert first.entries == 9
    clock[0] += timedelta(minutes=10)
    await snapshots.round()
    assert (await snapshots.ensure(YEAR)).refreshed_at == clock[0]  # older than 300 s: recomputed
    assert (await snapshots.ensure(2024)).refreshed_at == old.refreshed_at  # an old year: on request only
    clock[0] += timedelta(seconds=30)
    await snapshots.round()
    assert (await snapshots.ensure(YEAR)).refreshed_at == clock[0] - timedelta(seconds=30)  # still fresh


async def test_an_offline_session_reconciles_against_its_schedule_and_its_sign_ins(
    client: Client, world: World
) -> None:
    """An offline class is not started on the server: its schedule is its length (as catalog.offline
    credits it), and a sign-in at the venue is attendance."""
    l1, l2 = world.actors["learner"].person_id, world.actors["staff"].person_id
    course = await world.course(world.orgs["provider"], title="线下实训", credit_hours=Decimal(10))
    for person in (l1, l2):
        await world.enroll(person, course)
    async with world.db.sessions.begin() as s:
        offline = Session(
            course_id=course, title="现场教学", kind="offline", scheduled_start=T0,
            scheduled_end=at(90), external_platform="none", external_ids={},
        )  # fmt: skip
        s.add(offline)
        await s.flush()
        session_id = offline.id
        s.add(
            OfflineAttendance(
                session_id=session_id, person_id=l1, signed_in_at=T0, signed_out_at=at(90),
                in_code_slot=0, out_code_slot=3, created_at=T0, updated_at=at(90),
            )
        )  # fmt: skip
    await append(world, course, session_id, l1, "2.0", at(100))
    await append(world, course, session_id, l2, "2.0", at(100))  # never signed in
    await refreshed(client, world)
    data = await get(client, world, "bureau", f"/api/supervision/providers/{world.orgs['provider']}/sessions")
    row = next(s for s in data["items"] if s["session_id"] == session_id)
    assert (row["window_source"], row["window_s"], row["allowed_xueshi"]) == ("schedule", 5400.0, "2.00")
    assert (row["attending"], row["without_attendance"]) == (1, 1)
    assert row["reasons"] == ["attendance"]
    entries = await get(client, world, "bureau", f"/api/supervision/sessions/{session_id}/entries")
    assert {e["person_id"]: e["attended"] for e in entries["items"]} == {l1: True, l2: False}
    # Held: someone signed in at the venue in the year it was scheduled.
    assert row["held"] is True


async def test_an_offline_session_is_held_when_someone_signed_in_credited_or_not(
    client: Client, world: World
) -> None:
    """An offline class with sign-ins counts as held and is listed even before anyone is credited (a
    missed sign-out earns nothing until corrected); one nobody came to is neither held nor listed."""
    l1, provider = world.actors["learner"].person_id, world.orgs["provider"]
    course = await world.course(provider, title="线下实训", credit_hours=Decimal(10))
    await world.enroll(l1, course)
    async with world.db.sessions.begin() as s:
        came, empty = (
            Session(
                course_id=course, title=title, kind="offline", scheduled_start=start,
                scheduled_end=start + timedelta(minutes=90), external_platform="none", external_ids={},
            )
            for title, start in (("有人签到", T0), ("无人到场", T0 + timedelta(days=1)))
        )  # fmt: skip
        s.add_all([came, empty])
        await s.flush()
        s.add(
            OfflineAttendance(
                session_id=came.id, person_id=l1, signed_in_at=T0, signed_out_at=None,
                in_code_slot=0, out_code_slot=None, created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
        came_id, empty_id = came.id, empty.id
    await refreshed(client, world)
    data = await get(client, world, "bureau", f"/api/supervision/providers/{provider}/sessions")
    rows = {s["session_id"]: s for s in data["items"]}
    assert empty_id not in rows
    assert (rows[came_id]["held"], rows[came_id]["attending"], rows[came_id]["reasons"]) == (True, 1, [])
    # The provider's figures count it among its sessions held.
    figures = provider_of(await get(client, world, "bureau", "/api/supervision/providers"), provider)
    assert data["total"] == len(rows)
    assert (figures["sessions"], figures["sessions_held"]) == (
        len(rows),
        sum(r["held"] for r in rows.values()),
    )
