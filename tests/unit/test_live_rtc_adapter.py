"""The aiortc/aioice internals streaming/rtc_adapter.py relies on, pinned: an aiortc upgrade that
renames or re-signs any of them fails here, loudly, instead of silently decoding or hanging live."""

from __future__ import annotations

import asyncio
import inspect
import queue
from fractions import Fraction
from importlib.metadata import version
from typing import Any

import aioice
import pytest
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    rtcrtpreceiver,
    rtcrtpsender,
)
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from streaming import rtc_adapter
from streaming.forwarding import EncodedFrame, FrameQueue


class _Transport:
    state = "new"


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_aiortc_is_the_version_the_adapter_was_written_for() -> None:
    assert version("aiortc").startswith("1.16."), "re-check every hook below, then update this pin"


def test_the_receiver_hands_encoded_frames_to_a_private_decoder_queue() -> None:
    receiver = RTCRtpReceiver("video", _Transport())
    assert isinstance(getattr(receiver, rtc_adapter.RECEIVER_DECODER_QUEUE), queue.Queue)
    assert getattr(receiver, rtc_adapter.RECEIVER_STARTED) is False
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    assert "encoded_frame.timestamp = self.__timestamp_mapper.map(" in handle
    receive = inspect.getsource(RTCRtpReceiver.receive)
    assert "self.__decoder_queue," in receive, "the decoder thread must get the queue at receive()"
    stop = inspect.getsource(rtcrtpreceiver.RTCRtpReceiver)
    assert "self.__decoder_queue.put(None)" in stop, "stopping must still send the sentinel through put()"
    assert _params(rtcrtpreceiver.decoder_worker) == ["loop", "input_q", "output_q", "decode_error"]
    frame = JitterFrame(data=b"x", timestamp=1)
    assert (frame.data, frame.timestamp) == (b"x", 1)


def test_the_receiver_sends_pli_for_a_media_ssrc() -> None:
    assert _params(getattr(RTCRtpReceiver, rtc_adapter.RECEIVER_SEND_PLI)) == ["self", "media_ssrc"]
    assert inspect.iscoroutinefunction(getattr(RTCRtpReceiver, rtc_adapter.RECEIVER_SEND_PLI))
    assert _params(RTCRtpReceiver.getSynchronizationSources) == ["self"]


def test_the_sender_turns_pli_and_fir_into_send_keyframe() -> None:
    assert _params(getattr(RTCRtpSender, rtc_adapter.SENDER_KEYFRAME_HOOK)) == ["self"]
    source = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "RTCP_PSFB_FIR" in source
    assert "RTCP_PSFB_PLI" in source
    assert "self._send_keyframe()" in source
    assert "self.__encoder.pack(data)" in inspect.getsource(rtcrtpsender.RTCRtpSender._next_encoded_frame)


def test_the_sender_keeps_its_encoder_where_shared_packetization_replaces_it() -> None:
    source = inspect.getsource(rtcrtpsender.RTCRtpSender._next_encoded_frame)
    # recv() then pack() with no await between: SharedH264Packer relies on that order.
    recv_at, pack_at = source.index("await self.__track.recv()"), source.index("self.__encoder.pack(data)")
    assert recv_at < pack_at
    between = source[recv_at + len("await self.__track.recv()") : pack_at]
    # The only await between them is the encode of decoded frames (a branch packets never take).
    assert between.count("await") == 1
    assert "await self.__loop.run_in_executor(\n                None, self.__encoder.encode" in between
    assert rtc_adapter.SENDER_ENCODER == "_RTCRtpSender__encoder"
    assert "self.__encoder = get_encoder(codec)" in source


async def test_an_h264_frame_is_packetized_once_for_every_viewer() -> None:
    data = b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00\x00\x00\x01\x65" + bytes(5000)
    frame = EncodedFrame("video", "video/H264", data, 90_000, 90_000, keyframe=True)
    codec = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90_000, payloadType=96)
    results = []
    for _ in range(2):  # two viewers of one slot get the same EncodedFrame object
        frames = FrameQueue("video", mime_type="video/H264", max_frames=4, max_bytes=1 << 20)
        frames.waiting_for_keyframe = False
        frames.offer(frame)
        track = rtc_adapter.PacketTrack("video", frames)
        packer = rtc_adapter.SharedH264Packer(get_encoder(codec), track)  # type: ignore[arg-type]
        results.append(packer.pack(await track.recv()))
        track.stop()
    assert results[0] is results[1]  # the second viewer reused the first one's payloads
    assert results[0] == get_encoder(codec).pack(frame.media)  # and they are what pack() cuts


def test_aioice_gathers_through_an_overridable_instance_method() -> None:
    connection = aioice.Connection(ice_controlling=False)
    for name in rtc_adapter.ICE_CONNECTION_PRIVATE:
        assert hasattr(connection, name), name
    assert _params(connection.get_component_candidates) == ["component", "addresses", "timeout"]
    assert "get_host_addresses(" in inspect.getsource(aioice.Connection.gather_candidates)


