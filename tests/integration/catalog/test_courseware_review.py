"""Shared courseware reviewed by the CE association (R27), on a real database (SQLite and PostgreSQL) and
the real media routes (`/hls/`, `/objects/`): an expert's version goes draft → submitted → approved and
becomes a recorded course every learner can enroll in; a new version is reviewed while the old one stays
on; its approval supersedes the old one; a rejection says why; a revocation takes the course out of the
catalog and marks the credit already earned. A learner never reaches an unapproved version's media, by
URL or API; only reviewers review and only the owner edits; replay credit counts only while a version
was approved."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog import evidence as store
from catalog.credit import settle
from catalog.credit.policy import CreditPolicy
from catalog.models import AuditEntry, CoursewareVersion, Session
from infra import media_access
from infra.appkeys import OBJECTS
from infra.settings import Settings
from streaming import hls_routes, live, objects_routes
from tests.integration.catalog.conftest import SECRET, AiohttpClient, make_app
from tests.integration.catalog.courseware_support import (
    add_version,
    approved,
    create_courseware,
    decide,
    decide_at,
    decided_at,
    ready_version,
    rendered,
)
from tests.integration.catalog.credit_support import beats, entries, store_policy

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-ENDLIST\n"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """No settlement task: the credit tests settle by hand, at the times they choose."""
    return Settings(
        database_url=database_url, secret_key=SECRET, data_dir=tmp_path / "var", credit_settle_every_s=0
    )


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    """The catalog with the media routes as the server wires them: `/hls/` (admission asked of the
    catalog) and `/objects/` (signed URLs of the embedded store)."""
    app = make_app(settings)  # with the embedded object store (app[OBJECTS])
    hls_routes.add_routes(app)
    objects_routes.add_routes(app)
    live.use_catalog(app)
    return await aiohttp_client(app)


def _headers(w: World, who: str) -> dict[str, str]:
    return w.actors[who].headers


async def _playlist(client: Client, session_id: int, recording_id: str) -> str:
    """Store the rendition's playlist (so that whoever is admitted gets 200) and return its URL."""
    key = f"hls/{session_id}/{recording_id}/camera/index.m3u8"
    await client.app[OBJECTS].put(key, PLAYLIST, "application/vnd.apple.mpegurl")
    return "/" + key


async def _hls(client: Client, url: str, cookie: str | None) -> int:
    client.session.cookie_jar.clear()
    headers = {"Cookie": f"{media_access.COOKIE}={cookie}"} if cookie else {}
    async with client.get(url, headers=headers) as resp:
        body = await resp.read()
        if resp.status == 200:
            assert body == PLAYLIST
        return resp.status


async def _media_cookie(client: Client, w: World, who: str, recording_id: str) -> str | None:
    client.session.cookie_jar.clear()
    resp = await client.get(f"/api/replays/{recording_id}", headers=_headers(w, who))
    cookie = resp.cookies.get(media_access.COOKIE)
    return cookie.value if cookie is not None else None


async def _course(client: Client, w: World, course_id: int, who: str = "learner") -> Any:
    return await client.get(f"/api/courses/{course_id}", headers=_headers(w, who))


async def _version(w: World, version_id: int) -> CoursewareVersion:
    async with w.db.sessions.begin() as s:
        version = await s.get(CoursewareVersion, version_id)
        assert version is not None
        return version


async def _course_of(w: World, courseware_id: int) -> int:
    from catalog.models import Courseware

    async with w.db.sessions.begin() as s:
        cw = await s.get(Courseware, courseware_id)
        assert cw is not None
        assert cw.course_id is not None
        return cw.course_id


async def _enroll(client: Client, w: World, course_id: int, who: str = "learner") -> None:
    resp = await client.post(f"/api/courses/{course_id}/enroll", headers=_headers(w, who))
    assert resp.status in (200, 201), await resp.text()


# -- the review states and versions --------------------------------------------------------------------


