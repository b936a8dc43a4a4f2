"""Checking uploaded courseware and making its replay (catalog.courseware.processing on recorder.ingest),
against the real S3 server: a short real video (made here with PyAV) uploaded through the app's protocol
becomes ready with its duration, and its HLS rendition, read back from S3, plays for that long; a file
that is not a video, or not a PDF, fails with a reason in Chinese and English; a PDF gets its page count."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import pypdf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from catalog import COURSEWARE_MEDIA, DATABASE
from catalog.courseware.processing import PROCESSOR
from catalog.models import CoursewareVersion, Recording
from infra.appkeys import OBJECTS
from infra.objects_s3 import S3ObjectStore
from infra.settings import Settings
from streaming.courseware_media import RecorderMedia
from tests.helpers import wait_until
from tests.integration.catalog.conftest import AiohttpClient, World, make_app

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]


def make_video(path: Path, seconds: float, *, bframes: bool, audio: bool = True, fps: int = 25) -> None:
    """A small H.264 (+ AAC) MP4: with B-frames (re-encoded by the recorder) or without (copied)."""
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    video.options = {"bf": "2" if bframes else "0", "g": str(fps)}
    sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
    for i in range(round(seconds * fps)):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    if sound is not None:
        for n in range(0, round(seconds * 44100), 1024):
            chunk = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            chunk.planes[0].update(bytes(chunk.planes[0].buffer_size))
            chunk.sample_rate, chunk.pts, chunk.time_base = 44100, n, Fraction(1, 44100)
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    out.close()


def make_pdf(pages: int) -> bytes:
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings, s3_object_store: S3ObjectStore) -> Client:
    """The catalog with S3 and the recorder's courseware media: its processor runs in the background."""
    app = make_app(settings)
    app[OBJECTS] = s3_object_store
    app[COURSEWARE_MEDIA] = RecorderMedia(app, settings.data_dir / "spool-courseware", 2.0)
    return await aiohttp_client(app)


async def api(client: Client, w: World, method: str, path: str, body: Any = None, who: str = "expert") -> Any:
    resp = await client.request(method, path, json=body, headers=w.actors[who].headers)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def upload(client: Client, w: World, name: str, data: bytes, content_type: str) -> int:
    """Upload `data` through the app's protocol, its one part PUT straight to S3."""
    started = await api(
        client,
        w,
        "POST",
        "/api/courseware/uploads",
        {"file_name": name, "size_bytes": len(data), "content_type": content_type},
    )
    [part] = (
        await api(client, w, "POST", f"/api/courseware/uploads/{started['id']}/parts", {"numbers": [1]})
    )["parts"]
    async with (
        aiohttp.ClientSession() as http,
        http.put(part["url"], data=io.BytesIO(data), headers={"Content-Length": str(len(data))}) as resp,
    ):
        assert resp.status == 200
        etag = resp.headers["ETag"]
    await api(
        client,
        w,
        "POST",
        f"/api/courseware/uploads/{started['id']}/complete",
        {"parts": [{"number": 1, "etag": etag}]},
    )
    return int(started["id"])


async def new_version(client: Client, w: World, upload_id: int, slides: int | None = None) -> int:
    courseware = await api(
        client, w, "POST", "/api/courseware", {"title": "深基坑支护", "category": "professional"}
    )
    body = {"upload_id": upload_id, **({"slides_upload_id": slides} if slides else {})}
    view = await api(client, w, "POST", f"/api/courseware/{courseware['id']}/versions", body)
    return int(view["versions"][0]["id"])  # newest first


async def processed(client: Client, version_id: int) -> CoursewareVersion:
    async def done() -> Any:
        async with client.app[DATABASE].sessions.begin() as s:
            version = await s.get(CoursewareVersion, version_id)
        return version if version is not None and version.processing != "processing" else None

    result: CoursewareVersion = await wait_until(
        done, timeout_s=90, interval_s=0.2, message="processing to end"
    )
    return result


