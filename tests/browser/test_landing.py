"""The landing page: Simplified Chinese, and laid out for a phone as well as a PC."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from tests.server import LecternServer

pytestmark = pytest.mark.browser

# Elements whose right edge lies beyond the viewport: what a learner would have to scroll sideways for.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''))"""


async def test_landing_page_speaks_simplified_chinese(page: Page, lectern_server: LecternServer) -> None:
    response = await page.goto(lectern_server.url)
    assert response is not None
    assert response.status == 200
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert "讲堂" in await page.title()
    assert "继续教育" in await page.title()
    assert "继续教育" in await page.inner_text("h1")
    assert await page.locator("nav a").all_inner_texts() == ["课程目录", "我的学习", "登录"]
    assert await page.locator("nav a").evaluate_all("links => links.map(a => a.getAttribute('href'))") == [
        "/courses",
        "/me",
        "/login",
    ]


async def test_landing_page_loads_its_stylesheet(page: Page, lectern_server: LecternServer) -> None:
    await page.goto(lectern_server.url)
    # The accent colour comes from /static/style.css: unstyled, the brand would be a default blue link.
    color = await page.eval_on_selector(".brand", "el => getComputedStyle(el).color")
    assert color == "rgb(192, 57, 43)"


async def test_landing_page_fits_a_phone_without_sideways_scrolling(
    phone: BrowserContext, lectern_server: LecternServer, tmp_path: Path
) -> None:
    page = await phone.new_page()
    await page.goto(lectern_server.url)
    inner_width = await page.evaluate("window.innerWidth")
    assert inner_width == 390
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= inner_width, f"page is {scroll_width}px wide on a {inner_width}px phone"
    assert await page.evaluate(OVERFLOWING) == []
    shot = tmp_path / "landing-phone.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")


async def test_chinese_text_is_drawn_with_a_chinese_font(page: Page, lectern_server: LecternServer) -> None:
    """Without a CJK font on the machine every character is an empty box: the page would be unreadable."""
    await page.goto(lectern_server.url)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    document = await cdp.send("DOM.getDocument")
    h1 = await cdp.send("DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "h1"})
    used = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": h1["nodeId"]})
    families = {font["familyName"]: font["glyphCount"] for font in used["fonts"]}
    cjk = {name: count for name, count in families.items() if "CJK" in name}
    han = len(re.findall(r"[\u4e00-\u9fff]", await page.inner_text("h1")))
    assert han > 0
    assert sum(cjk.values()) >= han, f"h1 drawn with {families}: install fonts-noto-cjk"
