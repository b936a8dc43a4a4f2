"""One lecture timeline across a replay's angles, in Chromium at phone and desktop sizes, on a real
recording whose screen share starts 4 s into a 10 s lecture: a fresh learner starts at 0:00 on the camera;
the scrubber and the time are lecture time on both angles; choosing the screen before it exists says so
and switches when it starts; a learner resumes on the angle they watched only where it has a picture."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

import catalog
from catalog import replays
from catalog.db import Database
from streaming.recording import finalized_event
from tests.browser.conftest import snap
from tests.browser.test_replay_page import _record as record_lecture
from tests.browser.test_replay_page import _seed, log_in, video_state
from tests.helpers import wait_until
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

RECORDING_ID = "rec-timeline-1"
LECTURE_S = 10.0
SCREEN_START_S = 4.0
FRAMES = "() => document.querySelector('#video').getVideoPlaybackQuality().totalVideoFrames"


@dataclass(frozen=True)
class TimelineWorld:
    server: LecternServer
    duration_s: float


async def _record(data_dir: Path, session_id: int) -> float:
    summary = await record_lecture(data_dir, session_id, RECORDING_ID, LECTURE_S, SCREEN_START_S)
    assert {a.angle: round(a.start_s) for a in summary.angles} == {"camera": 0, "screen": SCREEN_START_S}
    db = Database(f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}")
    try:
        assert await replays.register(db, finalized_event(summary, datetime.now(UTC)), datetime.now(UTC))
    finally:
        await db.close()
    return summary.duration_s


async def _prepare(data_dir: Path) -> float:
    url = f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}"
    await asyncio.to_thread(catalog.migrate, url)
    db = Database(url)
    try:
        _course_id, session_id = await _seed(db)
    finally:
        await db.close()
    return await _record(data_dir, session_id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[TimelineWorld]:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    duration_s = asyncio.run(_prepare(data_dir))
    with running_server(data_dir) as server:
        yield TimelineWorld(server, duration_s)


def clock(s: float) -> str:
    t = int(s)
    return f"{t // 60:02d}:{t % 60:02d}"


async def open_replay(context: BrowserContext, world: TimelineWorld) -> Page:
    page = await context.new_page()
    await log_in(context, page, world.server.url)
    await page.goto(f"{world.server.url}/replays/{RECORDING_ID}")
    await page.wait_for_selector("#player-box:not([hidden])")
    return page


async def lecture_time(page: Page) -> float:
    value: str = await page.eval_on_selector("#scrubber", "el => el.value")
    return float(value)


async def at_least(page: Page, t: float, angle: str, timeout_s: float = 20) -> None:
    """Lecture time reached `t` with `angle` on screen and its frames being decoded."""
    await page.wait_for_function(
        "([t, angle]) => Number(document.querySelector('#scrubber').value) >= t"
        " && document.querySelector('#player').dataset.angle === angle",
        arg=[t, angle],
        timeout=timeout_s * 1000,
    )
    before = await page.evaluate(FRAMES)
    await page.wait_for_function(f"() => ({FRAMES})() > {before}", timeout=timeout_s * 1000)


async def scrub_to(page: Page, t: float) -> None:
    """What a learner's drag does: input events while moving, change on release."""
    await page.eval_on_selector(
        "#scrubber",
        """(el, t) => { el.value = String(t); el.dispatchEvent(new Event('input', {bubbles: true}));
                        el.dispatchEvent(new Event('change', {bubbles: true})); }""",
        t,
    )


