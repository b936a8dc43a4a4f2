"""WHIP/WHEP signaling: bearer tokens, content type, body bound, SDP validation, CORS, the JSON errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.live.peers import LiveServerFactory, Robot, WatchingPeer, sdp_headers, token

SESSION = 9


async def _robot_offer(peers: list[Any]) -> str:
    robot = Robot(audio=False)
    peers.append(robot)
    return await robot.offer()


@pytest.mark.parametrize(
    ("bearer", "status", "code"),
    [
        pytest.param(None, 401, "unauthenticated", id="no-token"),
        pytest.param("garbage", 401, "unauthenticated", id="malformed-token"),
        pytest.param(token("whip", SESSION, "expert", expires_in_s=-1), 401, "unauthenticated", id="expired"),
        pytest.param(token("whep", SESSION, "expert"), 401, "unauthenticated", id="whep-token-on-whip"),
        pytest.param(token("whip", SESSION + 1, "expert"), 403, "forbidden", id="other-session"),
        pytest.param(token("whip", SESSION, "learner"), 403, "forbidden", id="learner-may-not-publish"),
    ],
)
async def test_whip_rejects_bad_credentials(
    live_server: LiveServerFactory, peers: list[Any], bearer: str | None, status: int, code: str
) -> None:
    server = await live_server()
    offer = await _robot_offer(peers)
    resp = await server.client.post(f"/whip/sessions/{SESSION}", data=offer, headers=sdp_headers(bearer))
    assert resp.status == status
    body = await resp.json()
    assert set(body["error"]) == {"code", "message", "field", "details"}
    assert body["error"]["code"] == code
    assert server.rooms.room(SESSION) is None
    if status == 401:
        assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "needle"),
    [
        pytest.param(
            {"Content-Type": "application/json"},
            b"{}",
            415,
            "unsupported_media_type",
            "application/sdp",
            id="wrong-content-type",
        ),
        pytest.param({"Content-Type": "application/sdp"}, b"hello", 400, "invalid", "v=0", id="not-sdp"),
        pytest.param(
            {"Content-Type": "application/sdp"},
            b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n",
            400,
            "invalid",
            "no media",
            id="no-m-line",
        ),
        pytest.param(
            {"Content-Type": "application/sdp"},
            b"v=0\r\n" + b"a=x\r\n" * 20000,
            413,
            "body_too_large",
            "",
            id="oversized",
        ),
        pytest.param(
            {"Content-Type": "application/sdp"}, b"v=0\xff\xfe", 400, "bad_request", "UTF-8", id="not-utf8"
        ),
    ],
)
async def test_whip_rejects_bad_bodies_with_a_json_error(
    live_server: LiveServerFactory, headers: dict[str, str], body: bytes, status: int, code: str, needle: str
) -> None:
    server = await live_server()
    headers = {**headers, "Authorization": f"Bearer {token('whip', SESSION, 'expert')}"}
    resp = await server.client.post(f"/whip/sessions/{SESSION}", data=body, headers=headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert needle in error["message"]


async def test_an_offer_without_ice_credentials_is_refused_naming_the_problem(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    offer = await _robot_offer(peers)
    broken = "\r\n".join(line for line in offer.splitlines() if not line.startswith("a=ice-pwd")) + "\r\n"
    resp = await server.client.post(
        f"/whip/sessions/{SESSION}", data=broken, headers=sdp_headers(token("whip", SESSION, "expert"))
    )
    assert resp.status == 400
    assert "ice-pwd" in (await resp.json())["error"]["message"]


async def test_a_viewer_offer_on_whip_is_refused(live_server: LiveServerFactory, peers: list[Any]) -> None:
    server = await live_server()
    viewer = WatchingPeer()
    peers.append(viewer)
    resp = await server.client.post(
        f"/whip/sessions/{SESSION}",
        data=await viewer.offer(),
        headers=sdp_headers(token("whip", SESSION, "expert")),
    )
    assert resp.status == 400
    assert "recvonly" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    ("role", "status"),
    [
        pytest.param("learner", 404, id="learner"),
        pytest.param("staff", 404, id="staff"),
        pytest.param("expert", 404, id="expert"),
        pytest.param("speaker", 403, id="speaker-is-no-viewer-role"),
    ],
)
async def test_whep_roles_and_a_session_that_is_not_live(
    live_server: LiveServerFactory, peers: list[Any], role: str, status: int
) -> None:
    server = await live_server()
    viewer = WatchingPeer()
    peers.append(viewer)
    resp = await server.client.post(
        f"/whep/sessions/{SESSION}",
        data=await viewer.offer(),
        headers=sdp_headers(token("whep", SESSION, role)),
    )
    assert resp.status == status
    if status == 404:
        assert (await resp.json())["error"]["message"] == "session is not live"


async def test_only_the_publisher_may_delete_its_resource(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    robot = Robot(audio=False)
    peers.append(robot)
    await robot.publish(server.client, SESSION, token("whip", SESSION, "expert", person_id=1))
    assert robot.location is not None

    other = await server.client.delete(
        robot.location, headers={"Authorization": f"Bearer {token('whip', SESSION, 'expert', person_id=2)}"}
    )
    assert other.status == 403
    anonymous = await server.client.delete(robot.location)
    assert anonymous.status == 401
    unknown = await server.client.delete(
        "/whip/resources/nope", headers={"Authorization": f"Bearer {token('whip', SESSION, 'expert')}"}
    )
    assert unknown.status == 404
    assert server.rooms.room(SESSION) is not None


async def test_a_second_presenter_cannot_take_a_published_slot(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    first, second = Robot(audio=False), Robot(audio=False)
    peers.extend([first, second])
    await first.publish(server.client, SESSION, token("whip", SESSION, "expert", person_id=1))
    resp = await server.client.post(
        f"/whip/sessions/{SESSION}",
        data=await second.offer(),
        headers=sdp_headers(token("whip", SESSION, "expert", person_id=2)),
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "slot_taken"
    screen = Robot(audio=False)
    peers.append(screen)
    await screen.publish(
        server.client, SESSION, token("whip", SESSION, "expert", person_id=2), query="?video=screen"
    )
    room = server.rooms.room(SESSION)
    assert room is not None
    assert sorted(p.labels for p in room.publishers.values()) == [("camera",), ("screen",)]


async def test_options_answers_cors_preflight_for_whip_and_whep(live_server: LiveServerFactory) -> None:
    server = await live_server()
    for path in (f"/whip/sessions/{SESSION}", f"/whep/sessions/{SESSION}"):
        resp = await server.client.options(
            path, headers={"Origin": "https://studio.example", "Access-Control-Request-Method": "POST"}
        )
        assert resp.status == 204
        assert resp.headers["Accept-Post"] == "application/sdp"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    error = await server.client.post(f"/whep/sessions/{SESSION}")
    assert error.headers["Access-Control-Allow-Origin"] == "*"


async def test_a_non_numeric_session_id_is_not_found(live_server: LiveServerFactory) -> None:
    server = await live_server()
    resp = await server.client.post("/whip/sessions/abc", data=b"v=0", headers=sdp_headers("x"))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
