"""The live room as learners see it, in real Chromium at a phone and a desktop size: the main video follows
what the expert publishes (camera only, screen only, both, a share started and stopped, a late joiner), the
stage (a learner promoted and demoted on a phone), the expert's browser closing, an ended session with its
replay, and sessions one may not watch. Every state is saved as a screenshot at both sizes (snap)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_PASSWORD, OVERFLOWING, log_in, seed_demo
from tests.browser.test_live_pages import frames_rising
from tests.integration.live.peers import Robot
from tests.integration.recording.support import publish_http
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

EXPERT = "13800000008"  # 孙立教授, expert of the demo's live session
LEARNERS = ("13800000010", "13800000011")  # 吴磊, 郑丽: enrolled in its course
OUTSIDER = "13800000012"  # 冯涛: not enrolled in it
SESSION = 1
GRACE_S = 4  # LECTERN_PUBLISHER_GRACE_S for these tests: how long an expert who vanished is waited for
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

MAIN = "#videos video.main-video"
PIP = "#videos video.pip-video"
# Brightness of a video's current picture, drawn to a canvas in the page: null before it has one.
PICTURE = """sel => { const v = document.querySelector(sel);
    if (!v || !v.videoWidth) return null;
    const c = document.createElement('canvas'); c.width = 64; c.height = 36;
    const g = c.getContext('2d'); g.drawImage(v, 0, 0, c.width, c.height);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let max = 0, sum = 0;
    for (let i = 0; i < d.length; i += 4) {
      const y = (d[i] + d[i + 1] + d[i + 2]) / 3; max = Math.max(max, y); sum += y;
    }
    return { max, mean: sum / (d.length / 4) }; }"""
# Samples the layout every 50 ms: whenever a feed is the main or the small video, it must have a picture
# (a video element without one shows black). Collects the violations in window.blackFrames.
WATCH_FOR_BLACK = """() => { window.blackFrames = []; window.layouts = [];
    setInterval(() => {
      const layout = document.querySelector('#videos').dataset.layout;
      if (window.layouts[window.layouts.length - 1] !== layout) window.layouts.push(layout);
      for (const v of document.querySelectorAll('#videos video.main-video, #videos video.pip-video')) {
        if (v.readyState < 2 || !v.videoWidth) window.blackFrames.push(`${v.id} in ${layout}`);
      }
    }, 50); }"""


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {
        **lectern_server_env,
        "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1",
        "LECTERN_SEGMENT_DURATION_S": "1",
        "LECTERN_PUBLISHER_GRACE_S": str(GRACE_S),
    }
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[dict[str, BrowserContext]]:
    """The expert's desktop, a learner on a desktop and a learner on a phone, each a context of its own."""
    made = {
        "studio": await browser.new_context(locale="zh-CN", viewport=DESKTOP),
        "desktop": await browser.new_context(locale="zh-CN", viewport=DESKTOP),
        "phone": await browser.new_context(
            locale="zh-CN", viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        ),
    }
    yield made
    for ctx in made.values():
        await ctx.close()


async def open_studio(ctx: BrowserContext, server: LecternServer) -> Page:
    studio = await ctx.new_page()
    studio.on("dialog", lambda dialog: dialog.accept())
    await log_in(studio, server, EXPERT, f"/studio/{SESSION}")
    await expect(studio.locator("#title")).to_contain_text("第一讲")
    return studio


async def go_live(studio: Page) -> None:
    await studio.get_by_role("button", name="开始直播").click()
    await expect(studio.locator("#state")).to_have_text("直播中", timeout=20_000)


async def open_watch(ctx: BrowserContext, server: LecternServer, phone: str) -> Page:
    page = await ctx.new_page()
    await log_in(page, server, phone, f"/watch/{SESSION}")
    return page


async def shot(page: Page, name: str) -> None:
    """Save the screenshot of a state; nothing on the page may stick out sideways (a phone would scroll)."""
    assert await page.evaluate(OVERFLOWING) == [], f"{name}: wider than the screen"
    await snap(page, name)


async def status_is(page: Page, text: str, timeout_s: float = 20) -> None:
    """The one status line says `text`, and nothing on the page contradicts it."""
    await expect(page.locator("#state")).to_have_text(text, timeout=timeout_s * 1000)
    body = await page.locator("body").inner_text()
    for other in ("连接中…", "直播尚未开始", "已结束" if text == "直播中" else "直播中"):
        if other not in text:
            assert other not in body, f"{other!r} shown beside {text!r}: {body}"


