"""The replay page as evidence: it opens a playback, sends heartbeats, says what is being counted (正在计时,
已暂停：页面不可见), shows the server's presence check as a dialog answered by a click, and stops counting
when another tab of the learner takes over. A two-minute lecture (one check), with a one-second heartbeat
period in the stored credit policy."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page
from sqlalchemy import func, select

import catalog
from catalog import replays
from catalog.db import Database
from catalog.models import CreditPolicyVersion, Heartbeat, PresenceAnswer
from catalog.playback import check_positions
from infra.objects_local import LocalObjectStore
from recorder import Recorder
from streaming.recording import finalized_event
from tests.browser.test_replay_page import _seed, log_in, video_state
from tests.helpers import wait_until
from tests.integration.recorder.recorder_testkit import SyntheticLecture
from tests.server import LecternServer, running_server

pytestmark = pytest.mark.browser

RECORDING_ID = "rec-evidence-1"
LECTURE_S = 125.0


@dataclass(frozen=True)
class EvidenceWorld:
    server: LecternServer
    db_url: str


async def _prepare(data_dir: Path) -> str:
    url = f"sqlite+aiosqlite:///{(data_dir / 'lectern.db').resolve()}"
    await asyncio.to_thread(catalog.migrate, url)
    db = Database(url)
    try:
        _course_id, session_id = await _seed(db)
        async with db.sessions.begin() as s:
            # What an administrator would store through the policy API: heartbeats every second.
            s.add(
                CreditPolicyVersion(
                    version=1, params={"heartbeat_period_s": 1}, created_at=datetime.now(UTC), note="test"
                )
            )
        store = LocalObjectStore(data_dir / "objects", signing_key="unused", base_url="http://127.0.0.1")
        lecture = SyntheticLecture(video={"camera": "h264"}, fps=10)
        recorder = Recorder(
            store,
            session_id=session_id,
            recording_id=RECORDING_ID,
            spool_dir=data_dir / "spool",
            request_keyframe=lecture.request_keyframe,
            segment_duration_s=2.0,
        )
        await recorder.start()
        for i, frame in enumerate(lecture.frames(0.0, LECTURE_S)):
            if i % 40 == 39:
                lecture.request_keyframe("camera")  # keyframes often: the test seeks far into it
            recorder.push(frame)
            if i % 20 == 0:
                await asyncio.sleep(0)
        summary = await recorder.finish()
        await store.close()
        assert await replays.register(db, finalized_event(summary, datetime.now(UTC)), datetime.now(UTC))
    finally:
        await db.close()
    return url


@pytest.fixture
def evidence_world(tmp_path: Path) -> Iterator[EvidenceWorld]:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    url = asyncio.run(_prepare(data_dir))
    with running_server(data_dir) as server:
        yield EvidenceWorld(server, url)


async def counted(page: Page) -> tuple[str, str]:
    state: list[str] = await page.evaluate(
        """() => { const c = document.querySelector('#counting');
                   return [c.dataset.state || '', c.textContent]; }"""
    )
    return state[0], state[1]


async def in_state(page: Page, want: str) -> tuple[str, str] | None:
    got = await counted(page)
    return got if got[0] == want else None


def seed_of(token: str) -> str:
    """The check schedule's seed from a playback token's (signed, not secret) claims."""
    payload = token.split(".", 1)[0]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["x"]["k"])


async def rows(db_url: str, model: Any, client_id: str) -> int:
    db = Database(db_url)
    try:
        async with db.sessions.begin() as s:
            column = model.client_id if hasattr(model, "client_id") else model.check_id
            return int(
                await s.scalar(select(func.count()).select_from(model).where(column.like(f"{client_id}%")))
                or 0
            )
    finally:
        await db.close()


async def seek_and_play(page: Page, at: float) -> None:
    await page.evaluate(
        """at => { const s = document.querySelector('#scrubber'); s.value = String(at);
                   s.dispatchEvent(new Event('change')); }""",
        at,
    )
    await page.evaluate(
        """() => { const v = document.querySelector('#video'); v.muted = true;
                   v.play().catch(() => {}); }"""
    )


async def test_the_replay_page_counts_only_while_seen_and_answers_a_check_with_a_click(
    context: BrowserContext, page: Page, evidence_world: EvidenceWorld
) -> None:
    base = evidence_world.server.url
    await log_in(context, page, base)
    async with page.expect_response(
        lambda r: r.url.endswith(f"/api/replays/{RECORDING_ID}/playback") and r.request.method == "POST"
    ) as info:
        await page.goto(f"{base}/replays/{RECORDING_ID}")
    opened = await (await info.value).json()
    assert opened["heartbeat_period_s"] == 1
    assert opened["first_viewing"] is True
    await page.wait_for_selector("#player-box:not([hidden])")
    # Only the speeds that count are offered (max rate 1.0): the select is not shown.
    assert await page.locator("#rate option").all_inner_texts() in (["0.75×", "1×"], [])
    assert await counted(page) == ("paused", "已暂停")

    [check_at] = check_positions(seed_of(opened["token"]), LECTURE_S, 3)
    await seek_and_play(page, check_at - 3)
    assert await wait_until(lambda: in_state(page, "counting"), timeout_s=15) == ("counting", "正在计时")

    # Playing over the check's position: the server's next answer carries the check; playback waits for it.
    seen: list[dict[str, Any]] = []

    async def past_check() -> dict[str, Any] | None:
        state = await video_state(page)
        seen[:] = [state]
        return state if state["t"] >= check_at + 1 or state["paused"] else None

    await wait_until(
        past_check, timeout_s=20, message=lambda: f"playback over the check at {check_at} ({seen})"
    )
    await page.wait_for_selector("#check[open]", timeout=20_000)
    assert (await counted(page))[0] == "check"
    assert (await video_state(page))["paused"]
    await page.click("#check-answer")
    await page.wait_for_selector("#check:not([open])", state="attached")
    await wait_until(
        lambda: in_state(page, "counting"), timeout_s=10, message="counting again after the answer"
    )
    assert not (await video_state(page))["paused"]
    client_id = opened["client_id"]
    await wait_until(
        lambda: rows(evidence_world.db_url, PresenceAnswer, client_id),
        timeout_s=15,
        message="the answer stored as evidence",
    )
    assert await rows(evidence_world.db_url, Heartbeat, client_id) >= 3

    # The page hidden (another app in front on a phone): not counted, and the heartbeat says so.
    await page.evaluate(
        """() => { Object.defineProperty(document, 'visibilityState',
                                         {configurable: true, get: () => 'hidden'});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    assert await counted(page) == ("hidden", "已暂停：页面不可见")
    await page.evaluate(
        """() => { delete document.visibilityState;
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    assert (await counted(page))[0] == "counting"

    # A second tab of the learner takes over: the first stops counting and says where learning goes on.
    second = await context.new_page()
    await second.goto(f"{base}/replays/{RECORDING_ID}")
    await second.wait_for_selector("#player-box:not([hidden])")
    state = await wait_until(
        lambda: in_state(page, "superseded"), timeout_s=15, message="first tab superseded"
    )
    assert state is not None
    assert "已在其他页面继续学习" in state[1]
    assert (await video_state(page))["paused"]
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.locator("#counting").is_visible()
