"""Stage seats with real aiortc peers over 127.0.0.1: promoted learners ("speaker" tokens) publish into
stage1/stage2 beside the expert, viewers of the 7-m-line layout receive them, and the expert's demote
over the room channel ends a speaker's publication and frees the seat."""

from __future__ import annotations

import time
from typing import Any

import av
import pytest
from aiohttp import web

from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.settings import Settings
from streaming import channel, live
from streaming.forwarding import H264
from streaming.rooms import SLOT_KINDS, VIEWER_LAYOUT, Room
from tests.helpers import wait_until
from tests.integration.live.peers import (
    LOOPBACK,
    SECRET,
    LiveServer,
    Received,
    Robot,
    WatchingPeer,
    receive_until,
    room_token,
    sdp_headers,
    token,
)

SESSION = 41
EXPERT, ALICE, BOB, CAROL = 1, 2, 3, 4
LAYOUT_KINDS = [SLOT_KINDS[label] for label in VIEWER_LAYOUT]
LINE = {label: index for index, label in enumerate(VIEWER_LAYOUT)}
EXPERT_SIZE, SPEAKER_SIZE = (320, 240), (160, 120)  # tells whose video a viewer got


async def _server(aiohttp_client: Any, grace_s: float = 10.0) -> LiveServer:
    """WHIP/WHEP and the room channel in one app, as streaming.app wires them."""
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = Settings(secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK)
    bus = MemoryBus(retention=1000)
    app[BUS] = bus
    app[READINESS] = {}
    channel.setup(app)
    live.setup(app, grace_s=grace_s)
    return LiveServer(await aiohttp_client(app), app, bus)


@pytest.fixture
async def stage(aiohttp_client: Any) -> LiveServer:
    return await _server(aiohttp_client)


async def _expert(server: LiveServer, peers: list[Any]) -> Robot:
    robot = Robot(videos=1, audio=True)
    peers.append(robot)
    await robot.publish(server.client, SESSION, token("whip", SESSION, "expert", person_id=EXPERT))
    return robot


async def _speaker(server: LiveServer, peers: list[Any], person_id: int, bearer: str | None = None) -> Robot:
    robot = Robot(videos=1, audio=True, size=SPEAKER_SIZE)
    peers.append(robot)
    await robot.publish(
        server.client, SESSION, bearer or token("whip", SESSION, "speaker", person_id=person_id)
    )
    return robot


async def _viewer(server: LiveServer, peers: list[Any], person_id: int, **kwargs: Any) -> WatchingPeer:
    viewer = WatchingPeer(**kwargs)
    peers.append(viewer)
    await viewer.watch(server.client, SESSION, token("whep", SESSION, "learner", person_id=person_id))
    return viewer


def _room(server: LiveServer) -> Room:
    room = server.rooms.room(SESSION)
    assert room is not None
    return room


def _seated(server: LiveServer) -> dict[int, int | None]:
    """Stage seat → the person publishing in it."""
    return {seat: None if p is None else p.person_id for seat, p in _room(server).stage().items()}


def _starts_on_h264_keyframe(frames: list[Received]) -> bool:
    return frames[0].frame.keyframe and frames[0].frame.mime_type == H264


def _picture_size(frames: list[Received]) -> tuple[int, int]:
    """The size of the first picture, decoded here (the server never decodes)."""
    pictures = av.CodecContext.create("h264", "r").decode(av.Packet(frames[0].frame.data))
    return pictures[0].width, pictures[0].height


async def _post_whip(server: LiveServer, peers: list[Any], bearer: str, query: str = "") -> Any:
    robot = Robot(videos=1, audio=True)
    peers.append(robot)
    return await server.client.post(
        f"/whip/sessions/{SESSION}{query}", data=await robot.offer(), headers=sdp_headers(bearer)
    )


