"""Employer approval (R23) on SQLite and PostgreSQL: the employer's administrator sees and decides only
their own staff's entries, never their own; the HR bureau decides learners without an employer and
revokes and overrides; approvals that look rubber-stamped are flagged, not refused (fraud 21); every act
is in the audit log, which no API and no SQL statement can change; rejected and revoked credit frees the
course and day caps. Entries come from real settlement where the evidence matters, else ledger.append."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from catalog import evidence as store
from catalog.credit import ledger, settle
from catalog.credit.approval import DECIDE_MAX
from catalog.credit.policy import CreditPolicy
from catalog.domain import OrgType, Role
from catalog.models import AuditEntry, CreditDecision, CreditEntry, FraudFlag
from infra import events
from infra.settings import Settings
from tests.integration.catalog.conftest import SECRET, Actor, World
from tests.integration.catalog.credit_support import (
    T0,
    at,
    ended_session,
    entries,
    live,
    live_checks,
    store_policy,
)

Client = TestClient[web.Request, web.Application]
AFTER = T0 + timedelta(hours=6)
YEAR = T0.year


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The catalog without its settlement task: these tests settle by hand."""
    return Settings(
        database_url=database_url, secret_key=SECRET, data_dir=tmp_path / "var", credit_settle_every_s=0
    )


def pid(w: World, key: str) -> int:
    return w.actors[key].person_id


def hdr(w: World, key: str) -> dict[str, str]:
    return w.actors[key].headers


async def append(
    w: World,
    person_id: int,
    *,
    computed_at: datetime | None = None,
    session_id: int | None = None,
    **extra: Any,
) -> int:
    """A pending entry through ledger.append (for cases where the evidence does not matter)."""
    values: dict[str, Any] = {
        "course_id": w.course_id,
        "session_id": session_id if session_id is not None else w.session_id,
        "credit_year": YEAR,
        "credit_day": "2026-03-02",
        "category": "professional",
        "kind": "live",
        "minutes": 90.0,
        "xueshi": Decimal("2.0"),
        "policy_version": 0,
        "computed_at": computed_at or AFTER,
        "status": "pending",
        "evidence": {},
    }
    values.update(extra)
    async with w.db.sessions.begin() as s:
        entry = ledger.append(s, CreditEntry(person_id=person_id, **values))
        await s.flush()
        return entry.id


async def decide(c: Client, who: Actor, ids: list[int], action: str, reason: str | None = None) -> Any:
    body: dict[str, Any] = {"entry_ids": ids, "action": action}
    if reason is not None:
        body["reason"] = reason
    return await c.post("/api/credit-entries/decisions", json=body, headers=who.headers)


async def status_of(w: World, entry_id: int) -> str:
    async with w.db.sessions.begin() as s:
        entry = await s.get(CreditEntry, entry_id)
        assert entry is not None
        return entry.status


async def count(w: World, model: Any, *where: Any) -> int:
    async with w.db.sessions.begin() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def audit_actions(w: World, entry_id: int) -> list[str]:
    async with w.db.sessions.begin() as s:
        return list(
            await s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.subject_type == "credit_entry", AuditEntry.subject_id == str(entry_id))
                .order_by(AuditEntry.id)
            )
        )


async def summary(c: Client, w: World, key: str) -> dict[str, Any]:
    r = await c.get(f"/api/me/credits?year={YEAR}", headers=hdr(w, key))
    assert r.status == 200, await r.text()
    return dict((await r.json())["summary"])


async def second_employer(w: World) -> tuple[int, Actor, Actor]:
    org = await w.org("employer2", OrgType.EMPLOYER, "青岛啤酒")
    admin = await w.person("employer2_admin", [(Role.EMPLOYER_ADMIN, org)], employer=org)
    staff = await w.person("employer2_staff", [(Role.LEARNER, org)], employer=org)
    return org, admin, staff


# -- approving through the real settlement path -------------------------------------------------------------


