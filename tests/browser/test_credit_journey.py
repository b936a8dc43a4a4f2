"""From a live lecture to 学时 on 我的学时, in real Chromium, the way learners earn them (issue 11).

An administrator stores a short credit policy (heartbeats every 2 s, 1 学时 per minute to 0.1, pro-rata
credit below the presence threshold, replays counted up to 2×). The expert goes live from the studio;
learner A watches over WebRTC, learner C too, and learner B, beyond the room's seats, over the
overflow HLS. The expert issues a presence check and all three answer it by clicking the dialog. C hides
the tab for the middle half of the lecture. The expert ends it, settlement runs, and on 我的学时 A and B
see the lecture's 学时 as 待审核 with about the lecture's time online; C about half of it. Learner D, who
missed the lecture, plays its replay on the replay page to the end at 2×, answers the replay's presence
check, and sees the replay's 学时 as 待审核.

The lecture lasts a little over two minutes: a replay shorter than two minutes has no presence check
(catalog.playback.CHECKED_FROM_S). Headless Chromium keeps every page visible, so C's tab is hidden the way
the page observes it (document.visibilityState and a visibilitychange event, as test_watch_attendance).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect
from sqlalchemy import select

from catalog.db import Database
from catalog.domain import EnrollmentSource, EnrollmentStatus
from catalog.models import Course, Enrollment, Person
from tests.browser.test_catalog_pages import DEMO_PASSWORD, log_in, seed_demo
from tests.browser.test_live_pages import frames_rising
from tests.browser.test_watch_attendance import set_visibility
from tests.browser.test_watch_journeys import SESSION, go_live, main_is, open_studio, shot
from tests.helpers import wait_until
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

ADMIN = "13800000001"
A, B = "13800000010", "13800000011"  # 吴磊, 郑丽: enrolled in the live course by the demo
C, D = "13800000012", "13800000006"  # 冯涛, 陈静 (also a learner): enrolled below
LIVE_COURSE = "智慧港口自动化码头关键技术"  # 专业科目
LECTURE_S = 126.0  # the replay must reach 2 minutes to carry a presence check
HIDDEN_FROM, HIDDEN_UNTIL = 0.25, 0.75  # the share of the lecture during which C's tab is hidden
POLICY = {
    "heartbeat_period_s": 2,
    "minutes_per_xueshi": 1,
    "rounding_unit": "0.1",
    "live_below_threshold": "pro_rata",
    "max_playback_rate": 2.0,
    "note": "浏览器测试：短心跳周期，每分钟计 1 学时",
}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


async def _enroll(data_dir: Path, phones: tuple[str, ...]) -> None:
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    try:
        async with db.sessions.begin() as s:
            course_id = await s.scalar(select(Course.id).where(Course.title == LIVE_COURSE))
            for phone in phones:
                person_id = await s.scalar(select(Person.id).where(Person.phone == phone))
                s.add(
                    Enrollment(
                        person_id=person_id,
                        course_id=course_id,
                        source=EnrollmentSource.EMPLOYER.value,
                        status=EnrollmentStatus.ENROLLED.value,
                        enrolled_at=datetime.now(UTC),
                    )
                )
    finally:
        await db.close()


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    asyncio.run(_enroll(data_dir, (C, D)))
    env = {
        "LECTERN_ICE_HOST_ADDRESSES": "127.0.0.1",
        "LECTERN_SEGMENT_DURATION_S": "1",
        "LECTERN_ROOM_SEAT_LIMIT": "3",  # the studio, A and C take the seats; B watches the HLS
        "LECTERN_CREDIT_SETTLE_EVERY_S": "1",
    }
    with running_server(data_dir, env) as server:
        yield server


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[dict[str, BrowserContext]]:
    """The expert on a desktop; every learner on a phone of their own."""
    made = {"expert": await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})}
    for who in (A, B, C, D):
        made[who] = await browser.new_context(locale="zh-CN", **PHONE)  # type: ignore[arg-type]
    yield made
    for ctx in made.values():
        await ctx.close()


async def store_policy(server: LecternServer) -> int:
    """The administrator stores the short policy through the API; its version number."""
    async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post("/api/auth/login", json={"phone": ADMIN, "password": DEMO_PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf_token"]
        async with http.post("/api/credit-policy", json=POLICY, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 201, await r.text()
            version: int = (await r.json())["version"]
            return version


class Clock:
    """Seconds since the lecture went live, as the test saw it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()

    def elapsed(self) -> float:
        return self.loop.time() - self.started

    async def reach(self, second: float) -> None:
        await wait_until(lambda: self.elapsed() >= second, timeout_s=second + 5, interval_s=0.2)


