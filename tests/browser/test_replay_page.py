"""The replay page plays a real recording (made by the recorder from a synthetic H.264 + Opus lecture)
with hls.js in Chromium, switches camera ⇄ screen keeping the position, and reports progress to the API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

import catalog
from catalog import accounts, replays
from catalog.db import Database
from catalog.models import Course, Enrollment, Organization, Person, RoleAssignment, Session
from infra.objects_local import LocalObjectStore
from recorder import Recorder, RecordingSummary
from streaming.recording import finalized_event
from tests.helpers import wait_until
from tests.integration.recorder.recorder_testkit import SyntheticLecture
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

PASSWORD = "replay password 123"
PHONE = "13900000123"
RECORDING_ID = "rec-browser-1"
LECTURE_S = 8.0
SCREEN_START_S = 1.0


@dataclass(frozen=True)
class ReplayWorld:
    server: LecternServer
    course_id: int
    session_id: int
    recording_id: str
    summary: RecordingSummary


async def _seed(db: Database) -> tuple[int, int]:
    """A published course with one session and an enrolled learner who can log in."""
    now = datetime.now(UTC)
    password_hash = await accounts.hash_password(PASSWORD)
    async with db.sessions.begin() as s:
        provider = Organization(type="ce_base", name="青岛继续教育基地", created_at=now)
        s.add(provider)
        await s.flush()
        course = Course(
            provider_org_id=provider.id,
            title="建筑工程新技术",
            description="",
            category="professional",
            industry="",
            specialty_tags=[],
            credit_hours=Decimal("2.0"),
            delivery="live",
            status="published",
            capacity=None,
            created_at=now,
            updated_at=now,
        )
        learner = Person(name="王学员", phone=PHONE, password_hash=password_hash, created_at=now)
        s.add_all([course, learner])
        await s.flush()
        session = Session(
            course_id=course.id,
            title="第一讲 装配式建筑",
            kind="live",
            scheduled_start=now - timedelta(hours=2),
            scheduled_end=now - timedelta(hours=1),
            external_platform="none",
            external_ids={},
        )
        s.add(session)
        s.add(RoleAssignment(person_id=learner.id, role="learner", org_id=None, created_at=now))
        s.add(
            Enrollment(
                person_id=learner.id, course_id=course.id, source="self", status="enrolled", enrolled_at=now
            )
        )
        await s.flush()
        return course.id, session.id


async def _record(
    data_dir: Path,
    session_id: int,
    recording_id: str = RECORDING_ID,
    lecture_s: float = LECTURE_S,
    screen_start_s: float = SCREEN_START_S,
) -> RecordingSummary:
    """A short two-angle lecture through the real recorder into the server's local object store."""
    store = LocalObjectStore(data_dir / "objects", signing_key="unused", base_url="http://127.0.0.1")
    lecture = SyntheticLecture(
        video={"camera": "h264", "screen": "h264"}, fps=15, screen_start_s=screen_start_s
    )
    recorder = Recorder(
        store,
        session_id=session_id,
        recording_id=recording_id,
        spool_dir=data_dir / "spool",
        request_keyframe=lecture.request_keyframe,
        segment_duration_s=1.0,
    )
    await recorder.start()
    for i, frame in enumerate(lecture.frames(0.0, lecture_s)):
        recorder.push(frame)
        if i % 20 == 0:
            await asyncio.sleep(0)  # let the recorder's feeder and uploader run, as the live loop would
    summary = await recorder.finish()
    await store.close()
    return summary


async def _prepare(data_dir: Path) -> tuple[int, int, RecordingSummary]:
    url = f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}"
    await asyncio.to_thread(catalog.migrate, url)
    db = Database(url)
    try:
        course_id, session_id = await _seed(db)
        summary = await _record(data_dir, session_id)
        # The consumer's own registration path, run before the server starts (its bus is in-process).
        assert await replays.register(db, finalized_event(summary, datetime.now(UTC)), datetime.now(UTC))
    finally:
        await db.close()
    return course_id, session_id, summary


@pytest.fixture
def replay_world(tmp_path: Path) -> Iterator[ReplayWorld]:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    course_id, session_id, summary = asyncio.run(_prepare(data_dir))
    assert {a.angle for a in summary.angles} == {"camera", "screen"}
    with running_server(data_dir) as server:
        yield ReplayWorld(server, course_id, session_id, RECORDING_ID, summary)


