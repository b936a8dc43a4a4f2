"""What the server tells the pages about the live room, with real aiortc peers over 127.0.0.1 and the room
channel in the same app: the "media" message (which of the expert's slots are published, the stage, an
expert lost and waited for, the end), an ended session that cannot go live again, and learners' viewers
announced as viewer.joined / viewer.left on the bus."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus import EventBus
from infra.bus_memory import MemoryBus
from infra.bus_redis import RedisBus
from infra.http import error_middleware
from infra.settings import Settings
from streaming import channel, live
from tests.helpers import service_env, wait_until
from tests.integration.live.peers import (
    LOOPBACK,
    SECRET,
    LiveServer,
    Robot,
    WatchingPeer,
    receive_until,
    room_token,
    sdp_headers,
    token,
)

SESSION = 51
EXPERT, ALICE, BOB, STAFF = 1, 2, 3, 4
NOTHING = {"camera": False, "screen": False, "audio": False}
CAMERA_ONLY = {"camera": True, "screen": False, "audio": True}
CAMERA_AND_SCREEN = {"camera": True, "screen": True, "audio": True}


async def _server(
    aiohttp_client: Any, grace_s: float = 10.0, stall_s: float = 5.0, bus: EventBus | None = None
) -> LiveServer:
    """WHIP/WHEP and the room channel in one app, wired as streaming.app wires them."""
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = Settings(secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK)
    bus = bus if bus is not None else MemoryBus(retention=1000)
    app[BUS] = bus
    app[READINESS] = {}
    channel.setup(app)
    live.setup(app, grace_s=grace_s, stall_s=stall_s)
    return LiveServer(await aiohttp_client(app), app, bus)


async def _join(server: LiveServer, role: str, person_id: int) -> tuple[Any, dict[str, Any]]:
    """A room-channel connection and its welcome."""
    ws = await server.client.ws_connect(
        f"/ws/sessions/{SESSION}?token={room_token(SESSION, role, person_id)}"
    )
    return ws, await receive_until(ws, "welcome")


async def _media_until(ws: Any, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first "media" message that passes `check` (earlier ones are intermediate states)."""
    while True:
        media = await receive_until(ws, "media")
        if check(media):
            return media


async def _publish(server: LiveServer, peers: list[Any], query: str = "", **robot: Any) -> Robot:
    publisher = Robot(**robot)
    peers.append(publisher)
    await publisher.publish(server.client, SESSION, token("whip", SESSION, "expert", EXPERT), query)
    return publisher


async def _delete(server: LiveServer, location: str | None, bearer: str) -> None:
    assert location is not None
    resp = await server.client.delete(location, headers={"Authorization": f"Bearer {bearer}"})
    assert resp.status == 200, await resp.text()


async def _watch(server: LiveServer, peers: list[Any], person_id: int, role: str = "learner") -> WatchingPeer:
    viewer = WatchingPeer()
    peers.append(viewer)
    await viewer.watch(server.client, SESSION, token("whep", SESSION, role, person_id))
    return viewer


async def test_learners_hear_which_of_the_experts_slots_are_published_as_sharing_starts_and_stops(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client)
    learner, welcome = await _join(server, "learner", ALICE)
    assert welcome["media"] == {"status": "waiting", "expert": NOTHING, "stage": [], "grace_ends_at": None}

    await _publish(server, peers, videos=1, audio=True)
    live_now = await _media_until(learner, lambda m: m["status"] == "live")
    assert live_now["expert"] == CAMERA_ONLY

    screen = await _publish(server, peers, "?video=screen", videos=1, audio=False)
    sharing = await _media_until(learner, lambda m: m["expert"]["screen"])
    assert sharing["expert"] == CAMERA_AND_SCREEN
    assert sharing["status"] == "live"

    await _delete(server, screen.location, token("whip", SESSION, "expert", EXPERT))
    stopped = await _media_until(learner, lambda m: not m["expert"]["screen"])
    assert stopped == {
        "type": "media",
        "status": "live",
        "expert": CAMERA_ONLY,
        "stage": [],
        "grace_ends_at": None,
    }

    # A page that joins now starts from what is published now.
    late, late_welcome = await _join(server, "learner", BOB)
    assert late_welcome["media"]["status"] == "live"
    assert late_welcome["media"]["expert"] == CAMERA_ONLY
    await learner.close()
    await late.close()


async def test_a_screen_only_lecture_is_live_with_the_screen_alone(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client)
    learner, _ = await _join(server, "learner", ALICE)
    await _publish(server, peers, "?video=screen", videos=1, audio=True)
    media = await _media_until(learner, lambda m: m["status"] == "live")
    assert media["expert"] == {"camera": False, "screen": True, "audio": True}
    await learner.close()


