"""Offline training in real Chromium, the way it happens at a venue (issue 15).

The provider schedules an offline session of the demo's 线下 course and the learner enrolls (API). The
provider's administrator opens the venue display (`/venue/{id}`, a desktop); the test reads the QR code
off the screen (a screenshot decoded with zxing-cpp), and the learner's phone (390x844) opens the URL it
encodes: not logged in yet, the phone goes to the login page and comes back to the same URL, code and
all, and signs in with one tap. The display counts the learner. With the next code on the screen the
learner signs out and sees both times. The provider records that the session ended (an audited time
correction), settlement runs, and 我的学时 shows the pending 线下培训 entry of the interval's 学时. Then
the administrator corrects the sign-out on 签到记录 with a reason, and 我的学时 shows the credit settled
again.

A short policy keeps it quick: a new code every 5 s, valid 30 s; 1 学时 per minute, to 0.1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import snap
from tests.browser.test_catalog_pages import DEMO_PASSWORD, seed_demo
from tests.helpers import wait_until
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

ADMIN = "13800000001"
INSTITUTION_ADMIN = "13800000005"  # 刘洋, provider_admin of the training school (the 线下 course's)
LEARNER = "13800000010"  # 吴磊
OFFLINE_COURSE = "建设工程安全生产管理实务"
PLACE = "青岛市市北区敦化路 138 号 培训中心 2 楼"
POLICY = {
    "offline_code_period_s": 5,
    "offline_code_valid_s": 30,
    "minutes_per_xueshi": 1,
    "rounding_unit": "0.1",
    "note": "浏览器测试：签到码每 5 秒更换，每分钟计 1 学时",
}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
BEIJING = ZoneInfo("Asia/Shanghai")
SIGNED_IN_AT_LEAST_S = 12  # before signing out: long enough for a 学时 figure above zero


@pytest.fixture
def lectern_server(tmp_path: Path) -> Iterator[LecternServer]:
    data_dir = tmp_path / "var"
    seed_demo(data_dir)
    with running_server(data_dir, {"LECTERN_CREDIT_SETTLE_EVERY_S": "1"}) as server:
        yield server


class Api:
    """One person's logged-in API session (cookie and CSRF token), for what the test sets up."""

    def __init__(self, http: aiohttp.ClientSession, csrf: str) -> None:
        self.http = http
        self.csrf = csrf

    async def call(self, method: str, path: str, body: Any = None, expect_status: int = 200) -> Any:
        async with self.http.request(method, path, json=body, headers={"X-CSRF-Token": self.csrf}) as r:
            assert r.status == expect_status, await r.text()
            return await r.json()


async def as_person(server: LecternServer, phone: str) -> Api:
    http = aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post("/api/auth/login", json={"phone": phone, "password": DEMO_PASSWORD}) as r:
        assert r.status == 200, await r.text()
        return Api(http, (await r.json())["csrf_token"])


async def qr_url(page: Page) -> str:
    """What the QR code on the venue display says, read off a screenshot of it as a phone camera would."""
    png = await page.locator("#qr").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1, "one QR code on the screen"
    return str(found[0].text)


def code_of(url: str) -> str:
    match = re.search(r"[?&]c=([^&]+)", url)
    assert match, url
    return match.group(1)


