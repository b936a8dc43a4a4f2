"""单位审核 in Chromium on a phone, against the demo world: the port's HR administrator sees her staff's
pending 学时 with the evidence behind each (time intervals, checks answered, flags), approves one,
rejects one (the dialog insists on a reason), approves two at once, cannot decide her own entry, then
revokes a registered one among the recent decisions. She is the port's only administrator, so the HR
bureau finds her own entry in its queue of employer administrators' entries and approves it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from catalog.credit.engine import credit_year
from catalog.db import Database
from catalog.models import Course, CreditEntry, FraudFlag, Person, Session
from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import OVERFLOWING, log_in, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

BUREAU = "13800000002"  # 王建国（人社局）
HR = "13800000006"  # 陈静（港口人事）: employer_admin of the port, and one of its staff
ENGINEER = "13800000010"  # 吴磊（港口工程师）
ACCOUNTANT = "13800000011"  # 郑丽（港口会计师）


async def _seed(data_dir: Path) -> None:
    """Pending entries: three of the engineer's, one of the accountant's, one of the HR administrator's."""
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    posted = datetime.now(UTC) - timedelta(days=1)
    start = posted - timedelta(hours=3)
    try:
        async with db.sessions.begin() as s:
            rows = await s.execute(
                select(Person.phone, Person.id).where(Person.phone.in_([HR, ENGINEER, ACCOUNTANT]))
            )
            people = {phone: person_id for phone, person_id in rows}
            course = await s.scalar(
                select(Course).where(Course.category == "professional").order_by(Course.id)
            )
            assert course is not None
            session = Session(
                course_id=course.id,
                title="第一讲：港口新技术",
                kind="live",
                scheduled_start=start,
                scheduled_end=start + timedelta(minutes=90),
                actual_start=start,
                actual_end=start + timedelta(minutes=90),
                external_platform="none",
                external_ids={},
            )
            s.add(session)
            await s.flush()
            evidence = {
                "figures": {
                    "present_s": 5100.0,
                    "window_s": 5400.0,
                    "ratio": 0.944,
                    "checks_total": 3,
                    "checks_answered": 2,
                },
                "credited_spans": [[start.isoformat(), (start + timedelta(minutes=85)).isoformat()]],
                "window": [[start.isoformat(), (start + timedelta(minutes=90)).isoformat()]],
                "policy_version": 0,
            }
            owed = [(ENGINEER, "2.0"), (ENGINEER, "1.5"), (ENGINEER, "1.0"), (ACCOUNTANT, "2.0"), (HR, "2.0")]
            for phone, xueshi in owed:
                s.add(
                    CreditEntry(
                        person_id=people[phone],
                        course_id=course.id,
                        session_id=session.id,
                        credit_year=credit_year(posted),
                        credit_day=posted.date().isoformat(),
                        category="professional",
                        kind="live",
                        minutes=float(Decimal(xueshi) * 45),
                        xueshi=Decimal(xueshi),
                        policy_version=0,
                        computed_at=posted,
                        status="pending",
                        evidence=evidence,
                    )
                )
            s.add(
                FraudFlag(
                    person_id=people[ENGINEER],
                    session_id=session.id,
                    course_id=course.id,
                    code="auto_confirm",
                    subject=f"session:{session.id}",
                    severity="high",
                    evidence={"latency_ms": 90},
                    status="open",
                    created_at=posted,
                )
            )
    finally:
        await db.close()


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    asyncio.run(_seed(data_dir))
    with running_server(data_dir) as server:
        yield server


