"""Browser tier fixtures: Lectern as a subprocess, Debian's Chromium driven by Playwright (async API).

Each test gets its own server (fresh data dir) and its own browser context; override
`lectern_server_env` in a test module to start the server with extra settings.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.server import LecternServer, running_server

CHROMIUM = "/usr/bin/chromium"
# From ENVIRONMENT.md: what works headless in a loopback-only namespace, with a fake camera and screen.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Screenshots of the pages the browser tests visit, for a reviewer to look at after `make test`
# (ignored by git). LECTERN_SCREENSHOTS moves the folder.
_REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("LECTERN_SCREENSHOTS", _REPO / "test-artifacts" / "screenshots"))


async def snap(page: Page, name: str) -> Path:
    """Save a full-page screenshot as `<name>-<width>x<height>.png` (the viewport says phone or desktop)."""
    size = page.viewport_size or {"width": 0, "height": 0}
    path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path


LOG_TAIL_LINES = 200
CONSOLE = pytest.StashKey[list[str]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed browser test shows the tail of each Lectern server's log it used and what its pages
    wrote to the console: a timeout in a page is usually explained there (and CI keeps nothing else)."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, LecternServer) and value.log_path.exists():
                lines = value.log_text().splitlines()[-LOG_TAIL_LINES:]
                report.sections.append((f"lectern log of {name} (last {len(lines)} lines)", "\n".join(lines)))
        console = item.stash.get(CONSOLE, [])[-LOG_TAIL_LINES:]
        if console:
            report.sections.append((f"browser console (last {len(console)} lines)", "\n".join(console)))
    return report


@pytest.fixture
def lectern_server_env() -> dict[str, str]:
    """Extra settings for `lectern_server`; override in a module or with indirect parametrization."""
    return {}


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    with running_server(tmp_path / "var", lectern_server_env) as server:
        yield server


@pytest.fixture
async def browser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        # Every context the test opens reports its pages' console and uncaught errors (shown on failure).
        console = request.node.stash.setdefault(CONSOLE, [])
        open_context = chromium.new_context

        async def new_context(**options: Any) -> BrowserContext:
            ctx = await open_context(**options)
            ctx.on(
                "console", lambda msg: console.append(f"{msg.type}: {msg.text} ({msg.location.get('url')})")
            )
            ctx.on("weberror", lambda err: console.append(f"uncaught: {err.error}"))
            return ctx

        monkeypatch.setattr(chromium, "new_context", new_context)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh desktop context per test: no cookies or storage leak between tests."""
    ctx = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A phone-sized context (390x844, touch), the way most learners watch."""
    ctx = await browser.new_context(
        locale="zh-CN",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()
