"""Offline training sign-in with the venue's rotating QR code (R8, R29, fraud 16), on SQLite and PostgreSQL.

The API is called at the real time (a session running now); credit is settled at scripted times through
the service, as the settlement tests do. Signing in and out earns a pending `offline` entry of the
interval clipped to the window; an expired, replayed or tampered code is refused; nobody is at two venues
at once, nor offline while learning online, and an overlap that slips past sign-in is not credited twice
at settlement; a missed sign-out earns nothing until staff correct it (audited, re-settled); only staff
fetch codes or correct; bad input is a 4xx JSON error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog import attendance
from catalog.credit import engine, ledger, settle
from catalog.credit.policy import CreditPolicy
from catalog.domain import Caller, Role
from catalog.models import AuditEntry, OfflineAttendance, Session, SessionExpert
from catalog.offline import rules, service
from infra import events
from infra.settings import Settings
from tests.integration.catalog.conftest import (  # the catalog's fixtures, on both engines
    SECRET,
    client,
    database_url,
    engine_template,
    password_hash,
    postgres_template,
    sqlite_template,
    world,
)
from tests.integration.catalog.credit_support import T0, at, entries, flag_codes, live, store_policy, xs

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

__all__ = [  # fixtures imported for pytest
    "client",
    "database_url",
    "engine_template",
    "password_hash",
    "postgres_template",
    "sqlite_template",
    "world",
]

Client = TestClient[web.Request, web.Application]
PLACE = "青岛市市南区香港中路 10 号 3 楼培训教室"
POLICY = CreditPolicy()  # version 0: codes every 30 s, valid 60 s; 45 min per 学时 to 0.5
DEVICE = service.Device("10.0.0.7", "Mozilla/5.0 (iPhone)")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """These tests settle by hand, at times they choose."""
    return Settings(
        database_url=database_url, secret_key=SECRET, data_dir=tmp_path / "var", credit_settle_every_s=0
    )


# -- helpers --------------------------------------------------------------------------------------------


async def offline_course(w: World, title: str = "安全生产现场培训", hours: str = "4.0") -> int:
    return await w.course(w.orgs["provider"], title=title, delivery="offline", credit_hours=Decimal(hours))


async def offline_session(
    w: World, course_id: int, start: datetime, minutes: int = 180, experts: tuple[int, ...] = ()
) -> int:
    async with w.db.sessions.begin() as s:
        ss = Session(
            course_id=course_id,
            title="现场实操",
            kind="offline",
            scheduled_start=start,
            scheduled_end=start + timedelta(minutes=minutes),
            external_platform="none",
            external_ids={},
            location=PLACE,
        )
        s.add(ss)
        await s.flush()
        s.add_all(SessionExpert(session_id=ss.id, person_id=pid) for pid in experts)
        return ss.id


def caller(w: World, key: str = "learner") -> Caller:
    roles = {"learner": Role.LEARNER, "staff": Role.LEARNER}
    org = w.orgs["employer"]
    return Caller(w.actors[key].person_id, org, frozenset({(roles[key], org)}))


def code(session_id: int, t: datetime) -> str:
    return rules.issue(SECRET, session_id, t, POLICY).text


async def sign_in(w: World, session_id: int, t: datetime, who: str = "learner") -> dict[str, Any]:
    return await service.sign_in(w.db, caller(w, who), session_id, code(session_id, t), SECRET, DEVICE, t)


async def sign_out(w: World, session_id: int, t: datetime, who: str = "learner") -> dict[str, Any]:
    return await service.sign_out(w.db, caller(w, who), session_id, code(session_id, t), SECRET, DEVICE, t)


async def running_now(w: World, course_id: int | None = None) -> tuple[int, int]:
    """(course, session) of an offline session that began 10 minutes ago, the learner enrolled."""
    course_id = course_id or await offline_course(w)
    session_id = await offline_session(w, course_id, datetime.now(UTC) - timedelta(minutes=10), minutes=120)
    await w.enroll(w.actors["learner"].person_id, course_id)
    return course_id, session_id


async def post_checkin(
    client: Client, w: World, session_id: int, action: str, code_text: str, who: str = "learner"
) -> tuple[int, dict[str, Any]]:
    r = await client.post(
        f"/api/sessions/{session_id}/checkin",
        json={"action": action, "code": code_text},
        headers=w.actors[who].headers,
    )
    return r.status, await r.json()


async def venue_code(
    client: Client, w: World, session_id: int, who: str = "provider_admin"
) -> dict[str, Any]:
    r = await client.get(f"/api/sessions/{session_id}/venue/code", headers=w.actors[who].headers)
    assert r.status == 200, await r.text()
    return dict(await r.json())


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    error = body["error"]
    assert set(error) == {"code", "message", "field", "details"}
    return dict(error)


# -- signing in and out, and the credit ------------------------------------------------------------------


async def test_signing_in_and_out_through_the_venue_code_earns_pending_offline_credit(
    client: Client, world: World
) -> None:
    # The API at the real time: the staff's display shows a code and its QR code; the learner's phone
    # signs in with the code it scanned half a minute ago and out with the one on the screen now.
    # Codes stay valid 10 minutes here, so that the previous period's code is still good however the
    # test's steps fall on the 30 s periods (validity does not change a code, only how long it works).
    await store_policy(world.db, CreditPolicy(offline_code_valid_s=600))
    _course, sid = await running_now(world)
    shown = await venue_code(client, world, sid)
    assert shown["url"].endswith(f"/checkin/{sid}?c={shown['code']}")
    assert shown["svg"].startswith("<svg")
    assert "viewBox" in shown["svg"]
    assert (shown["period_s"], shown["valid_s"], shown["signed_in_now"]) == (30, 600, 0)
    assert shown["session"]["location"] == PLACE
    previous = datetime.fromisoformat(shown["issued_at"]) - timedelta(seconds=30)
    scanned_earlier = code(sid, previous)

    status, body = await post_checkin(client, world, sid, "sign_in", scanned_earlier)
    assert status == 201, body
    assert body["attendance"]["open"] is True
    r = await client.get(f"/api/sessions/{sid}/checkin", headers=world.actors["learner"].headers)
    state = await r.json()
    assert (state["state"], state["enrolled"], state["session"]["location"]) == ("signed_in", True, PLACE)
    assert (await venue_code(client, world, sid))["signed_in_now"] == 1

    status, body = await post_checkin(client, world, sid, "sign_out", shown["code"])
    assert status == 200, body
    assert body["attendance"]["open"] is False
    r = await client.get(f"/api/sessions/{sid}/checkin", headers=world.actors["learner"].headers)
    assert (await r.json())["state"] == "signed_out"
    listed = await client.get(
        f"/api/sessions/{sid}/offline-attendance", headers=world.actors["provider_admin"].headers
    )
    (item,) = (await listed.json())["items"]
    assert (item["person_id"], item["open"], item["phone"][3:7]) == (
        world.actors["learner"].person_id,
        False,
        "****",
    )


async def test_the_interval_clipped_to_the_session_becomes_offline_credit(
    client: Client, world: World
) -> None:
    # 09:00–12:00 Beijing; signed in at 08:50 (before the start: not credited, R8), out at 11:00.
    course_id = await offline_course(world)
    sid = await offline_session(world, course_id, T0)
    await world.enroll(world.actors["learner"].person_id, course_id)
    await sign_in(world, sid, at(-10))
    await sign_out(world, sid, at(120))

    assert (await settle.settle_due(world.db, at(170))).entries == 0  # the session has not ended
    report = await settle.settle_due(world.db, at(181))
    assert report.entries == 1
    (entry,) = await entries(world.db, session_id=sid)
    # 09:00–11:00 = 120 min → floor(120 / 45, 0.5) = 2.5 学时, pending employer approval.
    assert (entry.kind, entry.status, entry.minutes, entry.xueshi) == ("offline", "pending", 120.0, xs("2.5"))
    assert entry.evidence["figures"]["present_s"] == 120 * 60
    assert entry.evidence["window_source"] == "schedule"
    assert entry.evidence["credited_spans"] == [[at(0).isoformat(), at(120).isoformat()]]
    assert (await settle.settle_due(world.db, at(200))).entries == 0  # settled once

    r = await client.get("/api/me/credits?year=2026", headers=world.actors["learner"].headers)
    (course,) = [c for c in (await r.json())["courses"] if c["course_id"] == course_id]
    assert course["pending_xueshi"] == "2.50"
    assert [(e["kind"], e["xueshi"]) for e in course["entries"]] == [("offline", "2.50")]


async def test_my_credits_says_why_an_offline_class_signed_into_has_no_credit_yet(
    client: Client, world: World
) -> None:
    """我的学时 lists a class signed into without credit: signed in and not out (after the class: a missed
    sign-out, which the provider corrects), signed out and waiting for settlement; once settled it is an
    entry, no longer listed."""
    course_id = await offline_course(world)
    sid = await offline_session(world, course_id, T0)
    await world.enroll(world.actors["learner"].person_id, course_id)

    async def uncredited() -> list[tuple[str, str]]:
        r = await client.get("/api/me/credits?year=2026", headers=world.actors["learner"].headers)
        assert r.status == 200
        return [
            (u["reason"], u["reason_text"]) for u in (await r.json())["uncredited"] if u["session_id"] == sid
        ]

    assert await uncredited() == []
    await sign_in(world, sid, at(0))
    assert await uncredited() == [("no_sign_out", "未签退，暂无学时：请联系培训机构补录签退时间")]
    await sign_out(world, sid, at(100))
    assert await uncredited() == [("settling", "已签退，课次结束后结算")]
    assert (await settle.settle_due(world.db, at(181))).entries == 1
    assert await uncredited() == []

    # A class still running: signed in, told to sign out when leaving.
    _course, running = await running_now(world)
    status, _body = await post_checkin(client, world, running, "sign_in", code(running, datetime.now(UTC)))
    assert status == 201
    r = await client.get("/api/me/credits", headers=world.actors["learner"].headers)
    assert [
        (u["reason"], u["reason_text"]) for u in (await r.json())["uncredited"] if u["session_id"] == running
    ] == [("signed_in", "已现场签到，离场时请扫码签退")]


async def test_a_session_before_its_start_takes_no_sign_in_and_after_its_end_none_either(
    world: World,
) -> None:
    course_id = await offline_course(world)
    sid = await offline_session(world, course_id, T0)
    await world.enroll(world.actors["learner"].person_id, course_id)
    with pytest.raises(rules.SignInNotOpen):
        await sign_in(world, sid, at(-16))
    with pytest.raises(rules.SignInClosed):
        await sign_in(world, sid, at(180))
    await sign_in(world, sid, at(-15))  # 15 minutes early is fine
    with pytest.raises(rules.SignOutClosed) as refused:
        await sign_out(world, sid, at(240))
    assert "补录" in (refused.value.details or {})["message_zh"]


async def test_only_enrolled_learners_sign_in(client: Client, world: World) -> None:
    _course, sid = await running_now(world)
    status, body = await post_checkin(
        client, world, sid, "sign_in", code(sid, datetime.now(UTC)), who="staff"
    )
    assert (status, error_of(body)["code"]) == (403, "not_enrolled")
    assert "报名" in body["error"]["details"]["message_zh"]


# -- codes: expired, replayed, tampered --------------------------------------------------------------------


async def test_an_expired_code_a_photo_or_forwarded_link_is_refused(client: Client, world: World) -> None:
    _course, sid = await running_now(world)
    old = code(sid, datetime.now(UTC) - timedelta(seconds=POLICY.offline_code_valid_s + 1))
    status, body = await post_checkin(client, world, sid, "sign_in", old)
    error = error_of(body)
    assert (status, error["code"], error["field"]) == (409, "code_expired", "code")
    assert "过期" in error["details"]["message_zh"]
    assert await client_state(client, world, sid) == "not_signed_in"


async def client_state(client: Client, w: World, session_id: int, who: str = "learner") -> str:
    r = await client.get(f"/api/sessions/{session_id}/checkin", headers=w.actors[who].headers)
    return str((await r.json())["state"])


async def test_a_replayed_code_is_refused_but_serves_everyone_at_the_venue_once(
    client: Client, world: World
) -> None:
    course_id, sid = await running_now(world)
    await world.enroll(world.actors["staff"].person_id, course_id)
    now_code = code(sid, datetime.now(UTC))
    assert (await post_checkin(client, world, sid, "sign_in", now_code))[0] == 201
    # The same code cannot sign the learner out (nor in again) ...
    status, body = await post_checkin(client, world, sid, "sign_out", now_code)
    assert (status, error_of(body)["code"]) == (409, "code_used")
    # ... nor can a code shown before the sign-in (an old photo), though it is still valid.
    earlier = code(sid, datetime.now(UTC) - timedelta(seconds=POLICY.offline_code_period_s))
    if earlier != now_code:
        status, body = await post_checkin(client, world, sid, "sign_out", earlier)
        assert (status, error_of(body)["code"]) == (409, "code_used")
    # The venue's code is everyone's: a colleague scanning the same screen signs in with it.
    assert (await post_checkin(client, world, sid, "sign_in", now_code, who="staff"))[0] == 201
    assert await client_state(client, world, sid) == "signed_in"


async def test_a_tampered_or_foreign_code_is_refused(client: Client, world: World) -> None:
    course_id, sid = await running_now(world)
    other = await offline_session(world, course_id, datetime.now(UTC) - timedelta(minutes=5))
    genuine = code(sid, datetime.now(UTC))
    slot, tag = genuine.split(".")
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    cases = {
        "tag changed": f"{slot}.{flipped}",
        "slot moved on": f"{int(slot) + 30}.{tag}",
        "another venue's": code(other, datetime.now(UTC)),
    }
    for why, forged in cases.items():
        status, body = await post_checkin(client, world, sid, "sign_in", forged)
        assert (status, error_of(body)["code"]) == (403, "code_invalid"), why
    status, body = await post_checkin(client, world, sid, "sign_in", "not-a-code")
    assert (status, error_of(body)["code"], body["error"]["field"]) == (400, "invalid", "code")
    assert await client_state(client, world, sid) == "not_signed_in"


# -- one place at a time ------------------------------------------------------------------------------------


async def test_a_learner_cannot_be_signed_in_at_two_venues_at_once(client: Client, world: World) -> None:
    _a, first = await running_now(world)
    other_course = await offline_course(world, title="消防设施操作培训")
    _b, second = await running_now(world, other_course)
    assert (await post_checkin(client, world, first, "sign_in", code(first, datetime.now(UTC))))[0] == 201

    status, body = await post_checkin(client, world, second, "sign_in", code(second, datetime.now(UTC)))
    error = error_of(body)
    assert (status, error["code"], error["details"]["session_id"]) == (409, "signed_in_elsewhere", first)
    assert "同一时间只能在一处" in error["details"]["message_zh"]
    assert "现场实操" in error["details"]["message_zh"]
    status, body = await post_checkin(client, world, second, "sign_out", code(second, datetime.now(UTC)))
    assert (status, error_of(body)["code"]) == (409, "signed_in_elsewhere")
    r = await client.get(f"/api/sessions/{second}/checkin", headers=world.actors["learner"].headers)
    assert (await r.json())["elsewhere"]["session_id"] == first

    # Signed out of the first (with a later code), the second venue takes the sign-in.
    later = datetime.now(UTC) + timedelta(seconds=31)
    await service.sign_out(world.db, caller(world), first, code(first, later), SECRET, DEVICE, later)
    assert (await post_checkin(client, world, second, "sign_in", code(second, datetime.now(UTC))))[0] == 201


async def test_signing_in_while_in_a_live_room_is_refused(client: Client, world: World) -> None:
    _course, sid = await running_now(world)
    # A live lecture of another course, started 20 minutes ago; the learner's seat opened a minute ago.
    live_start = datetime.now(UTC) - timedelta(minutes=20)
    async with world.db.sessions.begin() as s:
        lecture = await s.get(Session, world.session_id)
        assert lecture is not None
        lecture.actual_start = live_start
    await attendance.record_joined(
        world.db,
        events.ViewerJoined(
            session_id=world.session_id,
            person_id=world.actors["learner"].person_id,
            peer_id="phone",
            at=datetime.now(UTC) - timedelta(minutes=1),
        ),
    )
    status, body = await post_checkin(client, world, sid, "sign_in", code(sid, datetime.now(UTC)))
    error = error_of(body)
    assert (status, error["code"], error["details"]["client"]) == (409, "learning_online", "live")
    assert "线上和线下不能同时" in error["details"]["message_zh"]


async def test_signing_in_while_a_replay_plays_is_refused(client: Client, world: World) -> None:
    _course, sid = await running_now(world)
    recording = await world.recording(world.session_id)
    r = await client.post(f"/api/replays/{recording}/playback", headers=world.actors["learner"].headers)
    assert r.status == 201, await r.text()
    status, body = await post_checkin(client, world, sid, "sign_in", code(sid, datetime.now(UTC)))
    assert (status, error_of(body)["code"], body["error"]["details"]["client"]) == (
        409,
        "learning_online",
        "replay",
    )
    # Two heartbeat periods after the player was last heard of, it no longer holds the learner.
    later = datetime.now(UTC) + timedelta(seconds=2 * POLICY.heartbeat_period_s + 1)
    await sign_in(world, sid, later)


async def test_an_overlap_with_online_learning_that_slips_past_sign_in_is_not_credited_twice(
    world: World,
) -> None:
    # Signed in at the venue 09:00–12:00 (course A) and, from 10:00 to 11:00, a live lecture of course B
    # watched on a laptop (joined after signing in, so the sign-in could not refuse it).
    course_a = await offline_course(world)
    sid = await offline_session(world, course_a, T0)
    await world.enroll(world.actors["learner"].person_id, course_a)
    course_b = await world.course(world.orgs["provider"], title="线上讲座", credit_hours=Decimal("4.0"))
    lecture = await world.session(course_b, start=at(60))
    async with world.db.sessions.begin() as s:
        row = await s.get(Session, lecture)
        assert row is not None
        row.actual_start, row.actual_end = at(60), at(120)
    learner = world.actors["learner"].person_id
    await sign_in(world, sid, at(0))
    await live(world.db, lecture, learner, at(60), at(120))
    await sign_out(world, sid, at(180))

    await settle.settle_due(world.db, at(185))
    (online,) = await entries(world.db, session_id=lecture, kind="live")
    (offline,) = await entries(world.db, session_id=sid, kind="offline")
    assert online.xueshi == xs("1.0")  # 60 min
    # 180 min signed in, less the 60 credited to course B: 120 min → 2.5 学时.
    assert (offline.minutes, offline.xueshi) == (120.0, xs("2.5"))
    spans = [
        [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in e.evidence["credited_spans"]]
        for e in (online, offline)
    ]
    assert engine.intersect(spans[0], spans[1]) == []  # no instant credited twice (R29)
    assert "multi_course_overlap" in await flag_codes(world.db, learner)


# -- a missed sign-out, and the staff's correction -----------------------------------------------------------


async def test_a_missed_sign_out_earns_nothing_until_staff_correct_it(client: Client, world: World) -> None:
    course_id = await offline_course(world)
    sid = await offline_session(world, course_id, T0)
    await world.enroll(world.actors["learner"].person_id, course_id)
    signed = await sign_in(world, sid, at(0))
    await settle.settle_due(world.db, at(300))
    assert await entries(world.db, session_id=sid) == []
    async with world.db.sessions.begin() as s:
        audit = (
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "credit.offline_settled"))
        ).one()
    assert audit.detail["open_sign_ins"] == [world.actors["learner"].person_id]

    # The provider's administrator records the sign-out the learner forgot, with a reason.
    path = f"/api/offline-attendance/{signed['id']}/corrections"
    body = {"signed_out_at": at(150).isoformat(), "reason": "学员离场时手机没电，未能扫码签退，经讲师确认"}
    r = await client.post(path, json=body, headers=world.actors["provider_admin"].headers)
    assert r.status == 200, await r.text()
    corrected = await r.json()
    assert (corrected["open"], corrected["resettled"]) == (False, True)
    assert corrected["corrected"]["reason"] == body["reason"]
    (entry,) = await entries(world.db, session_id=sid)
    assert (entry.minutes, entry.xueshi) == (150.0, xs("3.0"))  # floor(150 / 45, 0.5)
    assert entry.evidence["corrected_attendance_ids"] == [signed["id"]]

    # A wrong time corrected again: the entry is reversed and credited anew, both audited.
    body = {"signed_out_at": at(120).isoformat(), "reason": "核对签到表后更正：11:00 离场"}
    r = await client.post(path, json=body, headers=world.actors["provider_admin"].headers)
    assert r.status == 200, await r.text()
    all_entries = await entries(world.db, session_id=sid)
    assert [(e.kind, e.xueshi) for e in all_entries] == [
        ("offline", xs("3.0")),
        ("reversal", xs("-3.0")),
        ("offline", xs("2.5")),
    ]
    assert ledger.net_xueshi(all_entries) == xs("2.5")
    async with world.db.sessions.begin() as s:
        rows = list(
            await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.in_(["offline.attendance_corrected", "credit.reversed"]))
                .order_by(AuditEntry.id)
            )
        )
    assert [a.action for a in rows] == [
        "offline.attendance_corrected",
        "offline.attendance_corrected",
        "credit.reversed",
    ]
    first, second = rows[0], rows[1]
    assert first.actor_person_id == world.actors["provider_admin"].person_id
    assert first.detail["before"]["signed_out_at"] is None
    assert second.detail["before"]["signed_out_at"] == at(150).isoformat()
    assert rows[2].actor_person_id == world.actors["provider_admin"].person_id


# -- who may do what, and bad input --------------------------------------------------------------------------


async def test_only_the_venue_staff_fetch_codes_and_only_provider_administrators_correct(
    client: Client, world: World
) -> None:
    course_id = await offline_course(world)
    expert = world.actors["expert"].person_id
    sid = await offline_session(
        world, course_id, datetime.now(UTC) - timedelta(minutes=10), experts=(expert,)
    )
    await world.enroll(world.actors["learner"].person_id, course_id)
    statuses = {}
    for who in ("learner", "expert", "provider_admin", "other_provider_admin", "bureau", "admin"):
        r = await client.get(f"/api/sessions/{sid}/venue/code", headers=world.actors[who].headers)
        statuses[who] = r.status
        if r.status >= 400:
            error_of(await r.json())
    assert statuses == {
        "learner": 403,
        "expert": 200,
        "provider_admin": 200,
        "other_provider_admin": 403,
        "bureau": 403,
        "admin": 200,
    }
    assert (await client.get(f"/api/sessions/{sid}/venue/code")).status == 401

    signed = await sign_in(world, sid, datetime.now(UTC))
    body = {"signed_out_at": datetime.now(UTC).isoformat(), "reason": "补录"}
    for who, expected in (("learner", 403), ("expert", 403), ("other_provider_admin", 403)):
        r = await client.post(
            f"/api/offline-attendance/{signed['id']}/corrections",
            json=body,
            headers=world.actors[who].headers,
        )
        assert r.status == expected, who
        assert error_of(await r.json())["code"] == "forbidden"
    async with world.db.sessions.begin() as s:
        row = await s.get(OfflineAttendance, signed["id"])
        assert row is not None
        assert (row.signed_out_at, row.corrected_by) == (None, None)


async def test_bad_input_is_a_clear_4xx_json_error(client: Client, world: World) -> None:
    _course, sid = await running_now(world)
    learner = world.actors["learner"].headers
    admin = world.actors["provider_admin"].headers
    url = f"/api/sessions/{sid}/checkin"
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "action"),
        ({"action": "dance", "code": "1.x"}, 400, "action"),
        ({"action": "sign_in"}, 400, "code"),
        ({"action": "sign_in", "code": "9" * 5000}, 400, "code"),
        ({"action": "sign_in", "code": 17}, 400, "code"),
        ({"action": "sign_in", "code": "1.x", "extra": 1}, 400, "extra"),
    ]
    for body, status, field in cases:
        r = await client.post(url, json=body, headers=learner)
        assert (r.status, error_of(await r.json())["field"]) == (status, field), body
    r = await client.post(url, data=b"{not json", headers={**learner, "Content-Type": "application/json"})
    assert r.status == 400
    error_of(await r.json())
    # A live session has no venue; an unknown one is not found.
    r = await client.get(f"/api/sessions/{world.session_id}/venue/code", headers=admin)
    assert (r.status, error_of(await r.json())["code"]) == (409, "not_offline")
    r = await client.get("/api/sessions/99999999/checkin", headers=learner)
    assert (r.status, error_of(await r.json())["code"]) == (404, "not_found")

    signed = await sign_in(world, sid, datetime.now(UTC))
    path = f"/api/offline-attendance/{signed['id']}/corrections"
    before = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for body, field in (
        ({"signed_out_at": datetime.now(UTC).isoformat()}, "reason"),
        ({"signed_out_at": before, "reason": "补录"}, "signed_out_at"),  # before the sign-in
        (
            {"signed_out_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "reason": "补录"},
            "signed_out_at",
        ),
        ({"signed_out_at": "yesterday", "reason": "补录"}, "signed_out_at"),
    ):
        r = await client.post(path, json=body, headers=admin)
        assert (r.status, error_of(await r.json())["field"]) == (400, field), body
    r = await client.post(
        "/api/offline-attendance/99999999/corrections",
        json={"signed_out_at": before, "reason": "x"},
        headers=admin,
    )
    assert r.status == 404


async def test_an_offline_session_is_created_with_its_place(client: Client, world: World) -> None:
    course_id = await offline_course(world)
    start = datetime.now(UTC) + timedelta(days=2)
    body = {
        "title": "上门培训",
        "kind": "offline",
        "scheduled_start": start.isoformat(),
        "scheduled_end": (start + timedelta(hours=3)).isoformat(),
    }
    admin = world.actors["provider_admin"].headers
    r = await client.post(f"/api/courses/{course_id}/sessions", json=body, headers=admin)
    assert (r.status, error_of(await r.json())["field"]) == (400, "location")
    r = await client.post(
        f"/api/courses/{course_id}/sessions", json={**body, "location": PLACE}, headers=admin
    )
    assert r.status == 201, await r.text()
    created = await r.json()
    assert (created["kind"], created["location"]) == ("offline", PLACE)
    r = await client.patch(f"/api/sessions/{created['id']}", json={"location": None}, headers=admin)
    assert (r.status, error_of(await r.json())["field"]) == (400, "location")
    r = await client.get(f"/api/courses/{course_id}")
    assert [s["location"] for s in (await r.json())["sessions"]] == [PLACE]
