"""The credit engine: pure functions from server-measured evidence (intervals, heartbeats, checks) and a
policy to credited minutes and 学时 (DOMAIN §3, R5–R18, R23, R24, R29). No SQL, no HTTP, no clock:
everything, including the session's window, is passed in. Days and credit years are Beijing time."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from catalog.credit.evidence import (
    BACKWARDS,
    DUPLICATE_SEQ,
    FORWARD_SEEK,
    GAP,
    HIDDEN,
    HIGH,
    LOW,
    MEDIUM,
    OUT_OF_ORDER,
    OUTSIDE_WINDOW,
    SUPERSEDED,
    TOO_FAST,
    AcceptedRange,
    Beat,
    Check,
    Client,
    Flag,
    Rejection,
    Span,
)
from catalog.credit.policy import CreditPolicy

BEIJING = ZoneInfo("Asia/Shanghai")  # UTC+8, no daylight saving time: credit days and years
REGISTERED = "registered"  # R23: the only ledger status that counts toward the annual requirement
PENDING = "pending"
CATEGORIES = ("public", "professional")  # catalog.domain.Category values: 公需 / 专业
_RATE_EPSILON = 1e-9


# -- Beijing days and credit years ---------------------------------------------------------------------


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("the credit engine takes timezone-aware datetimes only")
    return t


def beijing_day(t: datetime) -> date:
    """The Beijing calendar day of an instant (R6: the daily cap counts Beijing days, not UTC days)."""
    return _aware(t).astimezone(BEIJING).date()


def credit_year(t: datetime) -> int:
    """The credit year (R1, R24) of an instant: the Beijing calendar year."""
    return beijing_day(t).year


def _next_beijing_midnight(t: datetime) -> datetime:
    day = beijing_day(t) + timedelta(days=1)
    return datetime.combine(day, time(0), BEIJING).astimezone(UTC)


# -- span algebra --------------------------------------------------------------------------------------


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint spans covering the same instants (R7: two tabs or devices count once). Empty
    and inverted spans are dropped; touching spans merge."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def intersect(a: Iterable[Span], b: Iterable[Span]) -> list[Span]:
    """The instants in both (e.g. delivered ∩ attended)."""
    left, right = union(a), union(b)
    out: list[Span] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if end > start:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def clip(spans: Iterable[Span], window: Span) -> list[Span]:
    """The spans inside the window (R8: nothing before the actual start or after the actual end)."""
    return intersect(spans, [window])


def _duration(spans: Iterable[Span]) -> timedelta:
    return sum((end - start for start, end in union(spans)), timedelta())


def seconds(spans: Iterable[Span]) -> float:
    """Seconds covered by the union of the spans."""
    return _duration(spans).total_seconds()


def _exact_seconds(d: timedelta) -> Decimal:
    return Decimal(d.days * 86_400 + d.seconds) + Decimal(d.microseconds) / Decimal(1_000_000)


def day_seconds(spans: Iterable[Span]) -> dict[date, float]:
    """Seconds of the union per Beijing day: a span across Beijing midnight splits in two (R6)."""
    out: dict[date, float] = defaultdict(float)
    for start, end in union(spans):
        cursor = start
        while cursor < end:
            stop = min(end, _next_beijing_midnight(cursor))
            out[beijing_day(cursor)] += (stop - cursor).total_seconds()
            cursor = stop
    return dict(sorted(out.items()))


def overlaps(credited: Iterable[Span], other_courses: Iterable[Span]) -> list[Span]:
    """R29: instants credited for this course that are also credited for another course. A person is in
    one lecture at a time; any overlap is evidence for a flag, never silently credited twice."""
    return intersect(credited, other_courses)


# -- heartbeats -----------------------------------------------------------------------------------------


def _screen(
    beats: Iterable[Beat], superseded_at: datetime | None, keep: Span | None
) -> tuple[list[Beat], list[Rejection], bool]:
    """The heartbeats of one client that may anchor credit, in arrival order, with the rejected ones.
    Returns (kept, rejections, forged): forged is True when a sequence number came back with different
    content or went backwards (fraud 4); an identical retry of a lost answer is harmless."""
    kept: list[Beat] = []
    rejections: list[Rejection] = []
    seen: dict[int, Beat] = {}
    forged = False
    highest: int | None = None
    for beat in sorted(beats, key=lambda b: (b.at, b.seq)):
        if superseded_at is not None and beat.at >= superseded_at:
            rejections.append(Rejection(beat.client_id, beat.seq, beat.at, SUPERSEDED))
        elif beat.seq in seen:
            first = seen[beat.seq]
            if (first.position_s, first.rate, first.visible) != (beat.position_s, beat.rate, beat.visible):
                forged = True
            rejections.append(Rejection(beat.client_id, beat.seq, beat.at, DUPLICATE_SEQ))
        elif highest is not None and beat.seq < highest:
            forged = True
            rejections.append(Rejection(beat.client_id, beat.seq, beat.at, OUT_OF_ORDER))
        elif keep is not None and not keep[0] <= beat.at <= keep[1]:
            seen[beat.seq] = beat
            rejections.append(Rejection(beat.client_id, beat.seq, beat.at, OUTSIDE_WINDOW))
        else:
            seen[beat.seq] = beat
            highest = beat.seq
            kept.append(beat)
    return kept, rejections, forged


def beat_spans(beats: Iterable[Beat], period_s: float, *, window: Span | None = None) -> list[Span]:
    """Spans between consecutive heartbeats of one client that were both visible and at most 2 × period
    apart (R16, R17), unioned over clients and clipped to the window. Duplicate and out-of-order sequence
    numbers are ignored (the caller removes superseded beats: see hls_credit)."""
    by_client: dict[str, list[Beat]] = defaultdict(list)
    for beat in beats:
        by_client[beat.client_id].append(beat)
    spans: list[Span] = []
    for client_beats in by_client.values():
        kept, _, _ = _screen(client_beats, None, None)
        for prev, beat in itertools.pairwise(kept):
            gap_s = (beat.at - prev.at).total_seconds()
            if prev.visible and beat.visible and 0 < gap_s <= 2 * period_s:
                spans.append((prev.at, beat.at))
    return clip(spans, window) if window is not None else union(spans)


def attention_spans(changes: Sequence[tuple[str, bool, datetime]], until: datetime) -> list[Span]:
    """(conn_id, visible, at) changes → spans where at least one connection (tab) of the person showed the
    live page (R17). A connection still visible at `until` counts up to `until`; later changes are ignored."""
    by_conn: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    for conn_id, visible, at in changes:
        if at <= until:
            by_conn[conn_id].append((at, visible))
    spans: list[Span] = []
    for events in by_conn.values():
        shown_at: datetime | None = None
        for at, visible in sorted(events, key=lambda e: e[0]):
            if visible and shown_at is None:
                shown_at = at
            elif not visible and shown_at is not None:
                spans.append((shown_at, at))
                shown_at = None
        if shown_at is not None:
            spans.append((shown_at, until))
    return union(spans)


# -- replay ranges ----------------------------------------------------------------------------------------


def accepted_ranges(
    client: Client, policy: CreditPolicy, *, furthest_before: float, first_viewing: bool, duration_s: float
) -> tuple[list[AcceptedRange], list[Rejection]]:
    """The media ranges of one replay client the server accepts, pair of consecutive heartbeats by pair:
    both visible (R17), at most 2 × period apart (R16), rate ≤ max (R15), media advanced no more than wall
    time × max rate + tolerance (R15: a jump is a seek), and on a first viewing starting no further than
    the furthest accepted point so far plus tolerance and one heartbeat period (R14, `furthest_before`
    carries it across earlier clients). Beats
    at or after supersession (R18) and duplicate or out-of-order sequence numbers (fraud 4) anchor
    nothing. Media is clamped to [0, duration_s]."""
    kept, rejections, _ = _screen(client.beats, client.superseded_at, None)
    tolerance = policy.seek_tolerance_s
    max_rate = policy.max_playback_rate
    furthest = furthest_before
    ranges: list[AcceptedRange] = []
    # The tolerance is for jitter, not a speed-up: a budget that media running ahead of wall time x max
    # rate spends and playing at pace refills (never above the tolerance). A player claiming 1x while
    # advancing 3 s per 1 s heartbeat passes one pair on it, never a run of them.
    slack = tolerance
    for prev, beat in itertools.pairwise(kept):
        wall_s = (beat.at - prev.at).total_seconds()
        media_s = beat.position_s - prev.position_s
        reason: str | None = None
        if wall_s > 2 * policy.heartbeat_period_s:
            reason = GAP
        elif not (prev.visible and beat.visible):
            reason = HIDDEN
        elif max(prev.rate, beat.rate) > max_rate + _RATE_EPSILON:
            reason = TOO_FAST
        elif media_s < -tolerance:
            reason = BACKWARDS
        elif media_s > wall_s * max_rate + tolerance:
            reason = FORWARD_SEEK
        elif media_s > 0 and slack + wall_s * max_rate - media_s < 0:
            reason = TOO_FAST  # ahead of wall time run after run: a speed-up, whatever rate it reports
        if reason is not None:
            rejections.append(Rejection(beat.client_id, beat.seq, beat.at, reason))
            # A speed-up has spent the budget (it refills only by playing at pace); a gap or a hidden
            # page starts afresh.
            slack = 0.0 if reason == TOO_FAST else tolerance
            continue
        if media_s > 0:
            slack = min(tolerance, slack + wall_s * max_rate - media_s)
        media_from = min(max(prev.position_s, 0.0), duration_s)
        media_to = min(max(beat.position_s, 0.0), duration_s)
        if media_to <= media_from:
            continue  # paused (or jitter within tolerance): nothing played, nothing wrong
        # The server knows the playhead only at heartbeats, so a client resuming where the previous one
        # stopped may start up to one period past the furthest accepted point: that slack is allowed.
        if first_viewing and media_from > furthest + tolerance + policy.heartbeat_period_s * max_rate:
            rejections.append(Rejection(beat.client_id, beat.seq, beat.at, FORWARD_SEEK))
            continue
        ranges.append(AcceptedRange(client.client_id, media_from, media_to, prev.at, beat.at))
        furthest = max(furthest, media_to)
    return ranges, rejections


def _union_floats(ranges: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# -- presence checks ---------------------------------------------------------------------------------------


def checks_required(duration_s: float, policy: CreditPolicy) -> int:
    """R10: at least `checks_per_45_min` checks per started 45 minutes of media or session."""
    if duration_s <= 0:
        return 0
    return math.ceil(duration_s / 2700 * policy.checks_per_45_min - 1e-9)


def checks_counted(checks: Iterable[Check], present: Iterable[Span]) -> list[Check]:
    """The checks issued while the person was present: a check shown while they were away (and so not
    credited anyway) does not count against them."""
    spans = union(present)
    return [c for c in checks if any(start <= c.issued_at <= end for start, end in spans)]


@dataclass(frozen=True)
class CheckScore:
    total: int
    answered: int  # in time, by a human (latency ≥ min_answer_ms)
    ratio: float | None  # None when there were no checks
    fraction: float  # 1.0 / 0.5 / 0.0 (R11)
    flags: tuple[Flag, ...]


def score_checks(checks: Sequence[Check], policy: CreditPolicy) -> CheckScore:
    """R10/R11 with their counts. An answer counts when it came between issue and deadline and no faster
    than `min_answer_ms` (fraud 3: faster is a script; not counted, flagged auto_confirm)."""
    if not checks:
        return CheckScore(0, 0, None, 1.0, ())
    answered = 0
    too_fast: list[tuple[str, int]] = []
    for check in checks:
        if check.answered_at is None or not check.issued_at <= check.answered_at <= check.deadline_at:
            continue
        latency_ms = check.latency_ms
        if latency_ms is None:
            latency_ms = int((check.answered_at - check.issued_at).total_seconds() * 1000)
        if latency_ms < policy.min_answer_ms:
            too_fast.append((check.check_id, latency_ms))
            continue
        answered += 1
    total = len(checks)
    if answered >= Decimal(repr(policy.check_full_ratio)) * total:
        fraction = 1.0
    elif answered >= Decimal(repr(policy.check_half_ratio)) * total:
        fraction = 0.5
    else:
        fraction = 0.0
    flags: tuple[Flag, ...] = ()
    if too_fast:
        flags = (
            Flag(
                "auto_confirm",
                HIGH,
                {
                    "check_ids": [c for c, _ in too_fast],
                    "latency_ms": [ms for _, ms in too_fast],
                    "min_answer_ms": policy.min_answer_ms,
                },
            ),
        )
    return CheckScore(total, answered, answered / total, fraction, flags)


def check_fraction(checks: Sequence[Check], policy: CreditPolicy) -> tuple[float | None, float, list[Flag]]:
    """(ratio answered or None when there were no checks, credit fraction 1.0/0.5/0.0, flags) — R10/R11."""
    score = score_checks(checks, policy)
    return score.ratio, score.fraction, list(score.flags)


# -- 学时 -------------------------------------------------------------------------------------------------


def _minutes(seconds_: Decimal, fraction: float) -> Decimal:
    return (seconds_ * Decimal(repr(fraction)) / 60).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


def to_xueshi(minutes: float | Decimal, policy: CreditPolicy) -> Decimal:
    """R5: floor(minutes / minutes_per_xueshi) to the rounding unit (90 min → 2, 80 min → 1.5 at 45/0.5)."""
    m = minutes if isinstance(minutes, Decimal) else Decimal(repr(minutes))
    if m <= 0:
        return Decimal(0) * policy.rounding_unit
    units = (m / policy.minutes_per_xueshi / policy.rounding_unit).to_integral_value(rounding=ROUND_FLOOR)
    return units * policy.rounding_unit


def allocate_by_day(
    xueshi: Decimal, seconds_by_day: dict[date, float], policy: CreditPolicy
) -> dict[date, Decimal]:
    """Attribute one credit's 学时 to the Beijing days its time fell on, in rounding units, in proportion to
    the seconds (largest remainder), so that the daily cap (R6) sees a lecture across midnight on both
    days without the split itself losing credit."""
    days = sorted(d for d, s in seconds_by_day.items() if s > 0)
    if not days:
        return {}
    unit = policy.rounding_unit
    units = int((xueshi / unit).to_integral_value(rounding=ROUND_FLOOR)) if xueshi > 0 else 0
    leftover = xueshi - units * unit if xueshi > 0 else Decimal(0)
    total = sum(Fraction(seconds_by_day[d]) for d in days)
    exact = {d: Fraction(seconds_by_day[d]) / total * units for d in days}
    share = {d: math.floor(exact[d]) for d in days}
    by_remainder = sorted(days, key=lambda d: (-(exact[d] - share[d]), -seconds_by_day[d], d))
    for d in by_remainder[: units - sum(share.values())]:
        share[d] += 1
    out = {d: share[d] * unit for d in days}
    if leftover:
        largest = max(days, key=lambda d: (seconds_by_day[d], d))
        out[largest] += leftover
    return {d: x for d, x in out.items() if x > 0}


def cap_daily(
    new_by_day: dict[date, Decimal], already_by_day: dict[date, Decimal], policy: CreditPolicy
) -> dict[date, Decimal]:
    """R6: what may still be credited per Beijing day, given what that day already holds. The caller
    settling several credits adds each result to `already_by_day` before the next."""
    cap = policy.daily_cap_xueshi
    return {
        d: max(Decimal(0), min(amount, cap - already_by_day.get(d, Decimal(0))))
        for d, amount in new_by_day.items()
    }


def cap_course(new: Decimal, already_in_course: Decimal, credit_hours: Decimal) -> Decimal:
    """A course's sessions together never earn more than the course's approved credit hours."""
    return max(Decimal(0), min(new, credit_hours - already_in_course))


# -- live (WebRTC) and overflow HLS ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveCredit:
    """Every figure behind a live (or overflow-HLS) credit, kept as the ledger entry's evidence summary."""

    kind: str  # "live" | "hls"
    policy_version: int
    window: Span  # the session's actual start..end as measured by the server (R8)
    window_s: float
    present: tuple[Span, ...]
    present_s: float
    ratio: float  # present / window
    threshold_met: bool  # R9
    basis_s: float  # before checks: the window if the threshold is met, else 0 or present (pro rata)
    checks_total: int
    checks_answered: int
    check_ratio: float | None
    fraction: float  # R11
    minutes: Decimal
    xueshi: Decimal  # R5, before the daily cap
    day_seconds: dict[date, float]
    xueshi_by_day: dict[date, Decimal]  # what cap_daily takes (R6)
    flags: tuple[Flag, ...]
    rejections: tuple[Rejection, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "policy_version": self.policy_version,
            "window": _span_dict(self.window),
            "window_s": self.window_s,
            "present": [_span_dict(s) for s in self.present],
            "present_s": self.present_s,
            "ratio": self.ratio,
            "threshold_met": self.threshold_met,
            "basis_s": self.basis_s,
            "checks_total": self.checks_total,
            "checks_answered": self.checks_answered,
            "check_ratio": self.check_ratio,
            "fraction": self.fraction,
            "minutes": str(self.minutes),
            "xueshi": str(self.xueshi),
            "day_seconds": {d.isoformat(): s for d, s in self.day_seconds.items()},
            "xueshi_by_day": {d.isoformat(): str(x) for d, x in self.xueshi_by_day.items()},
            "flags": [f.to_dict() for f in self.flags],
            "rejections": [r.to_dict() for r in self.rejections],
        }