async def test_an_approved_version_becomes_a_recorded_course_every_learner_can_watch(
    client: Client, world: World
) -> None:
    cw = await create_courseware(client, world)
    assert cw["versions"] == []
    assert cw["course_id"] is None
    version_id, session_id, rec = await ready_version(client, world, cw["id"], duration_s=3600.0)

    resp = await client.get("/api/courseware/review-queue", headers=_headers(world, "reviewer"))
    assert resp.status == 200, await resp.text()
    [item] = (await resp.json())["items"]
    assert item["version"]["id"] == version_id
    assert item["version"]["review_state"] == "submitted"
    assert item["version"]["recording_id"] == rec
    assert item["courseware"]["owner_name"] == "测试expert"
    # The reviewer watches the version before deciding (its rendition, through the replay route).
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "reviewer"))).status == 200

    view = await approved(client, world, version_id)
    course_id = view["course_id"]
    assert view["versions"][0]["review_state"] == "approved"
    assert view["approved_version"] == 1
    assert [r["decision"] for r in view["versions"][0]["reviews"]] == ["approved"]

    resp = await client.get("/api/courses", params={"q": "BIM"})
    listed = (await resp.json())["items"]
    assert [c["id"] for c in listed] == [course_id]
    course = await (await _course(client, world, course_id)).json()
    assert (course["delivery"], course["category"], course["status"]) == (
        "recorded",
        "professional",
        "published",
    )
    assert course["provider_id"] == world.orgs["association"]
    assert course["credit_hours"] == "1.3"  # an hour at the default 45 minutes per 学时, floored to 0.1
    assert [s["id"] for s in course["sessions"]] == [session_id]
    assert course["sessions"][0]["status"] == "ended"
    assert course["sessions"][0]["experts"] == [
        {"id": world.actors["expert"].person_id, "name": "测试expert"}
    ]

    # Any learner may enroll (no capacity) and watch it as a replay.
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "staff"))).status == 403
    await _enroll(client, world, course_id, "staff")
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "staff"))).status == 200
    resp = await client.post(f"/api/replays/{rec}/playback", headers=_headers(world, "staff"))
    assert resp.status == 201, await resp.text()
    cookie = await _media_cookie(client, world, "staff", rec)
    assert await _hls(client, await _playlist(client, session_id, rec), cookie) == 200

    async with world.db.sessions.begin() as s:
        actions = list(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.subject_id == str(version_id)))
        )
    assert actions == ["courseware.submitted", "courseware.approved"]


async def test_a_new_version_is_reviewed_while_the_old_one_stays_on_then_supersedes_it(
    client: Client, world: World
) -> None:
    cw = await create_courseware(client, world)
    v1, s1, rec1 = await ready_version(client, world, cw["id"], duration_s=600.0)
    course_id = (await approved(client, world, v1))["course_id"]
    await _enroll(client, world, course_id)
    old_cookie = await _media_cookie(client, world, "learner", rec1)
    url1 = await _playlist(client, s1, rec1)
    assert await _hls(client, url1, old_cookie) == 200

    v2, s2, rec2 = await ready_version(client, world, cw["id"], duration_s=900.0)
    assert (await _version(world, v2)).review_state == "submitted"
    # Under review: the course still offers version 1 only, and version 2 is closed to the learner.
    course = await (await _course(client, world, course_id)).json()
    assert [s["id"] for s in course["sessions"]] == [s1]
    assert [r["id"] for r in course["replays"]] == [rec1]
    assert (await client.get(f"/api/replays/{rec1}", headers=_headers(world, "learner"))).status == 200
    assert (await client.get(f"/api/replays/{rec2}", headers=_headers(world, "learner"))).status == 403

    view = await approved(client, world, v2)
    states = {v["version"]: v["review_state"] for v in view["versions"]}
    assert states == {1: "superseded", 2: "approved"}
    assert view["course_id"] == course_id  # the same course, switched to the new version
    course = await (await _course(client, world, course_id)).json()
    assert [s["id"] for s in course["sessions"]] == [s2]
    assert course["credit_hours"] == "0.3"  # 15 minutes at 45 per 学时
    assert (await client.get(f"/api/replays/{rec2}", headers=_headers(world, "learner"))).status == 200
    # The superseded version is closed at once, even to a media cookie issued while it was approved.
    assert (await client.get(f"/api/replays/{rec1}", headers=_headers(world, "learner"))).status == 403
    assert await _hls(client, url1, old_cookie) == 403


