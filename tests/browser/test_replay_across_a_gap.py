"""A lecture whose expert lost the connection and came back 4 s later: the replay's playlist has a
discontinuity at the gap, and hls.js in Chromium plays on across it (on a desktop and on a phone)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Page

from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import log_in
from tests.helpers import wait_until
from tests.integration.live.peers import Robot
from tests.integration.recording.catalog_support import (
    DEMO_EXPERT,
    DEMO_LEARNER,
    DEMO_SESSION,
    listed_replays,
    seed_demo,
)
from tests.integration.recording.support import FPS, bearer, publish_http, sent_frames
from tests.server import TEST_SECRET_KEY, LecternServer, running_server

pytestmark = pytest.mark.browser

GAP_S = 4.0
STATE = """() => { const v = document.querySelector('#video');
    return { t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
             error: v.error && v.error.code }; }"""


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {"LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1", "LECTERN_SEGMENT_DURATION_S": "2"}
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture
async def robots() -> AsyncIterator[list[Robot]]:
    made: list[Robot] = []
    yield made
    for robot in made:
        await robot.close()


async def lecture_with_a_reconnect(server: LecternServer, robots: list[Robot]) -> None:
    """4 s of lecture, the connection lost for 4 s, the expert back for 6 s, then the end."""
    token = bearer(TEST_SECRET_KEY, "whip", DEMO_SESSION, person_id=DEMO_EXPERT)
    first = Robot(video_codec="video/H264")
    robots.append(first)
    await publish_http(first, server.url, DEMO_SESSION, token)
    await wait_until(lambda: sent_frames(first) >= 4 * FPS, timeout_s=15, message="4 s of video")
    await first.close()
    gone_at = time.monotonic()
    await wait_until(lambda: time.monotonic() - gone_at >= GAP_S, timeout_s=GAP_S + 2, interval_s=0.1)
    second = Robot(video_codec="video/H264")
    robots.append(second)
    await publish_http(second, server.url, DEMO_SESSION, token)
    await wait_until(lambda: sent_frames(second) >= 6 * FPS, timeout_s=15, message="6 s more")
    assert second.location is not None
    async with (
        aiohttp.ClientSession(server.url) as http,
        http.delete(second.location, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        assert resp.status == 200, await resp.text()


def time_of_the_discontinuity(playlist: str) -> float:
    """Where the gap falls on the playlist's timeline: the EXTINF before the discontinuity added up."""
    before, _, _ = playlist.partition("#EXT-X-DISCONTINUITY")
    return sum(float(line.split(":")[1].rstrip(",")) for line in before.splitlines() if "#EXTINF" in line)


async def plays_past(page: Page, server: LecternServer, recording_id: str, position_s: float) -> None:
    await log_in(page, server, DEMO_LEARNER, "/me")
    await page.goto(f"{server.url}/replays/{recording_id}")
    await page.wait_for_selector("#player-box:not([hidden])")
    assert await page.evaluate("window.Hls !== undefined && window.Hls.isSupported()")
    await page.evaluate("() => { const v = document.querySelector('#video'); v.muted = true; v.play(); }")

    async def reached(t: float) -> dict[str, Any] | None:
        state: dict[str, Any] = await page.evaluate(STATE)
        assert state["error"] is None, state
        return state if state["t"] > t and state["frames"] > 0 else None

    at_gap = await wait_until(lambda: reached(position_s - 0.5), timeout_s=30, message="up to the gap")
    after = await wait_until(lambda: reached(position_s + 2.0), timeout_s=20, message="past the gap")
    assert after["frames"] > at_gap["frames"], (at_gap, after)  # pictures kept coming across the gap


async def test_hls_js_plays_a_replay_on_across_the_gap_of_a_publisher_reconnect(
    context: BrowserContext, phone: BrowserContext, lectern_server: LecternServer, robots: list[Robot]
) -> None:
    await lecture_with_a_reconnect(lectern_server, robots)
    (replay,) = await wait_until(
        lambda: listed_replays(lectern_server.url), timeout_s=30, message="the replay listed"
    )
    objects = lectern_server.data_dir / "objects"
    playlist = (objects / f"hls/{DEMO_SESSION}/{replay['id']}/camera/index.m3u8").read_text()
    assert playlist.count("#EXT-X-DISCONTINUITY") == 1, playlist
    gap_at = time_of_the_discontinuity(playlist)
    assert 3.0 <= gap_at <= 5.0, (gap_at, playlist)

    for ctx, name in ((context, "replay-across-a-gap"), (phone, "replay-across-a-gap")):
        page = await ctx.new_page()
        await plays_past(page, lectern_server, replay["id"], gap_at)
        await snap(page, name)