def _span_dict(span: Span) -> list[str]:
    return [span[0].isoformat(), span[1].isoformat()]


def _live_like(
    kind: str,
    window: Span,
    present: list[Span],
    checks: Sequence[Check],
    policy: CreditPolicy,
    flags: list[Flag],
    rejections: list[Rejection],
) -> LiveCredit:
    window_d = max(window[1] - window[0], timedelta())
    present_d = _duration(present)
    window_us = _exact_seconds(window_d)
    present_us = _exact_seconds(present_d)
    met = window_us > 0 and present_us >= Decimal(repr(policy.live_presence_threshold)) * window_us
    if met:
        basis, basis_spans = window_us, [window]
    elif policy.live_below_threshold == "pro_rata":
        basis, basis_spans = present_us, present
    else:
        basis, basis_spans = Decimal(0), []
    score = score_checks(checks_counted(checks, present), policy)
    minutes = _minutes(basis, score.fraction)
    xueshi = to_xueshi(minutes, policy)
    days = day_seconds(basis_spans)
    return LiveCredit(
        kind=kind,
        policy_version=policy.version,
        window=window,
        window_s=window_d.total_seconds(),
        present=tuple(present),
        present_s=present_d.total_seconds(),
        ratio=float(present_us / window_us) if window_us > 0 else 0.0,
        threshold_met=bool(met),
        basis_s=float(basis),
        checks_total=score.total,
        checks_answered=score.answered,
        check_ratio=score.ratio,
        fraction=score.fraction,
        minutes=minutes,
        xueshi=xueshi,
        day_seconds=days,
        xueshi_by_day=allocate_by_day(xueshi, days, policy) if xueshi > 0 else {},
        flags=(*flags, *score.flags),
        rejections=tuple(rejections),
    )