async def test_an_employer_approves_rejects_and_revokes_staff_credit_on_a_phone(
    phone: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await phone.new_page()
    await log_in(page, lectern_server, HR, "/employer")
    await expect(page.get_by_role("link", name="单位审核")).to_be_visible()
    items = page.locator("#entries > li")
    await expect(items).to_have_count(5)
    await expect(page.locator("#summary")).to_have_text("共 5 条")

    own = items.filter(has_text="陈静")
    await expect(own).to_contain_text("本人学时，须由本单位其他管理员或人社部门审核。")
    await expect(own.locator("input.pick")).to_have_count(0)
    await expect(own.get_by_role("button", name="通过")).to_have_count(0)

    engineer = items.filter(has_text="吴磊")
    first = engineer.first
    await expect(first.locator(".flags")).to_contain_text("签到应答过快（疑似脚本）")
    await first.get_by_text("学习证据").click()
    evidence = first.locator("dl.evidence")
    await expect(evidence).to_contain_text("签到应答2 / 3")
    await expect(evidence).to_contain_text("出勤比例94%")
    await expect(evidence).to_contain_text("–")  # the credited interval, in Beijing time
    assert await page.evaluate(OVERFLOWING) == []
    await snap(page, "employer-approval")

    # One approval: a confirmation dialog, no reason needed.
    approved_id = await first.get_attribute("data-entry")
    await first.get_by_role("button", name="通过").click()
    dialog = page.locator("#reason-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#message")).to_have_text("已通过 1 条学时。")
    await expect(items).to_have_count(4)
    await expect(page.locator(f'#entries li[data-entry="{approved_id}"]')).to_have_count(0)

    # A rejection needs a reason: the dialog says so and stays open.
    accountant = items.filter(has_text="郑丽")
    await accountant.get_by_role("button", name="驳回").click()
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#reason-error")).to_have_text("请填写理由。")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("理由").fill("当天在岗值班，未参加学习")
    await snap(page, "employer-reject-dialog")
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#message")).to_have_text("已驳回 1 条学时。")
    await expect(items).to_have_count(3)

    # The engineer's other two, approved together.
    for box in await items.filter(has_text="吴磊").locator("input.pick").all():
        await box.check()
    await expect(page.locator("#selected-count")).to_have_text("已选 2 条")
    await page.get_by_role("button", name="批量通过").click()
    await expect(page.locator("#reason-what")).to_have_text("所选 2 条学时，共 2.5 学时")
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#message")).to_have_text("已通过 2 条学时。")
    await expect(items).to_have_count(1)  # her own, waiting for a colleague

    # Recent decisions: three registered, one rejected with its reason; revoke one registered.
    await page.get_by_label("状态").select_option("decided")
    await expect(items).to_have_count(4)
    await expect(items.filter(has_text="郑丽")).to_contain_text("驳回：当天在岗值班，未参加学习")
    revoked = page.locator(f'#entries li[data-entry="{approved_id}"]')
    await revoked.get_by_role("button", name="撤销认定").click()
    await dialog.get_by_label("理由").fill("签到记录存疑，撤销认定")
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#message")).to_have_text("已撤销认定 1 条学时。")
    await expect(revoked).to_have_attribute("data-status", "revoked")
    await expect(revoked).to_contain_text("已撤销")
    await revoked.get_by_role("button", name="审核记录").click()
    await expect(revoked.locator("ol.history li")).to_have_count(2)
    await expect(revoked.locator("ol.history")).to_contain_text("撤销认定：签到记录存疑，撤销认定")
    assert await page.evaluate(OVERFLOWING) == []

    # The HR bureau decides her own entry: its queue of employer administrators' entries lists it.
    await phone.clear_cookies()
    await log_in(page, lectern_server, BUREAU, "/employer")
    await page.get_by_label("审核范围").select_option(label="单位管理员本人学时（人社部门可审核）")
    await expect(items).to_have_count(1)
    hers = items.filter(has_text="陈静")
    await expect(hers.locator('[data-tag="employer-admin"]')).to_have_text("单位管理员")
    await expect(hers).not_to_contain_text("本人学时")
    await hers.get_by_role("button", name="通过").click()
    await expect(page.locator("#reason-what")).to_contain_text("陈静")
    await dialog.get_by_label("理由").fill("单位仅一名管理员，由人社部门审核")
    await dialog.get_by_role("button", name="确定").click()
    await expect(page.locator("#message")).to_have_text("已通过 1 条学时。")
    await expect(items).to_have_text(["没有待审核的学时。"])
    await page.get_by_label("状态").select_option("decided")
    await expect(items.filter(has_text="陈静")).to_contain_text(
        "王建国（人社局）（人社部门）通过：单位仅一名管理员，由人社部门审核"
    )
    assert await page.evaluate(OVERFLOWING) == []