def xueshi(minutes: float) -> Decimal:
    """R5 under the test policy: 1 学时 per minute, floored to 0.1."""
    return (Decimal(repr(minutes)) / 1).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)


def seconds_of(text: str) -> int:
    """'在线 2分03秒' → 123 (ui.js duration())."""
    match = re.search(r"在线 (?:(\d+)分)?(\d+)秒", text)
    assert match, f"no time online in {text!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2))


def xueshi_of(text: str) -> Decimal:
    match = re.search(r"([\d.]+) 学时", text)
    assert match, f"no 学时 in {text!r}"
    return Decimal(match.group(1))


async def entry_on_my_credits(page: Page, server: LecternServer, kind: str) -> Locator:
    """Open 我的学时 (again, until settlement has written it) and return the entry of `kind` (直播,
    直播（分流）, 回放) of the live course."""
    course = page.locator("#courses li", has_text=LIVE_COURSE)
    entry = course.locator(".entry", has=page.get_by_text(kind, exact=True))

    async def shown() -> bool:
        await page.goto(f"{server.url}/me/credits")
        await expect(page.locator("#courses li").first).to_be_visible()
        return await entry.count() == 1

    await wait_until(shown, timeout_s=40, interval_s=1.0, message=f"a {kind} entry on 我的学时")
    return entry


async def answer_live_check(page: Page) -> None:
    """The learner reads the prompt (its countdown moves) and clicks 我在学习."""
    prompt = page.locator("#check-prompt")
    await expect(prompt).to_be_visible(timeout=10_000)
    first = int(await page.locator("#check-left").inner_text())
    await expect(page.locator("#check-left")).not_to_have_text(str(first), timeout=5_000)
    await page.get_by_role("button", name="我在学习").click()
    await expect(prompt).to_be_hidden()
    await expect(page.locator("#message")).to_have_text("已确认在场。")


