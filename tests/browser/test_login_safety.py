"""The login and registration pages cannot be turned against the person using them: `next` keeps them on
this site, and a throttled attempt says in Chinese how long to wait."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from catalog import throttle
from catalog.db import Database
from catalog.models import Throttle
from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_LEARNER, DEMO_PASSWORD, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

# (next parameter, where the login page may send the person afterwards: "" = their home)
NEXT_CASES = [
    ("/me", "/me"),
    ("/courses?q=%E7%A0%81%E5%A4%B4", "/courses?q=%E7%A0%81%E5%A4%B4"),
    ("/", "/"),
    ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # an odd path, still on this site
    ("//evil.example/me", ""),
    ("/\\evil.example/me", ""),
    ("\\\\evil.example/me", ""),
    ("/\t/evil.example/me", ""),  # browsers drop the tab: "//evil.example"
    ("/\n/evil.example/me", ""),
    ("https://evil.example/me", ""),
    ("http:evil.example", ""),
    ("javascript:alert(1)", ""),
    ("me", ""),
    ("", ""),
]


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    with running_server(data_dir, lectern_server_env) as server:
        yield server


async def counted_already(server: LecternServer, policy: throttle.Policy, key: str, count: int) -> None:
    """As if `key` had just failed `count` times (so the next attempt waits)."""
    db = Database(f"sqlite+aiosqlite:///{(server.data_dir / 'lectern.db').resolve()}")
    try:
        async with db.sessions.begin() as s:
            s.add(Throttle(scope=policy.scope, key=key, count=count, last_at=datetime.now(UTC)))
    finally:
        await db.close()


async def test_the_next_parameter_keeps_only_paths_on_this_site(
    page: Page, lectern_server: LecternServer
) -> None:
    await page.goto(f"{lectern_server.url}/login")
    kept = await page.evaluate(
        """async (targets) => {
            const auth = await import("/static/js/pages/auth.js");  // the module the page runs
            return targets.map((t) => auth.sameSitePath(t));
        }""",
        [target for target, _ in NEXT_CASES],
    )
    assert dict(zip([t for t, _ in NEXT_CASES], kept, strict=True)) == dict(NEXT_CASES)


async def test_logging_in_with_a_next_to_another_site_lands_at_home(
    context: BrowserContext, phone: BrowserContext, lectern_server: LecternServer
) -> None:
    for ctx in (context, phone):
        page = await ctx.new_page()
        await page.goto(f"{lectern_server.url}/login?next=%2F%5Cevil.example%2Fme")  # "/\evil.example/me"
        await page.get_by_label("手机号").fill(DEMO_LEARNER[0])
        await page.get_by_label("密码").fill(DEMO_PASSWORD)
        await snap(page, "login-next-elsewhere")
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_url(f"{lectern_server.url}/me")
        await expect(page.locator("nav .who")).to_have_text(DEMO_LEARNER[1])
        await snap(page, "login-next-elsewhere-landed-home")


async def test_a_throttled_login_and_registration_say_in_chinese_how_long_to_wait(
    context: BrowserContext, phone: BrowserContext, lectern_server: LecternServer
) -> None:
    url = lectern_server.url
    await counted_already(lectern_server, throttle.LOGIN_PHONE, DEMO_LEARNER[0], 10)  # waits 32 s
    await counted_already(lectern_server, throttle.REGISTER_ADDRESS, "127.0.0.1", 25)  # waits 300 s (the cap)
    for ctx in (context, phone):
        page = await ctx.new_page()
        await page.goto(f"{url}/login")
        await page.get_by_label("手机号").fill(DEMO_LEARNER[0])
        await page.get_by_label("密码").fill(DEMO_PASSWORD)  # the right password: still too early
        await page.get_by_role("button", name="登录").click()
        await expect(page.locator("#message")).to_have_text(
            re.compile(r"^尝试次数过多，请 ([1-9]|[12]\d|3[0-2]) 秒后再试。$")
        )
        await expect(page.get_by_role("button", name="登录")).to_be_enabled()
        assert page.url == f"{url}/login"
        await snap(page, "login-throttled")

        await page.goto(f"{url}/register")
        await page.get_by_label("姓名").fill("新学员")
        await page.get_by_label("手机号").fill("13712340000")
        await page.get_by_label("密码", exact=True).fill("a-good-password")
        await page.get_by_label("确认密码").fill("a-good-password")
        await page.get_by_role("button", name="注册").click()
        await expect(page.locator("#message")).to_have_text("此网络注册次数过多，请 5 分钟后再试。")
        assert page.url == f"{url}/register"
        await snap(page, "register-throttled")
