"""Enrollment: learners themselves, employers for their staff, capacity, withdrawal, my learning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.domain import CourseStatus, Role

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def test_a_full_course_refuses_the_next_learner_but_not_one_already_enrolled(
    client: Client,
    world: World,
) -> None:
    course = await world.course(world.orgs["provider"], capacity=1)
    learner, staff = world.actors["learner"].headers, world.actors["staff"].headers
    first = await client.post(f"/api/courses/{course}/enroll", headers=learner)
    assert first.status == 201
    again = await client.post(f"/api/courses/{course}/enroll", headers=learner)
    assert again.status == 200
    assert (await again.json())["id"] == (await first.json())["id"]
    full = await client.post(f"/api/courses/{course}/enroll", headers=staff)
    assert full.status == 409
    assert (await full.json())["error"]["details"] == {"capacity": 1, "enrolled": 1}
    # Withdrawing frees the seat, and the withdrawn learner may come back later.
    assert (await client.post(f"/api/courses/{course}/withdraw", headers=learner)).status == 200
    assert (await client.post(f"/api/courses/{course}/enroll", headers=staff)).status == 201
    assert (await client.post(f"/api/courses/{course}/withdraw", headers=staff)).status == 200
    assert (await client.post(f"/api/courses/{course}/enroll", headers=learner)).status == 201


async def test_only_published_courses_take_enrollments(client: Client, world: World) -> None:
    learner = world.actors["learner"].headers
    draft = await world.course(world.orgs["provider"], status=CourseStatus.DRAFT)
    archived = await world.course(world.orgs["provider"], status=CourseStatus.ARCHIVED)
    assert (await client.post(f"/api/courses/{draft}/enroll", headers=learner)).status == 404
    assert (await client.post(f"/api/courses/{archived}/enroll", headers=learner)).status == 409


async def test_employer_enrolls_its_own_staff_only(client: Client, world: World) -> None:
    h = world.actors["employer_admin"].headers
    url = f"/api/employers/{world.orgs['employer']}/enrollments"
    staff, learner = world.actors["staff"].person_id, world.actors["learner"].person_id
    resp = await client.post(
        url, headers=h, json={"course_id": world.course_id, "person_ids": [staff, learner]}
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert [e["person_id"] for e in body["created"]] == [staff]
    assert body["created"][0]["source"] == "employer"
    assert [e["person_id"] for e in body["already_enrolled"]] == [learner]
    outsider = world.actors["expert"].person_id
    resp = await client.post(url, headers=h, json={"course_id": world.course_id, "person_ids": [outsider]})
    assert resp.status == 403
    assert (await resp.json())["error"]["details"] == {"person_ids": [outsider]}
    other_employer = await world.org(
        "employer2", __import__("catalog.domain").domain.OrgType.EMPLOYER, "别家"
    )
    resp = await client.post(
        f"/api/employers/{other_employer}/enrollments",
        headers=h,
        json={"course_id": world.course_id, "person_ids": [staff]},
    )
    assert resp.status == 403


async def test_employer_batch_that_overflows_capacity_enrolls_nobody(client: Client, world: World) -> None:
    course = await world.course(world.orgs["provider"], capacity=1)
    extra = await world.person(
        "staff3", [(Role.LEARNER, world.orgs["employer"])], employer=world.orgs["employer"]
    )
    resp = await client.post(
        f"/api/employers/{world.orgs['employer']}/enrollments",
        headers=world.actors["employer_admin"].headers,
        json={"course_id": course, "person_ids": [world.actors["staff"].person_id, extra.person_id]},
    )
    assert resp.status == 409
    listing = await client.get(f"/api/courses/{course}/enrollments", headers=world.actors["admin"].headers)
    assert (await listing.json())["total"] == 0


async def test_my_learning_lists_enrolled_courses_with_upcoming_sessions(
    client: Client, world: World
) -> None:
    resp = await client.get("/api/me/learning", headers=world.actors["learner"].headers)
    items = (await resp.json())["items"]
    assert [i["course"]["id"] for i in items] == [world.course_id]
    assert [s["id"] for s in items[0]["upcoming_sessions"]] == [world.session_id]
    assert [s["id"] for s in (await resp.json())["upcoming"]] == [world.session_id]
    resp = await client.get("/api/me/learning", headers=world.actors["staff"].headers)
    assert (await resp.json())["items"] == []


async def test_my_learning_pages_courses_but_lists_the_next_sessions_of_all(
    client: Client, world: World
) -> None:
    learner = world.actors["learner"]
    soon = datetime.now(UTC) + timedelta(hours=2)
    extra_sessions = []
    for n in range(3):
        course = await world.course(world.orgs["provider"], title=f"分页课程{n}")
        extra_sessions.append(await world.session(course, start=soon + timedelta(minutes=n)))
        await world.enroll(learner.person_id, course)
    resp = await client.get("/api/me/learning?page_size=2&page=2", headers=learner.headers)
    body = await resp.json()
    assert body["total"] == 4
    assert (body["page"], body["page_size"], len(body["items"])) == (2, 2, 2)
    # The next sessions come from every enrolled course, soonest first, whatever the page.
    assert [s["id"] for s in body["upcoming"]] == [*extra_sessions, world.session_id]
    assert body["upcoming"][0]["course_title"] == "分页课程0"
    resp = await client.get("/api/me/learning?page_size=101", headers=learner.headers)
    assert resp.status == 400


async def test_my_learning_past_the_last_page_is_empty_but_keeps_the_total(
    client: Client, world: World
) -> None:
    resp = await client.get("/api/me/learning?page=3", headers=world.actors["learner"].headers)
    body = await resp.json()
    assert (body["total"], body["items"], body["page"]) == (1, [], 3)
    assert [s["id"] for s in body["upcoming"]] == [world.session_id]


async def test_my_learning_shows_the_enrollment_course_and_sessions_as_their_own_routes_do(
    client: Client, world: World
) -> None:
    learner = world.actors["learner"].headers
    ended = await world.session(world.course_id, start=datetime.now(UTC) - timedelta(days=1))
    item = (await (await client.get("/api/me/learning", headers=learner)).json())["items"][0]
    course = await (await client.get(f"/api/courses/{world.course_id}")).json()
    for extra in ("enrolled", "sessions", "replays"):
        course.pop(extra)
    assert item["course"] == course
    session = await (await client.get(f"/api/sessions/{world.session_id}")).json()
    session.pop("experts")
    assert item["upcoming_sessions"] == [session]  # the ended session is not upcoming
    assert ended not in [s["id"] for s in item["upcoming_sessions"]]
    again = await client.post(f"/api/courses/{world.course_id}/enroll", headers=learner)
    assert item["enrollment"] == await again.json()


async def test_provider_sees_enrollments_paginated_with_masked_phones(client: Client, world: World) -> None:
    await world.enroll(world.actors["staff"].person_id, world.course_id)
    resp = await client.get(
        f"/api/courses/{world.course_id}/enrollments?page_size=1&page=2",
        headers=world.actors["provider_admin"].headers,
    )
    body = await resp.json()
    assert (body["total"], len(body["items"])) == (2, 1)
    phone = world.actors["staff"].phone
    assert body["items"][0]["person_phone"] == phone[:3] + "****" + phone[-4:]


async def test_course_detail_says_whether_the_caller_is_enrolled(client: Client, world: World) -> None:
    url = f"/api/courses/{world.course_id}"
    assert (await (await client.get(url, headers=world.actors["learner"].headers)).json())["enrolled"] is True
    assert (await (await client.get(url, headers=world.actors["staff"].headers)).json())["enrolled"] is False
    assert (await (await client.get(url)).json())["enrolled"] is False
