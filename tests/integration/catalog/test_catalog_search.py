"""Course search: both plans (a small match set sorted whole, a large one read in sort order) give the same
pages, totals and lower-bound flags; text matching in title, industry and description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

import catalog.search

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]

SORTS = ("next_session", "title", "-created_at", "credit_hours")


async def body(client: Client, query: str) -> dict[str, Any]:
    resp = await client.get(f"/api/courses?{query}")
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def pages(client: Client, query: str, page_size: int) -> list[list[tuple[int, str | None]]]:
    """Every page (and the empty one after the last) as (id, next_session_start) pairs."""
    out: list[list[tuple[int, str | None]]] = []
    page = 1
    while True:
        items = (await body(client, f"{query}&page={page}&page_size={page_size}"))["items"]
        out.append([(c["id"], c["next_session_start"]) for c in items])
        if not items:
            return out
        page += 1


async def next_session_world(world: World) -> dict[str, int]:
    """Courses whose next sessions tie, lie in the past, repeat a start or do not exist."""
    p = world.orgs["provider"]
    now = datetime.now(UTC)
    made: dict[str, int] = {}
    for name in ("c1", "c2", "c3", "c4", "c5", "c6", "c7"):
        made[name] = await world.course(
            p,
            title=f"排序课程{name}",
            credit_hours=Decimal(len(made) % 3 + 1),
            created_at=now - timedelta(hours=len(made)),
        )
    await world.session(made["c1"], start=now + timedelta(days=10))
    await world.session(made["c1"], start=now + timedelta(days=3))
    await world.session(made["c2"], start=now - timedelta(days=2))  # past: not its next session
    await world.session(made["c2"], start=now + timedelta(days=1))
    await world.session(made["c3"], start=now + timedelta(days=3))  # ties with c1: by id
    await world.session(made["c4"], start=now - timedelta(days=5))  # only past sessions
    await world.session(made["c6"], start=now + timedelta(days=5))  # two sessions, one start
    await world.session(made["c6"], start=now + timedelta(days=5))
    await world.session(made["c7"], start=now + timedelta(days=20))
    return made  # c5 has no session at all


@pytest.mark.parametrize("sort", SORTS)
async def test_a_large_match_set_read_in_sort_order_pages_like_a_small_one_sorted_whole(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    await next_session_world(world)
    query = f"q=排序课程&sort={sort}"
    whole = await pages(client, query, page_size=2)
    assert (await body(client, query))["total_is_lower_bound"] is False
    monkeypatch.setattr(catalog.search, "COUNT_CAP", 2)  # every match set is now "large"
    assert (await body(client, query))["total_is_lower_bound"] is True
    assert await pages(client, query, page_size=2) == whole
    assert await pages(client, query, page_size=3) == [
        [item for page in whole for item in page][i : i + 3] for i in range(0, 12, 3)
    ]


async def test_next_session_orders_by_the_next_upcoming_start_then_id_courses_without_one_last(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await next_session_world(world)
    expected = [c["c2"], c["c1"], c["c3"], c["c6"], c["c7"], c["c4"], c["c5"]]
    for cap in (2000, 2):  # the match set sorted whole, then read along the sessions' start index
        monkeypatch.setattr(catalog.search, "COUNT_CAP", cap)
        found = [item for page in await pages(client, "q=排序课程&sort=next_session", 2) for item in page]
        assert [course_id for course_id, _ in found] == expected, f"cap={cap}"
        starts = [start for _, start in found]
        assert all(starts[:5]), f"cap={cap}"
        assert starts[5:] == [None, None], f"cap={cap}"
        assert starts[1] == starts[2], f"cap={cap}"  # c1's next session is its earlier one


async def test_totals_are_exact_up_to_the_cap_and_a_lower_bound_past_it(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = world.orgs["provider"]
    for n in range(3):
        await world.course(p, title=f"计数课程{n}", category="public", delivery="recorded")
    await world.course(p, title="计数课程专业", category="professional", delivery="recorded")
    await world.course(p, title="计数课程面授", category="public", delivery="offline")
    monkeypatch.setattr(catalog.search, "COUNT_CAP", 3)
    cases = {
        "q=计数课程": (3, True),
        "q=计数课程&category=public": (3, True),
        "q=计数课程&category=public&delivery=recorded": (3, False),
        "q=计数课程&category=professional": (1, False),
        "q=计数课程&delivery=offline": (1, False),
        "q=计数课程&category=professional&delivery=offline": (0, False),
    }
    for query, expected in cases.items():
        for sort in SORTS:
            result = await body(client, f"{query}&sort={sort}")
            assert (result["total"], result["total_is_lower_bound"]) == expected, (query, sort)
            if not expected[1]:
                assert len(result["items"]) == expected[0], (query, sort)


async def test_filters_with_a_common_word_select_the_same_courses_on_both_plans(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = world.orgs["provider"]
    kinds = [(cat, dlv) for cat in ("public", "professional") for dlv in ("live", "offline")]
    for i in range(8):
        category, delivery = kinds[i % 4]
        await world.course(p, title=f"筛选课程{i}", category=category, delivery=delivery)
    query = "q=筛选&category=public&delivery=offline&sort=title"
    whole = await body(client, query)
    assert [c["title"] for c in whole["items"]] == ["筛选课程1", "筛选课程5"]
    monkeypatch.setattr(catalog.search, "COUNT_CAP", 1)
    assert [c["id"] for c in (await body(client, query))["items"]] == [c["id"] for c in whole["items"]]


async def test_search_matches_title_industry_and_description_ignoring_latin_case(
    client: Client, world: World
) -> None:
    p = world.orgs["provider"]
    titled = await world.course(p, title="AI Basics 入门")
    in_industry = await world.course(p, title="行业课", industry="港航物流")
    described = await world.course(p, title="描述课", description="讲解焊接工艺的要点")
    assert [c["id"] for c in (await body(client, "q=ai"))["items"]] == [titled]
    assert [c["id"] for c in (await body(client, "q=BASICS 入"))["items"]] == [titled]
    assert [c["id"] for c in (await body(client, "q=港航"))["items"]] == [in_industry]
    assert [c["id"] for c in (await body(client, "q=焊接工艺"))["items"]] == [described]
    # Characters apart in the text share q's bigrams but do not match it.
    assert (await body(client, "q=焊接要点"))["items"] == []


async def test_a_word_with_non_ascii_capitals_is_found(client: Client, world: World) -> None:
    # Python and the database may lower-case such letters differently: the database computes the
    # word's index keys itself.
    course = await world.course(world.orgs["provider"], title="Über Ärzte")
    assert [c["id"] for c in (await body(client, "q=Über Ä"))["items"]] == [course]


@pytest.mark.parametrize("engine_template", ["postgres"], indirect=True)  # the index keys are PostgreSQL's
async def test_python_gives_a_word_the_same_index_keys_as_the_database(client: Client, world: World) -> None:
    assert world.db.engine.dialect.name == "postgresql"
    async with world.db.reading() as conn:
        for word in ("港口", "安全生产", "AI 课程", "Web3.0", "a%_b", "口口口", "100"):
            in_database = await conn.scalar(select(func.catalog_bigrams(word)))
            assert catalog.search.bigrams(word) == sorted(in_database), word