async def test_a_lost_expert_is_told_as_reconnecting_until_the_grace_period_ends_the_session(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    grace_s = 2.0
    server = await _server(aiohttp_client, grace_s=grace_s)
    learner, _ = await _join(server, "learner", ALICE)
    robot = await _publish(server, peers, videos=1, audio=True)
    await _media_until(learner, lambda m: m["status"] == "live")

    await robot.close()  # the expert's browser is gone: no DELETE
    lost_at = time.time()
    lost = await _media_until(learner, lambda m: m["status"] != "live")
    assert lost["status"] == "reconnecting"
    assert lost["expert"] == NOTHING
    grace_ends_at = datetime.fromisoformat(lost["grace_ends_at"]).timestamp()
    assert lost_at - 1 < grace_ends_at - grace_s <= time.time()

    ended = await receive_until(learner, "media")
    assert ended["status"] == "ended"
    assert (await receive_until(learner, "session_ended"))["reason"] == "publisher_lost"
    assert time.time() >= grace_ends_at - 0.1
    # A page opened afterwards is told the session is over: its room is closed, not still to come.
    late = await server.client.get(f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'learner', BOB)}")
    assert late.status == 409
    assert (await late.json())["error"]["code"] == "session_ended"
    await learner.close()


async def test_an_expert_back_within_the_grace_period_is_live_again(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client, grace_s=30.0)
    learner, _ = await _join(server, "learner", ALICE)
    first = await _publish(server, peers, videos=1, audio=True)
    await _media_until(learner, lambda m: m["status"] == "live")
    await first.close()
    await _media_until(learner, lambda m: m["status"] == "reconnecting")
    await _publish(server, peers, videos=1, audio=True)
    back = await _media_until(learner, lambda m: m["status"] != "reconnecting")
    assert back == {
        "type": "media",
        "status": "live",
        "expert": CAMERA_ONLY,
        "stage": [],
        "grace_ends_at": None,
    }
    await learner.close()


