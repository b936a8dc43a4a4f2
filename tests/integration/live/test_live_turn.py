"""TURN through a real coturn (use-auth-secret, as docker-compose runs it): the credentials Lectern
derives from LECTERN_TURN_SECRET get relay allocations and wrong or expired ones do not; a viewer that
can only use a relay (a phone behind a strict NAT) watches through it; WHIP/WHEP answers carry the
caller's servers as RFC 9725 Link headers that work against the same coturn."""

from __future__ import annotations

import re
from typing import Any

from aiortc import RTCSessionDescription

from infra.ice import IceServer
from streaming import rtc_adapter
from tests.helpers import wait_until
from tests.integration.live.conftest import TurnServer
from tests.integration.live.peers import LiveServerFactory, Robot, WatchingPeer, sdp_headers, token

SESSION = 7


async def _relay_candidates(servers: Any) -> list[str]:
    pc = rtc_adapter.make_peer_connection(servers, relay_only=True)
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
    finally:
        await pc.close()


async def test_derived_turn_credentials_get_a_relay_and_wrong_or_expired_ones_do_not(
    turn_server: TurnServer,
) -> None:
    good = await _relay_candidates(turn_server.credentials("person-1"))
    assert good, "no relay candidate with the derived credential"
    assert all(" typ relay" in line for line in good), good
    assert await _relay_candidates(turn_server.credentials("person-1", secret="not-the-secret")) == []
    assert await _relay_candidates(turn_server.credentials("person-1", ttl_s=-60)) == []


async def test_a_viewer_that_can_only_relay_watches_through_coturn(
    turn_server: TurnServer, live_server: LiveServerFactory, peers: list[Any]
) -> None:
    # (turn_server first: it is torn down last, after the peers have released their allocations)
    server = await live_server(ice_servers=(turn_server.url,), turn_secret=turn_server.secret)
    robot = Robot(audio=True)
    peers.append(robot)
    await robot.publish(server.client, SESSION, token("whip", SESSION, "expert"))
    viewer = WatchingPeer(ice_servers=turn_server.credentials("person-100"), relay_only=True)
    peers.append(viewer)
    offer = await viewer.offer()
    assert "typ relay" in offer
    assert "typ host" not in offer
    resp = await server.client.post(
        f"/whep/sessions/{SESSION}",
        data=offer,
        headers=sdp_headers(token("whep", SESSION, "learner", person_id=100)),
    )
    assert resp.status == 201, await resp.text()
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=await resp.text(), type="answer"))

    await wait_until(lambda: viewer.count("video") >= 15, timeout_s=20, message="video through the relay")
    await wait_until(lambda: viewer.count("audio") >= 15, timeout_s=10, message="audio through the relay")
    assert viewer.frames["video"][0].frame.keyframe
    pair = viewer.pc.getTransceivers()[0].receiver.transport.transport._connection._nominated[1]
    assert pair.local_candidate.type == "relay"


def _ice_links(values: list[str]) -> list[IceServer]:
    """What a WHIP client reads from `Link: <url>; rel="ice-server"; username=...; credential=...`."""
    servers = []
    for value in values:
        url = re.match(r"<([^>]*)>", value)
        params = dict(re.findall(r';\s*([\w-]+)="((?:[^"\\]|\\.)*)"', value))
        assert url is not None, value
        assert params.get("rel") == "ice-server", value
        servers.append(IceServer(url[1], params.get("username"), params.get("credential")))
    return servers


async def _answer_links(
    server: Any, kind: str, peer: Robot | WatchingPeer, person_id: int
) -> list[IceServer]:
    """The ICE servers in the `Link` headers of the 201 that answers `peer`'s offer."""
    role = "expert" if kind == "whip" else "learner"
    resp = await server.client.post(
        f"/{kind}/sessions/{SESSION}",
        data=await peer.offer(),
        headers=sdp_headers(token(kind, SESSION, role, person_id=person_id)),
    )
    assert resp.status == 201, await resp.text()
    assert "Link" in resp.headers["Access-Control-Expose-Headers"]
    return _ice_links(resp.headers.getall("Link", []))


async def test_whip_and_whep_answers_carry_working_turn_credentials_in_link_headers(
    turn_server: TurnServer, live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server(ice_servers=(turn_server.url,), turn_secret=turn_server.secret)
    robot = Robot(audio=False)
    viewer = WatchingPeer()
    peers.extend([robot, viewer])
    (link,) = await _answer_links(server, "whip", robot, person_id=5)
    assert link.url == turn_server.url
    assert str(link.username).endswith(":person-5")
    relay = await _relay_candidates([link])
    assert relay, "no relay candidate with the credential from the Link header"
    assert all(" typ relay" in line for line in relay), relay

    (link,) = await _answer_links(server, "whep", viewer, person_id=100)
    assert str(link.username).endswith(":person-100")
    assert await _relay_candidates([link])


async def test_without_ice_servers_the_answers_have_no_link_headers(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    robot = Robot(audio=False)
    peers.append(robot)
    assert await _answer_links(server, "whip", robot, person_id=1) == []