async def download(store: S3ObjectStore, prefix: str, into: Path) -> None:
    for info in await store.list(prefix):
        path = into / info.key.removeprefix(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(await store.get(info.key))


def media_duration(playlist: Path) -> float:
    """ffprobe's duration of an HLS playlist, after ffmpeg decoded every segment without an error."""
    subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(playlist), "-f", "null", "-"], check=True)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(playlist)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


@pytest.mark.parametrize("bframes", [pytest.param(True, id="re-encoded"), pytest.param(False, id="copied")])
async def test_a_short_video_becomes_ready_and_its_rendition_plays_from_s3(
    client: Client, world: World, s3_object_store: S3ObjectStore, tmp_path: Path, bframes: bool
) -> None:
    make_video(tmp_path / "lecture.mp4", 6.0, bframes=bframes)
    data = (tmp_path / "lecture.mp4").read_bytes()
    version_id = await new_version(
        client, world, await upload(client, world, "第一讲.mp4", data, "video/mp4")
    )

    version = await processed(client, version_id)

    assert (version.processing, version.check_error) == ("ready", None)
    assert version.duration_s == pytest.approx(6.0, abs=0.2)
    assert (version.width, version.height, version.size_bytes) == (320, 240, len(data))
    assert version.content_sha256 is not None
    assert len(version.content_sha256) == 64
    async with client.app[DATABASE].sessions.begin() as s:
        recording = await s.get(Recording, version.recording_id)
        assert recording is not None
        assert (recording.session_id, recording.state) == (version.session_id, "finalized")
        assert list(recording.angles) == ["camera"]
        assert recording.master_key == f"hls/{version.session_id}/{recording.id}/master.m3u8"
    await download(s3_object_store, f"hls/{version.session_id}/{recording.id}/", tmp_path / "hls")
    assert media_duration(tmp_path / "hls" / "master.m3u8") == pytest.approx(6.0, abs=0.25)
    assert recording.duration_s == pytest.approx(6.0, abs=0.25)


async def test_a_file_that_is_not_a_video_fails_with_a_reason(
    client: Client, world: World, s3_object_store: S3ObjectStore
) -> None:
    version_id = await new_version(
        client,
        world,
        await upload(client, world, "讲座.mp4", b"PK\x03\x04 not a video at all" * 4000, "video/mp4"),
    )

    version = await processed(client, version_id)

    assert version.processing == "failed"
    assert version.check_error is not None
    chinese, english = version.check_error.split(" / ", 1)
    assert chinese == "无法识别的视频文件"
    assert english.startswith("not a readable video file")
    assert version.recording_id is None
    assert [i.key for i in await s3_object_store.list("hls/")] == []  # nothing half-made stays


async def test_a_pdf_gets_its_page_count_and_a_broken_one_fails(client: Client, world: World) -> None:
    good = await new_version(
        client, world, await upload(client, world, "讲义.pdf", make_pdf(3), "application/pdf")
    )
    bad = await new_version(
        client,
        world,
        await upload(client, world, "坏的.pdf", b"%PDF-1.4\n garbage \x00\x01", "application/pdf"),
    )

    ready, failed = await asyncio.gather(processed(client, good), processed(client, bad))

    assert (ready.processing, ready.page_count, ready.recording_id) == ("ready", 3, None)
    assert failed.processing == "failed"
    assert failed.check_error is not None
    assert failed.check_error.startswith("无法解析的PDF文件 / not a readable PDF")


async def test_a_version_is_processed_once_even_with_two_processors(
    client: Client, world: World, tmp_path: Path
) -> None:
    make_video(tmp_path / "v.mp4", 2.0, bframes=False, audio=False)
    version_id = await new_version(
        client, world, await upload(client, world, "v.mp4", (tmp_path / "v.mp4").read_bytes(), "video/mp4")
    )
    processor = client.app[PROCESSOR]
    # The app's own processor and a second one (another process) race for the version.
    await asyncio.gather(processor.run_once(), processor.run_once())

    version = await processed(client, version_id)
    assert version.processing == "ready"
    async with client.app[DATABASE].sessions.begin() as s:
        recordings = list(
            await s.scalars(select(Recording).where(Recording.session_id == version.session_id))
        )
    assert [r.id for r in recordings] == [version.recording_id]