def live_credit(
    delivery: Sequence[Span],
    attention: Sequence[Span],
    window: Span,
    checks: Sequence[Check],
    policy: CreditPolicy,
    *,
    extra_present: Sequence[Span] = (),
) -> LiveCredit:
    """Live WebRTC: present = (union(delivery) ∩ union(attention)) ∪ extra_present, inside the window
    (R7, R8, R17). `extra_present` lets a caller add the same person's corroborated overflow-HLS spans
    (hls_present) when they switched paths mid-lecture. ratio = present / window; R9 threshold → the
    window's minutes, else 0 or pro rata; × the check fraction of the checks issued while present (R11)."""
    present = clip([*intersect(delivery, attention), *extra_present], window)
    return _live_like("live", window, present, checks, policy, [], [])


def hls_present(
    clients: Sequence[Client], segment_times: Sequence[datetime], window: Span, policy: CreditPolicy
) -> tuple[list[Span], list[Flag], list[Rejection]]:
    """Overflow HLS presence: spans of visible heartbeats (R16, R17, R18) that segment fetches corroborate
    (the player fetched a segment at least every 2 × period), inside the window. Flags heartbeats the
    segments do not back (forged heartbeats, fraud 4) and replayed sequence numbers."""
    period = policy.heartbeat_period_s
    reach = timedelta(seconds=2 * period)
    rejections: list[Rejection] = []
    spans: list[Span] = []
    forged: list[str] = []
    for client in clients:
        kept, rejected, was_forged = _screen(
            client.beats, client.superseded_at, (window[0] - reach, window[1] + reach)
        )
        rejections.extend(rejected)
        if was_forged:
            forged.append(client.client_id)
        spans.extend(beat_spans(kept, period, window=window))
    fetched = sorted(segment_times)
    fetch_spans = [(a, b) for a, b in itertools.pairwise(fetched) if b - a <= reach]
    beats_d = _duration(spans)
    present = clip(intersect(spans, fetch_spans), window)
    flags: list[Flag] = []
    uncorroborated_s = (beats_d - _duration(present)).total_seconds()
    window_s = max((window[1] - window[0]).total_seconds(), 0.0)
    if uncorroborated_s > 0 and uncorroborated_s >= max(4 * period, 0.1 * window_s):
        flags.append(
            Flag(
                "uncorroborated_heartbeats",
                MEDIUM,
                {"heartbeat_s": beats_d.total_seconds(), "uncorroborated_s": uncorroborated_s},
            )
        )
    if forged:
        flags.append(Flag("heartbeat_replay", HIGH, {"client_ids": forged}))
    return present, flags, rejections


