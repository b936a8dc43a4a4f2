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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from infra.errors import Invalid
from streaming.forwarding import EncodedFrame, FrameQueue, is_keyframe

log = logging.getLogger(__name__)

# Private names this module relies on (checked by tests/unit/test_live_rtc_adapter.py).
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_STARTED = "_RTCRtpReceiver__started"
RECEIVER_SEND_PLI = "_send_rtcp_pli"
SENDER_KEYFRAME_HOOK = "_send_keyframe"
# RTCRtpSender keeps its encoder in a name-mangled private attribute, made on the first frame.
SENDER_ENCODER = "_RTCRtpSender__encoder"
ICE_CONNECTION_PRIVATE = (
    "_local_candidates_start",
    "_local_candidates_end",
    "_local_candidates",
    "_components",
)

_CANDIDATE_RE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) ", re.IGNORECASE)

FrameSink = Callable[[EncodedFrame], None]
PeerConnection = RTCPeerConnection


# ---------------------------------------------------------------- peer connections and ICE


def make_peer_connection(ice_servers: Sequence[str]) -> RTCPeerConnection:
    """A peer connection that uses only the configured ICE servers: an empty list means none, never
    aiortc's default (a public STUN server).

    Max-bundle: with aiortc's default ("balanced"), a second transceiver of a kind created before the
    remote description rides on that kind's first transport, and when the BUNDLE group later moves the
    first one onto the primary transport the second stays behind on a discarded transport and never
    sends (e.g. a viewer's stage audio m-lines). WHIP and WHEP peers bundle everything anyway.
    """
    config = RTCConfiguration(
        iceServers=[RTCIceServer(urls=url) for url in ice_servers],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
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
        # Mirrors aioice.Connection.gather_candidates with our address list.
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        coros = [
            connection.get_component_candidates(component=component, addresses=list(addresses))
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
    """Ask the publisher for a keyframe (RTCP PLI on its most recent SSRC); False if none known yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    ssrc = max(sources, key=lambda s: s.timestamp).source
    await getattr(receiver, RECEIVER_SEND_PLI)(ssrc)
    return True


# ---------------------------------------------------------------- viewer side: sending packets


class PacketTrack(MediaStreamTrack):
    """A sender track whose recv() returns already-encoded av.Packets from a FrameQueue; aiortc's
    encoder.pack() packetizes them without encoding (as MediaPlayer(decode=False) does)."""

    def __init__(self, kind: str, frames: FrameQueue) -> None:
        super().__init__()
        self.kind = kind
        self.frames = frames
        self.sender: RTCRtpSender | None = None  # set by answer_viewer, for share_packetization
        self.current: EncodedFrame | None = None  # the frame recv() returned last

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.frames.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        packet = frame.media
        if not isinstance(packet, av.Packet):
            packet = av.Packet(frame.data)
            packet.pts = frame.timestamp
            packet.dts = frame.timestamp
            packet.time_base = Fraction(1, frame.clock_rate)
            frame.media = packet  # shared by every viewer of the slot: pack() only reads it
        if self.sender is not None:
            share_packetization(self.sender, self)
        self.current = frame
        return packet

    def stop(self) -> None:
        self.frames.close()
        super().stop()


class SharedH264Packer:
    """Stands in for an RTCRtpSender's H.264 encoder: every viewer of a slot sends the same frame, so
    its RTP payloads are cut once (on the shared frame) and reused; each sender still writes its own
    RTP headers. H.264's pack() is stateless; VP8's is not (per-sender picture ids), so only H.264."""

    def __init__(self, encoder: H264Encoder, track: PacketTrack) -> None:
        self.encoder = encoder
        self.track = track

    def pack(self, packet: av.Packet[Any]) -> tuple[list[bytes], int]:
        # The sender calls recv() then pack() with no await between: `current` is this packet's frame.
        frame = self.track.current
        if frame is None or frame.media is not packet:
            return self.encoder.pack(packet)
        if frame.packed is None:
            frame.packed = self.encoder.pack(packet)
        return frame.packed  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


def share_packetization(sender: RTCRtpSender, track: PacketTrack) -> None:
    """Once the sender has made its H.264 encoder (after its first frame), put SharedH264Packer in front."""
    encoder = getattr(sender, SENDER_ENCODER, None)
    if isinstance(encoder, H264Encoder):
        setattr(sender, SENDER_ENCODER, SharedH264Packer(encoder, track))


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
) -> tuple[str, list[str | None]]:
    """Answer a WHEP offer: m-line i sends tracks[i]; the video m-lines use video_codecs in order.

    Returns the answer and, per m-line, the codec the sender will use."""
    for media in offered:
        if media.direction not in ("recvonly", "sendrecv"):
            raise Invalid(f"m-line {media.index} is {media.direction}: a viewer must receive", field="sdp")
    transceivers = _prepare_transceivers(pc, offered, "sendonly", video_codecs, tracks)
    for transceiver, hook, track in zip(transceivers, on_keyframe_requests, tracks, strict=True):
        on_keyframe_request(transceiver.sender, hook)
        track.sender = transceiver.sender
    answer = await _answer(pc, offer_sdp, host_addresses)
    return answer, [answer_codec(pc, media.index) for media in offered]


def observe_rtp(
    receiver: RTCRtpReceiver, on_packet: Callable[[int, int], None], *, deliver: bool = True
) -> None:
    """Call `on_packet(sequence_number, rtp_timestamp)` for every RTP packet the receiver gets, before
    the jitter buffer (benchmarks count packets, frames and sequence gaps this way). With
    `deliver=False` the packets stop there: no jitter buffer, no reassembly, as a light load client."""
    handle = receiver._handle_rtp_packet

    async def counting(packet: Any, arrival_time_ms: int) -> None:
        on_packet(int(packet.sequence_number), int(packet.timestamp))
        if deliver:
            await handle(packet, arrival_time_ms)

    setattr(receiver, "_handle_rtp_packet", counting)  # noqa: B010
