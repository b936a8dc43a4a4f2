"""The supervision figures that are pure arithmetic: the 学时 a session's length allows, the reasons a
session is marked 超额 (fraud 17: a provider claiming more than happened), percentiles of approval
latency, and masks for the people a report names.

A session is 超额 when
- `duration`: someone's net 学时 in it exceed what its length allows (its window: the latest audited time
  correction, else the server's actual start..end, else — for an external meeting, which Lectern does not
  run — its schedule) at the policy's minutes per 学时 (of the most lenient policy version its entries
  name);
- `not_held`: it credited someone but was never held (no window at all);
- `attendance`: it credited someone with no attendance evidence for it (live delivery, overflow HLS,
  a replay client, a matched external record);
- `enrolled`: it credited more people than the course ever enrolled;
- `capacity`: it credited more people than the course's capacity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from catalog.credit import engine
from catalog.credit.policy import CreditPolicy

REASONS = ("duration", "not_held", "attendance", "enrolled", "capacity")


def allowed_xueshi(window_s: float, policies: Iterable[CreditPolicy]) -> Decimal:
    """The most 学时 one person can earn in `window_s` seconds under any of `policies` (R5: floor of the
    minutes per 学时, to the rounding unit)."""
    best = Decimal(0)
    for policy in policies:
        best = max(best, engine.to_xueshi(Decimal(repr(window_s)) / 60, policy))
    return best


@dataclass(frozen=True)
class SessionFacts:
    window: tuple[datetime, datetime] | None
    policies: tuple[CreditPolicy, ...]  # the versions its entries were computed under (else the current)
    max_person_xs: Decimal  # the largest net 学时 of one person (reversals subtracted)
    credited: int  # people whose net 学时 are positive
    without_attendance: int  # of those, people with no attendance evidence for the session
    enrolled: int  # people the course ever enrolled (withdrawn included)
    capacity: int | None


def window_s(window: tuple[datetime, datetime] | None) -> float | None:
    if window is None:
        return None
    return max(0.0, (window[1] - window[0]).total_seconds())


def allowed(facts: SessionFacts) -> Decimal | None:
    seconds = window_s(facts.window)
    return None if seconds is None else allowed_xueshi(seconds, facts.policies)


def reasons(facts: SessionFacts) -> list[str]:
    """Why the session is 超额 (empty: it reconciles)."""
    out: list[str] = []
    limit = allowed(facts)
    if limit is None:
        if facts.credited > 0:
            out.append("not_held")
    elif facts.max_person_xs > limit:
        out.append("duration")
    if facts.without_attendance > 0:
        out.append("attendance")
    if facts.credited > facts.enrolled:
        out.append("enrolled")
    if facts.capacity is not None and facts.credited > facts.capacity:
        out.append("capacity")
    return out


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) of sorted values, linearly interpolated; None for no values."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mask_name(name: str | None) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧***: who it is stays with the bureau's drill-down, not in every report."""
    if not name:
        return "*"
    return name[0] + "*" * max(1, len(name) - 1)
