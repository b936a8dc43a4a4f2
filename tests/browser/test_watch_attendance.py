"""What the live watch page tells a learner about attendance, in real Chromium: 正在计时 while the page is
visible and the lecture live, 已暂停：页面不可见 while the tab is hidden (and 正在计时 again when it is back),
nothing once the lecture ended; a presence check answered by clicking the dialog's button.

Headless Chromium keeps every page "visible" (another tab brought to the front does not hide it), so the
test hides the tab the way the page observes it: document.visibilityState reads "hidden" and a
visibilitychange event fires."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from catalog.db import Database
from catalog.models import CreditPolicyVersion
from tests.browser.test_catalog_pages import seed_demo
from tests.browser.test_watch_journeys import (  # noqa: F401  (people: a fixture)
    LEARNERS,
    go_live,
    main_is,
    open_studio,
    open_watch,
    people,
    shot,
    status_is,
)
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

SET_VISIBILITY = """state => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
    document.dispatchEvent(new Event('visibilitychange')); }"""


@pytest.fixture
def lectern_server(tmp_path: Path, lectern_server_env: dict[str, str]) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    store_policy(data_dir, heartbeat_period_s=2)  # what an administrator stores: pages beat every 2 s
    env = {**lectern_server_env, "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1", "LECTERN_SEGMENT_DURATION_S": "1"}
    with running_server(data_dir, env) as server:
        yield server


def store_policy(data_dir: Path, **params: Any) -> None:
    """A credit policy version stored in the seeded database before the server starts."""

    async def store() -> None:
        db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
        try:
            async with db.sessions.begin() as s:
                s.add(
                    CreditPolicyVersion(version=1, params=params, created_at=datetime.now(UTC), note="test")
                )
        finally:
            await db.close()

    asyncio.run(store())


async def set_visibility(page: Page, state: str) -> None:
    await page.evaluate(SET_VISIBILITY, state)


async def test_the_indicator_says_what_is_counted_and_pauses_while_the_tab_is_hidden(
    lectern_server: LecternServer,
    people: dict[str, BrowserContext],  # noqa: F811
) -> None:
    studio = await open_studio(people["studio"], lectern_server)
    await go_live(studio)
    page = await open_watch(people["phone"], lectern_server, LEARNERS[1])
    await main_is(page, "camera", pip=None)
    counting = page.locator("#counting")
    await expect(counting).to_have_text("正在计时")
    await shot(page, "watch-counting")

    await set_visibility(page, "hidden")
    await expect(counting).to_have_text("已暂停：页面不可见")
    await expect(counting).to_have_attribute("data-state", "paused")
    await shot(page, "watch-paused-hidden")
    await set_visibility(page, "visible")
    await expect(counting).to_have_text("正在计时")

    # A presence check is a dialog the person answers with a click (echoing the prompt's nonce).
    await studio.locator("#check").click()
    await expect(page.locator("#check-prompt")).to_be_visible(timeout=10_000)
    await shot(page, "watch-presence-check")
    await page.get_by_role("button", name="我在学习").click()
    await expect(page.locator("#check-prompt")).to_be_hidden()
    await expect(page.locator("#message")).to_have_text("已确认在场。")
    await expect(studio.get_by_text("1/1 人已确认")).to_be_visible()

    await studio.get_by_role("button", name="结束直播").click()
    await status_is(page, "直播已结束")
    await expect(counting).to_be_hidden()
    await set_visibility(page, "hidden")  # after the end nothing is counted, nothing is said
    await expect(counting).to_be_hidden()