async def test_a_rejection_needs_comments_and_shows_them_to_the_owner(client: Client, world: World) -> None:
    cw = await create_courseware(client, world)
    version_id, _sid, rec = await ready_version(client, world, cw["id"])
    resp = await decide(client, world, version_id, "rejected", "   ")
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "comments"
    assert (await _version(world, version_id)).review_state == "submitted"

    resp = await decide(client, world, version_id, "rejected", "第 12 分钟的规范已废止，请更新后重新上传")
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"/api/courseware/{cw['id']}", headers=_headers(world, "expert"))
    [version] = (await resp.json())["versions"]
    assert version["review_state"] == "rejected"
    assert version["reviews"][0]["comments"] == "第 12 分钟的规范已废止，请更新后重新上传"
    assert version["reviews"][0]["reviewer_name"] == "测试reviewer"
    # Final: neither approved later nor submitted again (new content is a new version).
    assert (await decide(client, world, version_id, "approved")).status == 409
    resp = await client.post(
        f"/api/courseware/versions/{version_id}/submit", headers=_headers(world, "expert")
    )
    assert resp.status == 409
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "learner"))).status == 403
    queue = await client.get("/api/courseware/review-queue", headers=_headers(world, "reviewer"))
    assert (await queue.json())["items"] == []


async def test_submitting_needs_a_ready_draft_and_one_version_under_review_at_a_time(
    client: Client, world: World
) -> None:
    cw = await create_courseware(client, world)
    owner = _headers(world, "expert")
    version = await add_version(client, world, cw["id"])
    assert version["processing"] == "processing"
    assert version["review_state"] == "draft"
    resp = await client.post(f"/api/courseware/versions/{version['id']}/submit", headers=owner)
    assert resp.status == 409
    assert (await resp.json())["error"]["field"] == "processing"
    await rendered(world, version["id"])
    resp = await client.post(f"/api/courseware/versions/{version['id']}/submit", headers=owner)
    assert resp.status == 200, await resp.text()

    second, _s, _r = await ready_version(client, world, cw["id"], submit=False)
    resp = await client.post(f"/api/courseware/versions/{second}/submit", headers=owner)
    assert resp.status == 409
    assert (await resp.json())["error"]["details"] == {"submitted_version": 1}
    # The queue is oldest first.
    other = await create_courseware(client, world, title="装配式建筑质量验收")
    later, _s, _r = await ready_version(client, world, other["id"])
    queue = await (
        await client.get("/api/courseware/review-queue", headers=_headers(world, "reviewer"))
    ).json()
    assert [i["version"]["id"] for i in queue["items"]] == [version["id"], later]