@pytest.mark.parametrize(
    ("mime", "clock_rate"),
    [("video/H264", 90_000), ("video/VP8", 90_000), ("audio/opus", 48_000)],
    ids=["h264", "vp8", "opus"],
)
async def test_packet_track_packets_are_packed_without_encoding(mime: str, clock_rate: int) -> None:
    data = (
        b"\x00\x00\x00\x01\x65" + bytes(3000)
        if mime == "video/H264"
        else b"\x10\x02\x00\x9d\x01\x2a" + bytes(3000)
    )
    frames = FrameQueue(mime.split("/")[0], mime_type=mime, max_frames=4, max_bytes=1 << 20)
    frames.waiting_for_keyframe = False
    frames.offer(EncodedFrame(mime.split("/")[0], mime, data, 123_456, clock_rate, keyframe=True))
    track = rtc_adapter.PacketTrack(mime.split("/")[0], frames)
    packet = await track.recv()
    assert packet.time_base == Fraction(1, clock_rate)
    codec = RTCRtpCodecParameters(mimeType=mime, clockRate=clock_rate, payloadType=96)
    payloads, timestamp = get_encoder(codec).pack(packet)
    assert timestamp == 123_456  # pts in 1/clock_rate is already the codec's RTP clock
    assert sum(len(p) for p in payloads) >= len(data) - 4
    track.stop()


async def test_every_transceiver_of_a_peer_connection_shares_one_transport() -> None:
    # Max-bundle: under aiortc's "balanced" default a second audio m-line (a viewer's stage audio) rides
    # on the first audio's transport, which the answer's BUNDLE group then discards: it never sends.
    pc = rtc_adapter.make_peer_connection([])
    try:
        for kind in ("video", "video", "audio", "video", "audio"):
            pc.addTransceiver(kind, direction="recvonly")
        transports = {id(t.receiver.transport) for t in pc.getTransceivers()}
        transports |= {id(t.sender.transport) for t in pc.getTransceivers()}
        assert len(transports) == 1
    finally:
        await pc.close()


async def test_peer_connections_use_no_default_stun_and_only_the_configured_host_addresses() -> None:
    pc = rtc_adapter.make_peer_connection([])
    try:
        pc.addTransceiver("video", direction="recvonly")
        rtc_adapter.restrict_host_addresses(pc, ["127.0.0.1"])
        connection = pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
        assert connection.stun_server is None
        assert connection.turn_server is None
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates
        assert all(" 127.0.0.1 " in line for line in candidates), candidates
    finally:
        await pc.close()


async def test_tap_receiver_refuses_a_started_receiver_and_keeps_the_stop_sentinel() -> None:
    receiver = RTCRtpReceiver("video", _Transport())
    got: list[EncodedFrame] = []
    rtc_adapter.tap_receiver(receiver, got.append)
    tap = getattr(receiver, rtc_adapter.RECEIVER_DECODER_QUEUE)
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
    tap.put((codec, JitterFrame(data=b"\x10\x02\x00\x9d\x01\x2a" + bytes(10), timestamp=3000)))
    assert [(f.mime_type, f.timestamp, f.keyframe) for f in got] == [("video/VP8", 3000, True)]
    tap.put(None)
    assert tap.get_nowait() is None
    setattr(receiver, rtc_adapter.RECEIVER_STARTED, True)
    with pytest.raises(RuntimeError):
        rtc_adapter.tap_receiver(receiver, got.append)


def test_mdns_candidates_are_dropped_from_remote_offers() -> None:
    sdp = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "a=candidate:1 1 udp 2122260223 0b7c4c1e-1b1e-4c1e-9c1e-1b1e4c1e9c1e.local 5000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 127.0.0.1 5001 typ host\r\n"
    )
    out = rtc_adapter.strip_mdns_candidates(sdp)
    assert ".local" not in out
    assert "127.0.0.1 5001" in out


async def test_a_pc_answers_an_offer_with_h264_first_when_offered(peers_closed: list[Any]) -> None:
    offerer = rtc_adapter.make_peer_connection([])
    peers_closed.append(offerer)
    offerer.addTransceiver("video", direction="sendonly")
    rtc_adapter.restrict_host_addresses(offerer, ["127.0.0.1"])
    await offerer.setLocalDescription(await offerer.createOffer())
    offer = offerer.localDescription.sdp
    offered = rtc_adapter.parse_offer(offer)
    assert offered[0].codecs[0] == "video/VP8", "aiortc offers VP8 first: the answer must reorder"

    answerer = rtc_adapter.make_peer_connection([])
    peers_closed.append(answerer)
    answer, _ = await rtc_adapter.answer_publisher(
        answerer, offered, offer, ["127.0.0.1"], ["video/H264", "video/VP8"], [lambda f: None]
    )
    assert rtc_adapter.answer_codec(answerer, 0) == "video/H264"
    assert "a=candidate" in answer, "the answer carries its candidates (no trickle)"
    await offerer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


@pytest.fixture
async def peers_closed() -> Any:
    pcs: list[RTCPeerConnection] = []
    yield pcs
    await asyncio.gather(*(pc.close() for pc in pcs))
