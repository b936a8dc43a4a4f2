"""The forwarding sender (rtc_adapter.ForwardingSender), which replaces aiortc's RTP loop for viewers,
against a real aiortc viewer over loopback: what arrives is the RTP aiortc itself would have sent
(headers, extensions, markers, timestamps, reassembled frames), NACKs are answered with RTX from its
history, RTCP sender reports carry its counters, and a server that may only relay sends through TURN."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCSessionDescription, rtp

from infra.ice import IceServer
from streaming import rtc_adapter
from streaming.forwarding import EncodedFrame, FrameQueue
from tests.helpers import wait_until
from tests.integration.live.conftest import TurnServer

LOOPBACK = ("127.0.0.1",)
H264 = "video/H264"
NTP_OFFSET_S = 2_208_988_800


def h264_frame(n: int, size: int) -> bytes:
    """An Annex-B access unit (IDR for n == 0) whose bytes say which frame it is."""
    nal = b"\x65" if n == 0 else b"\x41"
    body = bytes((n + i) % 251 for i in range(size))
    return b"\x00\x00\x00\x01" + nal + body


@dataclass
class Link:
    """A server-side viewer connection (answer_viewer: video + audio PacketTracks) and a real aiortc
    viewer whose receivers record every RTP packet before the jitter buffer and every frame after it."""

    server: Any
    viewer: Any
    queues: list[FrameQueue]
    senders: list[RTCRtpSender]
    receivers: list[RTCRtpReceiver]
    packets: list[list[rtp.RtpPacket]] = field(default_factory=lambda: [[], []])
    frames: list[list[EncodedFrame]] = field(default_factory=lambda: [[], []])

    def loop(self, index: int) -> rtc_adapter.ForwardingSender:
        forwarding = getattr(self.senders[index], rtc_adapter.SENDER_RUN_RTP).__self__
        assert isinstance(forwarding, rtc_adapter.ForwardingSender)
        return forwarding


@contextlib.asynccontextmanager
async def connected(
    server_ice: Sequence[IceServer] = (), *, server_relay_only: bool = False
) -> AsyncIterator[Link]:
    viewer = rtc_adapter.make_peer_connection([])
    server = rtc_adapter.make_peer_connection(server_ice, relay_only=server_relay_only)
    try:
        receivers = []
        frames: list[list[EncodedFrame]] = [[], []]
        for index, kind in enumerate(("video", "audio")):
            transceiver = viewer.addTransceiver(kind, direction="recvonly")
            rtc_adapter.tap_receiver(transceiver.receiver, frames[index].append)
            receivers.append(transceiver.receiver)
        rtc_adapter.restrict_host_addresses(viewer, LOOPBACK)
        await viewer.setLocalDescription(await viewer.createOffer())
        offer = viewer.localDescription.sdp
        queues = [
            FrameQueue("video", mime_type=H264, max_frames=60, max_bytes=1 << 22),
            FrameQueue("audio", mime_type="audio/opus", max_frames=60, max_bytes=1 << 20),
        ]
        tracks = [rtc_adapter.PacketTrack(q.kind, q) for q in queues]
        answer, codecs = await rtc_adapter.answer_viewer(
            server, rtc_adapter.parse_offer(offer), offer, LOOPBACK, [[H264]], tracks, [lambda: None] * 2
        )
        assert codecs == [H264, "audio/opus"]
        await viewer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_until(lambda: server.connectionState == "connected", timeout_s=15, message="connected")
        senders = [t.sender for t in server.getTransceivers()]
        result = Link(server, viewer, queues, senders, receivers, frames=frames)
        for receiver, packets in zip(receivers, result.packets, strict=True):
            rtc_adapter.observe_rtp(receiver, packets.append)
        yield result
    finally:
        await viewer.close()
        await server.close()


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    async with connected() as result:
        yield result


def _push_lecture(link: Link, frames: int, *, start: int = 0) -> list[bytes]:
    """Video frames of 1..4 packets every 1/30 s of media time and Opus packets every 20 ms."""
    sent = []
    for n in range(start, start + frames):
        data = h264_frame(n, 600 + 1100 * (n % 4))
        sent.append(data)
        link.queues[0].offer(EncodedFrame("video", H264, data, n * 3000, 90_000, keyframe=n == 0))
        opus = bytes([n % 256]) * 40
        link.queues[1].offer(EncodedFrame("audio", "audio/opus", opus, n * 960, 48_000, keyframe=True))
    return sent


async def test_viewers_receive_the_rtp_aiortc_would_send_and_reassemble_the_frames(link: Link) -> None:
    sent = _push_lecture(link, 40)
    await wait_until(lambda: len(link.frames[0]) >= 39, timeout_s=10, message="video frames reassembled")
    await wait_until(lambda: len(link.packets[1]) >= 40, timeout_s=10, message="audio packets")

    # Frames come out of the viewer's jitter buffer and depacketizer exactly as they went in (its
    # audio jitter buffer keeps the last few packets until more arrive).
    assert len(link.frames[1]) >= 30
    assert [f.data for f in link.frames[0]] == sent[: len(link.frames[0])]
    assert [f.data for f in link.frames[1]] == [bytes([n]) * 40 for n in range(len(link.frames[1]))]

    for index, (sender, packets) in enumerate(zip(link.senders, link.packets, strict=True)):
        mid = link.server.getTransceivers()[index].mid
        assert {p.ssrc for p in packets} == {sender._ssrc}
        assert len({p.payload_type for p in packets}) == 1
        sequence = [p.sequence_number for p in packets]
        assert sequence == [(sequence[0] + i) & 0xFFFF for i in range(len(sequence))], "no gap, no reorder"
        assert all(p.extensions.mid == mid for p in packets)
        if index == 0:  # aiortc negotiates abs-send-time for video only
            now_abs = int((time.time() + NTP_OFFSET_S) * (1 << 18)) & 0xFFFFFF
            for p in packets:
                assert p.extensions.abs_send_time is not None
                assert (now_abs - p.extensions.abs_send_time) & 0xFFFFFF < 10 << 18, "sent within 10 s"
        else:
            assert all(p.extensions.abs_send_time is None for p in packets)
        # One timestamp per frame, advancing by the frame's duration; the marker ends each frame.
        step = 3000 if index == 0 else 960
        groups = _groups(packets)
        assert len(groups) == 40
        stamps = [group[0].timestamp for group in groups]
        assert all((b - a) & 0xFFFFFFFF == step for a, b in itertools.pairwise(stamps))
        for group in groups:
            assert [p.marker for p in group] == [0] * (len(group) - 1) + [1]
    assert max(len(g) for g in _groups(link.packets[0])) >= 3, "some frames span several packets"
    assert link.loop(0).packets == len(link.packets[0])
    assert link.loop(1).packets == len(link.packets[1])


def _groups(packets: list[rtp.RtpPacket]) -> list[list[rtp.RtpPacket]]:
    groups: dict[int, list[rtp.RtpPacket]] = {}
    for p in packets:
        groups.setdefault(p.timestamp, []).append(p)
    return list(groups.values())


async def test_a_nack_is_answered_with_rtx_from_the_history(link: Link) -> None:
    _push_lecture(link, 10)
    loop = link.loop(0)
    # Every packet of the ten frames sent and received (nothing else is in flight on this track).
    await wait_until(
        lambda: not link.queues[0] and loop.packets >= 10 and len(link.packets[0]) == loop.packets,
        timeout_s=10,
        message="all video packets",
    )
    sender, original = link.senders[0], link.packets[0][5]
    rtx_payload_type = getattr(sender, rtc_adapter.SENDER_PRIVATE["rtx_payload_type"])
    assert rtx_payload_type is not None, "aiortc negotiates RTX for video"
    count = len(link.packets[0])

    # The viewer reports the packet lost, as its NACK generator does, over SRTCP.
    await link.receivers[0]._send_rtcp_nack(sender._ssrc, [original.sequence_number])

    await wait_until(lambda: len(link.packets[0]) > count, timeout_s=5, message="the retransmission")
    resent = link.packets[0][count]
    assert (resent.ssrc, resent.payload_type) == (sender._rtx_ssrc, rtx_payload_type)
    restored = rtp.unwrap_rtx(resent, payload_type=original.payload_type, ssrc=sender._ssrc)
    assert (restored.sequence_number, restored.timestamp) == (original.sequence_number, original.timestamp)
    assert restored.payload == original.payload

    # A packet that has left the history (or never was) is not answered: nothing goes out for it.
    transport = sender.transport
    sent_rtp: list[bytes] = []
    send_rtp = transport._send_rtp

    async def recording(data: bytes) -> None:
        if not rtp.is_rtcp(data):
            sent_rtp.append(data)
        await send_rtp(data)

    transport._send_rtp = recording
    await loop.retransmit((original.sequence_number - 500) & 0xFFFF)
    assert sent_rtp == []
    await loop.retransmit(original.sequence_number)
    assert len(sent_rtp) == 1


async def test_rtcp_sender_reports_and_stats_carry_the_forwarding_counters(link: Link) -> None:
    _push_lecture(link, 30)
    await wait_until(lambda: len(link.packets[1]) >= 30, timeout_s=10, message="audio packets")

    async def reported() -> int:
        stats = await link.receivers[1].getStats()
        sent = [s.packetsSent for s in stats.values() if s.type == "remote-outbound-rtp"]
        return sent[0] if sent else 0

    # aiortc's RTCP loop sends a report every 0.5-1.5 s from what the forwarding loop recorded.
    packets = await wait_until(reported, timeout_s=10, message="an RTCP sender report")
    assert 0 < packets <= link.loop(1).packets
    outbound = [s for s in (await link.senders[1].getStats()).values() if s.type == "outbound-rtp"]
    assert 0 < outbound[0].packetsSent <= 30
    transport = [s for s in (await link.senders[1].getStats()).values() if s.type == "transport"]
    assert transport[0].packetsSent >= outbound[0].packetsSent


async def test_the_forwarding_sender_sends_through_a_turn_relay(turn_server: TurnServer) -> None:
    # A server that may only use relay candidates: its packets go through coturn (TURN's send_data).
    async with connected(turn_server.credentials("lectern"), server_relay_only=True) as link:
        sent = _push_lecture(link, 20)
        await wait_until(lambda: len(link.frames[0]) >= 19, timeout_s=10, message="video through the relay")
        assert [f.data for f in link.frames[0]] == sent[: len(link.frames[0])]
        assert link.loop(0).relayed
        assert link.loop(1).relayed