async def test_a_revocation_takes_the_course_out_of_the_catalog_and_marks_the_credit_earned(
    client: Client, world: World
) -> None:
    await store_policy(world.db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    cw = await create_courseware(client, world)
    version_id, session_id, rec = await ready_version(client, world, cw["id"], duration_s=120.0)
    # Approved an hour ago (through the review service, so that the viewing below fits before the
    # revocation): two learners watched it to the end since.
    approved_at = datetime.now(UTC) - timedelta(hours=1)
    await decide_at(world, version_id, "approved", approved_at)
    course_id = await _course_of(world, cw["id"])
    await _enroll(client, world, course_id)
    cookie = await _media_cookie(client, world, "learner", rec)
    url = await _playlist(client, session_id, rec)
    assert await _hls(client, url, cookie) == 200
    learner, staff = (world.actors[k].person_id for k in ("learner", "staff"))
    start = approved_at + timedelta(minutes=10)
    await store.store_batch(world.db, beats(learner, rec, "cl-1", start, [10.0 * n for n in range(13)]))
    await store.store_batch(world.db, beats(staff, rec, "cl-2", start, [10.0 * n for n in range(13)]))
    await settle.settle_replay(world.db, learner, rec, start + timedelta(minutes=5))
    [entry] = await entries(world.db, person_id=learner, kind="replay")
    assert (entry.xueshi, entry.status, entry.course_id) == (Decimal("2.00"), "pending", course_id)

    resp = await decide(client, world, version_id, "revoked", "")
    assert resp.status == 400  # a revocation says why
    resp = await decide(client, world, version_id, "revoked", "引用的标准已被撤销")
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["versions"][0]["review_state"] == "revoked"

    assert (await _course(client, world, course_id)).status == 404
    assert (await (await client.get("/api/courses", params={"q": "BIM"})).json())["items"] == []
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "learner"))).status == 403
    assert await _hls(client, url, cookie) == 403  # the cookie it had stops opening the media at once
    assert (
        await client.post(f"/api/courses/{course_id}/enroll", headers=_headers(world, "staff"))
    ).status == 409

    # The other learner's viewing (while it was approved) is settled only now: credited, to the shared
    # course, although the revoked version's session is back in the staging course.
    await settle.settle_replay(world.db, staff, rec, datetime.now(UTC))
    [late] = await entries(world.db, person_id=staff, kind="replay")
    assert (late.xueshi, late.course_id) == (Decimal("2.00"), course_id)

    # The credit stays, marked.
    [kept] = await entries(world.db, person_id=learner, kind="replay")
    assert kept.id == entry.id
    assert kept.xueshi == Decimal("2.00")
    mine = await (
        await client.get(
            "/api/me/credits", params={"year": entry.credit_year}, headers=_headers(world, "learner")
        )
    ).json()
    [course] = [c for c in mine["courses"] if c["course_id"] == course_id]
    [shown] = course["entries"]
    assert shown["courseware_revoked"] is True
    assert shown["courseware_id"] == cw["id"]
    assert shown["courseware_version"] == 1
    assert course["pending_xueshi"] == "2.00"

    # A new version approved later publishes the same course again, with the new version only.
    v2, s2, rec2 = await ready_version(client, world, cw["id"])
    await approved(client, world, v2)
    shown_again = await (await _course(client, world, course_id)).json()
    assert shown_again["status"] == "published"
    assert [s["id"] for s in shown_again["sessions"]] == [s2]
    assert (await client.get(f"/api/replays/{rec2}", headers=_headers(world, "learner"))).status == 200
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "learner"))).status == 403
    assert (await _version(world, version_id)).review_state == "revoked"


# -- R27: replay credit only while the version was approved --------------------------------------------


