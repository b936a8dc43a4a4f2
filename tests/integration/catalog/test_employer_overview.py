"""The employer's 学时台账 (catalog.credit.employer): each staff member's registered 学时 against the
requirement, who is short and by how much, pending apart, the enrolments the employer arranged, and the
study record export (XLSX read back with openpyxl, CSV); another employer's administrator is refused.
And 我的学时's statuses: each entry with the latest decision's reason. Ledger rows and decisions are
seeded directly (approval has its own tests); the enrolment goes through the employer's own API."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.credit import employer
from catalog.credit.engine import credit_year
from catalog.domain import OrgType, Role
from catalog.models import CreditDecision, CreditEntry, Person
from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
YEAR = credit_year(datetime.now(UTC))  # this year: the employer's enrolment below is made now
DECIDED = datetime(YEAR, 4, 1, 2, 30, tzinfo=UTC)  # 10:30 in Beijing


async def _entry(
    w: World,
    who: str,
    course_id: int,
    xueshi: str,
    *,
    category: str = "professional",
    status: str = "pending",
    year: int = YEAR,
    day: str = f"{YEAR}-03-02",
    kind: str = "live",
    reversal_of: int | None = None,
    note: str = "",
) -> int:
    async with w.db.sessions.begin() as s:
        e = CreditEntry(
            person_id=w.actors[who].person_id,
            course_id=course_id,
            session_id=None,
            credit_year=year,
            credit_day=day,
            category=category,
            kind=kind,
            minutes=float(Decimal(xueshi) * 45),
            xueshi=Decimal(xueshi),
            policy_version=0,
            computed_at=DECIDED,
            status=status,
            reversal_of_id=reversal_of,
            note=note,
            evidence={},
            decided_by=w.actors["employer_admin"].person_id if status != "pending" else None,
            decided_at=DECIDED if status != "pending" else None,
        )
        s.add(e)
        await s.flush()
        return e.id


async def _decision(
    w: World, entry_id: int, action: str, from_status: str, to_status: str, reason: str
) -> None:
    async with w.db.sessions.begin() as s:
        e = await s.get(CreditEntry, entry_id)
        assert e is not None
        s.add(
            CreditDecision(
                entry_id=entry_id,
                person_id=e.person_id,
                action=action,
                from_status=from_status,
                to_status=to_status,
                reason=reason,
                decided_by=w.actors["employer_admin"].person_id,
                decided_as="employer_admin",
                org_id=w.orgs["employer"],
                decided_at=DECIDED,
            )
        )


async def _ledger(w: World) -> dict[str, Any]:
    """The hand-computed case (default policy: 90 in all, 公需 ≥ 30, 专业 ≥ 60):

    learner: registered 公需 12 + 8 = 20, 专业 65, pending 专业 5; a rejected 3 and a revoked 4 count
        nowhere; a registered 2.5 reversed (-2.5) nets 0; 50 registered in the year before do not count.
        Short 公需 10, 专业 0, total 5 → shortfall 10 (公需 alone lacks 10).
    staff: registered 公需 31.5, 专业 60 (91.5, met), pending 公需 1.5 → shortfall 0.
    employer_admin: nothing → short 30 / 60 / 90, shortfall 90.
    """
    public = await w.course(w.orgs["provider"], title="职业道德与诚信建设", category="public")
    prof = w.course_id
    ids: dict[str, Any] = {"public": public}
    await _entry(w, "learner", public, "12", category="public", status="registered", day=f"{YEAR}-03-01")
    await _entry(w, "learner", public, "8", category="public", status="registered", day=f"{YEAR}-03-05")
    await _entry(w, "learner", prof, "65", status="registered", day=f"{YEAR}-03-02")
    await _entry(w, "learner", prof, "5", day=f"{YEAR}-03-03")
    ids["rejected"] = await _entry(w, "learner", prof, "3", status="rejected", day=f"{YEAR}-03-04")
    await _decision(w, ids["rejected"], "reject", "pending", "rejected", "与考勤记录不符")
    ids["revoked"] = await _entry(
        w, "learner", public, "4", category="public", status="registered", day=f"{YEAR}-03-06"
    )
    await _decision(w, ids["revoked"], "approve", "pending", "registered", "")
    await _decision(w, ids["revoked"], "revoke", "registered", "revoked", "重复报送")
    async with w.db.sessions.begin() as s:
        revoked = await s.get(CreditEntry, ids["revoked"])
        assert revoked is not None
        revoked.status = "revoked"
    ids["reversed"] = await _entry(w, "learner", prof, "2.5", status="registered", day=f"{YEAR}-03-07")
    await _entry(
        w,
        "learner",
        prof,
        "-2.5",
        status="registered",
        day=f"{YEAR}-03-07",
        kind="reversal",
        reversal_of=ids["reversed"],
        note="时间更正",
    )
    await _entry(w, "learner", prof, "50", status="registered", year=YEAR - 1, day=f"{YEAR - 1}-05-01")
    await _entry(w, "staff", public, "31.5", category="public", status="registered", day=f"{YEAR}-06-01")
    await _entry(w, "staff", prof, "60", status="registered", day=f"{YEAR}-06-02")
    await _entry(w, "staff", public, "1.5", category="public", day=f"{YEAR}-06-03")
    # Someone else's staff: never listed.
    other = await w.org("other_employer", OrgType.EMPLOYER, "青岛啤酒股份有限公司")
    await w.person("outsider", [(Role.LEARNER, other)], employer=other)
    await _entry(w, "outsider", prof, "7", status="registered")
    await w.person("other_employer_admin", [(Role.EMPLOYER_ADMIN, other)], employer=other)
    return ids


async def _get(client: Client, w: World, who: str, path: str) -> Any:
    resp = await client.get(path, headers=w.actors[who].headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_staff_overview_counts_registered_shows_pending_apart_and_says_who_is_short(
    client: Client, world: World
) -> None:
    w = world
    await _ledger(w)
    # The employer arranges a course for staff, through its own API.
    resp = await client.post(
        f"/api/employers/{w.orgs['employer']}/enrollments",
        json={"course_id": w.course_id, "person_ids": [w.actors["staff"].person_id]},
        headers=w.actors["employer_admin"].headers,
    )
    assert resp.status == 201, await resp.text()

    view = await _get(client, w, "employer_admin", f"/api/employers/{w.orgs['employer']}/staff?year={YEAR}")
    assert view["org"]["name"] == "青岛港集团"
    assert view["required"] == {"total": "90", "public": "30", "professional": "60"}
    assert view["counts"] == {"staff": 3, "met": 1, "short": 2}
    assert view["total"] == 3
    by_name = {i["name"]: i for i in view["items"]}
    assert [i["name"] for i in view["items"]] == ["测试employer_admin", "测试learner", "测试staff"]

    learner = by_name["测试learner"]
    assert learner["registered"] == {"public": "20.00", "professional": "65.00"}
    assert learner["total_registered"] == "85.00"
    assert learner["pending"] == {"public": "0.00", "professional": "5.00"}
    assert learner["total_pending"] == "5.00"
    assert learner["short"] == {"public": "10.00", "professional": "0.00", "total": "5.00"}
    assert learner["shortfall"] == "10.00"
    assert (learner["met_public"], learner["met_professional"], learner["met_total"]) == (False, True, False)
    assert learner["phone"] == w.actors["learner"].phone[:3] + "****" + w.actors["learner"].phone[-4:]
    assert learner["arranged"] == []  # enrolled by themself, not by the employer

    staff = by_name["测试staff"]
    assert staff["total_registered"] == "91.50"
    assert staff["pending"]["public"] == "1.50"
    assert staff["met"] is True
    assert staff["shortfall"] == "0.00"
    [arranged] = staff["arranged"]
    assert arranged["course_title"] == "建筑工程新技术"
    assert arranged["status"] == "enrolled"
    assert arranged["registered_xueshi"] == "60.00"

    admin = by_name["测试employer_admin"]
    assert admin["short"] == {"public": "30.00", "professional": "60.00", "total": "90.00"}
    assert admin["shortfall"] == "90.00"


async def test_staff_overview_filters_the_short_sorts_and_pages(client: Client, world: World) -> None:
    w = world
    await _ledger(w)
    base = f"/api/employers/{w.orgs['employer']}/staff?year={YEAR}"

    short = await _get(client, w, "employer_admin", f"{base}&short=1")
    assert [i["name"] for i in short["items"]] == ["测试employer_admin", "测试learner"]
    assert short["total"] == 2

    least = await _get(client, w, "employer_admin", f"{base}&sort=-shortfall")
    assert [i["name"] for i in least["items"]] == ["测试staff", "测试learner", "测试employer_admin"]

    by_name = await _get(client, w, "employer_admin", f"{base}&sort=name&page=2&page_size=1")
    assert [i["name"] for i in by_name["items"]] == ["测试learner"]
    assert (by_name["total"], by_name["page"], by_name["page_size"]) == (3, 2, 1)

    # Another year: nobody has anything, everybody lacks the whole requirement.
    empty = await _get(client, w, "bureau", f"/api/employers/{w.orgs['employer']}/staff?year={YEAR + 1}")
    assert {i["shortfall"] for i in empty["items"]} == {"90.00"}
    assert empty["counts"] == {"staff": 3, "met": 0, "short": 3}


async def test_another_employers_admin_and_an_industry_department_are_refused(
    client: Client, world: World
) -> None:
    w = world
    await _ledger(w)
    dept = await w.org("dept", OrgType.INDUSTRY_DEPT, "青岛市交通运输局")
    await w.person("industry", [(Role.BUREAU, dept)])
    org = w.orgs["employer"]
    for who in ("other_employer_admin", "industry", "learner", "provider_admin"):
        for path in (f"/api/employers/{org}/staff", f"/api/employers/{org}/study-record.xlsx"):
            resp = await client.get(path, headers=w.actors[who].headers)
            assert resp.status == 403, (who, path, await resp.text())
            assert (await resp.json())["error"]["code"] == "forbidden"
    # Not an employer, or no such organization: not found.
    for other in (w.orgs["provider"], 987654321):
        resp = await client.get(f"/api/employers/{other}/staff", headers=w.actors["admin"].headers)
        assert resp.status == 404, await resp.text()


@pytest.mark.parametrize(
    "query",
    ["year=1999", "year=2101", "year=abc", "year=２０２６", "sort=fastest", "short=2", "page_size=101"],
)
async def test_bad_query_is_400_naming_the_field(client: Client, world: World, query: str) -> None:
    org = world.orgs["employer"]
    for path in (f"/api/employers/{org}/staff?{query}", f"/api/employers/{org}/study-record.csv?{query}"):
        if "year" not in query and "study-record" in path:
            continue
        resp = await client.get(path, headers=world.actors["employer_admin"].headers)
        assert resp.status == 400, (path, await resp.text())
        assert (await resp.json())["error"]["field"] == query.split("=")[0]


async def test_study_record_xlsx_and_csv_hold_one_row_per_entry_of_the_year(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    ids = await _ledger(w)
    monkeypatch.setattr(employer, "RECORD_BATCH", 2)  # several keyset batches, a person across two
    path = f"/api/employers/{w.orgs['employer']}/study-record"

    resp = await client.get(f"{path}.xlsx?year={YEAR}", headers=w.actors["employer_admin"].headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in resp.headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(await resp.read()), read_only=True)
    sheet = book.active
    assert sheet is not None
    assert sheet.title == "学习记录"
    # Trailing empty cells are not written (a streamed sheet declares no dimension): pad to the header.
    rows = [
        list(r) + [None] * (len(employer.RECORD_HEADER) - len(r)) for r in sheet.iter_rows(values_only=True)
    ]
    assert tuple(rows[0]) == employer.RECORD_HEADER
    body = rows[1:]
    # learner: 8 entries this year (last year's left out); staff 3; employer_admin none; no outsider.
    assert [r[0] for r in body] == ["测试learner"] * 8 + ["测试staff"] * 3
    learner_phone = w.actors["learner"].phone
    assert {r[1] for r in body[:8]} == {learner_phone[:3] + "****" + learner_phone[-4:]}
    assert [r[5] for r in body[:8]] == [f"{YEAR}-03-0{d}" for d in (1, 2, 3, 4, 5, 6, 7, 7)]  # by day
    by_day = {r[5]: r for r in body[:7]}
    assert by_day[f"{YEAR}-03-01"][2:] == [
        "职业道德与诚信建设",
        "公需科目",
        "直播",
        f"{YEAR}-03-01",
        12,
        "已认定",
        f"{YEAR}-04-01 10:30",
        None,
    ]
    assert by_day[f"{YEAR}-03-03"][6:9] == [5, "待审核", None]
    assert by_day[f"{YEAR}-03-04"][7:] == ["已驳回", f"{YEAR}-04-01 10:30", "与考勤记录不符"]
    assert by_day[f"{YEAR}-03-06"][7:] == ["已撤销", f"{YEAR}-04-01 10:30", "重复报送"]
    reversal = body[7]
    assert reversal[4:7] == ["更正（冲销）", f"{YEAR}-03-07", -2.5]
    assert reversal[9] == f"冲销第 {ids['reversed']} 条记录：时间更正"
    assert sum(r[6] for r in body[:8] if r[7] == "已认定") == 85  # what the overview counts
    book.close()

    resp = await client.get(f"{path}.csv?year={YEAR}", headers=w.actors["bureau"].headers)
    assert resp.status == 200, await resp.text()
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert tuple(table[0]) == employer.RECORD_HEADER
    assert [r[0] for r in table[1:]] == [r[0] for r in body]
    assert [r[7] for r in table[1:]] == [r[7] for r in body]


async def test_study_record_of_a_year_without_entries_is_just_the_header(
    client: Client, world: World
) -> None:
    w = world
    resp = await client.get(
        f"/api/employers/{w.orgs['employer']}/study-record.xlsx?year={YEAR + 5}",
        headers=w.actors["admin"].headers,
    )
    assert resp.status == 200
    book = openpyxl.load_workbook(io.BytesIO(await resp.read()), read_only=True)
    assert book.active is not None
    assert [tuple(r) for r in book.active.iter_rows(values_only=True)] == [employer.RECORD_HEADER]
    book.close()


async def test_my_credits_shows_each_entrys_status_with_the_latest_decisions_reason(
    client: Client, world: World
) -> None:
    w = world
    ids = await _ledger(w)
    view = await _get(client, w, "learner", f"/api/me/credits?year={YEAR}")
    entries = {e["id"]: e for c in view["courses"] for e in c["entries"]}
    assert entries[ids["rejected"]]["status"] == "rejected"
    assert entries[ids["rejected"]]["decision"]["reason"] == "与考勤记录不符"
    assert entries[ids["rejected"]]["decided_at"] == DECIDED.isoformat()
    revoked = entries[ids["revoked"]]
    assert (revoked["status"], revoked["decision"]["action"], revoked["decision"]["reason"]) == (
        "revoked",
        "revoke",
        "重复报送",
    )
    assert entries[ids["reversed"]]["reversed"] is True
    pending = [e for e in entries.values() if e["status"] == "pending"]
    assert [e["decision"] for e in pending] == [None]
    assert view["summary"]["registered"] == {"public": "20.00", "professional": "65.00"}
    # The outsider's person row exists, and nothing of theirs shows to the learner.
    async with w.db.sessions.begin() as s:
        assert await s.get(Person, w.actors["outsider"].person_id) is not None
    assert all(e["xueshi"] != "7.00" for e in entries.values())


async def test_decisions_through_the_approval_api_show_on_my_credits_the_overview_and_a_certificate(
    client: Client, world: World
) -> None:
    """The real routes end to end: the employer approves one entry, rejects one, approves and revokes a
    third (catalog.credit.approval); the learner reads each status and reason, the overview counts the
    registered one only, and a certificate of it can be issued (catalog.certificates)."""
    w = world
    prof = w.course_id
    kept, rejected, revoked = [
        await _entry(w, "learner", prof, x, day=f"{YEAR}-03-0{d}")
        for x, d in (("2", 2), ("1.5", 3), ("1", 4))
    ]
    admin = w.actors["employer_admin"].headers

    async def post(path: str, body: dict[str, Any]) -> None:
        resp = await client.post(path, json=body, headers=admin)
        assert resp.status == 200, await resp.text()

    await post("/api/credit-entries/decisions", {"entry_ids": [kept, revoked], "action": "approve"})
    await post(
        "/api/credit-entries/decisions",
        {"entry_ids": [rejected], "action": "reject", "reason": "当天在岗值班"},
    )
    await post(f"/api/credit-entries/{revoked}/revoke", {"reason": "签到记录存疑"})

    view = await _get(client, w, "learner", f"/api/me/credits?year={YEAR}")
    entries = {e["id"]: e for c in view["courses"] for e in c["entries"]}
    got = {i: (e["status"], e["decision"]["action"], e["decision"]["reason"]) for i, e in entries.items()}
    assert got == {
        kept: ("registered", "approve", ""),
        rejected: ("rejected", "reject", "当天在岗值班"),
        revoked: ("revoked", "revoke", "签到记录存疑"),
    }
    assert {e["decision"]["decided_as"] for e in entries.values()} == {"employer_admin"}
    assert view["summary"]["registered"]["professional"] == "2.00"

    staff = await _get(client, w, "employer_admin", f"/api/employers/{w.orgs['employer']}/staff?year={YEAR}")
    learner = next(i for i in staff["items"] if i["person_id"] == w.actors["learner"].person_id)
    assert (learner["registered"]["professional"], learner["total_pending"]) == ("2.00", "0.00")
    assert learner["short"]["professional"] == "58.00"

    resp = await client.post(
        "/api/me/certificates",
        json={"scope": "course", "year": YEAR, "course_id": prof},
        headers=w.actors["learner"].headers,
    )
    assert resp.status == 201, await resp.text()
    cert = await resp.json()
    assert (cert["total_xueshi"], cert["status"]) == ("2.00", "valid")
    mine = await _get(client, w, "learner", "/api/me/certificates")
    assert [c["serial"] for c in mine["items"]] == [cert["serial"]]
