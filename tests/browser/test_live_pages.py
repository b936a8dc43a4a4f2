"""A live seminar in real Chromium: the expert publishes camera and screen from the studio page; two
learners watch, chat and ask; one is promoted to the stage and the other sees them; the expert ends it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.test_catalog_pages import log_in, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

EXPERT = "13800000008"  # 孙立教授, expert of the demo's live session
LEARNERS = ("13800000010", "13800000011")  # 吴磊, 郑丽: enrolled in its course
SESSION = 1  # the demo's only session: 第一讲：自动化码头总体架构

FRAMES = (
    "sel => { const v = document.querySelector(sel);"
    " return v ? v.getVideoPlaybackQuality().totalVideoFrames : 0; }"
)


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    # aioice skips 127.0.0.1 unless told; Chromium runs with --allow-loopback-in-peer-connection.
    env = {**lectern_server_env, "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1"}
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    made = [
        await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800}) for _ in range(3)
    ]
    yield made
    for ctx in made:
        await ctx.close()


async def frames_rising(page: Page, selector: str, timeout_s: float = 20.0) -> None:
    """The <video> at `selector` keeps decoding frames: its count grows twice in a row."""
    await page.wait_for_function(f"() => ({FRAMES})('{selector}') > 0", timeout=timeout_s * 1000)
    for _ in range(2):
        before = await page.evaluate(FRAMES, selector)
        await page.wait_for_function(f"() => ({FRAMES})('{selector}') > {before}", timeout=timeout_s * 1000)


async def test_a_workshop_from_studio_to_stage_to_the_end(
    lectern_server: LecternServer, contexts: list[BrowserContext]
) -> None:
    studio, learner_a, learner_b = [await ctx.new_page() for ctx in contexts]
    studio.on("dialog", lambda dialog: dialog.accept())

    await log_in(studio, lectern_server, EXPERT, f"/studio/{SESSION}")
    await expect(studio.locator("#title")).to_contain_text("第一讲")
    await studio.get_by_role("button", name="开始直播").click()
    await expect(studio.locator("#state")).to_have_text("直播中", timeout=20_000)
    await studio.get_by_role("button", name="共享屏幕").click()
    await expect(studio.get_by_role("button", name="停止共享")).to_be_visible(timeout=20_000)

    for page, phone in ((learner_a, LEARNERS[0]), (learner_b, LEARNERS[1])):
        await log_in(page, lectern_server, phone, f"/watch/{SESSION}")
    for page in (learner_a, learner_b):
        # The page first says 正在进入直播间… (not 连接中…): wait for the live state itself.
        await expect(page.locator("#state")).to_have_text("直播中", timeout=20_000)
        # With camera and screen both live, the screen is large and the camera small.
        await expect(page.locator("#screen-video")).to_have_class(re.compile(r"\bmain-video\b"))
        await frames_rising(page, "#videos video.main-video")
        await expect(page.locator("#camera-video")).to_have_class(re.compile(r"\bpip-video\b"))
        await expect(page.locator("#camera-video")).to_be_visible()
        await frames_rising(page, "#videos video.pip-video")
    await expect(studio.locator("#viewers")).to_have_text("2")

    # Chat and questions both ways.
    await learner_a.locator("#chat-form input").fill("老师好，听得很清楚")
    await learner_a.locator("#chat-form button").click()
    await expect(studio.locator("#chat")).to_contain_text("老师好，听得很清楚")
    await studio.locator("#chat-form input").fill("欢迎大家")
    await studio.locator("#chat-form button").click()
    await expect(learner_b.locator("#chat")).to_contain_text("欢迎大家")
    await learner_b.locator("#ask-form input").fill("岸桥远程操控的延迟要求是多少？")
    await learner_b.locator("#ask-form button").click()
    question = studio.locator("#questions li", has_text="岸桥远程操控")
    await expect(question).to_be_visible()
    await question.get_by_role("button", name="标为已答").click()
    await expect(learner_a.locator("#questions li.answered", has_text="岸桥远程操控")).to_be_visible()

    # A raised hand, a promotion, and the other learner sees the new speaker (no empty seats before).
    await expect(learner_b.locator("#stage-videos video:visible")).to_have_count(0)
    await learner_a.get_by_role("button", name="举手发言").click()
    hand = studio.locator("#hands li", has_text="吴磊")
    await expect(hand).to_be_visible()
    await hand.get_by_role("button", name="请上台").click()
    await expect(learner_a.locator("#message")).to_contain_text("您已上台", timeout=20_000)
    await frames_rising(learner_b, '#stage-videos video[data-seat="stage1"]')
    await expect(learner_b.locator('#stage-videos video[data-seat="stage1"]')).to_be_visible()

    # The expert ends the session: every learner is told.
    await studio.get_by_role("button", name="结束直播").click()
    for page in (learner_a, learner_b):
        await expect(page.locator("#state")).to_have_text("直播已结束", timeout=20_000)
        await expect(page.locator("video:visible")).to_have_count(0)
