"""WHIP/WHEP grants carry the ICE servers the page hands to its RTCPeerConnection: STUN as configured,
TURN with a credential of the caller's own, derived from LECTERN_TURN_SECRET, that expires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from infra.settings import Settings

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
TURN_SECRET = "turn-secret-for-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        ice_servers=("stun:stun.lectern.test:3478", "turn:turn.lectern.test:3478"),
        turn_secret=TURN_SECRET,
        turn_credential_ttl_s=7200,
    )


async def grant(client: Client, world: World, actor: str, purpose: str) -> dict[str, object]:
    # Publishing opens half an hour before the start: a session starting soon, taught by the expert.
    expert = world.actors["expert"].person_id
    soon = await world.session(
        world.course_id, start=datetime.now(UTC) + timedelta(minutes=10), experts=(expert,)
    )
    resp = await client.post(
        f"/api/sessions/{soon}/media-token",
        headers=world.actors[actor].headers,
        json={"purpose": purpose},
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, object] = await resp.json()
    return body


@pytest.mark.parametrize(("actor", "purpose"), [("learner", "whep"), ("expert", "whip")])
async def test_media_grants_carry_stun_and_a_personal_turn_credential(
    client: Client, world: World, actor: str, purpose: str
) -> None:
    body = await grant(client, world, actor, purpose)
    stun, turn = body["ice_servers"]  # type: ignore[misc]
    assert stun == {"urls": "stun:stun.lectern.test:3478"}
    assert turn["urls"] == "turn:turn.lectern.test:3478"
    expiry, user = turn["username"].split(":")
    assert user == f"person-{world.actors[actor].person_id}"
    assert 7190 <= int(expiry) - time.time() <= 7201
    # What coturn (use-auth-secret) will check: base64(HMAC-SHA1(secret, username)).
    expected = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(expected).decode()


async def test_room_tokens_carry_no_ice_servers(client: Client, world: World) -> None:
    assert "ice_servers" not in await grant(client, world, "learner", "room")