def hls_credit(
    clients: Sequence[Client],
    segment_times: Sequence[datetime],
    window: Span,
    checks: Sequence[Check],
    policy: CreditPolicy,
) -> LiveCredit:
    """Overflow HLS: present = hls_present(...); then exactly as live (R9, R11)."""
    present, flags, rejections = hls_present(clients, segment_times, window, policy)
    return _live_like("hls", window, present, checks, policy, flags, rejections)


# -- replays -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayCredit:
    """Every figure behind a replay credit (R13–R18), kept as the ledger entry's evidence summary."""

    policy_version: int
    duration_s: float
    covered_s: float  # union of accepted media ranges (R7, R13)
    wall_s: float  # union of the wall-clock spans those ranges were played in
    credited_s: float  # min(covered, wall × max rate): never more than the time spent
    coverage: float  # covered / duration
    complete: bool  # coverage ≥ replay_completion_threshold (R13)
    furthest_s: float  # the furthest accepted media point (R14)
    checks_total: int
    checks_answered: int
    check_ratio: float | None
    fraction: float
    minutes: Decimal
    xueshi: Decimal
    day_seconds: dict[date, float]  # wall seconds per Beijing day (R6)
    xueshi_by_day: dict[date, Decimal]
    ranges: tuple[AcceptedRange, ...]
    flags: tuple[Flag, ...]
    rejections: tuple[Rejection, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "replay",
            "policy_version": self.policy_version,
            "duration_s": self.duration_s,
            "covered_s": self.covered_s,
            "wall_s": self.wall_s,
            "credited_s": self.credited_s,
            "coverage": self.coverage,
            "complete": self.complete,
            "furthest_s": self.furthest_s,
            "checks_total": self.checks_total,
            "checks_answered": self.checks_answered,
            "check_ratio": self.check_ratio,
            "fraction": self.fraction,
            "minutes": str(self.minutes),
            "xueshi": str(self.xueshi),
            "day_seconds": {d.isoformat(): s for d, s in self.day_seconds.items()},
            "xueshi_by_day": {d.isoformat(): str(x) for d, x in self.xueshi_by_day.items()},
            "ranges": [r.to_dict() for r in self.ranges],
            "flags": [f.to_dict() for f in self.flags],
            "rejections": [r.to_dict() for r in self.rejections],
        }