async def shows_a_picture(page: Page, selector: str) -> None:
    """The video at `selector` is visible, its frame count keeps rising, and its picture is not black."""
    await expect(page.locator(selector)).to_be_visible()
    await frames_rising(page, selector)
    picture = await page.evaluate(PICTURE, selector)
    assert picture is not None, f"{selector} has no picture"
    assert picture["max"] > 60, f"{selector} looks black: {picture}"


async def main_is(page: Page, feed: str, pip: str | None) -> None:
    """`feed` ("camera" | "screen") is the large video, `pip` the small one (or none), both moving."""
    await expect(page.locator(MAIN)).to_have_id(f"{feed}-video", timeout=20_000)
    if pip is None:
        await expect(page.locator(PIP)).to_have_count(0)
    else:
        await expect(page.locator(PIP)).to_have_id(f"{pip}-video", timeout=20_000)
        await shows_a_picture(page, PIP)
    await shows_a_picture(page, MAIN)


async def sound_button_only_if_blocked(page: Page) -> None:
    """点击开启声音 is offered exactly when the browser refused to play the lecture's sound by itself."""
    await page.wait_for_function("() => document.querySelector('#expert-audio').srcObject !== null")
    blocked = await page.evaluate("document.querySelector('#expert-audio').paused")
    if blocked:
        await expect(page.locator("#unmute")).to_be_visible()
    else:
        await expect(page.locator("#unmute")).to_be_hidden()


