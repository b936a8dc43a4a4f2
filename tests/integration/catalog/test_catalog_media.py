"""Media tokens for WHIP (publish), WHEP (watch) and the room channel, verified with infra.tokens like the
media server does: who gets them, only while the session's media window is open (a published course, a
session not ended, WHIP from half an hour before the start), and `check_grant`, asked when a token is
used, which refuses what a withdrawal, an expert's removal or the session's end made void."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog import MediaGrant, MediaPurpose, check_grant
from catalog.domain import CourseStatus, Role
from catalog.models import Course, Session
from infra import tokens
from infra.errors import Conflict, DomainError, Forbidden, Unauthenticated
from tests.integration.catalog.conftest import SECRET

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def token(
    client: Client, world: World, actor: str, purpose: str, session_id: int | None = None
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        f"/api/sessions/{session_id or world.session_id}/media-token",
        headers=world.actors[actor].headers,
        json={"purpose": purpose},
    )
    return resp.status, await resp.json()


async def live_session(world: World, *, starts_in: timedelta = timedelta(minutes=10)) -> int:
    """A session of the world's published course inside its media window, taught by the world's expert."""
    return await world.session(
        world.course_id, start=datetime.now(UTC) + starts_in, experts=(world.actors["expert"].person_id,)
    )


async def end(world: World, session_id: int) -> None:
    """The session went live and ended (as the consumer records session.started / session.ended)."""
    now = datetime.now(UTC)
    async with world.db.sessions.begin() as s:
        session = await s.get(Session, session_id)
        assert session is not None
        session.actual_start, session.actual_end = now - timedelta(minutes=50), now - timedelta(minutes=1)


async def set_course_status(world: World, course_id: int, status: CourseStatus) -> None:
    async with world.db.sessions.begin() as s:
        course = await s.get(Course, course_id)
        assert course is not None
        course.status = status.value


async def test_whep_tokens_carry_who_the_viewer_is_and_when_they_were_issued(
    client: Client, world: World
) -> None:
    for actor, role in (("learner", "learner"), ("expert", "expert"), ("provider_admin", "staff")):
        before = time.time()
        status, body = await token(client, world, actor, "whep")
        assert status == 201
        claims = tokens.verify(SECRET, "whep", body["token"], time.time())
        assert (claims.person_id, claims.subject, claims.role) == (
            world.actors[actor].person_id,
            f"session:{world.session_id}",
            role,
        )
        assert 290 <= claims.expires_at - time.time() <= 301
        assert before <= claims.extra["iat"] <= time.time()


async def test_only_the_sessions_experts_may_publish(client: Client, world: World) -> None:
    sid = await live_session(world)
    status, body = await token(client, world, "expert", "whip", sid)
    assert status == 201
    assert tokens.verify(SECRET, "whip", body["token"], time.time()).role == "expert"
    for actor in ("learner", "provider_admin", "admin"):
        assert (await token(client, world, actor, "whip", sid))[0] == 403


async def test_a_whep_token_is_not_a_whip_token(client: Client, world: World) -> None:
    _, body = await token(client, world, "learner", "whep")
    with pytest.raises(Unauthenticated):
        tokens.verify(SECRET, "whip", body["token"], time.time())


async def test_a_learner_who_withdrew_cannot_watch(client: Client, world: World) -> None:
    h = world.actors["learner"].headers
    assert (await client.post(f"/api/courses/{world.course_id}/withdraw", headers=h)).status == 200
    assert (await token(client, world, "learner", "whep"))[0] == 403
    assert (await token(client, world, "learner", "room"))[0] == 403


async def test_room_tokens_carry_the_name_shown_in_the_channel(client: Client, world: World) -> None:
    status, body = await token(client, world, "learner", "room")
    assert status == 201
    claims = tokens.verify(SECRET, "room", body["token"], time.time())
    assert claims.role == "learner"
    assert isinstance(claims.extra["name"], str)
    assert claims.extra["name"]
    assert (await token(client, world, "admin", "room"))[0] == 403


@dataclass(frozen=True)
class Case:
    actor: str
    purpose: str
    starts_in: timedelta
    status: int
    code: str | None = None
    course: CourseStatus = CourseStatus.PUBLISHED
    ended: bool = False


MINUTES = timedelta(minutes=1)
WINDOW_CASES = {
    "whip-inside-the-half-hour-before": Case("expert", "whip", 20 * MINUTES, 201),
    "whip-a-day-early": Case("expert", "whip", timedelta(days=1), 409, "too_early"),
    "whip-just-before-the-window": Case("expert", "whip", 32 * MINUTES, 409, "too_early"),
    "whip-late": Case("expert", "whip", -60 * MINUTES, 201),
    "whip-after-the-end": Case("expert", "whip", 20 * MINUTES, 409, "session_ended", ended=True),
    "whip-draft-course": Case(
        "expert", "whip", 20 * MINUTES, 409, "course_not_published", CourseStatus.DRAFT
    ),
    "whip-archived-course": Case(
        "expert", "whip", 20 * MINUTES, 409, "course_not_published", CourseStatus.ARCHIVED
    ),
    "whip-learner-is-refused-for-who-they-are": Case("learner", "whip", 20 * MINUTES, 403, ended=True),
    "whep-a-day-early-to-wait": Case("learner", "whep", timedelta(days=1), 201),
    "room-a-day-early-to-wait": Case("learner", "room", timedelta(days=1), 201),
    "whep-after-the-end": Case("learner", "whep", 20 * MINUTES, 409, "session_ended", ended=True),
    "room-after-the-end": Case("learner", "room", 20 * MINUTES, 409, "session_ended", ended=True),
    "room-after-the-end-expert": Case("expert", "room", 20 * MINUTES, 409, "session_ended", ended=True),
    "whep-draft-course": Case(
        "learner", "whep", 20 * MINUTES, 409, "course_not_published", CourseStatus.DRAFT
    ),
    "room-archived-course-staff": Case(
        "provider_admin", "room", 20 * MINUTES, 409, "course_not_published", CourseStatus.ARCHIVED
    ),
}


@pytest.mark.parametrize("case", list(WINDOW_CASES.values()), ids=list(WINDOW_CASES))
async def test_media_tokens_are_issued_only_inside_the_sessions_window(
    client: Client, world: World, case: Case
) -> None:
    course = await world.course(world.orgs["provider"], status=case.course, title="窗口测试")
    expert = world.actors["expert"].person_id
    sid = await world.session(course, start=datetime.now(UTC) + case.starts_in, experts=(expert,))
    await world.enroll(world.actors["learner"].person_id, course)
    if case.ended:
        await end(world, sid)
    status, body = await token(client, world, case.actor, case.purpose, sid)
    assert status == case.status, body
    if case.code is not None:
        assert body["error"]["code"] == case.code
        assert body["error"]["field"] == "session_id"
    if case.code == "too_early":
        opens_at = datetime.fromisoformat(body["error"]["details"]["opens_at"])
        scheduled = datetime.fromisoformat(body["error"]["details"]["scheduled_start"])
        assert scheduled - opens_at == timedelta(minutes=30)
        assert "30 minutes before" in body["error"]["message"]


async def test_the_studio_learns_when_publishing_opens_before_it_turns_on_a_camera(
    client: Client, world: World
) -> None:
    url = f"/api/sessions/{world.session_id}/access"  # tomorrow's session
    body = await (await client.get(url, headers=world.actors["expert"].headers)).json()
    assert (body["publish"], body["publish_refused"], body["watch"]) == (False, "too_early", True)
    async with world.db.sessions.begin() as s:
        session = await s.get(Session, world.session_id)
        assert session is not None
        expected = session.scheduled_start - timedelta(minutes=30)
    assert datetime.fromisoformat(body["publish_opens_at"]) == expected
    soon = await live_session(world)
    body = await (
        await client.get(f"/api/sessions/{soon}/access", headers=world.actors["expert"].headers)
    ).json()
    assert (body["publish"], body["publish_refused"]) == (True, None)
    await set_course_status(world, world.course_id, CourseStatus.ARCHIVED)
    body = await (
        await client.get(f"/api/sessions/{soon}/access", headers=world.actors["expert"].headers)
    ).json()
    assert (body["publish"], body["publish_refused"]) == (False, "course_not_published")


# -- check_grant: a token being used ------------------------------------------------------------------


async def grant_of(client: Client, world: World, actor: str, purpose: str, session_id: int) -> MediaGrant:
    """What the live server asks about a token the catalog issued (as streaming.live does)."""
    status, body = await token(client, world, actor, purpose, session_id)
    assert status == 201, body
    claims = tokens.verify(SECRET, purpose, body["token"], time.time())
    return MediaGrant(
        purpose=MediaPurpose(purpose),
        session_id=session_id,
        person_id=claims.person_id,
        role=claims.role,
        issued_at=datetime.fromtimestamp(claims.extra["iat"], UTC),
    )


async def refused(world: World, grant: MediaGrant) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await check_grant(world.db, grant, datetime.now(UTC))
    return caught.value


async def test_a_withdrawal_voids_the_tokens_issued_before_it_even_after_enrolling_again(
    client: Client, world: World
) -> None:
    sid = await live_session(world)
    learner = world.actors["learner"].headers
    grants = [await grant_of(client, world, "learner", p, sid) for p in ("whep", "room")]
    other = await grant_of(client, world, "expert", "whep", sid)
    for grant in (*grants, other):
        await check_grant(world.db, grant, datetime.now(UTC))  # admitted while enrolled

    assert (await client.post(f"/api/courses/{world.course_id}/withdraw", headers=learner)).status == 200
    for grant in grants:
        error = await refused(world, grant)
        assert isinstance(error, Forbidden)
        assert "no longer admits you" in error.message
    await check_grant(world.db, other, datetime.now(UTC))  # others keep watching

    assert (await client.post(f"/api/courses/{world.course_id}/enroll", headers=learner)).status == 201
    for grant in grants:  # issued before the withdrawal: still void
        assert isinstance(await refused(world, grant), Forbidden)
    fresh = await grant_of(client, world, "learner", "whep", sid)
    await check_grant(world.db, fresh, datetime.now(UTC))


async def test_an_expert_taken_off_the_session_can_no_longer_use_their_tokens(
    client: Client, world: World
) -> None:
    sid = await live_session(world)
    grant = await grant_of(client, world, "expert", "whip", sid)
    await check_grant(world.db, grant, datetime.now(UTC))
    substitute = await world.person("substitute", [(Role.EXPERT, None)])
    resp = await client.put(
        f"/api/sessions/{sid}/experts",
        headers=world.actors["provider_admin"].headers,
        json={"person_ids": [substitute.person_id]},
    )
    assert resp.status == 200, await resp.text()
    assert isinstance(await refused(world, grant), Forbidden)


async def test_a_token_used_after_the_session_ended_or_its_course_was_archived_is_refused(
    client: Client, world: World
) -> None:
    sid = await live_session(world)
    grants = {
        (actor, purpose): await grant_of(client, world, actor, purpose, sid)
        for actor, purpose in (("expert", "whip"), ("learner", "whep"), ("learner", "room"))
    }
    await set_course_status(world, world.course_id, CourseStatus.ARCHIVED)
    for grant in grants.values():
        error = await refused(world, grant)
        assert (type(error).__mro__[1], error.code) == (Conflict, "course_not_published")
    await set_course_status(world, world.course_id, CourseStatus.PUBLISHED)
    await end(world, sid)
    for grant in grants.values():
        assert (await refused(world, grant)).code == "session_ended"


async def test_a_whip_token_for_a_session_moved_to_tomorrow_is_refused_as_too_early(
    client: Client, world: World
) -> None:
    sid = await live_session(world)
    whip = await grant_of(client, world, "expert", "whip", sid)
    whep = await grant_of(client, world, "learner", "whep", sid)
    async with world.db.sessions.begin() as s:
        session = await s.get(Session, sid)
        assert session is not None
        session.scheduled_start += timedelta(days=1)
        session.scheduled_end += timedelta(days=1)
    assert (await refused(world, whip)).code == "too_early"
    await check_grant(world.db, whep, datetime.now(UTC))  # learners may still wait in the room