def replay_credit(
    clients: Sequence[Client],
    duration_s: float,
    checks: Sequence[Check],
    policy: CreditPolicy,
    *,
    first_viewing: bool = True,
    furthest_before: float = 0.0,
) -> ReplayCredit:
    """A person's replay of one recording over all their clients (in the order they were opened):
    covered = union of accepted media ranges; complete iff covered / duration ≥ threshold (R13); minutes =
    min(covered, wall × max rate) / 60 if complete, else 0; × the check fraction (R11) of the checks issued
    while playback was accepted. A client's own `first_viewing` overrides the argument."""
    furthest = furthest_before
    ranges: list[AcceptedRange] = []
    rejections: list[Rejection] = []
    forged: list[str] = []
    max_position = 0.0
    any_first = False
    for client in sorted(clients, key=lambda c: (c.opened_at, c.client_id)):
        first = client.first_viewing if client.first_viewing is not None else first_viewing
        any_first = any_first or first
        accepted, rejected = accepted_ranges(
            client, policy, furthest_before=furthest, first_viewing=first, duration_s=duration_s
        )
        kept, _, was_forged = _screen(client.beats, client.superseded_at, None)
        if was_forged:
            forged.append(client.client_id)
        max_position = max([max_position, *(b.position_s for b in kept)])
        ranges.extend(accepted)
        rejections.extend(rejected)
        furthest = max([furthest, *(r.media_to for r in accepted)])
    covered_s = sum(b - a for a, b in _union_floats((r.media_from, r.media_to) for r in ranges))
    wall = union((r.wall_from, r.wall_to) for r in ranges)
    wall_s = seconds(wall)
    credited_s = min(covered_s, wall_s * policy.max_playback_rate)
    complete = duration_s > 0 and covered_s >= policy.replay_completion_threshold * duration_s - 1e-9
    score = score_checks(checks_counted(checks, wall), policy)
    minutes = _minutes(Decimal(repr(credited_s)), score.fraction) if complete else Decimal("0.0000")
    xueshi = to_xueshi(minutes, policy)
    days = day_seconds(wall)
    flags: list[Flag] = []
    if forged:
        flags.append(Flag("heartbeat_replay", HIGH, {"client_ids": forged}))
    fast = [r for r in rejections if r.reason == TOO_FAST]
    if fast:
        flags.append(
            Flag(
                "playback_rate",
                MEDIUM,
                {
                    "pairs": len(fast),
                    "client_ids": sorted({r.client_id for r in fast}),
                    "max_playback_rate": policy.max_playback_rate,
                },
            )
        )
    if (
        any_first
        and not complete
        and duration_s > 0
        and max_position >= policy.replay_completion_threshold * duration_s
    ):
        flags.append(
            Flag(
                "completion_without_coverage",
                LOW,
                {"reached_s": max_position, "covered_s": covered_s, "duration_s": duration_s},
            )
        )
    flags.extend(score.flags)
    return ReplayCredit(
        policy_version=policy.version,
        duration_s=duration_s,
        covered_s=covered_s,
        wall_s=wall_s,
        credited_s=credited_s,
        coverage=covered_s / duration_s if duration_s > 0 else 0.0,
        complete=complete,
        furthest_s=furthest,
        checks_total=score.total,
        checks_answered=score.answered,
        check_ratio=score.ratio,
        fraction=score.fraction,
        minutes=minutes,
        xueshi=xueshi,
        day_seconds=days,
        xueshi_by_day=allocate_by_day(xueshi, days, policy) if xueshi > 0 else {},
        ranges=tuple(ranges),
        flags=tuple(flags),
        rejections=tuple(rejections),
    )


