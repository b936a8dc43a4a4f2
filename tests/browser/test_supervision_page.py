"""监管 in Chromium against the demo world, on a phone: the HR bureau sees the CE base marked with a
session that claims more than happened (3 学时 for 45 minutes, fraud 17), follows 超额课次 to that session and
on to its entries (the person masked, the entry marked), walks back with the browser's back button, and
downloads the report; an industry department sees its sector's provider only, and no link to what is the
HR bureau's alone; a learner is told the page is not for them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, expect
from sqlalchemy import select, update

from catalog.accounts import hash_password
from catalog.credit.engine import beijing_day, credit_year
from catalog.db import Database
from catalog.demo import DEMO_PASSWORD
from catalog.models import (
    Course,
    CreditEntry,
    Enrollment,
    LiveInterval,
    Organization,
    Person,
    RoleAssignment,
    Session,
)
from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_LEARNER, OVERFLOWING, log_in, seed_demo
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

BUREAU = "13800000002"  # 王建国（人社局）, catalog.demo
DEPARTMENT = "13800000077"  # an industry department's staff member, seeded below
BUILDING = "建筑"
INFLATED = "第九讲：只讲了四十五分钟"


async def _seed(data_dir: Path) -> None:
    """A 45-minute session of one of the CE base's courses, held yesterday, that credited the demo learner
    3 学时 (45 minutes allow 1); he was there (a live interval)."""
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    try:
        async with db.sessions.begin() as s:
            learner = await s.scalar(select(Person.id).where(Person.phone == DEMO_LEARNER[0]))
            base = await s.scalar(select(Organization.id).where(Organization.type == "ce_base"))
            course = (await s.scalars(select(Course).where(Course.provider_org_id == base))).first()
            assert learner is not None
            assert course is not None
            enrolled = await s.scalar(
                select(Enrollment.id).where(
                    Enrollment.person_id == learner, Enrollment.course_id == course.id
                )
            )
            if enrolled is None:
                s.add(
                    Enrollment(
                        person_id=learner, course_id=course.id, source="self", status="enrolled",
                        enrolled_at=start - timedelta(days=1),
                    )
                )  # fmt: skip
            session = Session(
                course_id=course.id, title=INFLATED, kind="live", scheduled_start=start,
                scheduled_end=start + timedelta(hours=1), actual_start=start,
                actual_end=start + timedelta(minutes=45), external_platform="none", external_ids={},
            )  # fmt: skip
            s.add(session)
            await s.flush()
            s.add(
                LiveInterval(
                    session_id=session.id, person_id=learner, peer_id="p", joined_at=start,
                    left_at=start + timedelta(minutes=45),
                )
            )  # fmt: skip
            s.add(
                CreditEntry(
                    person_id=learner, course_id=course.id, session_id=session.id,
                    credit_year=credit_year(start), credit_day=beijing_day(start).isoformat(),
                    category=course.category, kind="live", minutes=135.0, xueshi=Decimal("3.0"),
                    policy_version=0, computed_at=start + timedelta(hours=1), status="pending",
                    evidence={"figures": {"present_s": 2700.0, "window_s": 2700.0, "ratio": 1.0}},
                )
            )  # fmt: skip
            # An industry department for 建筑, the CE base's sector (the training institution has none).
            s.add(
                dept := Organization(
                    type="industry_dept", name="青岛市住房和城乡建设局", sector=BUILDING, created_at=start
                )
            )
            await s.flush()
            await s.execute(update(Organization).where(Organization.id == base).values(sector=BUILDING))
            s.add(
                person := Person(
                    name="孙建设", phone=DEPARTMENT, password_hash=await hash_password(DEMO_PASSWORD),
                    created_at=start,
                )
            )  # fmt: skip
            await s.flush()
            s.add(RoleAssignment(person_id=person.id, role="bureau", org_id=dept.id, created_at=start))
    finally:
        await db.close()


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    asyncio.run(_seed(data_dir))
    with running_server(data_dir) as server:
        yield server


async def test_the_bureau_follows_a_provider_claiming_too_much_down_to_the_entry(
    phone: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await phone.new_page()
    await log_in(page, lectern_server, BUREAU, "/supervision")
    await expect(page.get_by_role("navigation").get_by_role("link", name="监管")).to_be_visible()
    base = page.locator("#providers li.over")
    await expect(base).to_have_count(1)
    await expect(base.locator(".badge.over")).to_have_text("超额课次 1")
    await expect(page.locator("#snapshot")).to_contain_text("统计于")
    assert await page.evaluate(OVERFLOWING) == []
    await snap(page, "supervision-providers-phone")

    await base.get_by_role("button", name="超额课次").click()
    session = page.locator("#sessions li.over")
    await expect(session).to_have_count(1)
    await expect(session.locator("h3")).to_contain_text(INFLATED)
    await expect(session.locator(".reasons")).to_have_text("学时超过课次时长")
    await expect(session).to_contain_text("每人最多 1 学时，最高个人 3")
    await expect(page.locator("#over-only")).to_be_checked()
    await snap(page, "supervision-sessions-phone")

    await session.locator("h3 a").click()
    entry = page.locator("#entries li")
    await expect(entry).to_have_count(1)
    await expect(entry.locator("h3")).to_contain_text("吴*")
    await expect(entry.locator("h3")).not_to_contain_text("吴磊")
    await expect(entry.locator(".badge.over")).to_have_text("超过课次时长")
    await expect(page.locator("#session-figures")).to_contain_text("超额：学时超过课次时长")
    await expect(page.locator("#export-xlsx")).to_have_text("导出本机构（Excel）")
    assert await page.evaluate(OVERFLOWING) == []
    await snap(page, "supervision-entries-phone")

    await page.go_back()
    await expect(page.locator("#sessions li.over")).to_have_count(1)
    await expect(page.locator("#entries-view")).to_be_hidden()
    href = await page.locator("#export-xlsx").get_attribute("href")
    assert href is not None
    report = await page.request.get(f"{lectern_server.url}{href}")
    assert report.status == 200
    assert report.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert (await report.body())[:2] == b"PK"


async def test_an_industry_department_sees_its_sectors_provider_and_only_its_own_links(
    phone: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await phone.new_page()
    await log_in(page, lectern_server, DEPARTMENT, "/supervision")
    providers = page.locator("#providers li[data-provider]")
    await expect(providers).to_have_count(1)
    await expect(providers).to_contain_text("青岛市专业技术人员继续教育基地")
    await expect(providers.locator(".badge.over")).to_have_text("超额课次 1")
    await expect(page.locator("#providers")).not_to_contain_text("青岛海川职业培训学校")
    # The review list and 监管 are its; the approval queues, ledgers and credit rules are the HR bureau's.
    await expect(page.locator("nav a")).to_have_text(["课程目录", "待核查", "监管", "退出"])
    assert await page.evaluate(OVERFLOWING) == []
    await snap(page, "supervision-industry-department-phone")


async def test_a_learner_is_told_the_page_is_not_theirs(
    phone: BrowserContext, lectern_server: LecternServer
) -> None:
    page = await phone.new_page()
    await log_in(page, lectern_server, DEMO_LEARNER[0], "/me")
    await page.goto(f"{lectern_server.url}/supervision")
    await expect(page.locator("#message")).to_have_text(
        "只有人社部门、行业主管部门和系统管理员可以查看监管数据。"
    )
    await expect(page.locator("#providers-view")).to_be_hidden()
    await expect(page.get_by_role("navigation").get_by_role("link", name="监管")).to_have_count(0)