async def test_replay_credit_counts_only_playback_while_the_version_was_approved(
    client: Client, world: World
) -> None:
    await store_policy(world.db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    cw = await create_courseware(client, world)
    version_id, _sid, rec = await ready_version(client, world, cw["id"], duration_s=120.0)
    # Decisions at scripted times through the review service: approved at t0, revoked 30 minutes later.
    t0 = datetime.now(UTC) - timedelta(hours=2)
    await decide_at(world, version_id, "approved", t0)
    await decide_at(world, version_id, "revoked", t0 + timedelta(minutes=30), "内容有误")
    course_id = await _course_of(world, cw["id"])
    plays = {
        "learner": t0 - timedelta(minutes=10),  # the whole video before the approval (under review)
        "staff": t0 + timedelta(minutes=5),  # while approved: credited
        "employer_admin": t0 + timedelta(minutes=29),  # across the revocation: incomplete, nothing
        "provider_admin": t0 + timedelta(minutes=40),  # after it, with a token still held: nothing
    }
    for who, start in plays.items():
        person = world.actors[who].person_id
        await store.store_batch(
            world.db, beats(person, rec, f"cl-{who}", start, [10.0 * n for n in range(13)])
        )
        await settle.settle_replay(world.db, person, rec, t0 + timedelta(hours=1))
    credited = {who: await entries(world.db, person_id=world.actors[who].person_id) for who in plays}
    assert {who: len(found) for who, found in credited.items()} == {
        "learner": 0,
        "staff": 1,
        "employer_admin": 0,
        "provider_admin": 0,
    }
    [entry] = credited["staff"]
    assert (entry.kind, entry.xueshi, entry.course_id) == ("replay", Decimal("2.00"), course_id)


async def test_a_superseded_versions_playback_after_the_switch_earns_nothing(
    client: Client, world: World
) -> None:
    await store_policy(world.db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    cw = await create_courseware(client, world)
    v1, _s1, rec1 = await ready_version(client, world, cw["id"])
    await approved(client, world, v1)
    v2, _s2, _rec2 = await ready_version(client, world, cw["id"])
    await approved(client, world, v2)
    switched = await decided_at(world, v2, "approved")
    learner = world.actors["learner"].person_id
    # A client that kept its token plays version 1 to the end after the switch: nothing is credited.
    await store.store_batch(
        world.db,
        beats(learner, rec1, "cl-old", switched + timedelta(seconds=1), [10.0 * n for n in range(13)]),
    )
    await settle.settle_replay(world.db, learner, rec1, switched + timedelta(minutes=10))
    assert await entries(world.db, person_id=learner) == []


# -- access: unapproved media unreachable, only reviewers review, only the owner edits -------------------


@pytest.mark.parametrize("state", ["draft", "submitted", "rejected", "revoked", "superseded"])
async def test_a_learner_never_reaches_an_unapproved_versions_media(
    client: Client, world: World, state: str
) -> None:
    cw = await create_courseware(client, world)
    approved_cookie = None
    if state in ("revoked", "superseded"):
        # Approved first, watched by the enrolled learner (who holds its media cookie), then withdrawn.
        version_id, session_id, rec = await ready_version(client, world, cw["id"], slides=True)
        course_id = (await approved(client, world, version_id))["course_id"]
        await _enroll(client, world, course_id)
        approved_cookie = await _media_cookie(client, world, "learner", rec)
        assert approved_cookie is not None
        if state == "revoked":
            assert (await decide(client, world, version_id, "revoked", "撤销共享")).status == 201
        else:
            newer, _s, _r = await ready_version(client, world, cw["id"])
            await approved(client, world, newer)
    else:
        version_id, session_id, rec = await ready_version(
            client, world, cw["id"], slides=True, submit=state != "draft"
        )
        if state == "rejected":
            assert (await decide(client, world, version_id, "rejected", "画面不清晰")).status == 201
    assert (await _version(world, version_id)).review_state == state
    url = await _playlist(client, session_id, rec)
    learner = _headers(world, "learner")
    client.session.cookie_jar.clear()

    # The API: the replay, its playback (the token route), the media cookie, the slides, the courseware.
    assert (await client.get(f"/api/replays/{rec}", headers=learner)).status == 403
    assert (await client.post(f"/api/replays/{rec}/playback", headers=learner)).status == 403
    resp = await client.post(f"/api/sessions/{session_id}/hls-access", headers=learner)
    assert resp.status == 403
    assert resp.cookies.get(media_access.COOKIE) is None
    assert (await client.get(f"/api/courseware/versions/{version_id}/slides", headers=learner)).status == 403
    assert (await client.get(f"/api/courseware/{cw['id']}", headers=learner)).status == 404
    async with world.db.sessions.begin() as s:
        held_by = await s.scalar(select(Session.course_id).where(Session.id == session_id))
    assert held_by is not None
    assert (await _course(client, world, held_by)).status == 404  # the staging course: a draft
    assert (await client.get(f"/api/sessions/{session_id}", headers=learner)).status == 404
    # Nor a supervisor or an administrator: nobody but the owner and the reviewers.
    for who in ("bureau", "admin", "provider_admin"):
        assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, who))).status == 403, who
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "expert"))).status == 200
    assert (await client.get(f"/api/replays/{rec}", headers=_headers(world, "reviewer"))).status == 200

    # The URLs: the HLS playlist without a cookie, with a forged one for its session signed by another
    # key, with the learner's real cookie of another session, and with one issued while it was approved.
    assert await _hls(client, url, None) == 401
    forged = media_access.issue(
        "not the server's key", world.actors["learner"].person_id, session_id, "learner", time.time()
    )
    assert await _hls(client, url, forged) == 401
    other = media_access.issue(
        SECRET, world.actors["learner"].person_id, world.session_id, "learner", time.time()
    )
    assert await _hls(client, url, other) == 403
    if approved_cookie is not None:
        assert await _hls(client, url, approved_cookie) == 403
    # A cookie the server itself would sign for the learner is refused by the catalog's admission.
    minted = media_access.issue(SECRET, world.actors["learner"].person_id, session_id, "learner", time.time())
    assert await _hls(client, url, minted) == 403
    # The uploaded original and the slides in the object store: no URL without the server's signature.
    version = await _version(world, version_id)
    for key in (version.object_key, version.slides_object_key):
        assert key is not None
        await client.app[OBJECTS].put(key, b"original bytes")
        client.session.cookie_jar.clear()
        for query in ("", "?expires=9999999999&signature=00"):
            async with client.get(f"/objects/{key}{query}", headers=learner) as resp:
                assert resp.status == 403
                assert b"original bytes" not in await resp.read()


