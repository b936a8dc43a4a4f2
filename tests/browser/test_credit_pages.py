"""我的学时 and 学时规则 in Chromium against the demo world: a learner sees pending 学时 by 公需/专业 with
progress bars and a session waiting for credit with the reason; an administrator creates a policy
version and the page shows it, while the bureau reads the page without a form."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from catalog.credit.engine import beijing_day, credit_year
from catalog.db import Database
from catalog.models import AttentionChange, Course, CreditEntry, LiveInterval, Person, Session
from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_LEARNER, OVERFLOWING, log_in, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

WAITING = "第三讲：出勤不足的一讲"


async def _seed_ledger(data_dir: Path) -> None:
    """Two pending entries for the demo learner (one 公需, one 专业) and a session he left early."""
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    now = datetime.now(UTC)
    try:
        async with db.sessions.begin() as s:
            learner = await s.scalar(select(Person.id).where(Person.phone == DEMO_LEARNER[0]))
            courses = (await s.execute(select(Course.id, Course.category, Course.title))).all()
            public = next(c for c in courses if c.category == "public")
            professional = next(c for c in courses if c.category == "professional")
            for course, xueshi in ((public, "1.5"), (professional, "2.0")):
                s.add(
                    CreditEntry(
                        person_id=learner,
                        course_id=course.id,
                        session_id=None,
                        credit_year=credit_year(now),
                        credit_day=beijing_day(now).isoformat(),
                        category=course.category,
                        kind="live",
                        minutes=float(Decimal(xueshi) * 45),
                        xueshi=Decimal(xueshi),
                        policy_version=0,
                        computed_at=now,
                        status="pending",
                        evidence={"figures": {"present_s": 4000.0, "checks_total": 3, "checks_answered": 2}},
                    )
                )
            start = now - timedelta(hours=4)
            left_early = Session(
                course_id=professional.id,
                title=WAITING,
                kind="live",
                scheduled_start=start,
                scheduled_end=start + timedelta(hours=1),
                actual_start=start,
                actual_end=start + timedelta(hours=1),
                external_platform="none",
                external_ids={},
            )
            s.add(left_early)
            await s.flush()
            s.add_all(  # the page was seen while the media played (delivery ∩ attention, R7/R17)
                AttentionChange(
                    session_id=left_early.id,
                    person_id=learner,
                    conn_id="tab",
                    visible=visible,
                    at=start + timedelta(minutes=m),
                    reason=reason,
                )
                for visible, m, reason in ((True, 0, "shown"), (False, 20, "closed"))
            )
            s.add(
                LiveInterval(
                    session_id=left_early.id,
                    person_id=learner,
                    peer_id="phone",
                    joined_at=start,
                    left_at=start + timedelta(minutes=20),
                )
            )
    finally:
        await db.close()


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    asyncio.run(_seed_ledger(data_dir))
    with running_server(data_dir) as server:
        yield server


async def test_a_learner_sees_pending_credit_by_category_and_why_a_session_has_none(
    phone: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await phone.new_page()
    await log_in(page, lectern_server, DEMO_LEARNER[0], "/me")
    await page.get_by_role("link", name="查看我的学时").click()
    await page.wait_for_url(f"{lectern_server.url}/me/credits")
    public = page.locator('[data-total="public"]')
    await expect(public.locator(".pending")).to_have_text("待审核 1.5 学时")
    await expect(public.locator(".registered")).to_have_text("已认定 0 / 30 学时")
    await expect(page.locator('[data-total="professional"] .pending')).to_have_text("待审核 2 学时")
    await expect(page.locator('[data-total="total"] .registered')).to_have_text("已认定 0 / 90 学时")
    await expect(page.get_by_role("progressbar", name="年度总计进度")).to_have_attribute("aria-valuenow", "0")
    await expect(page.locator("#courses .entry").first).to_contain_text("待审核")
    await expect(page.locator("#courses")).to_contain_text("签到 2/3")
    waiting = page.locator("#waiting li", has_text=WAITING)
    await expect(waiting.locator(".reason")).to_have_text("出勤比例不足85%（本次约33%）")
    await expect(page.get_by_role("navigation").get_by_role("link", name="我的学时")).to_be_visible()
    assert await page.evaluate(OVERFLOWING) == []
    await snap(page, "my-credits-phone")


async def _policy_page(page: Page, server: LecternServer, phone: str) -> None:
    await log_in(page, server, phone, "/admin/credit-policy")
    await expect(page.locator("#current-version")).to_contain_text("版本")


async def test_an_admin_creates_a_policy_version_and_the_page_shows_it(
    context: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await context.new_page()
    await _policy_page(page, lectern_server, "13800000001")
    await expect(page.locator("#current-version")).to_contain_text("版本 0")
    form = page.locator("#policy-form")
    await form.get_by_label("直播出勤比例要求（0–1）").fill("1.5")
    await form.get_by_label("修改说明（必填）").fill("试一个错误的值")
    await form.get_by_role("button", name="保存为新版本").click()
    await expect(page.locator("#message")).to_contain_text("直播出勤比例要求（0–1）：取值不正确")
    await expect(form.locator('[name="live_presence_threshold"]')).to_have_attribute("aria-invalid", "true")
    await form.get_by_label("直播出勤比例要求（0–1）").fill("0.8")
    await form.get_by_label("心跳周期（秒）").fill("20")
    await form.get_by_label("修改说明（必填）").fill("按2027年通知调整")
    await form.get_by_role("button", name="保存为新版本").click()
    await expect(page.locator("#message")).to_contain_text("已保存为版本 1")
    await expect(page.locator("#current-version")).to_contain_text("版本 1")
    await expect(page.locator('#current [data-param="live_presence_threshold"]')).to_have_text("0.8")
    await expect(page.locator('#current [data-param="heartbeat_period_s"]')).to_have_text("20")
    await expect(page.locator('#history [data-version="1"]')).to_contain_text("按2027年通知调整")
    await expect(page.locator("main")).to_contain_text("已计算的学时不会按新规则重新计算")
    await snap(page, "credit-policy-admin")

    bureau = await context.browser.new_context() if context.browser else None
    assert bureau is not None
    reader = await bureau.new_page()
    await _policy_page(reader, lectern_server, "13800000002")
    await expect(reader.locator("#current-version")).to_contain_text("版本 1")
    await expect(reader.locator("#read-only")).to_be_visible()
    await expect(reader.locator("#edit")).to_be_hidden()
    await bureau.close()
