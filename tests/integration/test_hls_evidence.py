"""Overflow (HLS) attendance evidence over a real server: `POST /api/sessions/{id}/hls-heartbeats`
publishes hls.heartbeat (server time, the person the beat cookie names) only inside the live window, and
refuses bad input, missing or foreign grants and heartbeats after the session ended with nothing
published; `/hls/...` and `/hls-auth` publish hls.segment_fetched for live media segments only."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from infra import events, media_access
from infra.appkeys import BUS, OBJECTS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.objects_local import LocalObjectStore
from infra.settings import Settings
from streaming import channel, hls_evidence, hls_routes
from streaming.room_media import MediaState, MediaStatus

Client = TestClient[web.Request, web.Application]
SESSION, OTHER = 7, 8
ALICE = 21
SEGMENT = "hls/7/r1/camera/seg_000001.m4s"


class World:
    def __init__(self, client: Client, bus: MemoryBus, settings: Settings) -> None:
        self.client = client
        self.bus = bus
        self.settings = settings
        self.status: dict[int, MediaStatus] = {SESSION: "live"}

    def cookie(self, person_id: int = ALICE, session_id: int = SESSION, role: str = "learner") -> str:
        return media_access.issue(self.settings.secret_key, person_id, session_id, role, time.time())

    async def beat(self, body: Any, cookie: str | None = None, session_id: int = SESSION) -> tuple[int, Any]:
        cookies = {} if cookie is None else {media_access.BEAT_COOKIE: cookie}
        url = self.client.make_url(media_access.heartbeat_path(session_id))
        async with aiohttp.ClientSession(cookies=cookies) as http, http.post(url, json=body) as resp:
            return resp.status, await resp.json()

    async def published(self) -> list[events.Event]:
        deliveries = await self.bus.consume(events.EVIDENCE, "test", "test", count=100)
        return [events.decode(d) for d in deliveries]


@pytest.fixture
async def world(
    aiohttp_client: Callable[..., Awaitable[Client]], embedded_settings: Settings
) -> AsyncIterator[World]:
    store = LocalObjectStore(embedded_settings.objects_dir, signing_key="k", base_url="http://127.0.0.1")
    for key in (SEGMENT, "hls/7/r1/camera/index.m3u8", "hls/7/r1/camera/init_0.mp4"):
        await store.put(key, b"media bytes")
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = embedded_settings
    app[OBJECTS] = store
    bus = MemoryBus(retention=1000)
    app[BUS] = bus
    statuses: dict[int, MediaStatus] = {}
    app[channel.MEDIA_STATE] = lambda session_id: MediaState(session_id, statuses.get(session_id, "waiting"))
    hls_routes.add_routes(app)
    hls_evidence.add_routes(app)
    made = World(await aiohttp_client(app), bus, embedded_settings)
    made.status = statuses
    statuses[SESSION] = "live"
    yield made
    await store.close()
    await bus.close()


def beat(**changes: Any) -> dict[str, Any]:
    body = {
        "client_id": str(uuid.uuid4()),
        "seq": 1,
        "media_sequence": 40,
        "position_s": 80.5,
        "rate": 1.0,
        "visible": True,
    }
    return {**body, **changes}


async def test_a_heartbeat_inside_the_live_window_is_published_with_the_servers_time(world: World) -> None:
    body = beat(seq=3, visible=False)
    before = datetime.now(UTC)
    status, answer = await world.beat(body, world.cookie())
    assert (status, answer["counted"]) == (202, True)
    [event] = await world.published()
    assert isinstance(event, events.HlsHeartbeat)
    assert (event.session_id, event.person_id, event.client_id, event.seq) == (
        SESSION,
        ALICE,
        body["client_id"],
        3,
    )
    assert (event.media_sequence, event.position_s, event.rate, event.visible) == (40, 80.5, 1.0, False)
    assert before <= event.at <= datetime.now(UTC)
    assert answer["at"] == event.at.isoformat()


@pytest.mark.parametrize("status", ["waiting", "ended"])
async def test_heartbeats_outside_the_live_window_are_refused_and_not_published(
    world: World, status: MediaStatus
) -> None:
    world.status[SESSION] = status  # before it went live, or after it ended (fraud: beats after the end)
    code, answer = await world.beat(beat(), world.cookie())
    assert (code, answer["error"]["code"]) == (409, "outside_live_window")
    assert await world.published() == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"client_id": "not-a-uuid"}, "client_id"),
        ({"client_id": 5}, "client_id"),
        ({"seq": -1}, "seq"),
        ({"seq": 1.5}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 2**31}, "seq"),
        ({"media_sequence": None}, "media_sequence"),
        ({"position_s": -0.1}, "position_s"),
        ({"position_s": "80"}, "position_s"),
        ({"rate": 17}, "rate"),
        ({"rate": -1}, "rate"),
        ({"visible": "yes"}, "visible"),
        ({"visible": None}, "visible"),
    ],
    ids=lambda v: str(v),
)
async def test_bad_heartbeats_are_refused_with_the_field_and_not_published(
    world: World, changes: dict[str, Any], field: str
) -> None:
    code, answer = await world.beat(beat(**changes), world.cookie())
    assert (code, answer["error"]["code"], answer["error"]["field"]) == (400, "invalid", field)
    assert await world.published() == []


async def test_a_body_that_is_not_a_json_object_is_refused(world: World) -> None:
    bodies: list[Any] = [[], "beat", 3]
    for body in bodies:
        code, answer = await world.beat(body, world.cookie())
        assert (code, answer["error"]["code"]) == (400, "invalid")
    assert await world.published() == []


async def test_heartbeats_without_a_grant_for_the_session_are_refused(world: World) -> None:
    forged = media_access.issue("another key", ALICE, SESSION, "learner", time.time())
    expired = media_access.issue(world.settings.secret_key, ALICE, SESSION, "learner", time.time() - 7200)
    cases = [(None, 401), (forged, 401), (expired, 401), (world.cookie(session_id=OTHER), 403)]
    for cookie, status in cases:
        code, answer = await world.beat(beat(), cookie)
        assert code == status, answer
    assert await world.published() == []


async def test_staff_heartbeats_are_accepted_but_measure_nothing(world: World) -> None:
    code, answer = await world.beat(beat(), world.cookie(role="staff"))
    assert (code, answer["counted"]) == (202, False)
    assert await world.published() == []


async def test_live_segments_a_learner_fetches_are_evidence_playlists_and_init_segments_are_not(
    world: World,
) -> None:
    cookies = {media_access.COOKIE: world.cookie()}
    async with aiohttp.ClientSession(cookies=cookies) as http:
        for key in ("hls/7/r1/camera/index.m3u8", "hls/7/r1/camera/init_0.mp4", SEGMENT):
            async with http.get(world.client.make_url("/" + key)) as resp:
                assert resp.status == 200
        headers = {"X-Original-URI": "/" + SEGMENT}
        async with http.get(world.client.make_url("/hls-auth"), headers=headers) as resp:
            assert resp.status == 200
        found = await world.published()
        assert [
            (type(e).__name__, getattr(e, "key", None), getattr(e, "person_id", None)) for e in found
        ] == [
            ("HlsSegmentFetched", SEGMENT, ALICE),
            ("HlsSegmentFetched", SEGMENT, ALICE),
        ]
        world.status[SESSION] = "ended"  # the same segment is a replay's now
        async with http.get(world.client.make_url("/" + SEGMENT)) as resp:
            assert resp.status == 200
        assert await world.published() == []