async def log_in(context: BrowserContext, page: Page, base: str) -> None:
    resp = await context.request.post(f"{base}/api/auth/login", data={"phone": PHONE, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    csrf = (await resp.json())["csrf_token"]
    await page.goto(f"{base}/")
    await page.evaluate("token => localStorage.setItem('lectern.csrf', token)", csrf)


async def video_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate(
        """() => { const v = document.querySelector('#video');
            return { t: v.currentTime, paused: v.paused, frames: v.getVideoPlaybackQuality().totalVideoFrames,
                     src: v.currentSrc, ready: v.readyState }; }"""
    )
    return state


async def test_replay_plays_switches_angle_keeping_the_position_and_reports_progress(
    context: BrowserContext, page: Page, replay_world: ReplayWorld
) -> None:
    base = replay_world.server.url
    hls_requests: list[str] = []
    page.on("request", lambda r: hls_requests.append(r.url) if "/hls/" in r.url else None)
    master_url = f"{base}/hls/{replay_world.summary.master_key.removeprefix('hls/')}"
    # Before the learner logs in and opens the replay, none of its media is served to this browser.
    assert (await context.request.get(master_url)).status == 401
    await log_in(context, page, base)
    assert (await context.request.get(master_url)).status == 401, "logged in, but no media grant yet"
    await page.goto(f"{base}/replays/{replay_world.recording_id}")
    await page.wait_for_selector("#player-box:not([hidden])")
    master = await context.request.get(master_url)
    assert master.status == 200, "the replay API granted the media (streaming.hls_routes serves it)"
    assert "第一讲 装配式建筑" in await page.inner_text("h1")
    assert await page.evaluate("window.Hls !== undefined && window.Hls.isSupported()")
    assert await page.locator("#angles button").all_inner_texts() == ["讲师画面", "屏幕共享"]
    await wait_until(
        lambda: any("/camera/index.m3u8" in u for u in hls_requests), timeout_s=10, message="camera playlist"
    )

    # Muted, play() needs no user gesture; the learner would press the play button.
    await page.evaluate(
        "() => { const v = document.querySelector('#video'); v.muted = true; return v.play(); }"
    )

    async def advanced_to(t: float) -> dict[str, Any] | None:
        state = await video_state(page)
        return state if state["t"] >= t and state["frames"] > 0 else None

    first = await wait_until(lambda: advanced_to(2.5), timeout_s=20, message="camera playback past 2.5 s")
    later = await wait_until(
        lambda: advanced_to(first["t"] + 1.0), timeout_s=10, message="playback advancing"
    )
    assert later["frames"] > first["frames"]

    # Switch to the screen: the position on the recording's timeline is kept (screen starts 1 s later).
    before = (await video_state(page))["t"]
    await page.click("#angles button[data-angle=screen]")
    await wait_until(
        lambda: any("/screen/index.m3u8" in u for u in hls_requests), timeout_s=10, message="screen playlist"
    )

    async def playing_screen() -> dict[str, Any] | None:
        state = await video_state(page)
        pressed = await page.get_attribute("#angles button[data-angle=screen]", "aria-pressed")
        return state if pressed == "true" and state["ready"] >= 2 and not state["paused"] else None

    switched = await wait_until(playing_screen, timeout_s=15, message="screen angle playing")
    assert abs((switched["t"] + SCREEN_START_S) - before) < 1.5, (before, switched)
    frames_at_switch = switched["frames"]
    more = await wait_until(
        lambda: advanced_to(switched["t"] + 1.0), timeout_s=10, message="screen advancing"
    )
    assert more["frames"] > frames_at_switch
    assert any("/screen/seg_" in u for u in hls_requests)

    # The very URLs the learner's player fetched (playlists, init segments, segments) and the MP4 download
    # are refused to a browser without the grant: the course page names no replay id to it either.
    assert context.browser is not None
    stranger = await context.browser.new_context()
    try:
        playback = await (await context.request.get(f"{base}/api/replays/{replay_world.recording_id}")).json()
        mp4 = base + playback["angles"][0]["mp4_url"]
        assert (await context.request.get(mp4)).status == 200
        for url in {*hls_requests, mp4}:
            assert (await stranger.request.get(url)).status == 401, url
        course = await (await stranger.request.get(f"{base}/api/courses/{replay_world.course_id}")).json()
        assert [r["id"] for r in course["replays"]] == [None]
    finally:
        await stranger.close()

    # Pausing reports the progress; the API keeps it for the learner.
    await page.evaluate("document.querySelector('#video').pause()")
    paused_at = (await video_state(page))["t"] + SCREEN_START_S

    async def saved_progress() -> dict[str, Any] | None:
        resp = await context.request.get(f"{base}/api/replays/{replay_world.recording_id}")
        progress: dict[str, Any] | None = (await resp.json())["progress"]
        return progress if progress and progress["angle"] == "screen" else None

    progress = await wait_until(saved_progress, timeout_s=15, message="progress stored by the API")
    assert abs(progress["position_s"] - paused_at) < 1.0, (progress, paused_at)
    assert progress["rate"] == 1
    assert progress["visible"] is True

    # Coming back resumes there, on the same angle.
    await page.reload()
    await page.wait_for_selector("#player-box:not([hidden])")
    assert "继续" in await page.inner_text("#message")

    async def resumed() -> dict[str, Any] | None:
        state = await video_state(page)
        return state if state["ready"] >= 1 and state["t"] > 0 else None

    state = await wait_until(resumed, timeout_s=15, message="resumed position")
    assert abs(state["t"] + SCREEN_START_S - progress["position_s"]) < 1.0
    assert await page.get_attribute("#angles button[data-angle=screen]", "aria-pressed") == "true"


async def test_replay_page_tells_an_anonymous_visitor_to_log_in(
    page: Page, replay_world: ReplayWorld
) -> None:
    await page.goto(f"{replay_world.server.url}/replays/{replay_world.recording_id}")
    message = page.locator("#message")
    await message.filter(has_text="请先登录").wait_for()
    assert (
        await page.locator("#message a").get_attribute("href") == f"/login?next=%2Freplays%2F{RECORDING_ID}"
    )
    assert await page.locator("#player-box").is_hidden()