@pytest.mark.parametrize("device", ["phone", "desktop"])
async def test_a_fresh_learner_starts_at_zero_on_the_camera_and_the_screen_follows_the_lecture(
    device: str, phone: BrowserContext, context: BrowserContext, world: TimelineWorld
) -> None:
    context = phone if device == "phone" else context
    page = await open_replay(context, world)
    total = clock(world.duration_s)

    # A fresh open: 0:00 on the camera, the whole lecture on the scrubber, the length in minutes and seconds.
    await expect(page.locator("#time")).to_have_text(f"00:00 / {total}")
    await expect(page.locator("#duration")).to_have_text(f"时长 {round(world.duration_s)}秒")
    assert await page.get_attribute("#angles button[data-angle=camera]", "aria-pressed") == "true"
    assert await page.get_attribute("#player", "data-angle") == "camera"
    assert float(await page.get_attribute("#scrubber", "max") or 0) == pytest.approx(world.duration_s)
    await expect(page.locator("#angle-note")).to_be_hidden()
    body = await page.inner_text("body")
    assert "开始。" not in body, body  # no "讲师画面从 00:00 开始。"
    assert "0 分钟" not in body, body
    assert await page.evaluate("import('/static/js/ui.js').then(m => [m.duration(100), m.duration(15)])") == [
        "1分40秒",
        "15秒",
    ]
    await snap(page, "replay-fresh")

    # Play; choose the screen before it exists: the camera keeps playing, the page says when it starts.
    await page.evaluate("document.querySelector('#video').muted = true")
    await page.get_by_role("button", name="播放").click()
    await at_least(page, 0.5, "camera")
    await page.get_by_role("button", name="暂停").click()  # a 10 s lecture: hold it while we look
    await page.click("#angles button[data-angle=screen]")
    note = page.locator("#angle-note")
    await expect(note).to_contain_text(
        f"屏幕共享从 {clock(SCREEN_START_S)} 开始，届时自动切换；现在显示讲师画面。"
    )
    assert await page.get_attribute("#angles button[data-angle=screen]", "aria-pressed") == "true"
    assert await lecture_time(page) < SCREEN_START_S
    assert await page.get_attribute("#player", "data-angle") == "camera"
    await snap(page, "replay-screen-not-started")
    await page.get_by_role("button", name="播放").click()

    # The lecture time runs on; at 00:04 the screen takes over, still on the same scrubber and clock.
    await at_least(page, SCREEN_START_S + 0.5, "screen")
    await expect(note).to_be_hidden()
    shown = await lecture_time(page)
    assert SCREEN_START_S < shown < world.duration_s
    assert (await page.inner_text("#time")).endswith(f" / {total}")
    state = await video_state(page)
    # The screen's media starts at its own 0: the page adds the angle's start to show lecture time.
    assert abs(state["t"] + SCREEN_START_S - shown) < 1.0, (state, shown)
    await snap(page, "replay-screen")

    # Back to a moment before the share on the scrubber: the camera plays there, the note says why.
    await scrub_to(page, 1.0)
    await at_least(page, 1.0, "camera")
    await expect(note).to_contain_text("现在显示讲师画面")
    assert await lecture_time(page) < SCREEN_START_S
    # ... and the note's button goes to where the screen starts.
    await note.get_by_role("button", name=f"跳到 {clock(SCREEN_START_S)}").click()
    await at_least(page, SCREEN_START_S, "screen")
    await snap(page, "replay-jumped-to-screen")


async def save_progress(context: BrowserContext, world: TimelineWorld, position_s: float, angle: str) -> None:
    """Watch to `position_s` as a replay page does (a playback and its heartbeat), until the catalog keeps
    it as the resume point."""
    base, headers = world.server.url, {"X-CSRF-Token": await csrf(context)}
    resp = await context.request.post(f"{base}/api/replays/{RECORDING_ID}/playback", headers=headers)
    assert resp.status == 201, await resp.text()
    opened = await resp.json()
    beat = {
        "token": opened["token"],
        "seq": 0,
        "position_s": position_s,
        "rate": 1,
        "visible": True,
        "angle": angle,
    }
    resp = await context.request.post(
        f"{base}/api/playback/{opened['client_id']}/heartbeats", data=beat, headers=headers
    )
    assert resp.status == 200, await resp.text()

    async def kept() -> bool:
        replay = await (await context.request.get(f"{base}/api/replays/{RECORDING_ID}")).json()
        return bool(replay["progress"]) and replay["progress"]["position_s"] == position_s

    await wait_until(kept, timeout_s=10, message="the resume point kept from the heartbeat")


async def csrf(context: BrowserContext) -> str:
    """The token log_in kept in the page's localStorage, as the pages send it."""
    token: str = await context.pages[0].evaluate("localStorage.getItem('lectern.csrf')")
    assert token
    return token


@pytest.mark.parametrize("device", ["phone", "desktop"])
@pytest.mark.parametrize(
    ("saved_at", "expected_angle"),
    [(6.0, "screen"), (2.0, "camera")],
    ids=["on-the-screen-where-it-has-a-picture", "on-the-camera-before-the-screen-started"],
)
async def test_a_returning_learner_resumes_on_their_angle_only_where_it_has_a_picture(
    device: str,
    saved_at: float,
    expected_angle: str,
    phone: BrowserContext,
    context: BrowserContext,
    world: TimelineWorld,
) -> None:
    context = phone if device == "phone" else context
    page = await open_replay(context, world)
    await save_progress(context, world, saved_at, "screen")
    await page.reload()
    await page.wait_for_selector("#player-box:not([hidden])")

    await expect(page.locator("#message")).to_have_text(f"已为您从上次观看的位置（{clock(saved_at)}）继续。")
    await expect(page.locator("#time")).to_have_text(f"{clock(saved_at)} / {clock(world.duration_s)}")
    assert await page.get_attribute(f"#angles button[data-angle={expected_angle}]", "aria-pressed") == "true"
    assert await page.get_attribute("#player", "data-angle") == expected_angle
    await expect(page.locator("#angle-note")).to_be_hidden()
    state = await _positioned(page)
    offset = SCREEN_START_S if expected_angle == "screen" else 0.0
    assert abs(state["t"] + offset - saved_at) < 1.0, state
    await snap(page, f"replay-resumed-{expected_angle}")


async def _positioned(page: Page) -> dict[str, Any]:
    await page.wait_for_function(
        "() => { const v = document.querySelector('#video');"
        " return v.readyState >= 1 && v.currentTime > 0; }",
        timeout=15_000,
    )
    return await video_state(page)
