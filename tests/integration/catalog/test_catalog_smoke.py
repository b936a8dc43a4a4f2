"""Smoke: the catalog app starts on both engines and answers."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.catalog.conftest import World


async def test_published_course_is_listed(
    client: TestClient[web.Request, web.Application], world: World
) -> None:
    resp = await client.get("/api/courses")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [c["id"] for c in body["items"]] == [world.course_id]
