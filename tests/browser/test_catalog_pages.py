"""The catalog pages against the real API: register, search, enroll, my learning, the provider console."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

import catalog
from catalog import demo
from catalog.db import Database
from tests.browser.conftest import snap
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

DEMO_PASSWORD = "lectern-demo-2026"  # catalog.demo.DEMO_PASSWORD, printed by `lectern demo`
DEMO_LEARNER = ("13800000010", "吴磊（港口工程师）")
BASE_ADMIN = "13800000004"  # 张伟, provider_admin of the CE base, whose course has 孙立教授 as expert
EXPERT_ID = 8  # 孙立教授: the demo's eighth person
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''))"""


@functools.cache
def _migrated_template() -> Path:
    """An embedded database with every migration applied, made once per test process."""
    path = Path(tempfile.mkdtemp(prefix="lectern-demo-template-")) / "lectern.db"
    catalog.migrate(f"sqlite+aiosqlite:///{path}")
    return path


async def _seed(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await demo.seed(db, datetime.now(UTC))
    finally:
        await db.close()


def seed_demo(data_dir: Path) -> None:
    """What `lectern demo` does (migrate, then catalog.demo.seed at this moment) to the embedded database
    the server will use: the migrated schema copied from a template, the world seeded in this process (a
    `lectern demo` process of its own cost some 4 s of imports per test; tests/integration/test_fuzz_api.py
    runs the command itself). In a thread: a caller may be inside an event loop."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "lectern.db"
    shutil.copyfile(_migrated_template(), path)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _seed(path)).result(timeout=60)


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    """The demo world, seeded before the server and the browser start."""
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    with running_server(data_dir, lectern_server_env) as server:
        yield server


async def api_login(server: LecternServer, phone: str, password: str) -> tuple[int, dict[str, Any]]:
    """Log in through the API (not the page); (status, GET /api/me or the error body)."""
    # unsafe=True: aiohttp's cookie jar otherwise drops cookies set by an IP address such as 127.0.0.1.
    async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post("/api/auth/login", json={"phone": phone, "password": password}) as r:
            if r.status != 200:
                return r.status, await r.json()
        async with http.get("/api/me") as r:
            return r.status, await r.json()


async def api_get(server: LecternServer, path: str) -> Any:
    async with aiohttp.ClientSession(server.url) as http, http.get(path) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def log_in(page: Page, server: LecternServer, phone: str, next_path: str) -> None:
    await page.goto(f"{server.url}/login?next={next_path}")
    await page.get_by_label("手机号").fill(phone)
    await page.get_by_label("密码").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{server.url}{next_path}")


async def test_learner_registers_finds_a_course_by_a_chinese_word_enrolls_and_sees_it_in_my_learning(
    page: Page, lectern_server: LecternServer
) -> None:
    url = lectern_server.url
    await page.goto(f"{url}/register")
    await page.get_by_label("姓名").fill("林晓（注册学员）")
    await page.get_by_label("手机号").fill("13712345678")
    await page.get_by_label("密码", exact=True).fill("a-good-password")
    await page.get_by_label("确认密码").fill("a-good-password")
    await page.get_by_role("button", name="注册").click()
    await page.wait_for_url(f"{url}/me")
    await expect(page.locator("#learning")).to_contain_text("还没有报名课程")
    await expect(page.locator("nav .who")).to_have_text("林晓（注册学员）")

    await page.goto(f"{url}/courses")
    await page.get_by_role("searchbox", name="搜索课程").fill("码头")
    # Only the one course whose title holds 码头 is left, and the URL remembers the search.
    await expect(page.locator("#count")).to_have_text("共 1 门课程")
    await expect(page).to_have_url(re.compile(r"/courses\?q=%E7%A0%81%E5%A4%B4(&|$)"))
    await page.get_by_role("link", name="智慧港口自动化码头关键技术").click()
    await expect(page.locator("h1")).to_have_text("智慧港口自动化码头关键技术")
    await expect(page.locator("#sessions")).to_contain_text("第一讲：自动化码头总体架构")
    await expect(page.locator("#sessions")).to_contain_text("孙立教授")

    await page.get_by_role("button", name="报名学习").click()
    await expect(page.locator("#message")).to_contain_text("报名成功")
    await expect(page.get_by_role("button", name="退出课程")).to_be_visible()

    await page.get_by_role("link", name="我的学习").first.click()
    await expect(page.locator("#learning")).to_contain_text("智慧港口自动化码头关键技术")
    await expect(page.locator("#upcoming")).to_contain_text("第一讲：自动化码头总体架构")
    # The page showed what the API holds: the new account is enrolled.
    status, me = await api_login(lectern_server, "13712345678", "a-good-password")
    assert status == 200
    assert me["person"]["name"] == "林晓（注册学员）"


async def test_a_recorded_course_with_nothing_to_watch_offers_no_enrollment_and_says_why(
    page: Page, lectern_server: LecternServer
) -> None:
    await log_in(page, lectern_server, DEMO_LEARNER[0], "/courses")
    await page.get_by_role("searchbox", name="搜索课程").fill("数字经济")
    await page.get_by_role("link", name="数字经济与人工智能应用概论").click()
    await expect(page.locator("h1")).to_have_text("数字经济与人工智能应用概论")
    await expect(page.locator("#message")).to_have_text("该录播课程暂无可观看的内容，暂不能报名。")
    await expect(page.get_by_role("button", name="报名学习")).to_be_hidden()
    await snap(page, "course-recorded-empty")


async def test_provider_admin_creates_a_course_with_a_session_and_expert_and_publishes_it(
    page: Page, browser: Browser, lectern_server: LecternServer
) -> None:
    url = lectern_server.url
    title = "海洋牧场生态修复技术"
    await log_in(page, lectern_server, BASE_ADMIN, "/provider")
    await expect(page.locator("#my-courses")).to_contain_text("智慧港口自动化码头关键技术")

    form = page.locator("#new-course")
    await form.get_by_label("课程名称").fill(title)
    await form.get_by_label("课程简介").fill("专业科目：海洋牧场建设与生态修复。")
    await form.get_by_label("科目类别").select_option("professional")
    await form.get_by_label("授课形式").select_option("live")
    await form.get_by_label("学时").fill("4")
    await form.get_by_role("button", name="创建课程").click()
    await expect(page.locator("#panel-title")).to_have_text(title)
    await expect(page.locator("#panel-status")).to_have_text("草稿")

    session_form = page.locator("#new-session")
    await session_form.get_by_label("课次名称").fill("第一讲：海洋牧场规划")
    await session_form.get_by_label("开始时间（北京时间）").fill("2030-03-01T09:00")
    await session_form.get_by_label("结束时间（北京时间）").fill("2030-03-01T11:00")
    await session_form.get_by_label("孙立教授（编号 8）").check()
    # An expert who never taught for this provider is found in the expert directory by name.
    await session_form.get_by_placeholder("输入专家姓名，如：周红").fill("周红")
    await session_form.get_by_role("button", name="查找专家").click()
    await expect(session_form.get_by_role("status")).to_have_text("找到 1 位专家。")
    await session_form.get_by_label("周红主任医师", exact=False).check()
    await session_form.get_by_role("button", name="创建课次").click()
    await expect(page.locator("#panel-message")).to_contain_text("已创建")
    await expect(page.locator("#panel-sessions")).to_contain_text("专家：孙立教授、周红主任医师")
    await expect(page.locator("#panel-sessions")).to_contain_text("2030/03/01 09:00")

    await page.get_by_role("button", name="发布课程").click()
    await expect(page.locator("#panel-status")).to_have_text("已发布")
    await expect(page.get_by_role("button", name="发布课程")).to_be_hidden()

    # An anonymous visitor now finds it in the public catalog.
    visitor = await browser.new_context(locale="zh-CN")
    try:
        public = await visitor.new_page()
        await public.goto(f"{url}/courses?q=海洋牧场")
        await expect(public.locator("#courses")).to_contain_text(title)
        await expect(public.locator("#count")).to_have_text("共 1 门课程")
    finally:
        await visitor.close()
    found = await api_get(lectern_server, "/api/courses?q=%E6%B5%B7%E6%B4%8B%E7%89%A7%E5%9C%BA")
    course = await api_get(lectern_server, f"/api/courses/{found['items'][0]['id']}")
    assert course["status"] == "published"
    assert [s["title"] for s in course["sessions"]] == ["第一讲：海洋牧场规划"]
    assert course["sessions"][0]["scheduled_start"] == "2030-03-01T01:00:00+00:00"
    assert [e["name"] for e in course["sessions"][0]["experts"]] == ["孙立教授", "周红主任医师"]
    assert course["sessions"][0]["experts"][0]["id"] == EXPERT_ID


async def test_register_form_refuses_mismatched_passwords_in_chinese_and_creates_nothing(
    page: Page, lectern_server: LecternServer
) -> None:
    await page.goto(f"{lectern_server.url}/register")
    await page.get_by_label("姓名").fill("错误示例")
    await page.get_by_label("手机号").fill("13799990000")
    await page.get_by_label("密码", exact=True).fill("first-password")
    await page.get_by_label("确认密码").fill("other-password")
    await page.get_by_role("button", name="注册").click()
    await expect(page.locator("#message")).to_have_text("两次输入的密码不一致。")
    await expect(page.locator("#message")).to_have_class("message error")
    assert page.url == f"{lectern_server.url}/register"
    status, body = await api_login(lectern_server, "13799990000", "first-password")
    assert status == 401, body


async def test_register_form_refuses_a_phone_already_registered_in_chinese_and_changes_nothing(
    page: Page, lectern_server: LecternServer
) -> None:
    phone, name = DEMO_LEARNER
    await page.goto(f"{lectern_server.url}/register")
    await page.get_by_label("姓名").fill("冒名顶替")
    await page.get_by_label("手机号").fill(phone)
    await page.get_by_label("密码", exact=True).fill("another-password")
    await page.get_by_label("确认密码").fill("another-password")
    await page.get_by_role("button", name="注册").click()
    await expect(page.locator("#message")).to_contain_text("该手机号已注册")
    await expect(page.get_by_role("link", name="去登录")).to_be_visible()
    await expect(page.get_by_role("button", name="注册")).to_be_enabled()
    assert page.url == f"{lectern_server.url}/register"
    # The existing account is untouched: old password, old name; the new password opens nothing.
    assert (await api_login(lectern_server, phone, "another-password"))[0] == 401
    status, me = await api_login(lectern_server, phone, DEMO_PASSWORD)
    assert status == 200
    assert me["person"]["name"] == name


async def test_catalog_page_fits_a_phone_without_sideways_scrolling(
    phone: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await phone.new_page()
    await page.goto(f"{lectern_server.url}/courses")
    await expect(page.locator("#courses > li")).to_have_count(5)
    assert await page.evaluate("window.innerWidth") == 390
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 390, f"catalog is {scroll_width}px wide on a 390px phone"
    assert await page.evaluate(OVERFLOWING) == []
