"""Media and room tokens follow the state of the world, through the whole app (create_app: catalog, live
rooms, room channel) with real aiortc peers: a learner who withdraws is dropped from the live room at
once and their earlier tokens open nothing; after the end, earlier tokens open nothing, here and after a
restart (the catalog's state is the truth then); draft courses and sessions not yet in their window do
not go live, whatever token a page holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import catalog
from catalog import accounts
from catalog.models import Session
from infra.settings import Settings
from streaming import live
from streaming.app import create_app
from streaming.channel_state import CLOSE_REVOKED
from tests.helpers import wait_until
from tests.integration.catalog.conftest import PASSWORD, World, seed_world
from tests.integration.live.peers import LOOPBACK, SECRET, Robot, WatchingPeer, receive_until, sdp_headers

ClientFactory = Callable[[], Awaitable[Any]]


@pytest.fixture(scope="module")
def password_hash() -> str:
    return asyncio.run(accounts.hash_password(PASSWORD))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        secret_key=SECRET,
        ice_servers=(),
        ice_host_addresses=LOOPBACK,
        segment_duration_s=1.0,
    )


@pytest.fixture
def start_app(aiohttp_client: Any, settings: Settings) -> ClientFactory:
    """Start the whole app on the test's data dir (again, for a restart)."""

    async def start() -> Any:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await catalog.migrate_async(settings.effective_database_url)
        return await aiohttp_client(create_app(settings))

    return start


@dataclass
class Stack:
    client: Any  # TestClient of the whole app
    world: World

    async def token(self, actor: str, purpose: str, session_id: int) -> str:
        status, body = await self.ask_token(actor, purpose, session_id)
        assert status == 201, body
        return str(body["token"])

    async def ask_token(self, actor: str, purpose: str, session_id: int) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post(
            f"/api/sessions/{session_id}/media-token",
            headers=self.world.actors[actor].headers,
            json={"purpose": purpose},
        )
        return resp.status, await resp.json()

    async def session_now(self) -> int:
        """A session of the published course starting in ten minutes: inside the expert's window."""
        start = datetime.now(UTC) + timedelta(minutes=10)
        return await self.world.session(
            self.world.course_id, start=start, experts=(self.world.actors["expert"].person_id,)
        )

    async def go_live(self, robots: list[Any], session_id: int) -> tuple[Robot, str]:
        robot = Robot(videos=1, audio=True)
        robots.append(robot)
        whip = await self.token("expert", "whip", session_id)
        await robot.publish(self.client, session_id, whip)
        rooms = self.client.app[live.ROOMS]
        await wait_until(
            lambda: (room := rooms.room(session_id)) is not None and room.started_at is not None,
            timeout_s=15,
            message="the expert's media",
        )
        return robot, whip

    async def watch(self, peers: list[Any], actor: str, session_id: int) -> WatchingPeer:
        viewer = WatchingPeer()
        peers.append(viewer)
        await viewer.watch(self.client, session_id, await self.token(actor, "whep", session_id))
        return viewer

    async def join(self, actor: str, session_id: int) -> Any:
        token = await self.token(actor, "room", session_id)
        ws = await self.client.ws_connect(f"/ws/sessions/{session_id}?token={token}")
        await receive_until(ws, "welcome")
        return ws

    async def whep_with(self, peers: list[Any], session_id: int, token: str) -> tuple[int, dict[str, Any]]:
        viewer = WatchingPeer()
        peers.append(viewer)
        resp = await self.client.post(
            f"/whep/sessions/{session_id}", data=await viewer.offer(), headers=sdp_headers(token)
        )
        return resp.status, await resp.json()

    async def whip_with(self, robots: list[Any], session_id: int, token: str) -> tuple[int, dict[str, Any]]:
        robot = Robot(videos=1, audio=True)
        robots.append(robot)
        resp = await self.client.post(
            f"/whip/sessions/{session_id}", data=await robot.offer(), headers=sdp_headers(token)
        )
        return resp.status, await resp.json()

    async def room_with(self, session_id: int, token: str) -> tuple[int, dict[str, Any]]:
        """A room-channel connection with `token`: refused before the upgrade, with the JSON error."""
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await self.client.ws_connect(f"/ws/sessions/{session_id}?token={token}")
        # The handshake error hides the body: ask again as a plain GET for the error shape.
        resp = await self.client.get(f"/ws/sessions/{session_id}?token={token}")
        assert resp.status == refused.value.status
        return resp.status, await resp.json()


@pytest.fixture
async def stack(start_app: ClientFactory, password_hash: str) -> Stack:
    client = await start_app()
    world = await seed_world(client.app[catalog.DATABASE], password_hash)
    # A second learner of the course ("staff" is an employee with the learner role).
    await world.enroll(world.actors["staff"].person_id, world.course_id)
    return Stack(client, world)


@pytest.fixture
async def peers() -> AsyncIterator[list[Any]]:
    created: list[Any] = []
    yield created
    for peer in created:
        await peer.close()


async def closed_with(ws: Any) -> int:
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg


async def test_a_learner_who_withdraws_is_dropped_from_the_live_room_and_their_earlier_tokens_open_nothing(
    stack: Stack, peers: list[Any]
) -> None:
    sid = await stack.session_now()
    await stack.go_live(peers, sid)
    alice = await stack.watch(peers, "learner", sid)
    bob = await stack.watch(peers, "staff", sid)
    await wait_until(lambda: alice.count() >= 10 and bob.count() >= 10, timeout_s=15, message="frames")
    alice_ws, bob_ws = await stack.join("learner", sid), await stack.join("staff", sid)
    earlier = {p: await stack.token("learner", p, sid) for p in ("whep", "room")}

    learner = stack.world.actors["learner"]
    resp = await stack.client.post(f"/api/courses/{stack.world.course_id}/withdraw", headers=learner.headers)
    assert resp.status == 200, await resp.text()

    # Her room socket is closed for good (the page does not reconnect after 4003) ...
    assert await closed_with(alice_ws) == CLOSE_REVOKED
    # ... and her viewer is gone from the room by the time the withdrawal answered: no more frames.
    room = stack.client.app[live.ROOMS].room(sid)
    assert room is not None
    assert [v.person_id for v in room.viewers.values()] == [stack.world.actors["staff"].person_id]
    alice_then, bob_then = alice.count("video"), bob.count("video")
    await wait_until(
        lambda: bob.count("video") >= bob_then + 30, timeout_s=10, message="a second more for Bob"
    )
    assert alice.count("video") <= alice_then + 2  # at most what was already on the wire
    # Bob watches and talks on.
    await bob_ws.send_json({"type": "chat", "text": "还在上课"})
    assert (await receive_until(bob_ws, "chat"))["text"] == "还在上课"

    # What she still holds, issued before the withdrawal, opens nothing; nor is anything new issued.
    status, body = await stack.whep_with(peers, sid, earlier["whep"])
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await stack.room_with(sid, earlier["room"]))[0] == 403
    for purpose in ("whep", "room"):
        assert (await stack.ask_token("learner", purpose, sid))[0] == 403
    await bob_ws.close()


async def test_after_the_end_earlier_tokens_open_nothing_here_nor_after_a_restart(
    stack: Stack, start_app: ClientFactory, peers: list[Any]
) -> None:
    sid = await stack.session_now()
    robot, whip = await stack.go_live(peers, sid)
    viewer = await stack.watch(peers, "learner", sid)
    await wait_until(lambda: viewer.count() >= 5, timeout_s=15, message="frames")
    earlier = {
        ("expert", "whip"): await stack.token("expert", "whip", sid),
        ("learner", "whep"): await stack.token("learner", "whep", sid),
        ("learner", "room"): await stack.token("learner", "room", sid),
    }

    assert robot.location is not None
    resp = await stack.client.delete(robot.location, headers={"Authorization": f"Bearer {whip}"})
    assert resp.status == 200  # 结束直播

    async def refused_everywhere(client: Any) -> None:
        stack.client = client
        status, body = await stack.whep_with(peers, sid, earlier["learner", "whep"])
        assert (status, body["error"]["code"]) == (409, "session_ended")
        status, body = await stack.room_with(sid, earlier["learner", "room"])
        assert (status, body["error"]["code"]) == (409, "session_ended")
        status, body = await stack.whip_with(peers, sid, earlier["expert", "whip"])
        assert (status, body["error"]["code"]) == (409, "session_ended")
        assert client.app[live.ROOMS].room(sid) is None  # no new room was opened
        for actor, purpose in earlier:
            status, body = await stack.ask_token(actor, purpose, sid)
            assert (status, body["error"]["code"]) == (409, "session_ended"), (actor, purpose)

    async def ended_in_catalog() -> bool:
        resp = await stack.client.get(f"/api/sessions/{sid}")
        return (await resp.json())["status"] == "ended"

    await wait_until(ended_in_catalog, timeout_s=10, message="the catalog records the end")
    await refused_everywhere(stack.client)

    # A restart forgets what the rooms knew; the catalog still says the session is over.
    await stack.client.close()
    await refused_everywhere(await start_app())


async def test_draft_courses_and_sessions_not_yet_open_do_not_go_live_whatever_token_a_page_holds(
    stack: Stack, peers: list[Any]
) -> None:
    world = stack.world
    expert = world.actors["expert"].person_id
    tomorrow = await world.session(
        world.course_id, start=datetime.now(UTC) + timedelta(days=1), experts=(expert,)
    )
    status, body = await stack.ask_token("expert", "whip", tomorrow)
    assert (status, body["error"]["code"]) == (409, "too_early")
    draft = await world.session(
        world.draft_course_id, start=datetime.now(UTC) + timedelta(minutes=10), experts=(expert,)
    )
    status, body = await stack.ask_token("expert", "whip", draft)
    assert (status, body["error"]["code"]) == (409, "course_not_published")

    # A token issued inside the window, then the provider moves the session to tomorrow: too early now.
    sid = await stack.session_now()
    whip = await stack.token("expert", "whip", sid)
    whep = await stack.token("learner", "whep", sid)
    async with world.db.sessions.begin() as s:
        session = await s.get(Session, sid)
        assert session is not None
        session.scheduled_start += timedelta(days=1)
        session.scheduled_end += timedelta(days=1)
    status, body = await stack.whip_with(peers, sid, whip)
    assert (status, body["error"]["code"]) == (409, "too_early")
    assert stack.client.app[live.ROOMS].room(sid) is None

    # And the course is archived: nothing of its sessions opens, whatever was issued before.
    resp = await stack.client.post(
        f"/api/courses/{world.course_id}/archive", headers=world.actors["provider_admin"].headers
    )
    assert resp.status == 200, await resp.text()
    async with world.db.sessions.begin() as s:
        session = await s.get(Session, sid)
        assert session is not None
        session.scheduled_start -= timedelta(days=1)
        session.scheduled_end -= timedelta(days=1)
    for status, body in (
        await stack.whip_with(peers, sid, whip),
        await stack.whep_with(peers, sid, whep),
    ):
        assert (status, body["error"]["code"]) == (409, "course_not_published")