async def test_an_expert_whose_media_stops_is_told_as_lost_and_live_again_when_it_resumes(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    # A browser that vanished sends nothing, and ICE would notice only after ~30 s: the room notices
    # the silence (here after 1 s) and starts the grace period; media that comes back resumes the room.
    server = await _server(aiohttp_client, grace_s=30.0, stall_s=1.0)
    learner, _ = await _join(server, "learner", ALICE)
    robot = await _publish(server, peers, videos=1, audio=False)
    await _media_until(learner, lambda m: m["status"] == "live")

    robot.tracks[0].hold()
    silent_at = time.monotonic()
    lost = await _media_until(learner, lambda m: m["status"] != "live")
    assert lost["status"] == "reconnecting"
    assert lost["expert"] == NOTHING
    assert lost["grace_ends_at"] is not None
    assert time.monotonic() - silent_at >= 1.0
    room = server.rooms.room(SESSION)
    assert room is not None
    assert room.grace_task is not None

    robot.tracks[0].resume()
    back = await _media_until(learner, lambda m: m["status"] == "live")
    assert back["expert"] == {"camera": True, "screen": False, "audio": False}
    assert back["grace_ends_at"] is None
    assert room.grace_task is None
    assert server.rooms.room(SESSION) is room
    await learner.close()


async def test_an_expert_silent_past_the_grace_period_ends_the_session(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client, grace_s=1.0, stall_s=1.0)
    learner, _ = await _join(server, "learner", ALICE)
    robot = await _publish(server, peers, videos=1, audio=False)
    await _media_until(learner, lambda m: m["status"] == "live")
    robot.tracks[0].hold()
    await _media_until(learner, lambda m: m["status"] == "reconnecting")
    assert (await receive_until(learner, "session_ended"))["reason"] == "publisher_lost"
    assert server.rooms.room(SESSION) is None
    assert [(t, d.get("reason")) for t, d in await server.events()] == [
        ("session.started", None),
        ("session.ended", "publisher_lost"),
    ]
    await learner.close()


async def test_an_expert_cannot_go_live_again_on_a_session_that_ended(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client)
    whip = token("whip", SESSION, "expert", EXPERT)
    robot = await _publish(server, peers, videos=1, audio=True)
    room = server.rooms.room(SESSION)
    assert room is not None
    await wait_until(lambda: room.started_at is not None, timeout_s=15, message="media")
    await _delete(server, robot.location, whip)  # 结束直播
    assert server.rooms.room(SESSION) is None

    again = Robot(videos=1, audio=True)
    peers.append(again)
    resp = await server.client.post(
        f"/whip/sessions/{SESSION}", data=await again.offer(), headers=sdp_headers(whip)
    )
    assert resp.status == 409, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "session_ended"
    assert "already ended" in error["message"]
    assert error["details"] == {"session_id": SESSION}
    screen = await server.client.post(
        f"/whip/sessions/{SESSION}?video=screen", data=await again.offer(), headers=sdp_headers(whip)
    )
    assert screen.status == 409
    assert server.rooms.room(SESSION) is None
    # One lecture, one start and one end: no second recording is started.
    assert [t for t, _ in await server.events()] == ["session.started", "session.ended"]

    # Another session of the same process still goes live.
    other = Robot(videos=1, audio=False)
    peers.append(other)
    await other.publish(server.client, SESSION + 1, token("whip", SESSION + 1, "expert", EXPERT))
    assert server.rooms.room(SESSION + 1) is not None


async def test_the_stage_in_the_media_state_follows_a_speaker_taking_and_leaving_a_seat(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client)
    await _publish(server, peers, videos=1, audio=True)
    expert_ws, _ = await _join(server, "expert", EXPERT)
    alice_ws, _ = await _join(server, "learner", ALICE)
    bob_ws, _ = await _join(server, "learner", BOB)
    await _media_until(bob_ws, lambda m: m["status"] == "live")

    await expert_ws.send_json({"type": "promote", "person_id": ALICE})
    promoted = await receive_until(alice_ws, "promoted")
    speaker = Robot(videos=1, audio=True, size=(160, 120))
    peers.append(speaker)
    await speaker.publish(server.client, SESSION, promoted["whip_token"])
    seated = await _media_until(bob_ws, lambda m: bool(m["stage"]))
    assert seated["stage"] == [{"seat": 1, "person_id": ALICE, "video": True, "audio": True}]
    assert seated["expert"] == CAMERA_ONLY

    await expert_ws.send_json({"type": "demote", "person_id": ALICE})
    off = await _media_until(bob_ws, lambda m: not m["stage"])
    assert off["status"] == "live"
    for ws in (expert_ws, alice_ws, bob_ws):
        await ws.close()


def _rid(location: str | None) -> str:
    assert location is not None
    return location.rsplit("/", 1)[1]


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    """The in-process bus, and Redis Streams when the tests are given a Redis (TEST_REDIS_URL)."""
    made: EventBus
    if request.param == "memory":
        made = MemoryBus(retention=1000)
    else:
        made = RedisBus(service_env("TEST_REDIS_URL"), 1000, key_prefix=f"test-{secrets.token_hex(6)}:")
    yield made
    await made.close()


async def test_a_learners_viewer_is_announced_joined_when_connected_and_left_when_it_goes(
    aiohttp_client: Any, peers: list[Any], bus: EventBus
) -> None:
    server = await _server(aiohttp_client, bus=bus)
    robot = await _publish(server, peers, videos=1, audio=True)

    alice = await _watch(server, peers, ALICE)
    staff = await _watch(server, peers, STAFF, role="staff")
    await wait_until(lambda: alice.count() > 0 and staff.count() > 0, timeout_s=15, message="media")
    joined = await server.events_until(1, "attendance")
    joined_at = joined[0][1]["at"]
    expected = {"session_id": SESSION, "person_id": ALICE, "peer_id": _rid(alice.location), "at": joined_at}
    assert joined == [("viewer.joined", expected)], "only learners are announced, once connected"

    await _delete(server, alice.location, token("whep", SESSION, "learner", ALICE))
    kind, left = (await server.events_until(2, "attendance"))[1]
    assert kind == "viewer.left"
    assert (left["person_id"], left["peer_id"]) == (ALICE, _rid(alice.location))
    assert datetime.fromisoformat(left["at"]) >= datetime.fromisoformat(joined_at)

    # A viewer whose connection just closes (a closed tab) leaves too, and so does everyone at the end.
    bob = await _watch(server, peers, BOB)
    carol = await _watch(server, peers, 5)
    await wait_until(lambda: bob.count() > 0 and carol.count() > 0, timeout_s=15, message="media")
    await server.events_until(4, "attendance")
    await bob.close()
    bob_left = (await server.events_until(5, "attendance", timeout_s=40))[4]
    assert bob_left[0] == "viewer.left"
    assert bob_left[1]["peer_id"] == _rid(bob.location)
    await _delete(server, robot.location, token("whip", SESSION, "expert", EXPERT))
    seen = await server.events_until(6, "attendance")
    by_peer: dict[str, list[str]] = {}
    for kind, data in seen:
        by_peer.setdefault(data["peer_id"], []).append(kind)
    assert by_peer == {
        _rid(alice.location): ["viewer.joined", "viewer.left"],
        _rid(bob.location): ["viewer.joined", "viewer.left"],
        _rid(carol.location): ["viewer.joined", "viewer.left"],
    }
    assert STAFF not in {data["person_id"] for _, data in seen}


async def test_a_bus_that_refuses_attendance_events_does_not_stop_the_media(
    aiohttp_client: Any, peers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = await _server(aiohttp_client)
    await _publish(server, peers, videos=1, audio=True)
    await server.bus.close()  # from now on every publish raises BusUnavailable
    with caplog.at_level(logging.WARNING, logger="streaming.rooms"):
        viewer = await _watch(server, peers, ALICE)
        await wait_until(lambda: viewer.count() >= 30, timeout_s=15, message="frames despite the bus")
        await wait_until(
            lambda: any("could not publish viewer.joined" in r.getMessage() for r in caplog.records),
            message="a warning",
        )