async def test_a_seven_line_viewer_receives_the_expert_and_the_speaker_and_a_three_line_viewer_still_works(
    stage: LiveServer, peers: list[Any]
) -> None:
    await _expert(stage, peers)
    await _speaker(stage, peers, ALICE)
    assert _seated(stage) == {1: ALICE, 2: None}
    publication = _room(stage).stage()[1]
    assert publication is not None
    assert publication.labels == ("stage1.video", "stage1.audio")
    full = await _viewer(stage, peers, 100, kinds=LAYOUT_KINDS)
    classic = await _viewer(stage, peers, 101, videos=2, audio=True)

    camera, stage1 = full.lines[LINE["camera"]], full.lines[LINE["stage1.video"]]
    await wait_until(lambda: len(camera) >= 10 and len(stage1) >= 10, timeout_s=15, message="both videos")
    await wait_until(lambda: len(full.lines[LINE["stage1.audio"]]) >= 10, timeout_s=5, message="stage audio")
    await wait_until(lambda: len(classic.lines[0]) >= 10, timeout_s=5, message="3-line viewer's camera")
    await wait_until(lambda: len(classic.lines[2]) >= 10, timeout_s=5, message="3-line viewer's audio")
    assert _starts_on_h264_keyframe(camera)
    assert _starts_on_h264_keyframe(stage1)
    assert _starts_on_h264_keyframe(classic.lines[0])
    assert full.lines[LINE["stage1.audio"]][0].frame.mime_type.lower() == "audio/opus"
    # Nothing is published on the screen or in seat 2: those m-lines stay silent.
    for label in ("screen", "stage2.video", "stage2.audio"):
        assert full.lines[LINE[label]] == [], label
    assert classic.lines[1] == []
    assert _picture_size(camera) == EXPERT_SIZE
    assert _picture_size(stage1) == SPEAKER_SIZE
    assert _picture_size(classic.lines[0]) == EXPERT_SIZE


async def test_a_viewer_already_watching_gets_a_speaker_from_a_keyframe_when_the_seat_goes_live(
    stage: LiveServer, peers: list[Any]
) -> None:
    await _expert(stage, peers)
    viewer = await _viewer(stage, peers, 100, kinds=LAYOUT_KINDS)
    await wait_until(lambda: len(viewer.lines[LINE["camera"]]) >= 5, timeout_s=15, message="expert frames")
    assert viewer.lines[LINE["stage1.video"]] == []

    started = time.monotonic()
    await _speaker(stage, peers, ALICE)
    stage1 = viewer.lines[LINE["stage1.video"]]
    await wait_until(lambda: len(stage1) >= 5, timeout_s=15, message="speaker frames")
    assert _starts_on_h264_keyframe(stage1)
    assert _picture_size(stage1) == SPEAKER_SIZE
    assert stage1[0].at - started < 5.0
    assert _room(stage).slots["stage1.video"].viewers == 1


async def test_speakers_fill_stage1_then_stage2_and_a_third_is_told_the_stage_is_full(
    stage: LiveServer, peers: list[Any]
) -> None:
    await _expert(stage, peers)
    await _speaker(stage, peers, ALICE)
    await _speaker(stage, peers, BOB)
    assert _seated(stage) == {1: ALICE, 2: BOB}

    resp = await _post_whip(stage, peers, token("whip", SESSION, "speaker", person_id=CAROL))
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "stage_full"
    assert error["details"] == {"stage_seats": 2}
    assert _seated(stage) == {1: ALICE, 2: BOB}


async def test_a_speaker_publishing_again_replaces_their_own_seat(
    stage: LiveServer, peers: list[Any]
) -> None:
    await _expert(stage, peers)
    await _speaker(stage, peers, ALICE)
    first = _room(stage).stage()[1]
    await _speaker(stage, peers, BOB)
    viewer = await _viewer(stage, peers, 100, kinds=LAYOUT_KINDS)
    await wait_until(lambda: len(viewer.lines[LINE["stage2.video"]]) >= 5, timeout_s=15, message="bob")

    again = await _speaker(stage, peers, BOB)  # Bob's page reconnects while his old publish lingers
    assert _seated(stage) == {1: ALICE, 2: BOB}
    bob = _room(stage).stage()[2]
    assert bob is not None
    assert f"/whip/resources/{bob.rid}" == again.location
    assert _room(stage).stage()[1] is first
    before = len(viewer.lines[LINE["stage2.video"]])
    await wait_until(
        lambda: len(viewer.lines[LINE["stage2.video"]]) >= before + 10, timeout_s=15, message="republished"
    )


@pytest.mark.parametrize(
    ("bearer", "query", "status", "code"),
    [
        pytest.param(token("whip", SESSION, "learner", CAROL), "", 403, "forbidden", id="learner-token"),
        pytest.param(
            token("whip", SESSION, "speaker", CAROL, expires_in_s=-1),
            "",
            401,
            "unauthenticated",
            id="expired-speaker-token",
        ),
        pytest.param(token("whep", SESSION, "learner", CAROL), "", 401, "unauthenticated", id="whep-token"),
        pytest.param(token("whip", SESSION, "speaker", CAROL), "?video=screen", 400, "invalid", id="screen"),
    ],
)
async def test_whip_refuses_learners_and_bad_speaker_publishes(
    stage: LiveServer, peers: list[Any], bearer: str, query: str, status: int, code: str
) -> None:
    await _expert(stage, peers)
    resp = await _post_whip(stage, peers, bearer, query)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    assert _seated(stage) == {1: None, 2: None}


