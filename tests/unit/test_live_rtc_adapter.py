"""The aiortc/aioice internals streaming/rtc_adapter.py relies on, pinned: an aiortc upgrade that
renames or re-signs any of them fails here, loudly, instead of silently decoding or hanging live."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import inspect
import queue
import time
from fractions import Fraction
from importlib.metadata import version
from typing import Any

import aioice
import aioice.turn
import pytest
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    clock,
    rtcrtpreceiver,
    rtp,
)
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpParameters

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
    # send_pli maps an RTX SSRC among the sources to the media SSRC it repairs: aiortc notes every
    # packet's SSRC before unwrapping retransmissions, and keeps the mapping from the offer.
    assert isinstance(getattr(RTCRtpReceiver("video", _Transport()), rtc_adapter.RECEIVER_RTX_SSRC), dict)
    assert "self.__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc" in inspect.getsource(RTCRtpReceiver.receive)
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert handle.index("self.__active_ssrc[packet.ssrc] =") < handle.index("packet = unwrap_rtx(")


def test_the_sender_turns_pli_and_fir_into_send_keyframe() -> None:
    assert _params(getattr(RTCRtpSender, rtc_adapter.SENDER_KEYFRAME_HOOK)) == ["self"]
    source = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "RTCP_PSFB_FIR" in source
    assert "RTCP_PSFB_PLI" in source
    assert "self._send_keyframe()" in source


def test_receiver_reports_reach_the_sender_through_a_replaceable_method() -> None:
    # DeliveryProbe.watch() wraps the sender's RTCP handler on the instance: the DTLS transport looks
    # it up on each packet, and routes receiver reports to the sender named by each report block.
    assert _params(getattr(RTCRtpSender, rtc_adapter.SENDER_HANDLE_RTCP)) == ["self", "packet"]
    dtls = inspect.getsource(RTCDtlsTransport._handle_rtcp_data)
    assert "await recipient._handle_rtcp_packet(packet)" in dtls
    route = inspect.getsource(RtpRouter.route_rtcp)
    assert "add_recipient(self.senders.get(report.ssrc))" in route
    assert {f.name for f in dataclasses.fields(rtp.RtcpReceiverInfo)} >= {"ssrc", "highest_sequence"}


def test_the_sender_runs_its_rtp_loop_and_retransmissions_through_replaceable_methods() -> None:
    # ForwardingSender.install() puts its own loop and retransmit on the sender instance.
    send = inspect.getsource(RTCRtpSender.send)
    assert "asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))" in send
    assert "self.__rtp_header_extensions_map.configure(parameters)" in send
    assert "self.__rtx_payload_type = codec.payloadType" in send
    assert _params(getattr(RTCRtpSender, rtc_adapter.SENDER_RUN_RTP)) == ["self", "codec"]
    assert _params(getattr(RTCRtpSender, rtc_adapter.SENDER_RETRANSMIT)) == ["self", "sequence_number"]
    assert "await self._retransmit(seq)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    stop = inspect.getsource(RTCRtpSender.stop)
    assert "self.__rtp_started.wait()" in stop
    assert "self.__rtp_exited.wait()" in stop
    # What aiortc's own loop records for RTCP sender reports, which the replacement records too.
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count"):
        assert f"self.__{name}" in rtcp, name


async def test_the_private_sender_state_the_forwarding_loop_uses_exists() -> None:
    sender = RTCRtpSender("video", _Transport())
    private = {name: getattr(sender, attr) for name, attr in rtc_adapter.SENDER_PRIVATE.items()}
    assert isinstance(private["rtp_started"], asyncio.Event)
    assert isinstance(private["rtp_exited"], asyncio.Event)
    assert isinstance(private["extensions_map"], rtp.HeaderExtensionsMap)
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count", "rtx_sequence_number"):
        assert isinstance(private[name], int), name
    assert private["mid"] is None
    assert private["rtx_payload_type"] is None
    assert isinstance(sender._ssrc, int)
    assert isinstance(sender._rtx_ssrc, int)
    assert sender._enabled is True


def test_the_dtls_and_ice_internals_the_forwarding_loop_sends_through() -> None:
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "if self._state != State.CONNECTED:" in send_rtp
    assert "data = self._tx_srtp.protect(data)" in send_rtp
    assert "await self.transport._send(data)" in send_rtp
    assert "self.__tx_packets += 1" in send_rtp
    assert "self.__tx_bytes += len(data)" in send_rtp
    assert rtc_adapter.DTLS_TX_PACKETS == "_RTCDtlsTransport__tx_packets"
    assert rtc_adapter.DTLS_TX_BYTES == "_RTCDtlsTransport__tx_bytes"
    assert "self._send = self._connection.send" in inspect.getsource(RTCIceTransport)
    sendto = inspect.getsource(aioice.Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "await active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert (
        inspect.getsource(aioice.ice.StunProtocol.send_data)
        .rstrip()
        .endswith("self.transport.sendto(data, addr)")
    )
    assert isinstance(getattr(aioice.Connection(ice_controlling=False), rtc_adapter.ICE_NOMINATED), dict)
    # A relay pair's protocol is a StunProtocol too, over a TurnTransport whose sendto is synchronous.
    assert not inspect.iscoroutinefunction(aioice.turn.TurnTransport.sendto)
    assert "StunProtocol(self)" in inspect.getsource(aioice.Connection.get_component_candidates)


@pytest.mark.parametrize(
    ("extensions", "mid"),
    [
        ({"mid": 1, "abs": 3}, "0"),
        ({"mid": 4, "abs": 2}, "video-12"),
        ({"mid": 1}, "1"),
        ({}, "0"),
    ],
    ids=["mid+abs-send-time", "other-ids", "mid-only", "none"],
)
def test_header_layout_writes_the_bytes_aiortc_serializes(extensions: dict[str, int], mid: str) -> None:
    uris = {
        "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
        "abs": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    }
    extensions_map = rtp.HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uris[k]) for k, i in extensions.items()
            ]
        )
    )
    layout = rtc_adapter.HeaderLayout.of(extensions_map, mid)
    assert layout.has_abs_send_time == ("abs" in extensions)
    for marker, abs_send_time in ((0, 0x123456), (1, 0xFEDCBA)):
        expected = rtp.RtpPacket(payload_type=102, sequence_number=65535, timestamp=4_000_000_000, ssrc=77)
        expected.marker = marker
        expected.payload = b"payload"
        expected.extensions.mid = mid
        expected.extensions.abs_send_time = abs_send_time
        ours = layout.header(102 | (marker << 7), 65535, 4_000_000_000, 77, layout.extension(abs_send_time))
        assert ours + b"payload" == expected.serialize(extensions_map)


def test_ntp_time_matches_aiortcs_clock() -> None:
    now = time.time()
    ntp = rtc_adapter.ntp_time(now)
    theirs = clock.datetime_to_ntp(datetime.datetime.fromtimestamp(now, datetime.UTC))
    assert abs(ntp - theirs) < (1 << 32) // 100_000  # within 10 µs (datetime keeps microseconds)


@pytest.mark.parametrize(
    ("mime", "clock_rate", "shared"),
    [("video/H264", 90_000, True), ("audio/opus", 48_000, True), ("video/VP8", 90_000, False)],
    ids=["h264", "opus", "vp8"],
)
def test_payloads_are_cut_once_per_frame_for_every_viewer_except_vp8(
    mime: str, clock_rate: int, shared: bool
) -> None:
    data = {
        "video/H264": b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00\x00\x00\x01\x65" + bytes(5000),
        "video/VP8": b"\x10\x02\x00\x9d\x01\x2a" + bytes(5000),
        "audio/opus": b"\xfc" + bytes(80),
    }[mime]
    frame = EncodedFrame(mime.split("/")[0], mime, data, 90_000, clock_rate, keyframe=True)
    codec = RTCRtpCodecParameters(mimeType=mime, clockRate=clock_rate, payloadType=96)
    first, second = rtc_adapter.payload_cutter(codec), rtc_adapter.payload_cutter(codec)  # two viewers
    a, b = first(frame), second(frame)
    assert (a is b) == shared
    if mime == "video/VP8":  # the picture ids differ per sender; the cut does not
        assert [len(p) for p in a] == [len(p) for p in b]
        assert sum(len(p) for p in a) > len(data)
    else:
        packet = rtc_adapter.av_packet(frame)
        assert a == get_encoder(codec).pack(packet)[0]  # what aiortc's own sender would send


def test_aioice_gathers_through_an_overridable_instance_method() -> None:
    connection = aioice.Connection(ice_controlling=False)
    for name in rtc_adapter.ICE_CONNECTION_PRIVATE:
        assert hasattr(connection, name), name
    assert _params(connection.get_component_candidates) == ["component", "addresses", "timeout"]
    gather = inspect.getsource(aioice.Connection.gather_candidates)
    assert "get_host_addresses(" in gather
    assert "if self._transport_policy == TransportPolicy.ALL:" in gather


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
