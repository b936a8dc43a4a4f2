"""The people-facing credit API: the policy as versioned data, 我的学时, a session's credit table and its
CSV/XLSX export, the review list of flags, and audited time corrections instead of editing actual times.
Ledger rows are seeded directly (settlement has its own tests)."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog.credit.engine import credit_year
from catalog.models import AuditEntry, CreditEntry, FraudFlag, LiveInterval, Session, SessionTimeCorrection
from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


async def _entry(
    w: World, person_id: int, course_id: int, session_id: int | None, xueshi: str, **extra: Any
) -> int:
    values: dict[str, Any] = {
        "credit_year": datetime.now(UTC).year if "credit_year" not in extra else extra.pop("credit_year"),
        "credit_day": "2026-03-02",
        "category": "professional",
        "kind": "live",
        "minutes": float(Decimal(xueshi) * 45),
        "policy_version": 0,
        "computed_at": datetime.now(UTC),
        "status": "pending",
        "evidence": {
            "figures": {"present_s": 2600.0, "window_s": 2700.0, "checks_total": 3, "checks_answered": 3}
        },
    }
    values.update(extra)
    async with w.db.sessions.begin() as s:
        e = CreditEntry(
            person_id=person_id, course_id=course_id, session_id=session_id, xueshi=Decimal(xueshi), **values
        )
        s.add(e)
        await s.flush()
        return e.id


async def _ended(w: World, course_id: int, start: datetime, minutes: int) -> int:
    session_id = await w.session(course_id, start=start)
    async with w.db.sessions.begin() as s:
        ss = await s.get(Session, session_id)
        assert ss is not None
        ss.actual_start, ss.actual_end = start, start + timedelta(minutes=minutes)
    return session_id


async def _present(w: World, session_id: int, person_id: int, start: datetime, minutes: int) -> None:
    async with w.db.sessions.begin() as s:
        s.add(
            LiveInterval(
                session_id=session_id,
                person_id=person_id,
                peer_id=f"peer-{person_id}",
                joined_at=start,
                left_at=start + timedelta(minutes=minutes),
            )
        )


async def _flag(w: World, course_id: int, session_id: int, code: str = "auto_confirm") -> int:
    async with w.db.sessions.begin() as s:
        f = FraudFlag(
            person_id=w.actors["learner"].person_id,
            session_id=session_id,
            course_id=course_id,
            code=code,
            subject=f"session:{session_id}",
            severity="warning",
            evidence={"latency_ms": 90, "check_id": "c1"},
            status="open",
            created_at=datetime.now(UTC),
        )
        s.add(f)
        await s.flush()
        return f.id


def _d(values: dict[str, str]) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in values.items()}


async def _audit(w: World, action: str) -> list[AuditEntry]:
    async with w.db.sessions.begin() as s:
        return list((await s.scalars(select(AuditEntry).where(AuditEntry.action == action))).all())


# -- the policy --------------------------------------------------------------------------------------------


async def test_policy_is_the_builtin_default_until_an_admin_stores_a_version(
    client: Client, world: World
) -> None:
    r = await client.get("/api/credit-policy", headers=world.actors["learner"].headers)
    assert r.status == 200
    body = await r.json()
    assert body["version"] == 0
    assert body["params"]["minutes_per_xueshi"] == 45
    assert body["params"]["annual_total_xueshi"] == "90"

    r = await client.post(
        "/api/credit-policy",
        json={"note": "缩短心跳周期", "heartbeat_period_s": 2, "daily_cap_xueshi": "6"},
        headers=world.actors["admin"].headers,
    )
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["version"] == 1
    assert created["params"]["heartbeat_period_s"] == 2
    assert created["params"]["daily_cap_xueshi"] == "6"
    assert created["created_by"] == world.actors["admin"].person_id

    current = await (await client.get("/api/credit-policy", headers=world.actors["learner"].headers)).json()
    assert current["version"] == 1
    assert current["note"] == "缩短心跳周期"
    history = await (
        await client.get("/api/credit-policy/versions", headers=world.actors["bureau"].headers)
    ).json()
    assert [v["version"] for v in history["items"]] == [1, 0]
    audit = await _audit(world, "credit_policy.create")
    assert len(audit) == 1
    assert audit[0].actor_person_id == world.actors["admin"].person_id


async def test_a_bad_policy_value_is_refused_naming_the_field_and_nothing_is_stored(
    client: Client, world: World
) -> None:
    admin = world.actors["admin"].headers
    for body, field in [
        ({"note": "x", "live_presence_threshold": 1.5}, "live_presence_threshold"),
        ({"note": "x", "rounding_unit": "0.3"}, "rounding_unit"),
        ({"note": "x", "minutes_per_xueshi": "45"}, "minutes_per_xueshi"),
        ({"note": "x", "check_full_ratio": 0.5, "check_half_ratio": 0.6}, "check_half_ratio"),
        ({"note": "x", "no_such_rule": 1}, "no_such_rule"),
        ({"note": "x", "version": 7}, "version"),
        ({"heartbeat_period_s": 2}, "note"),
    ]:
        r = await client.post("/api/credit-policy", json=body, headers=admin)
        assert r.status == 400, (body, await r.text())
        assert (await r.json())["error"]["field"] == field, body
    current = await (await client.get("/api/credit-policy", headers=admin)).json()
    assert current["version"] == 0


async def test_the_bureau_reads_the_policy_but_cannot_change_it(client: Client, world: World) -> None:
    r = await client.post(
        "/api/credit-policy",
        json={"note": "x", "heartbeat_period_s": 2},
        headers=world.actors["bureau"].headers,
    )
    assert r.status == 403
    r = await client.get("/api/credit-policy/versions", headers=world.actors["learner"].headers)
    assert r.status == 403


# -- 我的学时 --------------------------------------------------------------------------------------------


async def test_my_credits_total_by_category_with_pending_apart_and_only_my_entries(
    client: Client, world: World
) -> None:
    learner = world.actors["learner"].person_id
    public_course = await world.course(world.orgs["provider"], title="公需课", category="public")
    public_session = await _ended(world, public_course, datetime.now(UTC) - timedelta(hours=5), 45)
    await _entry(world, learner, public_course, public_session, "1.0", category="public")
    await _entry(world, learner, world.course_id, world.session_id, "2.0")
    await _entry(world, learner, world.course_id, None, "3.0", status="registered", kind="replay")
    await _entry(world, world.actors["staff"].person_id, world.course_id, world.session_id, "2.0")
    await _entry(world, learner, world.course_id, world.session_id, "5.0", credit_year=2001)

    r = await client.get("/api/me/credits", headers=world.actors["learner"].headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["year"] == credit_year(datetime.now(UTC))
    summary = body["summary"]
    assert _d(summary["pending"]) == {"public": Decimal(1), "professional": Decimal(2)}
    assert Decimal(summary["registered"]["professional"]) == 3
    assert Decimal(summary["total_registered"]) == 3
    assert Decimal(summary["required_total"]) == 90
    assert summary["met"] is False
    courses = {c["course_id"]: c for c in body["courses"]}
    assert set(courses) == {public_course, world.course_id}
    entry = courses[public_course]["entries"][0]
    assert entry["status"] == "pending"
    assert entry["checks_answered"] == 3
    assert entry["checks_total"] == 3
    assert entry["present_s"] == 2600.0
    assert entry["policy_version"] == 0

    old = await (
        await client.get("/api/me/credits?year=2001", headers=world.actors["learner"].headers)
    ).json()
    assert Decimal(old["summary"]["pending"]["professional"]) == 5
    staff = await (await client.get("/api/me/credits", headers=world.actors["staff"].headers)).json()
    assert _d(staff["summary"]["pending"]) == {"public": 0, "professional": 2}


async def test_my_credits_year_must_be_a_year(client: Client, world: World) -> None:
    for bad in ("abc", "1999", "20260"):
        r = await client.get(f"/api/me/credits?year={bad}", headers=world.actors["learner"].headers)
        assert r.status == 400
        assert (await r.json())["error"]["field"] == "year"


async def test_sessions_attended_without_credit_say_why(client: Client, world: World) -> None:
    learner = world.actors["learner"]
    now = datetime.now(UTC)
    # Ended long ago, present 30 of 60 minutes: below the 85 % threshold.
    low = await _ended(world, world.course_id, now - timedelta(hours=4), 60)
    await _present(world, low, learner.person_id, now - timedelta(hours=4), 30)
    # Ended a moment ago: settlement waits two heartbeat periods.
    fresh = await _ended(world, world.course_id, now - timedelta(minutes=61), 60)
    await _present(world, fresh, learner.person_id, now - timedelta(minutes=61), 60)
    body = await (await client.get("/api/me/credits", headers=learner.headers)).json()
    reasons = {u["session_id"]: u for u in body["uncredited"]}
    assert reasons[low]["reason"] == "below_threshold"
    assert "85%" in reasons[low]["reason_text"]
    assert reasons[fresh]["reason"] == "settling"
    assert reasons[fresh]["reason_text"] == "课次结束后结算，请稍候"


# -- a session's credit table and its export ------------------------------------------------------------


async def _attended_session(w: World) -> int:
    start = datetime.now(UTC) - timedelta(hours=3)
    session_id = await _ended(w, w.course_id, start, 60)
    await _present(w, session_id, w.actors["learner"].person_id, start, 58)
    await _entry(w, w.actors["learner"].person_id, w.course_id, session_id, "1.0")
    await _flag(w, w.course_id, session_id, "two_devices")
    return session_id


async def test_the_provider_sees_each_learners_evidence_credit_and_flags(
    client: Client, world: World
) -> None:
    session_id = await _attended_session(world)
    r = await client.get(
        f"/api/sessions/{session_id}/credits", headers=world.actors["provider_admin"].headers
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["window_s"] == 3600.0
    [row] = body["learners"]
    assert row["person_id"] == world.actors["learner"].person_id
    assert row["live_present_s"] == 58 * 60
    assert Decimal(row["xueshi"]) == 1
    assert row["status"] == "pending"
    assert row["phone"].count("*") == 4
    assert row["phone"] != world.actors["learner"].phone
    assert row["flags"] == [{"code": "two_devices", "status": "open"}]
    r = await client.get(
        f"/api/sessions/{session_id}/credits", headers=world.actors["other_provider_admin"].headers
    )
    assert r.status == 403
    r = await client.get(f"/api/sessions/{session_id}/credits", headers=world.actors["learner"].headers)
    assert r.status == 403


async def test_csv_export_has_a_bom_a_header_and_masked_phones(client: Client, world: World) -> None:
    session_id = await _attended_session(world)
    r = await client.get(
        f"/api/sessions/{session_id}/attendance.csv", headers=world.actors["provider_admin"].headers
    )
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    raw = await r.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:2] == ["姓名", "手机号"]
    assert rows[1][0] == "测试learner"
    assert rows[1][1] == world.actors["learner"].phone[:3] + "****" + world.actors["learner"].phone[-4:]
    assert rows[1][2] == "58.0"  # live minutes
    assert float(rows[1][8]) == 1.0  # 学时
    assert rows[1][9] == "待审核"
    assert rows[1][11] == "two_devices"


def _xlsx_cells(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"} <= set(z.namelist())
        root = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    cells = {}
    for c in root.iterfind(".//m:c", NS):
        value = c.find("m:v", NS)
        text = c.find("m:is/m:t", NS)
        cells[c.attrib["r"]] = (value if value is not None else text).text or ""  # type: ignore[union-attr]
    return cells


async def test_xlsx_export_opens_as_a_workbook_with_the_same_cells(client: Client, world: World) -> None:
    session_id = await _attended_session(world)
    r = await client.get(
        f"/api/sessions/{session_id}/attendance.xlsx", headers=world.actors["bureau"].headers
    )
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    cells = _xlsx_cells(await r.read())
    assert cells["A1"] == "姓名"
    assert cells["I1"] == "学时"
    assert cells["A2"] == "测试learner"
    assert float(cells["C2"]) == 58.0
    assert float(cells["I2"]) == 1.0
    assert cells["J2"] == "待审核"
    r = await client.get(
        f"/api/sessions/{session_id}/attendance.xlsx", headers=world.actors["learner"].headers
    )
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "forbidden"


# -- the review list ----------------------------------------------------------------------------------------


async def test_providers_see_only_their_courses_flags_and_the_bureau_sees_all(
    client: Client, world: World
) -> None:
    other_course = await world.course(world.orgs["other_provider"], title="别家课程")
    other_session = await world.session(other_course)
    mine = await _flag(world, world.course_id, world.session_id)
    theirs = await _flag(world, other_course, other_session)

    async def ids(role: str, query: str = "") -> set[int]:
        r = await client.get(f"/api/fraud-flags{query}", headers=world.actors[role].headers)
        assert r.status == 200, await r.text()
        return {f["id"] for f in (await r.json())["items"]}

    assert await ids("provider_admin") == {mine}
    assert await ids("other_provider_admin") == {theirs}
    assert await ids("bureau") == {mine, theirs}
    assert await ids("admin", f"?course_id={other_course}") == {theirs}
    r = await client.get("/api/fraud-flags", headers=world.actors["provider_admin"].headers)
    [item] = (await r.json())["items"]
    assert item["evidence"] == {"latency_ms": 90, "check_id": "c1"}
    assert item["phone"] != world.actors["learner"].phone
    r = await client.get("/api/fraud-flags?status=bogus", headers=world.actors["bureau"].headers)
    assert r.status == 400
    r = await client.get("/api/fraud-flags", headers=world.actors["learner"].headers)
    assert r.status == 403


async def test_resolving_a_flag_is_audited_and_happens_once(client: Client, world: World) -> None:
    flag = await _flag(world, world.course_id, world.session_id)
    path = f"/api/fraud-flags/{flag}/resolve"
    headers = world.actors["provider_admin"].headers
    r = await client.post(path, json={"status": "maybe", "resolution": "x"}, headers=headers)
    assert r.status == 400
    assert (await r.json())["error"]["field"] == "status"
    r = await client.post(path, json={"status": "confirmed", "resolution": " "}, headers=headers)
    assert r.status == 400
    assert (await r.json())["error"]["field"] == "resolution"
    r = await client.post(
        path,
        json={"status": "dismissed", "resolution": "x"},
        headers=world.actors["other_provider_admin"].headers,
    )
    assert r.status == 404
    r = await client.post(
        path, json={"status": "confirmed", "resolution": "两台设备同时观看"}, headers=headers
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["status"] == "confirmed"
    assert body["resolved_by"] == world.actors["provider_admin"].person_id
    r = await client.post(path, json={"status": "dismissed", "resolution": "改判"}, headers=headers)
    assert r.status == 409
    assert [a.subject_id for a in await _audit(world, "fraud_flag.confirmed")] == [str(flag)]
    open_now = await (await client.get("/api/fraud-flags", headers=headers)).json()
    assert open_now["items"] == []
    closed = await (await client.get("/api/fraud-flags?status=confirmed", headers=headers)).json()
    assert [f["id"] for f in closed["items"]] == [flag]


# -- actual times: never a field edit ---------------------------------------------------------------------


async def test_a_session_patch_cannot_set_actual_times(client: Client, world: World) -> None:
    for name in ("actual_start", "actual_end"):
        r = await client.patch(
            f"/api/sessions/{world.session_id}",
            json={name: datetime.now(UTC).isoformat()},
            headers=world.actors["provider_admin"].headers,
        )
        assert r.status == 400
        error = (await r.json())["error"]
        assert error["field"] == name
        assert error["details"] == {"reason": "field_not_editable"}
    async with world.db.sessions.begin() as s:
        ss = await s.get(Session, world.session_id)
        assert ss is not None
        assert ss.actual_start is None
        assert ss.actual_end is None


async def test_a_time_correction_is_validated_audited_and_listed(client: Client, world: World) -> None:
    start = datetime.now(UTC) - timedelta(hours=5)
    session_id = await _ended(world, world.course_id, start, 60)
    path = f"/api/sessions/{session_id}/time-corrections"
    headers = world.actors["provider_admin"].headers
    good = {
        "actual_start": (start + timedelta(minutes=5)).isoformat(),
        "actual_end": (start + timedelta(minutes=50)).isoformat(),
        "reason": "直播开始前调试设备",
    }
    for body, field in [
        ({**good, "reason": ""}, "reason"),
        ({k: v for k, v in good.items() if k != "reason"}, "reason"),
        ({**good, "actual_end": good["actual_start"]}, "actual_end"),
        ({**good, "actual_start": (start - timedelta(days=2)).isoformat()}, "actual_start"),
        ({**good, "actual_end": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "actual_end"),
        ({**good, "extra": 1}, "extra"),
    ]:
        r = await client.post(path, json=body, headers=headers)
        assert r.status == 400, (body, await r.text())
        assert (await r.json())["error"]["field"] == field
    r = await client.post(path, json=good, headers=world.actors["other_provider_admin"].headers)
    assert r.status == 403
    r = await client.post(path, json=good, headers=headers)
    assert r.status == 201, await r.text()
    created = await r.json()
    listed = await (await client.get(path, headers=world.actors["bureau"].headers)).json()
    assert [c["id"] for c in listed["items"]] == [created["id"]]
    # The provider's credit table is bounded by the corrected window, as settlement is (45 of 60 min).
    table = await (await client.get(f"/api/sessions/{session_id}/credits", headers=headers)).json()
    assert table["window"] == [good["actual_start"], good["actual_end"]]
    assert table["window_s"] == 45 * 60.0
    assert listed["server"]["actual_end"] is not None  # the server's own times stay as they were
    audit = await _audit(world, "session.time_correction")
    assert len(audit) == 1
    assert audit[0].detail["reason"] == "直播开始前调试设备"
    async with world.db.sessions.begin() as s:
        ss = await s.get(Session, session_id)
        assert ss is not None
        assert ss.actual_start == start
        assert len((await s.scalars(select(SessionTimeCorrection))).all()) == 1
    r = await client.get(path, headers=world.actors["learner"].headers)
    assert r.status == 403
