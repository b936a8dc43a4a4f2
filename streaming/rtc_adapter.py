"""The only module that touches aiortc (and its private internals): peer connections restricted to
configured ICE servers and host addresses, SDP checks, encoded frames tapped out of a receiver
without decoding, a sender track of pre-encoded packets, and keyframe requests in both directions.

aiortc is pinned (pyproject.toml); tests/unit/test_live_rtc_adapter.py fails loudly when a private
attribute or signature relied on here changes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import aioice
import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    rtp,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import get_encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.utils import random32

from infra.errors import Invalid
from infra.ice import IceServer
from streaming.forwarding import EncodedFrame, FrameQueue, is_keyframe

log = logging.getLogger(__name__)

# Private names this module relies on (checked by tests/unit/test_live_rtc_adapter.py).
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_STARTED = "_RTCRtpReceiver__started"
RECEIVER_SEND_PLI = "_send_rtcp_pli"
RECEIVER_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"  # {RTX SSRC: the media SSRC it repairs}, from the offer
SENDER_KEYFRAME_HOOK = "_send_keyframe"
# Where a sender gets the RTCP its viewer sends (receiver reports among it): DeliveryProbe wraps it.
SENDER_HANDLE_RTCP = "_handle_rtcp_packet"
# The forwarding sender replaces these two methods of each viewer's RTCRtpSender...
SENDER_RUN_RTP = "_run_rtp"
SENDER_RETRANSMIT = "_retransmit"
# ...and reads or writes these of its private state, as aiortc's own _run_rtp does.
SENDER_PRIVATE = {
    name: f"_RTCRtpSender__{name}"
    for name in (
        "rtp_started",
        "rtp_exited",
        "mid",
        "ntp_timestamp",
        "rtp_timestamp",
        "octet_count",
        "packet_count",
        "rtx_payload_type",
        "rtx_sequence_number",
    )
} | {"extensions_map": "_RTCRtpSender__rtp_header_extensions_map"}
DTLS_STATE = "_state"
DTLS_TX_SRTP = "_tx_srtp"
DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"
DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
ICE_NOMINATED = "_nominated"
ICE_CONNECTION_PRIVATE = (
    "_local_candidates_start",
    "_local_candidates_end",
    "_local_candidates",
    "_components",
    "_transport_policy",
)

_CANDIDATE_RE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) ", re.IGNORECASE)

FrameSink = Callable[[EncodedFrame], None]
PeerConnection = RTCPeerConnection


# ---------------------------------------------------------------- peer connections and ICE


def make_peer_connection(ice_servers: Sequence[IceServer], *, relay_only: bool = False) -> RTCPeerConnection:
    """A peer connection that uses only the configured ICE servers: an empty list means none, never
    aiortc's default (a public STUN server). `relay_only` gathers TURN relay candidates only.

    Max-bundle: with aiortc's default ("balanced"), a second transceiver of a kind created before the
    remote description rides on that kind's first transport, and when the BUNDLE group later moves the
    first one onto the primary transport the second stays behind on a discarded transport and never
    sends (e.g. a viewer's stage audio m-lines). WHIP and WHEP peers bundle everything anyway.
    """
    servers = [RTCIceServer(urls=s.url, username=s.username, credential=s.credential) for s in ice_servers]
    config = RTCConfiguration(
        iceServers=servers,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
    )
    return RTCPeerConnection(config)


def restrict_host_addresses(pc: RTCPeerConnection, host_addresses: Sequence[str]) -> None:
    """Make every ICE agent of `pc` gather host candidates on `host_addresses` only (all interfaces,
    aioice's default, if empty).

    aioice's module-level get_host_addresses() skips 127.0.0.1; rather than patch it for the whole
    process, each Connection's gather_candidates is replaced on the instance. Call this after the
    transceivers exist and before setLocalDescription (which gathers).
    """
    addresses = tuple(host_addresses)
    if not addresses:
        return
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        if "gather_candidates" not in connection.__dict__:
            setattr(connection, "gather_candidates", _gather_on(connection, addresses))  # noqa: B010


def _gather_on(connection: Any, addresses: tuple[str, ...]) -> Callable[[], Any]:
    async def gather_candidates() -> None:
        # Mirrors aioice.Connection.gather_candidates with our address list; as there, the relay
        # transport policy gathers no host (or server-reflexive) candidate, only TURN relays.
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        hosts = list(addresses) if connection._transport_policy == aioice.TransportPolicy.ALL else []
        coros = [
            connection.get_component_candidates(component=component, addresses=hosts)
            for component in sorted(connection._components)
        ]
        for candidates in await asyncio.gather(*coros):
            connection._local_candidates += candidates
        connection._local_candidates_end = True

    return gather_candidates


def on_connection_state(pc: RTCPeerConnection, callback: Callable[[str], None]) -> None:
    """Call `callback(state)` on each connectionState change ("connected", "failed", "closed"...)."""

    @pc.on("connectionstatechange")
    def _changed() -> None:
        callback(pc.connectionState)


# ---------------------------------------------------------------- SDP


@dataclass(frozen=True)
class OfferedMedia:
    index: int
    kind: str  # "audio" | "video"
    mid: str
    direction: str
    codecs: tuple[str, ...]  # mime types, in the offer's order
    content: str | None  # RFC 4796 a=content value, e.g. "slides"


def strip_mdns_candidates(sdp: str) -> str:
    """Drop remote a=candidate lines naming mDNS `.local` hosts (resolving them would multicast)."""
    out = []
    for line in sdp.splitlines():
        match = _CANDIDATE_RE.match(line)
        if match and match.group(1).lower().endswith(".local"):
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def parse_offer(sdp: str) -> list[OfferedMedia]:
    """The offer's audio/video m-lines, or Invalid naming what is wrong with it."""
    text = sdp.strip()
    if not text.startswith("v=0"):
        raise Invalid("malformed SDP: it must start with 'v=0'", field="sdp")
    if "\nm=" not in text:
        raise Invalid("malformed SDP: no media (m=) line", field="sdp")
    try:
        description = aiortc_sdp.SessionDescription.parse(text + "\r\n")
    except Exception as exc:  # aiortc's parser raises assorted errors on garbage
        raise Invalid(f"malformed SDP: {type(exc).__name__}: {exc}", field="sdp") from None
    media: list[OfferedMedia] = []
    for index, m in enumerate(description.media):
        if m.kind not in ("audio", "video"):
            raise Invalid(f"m-line {index} is {m.kind!r}: only audio and video are accepted", field="sdp")
        if not m.rtp.muxId:
            raise Invalid(f"m-line {index} has no a=mid", field="sdp")
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise Invalid(f"m-line {index} lacks a=ice-ufrag / a=ice-pwd", field="sdp")
        if m.dtls is None or not m.dtls.fingerprints:
            raise Invalid(f"m-line {index} lacks a DTLS a=fingerprint", field="sdp")
        if not m.rtp.codecs:
            raise Invalid(f"m-line {index} offers no codec (a=rtpmap)", field="sdp")
        content = next((v for k, v in _media_attrs(text, index) if k == "content"), None)
        media.append(
            OfferedMedia(
                index=index,
                kind=m.kind,
                mid=m.rtp.muxId,
                direction=m.direction or "sendrecv",
                codecs=tuple(c.mimeType for c in m.rtp.codecs),
                content=content,
            )
        )
    if not media:
        raise Invalid("malformed SDP: no audio or video m-line", field="sdp")
    return media


def _media_attrs(sdp: str, index: int) -> list[tuple[str, str]]:
    """The a=key:value attributes of m-line `index` (for attributes aiortc does not keep)."""
    attrs: list[tuple[str, str]] = []
    current = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            current += 1
        elif current == index and line.startswith("a="):
            key, _, value = line[2:].partition(":")
            attrs.append((key, value.strip()))
    return attrs


def answer_codec(pc: RTCPeerConnection, index: int) -> str | None:
    """The mime type the local answer chose first for m-line `index` (what a sender will send)."""
    description = pc.localDescription
    if description is None:
        return None
    media = aiortc_sdp.SessionDescription.parse(description.sdp).media
    if index >= len(media) or not media[index].rtp.codecs:
        return None
    return str(media[index].rtp.codecs[0].mimeType)


def _preferences(kind: str, mime_types: Sequence[str]) -> list[Any]:
    """Codec capabilities in the order of `mime_types` (each with every variant aiortc has), then RTX."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    wanted = [m.lower() for m in mime_types]
    ordered = [c for mime in wanted for c in caps if c.mimeType.lower() == mime]
    ordered += [c for c in caps if c.mimeType.lower() == f"{kind}/rtx"]
    return ordered


def _prepare_transceivers(
    pc: RTCPeerConnection,
    offered: Sequence[OfferedMedia],
    direction: str,
    video_codecs: Sequence[Sequence[str]],
    tracks: Sequence[MediaStreamTrack | None] = (),
) -> list[RTCRtpTransceiver]:
    # Created in the offer's m-line order with preferences set before setRemoteDescription: that is
    # when aiortc picks the codecs, and the only order that yields an answer with our preference.
    transceivers = []
    video_index = 0
    for i, media in enumerate(offered):
        track = tracks[i] if i < len(tracks) else None
        transceiver = pc.addTransceiver(track if track is not None else media.kind, direction=direction)
        if media.kind == "video":
            prefs = video_codecs[min(video_index, len(video_codecs) - 1)]
            video_index += 1
            transceiver.setCodecPreferences(_preferences("video", prefs))
        transceivers.append(transceiver)
    return transceivers


async def _answer(pc: RTCPeerConnection, offer_sdp: str, host_addresses: Sequence[str]) -> str:
    try:
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=strip_mdns_candidates(offer_sdp), type="offer")
        )
    except Exception as exc:  # aiortc raises ValueError/OperationError/InternalError on bad offers
        raise Invalid(f"cannot accept the SDP offer: {type(exc).__name__}: {exc}", field="sdp") from None
    restrict_host_addresses(pc, host_addresses)
    answer = await pc.createAnswer()
    # aiortc gathers all candidates inside setLocalDescription: the answer is complete (no trickle).
    await pc.setLocalDescription(answer)
    return str(pc.localDescription.sdp)


# ---------------------------------------------------------------- publisher side: tapping a receiver


class _TapQueue(queue.Queue):  # type: ignore[type-arg]
    """Stands in for a receiver's decoder queue: frames go to `sink` on the event loop, undecoded;
    only the stop sentinel (None) reaches the idle decoder thread so that it ends as usual."""

    def __init__(self, sink: Callable[[Any, Any], None]) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        codec, encoded_frame = item
        try:
            self._sink(codec, encoded_frame)
        except Exception:  # a bug in a sink must not kill aiortc's RTP handling for the peer
            log.exception("encoded frame sink failed")


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Deliver the receiver's reassembled encoded frames to `sink` instead of a decoder.

    Must be called before the receiver starts (i.e. before DTLS connects): the decoder thread is
    handed the queue when it starts. Timestamps are the receiver's (0 at its first frame).
    """
    if getattr(receiver, RECEIVER_STARTED):
        raise RuntimeError("tap_receiver() must be called before the receiver starts")

    def on_frame(codec: Any, encoded_frame: Any) -> None:
        mime = str(codec.mimeType)
        data = bytes(encoded_frame.data)
        sink(
            EncodedFrame(
                kind=receiver.track.kind if receiver.track is not None else mime.split("/")[0],
                mime_type=mime,
                data=data,
                timestamp=int(encoded_frame.timestamp),
                clock_rate=int(codec.clockRate),
                keyframe=is_keyframe(mime, data),
            )
        )

    setattr(receiver, RECEIVER_DECODER_QUEUE, _TapQueue(on_frame))


async def send_pli(receiver: RTCRtpReceiver) -> bool:
    """Ask the publisher for a keyframe: RTCP PLI for the media SSRC it sent most recently; False if none
    is known yet.

    The receiver's synchronization sources include RTX SSRCs (aiortc notes a packet's SSRC before it
    unwraps a retransmission), and browsers send padding on their RTX SSRC to probe bandwidth, in bursts
    at the start of a call. A PLI for an RTX SSRC is ignored by the sender (Chromium and aiortc act on
    their media SSRC only), so a recent RTX SSRC is mapped to the media SSRC it repairs."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    repairs: dict[int, int] = getattr(receiver, RECEIVER_RTX_SSRC)
    latest = max(sources, key=lambda s: s.timestamp).source
    await getattr(receiver, RECEIVER_SEND_PLI)(repairs.get(latest, latest))
    return True


# ---------------------------------------------------------------- viewer side: sending packets


class PacketTrack(MediaStreamTrack):
    """A viewer's track of already-encoded frames from a FrameQueue. Its sender does not pull it
    through recv(): forward_packets() replaces the sender's RTP loop with ForwardingSender, which reads
    `frames` directly. recv() serves anything else that consumes the track as a media track."""

    def __init__(self, kind: str, frames: FrameQueue) -> None:
        super().__init__()
        self.kind = kind
        self.frames = frames

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.frames.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return av_packet(frame)

    def stop(self) -> None:
        self.frames.close()
        super().stop()


def av_packet(frame: EncodedFrame) -> av.Packet[Any]:
    """The frame as an av.Packet (what aiortc's encoders pack()), built once and shared by every
    viewer of the slot, since they all send the same bytes with the same timestamp."""
    packet = frame.media
    if not isinstance(packet, av.Packet):
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.dts = frame.timestamp
        packet.time_base = Fraction(1, frame.clock_rate)
        frame.media = packet
    return packet


_RTP_FIXED_HEADER = struct.Struct("!BBHII")
_NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01
_MAX_ABS_SEND_TIME = 0xFFFFFF
# How often the forwarding sender records what RTCP sender reports and getStats() read (aiortc
# records it for every packet; reports go out about once a second).
_REPORT_INTERVAL_S = 0.1


def ntp_time(unix_s: float) -> int:
    """A wall-clock time as a 64-bit NTP timestamp (32.32 fixed point), as aiortc's clock makes it."""
    seconds = unix_s + _NTP_EPOCH_OFFSET_S
    whole = int(seconds)
    return (whole << 32) | int((seconds - whole) * (1 << 32))


@dataclass(frozen=True, slots=True)
class HeaderLayout:
    """The RTP header a sender writes, minus what changes per packet: its first byte (version and
    extension bit) and its header extension block, split around the 3-byte abs-send-time value.
    Built from aiortc's own serializer, so the bytes are what aiortc would send."""

    first_byte: int
    before_abs: bytes  # extension header and elements up to the abs-send-time value
    after_abs: bytes  # the rest of the block (or all of it if abs-send-time is not negotiated)
    has_abs_send_time: bool

    @classmethod
    def of(cls, extensions_map: rtp.HeaderExtensionsMap, mid: str | None) -> HeaderLayout:
        def header(abs_send_time: int) -> bytes:
            packet = rtp.RtpPacket(payload_type=0)
            packet.extensions.mid = mid
            packet.extensions.abs_send_time = abs_send_time
            return packet.serialize(extensions_map)

        low, high = header(0), header(_MAX_ABS_SEND_TIME)
        differ = [i for i, (a, b) in enumerate(zip(low, high, strict=True)) if a != b]
        if not differ:
            return cls(low[0], b"", low[12:], False)
        at = differ[0]
        if differ != [at, at + 1, at + 2]:
            raise RuntimeError(f"unexpected RTP header layout from aiortc: {low.hex()} / {high.hex()}")
        return cls(low[0], low[12:at], low[at + 3 :], True)

    def header(
        self, marker_pt: int, sequence_number: int, timestamp: int, ssrc: int, extension: bytes
    ) -> bytes:
        """The whole header of one packet; `marker_pt` is the marker bit (0x80) | payload type."""
        return (
            _RTP_FIXED_HEADER.pack(self.first_byte, marker_pt, sequence_number, timestamp, ssrc) + extension
        )

    def extension(self, abs_send_time: int) -> bytes:
        if not self.has_abs_send_time:
            return self.after_abs
        return self.before_abs + (abs_send_time & _MAX_ABS_SEND_TIME).to_bytes(3, "big") + self.after_abs


class ForwardingSender:
    """Replaces an RTCRtpSender's RTP loop (`_run_rtp`) for a PacketTrack. Every viewer of a slot sends
    the same frame, so its payloads are cut once per slot (H.264, Opus; VP8's packetizer numbers
    pictures per sender, so it stays per sender); per frame the extension block is built once and the
    ICE pair looked up once; per packet only the fixed 12-byte header is packed, SRTP protects it and
    it goes straight to the pair's datagram transport. (aiortc's loop builds and serializes an RtpPacket
    with its extensions and awaits three layers of coroutines for every packet.)

    Kept from aiortc's loop for the rest of the sender: the counters of RTCP sender reports and
    getStats(), a history for NACK retransmissions (RTX when negotiated), stopping the track and the
    started/exited events that RTCRtpSender.stop() waits for.
    """

    def __init__(self, sender: RTCRtpSender, track: PacketTrack) -> None:
        self.sender = sender
        self.track = track
        self.packets = 0
        self.octets = 0  # payload bytes, as RTCP sender reports count them
        self._sequence_number = random_sequence_number()
        self._timestamp_origin = random32()
        # sequence number % RTP_HISTORY_SIZE -> (sequence number, header, payload)
        self._history: dict[int, tuple[int, bytes, bytes]] = {}
        self._out: _DatagramOut | None = None
        self._reported_at = 0.0

    @property
    def relayed(self) -> bool:
        """Whether the last frame went out through a TURN relay (rather than straight to the peer)."""
        return self._out is not None and self._out.relayed

    def install(self) -> None:
        setattr(self.sender, SENDER_RUN_RTP, self.run)
        setattr(self.sender, SENDER_RETRANSMIT, self.retransmit)

    def _private(self, name: str) -> Any:
        return getattr(self.sender, SENDER_PRIVATE[name])

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        self._private("rtp_started").set()
        try:
            layout = HeaderLayout.of(self._private("extensions_map"), self._private("mid"))
            payloads = payload_cutter(codec)
            frames = self.track.frames
            while True:
                frame = await frames.get()
                if frame is None:
                    break
                if self.sender._enabled:
                    await self._send(frame, payloads(frame), codec, layout)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:  # as aiortc's loop: the exited event must be set or stop() hangs
            log.exception("forwarding sender failed")
        self.track.stop()
        self._private("rtp_exited").set()

    async def _send(
        self, frame: EncodedFrame, payloads: list[bytes], codec: RTCRtpCodecParameters, layout: HeaderLayout
    ) -> None:
        if not payloads:
            return
        media_ts = frame.timestamp
        if frame.clock_rate != codec.clockRate:
            media_ts = media_ts * codec.clockRate // frame.clock_rate
        timestamp = (self._timestamp_origin + media_ts) & 0xFFFFFFFF
        dtls = self.sender.transport
        out = self._out
        if out is None or not out.current():
            if out is not None:
                out.flush_counts()
            out = self._out = _datagram_out(dtls)
        now = time.time()
        extension = layout.extension(int((now + _NTP_EPOCH_OFFSET_S) * (1 << 18)))
        header_of, ssrc = layout.header, self.sender._ssrc
        payload_type = codec.payloadType or 0
        history, sequence_number, last = self._history, self._sequence_number, len(payloads) - 1
        octets = sent_bytes = 0
        for i, payload in enumerate(payloads):
            marker_pt = payload_type | 0x80 if i == last else payload_type
            header = header_of(marker_pt, sequence_number, timestamp, ssrc, extension)
            history[sequence_number % rtp.RTP_HISTORY_SIZE] = (sequence_number, header, payload)
            data = out.protect(header + payload)
            if out.sendto is not None:
                out.sendto(data, out.address)
            else:
                await out.protocol.send_data(data, out.address)
            sent_bytes += len(data)
            octets += len(payload)
            sequence_number = (sequence_number + 1) & 0xFFFF
        self._sequence_number = sequence_number
        self.packets += len(payloads)
        self.octets += octets
        out.sent_packets += len(payloads)
        out.sent_bytes += sent_bytes
        if now - self._reported_at >= _REPORT_INTERVAL_S:
            self._reported_at = now
            self._report(ntp_time(now), timestamp)
            out.flush_counts()

    def _report(self, ntp: int, rtp_timestamp: int) -> None:
        """What aiortc's loop records for the sender's RTCP sender reports and getStats()."""
        sender = self.sender
        setattr(sender, SENDER_PRIVATE["ntp_timestamp"], ntp)
        setattr(sender, SENDER_PRIVATE["rtp_timestamp"], rtp_timestamp)
        setattr(sender, SENDER_PRIVATE["octet_count"], self.octets)
        setattr(sender, SENDER_PRIVATE["packet_count"], self.packets)

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from the history, as aiortc's _retransmit does (RTX when negotiated)."""
        entry = self._history.get(sequence_number % rtp.RTP_HISTORY_SIZE)
        if entry is None or entry[0] != sequence_number:
            return
        extensions_map = self._private("extensions_map")
        data = entry[1] + entry[2]
        rtx_payload_type = self._private("rtx_payload_type")
        if rtx_payload_type is not None:
            rtx_sequence_number = self._private("rtx_sequence_number")
            packet = rtp.wrap_rtx(
                rtp.RtpPacket.parse(data, extensions_map),
                payload_type=rtx_payload_type,
                sequence_number=rtx_sequence_number,
                ssrc=self.sender._rtx_ssrc,
            )
            setattr(self.sender, SENDER_PRIVATE["rtx_sequence_number"], (rtx_sequence_number + 1) & 0xFFFF)
            data = packet.serialize(extensions_map)
        await self.sender.transport._send_rtp(data)


def payload_cutter(codec: RTCRtpCodecParameters) -> Callable[[EncodedFrame], list[bytes]]:
    """How a sender of `codec` gets a frame's RTP payloads: cut once per frame and shared by every
    viewer of the slot (H.264's pack() is stateless; audio is one payload), except VP8's, which are
    cut per sender (its pack() numbers pictures per sender)."""
    encoder = get_encoder(codec)
    if isinstance(encoder, Vp8Encoder):
        return lambda frame: encoder.pack(av_packet(frame))[0]
    if isinstance(encoder, H264Encoder):

        def cut(frame: EncodedFrame) -> list[bytes]:
            return encoder.pack(av_packet(frame))[0]

    else:

        def cut(frame: EncodedFrame) -> list[bytes]:
            return [frame.data]

    def shared(frame: EncodedFrame) -> list[bytes]:
        if frame.packed is None:
            frame.packed = cut(frame)
        return frame.packed  # type: ignore[return-value]

    return shared


@dataclass(slots=True)
class _DatagramOut:
    """Where one viewer's SRTP packets go while its DTLS transport and nominated ICE pair last."""

    dtls: Any
    nominated: dict[int, Any]  # the ICE connection's nominated pairs, by component
    pair: Any
    protect: Callable[[bytes], bytes]
    address: tuple[str, int]
    protocol: Any  # the nominated ICE pair's protocol
    sendto: Callable[[bytes, tuple[str, int]], None] | None  # None: await protocol.send_data
    relayed: bool  # the pair's local candidate is a TURN relay
    sent_packets: int = 0  # not yet added to the DTLS transport's own counters
    sent_bytes: int = 0

    def current(self) -> bool:
        return getattr(self.dtls, DTLS_STATE) is DtlsState.CONNECTED and self.nominated.get(1) is self.pair

    def flush_counts(self) -> None:
        """The DTLS transport's own counters (its getStats()), which aiortc's _send_rtp keeps."""
        for name, value in ((DTLS_TX_PACKETS, self.sent_packets), (DTLS_TX_BYTES, self.sent_bytes)):
            setattr(self.dtls, name, getattr(self.dtls, name) + value)
        self.sent_packets = self.sent_bytes = 0


def _datagram_out(dtls: Any) -> _DatagramOut:
    """The SRTP session and ICE pair of `dtls`, looked up once per frame. ConnectionError when the
    DTLS transport or its ICE connection is not up (aiortc's _send_rtp raises the same)."""
    if getattr(dtls, DTLS_STATE) is not DtlsState.CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    nominated = getattr(dtls.transport._connection, ICE_NOMINATED)
    pair = nominated.get(1)
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    protocol = pair.protocol
    # aioice's StunProtocol.send_data is a bare transport.sendto, for a host pair (a UDP socket) and a
    # relay pair alike (its transport is a TurnTransport, which wraps the data for the TURN server).
    direct = type(protocol) is aioice.ice.StunProtocol and protocol.transport is not None
    return _DatagramOut(
        dtls=dtls,
        nominated=nominated,
        pair=pair,
        protect=getattr(dtls, DTLS_TX_SRTP).protect,
        address=pair.remote_addr,
        protocol=protocol,
        sendto=protocol.transport.sendto if direct else None,
        relayed=pair.local_candidate.type == "relay",
    )


def forward_packets(sender: RTCRtpSender, track: PacketTrack) -> ForwardingSender:
    """Make `sender` send `track`'s frames through a ForwardingSender (before the sender starts)."""
    loop = ForwardingSender(sender, track)
    loop.install()
    return loop


class DeliveryProbe:
    """Whether the media sent to one viewer is delivered: its senders' packets, and the RTCP receiver
    reports the viewer sends back. A report block for a sender's SSRC whose extended highest sequence
    number moved on acknowledges packets the viewer received (a receiver reports only sources it heard
    from, and keeps repeating the same number when nothing new arrives). A peer connection can be
    "connected" while nothing reaches the viewer's player: this tells the difference.

    `on_ack` is called (on the event loop) for every acknowledgement. Times are time.monotonic()."""

    def __init__(self, on_ack: Callable[[], None] = lambda: None) -> None:
        self.on_ack = on_ack
        self.senders: list[ForwardingSender] = []
        self.acked_at: float | None = None  # the last acknowledgement
        self.sent_at_ack = 0  # packets sent when it came
        self.acks = 0
        self._highest: dict[int, int] = {}  # SSRC → highest extended sequence number acknowledged

    def watch(self, sender: RTCRtpSender, loop: ForwardingSender) -> None:
        """Count `loop`'s packets and observe the receiver reports about `sender`'s SSRC."""
        self.senders.append(loop)
        handle = getattr(sender, SENDER_HANDLE_RTCP)

        async def observed(packet: Any) -> None:
            if isinstance(packet, rtp.RtcpRrPacket | rtp.RtcpSrPacket):
                for report in packet.reports:
                    if report.ssrc == sender._ssrc:
                        self._report(report.ssrc, report.highest_sequence)
            await handle(packet)

        setattr(sender, SENDER_HANDLE_RTCP, observed)

    @property
    def sent(self) -> int:
        """RTP packets sent to the viewer so far (retransmissions aside)."""
        return sum(loop.packets for loop in self.senders)

    def _report(self, ssrc: int, highest: int) -> None:
        before = self._highest.get(ssrc)
        if before is not None and highest <= before:
            return  # nothing new received since the last report
        self._highest[ssrc] = highest
        self.acks += 1
        self.acked_at = time.monotonic()
        self.sent_at_ack = self.sent
        try:
            self.on_ack()
        except Exception:  # a bug in the callback must not break RTCP handling for the peer
            log.exception("delivery acknowledgement callback failed")

    def stalled(self, now: float, stall_s: float) -> bool:
        """Packets went out after the last acknowledgement and none has been acknowledged for `stall_s`
        (false before any acknowledgement, and while nothing is being sent: a paused expert is no stall)."""
        return self.acked_at is not None and now - self.acked_at > stall_s and self.sent > self.sent_at_ack


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Route a viewer's PLI/FIR (which aiortc turns into sender._send_keyframe()) to `callback`."""
    setattr(sender, SENDER_KEYFRAME_HOOK, callback)


# ---------------------------------------------------------------- negotiation


@dataclass
class PublishedTrack:
    media: OfferedMedia
    receiver: RTCRtpReceiver


async def answer_publisher(
    pc: RTCPeerConnection,
    offered: Sequence[OfferedMedia],
    offer_sdp: str,
    host_addresses: Sequence[str],
    video_preference: Sequence[str],
    sinks: Sequence[FrameSink],
) -> tuple[str, list[PublishedTrack]]:
    """Answer a WHIP offer: receive every m-line, frames of m-line i going to sinks[i]."""
    for media in offered:
        if media.direction not in ("sendonly", "sendrecv"):
            raise Invalid(f"m-line {media.index} is {media.direction}: a publisher must send", field="sdp")
    transceivers = _prepare_transceivers(pc, offered, "recvonly", [video_preference])
    for transceiver, sink in zip(transceivers, sinks, strict=True):
        tap_receiver(transceiver.receiver, sink)
    answer = await _answer(pc, offer_sdp, host_addresses)
    return answer, [PublishedTrack(m, t.receiver) for m, t in zip(offered, transceivers, strict=True)]


async def answer_viewer(
    pc: RTCPeerConnection,
    offered: Sequence[OfferedMedia],
    offer_sdp: str,
    host_addresses: Sequence[str],
    video_codecs: Sequence[Sequence[str]],
    tracks: Sequence[PacketTrack],
    on_keyframe_requests: Sequence[Callable[[], None]],
    delivery: DeliveryProbe | None = None,
) -> tuple[str, list[str | None]]:
    """Answer a WHEP offer: m-line i sends tracks[i]; the video m-lines use video_codecs in order;
    `delivery`, if given, watches every sender.

    Returns the answer and, per m-line, the codec the sender will use."""
    for media in offered:
        if media.direction not in ("recvonly", "sendrecv"):
            raise Invalid(f"m-line {media.index} is {media.direction}: a viewer must receive", field="sdp")
    transceivers = _prepare_transceivers(pc, offered, "sendonly", video_codecs, tracks)
    for transceiver, hook, track in zip(transceivers, on_keyframe_requests, tracks, strict=True):
        on_keyframe_request(transceiver.sender, hook)
        loop = forward_packets(transceiver.sender, track)
        if delivery is not None:
            delivery.watch(transceiver.sender, loop)
    answer = await _answer(pc, offer_sdp, host_addresses)
    return answer, [answer_codec(pc, media.index) for media in offered]


def observe_rtp(
    receiver: RTCRtpReceiver, on_packet: Callable[[rtp.RtpPacket], None], *, deliver: bool = True
) -> None:
    """Call `on_packet(packet)` for every RTP packet the receiver gets (decrypted and parsed), before
    the jitter buffer (benchmarks count packets, frames and sequence gaps this way; tests check what
    arrives). With `deliver=False` the packets stop there: no jitter buffer, no reassembly, as a light
    load client."""
    handle = receiver._handle_rtp_packet

    async def counting(packet: rtp.RtpPacket, arrival_time_ms: int) -> None:
        on_packet(packet)
        if deliver:
            await handle(packet, arrival_time_ms)

    setattr(receiver, "_handle_rtp_packet", counting)  # noqa: B010
