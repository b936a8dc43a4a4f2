"""师承带徒 and 年度培训计划 in Chromium against the demo world: a learner proposes a mentorship to an expert
on a phone and the expert confirms it; an employer's administrator drafts a plan, adds a course item for
two of the port's staff, publishes it, enrolls them and sees plan vs actual."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_LEARNER, EXPERT_ID, OVERFLOWING, log_in, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

EXPERT = ("13800000008", "孙立教授")
PORT_ADMIN = "13800000006"  # 陈静（港口人事）, employer_admin of the port


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    with running_server(data_dir) as server:
        yield server


async def test_a_learner_proposes_a_mentorship_on_a_phone_and_the_expert_confirms_it(
    phone: BrowserContext, context: BrowserContext, demo_server: LecternServer
) -> None:
    learner = await phone.new_page()
    await log_in(learner, demo_server, DEMO_LEARNER[0], "/mentorships")
    await expect(learner.locator("h1")).to_have_text("师承带徒")
    await expect(learner.locator("#cap")).to_have_text("10")
    form = learner.locator("#propose")
    await form.get_by_label("我的身份").select_option("mentee")
    await form.get_by_label("对方编号").fill(str(EXPERT_ID))
    await form.get_by_label("对方姓名").fill("孙立")  # not the expert's exact name: refused, nothing revealed
    await form.get_by_label("培养计划").fill("每月面授一次，指导自动化码头课题")
    await form.get_by_label("协议条款（权利、义务、责任、费用等）").fill("双方自愿签订，不收取费用")
    await form.get_by_role("button", name="发起协议").click()
    await expect(learner.locator("#propose-message")).to_have_text(
        "没有找到该编号和姓名的人员，请向对方核对编号和姓名。"
    )
    await form.get_by_label("对方姓名").fill(EXPERT[1])
    await form.get_by_role("button", name="发起协议").click()
    await expect(learner.locator("#propose-message")).to_have_text("协议已发起，等待对方确认。")
    agreement = learner.locator("#as-mentee li.agreement")
    await expect(agreement).to_contain_text(f"导师 {EXPERT[1]}")
    await expect(agreement).to_contain_text("待确认")
    await expect(agreement).to_contain_text("等待对方确认。")
    assert await learner.evaluate(OVERFLOWING) == []
    await snap(learner, "mentorship-proposed")

    expert = await context.new_page()
    await log_in(expert, demo_server, EXPERT[0], "/mentorships")
    offered = expert.locator("#as-mentor li.agreement")
    await expect(offered).to_contain_text(f"学员 {DEMO_LEARNER[1]}")
    await expect(expert.locator("#places")).to_have_text("（1 / 10 名）")
    await offered.get_by_role("button", name="确认协议").click()
    await expect(offered).to_contain_text("已生效")
    await expect(offered).to_contain_text("协议期满")  # completion opens after the end date
    await snap(expert, "mentorship-confirmed")
    await learner.reload()
    await expect(learner.locator("#as-mentee li.agreement")).to_contain_text("已生效")


async def test_an_employer_plans_the_year_enrolls_its_staff_and_sees_plan_vs_actual(
    page: Page, demo_server: LecternServer
) -> None:
    await log_in(page, demo_server, PORT_ADMIN, "/employer/plans")
    await expect(page.locator("h1")).to_have_text("年度培训计划")
    await expect(page.locator("#plans")).to_contain_text("还没有培训计划。")
    await page.locator("#new-plan").get_by_label("计划名称").fill("港口集团年度继续教育培训计划")
    await page.get_by_role("button", name="新建计划").click()
    await expect(page.locator("#plan-title")).to_contain_text("港口集团年度继续教育培训计划")
    await expect(page.locator("#plans")).to_contain_text("0 个项目")

    item = page.locator("#new-item")
    await item.get_by_label("查找课程").fill("职业道德")
    await item.get_by_role("button", name="查找课程").click()
    await expect(item.locator("select[name=course_id]")).to_contain_text("专业技术人员职业道德与诚信建设")
    await item.get_by_label("每人目标学时").fill("6")
    await item.get_by_label("吴磊（港口工程师）", exact=False).check()
    await item.get_by_label("郑丽（港口会计师）", exact=False).check()
    await item.get_by_role("button", name="新增项目").click()
    await expect(page.locator("#items")).to_contain_text("课程：专业技术人员职业道德与诚信建设")
    await expect(page.locator("#items")).to_contain_text("每人目标 6.0 学时")

    await page.get_by_role("button", name="发布计划").click()
    await expect(page.locator("#panel-message")).to_have_text("计划已发布。")
    await expect(page.get_by_role("button", name="删除项目")).to_have_count(0)
    await page.get_by_role("button", name="为课程项目人员报名").click()
    await expect(page.locator("#panel-message")).to_have_text("已为 2 人次报名。")
    progress = page.locator("#progress")
    await expect(progress).to_contain_text("完成率 0%")
    await expect(progress).to_contain_text("已完成 0 / 2 人")
    await expect(progress.locator("tbody tr")).to_have_count(2)
    await expect(progress.locator("tbody")).to_contain_text("差 6.0")
    await expect(progress.locator("tbody")).to_contain_text("已报名")
    await expect(page.locator("#people tr")).to_have_count(2)
    await snap(page, "training-plan")