@pytest.mark.timeout(180)
async def test_a_learner_signs_in_and_out_on_a_phone_by_scanning_the_venue_code_and_earns_pending_credit(
    lectern_server: LecternServer, browser: Browser, phone: BrowserContext, page: Page
) -> None:
    server = lectern_server
    admin = await as_person(server, ADMIN)
    staff = await as_person(server, INSTITUTION_ADMIN)
    learner = await as_person(server, LEARNER)
    try:
        await admin.call("POST", "/api/credit-policy", POLICY, expect_status=201)
        courses = await staff.call("GET", "/api/courses?q=安全生产")
        (course,) = [c for c in courses["items"] if c["title"] == OFFLINE_COURSE]
        start = datetime.now(UTC) - timedelta(minutes=4)  # began a moment ago (within the 5 min allowed)
        session = await staff.call(
            "POST",
            f"/api/courses/{course['id']}/sessions",
            {
                "title": "施工现场安全实操",
                "kind": "offline",
                "location": PLACE,
                "scheduled_start": start.isoformat(),
                "scheduled_end": (start + timedelta(hours=2)).isoformat(),
            },
            expect_status=201,
        )
        sid = session["id"]
        await learner.call("POST", f"/api/courses/{course['id']}/enroll", expect_status=201)

        # The venue display, on the staff's laptop.
        await page.goto(f"{server.url}/login?next=/venue/{sid}")
        await page.get_by_label("手机号").fill(INSTITUTION_ADMIN)
        await page.get_by_label("密码").fill(DEMO_PASSWORD)
        await page.get_by_role("button", name="登录").click()
        await page.wait_for_url(f"{server.url}/venue/{sid}")
        await expect(page.locator("#qr")).to_be_visible()
        await expect(page.locator("#place")).to_have_text(f"地点：{PLACE}")
        await expect(page.locator("#present")).to_have_text("0")
        scanned = await qr_url(page)
        assert scanned == await page.locator("#qr").get_attribute("data-url")
        assert re.fullmatch(rf"{re.escape(server.url)}/checkin/{sid}\?c=\d+\.[A-Za-z0-9_-]{{24}}", scanned)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 1280, (
            "the display fits the screen"
        )
        await snap(page, "offline-venue")

        # The learner's phone opens the scanned URL: log in first, then back to it, and sign in.
        mobile = await phone.new_page()
        await mobile.goto(scanned)
        await mobile.wait_for_url(re.compile(r"/login\?next="))
        await mobile.get_by_label("手机号").fill(LEARNER)
        await mobile.get_by_label("密码").fill(DEMO_PASSWORD)
        await mobile.get_by_role("button", name="登录").click()
        await mobile.wait_for_url(scanned)
        await expect(mobile.locator("#place")).to_have_text(f"地点：{PLACE}")
        await expect(mobile.locator("#state")).to_have_text("尚未签到")
        await mobile.get_by_role("button", name="签到").click()
        await expect(mobile.locator("#message")).to_contain_text("签到成功")
        await expect(mobile.locator("#state")).to_contain_text("已签到")
        assert await mobile.evaluate("location.search") == "", "the used code leaves the address bar"
        assert await mobile.evaluate("document.documentElement.scrollWidth") <= 390
        await snap(mobile, "offline-checkin-signed-in")
        # Scanned once, the code is spent: without a new scan there is nothing to tap.
        await expect(mobile.get_by_role("button", name="签退")).to_be_hidden()
        await expect(page.locator("#present")).to_have_text("1", timeout=15_000)

        # Later, with a code shown after the sign-in, the learner signs out.
        signed_in = datetime.now(UTC)
        first_code = code_of(scanned)

        async def next_code() -> str | None:
            if (datetime.now(UTC) - signed_in).total_seconds() < SIGNED_IN_AT_LEAST_S:
                return None
            url = await qr_url(page)
            return url if code_of(url) != first_code else None

        later = await wait_until(next_code, timeout_s=30, interval_s=1.0, message="a new code on the venue")
        assert later is not None
        await mobile.goto(later)
        await mobile.get_by_role("button", name="签退").click()
        await expect(mobile.locator("#message")).to_contain_text("签退成功")
        await expect(mobile.locator("#state")).to_contain_text("已签退")
        await expect(mobile.locator("#intervals li")).to_have_count(1)
        await expect(mobile.locator("#intervals li")).to_contain_text("签退")
        await snap(mobile, "offline-checkin-signed-out")
        await expect(page.locator("#present")).to_have_text("0", timeout=15_000)
        await expect(page.locator("#total")).to_have_text("1")
        await page.goto(f"{server.url}/venue/{sid}/records")  # the staff's list, where corrections are made
        row = page.locator("#rows tr[data-attendance]")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("吴磊")
        await expect(row).to_contain_text("已签退")

        # The session ends (the provider records it), settlement runs, 我的学时 shows the credit.
        state = await learner.call("GET", f"/api/sessions/{sid}/checkin")
        (interval,) = state["intervals"]
        signed = (
            datetime.fromisoformat(interval["signed_in_at"]),
            datetime.fromisoformat(interval["signed_out_at"]),
        )
        minutes = Decimal(repr((signed[1] - signed[0]).total_seconds())) / 60
        expected = minutes.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)  # 1 学时 a minute, to 0.1
        assert expected > 0
        await staff.call(
            "POST",
            f"/api/sessions/{sid}/time-corrections",
            {
                "actual_start": start.isoformat(),
                "actual_end": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
                "reason": "培训提前结束，按实际时间结算",
            },
            expect_status=201,
        )
        credits = await phone.new_page()
        entry = credits.locator("#courses li", has_text=OFFLINE_COURSE).locator(".entry")

        async def shown() -> bool:
            await credits.goto(f"{server.url}/me/credits")
            await expect(credits.locator("#totals")).not_to_be_empty()
            return await entry.count() == 1

        await wait_until(shown, timeout_s=30, interval_s=1.0, message="the offline entry on 我的学时")
        await expect(entry).to_contain_text("线下培训")
        await expect(entry).to_contain_text(f"{expected.normalize():f} 学时")
        await expect(entry).to_contain_text("待审核")
        await snap(credits, "offline-credits")

        # A wrong time: on 签到记录 the provider's administrator corrects the sign-out, with a reason; the
        # credit is settled again at once (the first entry reversed, a new one for the corrected interval).
        corrected = (signed[0] + timedelta(seconds=7)).astimezone(BEIJING).replace(microsecond=0)
        expected_now = (Decimal(repr((corrected - signed[0]).total_seconds())) / 60).quantize(
            Decimal("0.1"), rounding=ROUND_FLOOR
        )
        assert expected_now < expected
        await page.goto(f"{server.url}/venue/{sid}/records")
        row = page.locator("#rows tr[data-attendance]")
        await row.locator("summary").click()
        await row.get_by_label("签退时间（北京时间）").fill(corrected.strftime("%Y-%m-%dT%H:%M:%S"))
        await row.get_by_label("原因").fill("核对签到表：学员提前离场")
        await row.get_by_role("button", name="保存更正").click()
        await expect(page.locator("#message")).to_contain_text("学时已重新结算")
        await expect(row).to_contain_text("已更正：核对签到表：学员提前离场")
        await snap(page, "offline-records")
        await credits.goto(f"{server.url}/me/credits")
        course_item = credits.locator("#courses li", has_text=OFFLINE_COURSE)
        await expect(course_item.locator(".entry")).to_have_count(3)  # credited, reversed, credited anew
        await expect(course_item).to_contain_text(f"待审核 {expected_now.normalize():f} 学时")
    finally:
        for person in (admin, staff, learner):
            await person.http.close()
