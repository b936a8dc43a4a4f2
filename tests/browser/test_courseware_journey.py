"""Shared courseware in real Chromium, the way people use it (issue 15, R27): an expert creates courseware on
我的课件 and uploads a short video through the page (the progress is shown), the server checks and renders
it, the expert submits it; a reviewer of the CE association watches it on 课件审核 and approves it; a
learner on a phone finds the course in the catalog, enrolls, watches it on the replay page (the picture
moves and is not black) and sees the pending 学时 on 我的学时.

The video is generated with ffmpeg (15 s); an administrator stores a short credit policy first
(heartbeats every 2 s, 1 学时 per minute to 0.1) so that the short viewing earns 学时.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_PASSWORD, log_in, seed_demo
from tests.browser.test_live_pages import frames_rising
from tests.browser.test_watch_journeys import shows_a_picture
from tests.helpers import wait_until
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

ADMIN, REVIEWER, EXPERT, LEARNER = "13800000001", "13800000003", "13800000008", "13800000010"
TITLE = "港口起重机安全操作要点"
VIDEO_S = 15
POLICY = {
    "heartbeat_period_s": 2,
    "minutes_per_xueshi": 1,
    "rounding_unit": "0.1",
    "note": "浏览器测试：短心跳周期，每分钟计 1 学时",
}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
# The upload's progress as the page wrote it (the line under the file), collected as it changes.
WATCH_PROGRESS = """() => { window.uploadTexts = [];
    new MutationObserver(() => {
      for (const el of document.querySelectorAll('.upload-text')) {
        const last = window.uploadTexts[window.uploadTexts.length - 1];
        if (el.textContent !== last) window.uploadTexts.push(el.textContent);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true }); }"""


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A short H.264/AAC lecture: a moving test picture and a tone."""
    path = tmp_path / "crane-safety.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={VIDEO_S}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={VIDEO_S}", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-bf", "0", "-g", "50", "-c:a", "aac", "-shortest", str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {"LECTERN_CREDIT_SETTLE_EVERY_S": "1", "LECTERN_SEGMENT_DURATION_S": "2"}
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[dict[str, BrowserContext]]:
    """The expert and the reviewer at a desk, the learner on a phone."""
    desk = {"locale": "zh-CN", "viewport": {"width": 1280, "height": 800}}
    made = {
        EXPERT: await browser.new_context(**desk),  # type: ignore[arg-type]
        REVIEWER: await browser.new_context(**desk),  # type: ignore[arg-type]
        LEARNER: await browser.new_context(locale="zh-CN", **PHONE),  # type: ignore[arg-type]
    }
    yield made
    for ctx in made.values():
        await ctx.close()


async def store_policy(server: LecternServer) -> None:
    async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post("/api/auth/login", json={"phone": ADMIN, "password": DEMO_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf_token"]
        async with http.post("/api/credit-policy", json=POLICY, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 201, await r.text()


async def expert_shares(page: Page, server: LecternServer, video: Path) -> None:
    await log_in(page, server, EXPERT, "/teach/courseware")
    await expect(page.locator("nav")).to_contain_text("我的课件")
    await page.get_by_text("新建课件").click()
    await page.get_by_label("课件名称").fill(TITLE)
    await page.get_by_label("科目类别").select_option("professional")
    await page.get_by_label("简介").fill("岸桥、门机作业前检查与常见事故案例")
    await page.get_by_role("button", name="创建").click()
    item = page.locator("#courseware > li", has_text=TITLE)
    await expect(item).to_be_visible()

    await page.evaluate(WATCH_PROGRESS)
    await item.locator('input[name="video"]').set_input_files(str(video))
    await item.get_by_role("button", name="上传").click()
    await expect(page.locator("#message")).to_contain_text("上传完成", timeout=30_000)
    texts: list[str] = await page.evaluate("() => window.uploadTexts")
    assert any(re.fullmatch(r"视频：已上传 \d+%", t) for t in texts), texts
    assert "视频：上传完成" in texts, texts
    await snap(page, "courseware-uploaded")

    version = page.locator("#courseware > li", has_text=TITLE).locator(".versions > li").first
    await expect(version).to_have_attribute("data-processing", "ready", timeout=90_000)  # checked, rendered
    await expect(version).to_contain_text("第 1 版")
    await expect(version).to_contain_text("时长 15秒")
    await version.get_by_role("button", name="提交审核").click()
    version = page.locator("#courseware > li", has_text=TITLE).locator(".versions > li").first
    await expect(version).to_have_attribute("data-state", "submitted")
    await expect(version).to_contain_text("审核中")
    await snap(page, "courseware-submitted")


async def reviewer_approves(page: Page, server: LecternServer) -> None:
    await log_in(page, server, REVIEWER, "/review/courseware")
    await expect(page.locator("nav")).to_contain_text("课件审核")
    item = page.locator("#queue > li", has_text=TITLE)
    await expect(item).to_contain_text("孙立教授")
    await item.get_by_role("button", name="观看视频").click()
    await frames_rising(page, "#queue video")
    await shows_a_picture(page, "#queue video")
    await snap(page, "courseware-review")
    await item.get_by_label("审核意见").fill("内容准确，同意共享")
    await item.get_by_role("button", name="通过").click()
    await expect(page.locator("#message")).to_contain_text("已通过")
    await expect(page.locator("#queue")).to_contain_text("暂无待审核的课件")


async def learner_watches(page: Page, server: LecternServer) -> None:
    await log_in(page, server, LEARNER, "/courses")
    await page.get_by_label("搜索课程").fill("起重机")
    await page.get_by_role("link", name=TITLE).click()
    await expect(page.locator("#meta")).to_contain_text("录播")
    await expect(page.locator("#meta")).to_contain_text("青岛市继续教育协会")
    await page.get_by_role("button", name="报名学习").click()
    await expect(page.locator("#message")).to_contain_text("报名成功")
    await page.get_by_role("link", name=re.compile("观看回放")).first.click()
    await page.wait_for_selector("#player-box:not([hidden])")
    await page.get_by_role("button", name="播放").click()
    await expect(page.locator("#counting")).to_have_text("正在计时", timeout=15_000)
    await shows_a_picture(page, "#video")
    await snap(page, "courseware-learner-watching")
    await expect(page.get_by_role("button", name="重新播放")).to_be_visible(timeout=60_000)

    course = page.locator("#courses li", has_text=TITLE)
    entry = course.locator(".entry", has=page.get_by_text("回放", exact=True))

    async def credited() -> bool:
        await page.goto(f"{server.url}/me/credits")
        await expect(page.locator("#totals")).not_to_be_empty()
        return await entry.count() == 1

    await wait_until(credited, timeout_s=40, interval_s=1.0, message="the replay's entry on 我的学时")
    await expect(entry).to_contain_text("待审核")
    text = await entry.inner_text()
    found = re.search(r"([\d.]+) 学时", text)
    assert found, text
    earned = Decimal(found.group(1))
    assert Decimal("0.1") <= earned <= Decimal("0.2"), text  # 15 s at one 学时 a minute, floored to 0.1
    await expect(page.locator('[data-total="professional"] .pending')).to_have_text(f"待审核 {earned} 学时")
    await snap(page, "courseware-learner-credit")


async def test_an_expert_shares_a_video_a_reviewer_approves_it_and_a_learner_earns_pending_credit(
    lectern_server: LecternServer, people: dict[str, BrowserContext], video: Path
) -> None:
    await store_policy(lectern_server)
    expert = await people[EXPERT].new_page()
    await expert_shares(expert, lectern_server, video)
    await reviewer_approves(await people[REVIEWER].new_page(), lectern_server)
    # The expert sees the decision and the shared course.
    await expert.reload()
    item = expert.locator("#courseware > li", has_text=TITLE)
    await expect(item.locator(".versions > li").first).to_have_attribute("data-state", "approved")
    await expect(item).to_contain_text("内容准确，同意共享")
    await expect(item.get_by_role("link", name=re.compile("已共享"))).to_be_visible()
    await learner_watches(await people[LEARNER].new_page(), lectern_server)
