"""Before, during and after a session, as people walk it (issue 9): each role lands on its home after
logging in; the expert reaches the studio in one tap; a learner who opens the studio is told why not and
no camera is asked for; unknown pages answer in Chinese; a lecture given from the studio (screen only) is
live on the learner's page, then ended with its replay and progress, and cannot be restarted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_PASSWORD, log_in, seed_demo
from tests.helpers import wait_until
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

EXPERT, LEARNER, SECOND_LEARNER = "13800000008", "13800000010", "13800000011"
PROVIDER_ADMIN, BUREAU = "13800000004", "13800000002"
SESSION = 1  # the demo's live session, taught by 孙立教授, starting 25 minutes after seeding
SESSION_TITLE = "第一讲：自动化码头总体架构"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

# Counts every request for a camera, microphone or screen the page makes (before any page script runs).
MEDIA_COUNTER = """(() => {
  const counts = { getUserMedia: 0, getDisplayMedia: 0, enumerateDevices: 0, video: 0 };
  window.__media = counts;
  const md = navigator.mediaDevices;
  if (!md) return;
  for (const name of ["getUserMedia", "getDisplayMedia", "enumerateDevices"]) {
    const original = md[name].bind(md);
    md[name] = (constraints) => {
      counts[name] += 1;
      if (name === "getUserMedia" && constraints && constraints.video) counts.video += 1;
      return original(constraints);
    };
  }
})();"""
FRAMES = "sel => document.querySelector(sel).getVideoPlaybackQuality().totalVideoFrames"
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''))"""


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    env = {**lectern_server_env, "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1", "LECTERN_SEGMENT_DURATION_S": "1"}
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture(params=sorted(SIZES))
def size(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def new_context(browser: Browser, size: str) -> BrowserContext:
    phone = size == "phone"
    return await browser.new_context(
        locale="zh-CN",
        viewport=SIZES[size],
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=2 if phone else 1,
    )


@pytest.fixture
async def sized(browser: Browser, size: str) -> Any:
    ctx = await new_context(browser, size)
    yield ctx
    await ctx.close()


async def log_in_home(page: Page, server: LecternServer, phone: str) -> None:
    """Log in from the login page itself (no `next`): where the page lands is the role's home."""
    await page.goto(f"{server.url}/login")
    await page.get_by_label("手机号").fill(phone)
    await page.get_by_label("密码").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="登录").click()


async def fits_the_screen(page: Page) -> None:
    width = await page.evaluate("window.innerWidth")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    assert await page.evaluate(OVERFLOWING) == []


def minutes_seconds(duration_s: float) -> str:
    """How the pages write a duration: 12分05秒, 45秒."""
    minutes, seconds = divmod(round(duration_s), 60)
    return f"{minutes}分{seconds:02d}秒" if minutes else f"{seconds}秒"


