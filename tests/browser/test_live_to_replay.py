"""The recording path in real Chromium: the expert publishes camera and screen from the studio, ends the
session, and a learner plays the recording on the replay page with hls.js, switching angles; and a learner
beyond the room's seats watches the live recording's HLS instead of WebRTC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.test_catalog_pages import log_in, seed_demo
from tests.helpers import wait_until
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

EXPERT, LEARNER = "13800000008", "13800000010"
DEMO_PASSWORD = "lectern-demo-2026"
SESSION = 1

STATE = """() => { const v = document.querySelector('#video');
    return { t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames }; }"""


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {**lectern_server_env, "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1", "LECTERN_SEGMENT_DURATION_S": "1"}
    with running_server(data_dir, env) as server:
        yield server


def segments(data_dir: Path, angle: str) -> int:
    """Segments of `angle` stored so far for the session (the embedded store is a folder)."""
    return sum(1 for _ in (data_dir / "objects" / "hls" / str(SESSION)).glob(f"*/{angle}/seg_*.m4s"))


async def replays_of_the_course(server: LecternServer) -> list[dict[str, Any]]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(server.url, cookie_jar=jar) as http:
        async with http.post("/api/auth/login", json={"phone": LEARNER, "password": DEMO_PASSWORD}) as r:
            assert r.status == 200
        async with http.get(f"/api/sessions/{SESSION}") as r:
            course_id = (await r.json())["course_id"]
        async with http.get(f"/api/courses/{course_id}") as r:
            replays: list[dict[str, Any]] = (await r.json())["replays"]
            return replays


async def test_a_lecture_published_from_the_studio_becomes_a_replay_with_two_angles(
    browser: Browser, lectern_server: LecternServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    expert_ctx = await browser.new_context(locale="zh-CN")
    learner_ctx = await browser.new_context(locale="zh-CN")
    try:
        studio = await expert_ctx.new_page()
        studio.on("dialog", lambda dialog: dialog.accept())
        await log_in(studio, lectern_server, EXPERT, f"/studio/{SESSION}")
        await studio.get_by_role("button", name="开始直播").click()
        await expect(studio.locator("#state")).to_have_text("直播中", timeout=20_000)
        await studio.get_by_role("button", name="共享屏幕").click()
        await expect(studio.get_by_role("button", name="停止共享")).to_be_visible(timeout=20_000)
        # A few seconds of both angles reach the store while the lecture is live.
        await wait_until(
            lambda: segments(data_dir, "camera") >= 5 and segments(data_dir, "screen") >= 3,
            timeout_s=40,
            message=lambda: (
                f"live segments of both angles (camera {segments(data_dir, 'camera')}, "
                f"screen {segments(data_dir, 'screen')})"
            ),
        )
        await studio.get_by_role("button", name="结束直播").click()
        await expect(studio.locator("#state")).to_have_text("已结束", timeout=20_000)

        (replay,) = await wait_until(
            lambda: replays_of_the_course(lectern_server),
            timeout_s=30,
            message="the replay on the course page",
        )
        assert replay["angles"] == ["camera", "screen"]

        page: Page = await learner_ctx.new_page()
        await log_in(page, lectern_server, LEARNER, "/me")
        await page.goto(f"{lectern_server.url}/replays/{replay['id']}")
        await page.wait_for_selector("#player-box:not([hidden])")
        assert await page.evaluate("window.Hls !== undefined && window.Hls.isSupported()")
        await page.evaluate(
            "() => { const v = document.querySelector('#video'); v.muted = true; return v.play(); }"
        )

        async def advanced_past(t: float) -> dict[str, Any] | None:
            state: dict[str, Any] = await page.evaluate(STATE)
            return state if state["t"] > t and state["frames"] > 0 else None

        first = await wait_until(lambda: advanced_past(1.5), timeout_s=20, message="camera playing")
        await page.click("#angles button[data-angle=screen]")
        await expect(page.locator("#angles button[data-angle=screen]")).to_have_attribute(
            "aria-pressed", "true"
        )
        switched = await wait_until(lambda: advanced_past(0.0), timeout_s=20, message="screen playing")
        frames = (await page.evaluate(STATE))["frames"]
        await wait_until(lambda: advanced_past(switched["t"] + 1.0), timeout_s=15, message="screen advancing")
        assert (await page.evaluate(STATE))["frames"] > frames
        assert first["frames"] > 0
    finally:
        await expert_ctx.close()
        await learner_ctx.close()


@pytest.fixture
def full_room_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    """No interactive seats at all: every learner is an overflow learner."""
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {
        **lectern_server_env,
        "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1",
        "LECTERN_SEGMENT_DURATION_S": "1",
        "LECTERN_ROOM_SEAT_LIMIT": "0",
    }
    with running_server(data_dir, env) as server:
        yield server


async def test_a_learner_beyond_the_seat_limit_watches_the_live_hls_with_hls_js(
    browser: Browser, full_room_server: LecternServer, tmp_path: Path
) -> None:
    expert_ctx = await browser.new_context(locale="zh-CN")
    learner_ctx = await browser.new_context(locale="zh-CN")
    try:
        studio = await expert_ctx.new_page()
        await log_in(studio, full_room_server, EXPERT, f"/studio/{SESSION}")
        await studio.get_by_role("button", name="开始直播").click()
        await expect(studio.locator("#state")).to_have_text("直播中", timeout=20_000)
        await wait_until(
            lambda: segments(tmp_path / "var", "camera") >= 3, timeout_s=30, message="live segments"
        )

        page = await learner_ctx.new_page()
        hls_requests: list[str] = []
        page.on("request", lambda r: hls_requests.append(r.url) if "/hls/" in r.url else None)
        await log_in(page, full_room_server, LEARNER, f"/watch/{SESSION}")
        await expect(page.locator("#message")).to_contain_text("互动席位已满", timeout=20_000)
        await expect(page.locator("#state")).to_have_text("直播中（直播流，有数秒延迟）")
        assert await page.evaluate("window.Hls !== undefined && window.Hls.isSupported()")
        await page.evaluate(
            "() => { const v = document.querySelector('video.main-video'); v.muted = true; v.play(); }"
        )
        frames = (
            "document.querySelector('#videos video.main-video').getVideoPlaybackQuality().totalVideoFrames"
        )
        await page.wait_for_function(f"() => {frames} > 10", timeout=30_000)
        before = await page.evaluate(frames)
        await page.wait_for_function(f"() => {frames} > {before}", timeout=15_000)
        assert any("/camera/index.m3u8" in u for u in hls_requests)
        assert any("/camera/seg_" in u for u in hls_requests)
        # The room channel still works for an overflow learner.
        await page.locator("#chat-form input").fill("我在看直播流")
        await page.locator("#chat-form button").click()
        await expect(studio.locator("#chat")).to_contain_text("我在看直播流")
    finally:
        await expert_ctx.close()
        await learner_ctx.close()
