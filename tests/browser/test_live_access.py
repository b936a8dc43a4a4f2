"""Who may be in a live room, as people see it in Chromium at a phone and a desktop size: a learner who
withdraws on their phone while watching on their laptop is told so and the picture stops (the other
learner watches on); a fourth window of one learner takes the room from their oldest, which says so; a
studio opened too early says when going live opens and refuses in Chinese."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.test_catalog_pages import BASE_ADMIN, DEMO_PASSWORD, log_in, seed_demo
from tests.browser.test_live_pages import FRAMES, frames_rising
from tests.browser.test_watch_journeys import (
    DESKTOP,
    EXPERT,
    LEARNERS,
    PHONE,
    SESSION,
    shot,
    status_is,
    whip_token,
)
from tests.integration.live.peers import Robot
from tests.integration.recording.support import publish_http
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {**lectern_server_env, "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1", "LECTERN_SEGMENT_DURATION_S": "1"}
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture
async def sizes(browser: Browser) -> AsyncIterator[dict[str, BrowserContext]]:
    made = {
        "desktop": await browser.new_context(locale="zh-CN", viewport=DESKTOP),
        "phone": await browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        ),
    }
    yield made
    for ctx in made.values():
        await ctx.close()


async def frames(page: Page) -> int:
    return int(await page.evaluate(FRAMES, "#camera-video"))


async def test_a_learner_who_withdraws_on_their_phone_while_watching_on_their_laptop_is_told_and_stops(
    lectern_server: LecternServer, sizes: dict[str, BrowserContext], browser: Browser
) -> None:
    laptop = await sizes["desktop"].new_page()
    await log_in(laptop, lectern_server, LEARNERS[0], f"/watch/{SESSION}")
    other = await sizes["phone"].new_page()
    await log_in(other, lectern_server, LEARNERS[1], f"/watch/{SESSION}")
    robot = Robot(videos=1, audio=True, size=(640, 360))
    own_phone = await browser.new_context(
        locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    try:
        await publish_http(
            robot, lectern_server.url, SESSION, await whip_token(lectern_server), "?video=camera"
        )
        for page in (laptop, other):
            await status_is(page, "直播中")
            await frames_rising(page, "#camera-video")

        # The same learner, on their phone, leaves the course.
        phone = await own_phone.new_page()
        phone.on("dialog", lambda dialog: dialog.accept())
        course_id = (await (await phone.request.get(f"{lectern_server.url}/api/sessions/{SESSION}")).json())[
            "course_id"
        ]
        await log_in(phone, lectern_server, LEARNERS[0], f"/courses/{course_id}")
        await phone.get_by_role("button", name="退出课程").click()
        await expect(phone.locator("#message")).to_have_text("已退出该课程。")
        await shot(phone, "course-withdrawn")

        # The laptop is told, in Chinese, and its picture stops while the other learner's goes on.
        await expect(laptop.locator("#message")).to_contain_text("已退出", timeout=15_000)
        stopped_at, others_at = await frames(laptop), await frames(other)
        await other.wait_for_function(f"() => ({FRAMES})('#camera-video') > {others_at + 60}", timeout=20_000)
        assert await frames(laptop) <= stopped_at + 10  # what was already buffered, at most
        await frames_rising(other, "#camera-video")
        await shot(laptop, "watch-withdrawn")
        await shot(other, "watch-live-after-another-withdrew")
    finally:
        await robot.close()
        await own_phone.close()


async def test_a_fourth_window_of_one_learner_takes_the_room_from_their_oldest_which_says_so(
    lectern_server: LecternServer, sizes: dict[str, BrowserContext]
) -> None:
    pages: list[Page] = []
    for n in range(3):  # three tabs on the laptop
        page = await sizes["desktop"].new_page()
        if n == 0:
            await log_in(page, lectern_server, LEARNERS[0], f"/watch/{SESSION}")
        else:
            await page.goto(f"{lectern_server.url}/watch/{SESSION}")
        await status_is(page, "等待讲师开播")
        pages.append(page)
    phone = await sizes["phone"].new_page()
    await log_in(phone, lectern_server, LEARNERS[0], f"/watch/{SESSION}")
    await status_is(phone, "等待讲师开播")

    oldest = pages[0]
    await expect(oldest.locator("#message")).to_have_text(
        "您已在其他窗口或设备打开本直播间，此窗口的聊天与互动已断开。", timeout=15_000
    )
    await shot(oldest, "watch-replaced-by-another-window")
    # The newest window works: what it says reaches the other open windows.
    await phone.locator("#chat-form input").fill("手机上也能聊天")
    await phone.locator("#chat-form input").press("Enter")
    for page in (phone, pages[1], pages[2]):
        await expect(page.locator("#chat")).to_contain_text("手机上也能聊天")
    await expect(oldest.locator("#chat")).not_to_contain_text("手机上也能聊天")
    await shot(phone, "watch-newest-window")


async def new_session_tomorrow(server: LecternServer) -> int:
    """The provider's admin schedules a second lecture of the demo's live course for tomorrow."""
    async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post("/api/auth/login", json={"phone": BASE_ADMIN, "password": DEMO_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = {"X-CSRF-Token": (await r.json())["csrf_token"]}
        async with http.get(f"/api/sessions/{SESSION}") as r:
            first: dict[str, Any] = await r.json()
        start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
        body = {
            "title": "第二讲：远程操控与安全",
            "kind": "live",
            "scheduled_start": start.isoformat(),
            "scheduled_end": (start + timedelta(hours=2)).isoformat(),
            "expert_ids": [e["id"] for e in first["experts"]],
        }
        async with http.post(f"/api/courses/{first['course_id']}/sessions", json=body, headers=csrf) as r:
            assert r.status == 201, await r.text()
            return int((await r.json())["id"])


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_a_studio_opened_too_early_says_when_going_live_opens_and_refuses_in_chinese(
    lectern_server: LecternServer, sizes: dict[str, BrowserContext], size: str
) -> None:
    sid = await new_session_tomorrow(lectern_server)
    studio = await sizes[size].new_page()
    await log_in(studio, lectern_server, EXPERT, f"/studio/{sid}")
    timing = studio.locator("#timing")
    await expect(timing).to_contain_text("距离计划开始还有")
    await expect(timing).to_contain_text("计划开始前 30 分钟起可以开始直播")
    await expect(timing).not_to_contain_text("现在开始直播也可以")
    await shot(studio, "studio-too-early")
    await studio.get_by_role("button", name="开始直播").click()
    await expect(studio.locator("#message")).to_contain_text(
        "还未到开播时间：计划开始前 30 分钟起可以开始直播（"
    )
    await expect(studio.locator("#state")).not_to_have_text("直播中")
    await shot(studio, "studio-too-early-refused")
