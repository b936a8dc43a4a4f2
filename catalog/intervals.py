"""Interval maths for attendance: how long a person was present, counting overlapping connections once.

Pure: imports nothing of aiohttp or SQLAlchemy; `now` and the session's end are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

Interval = tuple[datetime, datetime]


def closed(
    joined_at: datetime, left_at: datetime | None, session_end: datetime | None, now: datetime
) -> Interval | None:
    """An interval as counted: an open one (no `viewer.left` yet) runs to the session's actual end when
    the session ended after it began, else to `now` (the viewer is still there); a known left is capped
    at the session's end too (a viewer cannot attend an ended lecture). None when nothing is left."""
    end = left_at if left_at is not None else now
    if session_end is not None and session_end >= joined_at:
        end = min(end, session_end)
    end = min(end, now)
    return (joined_at, end) if end > joined_at else None


def union_seconds(intervals: Iterable[Interval]) -> float:
    """Seconds covered by the union of the intervals (two tabs open at once count once)."""
    total = 0.0
    current: Interval | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (start, end)
        elif end > current[1]:
            current = (current[0], end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total