def uncaught(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    return errors


async def test_an_expert_lands_on_my_teaching_and_reaches_the_studio_in_one_tap(
    sized: BrowserContext, lectern_server: LecternServer, size: str
) -> None:
    page = await sized.new_page()
    errors = uncaught(page)
    await log_in_home(page, lectern_server, EXPERT)
    await page.wait_for_url(f"{lectern_server.url}/teach")
    await expect(page.locator("h1")).to_have_text("我的授课")
    session = page.locator(f'#upcoming li[data-session="{SESSION}"]')
    await expect(session).to_contain_text(SESSION_TITLE)
    await expect(session.locator(".badge")).to_have_text("未开始")
    await expect(session).to_contain_text("智慧港口自动化码头关键技术")
    await expect(page.locator("#past")).to_contain_text("暂无已结束的课次")
    # The nav offers the expert's homes (teaching, shared courseware, mentorship), not a learner's empty one.
    await expect(page.locator("nav a")).to_have_text(["课程目录", "我的授课", "我的课件", "师承带徒", "退出"])
    await fits_the_screen(page)
    await snap(page, "teach-home")

    await session.get_by_role("link", name="进入讲师直播间").click()
    await page.wait_for_url(f"{lectern_server.url}/studio/{SESSION}")
    await expect(page.locator("#title")).to_have_text(f"讲师直播间 · {SESSION_TITLE}")
    await expect(page.locator("#session-state .badge")).to_have_text("未开始")
    # A lecture 25 minutes away: going live now is early (but allowed), and the studio says what learners
    # would see.
    await expect(page.locator("#timing")).to_contain_text("距离计划开始还有")
    await expect(page.locator("#timing")).to_contain_text("已报名的学员此时进入直播间即可观看")
    await expect(page.get_by_role("button", name="开始直播")).to_be_enabled()
    await page.wait_for_function(f"() => ({FRAMES})('#preview') > 0")  # the camera preview plays
    await snap(page, "studio-scheduled")
    assert errors == []


async def test_a_learner_opening_the_studio_is_refused_in_chinese_and_no_camera_is_asked_for(
    sized: BrowserContext, lectern_server: LecternServer
) -> None:
    await sized.add_init_script(MEDIA_COUNTER)
    page = await sized.new_page()
    errors = uncaught(page)
    await log_in(page, lectern_server, LEARNER, f"/studio/{SESSION}")
    refusal = page.locator("#refusal")
    await expect(refusal).to_contain_text("您不是本课次的讲师，无法进入讲师直播间。")
    watch = refusal.get_by_role("link", name="进入直播间观看")
    await expect(watch).to_have_attribute("href", f"/watch/{SESSION}")
    await expect(page.locator("#studio")).to_be_hidden()
    await expect(page.get_by_role("button", name="开始直播")).to_be_hidden()
    await fits_the_screen(page)
    await snap(page, "studio-refused")
    counts = await page.evaluate("window.__media")
    assert counts == {"getUserMedia": 0, "getDisplayMedia": 0, "enumerateDevices": 0, "video": 0}
    assert errors == []
    await watch.click()
    await page.wait_for_url(f"{lectern_server.url}/watch/{SESSION}")


async def test_an_unknown_page_shows_the_chinese_404_page_while_the_api_keeps_json_errors(
    sized: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await sized.new_page()
    for path in ("/no-such-page", "/courses/not-a-number", "/studio/1/extra"):
        response = await page.goto(f"{lectern_server.url}{path}")
        assert response is not None
        assert response.status == 404
        await expect(page.locator("h1")).to_have_text("页面不存在（404）")
        await expect(page.get_by_role("link", name="返回首页")).to_have_attribute("href", "/")
    await fits_the_screen(page)
    await snap(page, "page-404")
    # A folder of the static files is forbidden: the Chinese 403 page.
    response = await page.goto(f"{lectern_server.url}/static/js/")
    assert response is not None
    assert response.status == 403
    await expect(page.locator("h1")).to_have_text("没有权限访问此页面（403）")
    await snap(page, "page-403")
    async with aiohttp.ClientSession(lectern_server.url) as http:
        for path in ("/api/no-such-route", "/whip/nothing", "/hls/"):
            async with http.get(path) as r:
                assert r.status == 404, path
                assert r.content_type == "application/json", path
                assert (await r.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("phone", "home", "heading"),
    [(PROVIDER_ADMIN, "/provider", "机构后台"), (LEARNER, "/me", "我的学习"), (BUREAU, "/", None)],
    ids=["provider-admin", "learner", "bureau"],
)
async def test_each_role_lands_on_its_home_after_logging_in(
    sized: BrowserContext, lectern_server: LecternServer, phone: str, home: str, heading: str | None
) -> None:
    page = await sized.new_page()
    await log_in_home(page, lectern_server, phone)
    await page.wait_for_url(f"{lectern_server.url}{home}")
    if heading:
        await expect(page.locator("h1")).to_contain_text(heading)
        return
    # The bureau supervises providers, reads the review list, decides some credit, reads the staff records
    # and the credit policy; the landing page links its home.
    welcome = page.locator("#welcome")
    await expect(welcome).to_contain_text("您好，王建国（人社局）。")
    await expect(
        welcome.get_by_role("link", name="监管：各机构的课程、课次、学时、审核时效与核对（超额标记）")
    ).to_have_attribute("href", "/supervision")
    await expect(page.locator("nav a")).to_have_text(
        ["课程目录", "待核查", "学时审核", "学时台账", "学时规则", "监管", "退出"]
    )
    await fits_the_screen(page)
    await snap(page, "home-bureau")


async def test_the_course_page_offers_its_expert_the_studio_and_no_enrollment(
    sized: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await sized.new_page()
    course_id = (await session_json(lectern_server))["course_id"]
    await log_in(page, lectern_server, EXPERT, f"/courses/{course_id}")
    session = page.locator(f'#sessions li[data-session="{SESSION}"]')
    await expect(session.get_by_role("link", name="进入讲师直播间")).to_have_attribute(
        "href", f"/studio/{SESSION}"
    )
    await expect(session.locator(".badge")).to_have_text("未开始")
    await expect(page.locator("#message")).to_contain_text("您是本课程的主讲专家")
    await expect(page.get_by_role("button", name="报名学习")).to_be_hidden()
    await fits_the_screen(page)
    await snap(page, "course-expert")


# -- a lecture from the studio to the replay ------------------------------------------------------------


async def api_as(server: LecternServer, phone: str) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    """A logged-in API client and its CSRF header (what the pages hold after logging in)."""
    http = aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post("/api/auth/login", json={"phone": phone, "password": DEMO_PASSWORD}) as r:
        assert r.status == 200
        return http, {"X-CSRF-Token": (await r.json())["csrf_token"]}


async def session_json(server: LecternServer) -> dict[str, Any]:
    """The session as an enrolled learner sees it (replay ids are named only to those who may watch)."""
    http, _csrf = await api_as(server, LEARNER)
    async with http, http.get(f"/api/sessions/{SESSION}") as r:
        body: dict[str, Any] = await r.json()
        return body


async def test_a_screen_only_lecture_is_live_then_ended_with_its_replay_and_cannot_be_restarted(
    browser: Browser, lectern_server: LecternServer
) -> None:
    url = lectern_server.url
    expert_ctx = await new_context(browser, "desktop")
    learners = {size: await new_context(browser, size) for size in SIZES}
    await expert_ctx.add_init_script(MEDIA_COUNTER)
    try:
        studio = await expert_ctx.new_page()
        studio_errors = uncaught(studio)
        studio.on("dialog", lambda dialog: dialog.accept())
        await log_in(studio, lectern_server, EXPERT, f"/studio/{SESSION}")
        await expect(studio.get_by_role("button", name="开始直播")).to_be_enabled()
        # Screen only: the camera goes off, and going live shares the (fake) screen with the microphone.
        await studio.get_by_label("不使用摄像头").check()
        await expect(studio.get_by_role("combobox", name="摄像头")).to_be_disabled()
        await studio.get_by_role("button", name="开始直播").click()
        await expect(studio.locator("#state")).to_have_text("直播中", timeout=20_000)
        await expect(studio.locator("#message")).to_have_text("直播已开始（屏幕共享，不使用摄像头）。")
        await expect(studio.locator("#timing")).to_contain_text("直播已开始，比计划提前")
        await expect(studio.locator("#session-state .badge")).to_have_text("直播中")
        await studio.wait_for_function(f"() => ({FRAMES})('#preview') > 0")
        counts = await studio.evaluate("window.__media")
        assert counts["getDisplayMedia"] == 1
        # The camera was opened once for the preview, before 不使用摄像头 was ticked; not since.
        assert counts["video"] == 1
        await snap(studio, "studio-live-screen-only")

        async def live() -> bool:
            return (await session_json(lectern_server))["status"] == "live"

        await wait_until(live, timeout_s=20, message="the session live in the catalog")
        for size, ctx in learners.items():
            page = await ctx.new_page()
            await log_in(page, lectern_server, LEARNER if size == "phone" else SECOND_LEARNER, "/me")
            item = page.locator(f'#live li[data-session="{SESSION}"]')
            await expect(item.locator(".badge")).to_have_text("直播中")
            await expect(item.get_by_role("link", name="进入直播间")).to_have_attribute(
                "href", f"/watch/{SESSION}"
            )
            await expect(page.locator("#upcoming")).not_to_contain_text(SESSION_TITLE)
            await fits_the_screen(page)
            await snap(page, "me-live")

        await studio.get_by_role("button", name="结束直播").click()
        await expect(studio.locator("#state")).to_have_text("已结束", timeout=20_000)
        await expect(studio.get_by_role("button", name="本课次已结束")).to_be_disabled()

        async def replay() -> Any:
            return (await session_json(lectern_server))["replay"]

        recording = await wait_until(replay, timeout_s=30, message="the session's replay")
        assert (await session_json(lectern_server))["status"] == "ended"
        assert recording["duration_s"] > 1

        # The expert comes back to the studio: the session is over, it says so, and the replay is there.
        await studio.reload()
        await expect(studio.locator("#session-state .badge")).to_have_text("已结束")
        await expect(studio.get_by_role("button", name="本课次已结束")).to_be_disabled()
        await expect(studio.locator("#timing")).to_contain_text("本课次已结束，不能再次开始直播。")
        await expect(
            studio.locator("#timing").get_by_role("link", name=re.compile("观看回放"))
        ).to_have_attribute("href", f"/replays/{recording['id']}")
        await snap(studio, "studio-ended")
        phone_studio = await new_context(browser, "phone")
        try:
            expert_phone = await phone_studio.new_page()
            await log_in(expert_phone, lectern_server, EXPERT, f"/studio/{SESSION}")
            await expect(expert_phone.get_by_role("button", name="本课次已结束")).to_be_disabled()
            await snap(expert_phone, "studio-ended")
        finally:
            await phone_studio.close()
        # And the server refuses to start it again whatever a page does.
        http, csrf = await api_as(lectern_server, EXPERT)
        async with (
            http,
            http.post(f"/api/sessions/{SESSION}/media-token", json={"purpose": "whip"}, headers=csrf) as r,
        ):
            assert r.status == 409
            assert (await r.json())["error"]["code"] == "session_ended"

        # The phone learner got halfway through the replay (as the replay page's heartbeats report it).
        half = round(recording["duration_s"] / 2, 1)
        http, csrf = await api_as(lectern_server, LEARNER)
        async with http:
            async with http.post(f"/api/replays/{recording['id']}/playback", headers=csrf) as r:
                assert r.status == 201, await r.text()
                opened = await r.json()
            beat = {"token": opened["token"], "seq": 0, "position_s": half, "rate": 1.0, "visible": True}
            beat["angle"] = "screen"
            beat_url = f"/api/playback/{opened['client_id']}/heartbeats"
            async with http.post(beat_url, json=beat, headers=csrf) as r:
                assert r.status == 200, await r.text()

            async def kept() -> bool:
                async with http.get(f"/api/replays/{recording['id']}") as r:
                    progress = (await r.json())["progress"]
                return bool(progress) and progress["position_s"] == half

            await wait_until(kept, timeout_s=10, message="the replay position kept from the heartbeat")
        for size, ctx in learners.items():
            page = ctx.pages[0]
            await page.reload()
            item = page.locator(f'#past li[data-session="{SESSION}"]')
            await expect(item.locator(".badge")).to_have_text("已结束")
            await expect(item.get_by_role("link", name=re.compile("观看回放"))).to_have_attribute(
                "href", f"/replays/{recording['id']}"
            )
            await expect(item.get_by_role("link", name="进入直播间")).to_have_count(0)
            await expect(page.locator("#live-section")).to_be_hidden()
            await expect(page.locator("#upcoming")).to_contain_text("暂无即将开始的课次")
            listed = page.locator(f'#replays li[data-replay="{recording["id"]}"]')
            await expect(listed).to_contain_text(f"时长 {minutes_seconds(recording['duration_s'])}")
            if size == "phone":
                await expect(listed.locator(".watched")).to_contain_text("已看到")
                await expect(listed.get_by_role("link", name="继续观看")).to_be_visible()
            else:
                await expect(listed.locator(".watched")).to_have_text("尚未观看")
            await fits_the_screen(page)
            await snap(page, "me-ended")
            # The course page: the session is over, so it offers the replay, not the live room.
            await page.goto(f"{url}/courses/{(await session_json(lectern_server))['course_id']}")
            session = page.locator(f'#sessions li[data-session="{SESSION}"]')
            await expect(session.locator(".badge")).to_have_text("已结束")
            await expect(session.get_by_role("link", name="进入直播间")).to_have_count(0)
            await expect(session.get_by_role("link", name=re.compile("观看回放"))).to_be_visible()
            await snap(page, "course-ended")
        assert studio_errors == []
    finally:
        await expert_ctx.close()
        for ctx in learners.values():
            await ctx.close()
