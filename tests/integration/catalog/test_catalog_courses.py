"""Courses: search and filters, the publish/archive state machine, draft visibility, sessions, experts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import catalog.search
from catalog.domain import CourseStatus, Role

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def ids(client: Client, query: str) -> list[int]:
    resp = await client.get(f"/api/courses?{query}")
    assert resp.status == 200, await resp.text()
    return [c["id"] for c in (await resp.json())["items"]]


async def test_search_finds_chinese_titles_and_treats_wildcards_literally(
    client: Client, world: World
) -> None:
    p = world.orgs["provider"]
    a = await world.course(p, title="临床合理用药100%实务")
    b = await world.course(p, title="港口_自动化")
    await world.course(p, title="草稿里的用药课", status=CourseStatus.DRAFT)
    assert await ids(client, "q=用药") == [a]
    assert await ids(client, "q=100%25") == [a]
    assert await ids(client, "q=_") == [b]
    assert await ids(client, "q=%25") == [a]
    assert await ids(client, "q=不存在") == []


async def test_filters_narrow_the_published_courses(client: Client, world: World) -> None:
    p, other = world.orgs["provider"], world.orgs["other_provider"]
    public = await world.course(p, title="公需课", category="public", industry="综合", delivery="recorded")
    mine = await world.course(other, title="医学课", industry="卫生健康")
    assert await ids(client, "category=public") == [public]
    assert await ids(client, "industry=卫生健康") == [mine]
    assert await ids(client, f"provider_id={other}") == [mine]
    assert await ids(client, "delivery=recorded") == [public]


async def test_date_range_matches_courses_by_their_session_starts(client: Client, world: World) -> None:
    start = datetime(2031, 3, 10, 1, 0, tzinfo=UTC)
    course = await world.course(world.orgs["provider"], title="三月课")
    await world.session(course, start=start)
    assert await ids(client, "from=2031-03-01&to=2031-03-31") == [course]
    assert await ids(client, "from=2031-04-01") == []
    # Only the seeded course's session (tomorrow) starts before 01:00 UTC that day.
    assert await ids(client, "to=2031-03-10T00:59:00Z") == [world.course_id]


async def test_sorts_and_pages_with_a_total(client: Client, world: World) -> None:
    p = world.orgs["provider"]
    now = datetime.now(UTC)
    made = [
        await world.course(
            p, title=f"课程{i}", credit_hours=Decimal(f"{i}.5"), created_at=now + timedelta(minutes=i)
        )
        for i in (3, 1, 2)
    ]
    for i, course in enumerate(made):
        await world.session(course, start=now + timedelta(days=10 - i))
    everything = [world.course_id, *made]
    resp = await client.get("/api/courses?page_size=2&page=1&sort=credit_hours")
    body = await resp.json()
    assert body["total"] == len(everything)
    assert body["page_size"] == 2
    assert [c["credit_hours"] for c in body["items"]] == ["1.5", "2.0"]
    assert await ids(client, "sort=-created_at") == [made[0], made[2], made[1], world.course_id]
    # The seeded course's session is tomorrow; the others are 8–10 days away.
    assert await ids(client, "sort=next_session") == [world.course_id, made[2], made[1], made[0]]
    assert await ids(client, "sort=next_session&page=2&page_size=3") == [made[0]]


async def test_a_course_moves_draft_published_archived_and_no_other_way(client: Client, world: World) -> None:
    h = world.actors["provider_admin"].headers
    resp = await client.post(
        "/api/courses",
        headers=h,
        json={
            "provider_id": world.orgs["provider"],
            "title": "新课",
            "category": "professional",
            "credit_hours": "3.5",
            "delivery": "live",
            "capacity": 30,
            "specialty_tags": ["港口", "港口"],
        },
    )
    assert resp.status == 201
    course = await resp.json()
    assert (course["status"], course["credit_hours"], course["specialty_tags"]) == ("draft", "3.5", ["港口"])
    url = f"/api/courses/{course['id']}"
    assert (await client.get(url)).status == 404  # drafts are not public
    assert (await client.get(url, headers=world.actors["learner"].headers)).status == 404
    assert (await client.get(url, headers=h)).status == 200
    assert (await client.post(f"{url}/publish", headers=h)).status == 200
    assert (await client.get(url)).status == 200
    resp = await client.post(f"{url}/publish", headers=h)
    assert resp.status == 409
    assert (await client.post(f"{url}/archive", headers=h)).status == 200
    for action in ("publish", "archive"):
        assert (await client.post(f"{url}/{action}", headers=h)).status == 409
    assert (await client.patch(url, headers=h, json={"title": "改"})).status == 409


async def test_provider_schedules_sessions_and_assigns_experts(client: Client, world: World) -> None:
    h = world.actors["provider_admin"].headers
    start = datetime(2031, 1, 5, 9, 0, tzinfo=UTC)
    resp = await client.post(
        f"/api/courses/{world.course_id}/sessions",
        headers=h,
        json={
            "title": "腾讯会议专场",
            "kind": "external",
            "scheduled_start": start.isoformat(),
            "scheduled_end": (start + timedelta(hours=2)).isoformat(),
            "external_platform": "tencent",
            "external_ids": {"meeting_id": 123456789, "meeting_code": "876543210"},
        },
    )
    assert resp.status == 201, await resp.text()
    session = await resp.json()
    assert session["external_ids"] == {"meeting_id": "123456789", "meeting_code": "876543210"}
    expert = await world.person("expert2", [(Role.EXPERT, None)])
    both = [world.actors["expert"].person_id, expert.person_id]
    resp = await client.put(f"/api/sessions/{session['id']}/experts", headers=h, json={"person_ids": both})
    assert resp.status == 200, await resp.text()
    assert sorted(e["id"] for e in (await resp.json())["experts"]) == sorted(both)
    resp = await client.patch(
        f"/api/sessions/{session['id']}",
        headers=h,
        json={"actual_start": "2031-01-05T09:02:00Z", "actual_end": "2031-01-05T10:58:00Z"},
    )
    # The actual times are the server's own (fraud 17): a correction is POST .../time-corrections.
    assert resp.status == 400
    assert (await resp.json())["error"]["details"] == {"reason": "field_not_editable"}
    detail: dict[str, Any] = await (await client.get(f"/api/courses/{world.course_id}")).json()
    by_id = {s["id"]: s for s in detail["sessions"]}
    assert by_id[session["id"]]["actual_end"] is None
    assert len(by_id[session["id"]]["experts"]) == 2
    assert [e["name"] for e in by_id[world.session_id]["experts"]] == ["测试expert"]


async def test_a_provider_lists_its_own_drafts_but_nobody_else_may(client: Client, world: World) -> None:
    p = world.orgs["provider"]
    query = f"/api/courses?provider_id={p}&status=draft"
    resp = await client.get(query, headers=world.actors["provider_admin"].headers)
    assert resp.status == 200
    assert [c["id"] for c in (await resp.json())["items"]] == [world.draft_course_id]
    resp = await client.get(
        f"/api/courses?provider_id={p}&status=all", headers=world.actors["provider_admin"].headers
    )
    assert {c["id"] for c in (await resp.json())["items"]} >= {world.draft_course_id, world.course_id}
    assert (await client.get(query, headers=world.actors["bureau"].headers)).status == 200
    for actor in ("learner", "other_provider_admin"):
        resp = await client.get(query, headers=world.actors[actor].headers)
        assert resp.status == 403, actor
    assert (await client.get(query)).status == 403
    resp = await client.get("/api/courses?status=draft", headers=world.actors["provider_admin"].headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "provider_id"
    resp = await client.get(f"/api/courses?provider_id={p}&status=secret")
    assert (await resp.json())["error"]["field"] == "status"


async def test_totals_past_the_count_cap_are_a_lower_bound(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog.search, "COUNT_CAP", 2)
    p = world.orgs["provider"]
    for n in range(2):
        await world.course(p, title=f"封顶课程{n}")
    body = await (await client.get("/api/courses?q=封顶")).json()
    assert (body["total"], body["total_is_lower_bound"]) == (2, False)
    await world.course(p, title="封顶课程2")
    body = await (await client.get("/api/courses?q=封顶&page_size=1")).json()
    assert (body["total"], body["total_is_lower_bound"], len(body["items"])) == (2, True, 1)