async def test_an_employer_approves_settled_credit_with_its_evidence_and_it_moves_from_pending_to_registered(
    client: Client, world: World
) -> None:
    db = world.db
    me = pid(world, "learner")
    sid = await ended_session(world, world.course_id, T0, 90)
    await live(db, sid, me, at(0), at(90))
    # Three answered like a person, one in 0.1 s (auto_confirm, not counted): 3 of 4 is still full credit.
    await live_checks(db, sid, [at(10), at(30), at(50)], {me: 3000})
    await store.record_live_check(
        db, events.PresenceCheckIssued(session_id=sid, check_id="fast", issued_at=at(70), deadline_at=at(71))
    )
    await store.record_live_answer(
        db,
        events.PresenceCheckAnswered(
            session_id=sid,
            check_id="fast",
            person_id=me,
            answered_at=at(70) + timedelta(milliseconds=100),
            latency_ms=100,
        ),
    )
    await settle.settle_due(db, AFTER)
    (entry,) = await entries(db, session_id=sid)
    assert (entry.status, entry.xueshi) == ("pending", Decimal("2.00"))
    before = await summary(client, world, "learner")
    assert Decimal(before["pending"]["professional"]) == 2
    assert Decimal(before["total_registered"]) == 0

    r = await client.get(
        f"/api/employers/{world.orgs['employer']}/credit-entries", headers=hdr(world, "employer_admin")
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["total"] == 1
    (item,) = body["items"]
    assert (item["id"], item["person_id"], item["status"], item["xueshi"]) == (
        entry.id,
        me,
        "pending",
        "2.00",
    )
    assert item["name"] == "测试learner"
    assert "****" in item["phone"]
    assert item["actions"] == ["approve", "reject"]
    ev = item["evidence"]
    assert ev["intervals"]
    assert ev["window"]
    assert (ev["checks_total"], ev["checks_answered"]) == (4, 3)
    assert ev["present_s"] == 5400.0
    assert ev["policy_version"] == 0
    assert [f["code"] for f in item["flags"]] == ["auto_confirm"]

    r = await decide(client, world.actors["employer_admin"], [entry.id], "approve")
    assert r.status == 200, await r.text()
    decided = await r.json()
    assert decided["batch_id"] is None
    assert [(i["id"], i["status"]) for i in decided["items"]] == [(entry.id, "registered")]

    after = await summary(client, world, "learner")
    assert Decimal(after["pending"]["professional"]) == 0
    assert Decimal(after["registered"]["professional"]) == 2
    assert Decimal(after["total_registered"]) == 2
    (stored,) = await entries(db, session_id=sid)
    assert (stored.status, stored.decided_by) == ("registered", pid(world, "employer_admin"))
    assert stored.decided_at is not None
    async with db.sessions.begin() as s:
        (decision,) = await s.scalars(select(CreditDecision).where(CreditDecision.entry_id == entry.id))
    assert (decision.action, decision.from_status, decision.to_status) == ("approve", "pending", "registered")
    assert (decision.decided_as, decision.org_id) == ("employer_admin", world.orgs["employer"])
    assert await audit_actions(world, entry.id) == ["credit.approved"]
    # Posted months ago and one entry: nothing to flag on the approver.
    assert await count(world, FraudFlag, FraudFlag.person_id == pid(world, "employer_admin")) == 0
    # Decided entries leave the pending queue and show among the decided, newest first.
    r = await client.get(
        f"/api/employers/{world.orgs['employer']}/credit-entries", headers=hdr(world, "employer_admin")
    )
    assert (await r.json())["items"] == []
    r = await client.get(
        f"/api/employers/{world.orgs['employer']}/credit-entries?status=decided",
        headers=hdr(world, "employer_admin"),
    )
    (item,) = (await r.json())["items"]
    assert (item["status"], item["decided_by_name"], item["actions"]) == (
        "registered",
        "测试employer_admin",
        ["revoke"],
    )
    assert item["last_decision"]["action"] == "approve"


async def test_a_rejection_needs_a_reason_and_rejected_or_revoked_credit_frees_the_course_and_day_caps(
    client: Client, world: World
) -> None:
    db = world.db
    me = pid(world, "learner")
    boss = world.actors["employer_admin"]
    policy = CreditPolicy(daily_cap_xueshi=Decimal("2"))
    other = await world.course(world.orgs["provider"], title="另一门课", credit_hours=Decimal("4.0"))
    third = await world.course(world.orgs["provider"], title="第三门课", credit_hours=Decimal("4.0"))
    first = await ended_session(world, world.course_id, T0, 90)
    await live(db, first, me, at(0), at(90))
    await settle.settle_due(db, AFTER, policy=policy)
    (entry,) = await entries(db, session_id=first)
    assert entry.xueshi == Decimal("2.00")  # the course's 2 学时 and the day's 2

    for body in (
        {"entry_ids": [entry.id], "action": "reject"},
        {"entry_ids": [entry.id], "action": "reject", "reason": "   "},
    ):
        r = await client.post("/api/credit-entries/decisions", json=body, headers=boss.headers)
        assert r.status == 400, body
        assert (await r.json())["error"]["field"] == "reason"
    assert await status_of(world, entry.id) == "pending"
    r = await decide(client, boss, [entry.id], "reject", "当天在岗值班，未参加学习")
    assert r.status == 200, await r.text()
    assert await status_of(world, entry.id) == "rejected"
    assert Decimal((await summary(client, world, "learner"))["total_pending"]) == 0
    async with db.sessions.begin() as s:
        (decision,) = await s.scalars(select(CreditDecision).where(CreditDecision.entry_id == entry.id))
    assert decision.reason == "当天在岗值班，未参加学习"

    # The same day in another course (day cap) and the same course the next day (course cap): both are
    # credited in full, the rejected 2 学时 holding neither cap.
    same_day = await ended_session(world, other, at(120), 90)
    next_day = await ended_session(world, world.course_id, at(24 * 60), 90)
    await live(db, same_day, me, at(120), at(210))
    await live(db, next_day, me, at(24 * 60), at(24 * 60 + 90))
    await settle.settle_due(db, AFTER + timedelta(days=1), policy=policy)
    got = {e.session_id: e for e in await entries(db, person_id=me)}
    assert got[same_day].xueshi == Decimal("2.00")
    assert got[same_day].evidence["daily_cap_cut"] == {}
    assert got[next_day].xueshi == Decimal("2.00")
    assert got[next_day].evidence["course_cap_applied"] is False

    # A revoked credit frees its day too: approve, revoke, and a third course that day is credited.
    assert (await decide(client, boss, [got[same_day].id], "approve")).status == 200
    r = await client.post(
        f"/api/credit-entries/{got[same_day].id}/revoke",
        json={"reason": "出勤记录存疑"},
        headers=boss.headers,
    )
    assert r.status == 200, await r.text()
    later = await ended_session(world, third, at(240), 90)
    await live(db, later, me, at(240), at(330))
    await settle.settle_due(db, AFTER + timedelta(days=2), policy=policy)
    (credited,) = await entries(db, session_id=later)
    assert credited.xueshi == Decimal("2.00")


# -- who may decide what ------------------------------------------------------------------------------------


async def test_an_employer_cannot_see_or_decide_another_employers_staff(client: Client, world: World) -> None:
    org2, admin2, staff2 = await second_employer(world)
    mine = await append(world, pid(world, "learner"))
    theirs = await append(world, staff2.person_id)
    registered = await append(world, staff2.person_id, status="registered")
    boss = world.actors["employer_admin"]

    r = await client.get(f"/api/employers/{world.orgs['employer']}/credit-entries", headers=boss.headers)
    assert [i["id"] for i in (await r.json())["items"]] == [mine]
    r = await client.get(f"/api/employers/{org2}/credit-entries", headers=boss.headers)
    assert r.status == 403
    r = await client.get(f"/api/employers/{org2}/credit-entries", headers=admin2.headers)
    assert [i["id"] for i in (await r.json())["items"]] == [theirs]

    for ids in ([theirs], [mine, theirs]):
        r = await decide(client, boss, ids, "approve")
        assert r.status == 404, await r.text()
        error = (await r.json())["error"]
        assert error["details"]["entry_ids"] == [theirs]
    r = await client.post(
        f"/api/credit-entries/{registered}/revoke", json={"reason": "x"}, headers=boss.headers
    )
    assert r.status == 404
    r = await client.get(f"/api/credit-entries/{theirs}/decisions", headers=boss.headers)
    assert r.status == 404
    # Not found looks the same as an id that does not exist.
    r = await decide(client, boss, [10**12], "approve")
    assert r.status == 404
    assert [await status_of(world, i) for i in (mine, theirs, registered)] == [
        "pending",
        "pending",
        "registered",
    ]
    assert await count(world, CreditDecision) == 0

    r = await decide(client, admin2, [theirs], "approve")
    assert r.status == 200
    assert await status_of(world, theirs) == "registered"


async def test_nobody_approves_their_own_entry_and_another_administrator_can(
    client: Client, world: World
) -> None:
    boss = world.actors["employer_admin"]
    own = await append(world, boss.person_id)
    staff = await append(world, pid(world, "staff"))
    r = await client.get(f"/api/employers/{world.orgs['employer']}/credit-entries", headers=boss.headers)
    listed = {i["id"]: i for i in (await r.json())["items"]}
    assert (listed[own]["own"], listed[own]["actions"]) == (True, [])
    assert listed[staff]["actions"] == ["approve", "reject"]

    for ids in ([own], [staff, own]):
        r = await decide(client, boss, ids, "approve")
        assert r.status == 403
        error = (await r.json())["error"]
        assert error["details"]["reason"] == "own_entry"
        assert "separation of duties" in error["message"]
    r = await decide(client, boss, [own], "reject", "自己驳回自己")
    assert r.status == 403
    assert [await status_of(world, i) for i in (own, staff)] == ["pending", "pending"]

    colleague = await world.person("employer_admin2", [(Role.EMPLOYER_ADMIN, world.orgs["employer"])])
    r = await decide(client, colleague, [own], "approve")
    assert r.status == 200
    assert await status_of(world, own) == "registered"
    # Nor revokes it: the bureau's and the other administrator's to do.
    r = await client.post(f"/api/credit-entries/{own}/revoke", json={"reason": "撤销"}, headers=boss.headers)
    assert r.status == 403


async def test_the_hr_bureau_decides_learners_without_an_employer_and_revokes_and_overrides(
    client: Client, world: World
) -> None:
    loner = await world.person("freelancer", [(Role.LEARNER, None)])
    entry = await append(world, loner.person_id)
    staff_entry = await append(world, pid(world, "staff"))
    boss, bureau, admin = world.actors["employer_admin"], world.actors["bureau"], world.actors["admin"]
    dept = await world.org("dept", OrgType.INDUSTRY_DEPT, "青岛市住房和城乡建设局")
    industry = await world.person("industry", [(Role.BUREAU, dept)])

    r = await client.get("/api/credit-entries/unaffiliated", headers=bureau.headers)
    (item,) = (await r.json())["items"]
    assert (item["id"], item["actions"]) == (entry, ["approve", "reject"])
    assert (await client.get("/api/credit-entries/unaffiliated", headers=boss.headers)).status == 403
    assert (await decide(client, boss, [entry], "approve")).status == 404
    assert (await decide(client, industry, [entry], "approve")).status == 403  # an industry department reads
    assert (await decide(client, admin, [entry], "approve")).status == 403  # admins do not approve
    # The bureau sees the employer's staff but does not approve for the employer.
    r = await decide(client, bureau, [staff_entry], "approve")
    assert r.status == 403
    assert (await r.json())["error"]["details"]["reason"] == "not_yours_to_decide"

    r = await decide(client, bureau, [entry], "reject", "无学习证明")
    assert r.status == 200
    # Only the bureau and admins override a rejection, with a reason.
    r = await client.post(
        f"/api/credit-entries/{entry}/override", json={"reason": "复核"}, headers=boss.headers
    )
    assert r.status == 403
    r = await client.post(
        f"/api/credit-entries/{entry}/override", json={"reason": ""}, headers=bureau.headers
    )
    assert r.status == 400
    r = await client.post(
        f"/api/credit-entries/{entry}/override",
        json={"reason": "学员提交了签到表，复核属实"},
        headers=bureau.headers,
    )
    assert r.status == 200, await r.text()
    overridden = await r.json()
    assert (overridden["status"], overridden["decision"]["decided_as"]) == ("registered", "bureau")
    r = await client.post(
        f"/api/credit-entries/{entry}/override", json={"reason": "再来"}, headers=bureau.headers
    )
    assert r.status == 409
    # Registered: an admin revokes it; revoked is final here.
    r = await client.post(
        f"/api/credit-entries/{entry}/revoke", json={"reason": "证书造假"}, headers=admin.headers
    )
    assert r.status == 200
    assert (await r.json())["decision"]["decided_as"] == "admin"
    r = await client.post(
        f"/api/credit-entries/{entry}/revoke", json={"reason": "再撤"}, headers=admin.headers
    )
    assert r.status == 409
    assert (await r.json())["error"]["details"]["status"] == "revoked"

    # The learner reads the whole story of their entry.
    r = await client.get(f"/api/credit-entries/{entry}/decisions", headers=loner.headers)
    assert r.status == 200
    story = await r.json()
    assert story["status"] == "revoked"
    assert [(d["action"], d["reason"]) for d in story["items"]] == [
        ("reject", "无学习证明"),
        ("override", "学员提交了签到表，复核属实"),
        ("revoke", "证书造假"),
    ]
    assert await audit_actions(world, entry) == ["credit.rejected", "credit.overridden", "credit.revoked"]


async def test_an_employer_administrators_own_entry_is_decided_by_the_hr_bureau_never_by_themself(
    client: Client, world: World
) -> None:
    """Fraud 21 without a dead end: the employer here has one administrator, so nobody in it may decide
    her own entries; the HR bureau's queue of employer administrators' entries lists them and the bureau
    decides them. Her staff stay her employer's to decide, and nobody decides their own."""
    boss, bureau, admin = world.actors["employer_admin"], world.actors["bureau"], world.actors["admin"]
    org2, admin2, _staff2 = await second_employer(world)
    # An administrator of the second employer who is employed by the first: not an administrator of
    # her own employer, so her entries are the first employer's to decide, not the bureau's.
    moonlighter = await world.person(
        "moonlighter", [(Role.EMPLOYER_ADMIN, org2)], employer=world.orgs["employer"]
    )
    dept = await world.org("dept", OrgType.INDUSTRY_DEPT, "青岛市住房和城乡建设局")
    industry = await world.person("industry", [(Role.BUREAU, dept)])
    own = await append(world, boss.person_id)
    own_too = await append(world, boss.person_id, session_id=await world.session(world.course_id))
    theirs = await append(world, admin2.person_id)
    staff = await append(world, pid(world, "staff"))
    moonlit = await append(world, moonlighter.person_id)
    loner = await world.person("freelancer", [(Role.LEARNER, None)])
    unaffiliated = await append(world, loner.person_id)
    path = "/api/credit-entries/employer-admins"

    r = await client.get(path, headers=bureau.headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert ([i["id"] for i in body["items"]], body["total"]) == ([own, own_too, theirs], 3)
    assert {(i["learner_is_employer_admin"], tuple(i["actions"])) for i in body["items"]} == {
        (True, ("approve", "reject"))
    }
    # An admin reads it (deciding nothing); nobody else sees it, not even an industry department,
    # whose oversight is its sector's providers (these entries span every sector).
    r = await client.get(path, headers=admin.headers)
    assert [(i["id"], i["actions"]) for i in (await r.json())["items"]] == [
        (own, []),
        (own_too, []),
        (theirs, []),
    ]
    for outsider in (boss, admin2, world.actors["learner"], industry):
        r = await client.get(path, headers=outsider.headers)
        assert r.status == 403
        assert "error" in await r.json()
    assert (await client.get(path)).status == 401
    assert (await client.get(f"{path}?status=approved", headers=bureau.headers)).status == 400

    # She still may not decide her own, alone or in a bulk call; in her employer's queue they are
    # marked hers with nothing to do, while the bureau sees it may decide them there too.
    for ids in ([own], [staff, own]):
        r = await decide(client, boss, ids, "approve")
        assert r.status == 403
        assert (await r.json())["error"]["details"]["reason"] == "own_entry"
    queue = f"/api/employers/{world.orgs['employer']}/credit-entries"
    r = await client.get(queue, headers=boss.headers)
    listed = {i["id"]: i for i in (await r.json())["items"]}
    assert (listed[own]["own"], listed[own]["learner_is_employer_admin"], listed[own]["actions"]) == (
        True,
        True,
        [],
    )
    assert (listed[staff]["learner_is_employer_admin"], listed[staff]["actions"]) == (
        False,
        ["approve", "reject"],
    )
    r = await client.get(queue, headers=bureau.headers)
    assert {i["id"]: i["actions"] for i in (await r.json())["items"]} == {
        own: ["approve", "reject"],
        own_too: ["approve", "reject"],
        staff: [],
        moonlit: [],
    }
    # The bureau keeps out of ordinary staff's entries (the employer's authority), whole call refused.
    for ids in ([staff], [own, staff], [moonlit]):
        r = await decide(client, bureau, ids, "approve")
        assert r.status == 403, ids
        assert (await r.json())["error"]["details"]["reason"] == "not_yours_to_decide"
    # Industry departments and admins do not decide them either; another employer does not see them.
    assert (await decide(client, industry, [own], "approve")).status == 403
    assert (await decide(client, admin, [own], "approve")).status == 403
    assert (await decide(client, admin2, [own], "approve")).status == 404
    assert [await status_of(world, i) for i in (own, own_too, theirs, staff, moonlit)] == ["pending"] * 5
    assert await count(world, CreditDecision) == 0

    r = await decide(client, bureau, [own], "approve", "单位仅一名管理员，由人社部门审核")
    assert r.status == 200, await r.text()
    assert [(i["id"], i["status"], i["decided_by"]) for i in (await r.json())["items"]] == [
        (own, "registered", bureau.person_id)
    ]
    async with world.db.sessions.begin() as s:
        (decision,) = await s.scalars(select(CreditDecision).where(CreditDecision.entry_id == own))
    assert (decision.decided_by, decision.decided_as, decision.org_id) == (
        bureau.person_id,
        "bureau",
        world.orgs["bureau"],
    )
    assert await audit_actions(world, own) == ["credit.approved"]
    assert Decimal((await summary(client, world, "employer_admin"))["total_registered"]) == 2
    r = await decide(client, bureau, [own_too], "reject", "课次与值班时间冲突")
    assert r.status == 200
    assert await status_of(world, own_too) == "rejected"
    r = await client.get(f"{path}?status=decided", headers=bureau.headers)
    assert [(i["id"], i["status"]) for i in (await r.json())["items"]] == [
        (own_too, "rejected"),
        (own, "registered"),
    ]
    # Another employer's administrator is approved by a colleague of hers as well as by the bureau.
    colleague = await world.person("employer2_admin2", [(Role.EMPLOYER_ADMIN, org2)], employer=org2)
    assert (await decide(client, colleague, [theirs], "approve")).status == 200
    assert [await status_of(world, i) for i in (staff, moonlit)] == ["pending", "pending"]

    # The bureau person never decides their own entry either.
    mine = await append(world, bureau.person_id)
    r = await client.get("/api/credit-entries/unaffiliated", headers=bureau.headers)
    assert {i["id"]: i["actions"] for i in (await r.json())["items"]} == {
        unaffiliated: ["approve", "reject"],
        mine: [],
    }
    r = await decide(client, bureau, [mine], "approve")
    assert r.status == 403
    assert (await r.json())["error"]["details"]["reason"] == "own_entry"
    assert await status_of(world, mine) == "pending"


async def test_reversed_entries_and_reversals_are_never_decided(client: Client, world: World) -> None:
    entry = await append(world, pid(world, "learner"))
    reversal = await ledger.reverse(world.db, entry, pid(world, "admin"), "证据有误", AFTER)
    boss = world.actors["employer_admin"]
    r = await client.get(f"/api/employers/{world.orgs['employer']}/credit-entries", headers=boss.headers)
    assert (await r.json())["items"] == []
    for target, reason in ((entry, "reversed"), (reversal.id, "reversal")):
        r = await decide(client, boss, [target], "approve")
        assert r.status == 409, await r.text()
        assert (await r.json())["error"]["details"]["reason"] == reason
    r = await client.get(
        f"/api/employers/{world.orgs['employer']}/credit-entries?status=all", headers=boss.headers
    )
    (item,) = (await r.json())["items"]
    assert (item["id"], item["reversed"], item["actions"]) == (entry, True, [])
    assert await count(world, CreditDecision) == 0


# -- fraud 21 ------------------------------------------------------------------------------------------------


async def test_a_bulk_approval_is_one_batch_and_fast_or_large_approvals_are_flagged_not_blocked(
    client: Client, world: World
) -> None:
    await store_policy(world.db, CreditPolicy(approval_min_seconds=600, approval_bulk_flag_size=2))
    just_now = datetime.now(UTC) - timedelta(seconds=5)
    second = await world.session(world.course_id)
    third = await world.session(world.course_id)
    ids = [
        await append(world, pid(world, "learner"), computed_at=just_now),
        await append(world, pid(world, "learner"), computed_at=just_now, session_id=second),
        await append(world, pid(world, "staff"), computed_at=AFTER, session_id=third),
    ]
    boss = world.actors["employer_admin"]
    r = await decide(client, boss, ids, "approve", "批量确认")
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["batch_id"]
    assert [i["status"] for i in body["items"]] == ["registered"] * 3
    async with world.db.sessions.begin() as s:
        batches = set(await s.scalars(select(CreditDecision.batch_id)))
        raised = {f.code: f for f in await s.scalars(select(FraudFlag))}
    assert batches == {body["batch_id"]}
    assert set(raised) == {"approval_too_fast", "approval_bulk"}
    fast, bulk = raised["approval_too_fast"], raised["approval_bulk"]
    assert fast.person_id == bulk.person_id == boss.person_id
    assert set(fast.evidence["seconds_after_posting"]) == {str(ids[0]), str(ids[1])}
    assert (bulk.evidence["count"], bulk.evidence["threshold"]) == (3, 2)
    assert bulk.evidence["entry_ids"] == ids
    assert (fast.course_id, fast.session_id, fast.status) == (None, None, "open")
    # The bureau reads them on the review list.
    r = await client.get("/api/fraud-flags", headers=hdr(world, "bureau"))
    assert {f["code"] for f in (await r.json())["items"]} == {"approval_too_fast", "approval_bulk"}
    assert [len(await audit_actions(world, i)) for i in ids] == [1, 1, 1]

    # One old entry approved alone: nothing more is flagged.
    old = await append(
        world, pid(world, "staff"), computed_at=AFTER, session_id=await world.session(world.course_id)
    )
    assert (await decide(client, boss, [old], "approve")).status == 200
    assert await count(world, FraudFlag) == 2


# -- the audit log -------------------------------------------------------------------------------------------


async def test_every_act_is_in_the_audit_log_which_the_bureau_reads_and_no_api_alters(
    client: Client, world: World
) -> None:
    boss, bureau = world.actors["employer_admin"], world.actors["bureau"]
    approved = await append(world, pid(world, "learner"))
    rejected = await append(world, pid(world, "staff"))
    assert (await decide(client, boss, [approved], "approve")).status == 200
    assert (await decide(client, boss, [rejected], "reject", "材料不全")).status == 200
    path = f"/api/credit-entries/{approved}/revoke"
    assert (await client.post(path, json={"reason": "撤销"}, headers=boss.headers)).status == 200
    path = f"/api/credit-entries/{rejected}/override"
    assert (await client.post(path, json={"reason": "补齐"}, headers=bureau.headers)).status == 200

    r = await client.get("/api/audit-log?subject_type=credit_entry", headers=bureau.headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    got = [(i["action"], i["subject_id"], i["actor_person_id"]) for i in body["items"]]
    assert got == [  # newest first
        ("credit.overridden", str(rejected), bureau.person_id),
        ("credit.revoked", str(approved), boss.person_id),
        ("credit.rejected", str(rejected), boss.person_id),
        ("credit.approved", str(approved), boss.person_id),
    ]
    assert body["items"][2]["detail"]["reason"] == "材料不全"
    assert body["items"][0]["actor_name"] == "测试bureau"
    r = await client.get(
        f"/api/audit-log?actor={boss.person_id}&action=credit.revoked", headers=bureau.headers
    )
    assert [i["subject_id"] for i in (await r.json())["items"]] == [str(approved)]
    r = await client.get(
        f"/api/audit-log?subject_type=credit_entry&subject_id={rejected}", headers=bureau.headers
    )
    assert len((await r.json())["items"]) == 2
    today = datetime.now(UTC).date()
    r = await client.get(f"/api/audit-log?from={today}&to={today}&page_size=3", headers=bureau.headers)
    page = await r.json()
    assert (len(page["items"]), page["has_more"]) == (3, True)
    r = await client.get(f"/api/audit-log?to={today - timedelta(days=1)}", headers=bureau.headers)
    assert (await r.json())["items"] == []
    for query in (
        "from=yesterday",
        "actor=abc",
        f"from={today}&to={today - timedelta(days=2)}",
        "page_size=0",
    ):
        r = await client.get(f"/api/audit-log?{query}", headers=bureau.headers)
        assert r.status == 400, query
        assert "error" in await r.json()
    assert (await client.get("/api/audit-log", headers=boss.headers)).status == 403
    assert (await client.get("/api/audit-log", headers=hdr(world, "learner"))).status == 403

    # No route changes or removes a row: other methods are 405, a row's own URL does not exist.
    rows = await count(world, AuditEntry)
    decisions = await count(world, CreditDecision)
    admin = hdr(world, "admin")
    for method, path in [
        ("PUT", "/api/audit-log"),
        ("PATCH", "/api/audit-log"),
        ("DELETE", "/api/audit-log"),
        ("POST", "/api/audit-log"),
        ("DELETE", f"/api/credit-entries/{approved}/decisions"),
        ("PUT", f"/api/credit-entries/{approved}/decisions"),
    ]:
        r = await client.request(method, path, json={"action": "x"}, headers=admin)
        assert r.status == 405, (method, path)
        assert "error" in await r.json()
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = await client.request(method, "/api/audit-log/1", json={"action": "x"}, headers=admin)
        assert r.status == 404, method
    assert await count(world, AuditEntry) == rows
    assert await count(world, CreditDecision) == decisions


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'credit.nothing'",
        "DELETE FROM audit_log",
        "UPDATE credit_decisions SET reason = '改过'",
        "DELETE FROM credit_decisions",
    ],
)
async def test_the_database_refuses_to_change_or_remove_audit_rows_and_decisions(
    client: Client, world: World, statement: str
) -> None:
    entry = await append(world, pid(world, "learner"))
    assert (await decide(client, world.actors["employer_admin"], [entry], "reject", "不符")).status == 200
    rows, decisions = await count(world, AuditEntry), await count(world, CreditDecision)
    assert rows > 0
    assert decisions > 0
    with pytest.raises(DBAPIError, match="append-only"):
        async with world.db.sessions.begin() as s:
            await s.execute(text(statement))
    assert (await count(world, AuditEntry), await count(world, CreditDecision)) == (rows, decisions)
    async with world.db.sessions.begin() as s:
        reasons = list(await s.scalars(select(CreditDecision.reason)))
        actions = set(await s.scalars(select(AuditEntry.action)))
    assert reasons == ["不符"]
    assert "credit.nothing" not in actions


# -- bad input -----------------------------------------------------------------------------------------------


async def test_bad_decisions_are_a_4xx_json_error_and_change_nothing(client: Client, world: World) -> None:
    entry = await append(world, pid(world, "learner"))
    boss = world.actors["employer_admin"]
    cases: list[tuple[Any, int, str | None]] = [
        ({"entry_ids": [entry], "action": "bless"}, 400, "action"),
        ({"entry_ids": [entry]}, 400, "action"),
        ({"entry_ids": [entry], "action": "revoke", "reason": "x"}, 400, "action"),
        ({"entry_ids": [entry], "action": "override", "reason": "x"}, 400, "action"),
        ({"entry_ids": [entry], "action": "reject"}, 400, "reason"),
        ({"entry_ids": [entry], "action": "reject", "reason": ""}, 400, "reason"),
        ({"entry_ids": [entry], "action": "reject", "reason": 5}, 400, "reason"),
        ({"entry_ids": [entry], "action": "reject", "reason": "x" * 1001}, 400, "reason"),
        ({"entry_ids": entry, "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": str(entry), "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": {"id": entry}, "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [str(entry)], "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [True], "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [0], "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [-1], "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [2**63], "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [], "action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": list(range(1, DECIDE_MAX + 2)), "action": "approve"}, 400, "entry_ids"),
        ({"action": "approve"}, 400, "entry_ids"),
        ({"entry_ids": [entry], "action": "approve", "note": "x"}, 400, "note"),
        ([entry], 400, None),
        ({"entry_ids": [entry, 10**12], "action": "approve"}, 404, "entry_ids"),
    ]
    for body, status, field in cases:
        r = await client.post("/api/credit-entries/decisions", json=body, headers=boss.headers)
        assert r.status == status, (body, await r.text())
        assert (await r.json())["error"]["field"] == field, body
    r = await client.post(
        "/api/credit-entries/decisions",
        data="entry_ids=1",
        headers={**boss.headers, "Content-Type": "text/plain"},
    )
    assert r.status == 400
    r = await client.post(f"/api/credit-entries/{entry}/revoke", json={"why": "x"}, headers=boss.headers)
    assert r.status == 400
    r = await client.post("/api/credit-entries/99999999/revoke", json={"reason": "x"}, headers=boss.headers)
    assert r.status == 404
    path = f"/api/employers/{world.orgs['employer']}/credit-entries"
    for query in ("status=approved", "year=1999", "person_id=x", "page=0", "course_id=-3"):
        r = await client.get(f"{path}?{query}", headers=boss.headers)
        assert r.status == 400, query
    assert await status_of(world, entry) == "pending"
    assert await count(world, CreditDecision) == 0
    assert await count(world, AuditEntry, AuditEntry.subject_type == "credit_entry") == 0


async def test_the_queue_filters_and_pages(client: Client, world: World) -> None:
    me, staff = pid(world, "learner"), pid(world, "staff")
    mine = [await append(world, me, session_id=await world.session(world.course_id)) for _ in range(3)]
    theirs = await append(world, staff)
    old = await append(world, staff, credit_year=2025, session_id=await world.session(world.course_id))
    boss = world.actors["employer_admin"]
    path = f"/api/employers/{world.orgs['employer']}/credit-entries"

    async def ids(query: str) -> tuple[list[int], int]:
        r = await client.get(f"{path}?{query}", headers=boss.headers)
        assert r.status == 200, await r.text()
        body = await r.json()
        return [i["id"] for i in body["items"]], body["total"]

    assert await ids("") == ([*mine, theirs, old], 5)  # oldest first (same instant: by id)
    assert await ids(f"person_id={me}") == (mine, 3)
    assert await ids("year=2025") == ([old], 1)
    assert await ids("page=2&page_size=2") == ([mine[2], theirs], 5)
    assert await ids("status=registered") == ([], 0)


async def test_two_administrators_deciding_one_entry_at_once_decide_it_once(
    client: Client, world: World
) -> None:
    """The row lock orders them (PostgreSQL); SQLite has one writer at a time: the second sees the first's
    decision and is refused, and one decision is written."""
    entry = await append(world, pid(world, "learner"))
    colleague = await world.person("employer_admin2", [(Role.EMPLOYER_ADMIN, world.orgs["employer"])])
    answers = await asyncio.gather(
        *(
            decide(client, who, [entry], action, "并发")
            for who, action in [(world.actors["employer_admin"], "approve"), (colleague, "reject")] * 3
        )
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [200, 409, 409, 409, 409, 409], [await r.text() for r in answers]
    assert await count(world, CreditDecision) == 1
    assert len(await audit_actions(world, entry)) == 1
