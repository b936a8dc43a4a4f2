"""A session's status from its schedule and the live server's start/end, and which recording is its replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from catalog.lifecycle import SessionStatus, replays_by_session, session_status

START = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 in Qingdao
END = START + timedelta(hours=2)
MIN = timedelta(minutes=1)

CASES = [
    # (kind, actual_start, actual_end, now, status)
    ("live", None, None, START - timedelta(days=1), SessionStatus.SCHEDULED),
    ("live", None, None, START + MIN, SessionStatus.SCHEDULED),  # the expert is late, not absent yet
    ("live", None, None, END - MIN, SessionStatus.SCHEDULED),
    ("live", None, None, END, SessionStatus.MISSED),
    ("live", START - timedelta(hours=5), None, START - timedelta(hours=4), SessionStatus.LIVE),  # early
    ("live", END + MIN, None, END + 2 * MIN, SessionStatus.LIVE),  # late, after a miss
    ("live", START, None, END + timedelta(hours=1), SessionStatus.LIVE),  # overrunning
    ("live", START, START + MIN, START + 2 * MIN, SessionStatus.ENDED),  # ended before its schedule is over
    ("live", START, END, END + timedelta(days=30), SessionStatus.ENDED),
    ("offline", None, None, START - MIN, SessionStatus.SCHEDULED),
    ("offline", None, None, START, SessionStatus.LIVE),
    ("external", None, None, END, SessionStatus.ENDED),  # not seen by the live server: its schedule says
    ("external", START, END, START + MIN, SessionStatus.ENDED),  # unless its times were imported
]


@pytest.mark.parametrize(
    ("kind", "actual_start", "actual_end", "now", "status"),
    CASES,
    ids=[
        "live-a-day-before",
        "live-past-start-not-started",
        "live-just-before-end",
        "live-at-end-never-started-is-missed",
        "live-started-early",
        "live-started-after-a-miss",
        "live-overrunning",
        "live-ended-early",
        "live-ended-long-ago",
        "offline-before",
        "offline-during",
        "external-after",
        "external-imported-times",
    ],
)
def test_session_status(
    kind: str,
    actual_start: datetime | None,
    actual_end: datetime | None,
    now: datetime,
    status: SessionStatus,
) -> None:
    assert session_status(kind, START, END, actual_start, actual_end, now) == status


@dataclass(frozen=True)
class Rec:
    id: str
    session_id: int
    duration_s: float


def test_a_sessions_replay_is_its_longest_recording_the_first_on_a_tie() -> None:
    got = replays_by_session([Rec("a", 1, 0.4), Rec("b", 1, 3600.0), Rec("c", 1, 3600.0), Rec("d", 2, 12.0)])
    assert got == {1: {"id": "b", "duration_s": 3600.0}, 2: {"id": "d", "duration_s": 12.0}}
    assert replays_by_session([]) == {}
