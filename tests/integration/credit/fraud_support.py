"""Scripted clients for the fraud scenarios, against the whole app (streaming.app.create_app: catalog with
its consumer and settler, live rooms, room channel, recorder) over loopback HTTP.

`Lectern` is the server under test with a seeded world; `ReplayClient` plays a replay as the replay page
does (or as a cheat would), `ChannelClient` is a learner's live page on the room channel, `HlsClient` an
overflow (HLS) viewer. What each learner is credited is read back through the API, as the learner
(`GET /api/me/credits`) and as the provider's administrator (`GET /api/fraud-flags`).

Clients pace themselves (heartbeats every period, a person's reaction time before a click) with
`Pacer`: that is the client's behaviour under test, not a wait for the server; everything the test
waits *for* is polled with `wait_until`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from catalog.domain import Role
from catalog.models import Session
from infra import media_access
from streaming import live
from tests.helpers import wait_until
from tests.integration.catalog.conftest import Actor, World
from tests.integration.live.peers import Robot, WatchingPeer, receive_until

Client = TestClient[web.Request, web.Application]


class Pacer:
    """Ticks every `period_s` from its start (not drifting with the time each tick's work takes)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.started = time.monotonic()
        self.ticks = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def tick(self) -> None:
        self.ticks += 1
        await asyncio.sleep(max(0.0, self.started + self.ticks * self.period_s - time.monotonic()))


async def reaction_time(seconds: float) -> None:
    """A person reading a prompt before clicking (the client's behaviour, not a wait on the server)."""
    await asyncio.sleep(seconds)


@dataclass
class Lectern:
    """The app under test and its seeded world (one course, its provider admin, an admin, learners)."""

    client: Client
    world: World
    learners: dict[str, Actor] = field(default_factory=dict)

    @property
    def admin(self) -> Actor:
        return self.world.actors["admin"]

    @property
    def provider_admin(self) -> Actor:
        return self.world.actors["provider_admin"]

    async def store_policy(self, **params: Any) -> dict[str, Any]:
        """A new credit-policy version, stored as an administrator does it: through the API."""
        resp = await self.client.post(
            "/api/credit-policy", json={**params, "note": "fraud scenarios"}, headers=self.admin.headers
        )
        body: dict[str, Any] = await resp.json()
        assert resp.status == 201, body
        return body

    async def learner(self, key: str) -> Actor:
        """A learner enrolled in the course."""
        employer = self.world.orgs["employer"]
        actor = await self.world.person(key, [(Role.LEARNER, employer)], employer=employer)
        await self.world.enroll(actor.person_id, self.world.course_id)
        self.learners[key] = actor
        return actor

    async def ended_session_with_replay(self, duration_s: float) -> tuple[int, str]:
        """A lecture that was held an hour ago (its actual times are the server's) and its replay."""
        start = datetime.now(UTC) - timedelta(hours=2)
        session_id = await self.world.session(self.world.course_id, start=start)
        async with self.world.db.sessions.begin() as s:
            row = await s.get(Session, session_id)
            assert row is not None
            row.actual_start, row.actual_end = start, start + timedelta(hours=1)
        return session_id, await self.world.recording(session_id, duration_s=duration_s, screen=False)

    async def session_soon(self) -> int:
        """A session of the published course starting in ten minutes: the expert may go live now."""
        start = datetime.now(UTC) + timedelta(minutes=10)
        return await self.world.session(
            self.world.course_id, start=start, experts=(self.world.actors["expert"].person_id,)
        )

    async def token(self, actor: Actor, purpose: str, session_id: int) -> str:
        resp = await self.client.post(
            f"/api/sessions/{session_id}/media-token", headers=actor.headers, json={"purpose": purpose}
        )
        body = await resp.json()
        assert resp.status == 201, body
        return str(body["token"])

    async def go_live(self, robots: list[Any], session_id: int) -> tuple[Robot, str]:
        robot = Robot(videos=1, audio=True)
        robots.append(robot)
        whip = await self.token(self.world.actors["expert"], "whip", session_id)
        await robot.publish(self.client, session_id, whip)
        rooms = self.client.app[live.ROOMS]
        await wait_until(
            lambda: (room := rooms.room(session_id)) is not None and room.started_at is not None,
            timeout_s=15,
            message="the expert's media",
        )
        await wait_until(
            lambda: self.session_status(session_id, "live"), timeout_s=10, message="the catalog: live"
        )
        return robot, whip

    async def end(self, robot: Robot, whip: str, session_id: int) -> None:
        """结束直播, and wait until the catalog has recorded the end."""
        assert robot.location is not None
        resp = await self.client.delete(robot.location, headers={"Authorization": f"Bearer {whip}"})
        assert resp.status == 200, await resp.text()
        await wait_until(
            lambda: self.session_status(session_id, "ended"), timeout_s=10, message="the catalog: ended"
        )

    async def session_status(self, session_id: int, status: str) -> bool:
        resp = await self.client.get(f"/api/sessions/{session_id}", headers=self.admin.headers)
        return bool((await resp.json())["status"] == status)

    async def watch(self, peers: list[Any], actor: Actor, session_id: int) -> WatchingPeer:
        viewer = WatchingPeer()
        peers.append(viewer)
        await viewer.watch(self.client, session_id, await self.token(actor, "whep", session_id))
        return viewer

    # -- what people read ---------------------------------------------------------------------------

    async def my_entries(self, actor: Actor, session_id: int) -> list[dict[str, Any]]:
        """The learner's ledger entries of a session, from 我的学时 (GET /api/me/credits)."""
        resp = await self.client.get("/api/me/credits", headers=actor.headers)
        body = await resp.json()
        assert resp.status == 200, body
        return [e for course in body["courses"] for e in course["entries"] if e["session_id"] == session_id]

    async def settled_entry(self, actor: Actor, session_id: int, timeout_s: float = 20) -> dict[str, Any]:
        """The learner's one entry of the session, once settlement has written it."""

        async def one() -> dict[str, Any] | None:
            found = await self.my_entries(actor, session_id)
            assert len(found) <= 1, found
            return found[0] if found else None

        entry = await wait_until(
            one, timeout_s=timeout_s, interval_s=0.2, message=f"an entry for {actor.phone}"
        )
        assert entry is not None
        return dict(entry)

    async def flags(self, actor: Actor | None = None) -> list[dict[str, Any]]:
        """The review list (GET /api/fraud-flags) as the provider's administrator reads it."""
        resp = await self.client.get(
            "/api/fraud-flags?status=all&page_size=100", headers=self.provider_admin.headers
        )
        body = await resp.json()
        assert resp.status == 200, body
        items: list[dict[str, Any]] = body["items"]
        return [f for f in items if actor is None or f["person_id"] == actor.person_id]

    async def flag(self, actor: Actor, code: str, timeout_s: float = 20) -> dict[str, Any]:
        async def raised() -> dict[str, Any] | None:
            return next((f for f in await self.flags(actor) if f["code"] == code), None)

        found = await wait_until(
            raised, timeout_s=timeout_s, interval_s=0.2, message=f"flag {code} for {actor.phone}"
        )
        assert found is not None
        return dict(found)

    async def codes(self, actor: Actor) -> set[str]:
        return {f["code"] for f in await self.flags(actor)}

    async def session_row(self, session_id: int, actor: Actor) -> dict[str, Any]:
        """The learner's row of the provider's credit table (GET /api/sessions/{id}/credits)."""
        resp = await self.client.get(
            f"/api/sessions/{session_id}/credits", headers=self.provider_admin.headers
        )
        body = await resp.json()
        assert resp.status == 200, body
        rows = [r for r in body["learners"] if r["person_id"] == actor.person_id]
        assert rows, body
        return dict(rows[0])


# -- replays ----------------------------------------------------------------------------------------------


@dataclass
class ReplayClient:
    """One replay playback (a learning client) opened for `actor`, sending heartbeats like the page."""

    http: Client
    actor: Actor
    recording_id: str
    opened: dict[str, Any] = field(default_factory=dict)
    seq: int = -1
    statuses: list[int] = field(default_factory=list)

    @property
    def client_id(self) -> str:
        return str(self.opened["client_id"])

    @property
    def token(self) -> str:
        return str(self.opened["token"])

    async def open(self) -> ReplayClient:
        resp = await self.http.post(f"/api/replays/{self.recording_id}/playback", headers=self.actor.headers)
        self.opened = await resp.json()
        assert resp.status == 201, self.opened
        return self

    async def send(
        self,
        position_s: float,
        *,
        seq: int | None = None,
        rate: float = 1.0,
        visible: bool = True,
        token: str | None = None,
        client_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One heartbeat (the next seq unless given); (status, answer)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        body = {
            "token": self.token if token is None else token,
            "seq": seq,
            "position_s": position_s,
            "rate": rate,
            "visible": visible,
            "angle": "camera",
        }
        resp = await self.http.post(
            f"/api/playback/{client_id or self.client_id}/heartbeats",
            json=body,
            headers=self.actor.headers if headers is None else headers,
        )
        answer: dict[str, Any] = await resp.json()
        self.statuses.append(resp.status)
        return resp.status, answer

    async def beat(self, position_s: float, **changes: Any) -> dict[str, Any]:
        status, answer = await self.send(position_s, **changes)
        assert status == 200, answer
        return answer

    async def play(
        self,
        until_s: float,
        *,
        speed: float = 1.0,
        rate: float = 1.0,
        start_s: float = 0.0,
        hidden: Callable[[float], bool] = lambda _t: False,
    ) -> None:
        """Play from `start_s` to `until_s` in real time × `speed` (reporting `rate`), a heartbeat every
        period and one at the end (what the replay page does when the media ends)."""
        pacer = Pacer(float(self.opened["heartbeat_period_s"]))
        position = start_s
        while True:
            position = min(until_s, start_s + pacer.elapsed() * speed)
            await self.beat(position, rate=rate, visible=not hidden(position))
            if position >= until_s:
                return
            await pacer.tick()


async def concurrently(*jobs: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*jobs))


# -- the live room channel ---------------------------------------------------------------------------------


@dataclass
class ChannelClient:
    """A learner's live page on the room channel: heartbeats every period, visibility reports, and
    presence checks answered after `reaction_s` (a person) — or at once (a script, fraud 3)."""

    ws: Any
    period_s: float
    visible: bool = True
    reaction_s: float = 1.5
    answers: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def join(cls, lectern: Lectern, actor: Actor, session_id: int, **kw: Any) -> ChannelClient:
        token = await lectern.token(actor, "room", session_id)
        ws = await lectern.client.ws_connect(f"/ws/sessions/{session_id}?token={token}")
        welcome = await receive_until(ws, "welcome")
        me = cls(ws, float(welcome["heartbeat_period_s"]), **kw)
        await me.report_visibility(me.visible)
        me._tasks = [asyncio.create_task(me._beat()), asyncio.create_task(me._read())]
        return me

    async def report_visibility(self, visible: bool) -> None:
        self.visible = visible
        await self.ws.send_json({"type": "visibility", "visible": visible})

    async def _beat(self) -> None:
        pacer = Pacer(self.period_s)
        while not self.ws.closed:
            await self.ws.send_json({"type": "heartbeat"})
            await pacer.tick()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if data["type"] == "presence_check":
                self.prompts.append(data)
                self._tasks.append(asyncio.create_task(self._answer(data)))
            elif data["type"] in ("presence_ack", "error"):
                self.answers.append(data)

    async def _answer(self, prompt: dict[str, Any]) -> None:
        if self.reaction_s > 0:
            await reaction_time(self.reaction_s)
        await self.ws.send_json(
            {"type": "presence_answer", "check_id": prompt["check_id"], "nonce": prompt["nonce"]}
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()


# -- overflow HLS ------------------------------------------------------------------------------------------


@dataclass
class HlsClient:
    """An overflow viewer: the media grant from POST /api/sessions/{id}/hls-access (its cookies), the
    live playlist and its segments fetched as a player does, heartbeats to the HLS heartbeat endpoint."""

    lectern: Lectern
    actor: Actor
    session_id: int
    http: aiohttp.ClientSession
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    seq: int = 0
    fetched: set[str] = field(default_factory=set)

    @classmethod
    async def open(cls, lectern: Lectern, actor: Actor, session_id: int) -> HlsClient:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        resp = await http.post(
            lectern.client.make_url(f"/api/sessions/{session_id}/hls-access"), headers=actor.headers
        )
        assert resp.status == 200, await resp.text()
        return cls(lectern, actor, session_id, http)

    async def fetch_new_segments(self, playlist_url: str) -> int:
        """Fetch the playlist and the segments not fetched yet; how many were new."""
        async with self.http.get(self.lectern.client.make_url(playlist_url)) as resp:
            if resp.status == 404:
                return 0  # the recorder has not written the first segment yet: a player retries
            assert resp.status == 200, await resp.text()
            text = await resp.text()
        base = playlist_url.rsplit("/", 1)[0]
        new = [line for line in text.splitlines() if line and not line.startswith("#")]
        count = 0
        for name in new:
            if name in self.fetched or not name.startswith("seg_"):
                continue
            async with self.http.get(self.lectern.client.make_url(f"{base}/{name}")) as resp:
                assert resp.status == 200, name
                await resp.read()
            self.fetched.add(name)
            count += 1
        return count

    async def beat(self, *, visible: bool = True, position_s: float = 0.0) -> tuple[int, dict[str, Any]]:
        self.seq += 1
        body = {
            "client_id": self.client_id,
            "seq": self.seq,
            "media_sequence": len(self.fetched),
            "position_s": position_s,
            "rate": 1.0,
            "visible": visible,
        }
        url = self.lectern.client.make_url(media_access.heartbeat_path(self.session_id))
        async with self.http.post(url, json=body) as resp:
            return resp.status, await resp.json()

    async def close(self) -> None:
        await self.http.close()
