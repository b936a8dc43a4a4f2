"""The provider console in Chromium at phone and desktop sizes, against the demo world: it refuses a past
date and a missing expert with Chinese messages (the API's 4xx, translated), refuses publishing an empty 录播
course, and shows each session's state, replay and attendance."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from catalog.db import Database
from catalog.models import Course, LiveInterval, Person, Recording, ReplayProgress, Session, SessionExpert
from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import BASE_ADMIN, OVERFLOWING, api_get, log_in, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

PORT_COURSE = "智慧港口自动化码头关键技术"
ENDED = "开班导学：码头安全须知"
LIVE = "第二讲：远程操控实操"
SCHEDULED = "第一讲：自动化码头总体架构"  # the demo's own session, tomorrow
REPLAY_S = 100.0


def beijing(at: datetime) -> str:
    """A datetime-local value as a provider in Qingdao types it."""
    return (at.astimezone(UTC) + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M")


async def _add_history(data_dir: Path) -> None:
    """Beside the demo's session of tomorrow: one that ended two hours ago (recorded; two learners came,
    one of them on two devices; one watched the replay) and one live now with a learner watching."""
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    now = datetime.now(UTC)
    start = now - timedelta(hours=3)
    try:
        async with db.sessions.begin() as s:
            course_id = await s.scalar(select(Course.id).where(Course.title == PORT_COURSE))
            people = dict((await s.execute(select(Person.phone, Person.id))).all())
            ended = Session(
                course_id=course_id,
                title=ENDED,
                kind="live",
                scheduled_start=start,
                scheduled_end=start + timedelta(hours=1),
                actual_start=start,
                actual_end=start + timedelta(hours=1),
                external_platform="none",
                external_ids={},
            )
            live = Session(
                course_id=course_id,
                title=LIVE,
                kind="live",
                scheduled_start=now - timedelta(minutes=30),
                scheduled_end=now + timedelta(minutes=90),
                actual_start=now - timedelta(minutes=25),
                external_platform="none",
                external_ids={},
            )
            s.add_all([ended, live])
            await s.flush()
            s.add_all(SessionExpert(session_id=x.id, person_id=people["13800000008"]) for x in (ended, live))
            prefix = f"hls/{ended.id}/rec-console"
            s.add(
                Recording(
                    id="rec-console",
                    session_id=ended.id,
                    state="finalized",
                    duration_s=REPLAY_S,
                    size_bytes=1000,
                    angles={"camera": {"playlist_key": f"{prefix}/camera/index.m3u8", "start_s": 0.0}},
                    master_key=f"{prefix}/master.m3u8",
                    created_at=now,
                    finalized_at=now,
                )
            )
            await s.flush()
            wu, zheng = people["13800000010"], people["13800000011"]

            def interval(session: Session, who: int, peer: str, a: float, b: float | None) -> LiveInterval:
                base = session.actual_start
                assert base is not None
                left = None if b is None else base + timedelta(minutes=b)
                return LiveInterval(
                    session_id=session.id,
                    person_id=who,
                    peer_id=peer,
                    joined_at=base + timedelta(minutes=a),
                    left_at=left,
                )

            s.add_all(
                [
                    interval(ended, wu, "phone", 0, 25),  # 吴磊 on his phone and his laptop: 40 min in all
                    interval(ended, wu, "laptop", 10, 40),
                    interval(ended, zheng, "laptop", 5, 20),  # 郑丽: 15 min
                    interval(live, wu, "laptop-2", 5, None),  # watching now
                ]
            )
            s.add(
                ReplayProgress(
                    person_id=zheng,
                    recording_id="rec-console",
                    position_s=70.0,
                    rate=1.0,
                    visible=True,
                    angle="camera",
                    updated_at=now,
                )
            )
    finally:
        await db.close()


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    asyncio.run(_add_history(data_dir))
    with running_server(data_dir) as server:
        yield server


def pick(device: str, phone: BrowserContext, context: BrowserContext) -> BrowserContext:
    return phone if device == "phone" else context


async def open_course(page: Page, server: LecternServer, title: str) -> None:
    await log_in(page, server, BASE_ADMIN, "/provider")
    await page.locator("#my-courses").get_by_role("link", name=title).click()
    await expect(page.locator("#panel-title")).to_have_text(title)
    await expect(page.locator("#course-panel")).not_to_have_attribute("aria-busy", "true")


def session_item(page: Page, title: str) -> Any:
    return page.locator("#panel-sessions > li").filter(has=page.get_by_role("heading", name=title))


async def course_sessions(server: LecternServer, title: str) -> list[dict[str, Any]]:
    found = await api_get(server, "/api/courses?q=%E7%A0%81%E5%A4%B4")
    (course,) = [c for c in found["items"] if c["title"] == title]
    detail = await api_get(server, f"/api/courses/{course['id']}")
    sessions: list[dict[str, Any]] = detail["sessions"]
    return sessions


@pytest.mark.parametrize("device", ["phone", "desktop"])
async def test_the_console_refuses_a_past_date_and_a_missing_expert_in_chinese(
    device: str, phone: BrowserContext, context: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await pick(device, phone, context).new_page()
    await open_course(page, lectern_server, PORT_COURSE)
    before = await course_sessions(lectern_server, PORT_COURSE)
    form = page.locator("#new-session")
    message = page.locator("#session-message")  # beside the form's button, where the provider looks

    yesterday = datetime.now(UTC) - timedelta(days=1)
    await form.get_by_label("课次名称").fill("第三讲：堆场调度")
    await form.get_by_label("开始时间（北京时间）").fill(beijing(yesterday))
    await form.get_by_label("结束时间（北京时间）").fill(beijing(yesterday + timedelta(hours=2)))
    await form.get_by_label("孙立教授（编号 8）").check()
    await form.get_by_role("button", name="创建课次").click()
    await expect(message).to_have_text("开始时间不能早于当前时间，请重新选择。")
    await expect(message).to_have_class("message error")
    await expect(form.get_by_label("开始时间（北京时间）")).to_have_attribute("aria-invalid", "true")
    await snap(page, "provider-refuses-past-date")

    next_week = datetime.now(UTC) + timedelta(days=7)
    await form.get_by_label("开始时间（北京时间）").fill(beijing(next_week))
    await form.get_by_label("结束时间（北京时间）").fill(beijing(next_week + timedelta(hours=2)))
    await form.get_by_label("孙立教授（编号 8）").uncheck()
    await form.get_by_role("button", name="创建课次").click()
    await expect(message).to_have_text("已发布课程的直播课次必须指定授课专家。")
    await snap(page, "provider-refuses-missing-expert")
    assert await course_sessions(lectern_server, PORT_COURSE) == before  # nothing was created

    # With the expert, the same session is created in one request, expert included.
    await form.get_by_label("孙立教授（编号 8）").check()
    await form.get_by_role("button", name="创建课次").click()
    await expect(page.locator("#panel-message")).to_have_text("课次“第三讲：堆场调度”已创建。")
    item = session_item(page, "第三讲：堆场调度")
    await expect(item.locator(".experts-names")).to_have_text("专家：孙立教授")
    await expect(item.locator(".badge")).to_have_text("未开始")
    assert await page.evaluate(OVERFLOWING) == []


@pytest.mark.parametrize("device", ["phone", "desktop"])
async def test_an_empty_recorded_course_and_a_session_without_expert_cannot_be_published(
    device: str, phone: BrowserContext, context: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await pick(device, phone, context).new_page()
    await log_in(page, lectern_server, BASE_ADMIN, "/provider")
    course_form = page.locator("#new-course")
    await course_form.get_by_label("课程名称").fill("港口安全生产录播课")
    await course_form.get_by_label("授课形式").select_option("recorded")
    await course_form.get_by_role("button", name="创建课程").click()
    await expect(page.locator("#panel-title")).to_have_text("港口安全生产录播课")
    await expect(page.locator("#publish-hint")).to_have_text(
        "录播课程要有可观看的回放才能发布：请先为课次录制直播，回放生成后再发布。"
    )

    message = page.locator("#panel-message")
    page.on("dialog", lambda dialog: dialog.accept())  # "no sessions yet, publish anyway?": yes
    await page.get_by_role("button", name="发布课程").click()
    await expect(message).to_have_text(
        "录播课程还没有可观看的回放，暂不能发布：请先录制课次，回放生成后再发布。"
    )
    await expect(page.locator("#panel-status")).to_have_text("草稿")
    await snap(page, "provider-refuses-empty-recorded-course")

    # A draft may plan a live session before its expert is known; the console says it is missing...
    form = page.locator("#new-session")
    start = datetime.now(UTC) + timedelta(days=10)
    await form.get_by_label("课次名称").fill("第一讲：危险货物管理")
    await form.get_by_label("开始时间（北京时间）").fill(beijing(start))
    await form.get_by_label("结束时间（北京时间）").fill(beijing(start + timedelta(hours=2)))
    await form.get_by_role("button", name="创建课次").click()
    await expect(message).to_have_text("课次“第一讲：危险货物管理”已创建。请在发布课程前为它指定授课专家。")
    item = session_item(page, "第一讲：危险货物管理")
    await expect(item.locator(".experts-names")).to_have_text("专家：未指定（发布课程前须指定）")
    # ... and publishing names it.
    await page.get_by_role("button", name="发布课程").click()
    await expect(message).to_have_text(
        "以下直播课次还没有授课专家：第一讲：危险货物管理。请先指定专家再发布。"
    )
    await expect(page.locator("#panel-status")).to_have_text("草稿")
    await snap(page, "provider-refuses-session-without-expert")
    assert await page.evaluate(OVERFLOWING) == []


@pytest.mark.parametrize("device", ["phone", "desktop"])
async def test_each_session_shows_its_state_replay_and_attendance(
    device: str, phone: BrowserContext, context: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await pick(device, phone, context).new_page()
    await open_course(page, lectern_server, PORT_COURSE)

    ended = session_item(page, ENDED)
    await expect(ended.locator(".badge")).to_have_text("已结束")
    await expect(ended.get_by_role("link", name="回放 1分40秒")).to_have_attribute(
        "href", "/replays/rec-console"
    )
    await expect(ended.locator(".live-count")).to_have_text("直播出席 2 人")
    await expect(ended.locator(".replay-count")).to_have_text("回放观看 1 人")

    live = session_item(page, LIVE)
    await expect(live.locator(".badge")).to_have_text("直播中")
    await expect(live.locator(".live-count")).to_have_text("直播出席 1 人（正在观看 1 人）")

    scheduled = session_item(page, SCHEDULED)
    await expect(scheduled.locator(".badge")).to_have_text("未开始")
    await expect(scheduled.locator(".live-count")).to_have_count(0)  # nothing to count before it starts
    await snap(page, "provider-session-states")

    # The detail: each learner once, for the union of their devices' time; the replay's furthest point.
    await ended.get_by_text("出席明细").click()
    rows = ended.locator("details.attendance tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("吴磊（港口工程师）")
    await expect(rows.nth(0)).to_contain_text("40分00秒")
    await expect(rows.nth(1)).to_contain_text("郑丽（港口会计师）")
    await expect(rows.nth(1)).to_contain_text("15分00秒")
    await expect(rows.nth(1).locator("td").nth(3)).to_have_text("1分10秒")
    await snap(page, "provider-attendance-detail")
    assert await page.evaluate(OVERFLOWING) == []
