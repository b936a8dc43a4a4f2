"""The media window: when a session's live room may be published to, watched and talked in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog.lifecycle import (
    WHIP_OPENS_BEFORE_START,
    MediaRefusal,
    SessionStatus,
    media_refusal,
    whip_opens_at,
)

START = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 in Qingdao
MIN = timedelta(minutes=1)
OPENS = START - WHIP_OPENS_BEFORE_START

CASES = [
    # (id, publishing, course status, session status, now, refusal)
    ("whip-a-day-early", True, "published", SessionStatus.SCHEDULED, START - timedelta(days=1), "too_early"),
    ("whip-a-minute-before-it-opens", True, "published", SessionStatus.SCHEDULED, OPENS - MIN, "too_early"),
    ("whip-as-it-opens", True, "published", SessionStatus.SCHEDULED, OPENS, None),
    ("whip-at-the-start", True, "published", SessionStatus.SCHEDULED, START, None),
    ("whip-late-start", True, "published", SessionStatus.SCHEDULED, START + 30 * MIN, None),
    ("whip-after-a-missed-slot", True, "published", SessionStatus.MISSED, START + timedelta(hours=3), None),
    ("whip-reconnect-while-live", True, "published", SessionStatus.LIVE, OPENS - MIN, None),
    ("whip-ended", True, "published", SessionStatus.ENDED, START + 10 * MIN, "session_ended"),
    ("whip-draft", True, "draft", SessionStatus.SCHEDULED, START, "course_not_published"),
    ("whip-archived", True, "archived", SessionStatus.SCHEDULED, START, "course_not_published"),
    ("whip-draft-ended", True, "draft", SessionStatus.ENDED, START, "course_not_published"),
    (
        "watch-a-day-early-to-wait",
        False,
        "published",
        SessionStatus.SCHEDULED,
        START - timedelta(days=1),
        None,
    ),
    ("watch-live", False, "published", SessionStatus.LIVE, START, None),
    ("watch-missed", False, "published", SessionStatus.MISSED, START + timedelta(hours=3), None),
    ("watch-ended", False, "published", SessionStatus.ENDED, START + 10 * MIN, "session_ended"),
    ("watch-draft", False, "draft", SessionStatus.SCHEDULED, START, "course_not_published"),
    ("watch-archived-live", False, "archived", SessionStatus.LIVE, START, "course_not_published"),
]


@pytest.mark.parametrize(
    ("publishing", "course_status", "status", "now", "refusal"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_media_window(
    publishing: bool, course_status: str, status: SessionStatus, now: datetime, refusal: str | None
) -> None:
    got = media_refusal(
        publishing=publishing, course_status=course_status, status=status, scheduled_start=START, now=now
    )
    assert got == (MediaRefusal(refusal) if refusal else None)


def test_an_expert_may_go_live_half_an_hour_before_the_scheduled_start() -> None:
    # docs/api.md, the studio and static/js/ui.js say "30 minutes": a change must change them too.
    assert whip_opens_at(START) == datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