# -- once per session per year (R24), the annual requirement (R1, R2, R23) ----------------------------------


def already_credited(
    prior: Iterable[tuple[int, int, Decimal]], session_id: int, year: int, policy: CreditPolicy
) -> bool:
    """R24: True when (session_id, credit year) already holds credit — prior is (session_id, credit_year,
    xueshi) of the person's ledger entries, reversals negative, so a reversed credit frees the session.
    Live, overflow HLS and the session's replay are the same content: whichever is credited first wins."""
    if not policy.once_per_session_per_year:
        return False
    net = sum((x for s, y, x in prior if s == session_id and y == year), Decimal(0))
    return net > 0


def double_claim(
    claim: Iterable[Span], credited: Iterable[Span], policy: CreditPolicy, *, session_id: int
) -> Flag | None:
    """R24 cross-check: a second claim on an already credited session is only recorded ("already
    credited"), unless its time overlaps the credited one by more than 2 × heartbeat period — the same
    lecture followed on two paths at once (e.g. live on one device, HLS on another) — then a flag."""
    shared = intersect(claim, credited)
    shared_s = seconds(shared)
    if shared_s <= 2 * policy.heartbeat_period_s:
        return None
    return Flag(
        "double_claim",
        MEDIUM,
        {"session_id": session_id, "overlap_s": shared_s, "overlap": [_span_dict(s) for s in shared]},
    )


