"""Real aiortc peers over 127.0.0.1: a robot lecturer publishes over WHIP, viewers watch over WHEP,
and the server forwards the publisher's encoded frames without decoding them."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import av

from streaming import rtc_adapter
from streaming.forwarding import H264, VP8
from streaming.rooms import Viewer
from tests.helpers import wait_until
from tests.integration.live.peers import LiveServerFactory, Robot, WatchingPeer, sdp_headers, token

SESSION = 7


async def _publish(server: Any, peers: list[Any], **robot_args: Any) -> Robot:
    robot = Robot(**robot_args)
    peers.append(robot)
    await robot.publish(server.client, SESSION, token("whip", SESSION, "expert", person_id=1))
    return robot


async def _watch(server: Any, peers: list[Any], person_id: int = 100) -> WatchingPeer:
    viewer = WatchingPeer()
    peers.append(viewer)
    await viewer.watch(server.client, SESSION, token("whep", SESSION, "learner", person_id=person_id))
    return viewer


async def test_a_publisher_reaches_two_viewers_as_forwarded_h264(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    await _publish(server, peers)
    viewers = [await _watch(server, peers, 100), await _watch(server, peers, 101)]

    for viewer in viewers:
        await wait_until(lambda v=viewer: v.count("video") >= 15, timeout_s=15, message="video frames")
        await wait_until(lambda v=viewer: v.count("audio") >= 15, timeout_s=5, message="audio frames")
        first = viewer.frames["video"][0].frame
        assert first.keyframe, "a viewer must start on a keyframe"
        assert first.mime_type == H264
        assert viewer.frames["audio"][0].frame.mime_type.lower() == "audio/opus"

    room = server.rooms.room(SESSION)
    assert room is not None
    assert room.slots["camera"].mime_type == H264
    assert room.slots["camera"].viewers == 2
    # Every viewer's senders run Lectern's forwarding loop instead of aiortc's, and it sent packets.
    for watcher in room.viewers.values():
        assert watcher.pc is not None
        loops = [getattr(t.sender, rtc_adapter.SENDER_RUN_RTP).__self__ for t in watcher.pc.getTransceivers()]
        assert all(isinstance(loop, rtc_adapter.ForwardingSender) for loop in loops), loops
        assert all(loop.packets > 0 for loop in loops)
    assert [t for t, _ in await server.events()] == ["session.started"]


async def test_a_vp8_publisher_is_forwarded_as_vp8(live_server: LiveServerFactory, peers: list[Any]) -> None:
    server = await live_server()
    await _publish(server, peers, video_codec=VP8, audio=False)
    viewer = await _watch(server, peers)

    await wait_until(lambda: viewer.count("video") >= 10, timeout_s=15, message="VP8 frames")
    assert {r.frame.mime_type for r in viewer.frames["video"]} == {VP8}
    assert viewer.frames["video"][0].frame.keyframe


async def test_a_late_viewer_gets_a_decodable_keyframe_within_a_second(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    robot = await _publish(server, peers, audio=False)
    room = server.rooms.room(SESSION)
    assert room is not None
    # Let the publisher's first keyframe go by: the late viewer needs a fresh one, asked for by PLI.
    await wait_until(lambda: room.slots["camera"].frames_in >= 45, timeout_s=15, message="publisher frames")
    keyframes_before = room.slots["camera"].keyframes_in

    viewer = await _watch(server, peers)
    await wait_until(lambda: viewer.count("video") >= 1, timeout_s=5, message="first frame")

    first = viewer.frames["video"][0]
    assert first.frame.keyframe
    assert first.at - viewer.posted_at < 1.0, f"first keyframe after {first.at - viewer.posted_at:.2f} s"
    assert room.slots["camera"].keyframes_in > keyframes_before, "the server asked the publisher for one"
    decoder = av.CodecContext.create("h264", "r")
    pictures = decoder.decode(av.Packet(first.frame.data))
    assert [(p.width, p.height) for p in pictures] == [(robot.tracks[0].width, robot.tracks[0].height)]


async def test_a_keyframe_request_reaches_the_publisher_when_its_latest_packet_was_a_retransmission(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    """Browsers probe bandwidth with padding on their RTX SSRC, in bursts at the start of a call, just
    when the recorder and the first viewers ask for keyframes. A PLI for the RTX SSRC is ignored by the
    sender, and a viewer or a recording waited for a keyframe that nobody was asked for."""
    server = await live_server()
    robot = await _publish(server, peers, audio=False)
    room = server.rooms.room(SESSION)
    assert room is not None
    await wait_until(lambda: room.slots["camera"].frames_in >= 10, timeout_s=15, message="publisher frames")
    (publisher,) = room.publishers.values()
    (receiver,) = [r for r in publisher.pc.getReceivers() if r.track.kind == "video"]
    arrived: list[tuple[float, Any]] = []
    rtc_adapter.observe_rtp(receiver, lambda packet: arrived.append((time.monotonic(), packet)))

    # The robot's camera pauses (no media packets), then its sender retransmits one packet over RTX.
    robot.tracks[0].hold()
    await wait_until(
        lambda: arrived and time.monotonic() - arrived[-1][0] > 0.3, timeout_s=5, message="media to pause"
    )
    (sender,) = robot.pc.getSenders()
    requests: list[float] = []
    forced = sender._send_keyframe
    sender._send_keyframe = lambda: (requests.append(time.monotonic()), forced())[-1]  # type: ignore[method-assign]
    await getattr(sender, rtc_adapter.SENDER_RETRANSMIT)(arrived[-1][1].sequence_number)
    await wait_until(lambda: arrived[-1][1].ssrc == sender._rtx_ssrc, timeout_s=5, message="the RTX packet")
    latest = max(receiver.getSynchronizationSources(), key=lambda s: s.timestamp)
    assert latest.source == sender._rtx_ssrc, "the server's most recent source is the RTX SSRC"

    # A late viewer needs a keyframe: the request must reach the robot's media sender.
    viewer = await _watch(server, peers)
    await wait_until(lambda: requests, timeout_s=3, message="the publisher to be asked for a keyframe")
    robot.tracks[0].resume()
    await wait_until(lambda: viewer.count("video") >= 1, timeout_s=5, message="the viewer's first frame")
    assert viewer.frames["video"][0].frame.keyframe


async def test_a_stalled_viewer_costs_bounded_memory_and_others_keep_receiving(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    await _publish(server, peers, audio=False)
    stalled = await _watch(server, peers, 100)
    healthy = await _watch(server, peers, 101)
    await wait_until(lambda: stalled.count() >= 5 and healthy.count() >= 5, timeout_s=15, message="frames")

    # The stalled viewer's server-side sender stops pulling frames from its queue.
    resource = server.rooms.resource(stalled.location.rsplit("/", 1)[1])  # type: ignore[union-attr]
    assert isinstance(resource, Viewer)
    blocked = asyncio.Event()
    queue = resource.queues["camera"]

    async def never() -> None:
        await blocked.wait()

    queue.get = never  # type: ignore[method-assign]
    room = server.rooms.room(SESSION)
    assert room is not None
    target = room.slots["camera"].frames_in + 3 * queue.max_frames
    sizes: list[int] = []

    def pushed_enough() -> bool:
        sizes.append(len(queue))
        return room.slots["camera"].frames_in >= target

    healthy_before = healthy.count()
    try:
        await wait_until(pushed_enough, timeout_s=30, interval_s=0.1, message="frames pushed past the stall")
    finally:
        blocked.set()

    assert max(sizes) <= queue.max_frames
    assert queue.stats.max_frames_seen <= queue.max_frames
    assert queue.bytes_queued <= queue.max_bytes
    assert queue.stats.dropped > 0
    assert queue.stats.resyncs > 0
    assert healthy.count() - healthy_before >= 2 * queue.max_frames


async def test_a_publisher_that_reconnects_within_the_grace_period_resumes_the_room(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server(grace_s=30.0)
    first = await _publish(server, peers, audio=False)
    viewer = await _watch(server, peers)
    await wait_until(lambda: viewer.count() >= 5, timeout_s=15, message="frames from the first publish")

    await first.close()  # gone without DELETE (a crashed tab)
    room = server.rooms.room(SESSION)
    assert room is not None
    await wait_until(lambda: not room.publishers, timeout_s=10, message="server noticing the publisher left")
    assert room.grace_task is not None
    # Frames of the first publish still in flight must not be mistaken for the resumed ones.
    await wait_until(
        lambda: time.monotonic() - viewer.frames["video"][-1].at > 0.3, timeout_s=5, message="quiet"
    )
    before = viewer.count()

    second = await _publish(server, peers, audio=False)
    await wait_until(lambda: viewer.count() >= before + 10, timeout_s=15, message="frames after republish")
    # The client's jitter buffer releases the old publisher's last frame only when the next one
    # arrives; the republished frames come after a gap (timestamps are rebased past the pause).
    old_last = viewer.frames["video"][before - 1].frame.timestamp
    resumed = [r for r in viewer.frames["video"][before:] if r.frame.timestamp > old_last + 9000]
    assert resumed[0].frame.keyframe, "after a republish the viewer resumes on a keyframe"
    assert server.rooms.room(SESSION) is room
    assert room.grace_task is None
    assert [t for t, _ in await server.events()] == ["session.started"]
    assert second.location != first.location


async def test_the_room_ends_when_every_publisher_is_gone_past_the_grace_period(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server(grace_s=0.5)
    robot = await _publish(server, peers, audio=False)
    room = server.rooms.room(SESSION)
    assert room is not None
    await wait_until(lambda: room.slots["camera"].frames_in > 0, timeout_s=15, message="publisher connected")
    started = time.monotonic()
    await robot.close()
    await wait_until(lambda: server.rooms.room(SESSION) is None, timeout_s=15, message="room ended")
    assert time.monotonic() - started >= 0.5
    events = await server.events_until(2)
    assert [t for t, _ in events] == ["session.started", "session.ended"]
    assert events[1][1]["session_id"] == SESSION
    assert events[1][1]["reason"] == "publisher_lost"


async def test_the_expert_deleting_the_publish_ends_the_session(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server()
    robot = await _publish(server, peers, audio=False)
    viewer = await _watch(server, peers)
    await wait_until(lambda: viewer.count() >= 3, timeout_s=15, message="frames")

    resp = await server.client.delete(
        robot.location, headers={"Authorization": f"Bearer {token('whip', SESSION, 'expert', person_id=1)}"}
    )
    assert resp.status == 200
    assert server.rooms.room(SESSION) is None
    events = await server.events()
    assert [t for t, _ in events] == ["session.started", "session.ended"]
    assert set(events[0][1]) == {"session_id", "at"}
    assert events[1][1]["reason"] == "ended_by_expert"
    await wait_until(
        lambda: viewer.pc.connectionState in ("closed", "failed"), timeout_s=40, message="viewer disconnected"
    )
    late = WatchingPeer()
    peers.append(late)
    resp = await server.client.post(
        f"/whep/sessions/{SESSION}",
        data=await late.offer(),
        headers=sdp_headers(token("whep", SESSION, "learner")),
    )
    assert resp.status == 409  # not "not live yet": over, and the page shows it as such
    assert (await resp.json())["error"]["code"] == "session_ended"


async def test_viewers_beyond_the_seat_limit_are_sent_to_hls(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    server = await live_server(seat_limit=1)
    await _publish(server, peers, audio=False)
    await _watch(server, peers, 100)
    extra = WatchingPeer()
    peers.append(extra)
    resp = await server.client.post(
        f"/whep/sessions/{SESSION}",
        data=await extra.offer(),
        headers=sdp_headers(token("whep", SESSION, "learner", 101)),
    )
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "room_full"
    assert "HLS" in error["message"]
    assert error["details"]["hls_url"].endswith(".m3u8")


async def test_observing_rtp_without_delivery_counts_packets_and_frames_but_reassembles_nothing(
    live_server: LiveServerFactory, peers: list[Any]
) -> None:
    """The benchmarks' light viewer: every RTP packet is seen (sequence, timestamp) before the jitter
    buffer, and with deliver=False nothing reaches the jitter buffer or the frame tap."""
    server = await live_server()
    await _publish(server, peers)
    viewer = WatchingPeer(audio=False)
    seen: list[tuple[int, int]] = []
    rtc_adapter.observe_rtp(
        viewer.pc.getTransceivers()[0].receiver,
        lambda p: seen.append((p.sequence_number, p.timestamp)),
        deliver=False,
    )
    peers.append(viewer)
    await viewer.watch(server.client, SESSION, token("whep", SESSION, "learner", person_id=100))
    await wait_until(lambda: len({t for _, t in seen}) >= 15, timeout_s=15, message="15 frames of packets")
    steps = [(b - a) & 0xFFFF for (a, _), (b, _) in itertools.pairwise(seen)]
    assert steps.count(1) >= len(steps) - 2  # in order; loopback may at worst drop a packet or two
    assert viewer.count("video") == 0  # nothing was reassembled into frames
