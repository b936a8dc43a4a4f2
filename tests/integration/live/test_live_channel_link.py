"""Rooms and the room channel together: ending a room is announced to everyone in its channel, and an
expert's "end_session" over the channel ends the room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.settings import Settings
from streaming import channel, live
from tests.helpers import wait_until
from tests.integration.live.peers import (
    LOOPBACK,
    SECRET,
    Robot,
    receive_until,
    room_token,
    sdp_headers,
    token,
)

SESSION = 31


@pytest.fixture
async def linked(aiohttp_client: Any) -> AsyncIterator[tuple[TestClient, MemoryBus, list[Robot]]]:  # type: ignore[type-arg]
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = Settings(secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK)
    bus = MemoryBus(retention=1000)
    app[BUS] = bus
    app[READINESS] = {}
    channel.setup(app)
    live.setup(app, grace_s=10.0)
    robots: list[Robot] = []
    yield await aiohttp_client(app), bus, robots
    for robot in robots:
        await robot.close()


async def _session_events(bus: MemoryBus) -> list[tuple[str, Any]]:
    await bus.ensure_group("sessions", "t")
    return [(d.type, d.data.get("reason")) for d in await bus.consume("sessions", "t", "t", count=10)]


async def _publish(client: TestClient, robots: list[Robot]) -> Robot:  # type: ignore[type-arg]
    robot = Robot(videos=1, audio=True)
    robots.append(robot)
    await robot.publish(client, SESSION, token("whip", SESSION, "expert", person_id=1))
    await wait_until(lambda: client.app[live.ROOMS].room(SESSION) is not None, message="room")
    room = client.app[live.ROOMS].room(SESSION)
    await wait_until(lambda: room is not None and room.started_at is not None, timeout_s=15, message="media")
    return robot


async def test_an_expert_ending_over_the_channel_ends_the_room_and_tells_the_learners(
    linked: tuple[TestClient, MemoryBus, list[Robot]],  # type: ignore[type-arg]
) -> None:
    client, bus, robots = linked
    await _publish(client, robots)
    learner = await client.ws_connect(f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'learner', 2)}")
    expert = await client.ws_connect(f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'expert', 1)}")
    await expert.send_json({"type": "end_session"})
    ended = await receive_until(learner, "session_ended")
    assert ended["reason"] == "ended_by_expert"
    assert client.app[live.ROOMS].room(SESSION) is None
    assert await _session_events(bus) == [("session.started", None), ("session.ended", "ended_by_expert")]
    await learner.close()
    await expert.close()


async def test_the_expert_leaving_by_whip_delete_is_announced_in_the_channel(
    linked: tuple[TestClient, MemoryBus, list[Robot]],  # type: ignore[type-arg]
) -> None:
    client, _bus, robots = linked
    robot = await _publish(client, robots)
    learner = await client.ws_connect(f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'learner', 2)}")
    assert robot.location is not None
    resp = await client.delete(
        robot.location, headers=sdp_headers(token("whip", SESSION, "expert", person_id=1))
    )
    assert resp.status == 200
    assert (await receive_until(learner, "session_ended"))["reason"] == "ended_by_expert"
    await learner.close()


async def test_ending_a_session_that_is_not_live_still_tells_the_channel(
    linked: tuple[TestClient, MemoryBus, list[Robot]],  # type: ignore[type-arg]
) -> None:
    client, bus, _robots = linked
    learner = await client.ws_connect(f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'learner', 2)}")
    expert = await client.ws_connect(f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'expert', 1)}")
    await expert.send_json({"type": "end_session"})
    assert (await receive_until(learner, "session_ended"))["reason"] == "ended_by_expert"
    assert await _session_events(bus) == []  # no media ever flowed: the session never started
    await learner.close()
    await expert.close()
