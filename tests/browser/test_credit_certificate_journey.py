"""Credit that counts, in Chromium (issue 13): a learner's attendance becomes a 学时 that their employer
approves, that they certify with a PDF, and that anyone can verify — until it is revoked.

The port's engineer attended a 90-minute lecture earlier today: his evidence (delivery and attention
intervals) is stored through the catalog's own write paths before the server starts, and the server's
settler turns it into a pending entry, as it does after a real lecture (tests/browser/test_credit_journey.py
plays the live and replay paths themselves). Then, on phones:
- the engineer sees it 待审核 on 我的学时;
- the port's HR administrator approves it on 单位审核 (/employer) and finds him on 学时台账
  (/employer/staff) with 2 学时 of 专业 registered, still short, and in the study record she exports;
- the engineer sees 已认定（单位已审核）, makes the course's certificate, downloads it (a PDF whose text
  holds his name and serial) and opens its verification link: 有效;
- the administrator revokes the entry: the verification page says 已撤销, and 我的学时 gives her reason.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from playwright.async_api import Browser, BrowserContext, Download, Page, expect
from pypdf import PdfReader
from sqlalchemy import select

from catalog.credit.engine import credit_year
from catalog.db import Database
from catalog.models import Course, Person, Session
from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import OVERFLOWING, log_in, seed_demo
from tests.helpers import wait_until
from tests.integration.catalog.credit_support import live
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

HR = "13800000006"  # 陈静（港口人事）: employer_admin of the port
ENGINEER = "13800000010"  # 吴磊（港口工程师）: enrolled in the live course by the demo
COURSE = "智慧港口自动化码头关键技术"  # 专业科目
REASON = "签到记录存疑，撤销认定"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


async def _attended(data_dir: Path) -> int:
    """A lecture that ended half an hour ago, attended by the engineer from its second minute to its end
    (present 89 of 90 minutes: full credit, 2 学时 under the default policy); its credit year."""
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=90)
    try:
        async with db.sessions.begin() as s:
            course_id = await s.scalar(select(Course.id).where(Course.title == COURSE))
            person_id = await s.scalar(select(Person.id).where(Person.phone == ENGINEER))
            assert course_id is not None
            assert person_id is not None
            session = Session(
                course_id=course_id,
                title="第二讲：远程操控与安全管理",
                kind="live",
                scheduled_start=start,
                scheduled_end=end,
                actual_start=start,
                actual_end=end,
                external_platform="none",
                external_ids={},
            )
            s.add(session)
            await s.flush()
            session_id = session.id
        await live(db, session_id, person_id, start + timedelta(minutes=1), end)
    finally:
        await db.close()
    return credit_year(start)


@pytest.fixture
def journey(tmp_path: Path) -> Iterator[tuple[LecternServer, int]]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    year = asyncio.run(_attended(data_dir))
    with running_server(data_dir, {"LECTERN_CREDIT_SETTLE_EVERY_S": "1"}) as server:
        yield server, year


async def downloaded(download: Download) -> bytes:
    """The bytes the browser saved."""
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def _my_credits(page: Page, server: LecternServer, year: int) -> None:
    await page.goto(f"{server.url}/me/credits")
    await expect(page.locator("#courses li").first).to_be_visible()
    if await page.locator("#year").input_value() != str(year):  # a lecture before a Beijing new year
        await page.select_option("#year", str(year))
        await expect(page.locator("#courses li").first).to_be_visible()


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[dict[str, BrowserContext]]:
    """The learner and the administrator each on a phone; someone checking a certificate on a desktop."""
    made = {who: await browser.new_context(locale="zh-CN", **PHONE) for who in ("learner", "hr")}  # type: ignore[arg-type]
    made["checker"] = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    yield made
    for ctx in made.values():
        await ctx.close()


async def test_approved_credit_is_certified_verified_valid_and_shows_revoked_once_revoked(
    people: dict[str, BrowserContext], journey: tuple[LecternServer, int]
) -> None:
    server, year = journey
    learner = await people["learner"].new_page()
    await log_in(learner, server, ENGINEER, "/me/credits")
    entry = learner.locator("#courses li", has_text=COURSE).locator(".entry")

    async def settled() -> bool:
        await _my_credits(learner, server, year)
        return await entry.count() == 1

    await wait_until(settled, timeout_s=40, interval_s=1.0, message="the lecture's entry on 我的学时")
    await expect(entry).to_contain_text("待审核")
    await expect(entry).to_contain_text("2 学时")
    await expect(learner.locator("#issue button")).to_have_count(0)  # nothing registered to certify yet

    # The employer's administrator approves it on 单位审核.
    hr = await people["hr"].new_page()
    await log_in(hr, server, HR, "/employer")
    pending = hr.locator("#entries > li", has_text="吴磊")
    await expect(pending).to_have_count(1)
    await pending.get_by_role("button", name="通过").click()
    dialog = hr.locator("#reason-dialog")
    await dialog.get_by_role("button", name="确定").click()
    await expect(hr.locator("#message")).to_have_text("已通过 1 条学时。")

    # 学时台账: the engineer with 2 registered 专业 学时, short of the year's requirement; the export has it.
    await hr.get_by_role("link", name="学时台账").click()
    await hr.wait_for_url(f"{server.url}/employer/staff**")
    await hr.select_option("#year", str(year))
    person = hr.locator("#staff > li", has_text="吴磊")
    await expect(person.locator('[data-total="professional"] .registered')).to_have_text("2 / 60 学时")
    await expect(person.locator('[data-total="total"] .lack')).to_have_text("还差 88")
    await expect(person.locator(".badge")).to_have_text("未达标：还差 88 学时")
    await expect(person.locator(".arranged li", has_text=COURSE)).to_have_count(1)  # the demo's enrolment
    await hr.get_by_label("只看未达标").check()
    await expect(hr.locator("#summary")).to_contain_text("共 3 人，已达标 0 人，未达标 3 人")
    await expect(hr.locator("#staff > li")).to_have_count(3)
    assert await hr.evaluate(OVERFLOWING) == []
    await snap(hr, "employer-staff")
    async with hr.expect_download() as download_info:
        await hr.get_by_role("link", name="导出学习记录（Excel）").click()
    book = openpyxl.load_workbook(io.BytesIO(await downloaded(await download_info.value)), read_only=True)
    assert book.active is not None
    rows = [r for r in book.active.iter_rows(values_only=True) if r[0] == "吴磊（港口工程师）"]
    book.close()
    assert [(r[2], r[4], r[6], r[7]) for r in rows] == [(COURSE, "直播", 2, "已认定")]

    # The engineer: registered, certified, downloaded.
    await _my_credits(learner, server, year)
    await expect(entry).to_contain_text("已认定（单位已审核）")
    course = learner.locator("#courses li", has_text=COURSE)
    await course.get_by_role("button", name="生成课程学时证明").click()
    await expect(learner.locator("#message")).to_contain_text("证书已生成")
    cert = learner.locator("#certificates > li").first
    await expect(cert).to_contain_text(COURSE)
    await expect(cert.locator(".badge")).to_have_text("有效")
    serial = await cert.get_attribute("data-serial")
    assert serial
    await snap(learner, "my-credits-certificate")
    async with learner.expect_download() as pdf_info:
        await cert.get_by_role("link", name="下载证书（PDF）").click()
    pdf = await downloaded(await pdf_info.value)
    assert pdf.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "吴磊（港口工程师）" in text, text
    assert serial in text, text

    # Anyone opening the verification link sees it valid.
    verify_url = await cert.get_by_role("link", name="查验链接").get_attribute("href")
    assert verify_url
    assert verify_url.startswith(f"{server.url}/verify?")
    verifier = await people["checker"].new_page()
    await verifier.goto(verify_url)
    await expect(verifier.locator("#verdict-word")).to_have_text("有效")
    await expect(verifier.locator('[data-field="姓名"]')).to_have_text(re.compile(r"^吴\*"))  # masked
    await snap(verifier, "verify-valid")

    # The administrator revokes the entry; the verification page says so at once.
    await hr.goto(f"{server.url}/employer?status=registered")
    registered = hr.locator("#entries > li", has_text="吴磊")
    await registered.get_by_role("button", name="撤销认定").click()
    await dialog.get_by_label("理由").fill(REASON)
    await dialog.get_by_role("button", name="确定").click()
    await expect(hr.locator("#message")).to_have_text("已撤销认定 1 条学时。")
    await verifier.reload()
    await expect(verifier.locator("#verdict-word")).to_have_text("已撤销")
    await snap(verifier, "verify-revoked")

    await _my_credits(learner, server, year)
    await expect(entry).to_contain_text(f"已撤销：{REASON}")
    await expect(learner.locator(f'#certificates li[data-serial="{serial}"] .badge')).to_have_text("已撤销")
    assert await learner.evaluate(OVERFLOWING) == []
