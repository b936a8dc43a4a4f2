"""The expert directory (GET /api/experts): providers find experts to assign to their sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.domain import Role

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def directory(client: Client, world: World, query: str = "", actor: str = "provider_admin") -> Any:
    resp = await client.get(f"/api/experts{query}", headers=world.actors[actor].headers)
    return resp.status, await resp.json()


async def test_providers_find_experts_by_name_with_their_organizations(client: Client, world: World) -> None:
    provider, other = world.orgs["provider"], world.orgs["other_provider"]
    zhang = await world.person("张工", [(Role.EXPERT, provider), (Role.EXPERT, other)])
    li = await world.person("李工", [(Role.EXPERT, other)])
    await world.person("王同学", [(Role.LEARNER, world.orgs["employer"])])  # not an expert

    status, body = await directory(client, world, actor="other_provider_admin")
    assert status == 200
    names = [e["name"] for e in body["items"]]
    assert set(names) == {"测试expert", "测试张工", "测试李工"}
    assert names == sorted(names)
    assert body["total"] == 3
    by_id = {e["id"]: e for e in body["items"]}
    assert [o["id"] for o in by_id[zhang.person_id]["organizations"]] == sorted([provider, other])
    assert by_id[li.person_id]["organizations"] == [{"id": other, "name": "青岛培训学校"}]
    assert by_id[world.actors["expert"].person_id]["organizations"] == []  # an expert of no organization
    assert all(set(e) == {"id", "name", "organizations"} for e in body["items"]), "no phone, no contact"

    status, body = await directory(client, world, "?q=张")
    assert (status, [e["id"] for e in body["items"]]) == (200, [zhang.person_id])
    status, body = await directory(client, world, "?q=%25")  # a literal %, not a wildcard
    assert (status, body["items"], body["total"]) == (200, [], 0)


async def test_the_directory_pages(client: Client, world: World) -> None:
    for i in range(5):
        await world.person(f"专家{i}", [(Role.EXPERT, world.orgs["provider"])])
    status, first = await directory(client, world, "?q=专家&page_size=2")
    status2, third = await directory(client, world, "?q=专家&page_size=2&page=3")
    assert (status, status2) == (200, 200)
    assert (first["total"], len(first["items"]), len(third["items"])) == (5, 2, 1)
    assert [e["name"] for e in first["items"]] == ["测试专家0", "测试专家1"]
    assert [e["name"] for e in third["items"]] == ["测试专家4"]


async def test_only_assigners_and_supervisors_browse_it_and_bad_queries_say_why(
    client: Client, world: World
) -> None:
    for actor in ("learner", "expert", "employer_admin", "reviewer"):
        status, body = await directory(client, world, actor=actor)
        assert (status, body["error"]["code"]) == (403, "forbidden"), actor
    for actor in ("bureau", "admin"):
        assert (await directory(client, world, actor=actor))[0] == 200
    resp = await client.get("/api/experts")
    assert resp.status == 401
    status, body = await directory(client, world, "?q=" + "长" * 101)
    assert (status, body["error"]["field"]) == (400, "q")
    status, body = await directory(client, world, "?page=0")
    assert (status, body["error"]["field"]) == (400, "page")
