"""Media tokens for WHIP (publish) and WHEP (watch), verified with infra.tokens like the media server will."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from infra import tokens
from infra.errors import Unauthenticated
from tests.integration.catalog.conftest import SECRET

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]


async def token(client: Client, world: World, actor: str, purpose: str) -> tuple[int, dict[str, str]]:
    resp = await client.post(
        f"/api/sessions/{world.session_id}/media-token",
        headers=world.actors[actor].headers,
        json={"purpose": purpose},
    )
    return resp.status, await resp.json()


async def test_whep_tokens_carry_who_the_viewer_is(client: Client, world: World) -> None:
    for actor, role in (("learner", "learner"), ("expert", "expert"), ("provider_admin", "staff")):
        status, body = await token(client, world, actor, "whep")
        assert status == 201
        claims = tokens.verify(SECRET, "whep", body["token"], time.time())
        assert (claims.person_id, claims.subject, claims.role) == (
            world.actors[actor].person_id,
            f"session:{world.session_id}",
            role,
        )
        assert 290 <= claims.expires_at - time.time() <= 301


async def test_only_the_sessions_experts_may_publish(client: Client, world: World) -> None:
    status, body = await token(client, world, "expert", "whip")
    assert status == 201
    assert tokens.verify(SECRET, "whip", body["token"], time.time()).role == "expert"
    for actor in ("learner", "provider_admin", "admin"):
        assert (await token(client, world, actor, "whip"))[0] == 403


async def test_a_whep_token_is_not_a_whip_token(client: Client, world: World) -> None:
    _, body = await token(client, world, "learner", "whep")
    with pytest.raises(Unauthenticated):
        tokens.verify(SECRET, "whip", body["token"], time.time())


async def test_a_learner_who_withdrew_cannot_watch(client: Client, world: World) -> None:
    h = world.actors["learner"].headers
    assert (await client.post(f"/api/courses/{world.course_id}/withdraw", headers=h)).status == 200
    assert (await token(client, world, "learner", "whep"))[0] == 403


async def test_room_tokens_carry_the_name_shown_in_the_channel(client: Client, world: World) -> None:
    status, body = await token(client, world, "learner", "room")
    assert status == 201
    claims = tokens.verify(SECRET, "room", body["token"], time.time())
    assert claims.role == "learner"
    assert isinstance(claims.extra["name"], str)
    assert claims.extra["name"]
    assert (await token(client, world, "admin", "room"))[0] == 403
