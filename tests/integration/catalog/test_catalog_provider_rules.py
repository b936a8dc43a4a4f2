"""What a provider gets wrong is refused with a 4xx naming the field: a session scheduled in the past, a live
session of a published course without an expert, publishing a course with such sessions or a 录播 course
with nothing to watch; and learners cannot enroll in a 录播 course with nothing to watch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.domain import CourseStatus

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


def live_session(start: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "title": "第二讲",
        "kind": "live",
        "scheduled_start": start.isoformat(),
        "scheduled_end": (start + timedelta(hours=2)).isoformat(),
        **extra,
    }


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    error: dict[str, Any] = body["error"]
    return error


def admin(world: World) -> dict[str, str]:
    return world.actors["provider_admin"].headers


# -- dates ------------------------------------------------------------------------------------------


async def test_a_session_starting_in_the_past_is_refused_naming_scheduled_start(
    client: Client, world: World
) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    resp = await client.post(
        f"/api/courses/{world.draft_course_id}/sessions", headers=admin(world), json=live_session(yesterday)
    )
    error = await error_of(resp, 400)
    assert (error["code"], error["field"]) == ("invalid", "scheduled_start")
    assert error["message"] == "scheduled_start is in the past"
    detail = await (await client.get(f"/api/courses/{world.draft_course_id}", headers=admin(world))).json()
    assert detail["sessions"] == []


async def test_a_session_starting_this_minute_is_accepted(client: Client, world: World) -> None:
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)  # the minute the provider typed, now behind us
    resp = await client.post(
        f"/api/courses/{world.draft_course_id}/sessions",
        headers=admin(world),
        json=live_session(a_minute_ago),
    )
    assert resp.status == 201, await resp.text()


async def test_an_end_before_the_start_is_refused_naming_scheduled_end(client: Client, world: World) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    body = live_session(start, scheduled_end=(start - timedelta(hours=1)).isoformat())
    resp = await client.post(
        f"/api/courses/{world.draft_course_id}/sessions", headers=admin(world), json=body
    )
    error = await error_of(resp, 400)
    assert (error["field"], error["message"]) == ("scheduled_end", "scheduled_end must be after the start")


async def test_rescheduling_into_the_past_is_refused_but_other_changes_of_a_past_session_are_not(
    client: Client, world: World
) -> None:
    url = f"/api/sessions/{world.session_id}"
    last_week = datetime.now(UTC) - timedelta(days=7)
    resp = await client.patch(url, headers=admin(world), json={"scheduled_start": last_week.isoformat()})
    assert (await error_of(resp, 400))["field"] == "scheduled_start"
    resp = await client.patch(
        url,
        headers=admin(world),
        json={
            "scheduled_start": last_week.isoformat(),
            "scheduled_end": (last_week + timedelta(hours=1)).isoformat(),
        },
    )
    assert (await error_of(resp, 400))["field"] == "scheduled_start"
    resp = await client.patch(
        url,
        headers=admin(world),
        json={"scheduled_end": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
    )
    assert (await error_of(resp, 400))["field"] == "scheduled_end"
    # A session that already took place keeps its title editable; its actual times are the server's own
    # (fraud 17: a correction is an audited POST .../time-corrections, not a field edit).
    past = await world.session(world.course_id, start=last_week, experts=(world.actors["expert"].person_id,))
    resp = await client.patch(
        f"/api/sessions/{past}", headers=admin(world), json={"title": "第一讲（已结束）"}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["title"] == "第一讲（已结束）"
    resp = await client.patch(
        f"/api/sessions/{past}", headers=admin(world), json={"actual_start": last_week.isoformat()}
    )
    assert (await error_of(resp, 400))["field"] == "actual_start"


# -- experts ----------------------------------------------------------------------------------------


async def test_a_live_session_of_a_published_course_must_name_its_expert(
    client: Client, world: World
) -> None:
    start = datetime.now(UTC) + timedelta(days=3)
    url = f"/api/courses/{world.course_id}/sessions"
    resp = await client.post(url, headers=admin(world), json=live_session(start))
    error = await error_of(resp, 400)
    assert (error["field"], error["message"]) == (
        "expert_ids",
        "a live session of a published course needs at least one expert",
    )
    learner = world.actors["learner"].person_id
    resp = await client.post(url, headers=admin(world), json=live_session(start, expert_ids=[learner]))
    assert (await error_of(resp, 400))["field"] == "expert_ids"  # not an expert

    expert = world.actors["expert"].person_id
    resp = await client.post(url, headers=admin(world), json=live_session(start, expert_ids=[expert]))
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["experts"] == [{"id": expert, "name": "测试expert"}]
    # Other kinds are not run from Lectern's studio: no expert needed to schedule them.
    external = live_session(start, kind="external", external_platform="tencent")
    assert (await client.post(url, headers=admin(world), json=external)).status == 201


async def test_the_experts_of_a_published_live_session_cannot_be_emptied(
    client: Client, world: World
) -> None:
    url = f"/api/sessions/{world.session_id}/experts"
    resp = await client.put(url, headers=admin(world), json={"person_ids": []})
    error = await error_of(resp, 409)
    assert (error["code"], error["field"]) == ("conflict", "person_ids")
    session = await (await client.get(f"/api/sessions/{world.session_id}")).json()
    assert [e["id"] for e in session["experts"]] == [world.actors["expert"].person_id]
    # An external session of a published course turned live needs an expert first.
    start = datetime.now(UTC) + timedelta(days=3)
    resp = await client.post(
        f"/api/courses/{world.course_id}/sessions",
        headers=admin(world),
        json=live_session(start, kind="external", external_platform="tencent"),
    )
    external = (await resp.json())["id"]
    resp = await client.patch(
        f"/api/sessions/{external}", headers=admin(world), json={"kind": "live", "external_platform": "none"}
    )
    assert (await error_of(resp, 409))["field"] == "kind"


async def test_a_draft_plans_sessions_without_experts_but_publishing_names_those_missing_one(
    client: Client, world: World
) -> None:
    start = datetime.now(UTC) + timedelta(days=3)
    course = f"/api/courses/{world.draft_course_id}"
    resp = await client.post(f"{course}/sessions", headers=admin(world), json=live_session(start))
    assert resp.status == 201, await resp.text()
    session = await resp.json()
    assert session["experts"] == []

    resp = await client.post(f"{course}/publish", headers=admin(world))
    error = await error_of(resp, 409)
    assert error["field"] == "sessions"
    assert error["message"] == "live sessions without an expert cannot be published: 第二讲"
    assert error["details"] == {"session_ids": [session["id"]], "titles": ["第二讲"]}
    assert (await (await client.get(course, headers=admin(world))).json())["status"] == "draft"

    resp = await client.put(
        f"/api/sessions/{session['id']}/experts",
        headers=admin(world),
        json={"person_ids": [world.actors["expert"].person_id]},
    )
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{course}/publish", headers=admin(world))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "published"


# -- 录播 courses --------------------------------------------------------------------------------------


async def test_a_recorded_course_is_published_only_once_it_has_a_replay(client: Client, world: World) -> None:
    course_id = await world.course(world.orgs["provider"], status=CourseStatus.DRAFT, delivery="recorded")
    expert = world.actors["expert"].person_id
    session_id = await world.session(course_id, experts=(expert,))
    resp = await client.post(f"/api/courses/{course_id}/publish", headers=admin(world))
    error = await error_of(resp, 409)
    assert (error["field"], error["message"]) == (
        "delivery",
        "a recorded course needs a replay to watch before it is published",
    )
    await world.recording(session_id)
    resp = await client.post(f"/api/courses/{course_id}/publish", headers=admin(world))
    assert resp.status == 200, await resp.text()


async def test_learners_cannot_enroll_in_a_recorded_course_with_nothing_to_watch(
    client: Client, world: World
) -> None:
    course_id = await world.course(world.orgs["provider"], delivery="recorded", title="录播课")
    session_id = await world.session(course_id)
    staff = world.actors["staff"]
    resp = await client.post(f"/api/courses/{course_id}/enroll", headers=staff.headers)
    error = await error_of(resp, 409)
    assert (error["field"], error["message"]) == (
        "course_id",
        "this recorded course has nothing to watch yet",
    )
    resp = await client.post(
        f"/api/employers/{world.orgs['employer']}/enrollments",
        headers=world.actors["employer_admin"].headers,
        json={"course_id": course_id, "person_ids": [staff.person_id]},
    )
    assert (await error_of(resp, 409))["field"] == "course_id"
    nobody = await (await client.get(f"/api/courses/{course_id}/enrollments", headers=admin(world))).json()
    assert nobody["total"] == 0

    await world.recording(session_id)
    resp = await client.post(f"/api/courses/{course_id}/enroll", headers=staff.headers)
    assert resp.status == 201, await resp.text()


async def test_a_published_course_becomes_recorded_only_with_a_replay(client: Client, world: World) -> None:
    url = f"/api/courses/{world.course_id}"
    resp = await client.patch(url, headers=admin(world), json={"delivery": "recorded"})
    error = await error_of(resp, 409)
    assert (error["field"], error["message"]) == (
        "delivery",
        "a published course cannot become recorded before it has a replay to watch",
    )
    await world.recording(world.session_id)
    resp = await client.patch(url, headers=admin(world), json={"delivery": "recorded"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["delivery"] == "recorded"