@dataclass(frozen=True)
class AnnualSummary:
    """One person's credit year against the requirement (R1, R2); only registered credit counts (R23)."""

    registered: dict[str, Decimal]  # by category
    pending: dict[str, Decimal]
    total_registered: Decimal
    total_pending: Decimal
    required_total: Decimal
    required_public: Decimal
    required_professional: Decimal
    met_total: bool
    met_public: bool
    met_professional: bool

    @property
    def met(self) -> bool:
        return self.met_total and self.met_public and self.met_professional

    def to_dict(self) -> dict[str, Any]:
        return {
            "registered": {k: str(v) for k, v in self.registered.items()},
            "pending": {k: str(v) for k, v in self.pending.items()},
            "total_registered": str(self.total_registered),
            "total_pending": str(self.total_pending),
            "required_total": str(self.required_total),
            "required_public": str(self.required_public),
            "required_professional": str(self.required_professional),
            "met_total": self.met_total,
            "met_public": self.met_public,
            "met_professional": self.met_professional,
            "met": self.met,
        }


def annual_summary(entries: Sequence[tuple[str, str, Decimal]], policy: CreditPolicy) -> AnnualSummary:
    """(category, status, xueshi) of one person's entries in one credit year → the summary. Registered
    entries count (R23); pending ones are shown apart; any other status (e.g. rejected) counts nowhere.
    Reversal entries carry negative 学时 and the status of what they reverse."""
    registered = dict.fromkeys(CATEGORIES, Decimal(0))
    pending = dict.fromkeys(CATEGORIES, Decimal(0))
    for category, status, xueshi in entries:
        if status == REGISTERED:
            registered[category] = registered.get(category, Decimal(0)) + xueshi
        elif status == PENDING:
            pending[category] = pending.get(category, Decimal(0)) + xueshi
    total = sum(registered.values(), Decimal(0))
    return AnnualSummary(
        registered=registered,
        pending=pending,
        total_registered=total,
        total_pending=sum(pending.values(), Decimal(0)),
        required_total=policy.annual_total_xueshi,
        required_public=policy.annual_public_min_xueshi,
        required_professional=policy.annual_professional_min_xueshi,
        met_total=total >= policy.annual_total_xueshi,
        met_public=registered["public"] >= policy.annual_public_min_xueshi,
        met_professional=registered["professional"] >= policy.annual_professional_min_xueshi,
    )
