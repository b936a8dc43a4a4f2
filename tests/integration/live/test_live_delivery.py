"""Delivery-confirmed live attendance with real aiortc peers over 127.0.0.1: a learner's viewer.joined
waits for the viewer's RTCP receiver reports to acknowledge media (a connected peer that acknowledges
nothing gets no interval), an interval closes "stalled" when the reports stop while media goes out and
opens again when they resume, and closes "deleted" / "ended" with the viewer and the room."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.settings import Settings
from streaming import live
from streaming.rooms import Viewer
from tests.helpers import wait_until
from tests.integration.live.peers import LOOPBACK, SECRET, LiveServer, Robot, WatchingPeer, sdp_headers, token

SESSION = 61
EXPERT, ALICE, BOB = 1, 2, 3
STALL_S = 1.5


async def _server(aiohttp_client: Any) -> LiveServer:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = Settings(secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK)
    bus = MemoryBus(retention=1000)
    app[BUS] = bus
    app[READINESS] = {}
    live.setup(app, grace_s=10.0, delivery_stall_s=STALL_S)
    return LiveServer(await aiohttp_client(app), app, bus)


async def _start(server: LiveServer, peers: list[Any]) -> Robot:
    robot = Robot(videos=1, audio=True)
    peers.append(robot)
    await robot.publish(server.client, SESSION, token("whip", SESSION, "expert", EXPERT))
    return robot


async def _watch(
    server: LiveServer, peers: list[Any], person_id: int, *, reports: bool = True
) -> WatchingPeer:
    viewer = WatchingPeer(reports=reports)
    peers.append(viewer)
    await viewer.watch(server.client, SESSION, token("whep", SESSION, "learner", person_id))
    return viewer


def _server_viewer(server: LiveServer, viewer: WatchingPeer) -> Viewer:
    assert viewer.location is not None
    found = server.rooms.resource(viewer.location.rsplit("/", 1)[1])
    assert isinstance(found, Viewer)
    return found


async def _attendance(server: LiveServer) -> list[tuple[str, str | None]]:
    return [(kind, data.get("reason")) for kind, data in await server.events("attendance")]


async def test_a_connected_viewer_that_acknowledges_nothing_gets_no_interval_until_it_does(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client)
    await _start(server, peers)
    viewer = await _watch(server, peers, ALICE, reports=False)
    on_server = _server_viewer(server, viewer)
    # Connected, media flowing to it and arriving, several receiver reports withheld: no interval.
    await wait_until(
        lambda: on_server.connected.is_set() and viewer.count() >= 30 and viewer.withheld_reports >= 3,
        timeout_s=20,
        message="a connected viewer receiving media without reporting it",
    )
    assert on_server.delivery is not None
    assert on_server.delivery.sent > 0
    assert on_server.delivery.acks == 0
    assert await _attendance(server) == []

    reporting_from = datetime.now().astimezone()
    viewer.reports = True
    joined = await server.events_until(1, "attendance")
    assert [kind for kind, _ in joined] == ["viewer.joined"]
    assert datetime.fromisoformat(joined[0][1]["at"]) >= reporting_from


async def test_an_interval_closes_stalled_when_reports_stop_and_reopens_when_they_resume(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client)
    await _start(server, peers)
    viewer = await _watch(server, peers, ALICE)
    honest = await _watch(server, peers, BOB)
    await wait_until(lambda: _joined_peers(server, 2), timeout_s=20, message="both viewers joined")

    viewer.reports = False  # a frozen player: the connection lives on, nothing is acknowledged
    stalled = await wait_until(
        lambda: _left(server, viewer, "stalled"), timeout_s=20, message="the viewer's interval stalled"
    )
    assert stalled["person_id"] == ALICE
    viewer.reports = True

    async def reopened() -> bool:
        return await _kinds(server, viewer) == ["viewer.joined", "viewer.left", "viewer.joined"]

    await wait_until(
        reopened,
        timeout_s=20,
        message="the interval reopened",
    )
    seen = await server.events("attendance")
    mine = [data for _, data in seen if data["peer_id"] == _rid(viewer)]
    # The stalled interval ends at the last acknowledgement, before the stall was noticed.
    assert datetime.fromisoformat(mine[0]["at"]) <= datetime.fromisoformat(mine[1]["at"])
    assert datetime.fromisoformat(mine[1]["at"]) < datetime.fromisoformat(mine[2]["at"])

    resp = await server.client.delete(
        viewer.location or "", headers=sdp_headers(token("whep", SESSION, "learner", ALICE))
    )
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: _left(server, viewer, "deleted"), timeout_s=10, message="left: deleted")
    await server.rooms.end(SESSION, reason="ended_by_expert")
    await wait_until(lambda: _left(server, honest, "ended"), timeout_s=10, message="left: ended")
    assert await _kinds(server, honest) == ["viewer.joined", "viewer.left"], "the honest viewer never stalled"


def _rid(viewer: WatchingPeer) -> str:
    assert viewer.location is not None
    return viewer.location.rsplit("/", 1)[1]


async def _joined_peers(server: LiveServer, count: int) -> bool:
    kinds = [kind for kind, _ in await server.events("attendance")]
    return kinds.count("viewer.joined") >= count


async def _kinds(server: LiveServer, viewer: WatchingPeer) -> list[str]:
    return [kind for kind, data in await server.events("attendance") if data["peer_id"] == _rid(viewer)]


async def _left(server: LiveServer, viewer: WatchingPeer, reason: str) -> dict[str, Any] | None:
    for kind, data in await server.events("attendance"):
        if kind == "viewer.left" and data["peer_id"] == _rid(viewer) and data.get("reason") == reason:
            return data
    return None
