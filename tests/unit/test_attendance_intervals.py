"""Attendance interval maths: the union of a person's connections, and where an open one ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog.intervals import Interval, closed, union_seconds

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def span(a: float, b: float) -> Interval:
    return (at(a), at(b))


@pytest.mark.parametrize(
    ("intervals", "minutes"),
    [
        ([], 0),
        ([span(0, 10)], 10),
        ([span(0, 10), span(20, 25)], 15),
        ([span(0, 20), span(5, 30)], 30),
        ([span(5, 30), span(0, 20)], 30),
        ([span(0, 30), span(5, 10)], 30),
        ([span(0, 10), span(10, 20)], 20),
        ([span(0, 10), span(0, 10)], 10),
        ([span(0, 20), span(5, 30), span(40, 45)], 35),
    ],
    ids=["none", "one", "two-apart", "overlapping", "unsorted", "nested", "touching", "duplicate", "mixed"],
)
def test_a_person_is_present_for_the_union_of_their_intervals(
    intervals: list[Interval], minutes: float
) -> None:
    assert union_seconds(intervals) == minutes * 60


NOW = at(60)


@pytest.mark.parametrize(
    ("joined", "left", "session_end", "expected"),
    [
        (0, 10, None, span(0, 10)),
        (0, None, None, span(0, 60)),
        (0, None, 45, span(0, 45)),
        (0, 50, 45, span(0, 45)),
        (0, 30, 45, span(0, 30)),
        (50, None, 45, span(50, 60)),
        (10, 10, None, None),
        (0, 90, None, span(0, 60)),
    ],
    ids=[
        "left",
        "open-while-live",
        "open-closed-by-the-end",
        "left-after-the-end",
        "left-before-the-end",
        "joined-after-an-earlier-end",
        "zero-length",
        "left-in-the-future",
    ],
)
def test_an_interval_is_counted_until_its_left_the_sessions_end_or_now(
    joined: float, left: float | None, session_end: float | None, expected: Interval | None
) -> None:
    got = closed(
        at(joined), None if left is None else at(left), None if session_end is None else at(session_end), NOW
    )
    assert got == expected