async def test_a_camera_only_lecture_fills_the_main_video_for_learners_waiting_before_it_starts(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    studio = await open_studio(people["studio"], lectern_server)
    learners = {size: await open_watch(people[size], lectern_server, phone) for size, phone in
                (("desktop", LEARNERS[0]), ("phone", LEARNERS[1]))}  # fmt: skip
    for page in learners.values():
        await status_is(page, "等待讲师开播")
        await expect(page.locator("#no-picture")).to_have_text("直播开始后，画面将在这里播放")
        await expect(page.locator("video:visible")).to_have_count(0)
        await shot(page, "watch-waiting")

    await go_live(studio)
    for page in learners.values():
        await status_is(page, "直播中")
        await main_is(page, "camera", pip=None)
        await expect(page.locator("#screen-video")).to_be_hidden()
        await expect(page.locator("#no-picture")).to_be_hidden()
        await sound_button_only_if_blocked(page)
        await shot(page, "watch-camera-only")


async def test_a_screen_only_lecture_shows_the_screen_large(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    learners = {size: await open_watch(people[size], lectern_server, phone) for size, phone in
                (("desktop", LEARNERS[0]), ("phone", LEARNERS[1]))}  # fmt: skip
    # A robot lecturer shares a screen (with sound) and no camera, through WHIP like any client.
    robot = Robot(videos=1, audio=True, size=(640, 360))
    try:
        await publish_http(
            robot, lectern_server.url, SESSION, await whip_token(lectern_server), "?video=screen"
        )
        for page in learners.values():
            await status_is(page, "直播中")
            await main_is(page, "screen", pip=None)
            await expect(page.locator("#camera-video")).to_be_hidden()
            await shot(page, "watch-screen-only")
    finally:
        await robot.close()


async def whip_token(server: LecternServer) -> str:
    """The expert's WHIP token, from the catalog as their studio gets it."""
    async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post("/api/auth/login", json={"phone": EXPERT, "password": DEMO_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf_token"]
        async with http.post(
            f"/api/sessions/{SESSION}/media-token", json={"purpose": "whip"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status in (200, 201), await r.text()
            token: str = (await r.json())["token"]
            return token


async def test_a_share_started_and_stopped_mid_lecture_moves_the_main_video_without_black_or_frozen_frames(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    studio = await open_studio(people["studio"], lectern_server)
    await go_live(studio)
    desktop = await open_watch(people["desktop"], lectern_server, LEARNERS[0])
    await status_is(desktop, "直播中")
    await main_is(desktop, "camera", pip=None)
    await desktop.evaluate(WATCH_FOR_BLACK)

    await studio.get_by_role("button", name="共享屏幕").click()
    await expect(studio.get_by_role("button", name="停止共享")).to_be_visible(timeout=20_000)
    await main_is(desktop, "screen", pip="camera")
    await shot(desktop, "watch-camera-and-screen")
    # A learner who joins now, after go-live and after the share started, gets the same layout.
    late = await open_watch(people["phone"], lectern_server, LEARNERS[1])
    await status_is(late, "直播中")
    await main_is(late, "screen", pip="camera")
    await shot(late, "watch-camera-and-screen")
    await late.evaluate(WATCH_FOR_BLACK)

    await studio.get_by_role("button", name="停止共享").click()
    for page in (desktop, late):
        await main_is(page, "camera", pip=None)  # large again, and moving: not the last screen frame
        await expect(page.locator("#screen-video")).to_be_hidden()
        await shot(page, "watch-share-stopped")

    await studio.get_by_role("button", name="共享屏幕").click()
    for page in (desktop, late):
        await main_is(page, "screen", pip="camera")
        assert await page.evaluate("window.blackFrames") == [], "a feed was shown before it had a picture"
    assert await desktop.evaluate("window.layouts") == ["camera", "screen+camera", "camera", "screen+camera"]


async def test_a_learner_promoted_and_demoted_on_a_phone_sees_their_preview_once_and_the_others_see_the_tile(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    studio = await open_studio(people["studio"], lectern_server)
    await go_live(studio)
    speaker = await open_watch(people["phone"], lectern_server, LEARNERS[0])  # 吴磊, on a phone
    other = await open_watch(people["desktop"], lectern_server, LEARNERS[1])
    for page in (speaker, other):
        await main_is(page, "camera", pip=None)
        await expect(page.locator("#stage-videos video:visible")).to_have_count(0)

    await speaker.get_by_role("button", name="举手发言").click()
    hand = studio.locator("#hands li", has_text="吴磊")
    await hand.get_by_role("button", name="请上台").click()
    await expect(speaker.locator("#message")).to_contain_text("您已上台", timeout=20_000)

    # The other learner sees a tile for the new speaker, named, with moving video.
    tile = other.locator('#stage-videos figure[data-seat="stage1"]')
    await expect(tile).to_be_visible(timeout=20_000)
    await expect(tile.locator("figcaption")).to_contain_text("吴磊")
    await shows_a_picture(other, '#stage-videos video[data-seat="stage1"]')
    await expect(studio.locator('#stage-videos figure[data-seat="stage1"]')).to_be_visible()
    # The speaker sees their own preview, once: not their stage tile as well.
    await expect(speaker.locator("#my-tile")).to_be_visible()
    await frames_rising(speaker, "#my-preview")
    await expect(speaker.locator("#stage-videos video:visible")).to_have_count(1)
    await expect(speaker.locator('#stage-videos figure[data-seat="stage1"]')).to_be_hidden()
    assert await speaker.evaluate("document.querySelector('#stage-videos video[data-seat=\"stage1\"]').muted")
    # On the phone the preview sits in the page's flow, not over the questions.
    preview_box = await speaker.locator("#my-tile").bounding_box()
    questions_box = await speaker.locator("#questions").bounding_box()
    assert preview_box is not None
    assert questions_box is not None
    assert preview_box["y"] + preview_box["height"] <= questions_box["y"], (preview_box, questions_box)
    await expect(speaker.get_by_role("button", name="举手发言")).to_be_hidden()
    await shot(speaker, "watch-on-stage")
    await shot(other, "watch-speaker-tile")

    await studio.locator("#speakers li", has_text="吴磊").get_by_role("button", name="请下台").click()
    await expect(speaker.locator("#message")).to_contain_text("讲师已请您下台")
    await expect(speaker.locator("#my-tile")).to_be_hidden()
    await expect(other.locator("#stage-videos video:visible")).to_have_count(0, timeout=20_000)
    await expect(studio.locator("#stage-videos video:visible")).to_have_count(0)
    await expect(speaker.locator("#stage-videos video:visible")).to_have_count(0)
    await expect(speaker.get_by_role("button", name="举手发言")).to_be_visible()
    await main_is(other, "camera", pip=None)
    await shot(speaker, "watch-after-demotion")
    await shot(other, "watch-after-demotion")


async def test_the_experts_browser_closing_tells_learners_it_is_waiting_then_that_the_lecture_ended(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    studio = await open_studio(people["studio"], lectern_server)
    await go_live(studio)
    learners = [await open_watch(people[size], lectern_server, phone) for size, phone in
                (("desktop", LEARNERS[0]), ("phone", LEARNERS[1]))]  # fmt: skip
    for page in learners:
        await main_is(page, "camera", pip=None)

    await people["studio"].close()  # the expert's browser is gone, without 结束直播
    for page in learners:
        await status_is(page, "讲师连接中断，正在等待重新连接…", timeout_s=20)
        await expect(page.locator("video:visible")).to_have_count(0)  # no black or frozen picture
        await expect(page.locator("#no-picture")).to_contain_text("画面已暂停")
        await shot(page, "watch-expert-lost")
    for page in learners:
        await status_is(page, "直播已结束", timeout_s=GRACE_S + 15)
        await expect(page.locator("video:visible")).to_have_count(0)
        await shot(page, "watch-ended-after-loss")


async def test_an_ended_session_says_so_offers_the_replay_and_nothing_to_type_into(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    studio = await open_studio(people["studio"], lectern_server)
    await go_live(studio)
    desktop = await open_watch(people["desktop"], lectern_server, LEARNERS[0])
    await main_is(desktop, "camera", pip=None)
    await desktop.locator("#chat-form input").fill("谢谢老师")
    await desktop.locator("#chat-form button").click()
    await expect(desktop.locator("#chat")).to_contain_text("谢谢老师")

    await studio.get_by_role("button", name="结束直播").click()
    await status_is(desktop, "直播已结束")
    await expect(desktop.locator("video:visible")).to_have_count(0)
    for form in ("#chat-form", "#ask-form"):
        await expect(desktop.locator(f"{form} input")).to_be_disabled()
        await expect(desktop.locator(f"{form} button")).to_be_disabled()
    await expect(desktop.get_by_role("button", name="举手发言")).to_be_hidden()
    await expect(desktop.locator("#chat")).to_contain_text("谢谢老师")  # what was said stays readable
    await shot(desktop, "watch-ended")
    replay = desktop.get_by_role("link", name="观看回放")
    await expect(replay).to_be_visible(timeout=40_000)
    await expect(replay).to_have_attribute("href", re.compile(r"^/replays/[A-Za-z0-9_-]+$"))
    href = await replay.get_attribute("href")
    await shot(desktop, "watch-ended-replay")

    # Opened afterwards (on a phone), the page says the same at once, and nothing waits for a lecture.
    phone = await open_watch(people["phone"], lectern_server, LEARNERS[1])
    await status_is(phone, "直播已结束")
    await expect(phone.get_by_role("link", name="观看回放")).to_have_attribute(
        "href", href or "", timeout=20_000
    )
    await expect(phone.locator("video:visible")).to_have_count(0)
    await expect(phone.locator("#chat-form input:enabled:visible")).to_have_count(0)
    await shot(phone, "watch-ended-replay")
    await phone.get_by_role("link", name="观看回放").click()
    await phone.wait_for_url(f"{lectern_server.url}{href}")


async def test_an_answered_question_reads_as_answered_and_its_undo_button_fits_on_a_phone(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    expert_phone = people["phone"]
    studio = await open_studio(expert_phone, lectern_server)
    learner = await open_watch(people["desktop"], lectern_server, LEARNERS[0])
    await status_is(learner, "等待讲师开播")
    await learner.locator("#ask-form input").fill("自动化码头的岸桥远程操控延迟要求是多少毫秒？")
    await learner.locator("#ask-form button").click()
    question = studio.locator("#questions li", has_text="岸桥远程操控")
    await question.get_by_role("button", name="标为已答").click()

    for page in (studio, learner):
        answered = page.locator("#questions li.answered", has_text="岸桥远程操控")
        await expect(answered.locator(".answered-tag")).to_have_text("已答")
        decoration = await answered.evaluate("li => getComputedStyle(li).textDecorationLine")
        assert "line-through" not in decoration, "an answered question is not a deleted one"
    undo = question.get_by_role("button", name="撤销")
    await expect(undo).to_be_visible()
    # One client rect per line box of the button's text.
    lines = await undo.evaluate(
        "b => { const r = document.createRange(); r.selectNodeContents(b); "
        "return new Set([...r.getClientRects()].map(rect => Math.round(rect.top))).size; }"
    )
    assert lines == 1, f"the undo button wraps to {lines} lines on a phone"
    box = await undo.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390, "the undo button leaves the phone's screen"
    await shot(studio, "studio-answered-question")
    await shot(learner, "watch-answered-question")
    await undo.click()
    await expect(learner.locator("#questions li.answered")).to_have_count(0)


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_a_session_one_may_not_watch_says_why_and_nothing_else(
    lectern_server: LecternServer, people: dict[str, BrowserContext], size: str
) -> None:
    cases: list[tuple[str, str, str, Any]] = [
        (LEARNERS[0], "/watch/9999", "没有找到该课次", "watch-not-found"),
        (OUTSIDER, f"/watch/{SESSION}", "无权观看", "watch-forbidden"),
    ]
    for phone, path, text, name in cases:
        ctx = people[size]
        await ctx.clear_cookies()
        page = await ctx.new_page()
        await log_in(page, lectern_server, phone, path)
        await status_is(page, text)
        await expect(page.locator("video:visible")).to_have_count(0)
        await expect(page.locator("#room")).to_be_hidden()
        await shot(page, name)
        await page.close()