async def test_approved_slides_open_to_enrolled_learners_by_a_signed_url(
    client: Client, world: World
) -> None:
    cw = await create_courseware(client, world)
    version_id, _sid, _rec = await ready_version(client, world, cw["id"], slides=True)
    key = (await _version(world, version_id)).slides_object_key
    assert key is not None
    await client.app[OBJECTS].put(key, b"%PDF-1.4 slides", "application/pdf")
    reviewer = await client.get(
        f"/api/courseware/versions/{version_id}/slides", headers=_headers(world, "reviewer")
    )
    assert reviewer.status == 200
    course_id = (await approved(client, world, version_id))["course_id"]
    learner = _headers(world, "learner")
    assert (await client.get(f"/api/courseware/versions/{version_id}/slides", headers=learner)).status == 403
    await _enroll(client, world, course_id)
    resp = await client.get(f"/api/courseware/versions/{version_id}/slides", headers=learner)
    assert resp.status == 200, await resp.text()
    url = (await resp.json())["url"]
    path = url[url.index("/objects/") :]
    client.session.cookie_jar.clear()
    async with client.get(path) as got:
        assert got.status == 200
        assert await got.read() == b"%PDF-1.4 slides"


@pytest.mark.parametrize("who", ["learner", "expert", "provider_admin", "employer_admin", "bureau", "admin"])
async def test_only_reviewers_review(client: Client, world: World, who: str) -> None:
    cw = await create_courseware(client, world)
    version_id, _s, _r = await ready_version(client, world, cw["id"])
    for decision, comments in (("approved", ""), ("rejected", "不同意")):
        resp = await decide(client, world, version_id, decision, comments, who=who)
        assert resp.status == 403, (who, await resp.text())
    queue = await client.get("/api/courseware/review-queue", headers=_headers(world, who))
    assert queue.status == (200 if who in ("bureau", "admin") else 403)
    assert (await _version(world, version_id)).review_state == "submitted"


async def test_a_reviewer_does_not_review_their_own_courseware(client: Client, world: World) -> None:
    from catalog.domain import Role

    both = await world.person("both", [(Role.EXPERT, None), (Role.REVIEWER, world.orgs["association"])])
    assert both.person_id
    cw = await create_courseware(client, world, "both")
    version_id, _s, _r = await ready_version(client, world, cw["id"], "both")
    resp = await decide(client, world, version_id, "approved", who="both")
    assert resp.status == 403
    assert (await decide(client, world, version_id, "approved")).status == 201