async def test_a_speaker_cannot_open_a_room(stage: LiveServer, peers: list[Any]) -> None:
    resp = await _post_whip(stage, peers, token("whip", SESSION, "speaker", ALICE))
    assert resp.status == 404
    assert "not live" in (await resp.json())["error"]["message"]
    assert stage.rooms.room(SESSION) is None


async def test_speakers_do_not_keep_a_room_whose_expert_is_gone(
    aiohttp_client: Any, peers: list[Any]
) -> None:
    server = await _server(aiohttp_client, grace_s=0.5)
    expert = await _expert(server, peers)
    speaker = await _speaker(server, peers, ALICE)
    room = _room(server)
    await wait_until(lambda: room.slots["stage1.video"].frames_in > 0, timeout_s=15, message="speaker media")

    # A speaker leaving changes nothing for the room...
    assert speaker.location is not None
    resp = await server.client.delete(
        speaker.location, headers=sdp_headers(token("whip", SESSION, "speaker", person_id=ALICE))
    )
    assert resp.status == 200
    assert room.grace_task is None
    # ...and one still publishing does not hold the room once the expert is gone past the grace period.
    await _speaker(server, peers, BOB)
    await expert.close()
    await wait_until(lambda: server.rooms.room(SESSION) is None, timeout_s=15, message="room ended")
    assert [(t, d.get("reason")) for t, d in await server.events_until(2)] == [
        ("session.started", None),
        ("session.ended", "publisher_lost"),
    ]


async def test_the_expert_demoting_a_speaker_ends_their_publication_and_frees_the_seat(
    stage: LiveServer, peers: list[Any]
) -> None:
    client = stage.client
    await _expert(stage, peers)
    expert_ws = await client.ws_connect(
        f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'expert', EXPERT)}"
    )
    alice_ws = await client.ws_connect(
        f"/ws/sessions/{SESSION}?token={room_token(SESSION, 'learner', ALICE)}"
    )
    await receive_until(alice_ws, "welcome")
    await expert_ws.send_json({"type": "promote", "person_id": ALICE})
    promoted = await receive_until(alice_ws, "promoted")
    assert promoted["whip_url"] == f"/whip/sessions/{SESSION}"

    speaker = Robot(videos=1, audio=True, size=SPEAKER_SIZE)
    peers.append(speaker)
    await speaker.publish(client, SESSION, promoted["whip_token"])
    viewer = await _viewer(stage, peers, 100, kinds=LAYOUT_KINDS)
    stage1 = viewer.lines[LINE["stage1.video"]]
    await wait_until(lambda: len(stage1) >= 5, timeout_s=15, message="the speaker's video")
    assert _seated(stage) == {1: ALICE, 2: None}

    await expert_ws.send_json({"type": "demote", "person_id": ALICE})
    await receive_until(alice_ws, "demoted")
    await wait_until(lambda: _seated(stage) == {1: None, 2: None}, timeout_s=5, message="seat freed")
    assert not _room(stage).slots["stage1.video"].live
    assert speaker.location is not None
    resp = await client.delete(
        speaker.location, headers=sdp_headers(token("whip", SESSION, "speaker", person_id=ALICE))
    )
    assert resp.status == 404, "the demoted speaker's WHIP resource is gone"
    # Nor does the token of that promotion put them back on stage (it would still be valid minutes).
    again = Robot(videos=1, audio=True, size=SPEAKER_SIZE)
    peers.append(again)
    resp = await client.post(
        f"/whip/sessions/{SESSION}", data=await again.offer(), headers=sdp_headers(promoted["whip_token"])
    )
    assert resp.status == 403, await resp.text()
    assert "took you off the stage" in (await resp.json())["error"]["message"]
    assert _seated(stage) == {1: None, 2: None}

    # The freed seat takes the next speaker, and the viewer sees them without reconnecting.
    before = len(stage1)
    await _speaker(stage, peers, BOB)
    assert _seated(stage) == {1: BOB, 2: None}
    await wait_until(lambda: len(stage1) >= before + 5, timeout_s=15, message="the next speaker's video")
    assert stage.rooms.room(SESSION) is not None

    # Invited again, the new promotion's token admits her.
    await expert_ws.send_json({"type": "promote", "person_id": ALICE})
    invited = await receive_until(alice_ws, "promoted")
    await again.publish(client, SESSION, invited["whip_token"])
    assert _seated(stage) == {1: BOB, 2: ALICE}
    await alice_ws.close()
    await expert_ws.close()