@pytest.mark.timeout(300)  # a lecture of two minutes, then its replay at 2×
async def test_learners_earn_pending_credit_live_over_hls_half_hidden_and_from_the_replay(
    lectern_server: LecternServer, people: dict[str, BrowserContext]
) -> None:
    server = lectern_server
    version = await store_policy(server)

    studio = await open_studio(people["expert"], server)
    watch: dict[str, Page] = {}
    for who in (A, C):  # waiting for the lecture: they take the two interactive seats when it starts
        watch[who] = await people[who].new_page()
        await log_in(watch[who], server, who, f"/watch/{SESSION}")
        await expect(watch[who].locator("#state")).to_have_text("等待讲师开播")

    await go_live(studio)
    clock = Clock()
    await main_is(watch[A], "camera", pip=None)
    for who in (A, C):
        await expect(watch[who].locator("#counting")).to_have_text("正在计时")
    await shot(watch[A], "journey-live-webrtc")

    # B arrives when both seats are taken: the overflow HLS plays instead, and is counted too.
    watch[B] = await people[B].new_page()
    await log_in(watch[B], server, B, f"/watch/{SESSION}")
    await expect(watch[B].locator("#message")).to_contain_text("互动席位已满", timeout=20_000)
    await expect(watch[B].locator("#state")).to_have_text("直播中（直播流，有数秒延迟）")
    frames = (
        "() => document.querySelector('#videos video.main-video').getVideoPlaybackQuality().totalVideoFrames"
    )
    await watch[B].wait_for_function(f"() => ({frames})() > 10", timeout=30_000)
    await expect(watch[B].locator("#counting")).to_have_text("正在计时")
    await shot(watch[B], "journey-live-overflow-hls")

    # A presence check: each learner reads it and clicks.
    await studio.get_by_role("button", name="发起签到").click()
    for who in (A, B, C):
        await answer_live_check(watch[who])
    await shot(watch[C], "journey-live-check-answered")
    await expect(studio.get_by_text("3/3 人已确认")).to_be_visible()

    # C looks at something else for the middle half of the lecture.
    await clock.reach(LECTURE_S * HIDDEN_FROM)
    await set_visibility(watch[C], "hidden")
    await expect(watch[C].locator("#counting")).to_have_text("已暂停：页面不可见")
    hidden_at = clock.elapsed()
    await clock.reach(LECTURE_S * HIDDEN_UNTIL)
    await set_visibility(watch[C], "visible")
    hidden_s = clock.elapsed() - hidden_at
    await expect(watch[C].locator("#counting")).to_have_text("正在计时")

    await clock.reach(LECTURE_S - 3)
    for who in (A, B, C):  # to the end, each learner's picture is moving
        await frames_rising(watch[who], "#videos video.main-video")
    await clock.reach(LECTURE_S)
    await studio.get_by_role("button", name="结束直播").click()
    await expect(studio.locator("#state")).to_have_text("已结束", timeout=20_000)
    lecture_s = clock.elapsed()
    for page in watch.values():
        await expect(page.locator("#state")).to_have_text("直播已结束", timeout=20_000)

    async def learners_who_were_there() -> None:
        full = xueshi(lecture_s / 60)
        for who, kind in ((A, "直播"), (B, "直播（分流）")):
            entry = await entry_on_my_credits(watch[who], server, kind)
            for fact in ("待审核", "签到 1/1", f"规则 v{version}"):
                await expect(entry).to_contain_text(fact)
            text = await entry.inner_text()
            # Full credit (present above the threshold): the lecture's minutes, as the server timed it.
            assert full - Decimal("0.2") <= xueshi_of(text) <= full, text
            assert lecture_s - 20 <= seconds_of(text) <= lecture_s + 2, text
            pending = watch[who].locator('[data-total="professional"] .pending')
            await expect(pending).to_have_text(f"待审核 {xueshi_of(text)} 学时")
            await expect(watch[who].locator("#waiting")).to_have_text("没有。")
            await shot(watch[who], f"journey-my-credits-{'live' if who == A else 'hls'}")

        # C: about half the time online, and (pro rata) about half the 学时.
        entry = await entry_on_my_credits(watch[C], server, "直播")
        for fact in ("待审核", "签到 1/1"):
            await expect(entry).to_contain_text(fact)
        text = await entry.inner_text()
        online = seconds_of(text)
        assert lecture_s - hidden_s - 10 <= online <= lecture_s - hidden_s + 2, (text, lecture_s, hidden_s)
        assert xueshi_of(text) == xueshi(online / 60) or xueshi_of(text) + Decimal("0.1") == xueshi(
            online / 60
        ), text
        assert 0.4 * float(full) <= float(xueshi_of(text)) <= 0.6 * float(full), (text, full)
        await shot(watch[C], "journey-my-credits-half-hidden")

    async def replay_learner() -> None:
        # D missed the lecture: the watch page says so and offers the replay once it is ready.
        page = await people[D].new_page()
        await log_in(page, server, D, f"/watch/{SESSION}")
        await expect(page.locator("#state")).to_have_text("直播已结束")
        replay_link = page.get_by_role("link", name="观看回放")
        await expect(replay_link).to_be_visible(timeout=40_000)
        await replay_link.click()
        await page.wait_for_selector("#player-box:not([hidden])")
        await expect(page.locator("#rate")).to_be_visible()  # the policy counts up to 2×
        await page.select_option("#rate", "2")
        await page.get_by_role("button", name="播放").click()
        await expect(page.locator("#counting")).to_have_text("正在计时", timeout=15_000)
        await shot(page, "journey-replay-counting")

        # The replay's presence check: playback waits until the learner reads it and clicks.
        dialog = page.locator("#check")
        await expect(dialog).to_be_visible(timeout=90_000)
        await expect(page.locator("#counting")).to_have_text("已暂停：请确认您仍在学习")
        await shot(page, "journey-replay-check")
        await read_for(1.5)  # a person reads the prompt: answers faster than a human (0.8 s) are refused
        await page.locator("#check-answer").click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#counting")).to_have_text("正在计时", timeout=10_000)

        await expect(page.get_by_role("button", name="重新播放")).to_be_visible(timeout=90_000)
        entry = await entry_on_my_credits(page, server, "回放")
        for fact in ("待审核", "签到 1/1"):
            await expect(entry).to_contain_text(fact)
        text = await entry.inner_text()
        coverage = re.search(r"回放覆盖 (\d+)%", text)
        assert coverage, text
        assert int(coverage.group(1)) >= 95, text
        assert xueshi(lecture_s / 60) - Decimal("0.3") <= xueshi_of(text) <= xueshi(lecture_s / 60), text
        await expect(page.locator('[data-total="professional"] .pending')).to_have_text(
            f"待审核 {xueshi_of(text)} 学时"
        )
        await shot(page, "journey-my-credits-replay")

    # The replay plays while the others look at their credit (each learner on a phone of their own).
    await asyncio.gather(learners_who_were_there(), replay_learner())


async def read_for(seconds: float) -> None:
    """A person's reading time, measured: the server refuses answers faster than min_answer_ms."""
    loop = asyncio.get_running_loop()
    shown_at = loop.time()
    await wait_until(lambda: loop.time() - shown_at >= seconds, timeout_s=seconds + 1, interval_s=0.1)