async def test_only_the_owner_edits_and_adds_versions(client: Client, world: World) -> None:
    from catalog.domain import Role

    await world.person("other_expert", [(Role.EXPERT, None)])
    cw = await create_courseware(client, world)
    path = f"/api/courseware/{cw['id']}"
    for who in ("other_expert", "reviewer", "learner", "admin"):
        resp = await client.patch(path, json={"title": "改名"}, headers=_headers(world, who))
        assert resp.status == 404, who
    resp = await client.patch(path, json={"title": "BIM 技术应用（修订）"}, headers=_headers(world, "expert"))
    assert resp.status == 200
    assert (await resp.json())["title"] == "BIM 技术应用（修订）"
    # Reviewers and supervisors read it; another expert does not see it.
    assert (await client.get(path, headers=_headers(world, "reviewer"))).status == 200
    assert (await client.get(path, headers=_headers(world, "other_expert"))).status == 404
    mine = await (await client.get("/api/courseware", headers=_headers(world, "other_expert"))).json()
    assert mine["items"] == []

    # Versions: only from the owner's own completed uploads, each upload once.
    from tests.integration.catalog.courseware_support import completed_upload

    theirs = await completed_upload(world, "other_expert")
    resp = await client.post(
        f"{path}/versions", json={"upload_id": theirs}, headers=_headers(world, "expert")
    )
    assert resp.status == 404
    resp = await client.post(
        f"{path}/versions", json={"upload_id": theirs}, headers=_headers(world, "other_expert")
    )
    assert resp.status == 404
    mine_upload = await completed_upload(world)
    resp = await client.post(
        f"{path}/versions", json={"upload_id": mine_upload}, headers=_headers(world, "expert")
    )
    assert resp.status == 201
    resp = await client.post(
        f"{path}/versions", json={"upload_id": mine_upload}, headers=_headers(world, "expert")
    )
    assert resp.status == 409
    version_id = await _latest_version(world, cw["id"])
    resp = await client.post(
        f"/api/courseware/versions/{version_id}/submit", headers=_headers(world, "other_expert")
    )
    assert resp.status == 404
    # Only experts create courseware.
    for who in ("learner", "reviewer", "provider_admin"):
        resp = await client.post(
            "/api/courseware", json={"title": "x", "category": "public"}, headers=_headers(world, who)
        )
        assert resp.status == 403, (who, await resp.text())


async def _latest_version(w: World, courseware_id: int) -> int:
    async with w.db.sessions.begin() as s:
        found = await s.scalar(
            select(CoursewareVersion.id)
            .where(CoursewareVersion.courseware_id == courseware_id)
            .order_by(CoursewareVersion.version.desc())
        )
    assert found is not None
    return int(found)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/courseware", {"category": "public"}, "title"),
        ("POST", "/api/courseware", {"title": "课件", "category": "other"}, "category"),
        ("POST", "/api/courseware", {"title": "课件", "category": "public", "owner": 1}, "owner"),
        ("POST", "/api/courseware", {"title": "x" * 201, "category": "public"}, "title"),
        ("PATCH", "/api/courseware/{cw}", {}, None),
        ("POST", "/api/courseware/{cw}/versions", {"upload_id": "12"}, "upload_id"),
        ("POST", "/api/courseware/{cw}/versions", {}, "upload_id"),
        ("POST", "/api/courseware/versions/{v}/reviews", {"decision": "maybe"}, "decision"),
        (
            "POST",
            "/api/courseware/versions/{v}/reviews",
            {"decision": "rejected", "comments": "长" * 2001},
            "comments",
        ),
        ("GET", "/api/courseware/review-queue?state=everything", None, "state"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(
    client: Client, world: World, method: str, path: str, body: dict[str, Any] | None, field: str | None
) -> None:
    cw = await create_courseware(client, world)
    version_id, _s, _r = await ready_version(client, world, cw["id"])
    who = "reviewer" if "reviews" in path or "queue" in path else "expert"
    resp = await client.request(
        method, path.format(cw=cw["id"], v=version_id), json=body, headers=_headers(world, who)
    )
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["field"] == field
    assert (await _version(world, version_id)).review_state == "submitted"
    mine = await (await client.get("/api/courseware", headers=_headers(world, "expert"))).json()
    assert [(c["title"], len(c["versions"])) for c in mine["items"]] == [(cw["title"], 1)]
    assert (await client.get("/api/courseware/999999", headers=_headers(world, "expert"))).status == 404
    resp = await client.post("/api/courseware/versions/999999/submit", headers=_headers(world, "expert"))
    assert resp.status == 404
