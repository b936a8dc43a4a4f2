"""Recording test support: the whole app (create_app) over loopback with a robot lecturer publishing to it,
the stored recording read back from the object store's folder and checked with ffmpeg/ffprobe, and a
loopback TCP proxy that can cut the app off from a real S3 server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import RTCSessionDescription

from infra.appkeys import BUS
from infra.bus_memory import MemoryBus
from infra.objects import ObjectStore
from infra.settings import Settings
from infra.tokens import Claims, sign
from tests.integration.live.peers import Robot, sdp_headers
from tests.integration.recorder.recorder_testkit import probe, run_ffmpeg_check, stream

FPS = 30
SEGMENT_S = 2.0
SEGMENT_FRAMES = round(FPS * SEGMENT_S)
# Frames lost while the recorder subscribes and waits for the keyframe it asked for, and in flight at
# the end: a fraction of a second, well under a segment.
EDGE_FRAMES = 15


def bearer(secret: str, purpose: str, session_id: int, role: str = "expert", person_id: int = 1) -> str:
    # Built at collection time by some tests: valid for a whole slow run.
    claims = Claims(person_id, f"session:{session_id}", role, time.time() + 6 * 3600, {})
    return sign(secret, purpose, claims)


@dataclass
class RecordingWorld:
    """The app under test (create_app), its settings, and where its local object store keeps files."""

    client: TestClient  # type: ignore[type-arg]
    app: web.Application
    settings: Settings
    store: ObjectStore
    _seen: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    @property
    def bus(self) -> MemoryBus:
        bus = self.app[BUS]
        assert isinstance(bus, MemoryBus)
        return bus

    def token(self, purpose: str, session_id: int, role: str = "expert", person_id: int = 1) -> str:
        return bearer(self.settings.secret_key, purpose, session_id, role, person_id)

    async def publish(self, robot: Robot, session_id: int, query: str = "", person_id: int = 1) -> str:
        """Publish as `person_id` (who must be the session's expert where the catalog knows it)."""
        token = self.token("whip", session_id, person_id=person_id)
        await robot.publish(self.client, session_id, token, query)
        return token

    async def end(self, robot: Robot, token: str) -> None:
        assert robot.location is not None
        resp = await self.client.delete(robot.location, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200, await resp.text()

    async def events(self, topic: str, type_: str) -> list[dict[str, Any]]:
        await self.bus.ensure_group(topic, "recording-test")
        deliveries = await self.bus.consume(topic, "recording-test", "t", count=100)
        self._seen.setdefault(topic, []).extend((d.type, d.data) for d in deliveries)
        return [data for t, data in self._seen[topic] if t == type_]


async def publish_http(robot: Robot, base_url: str, session_id: int, token: str, query: str = "") -> None:
    """WHIP to a server in another process (tests/server.py)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base_url}/whip/sessions/{session_id}{query}",
            data=await robot.offer(),
            headers=sdp_headers(token),
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()
        robot.location = resp.headers["Location"]
        answer = await resp.text()
    await robot.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


def sent_frames(robot: Robot, index: int = 0) -> int:
    return int(robot.tracks[index].count)


@dataclass(frozen=True)
class Checked:
    video_packets: int
    audio_packets: int
    duration_s: float
    playlist: str


async def check_angle(root: Path, playlist_key: str, mp4_key: str | None) -> Checked:
    """The VOD playlist and MP4 of one angle: whole (ffmpeg -xerror), VOD, continuous, h264 + aac."""
    playlist_path = root / playlist_key
    text = playlist_path.read_text()
    assert "#EXT-X-ENDLIST" in text, text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text, text
    assert "#EXT-X-DISCONTINUITY" not in text, text
    result = await asyncio.to_thread(run_ffmpeg_check, playlist_path)
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), result.stderr
    hls = await asyncio.to_thread(probe, playlist_path)
    video, audio = stream(hls, "video"), stream(hls, "audio")
    assert (video["codec_name"], audio["codec_name"]) == ("h264", "aac"), hls
    assert mp4_key is not None
    mp4 = await asyncio.to_thread(probe, root / mp4_key)
    assert (stream(mp4, "video")["codec_name"], stream(mp4, "audio")["codec_name"]) == ("h264", "aac"), mp4
    mp4_result = await asyncio.to_thread(run_ffmpeg_check, root / mp4_key)
    assert mp4_result.returncode == 0, mp4_result.stderr
    assert not mp4_result.stderr.strip(), mp4_result.stderr
    return Checked(
        video_packets=int(video["nb_read_packets"]),
        audio_packets=int(audio["nb_read_packets"]),
        duration_s=float(mp4["format"]["duration"]),
        playlist=text,
    )


def segment_names(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line.startswith("seg_")]


def assert_continuous(playlist: str) -> None:
    names = segment_names(playlist)
    numbers = [int(n.removeprefix("seg_").removesuffix(".m4s")) for n in names]
    assert numbers == list(range(1, len(numbers) + 1)), names


class CuttableProxy:
    """A loopback TCP proxy to a real server whose link can be cut (connections reset, new ones
    refused) and restored: a real outage as the client sees it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._tasks.difference_update(pipes)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
