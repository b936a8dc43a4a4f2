"""Live-path test peers: an app with WHIP/WHEP over loopback, a robot lecturer (a real aiortc peer
publishing synthetic video encoded by aiortc, plus audio) and viewers that count encoded frames
without decoding them (they tap their receivers the same way the server does)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import RTCRtpSender, RTCSessionDescription, rtp
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from infra.bus import EventBus
from infra.ice import IceServer
from infra.tokens import Claims, sign
from streaming import live, rtc_adapter
from streaming.forwarding import EncodedFrame
from streaming.rooms import Rooms
from tests.helpers import wait_until

SECRET = "test-secret-key-not-for-production"
LOOPBACK = ("127.0.0.1",)


# Tests build tokens when pytest collects them (parametrize): they must outlive a whole slow run.
TOKEN_TTL_S = 6 * 3600.0


def token(
    purpose: str, session_id: int, role: str, person_id: int = 1, expires_in_s: float = TOKEN_TTL_S
) -> str:
    claims = Claims(person_id, f"session:{session_id}", role, time.time() + expires_in_s, {})
    return sign(SECRET, purpose, claims)


def room_token(session_id: int, role: str, person_id: int) -> str:
    """A room-channel token, with the name the channel shows for the person."""
    claims = Claims(
        person_id, f"session:{session_id}", role, time.time() + TOKEN_TTL_S, {"name": f"p{person_id}"}
    )
    return sign(SECRET, "room", claims)


async def receive_until(ws: Any, kind: str) -> dict[str, Any]:
    """The next room-channel message of type `kind`, skipping the others."""
    while True:
        msg = await ws.receive_json(timeout=10)
        if msg["type"] == kind:
            return dict(msg)


def sdp_headers(bearer: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/sdp"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return headers


@dataclass
class LiveServer:
    client: TestClient  # type: ignore[type-arg]
    app: web.Application
    bus: EventBus
    _seen: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    @property
    def rooms(self) -> Rooms:
        return self.app[live.ROOMS]

    async def events(self, topic: str = "sessions") -> list[tuple[str, dict[str, Any]]]:
        """Every event published on `topic` so far, as (type, data)."""
        await self.bus.ensure_group(topic, "test")
        seen = self._seen.setdefault(topic, [])
        for delivery in await self.bus.consume(topic, "test", "t", count=100):
            seen.append((delivery.type, delivery.data))
        return list(seen)

    async def events_until(
        self, count: int, topic: str = "sessions", timeout_s: float = 10.0
    ) -> list[tuple[str, dict[str, Any]]]:
        """The events on `topic` once there are at least `count` (a room ends before it says so)."""

        async def enough() -> list[tuple[str, dict[str, Any]]] | None:
            events = await self.events(topic)
            return events if len(events) >= count else None

        return await wait_until(enough, timeout_s=timeout_s, message=f"{count} events on {topic}")


LiveServerFactory = Callable[..., Awaitable[LiveServer]]


class SyntheticVideo(VideoStreamTrack):
    """Moving stripes, paced at 30 fps by VideoStreamTrack.next_timestamp()."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        size = width * height
        base = bytes((x * 7) % 256 for x in range(2 * size))
        self._lumas = [base[k * 97 : k * 97 + size] for k in range(30)]
        self._chroma = bytes([128]) * (size // 4)
        self.count = 0
        self._flowing = asyncio.Event()
        self._flowing.set()

    def hold(self) -> None:
        """Stop producing frames (the sender then sends no RTP for this track) until resume()."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def recv(self) -> av.VideoFrame:
        await self._flowing.wait()
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(_fit(self._lumas[self.count % 30], frame.planes[0].buffer_size))
        frame.planes[1].update(_fit(self._chroma, frame.planes[1].buffer_size))
        frame.planes[2].update(_fit(self._chroma, frame.planes[2].buffer_size))
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


def _fit(data: bytes, size: int) -> bytes:
    return data[:size] if len(data) >= size else data + bytes(size - len(data))


class Robot:
    """A robot lecturer: publishes synthetic video (and audio) over WHIP with a real aiortc peer."""

    def __init__(
        self,
        video_codec: str | None = None,
        videos: int = 1,
        audio: bool = True,
        size: tuple[int, int] = (320, 240),
    ) -> None:
        self.pc = rtc_adapter.make_peer_connection([])
        self.tracks: list[Any] = []
        for _ in range(videos):
            track = SyntheticVideo(*size)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            if video_codec is not None:
                caps = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences([c for c in caps if c.mimeType == video_codec])
            self.tracks.append(track)
        if audio:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        rtc_adapter.restrict_host_addresses(self.pc, LOOPBACK)
        self.location: str | None = None

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def publish(self, client: TestClient, session_id: int, bearer: str, query: str = "") -> None:  # type: ignore[type-arg]
        resp = await client.post(
            f"/whip/sessions/{session_id}{query}", data=await self.offer(), headers=sdp_headers(bearer)
        )
        assert resp.status == 201, await resp.text()
        assert resp.content_type == "application/sdp"
        self.location = resp.headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=await resp.text(), type="answer"))

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Received:
    at: float
    frame: EncodedFrame


@dataclass
class WatchingPeer:
    """A WHEP viewer whose receivers are tapped: it records encoded frames, never decodes them.

    Its m-lines are `videos` video then (with `audio`) one audio, or exactly `kinds` when given.
    `frames` groups what arrived by kind, `lines` by m-line."""

    videos: int = 1
    audio: bool = True
    kinds: Sequence[str] | None = None
    frames: dict[str, list[Received]] = field(default_factory=lambda: {"video": [], "audio": []})
    lines: list[list[Received]] = field(default_factory=list)
    location: str | None = None
    posted_at: float = 0.0
    ice_servers: Sequence[IceServer] = ()
    relay_only: bool = False  # gather TURN relay candidates only (a viewer behind a strict NAT)
    # False: its receivers keep receiving but send no RTCP receiver report (a peer that does not
    # acknowledge what it gets); `withheld_reports` counts the reports it dropped.
    reports: bool = True
    withheld_reports: int = 0

    def __post_init__(self) -> None:
        self.pc = rtc_adapter.make_peer_connection(self.ice_servers, relay_only=self.relay_only)
        if self.kinds is None:
            self.kinds = ["video"] * self.videos + (["audio"] if self.audio else [])
        for index, kind in enumerate(self.kinds):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            self.lines.append([])
            rtc_adapter.tap_receiver(transceiver.receiver, self._sink(index))
            self._gate_reports(transceiver.receiver)
        rtc_adapter.restrict_host_addresses(self.pc, LOOPBACK)

    def _gate_reports(self, receiver: Any) -> None:
        """Send the receiver's RTCP receiver reports only while `reports` is True (test-side aiortc)."""
        send = receiver._send_rtcp

        async def gated(packet: Any) -> None:
            if isinstance(packet, rtp.RtcpRrPacket) and not self.reports:
                self.withheld_reports += 1
                return
            await send(packet)

        receiver._send_rtcp = gated

    def _sink(self, index: int) -> Callable[[EncodedFrame], None]:
        def sink(frame: EncodedFrame) -> None:
            received = Received(time.monotonic(), frame)
            self.frames[frame.kind].append(received)
            self.lines[index].append(received)

        return sink

    def count(self, kind: str = "video") -> int:
        return len(self.frames[kind])

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def watch(self, client: TestClient, session_id: int, bearer: str) -> None:  # type: ignore[type-arg]
        offer = await self.offer()
        self.posted_at = time.monotonic()
        resp = await client.post(f"/whep/sessions/{session_id}", data=offer, headers=sdp_headers(bearer))
        assert resp.status == 201, await resp.text()
        self.location = resp.headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=await resp.text(), type="answer"))

    async def close(self) -> None:
        await self.pc.close()
