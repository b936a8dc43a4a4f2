"""The credit engine, rule by rule (DOMAIN §3): one table-driven test per rule, then the fraud scenarios
and invariants that hold for any evidence. Times are built in Beijing time, where the rules count days."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from catalog.credit.engine import (
    LiveCredit,
    accepted_ranges,
    already_credited,
    annual_summary,
    attention_spans,
    beat_spans,
    beijing_day,
    cap_course,
    cap_daily,
    check_fraction,
    checks_counted,
    checks_required,
    clip,
    credit_year,
    day_seconds,
    double_claim,
    hls_credit,
    intersect,
    live_credit,
    overlaps,
    replay_credit,
    seconds,
    to_xueshi,
    union,
)
from catalog.credit.evidence import Beat, Check, Client, Span
from catalog.credit.policy import CreditPolicy

BEIJING = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING).astimezone(UTC)  # a Monday, 09:00 in Beijing
POLICY = CreditPolicy()
FAST = CreditPolicy(heartbeat_period_s=30)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def span(a: float, b: float) -> Span:
    return (at(a), at(b))


def spans(*pairs: tuple[float, float]) -> list[Span]:
    return [span(a, b) for a, b in pairs]


def play(
    client_id: str = "c1",
    *,
    start: datetime = T0,
    minutes: float = 10,
    position_s: float = 0.0,
    period_s: int = 30,
    media_per_wall: float = 1.0,
    rate: float = 1.0,
    visible: Callable[[float], bool] = lambda _m: True,
    seq0: int = 1,
) -> list[Beat]:
    """Heartbeats of a player every period: media advances `media_per_wall` seconds per wall second."""
    beats = []
    for i in range(int(minutes * 60 / period_s) + 1):
        wall = i * period_s
        beats.append(
            Beat(
                client_id,
                seq0 + i,
                start + timedelta(seconds=wall),
                position_s + wall * media_per_wall,
                rate,
                visible(wall / 60),
            )
        )
    return beats


def client(
    beats: list[Beat],
    *,
    client_id: str = "c1",
    opened_at: datetime | None = None,
    superseded_at: datetime | None = None,
    first_viewing: bool | None = None,
) -> Client:
    opened = opened_at or (beats[0].at if beats else T0)
    return Client(client_id, opened, superseded_at, tuple(beats), first_viewing)


def check(minute: float, latency_ms: int | None, *, window_s: int = 60, check_id: str | None = None) -> Check:
    issued = at(minute)
    answered = None if latency_ms is None else issued + timedelta(milliseconds=latency_ms)
    return Check(check_id or f"k{minute}", issued, issued + timedelta(seconds=window_s), answered, latency_ms)


def answered(n_yes: int, n_no: int, start: float = 10) -> list[Check]:
    return [check(start + i, 4000 if i < n_yes else None) for i in range(n_yes + n_no)]


# -- R5 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "per", "unit", "expected"),
    [
        (0, 45, "0.5", "0"),
        (22.49, 45, "0.5", "0"),
        (44.99, 45, "0.5", "0.5"),
        (45, 45, "0.5", "1"),
        (67.4, 45, "0.5", "1"),
        (67.5, 45, "0.5", "1.5"),
        (80, 45, "0.5", "1.5"),
        (90, 45, "0.5", "2"),
        (0.1 * 3 * 150, 45, "0.5", "1"),  # float noise (45.00000000000001) does not cost a unit
        (Decimal("56.25"), 45, "0.25", "1.25"),
        (Decimal("49.5"), 45, "0.1", "1.1"),
        (100, 50, "1", "2"),
        (99.9, 50, "1", "1"),
        (-5, 45, "0.5", "0"),
    ],
)
def test_r5_minutes_floor_to_the_rounding_unit(
    minutes: float | Decimal, per: int, unit: str, expected: str
) -> None:
    policy = CreditPolicy(minutes_per_xueshi=per, rounding_unit=Decimal(unit))
    assert to_xueshi(minutes, policy) == Decimal(expected)


# -- R6 ------------------------------------------------------------------------------------------------


def bj(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=BEIJING).astimezone(UTC)


D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
TEN_MIN = CreditPolicy(minutes_per_xueshi=10)  # 30 minutes = 3 学时: whole units on both sides of midnight


@pytest.mark.parametrize(
    ("start", "already", "expected_by_day"),
    [
        # a replay watched 23:50–00:20 in Beijing: 10 min on day 1, 20 on day 2 (one UTC day: 15:50–16:20)
        (bj(2, 23, 50), {}, {D1: "1.0", D2: "2.0"}),
        (bj(2, 23, 50), {D1: Decimal("7.5")}, {D1: "0.5", D2: "2.0"}),
        (bj(2, 23, 50), {D1: Decimal(8), D2: Decimal(7)}, {D1: "0", D2: "1"}),
        (bj(2, 23, 50), {D2: Decimal(9)}, {D1: "1.0", D2: "0"}),
        # 07:00–07:30 in Beijing is 23:00–23:30 UTC the day before: one Beijing day
        (bj(3, 7, 0), {D2: Decimal(6)}, {D2: "2"}),
        (bj(3, 7, 0), {D1: Decimal(8)}, {D2: "3.0"}),
    ],
    ids=[
        "midnight-split",
        "day1-nearly-full",
        "both-nearly-full",
        "day2-over",
        "utc-day-is-not-beijing-day",
        "other-day-full",
    ],
)
def test_r6_the_daily_cap_counts_beijing_days(
    start: datetime, already: dict[date, Decimal], expected_by_day: dict[date, str]
) -> None:
    credit = replay_credit([client(play(start=start, minutes=30))], 30 * 60, [], TEN_MIN)
    assert credit.complete
    assert credit.xueshi == Decimal(3)
    assert sum(credit.xueshi_by_day.values()) == credit.xueshi
    capped = cap_daily(credit.xueshi_by_day, already, TEN_MIN)
    assert capped == {d: Decimal(v) for d, v in expected_by_day.items()}


def test_r6_a_credit_across_midnight_is_not_lost_by_splitting_it() -> None:
    # 30 minutes = 0.5 学时 under the defaults; 10 + 20 minutes would floor to 0 + 0 if floored per day.
    credit = replay_credit([client(play(start=bj(2, 23, 50), minutes=30))], 30 * 60, [], POLICY)
    assert credit.xueshi == Decimal("0.5")
    assert credit.day_seconds == {D1: 600.0, D2: 1200.0}
    assert credit.xueshi_by_day == {D2: Decimal("0.5")}


# -- R7 ------------------------------------------------------------------------------------------------


RECONNECTS = [(i * 9, i * 9 + 8.5) for i in range(10)]  # ten connections, 30 s lost between each


@pytest.mark.parametrize(
    ("delivery", "attention", "present_min"),
    [
        ([(0, 90)], [(0, 90)], 90),
        ([(0, 50), (30, 90)], [(0, 90)], 90),  # two devices at once: counted once
        ([(0, 90), (0, 90), (10, 20)], [(0, 90)], 90),  # two tabs plus a third
        (RECONNECTS, [(0, 90)], 85),  # reconnects ten times
        ([(0, 90)], [(0, 40), (20, 60)], 60),  # two tabs' attention: union
        ([(0, 45), (50, 90)], [(0, 30), (40, 90)], 75),  # delivery ∩ attention
    ],
    ids=["one", "two-devices", "three-tabs", "ten-reconnects", "attention-union", "intersection"],
)
def test_r7_credited_time_is_the_union_of_intervals(
    delivery: list[tuple[float, float]], attention: list[tuple[float, float]], present_min: float
) -> None:
    credit = live_credit(spans(*delivery), spans(*attention), span(0, 90), [], POLICY)
    assert credit.present_s == present_min * 60
    assert credit.present_s <= credit.window_s


def test_r7_replays_on_two_devices_count_the_media_once() -> None:
    a = client(play("a", minutes=20), client_id="a")
    b = client(play("b", start=at(1), minutes=20), client_id="b", first_viewing=False)
    credit = replay_credit([a, b], 20 * 60, [], POLICY)
    assert credit.covered_s == 20 * 60
    assert credit.credited_s == 20 * 60


# -- R8 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "delivery", "present_min", "minutes"),
    [
        ((0, 90), [(-15, 95)], 90, 90),  # joined before the start, stayed after the end: clipped
        ((0, 60), [(0, 90)], 60, 60),  # the session ended early: credit is the actual length
        ((0, 110), [(0, 110)], 110, 110),  # overran: the actual length counts
        ((0, 110), [(0, 90)], 90, 0),  # left at the scheduled end of an overrun: 82 % < 85 %
        ((10, 90), [(0, 90)], 80, 80),  # started late
        ((0, 90), [(95, 120)], 0, 0),  # only after the end
        ((0, 0), [(0, 90)], 0, 0),  # an empty window credits nothing
    ],
    ids=["clipped", "ends-early", "overruns", "left-at-schedule", "started-late", "after-end", "empty"],
)
def test_r8_live_time_is_clipped_to_the_actual_window(
    window: tuple[float, float], delivery: list[tuple[float, float]], present_min: float, minutes: float
) -> None:
    credit = live_credit(spans(*delivery), spans(*delivery), span(*window), [], POLICY)
    assert credit.present_s == present_min * 60
    assert credit.minutes == Decimal(minutes)


# -- R9 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present_min", "rule", "threshold", "minutes", "xueshi"),
    [
        (90, "none", 0.85, 90, "2"),
        (76.5, "none", 0.85, 90, "2"),  # exactly 85 %
        (76.4, "none", 0.85, 0, "0"),
        (45, "none", 0.85, 0, "0"),  # hidden tab half the time
        (45, "pro_rata", 0.85, 45, "1"),  # half under pro rata
        (76.4, "pro_rata", 0.85, Decimal("76.4"), "1.5"),
        (0, "pro_rata", 0.85, 0, "0"),
        (45, "none", 0.5, 90, "2"),
    ],
)
def test_r9_live_presence_threshold(
    present_min: float, rule: str, threshold: float, minutes: float | Decimal, xueshi: str
) -> None:
    policy = CreditPolicy(live_below_threshold=rule, live_presence_threshold=threshold)
    credit = live_credit(spans((0, 90)), spans((0, present_min)), span(0, 90), [], policy)
    assert credit.threshold_met == (present_min / 90 >= threshold)
    assert credit.minutes == Decimal(minutes)
    assert credit.xueshi == Decimal(xueshi)


# -- R10 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "x", "per", "expected"),
    [
        ("required", 45 * 60, 3, 3),
        ("required", 90 * 60, 3, 6),
        ("required", 46 * 60, 3, 4),
        ("required", 10 * 60, 3, 1),
        ("required", 0, 3, 0),
        ("required", 45 * 60, 0, 0),
        ("answered-after-s", 30, 0, True),
        ("answered-after-s", 60, 0, True),  # on the deadline
        ("answered-after-s", 61, 0, False),  # after the window
        ("answered-after-s", -1, 0, False),  # before the check was issued
        ("issued-at-min", 50, 0, False),  # issued while away (present 0–40): does not count
        ("issued-at-min", 20, 0, True),
    ],
)
def test_r10_checks_are_required_per_45_minutes_and_answered_within_their_window(
    case: str, x: float, per: int, expected: int | bool
) -> None:
    if case == "required":
        assert checks_required(x, CreditPolicy(checks_per_45_min=per)) == expected
    elif case == "answered-after-s":
        issued = at(10)
        k = Check("k", issued, issued + timedelta(seconds=60), issued + timedelta(seconds=x), 5000)
        ratio, _, _ = check_fraction([k], POLICY)
        assert (ratio == 1.0) is expected
    else:
        k = check(x, 3000)
        assert (checks_counted([k], spans((0, 40))) == [k]) is expected


# -- R11 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yes", "no", "ratio", "fraction", "minutes"),
    [
        (0, 0, None, 1.0, 90),  # no checks: nothing to lose
        (4, 0, 1.0, 1.0, 90),
        (3, 1, 0.75, 1.0, 90),
        (2, 1, 2 / 3, 0.5, 45),
        (2, 2, 0.5, 0.5, 45),
        (1, 2, 1 / 3, 0.0, 0),
        (0, 4, 0.0, 0.0, 0),
    ],
)
def test_r11_the_check_ratio_sets_the_credit_fraction(
    yes: int, no: int, ratio: float | None, fraction: float, minutes: int
) -> None:
    credit = live_credit(spans((0, 90)), spans((0, 90)), span(0, 90), answered(yes, no), POLICY)
    assert credit.check_ratio == ratio
    assert credit.fraction == fraction
    assert credit.minutes == minutes
    assert not credit.flags


@pytest.mark.parametrize(
    ("latencies", "answered_n", "fraction", "flagged"),
    [
        ([4000, 4000, 4000, 4000], 4, 1.0, []),
        ([4000, 4000, 4000, 120], 3, 1.0, ["k13"]),  # one too fast: not counted, still 75 %
        ([90, 110, 4000, 4000], 2, 0.5, ["k10", "k11"]),
        ([30, 30, 30, 30], 0, 0.0, ["k10", "k11", "k12", "k13"]),  # window.confirm overridden (fraud 3)
        ([800, 799, 4000, 4000], 3, 1.0, ["k11"]),  # exactly min_answer_ms is human
    ],
)
def test_r11_answers_faster_than_a_human_are_not_counted_and_flagged(
    latencies: list[int], answered_n: int, fraction: float, flagged: list[str]
) -> None:
    checks = [check(10 + i, ms) for i, ms in enumerate(latencies)]
    credit = live_credit(spans((0, 90)), spans((0, 90)), span(0, 90), checks, POLICY)
    assert credit.checks_answered == answered_n
    assert credit.fraction == fraction
    codes = [f.code for f in credit.flags]
    if flagged:
        assert codes == ["auto_confirm"]
        assert credit.flags[0].detail["check_ids"] == flagged
    else:
        assert codes == []


# -- R13 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watched", "duration_min", "covered_min", "complete", "minutes"),
    [
        ([(0, 20)], 20, 20, True, 20),
        ([(0, 19)], 20, 19, True, 19),  # 95 %: the outro may be skipped
        ([(0, 18.5)], 20, 18.5, False, 0),
        ([(0, 10)], 20, 10, False, 0),
        ([(0, 10), (0, 10), (10, 20)], 20, 20, True, 20),  # watching a part twice counts it once
    ],
    ids=["whole", "95-percent", "92-percent", "half", "rewatched"],
)
def test_r13_replay_credit_needs_completion(
    watched: list[tuple[float, float]],
    duration_min: float,
    covered_min: float,
    complete: bool,
    minutes: float,
) -> None:
    clients = []
    start = T0
    for i, (a, b) in enumerate(watched):
        beats = play(f"c{i}", start=start, minutes=b - a, position_s=a * 60)
        clients.append(client(beats, client_id=f"c{i}"))
        start = beats[-1].at + timedelta(hours=1)
    credit = replay_credit(clients, duration_min * 60, [], POLICY)
    assert credit.covered_s == covered_min * 60
    assert credit.complete is complete
    assert credit.minutes == Decimal(minutes)


# -- R14 -----------------------------------------------------------------------------------------------


def skip_then_play(
    first_viewing: bool, *, skip_to_s: float = 1140, furthest_before: float = 0.0
) -> tuple[int, float]:
    """Plays 2 minutes, seeks to `skip_to_s`, plays 1 minute more: (accepted range count, media seconds)."""
    beats = play(minutes=2)
    beats += play(
        start=beats[-1].at + timedelta(seconds=30), minutes=1, position_s=skip_to_s, seq0=len(beats) + 1
    )
    ranges, _ = accepted_ranges(
        client(beats), POLICY, furthest_before=furthest_before, first_viewing=first_viewing, duration_s=1200
    )
    covered = union(
        (T0 + timedelta(seconds=r.media_from), T0 + timedelta(seconds=r.media_to)) for r in ranges
    )
    return len(ranges), seconds(covered)


@pytest.mark.parametrize(
    ("first_viewing", "skip_to_s", "furthest_before", "media_s"),
    [
        (True, 1140, 0.0, 120),  # skip to the end on a first viewing: what follows is not credited
        (False, 1140, 0.0, 180),  # a second viewing may seek: what follows counts
        (True, 1140, 1150.0, 180),  # watched that far on an earlier client: resuming there counts
        (True, 60, 0.0, 120),  # seek back inside what was watched: counts (once)
        (True, 152, 0.0, 212),  # a few seconds ahead of the wall clock is jitter, not a seek
        (True, 1140, 1120.0, 180),  # up to one period past the furthest point: a resume, credited
    ],
    ids=["first-skip", "second-skip", "resumed", "seek-back", "tolerance", "resumed-within-a-period"],
)
def test_r14_first_viewing_is_forward_locked(
    first_viewing: bool, skip_to_s: float, furthest_before: float, media_s: float
) -> None:
    _, got = skip_then_play(first_viewing, skip_to_s=skip_to_s, furthest_before=furthest_before)
    assert got == pytest.approx(media_s, abs=POLICY.seek_tolerance_s)


def test_r14_skip_to_end_earns_nothing_and_is_flagged() -> None:
    beats = play(minutes=1) + play(start=at(1.5), minutes=1, position_s=1140, seq0=10)
    credit = replay_credit([client(beats)], 1200, [], POLICY)
    assert not credit.complete
    assert credit.minutes == 0
    assert [f.code for f in credit.flags] == ["completion_without_coverage"]


# -- R15 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_per_wall", "rate", "max_rate", "covered_min", "reason"),
    [
        (1.0, 1.0, 1.0, 10, None),
        (3.0, 3.0, 1.0, 0, "too_fast"),  # honest 3× player
        (3.0, 1.0, 1.0, 0, "forward_seek"),  # 3× while claiming 1×: media outruns the wall clock
        # 5 % fast: 1.5 s ahead per 30 s heartbeat spends the 3 s tolerance in two pairs, then every
        # pair is refused (2 of 20 pairs of 31.5 s kept): the tolerance absorbs jitter, not a speed-up.
        (1.05, 1.0, 1.0, 1.05, "too_fast"),
        (1.2, 1.0, 1.0, 0, "forward_seek"),
        (2.0, 2.0, 2.0, 20, None),  # a policy that allows 2×
        (0.5, 1.0, 1.0, 5, None),  # buffering: slower is fine
    ],
)
def test_r15_media_may_not_advance_faster_than_wall_time_times_the_max_rate(
    media_per_wall: float, rate: float, max_rate: float, covered_min: float, reason: str | None
) -> None:
    policy = CreditPolicy(max_playback_rate=max_rate)
    beats = play(minutes=10, media_per_wall=media_per_wall, rate=rate)
    ranges, rejections = accepted_ranges(
        client(beats), policy, furthest_before=0, first_viewing=False, duration_s=3600
    )
    covered = sum(r.media_to - r.media_from for r in ranges)
    assert covered == pytest.approx(covered_min * 60)
    assert {r.reason for r in rejections} == ({reason} if reason else set())
    wall_s = sum((r.wall_to - r.wall_from).total_seconds() for r in ranges)
    assert covered <= wall_s * max_rate + policy.seek_tolerance_s * len(ranges) + 1e-6


def test_r15_a_player_claiming_1x_while_running_3x_on_short_heartbeats_is_refused_and_flagged() -> None:
    """With a 1 s heartbeat each 3 s jump fits the 3 s tolerance on its own; run after run it does not."""
    policy = CreditPolicy(heartbeat_period_s=1)
    beats = play(minutes=1, period_s=1, media_per_wall=3.0)  # 3 s of media per 1 s of wall, rate 1
    ranges, rejections = accepted_ranges(
        client(beats), policy, furthest_before=0, first_viewing=False, duration_s=3600
    )
    covered = sum(r.media_to - r.media_from for r in ranges)
    wall_s = sum((r.wall_to - r.wall_from).total_seconds() for r in ranges)
    assert covered <= wall_s + policy.seek_tolerance_s  # at most the tolerance ahead of the wall clock
    assert {r.reason for r in rejections} == {"too_fast"}


def test_r15_three_times_speed_is_not_credited_and_is_flagged() -> None:
    credit = replay_credit([client(play(minutes=7, media_per_wall=3, rate=3))], 20 * 60, [], POLICY)
    assert credit.covered_s == 0
    assert credit.minutes == 0
    assert "playback_rate" in [f.code for f in credit.flags]


# -- R16 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gap_s", "credited_s"),
    [(30, 90), (60, 120), (61, 60), (300, 60)],  # three 30-s pairs, the middle one stretched to gap_s
)
def test_r16_a_heartbeat_gap_over_two_periods_closes_the_interval(gap_s: float, credited_s: float) -> None:
    times = [0, 30, 30 + gap_s, 60 + gap_s]
    beats = [Beat("h", i + 1, T0 + timedelta(seconds=t), t, 1.0, True) for i, t in enumerate(times)]
    assert seconds(beat_spans(beats, 30)) == credited_s
    ranges, rejections = accepted_ranges(
        client(beats), POLICY, furthest_before=0, first_viewing=False, duration_s=3600
    )
    assert sum((r.wall_to - r.wall_from).total_seconds() for r in ranges) == credited_s
    assert [r.reason for r in rejections] == (["gap"] if gap_s > 60 else [])


# -- R17 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([("a", True, 0), ("a", False, 30)], [(0, 30)]),
        ([("a", True, 0), ("a", False, 30), ("a", True, 40)], [(0, 30), (40, 90)]),  # visible until `until`
        ([("a", True, 0), ("a", False, 30), ("b", True, 20), ("b", False, 50)], [(0, 50)]),  # two tabs
        ([("a", False, 10)], []),
        ([("a", True, 0), ("a", True, 10), ("a", False, 20)], [(0, 20)]),
        ([("a", True, 100)], []),  # after `until`
    ],
    ids=["shown-hidden", "shown-again", "two-tabs", "only-hidden", "repeated-shown", "late"],
)
def test_r17_a_hidden_page_pauses_attention(
    changes: list[tuple[str, bool, float]], expected: list[tuple[float, float]]
) -> None:
    got = attention_spans([(c, v, at(m)) for c, v, m in changes], until=at(90))
    assert got == spans(*expected)


def half_hidden(minute: float) -> bool:
    return not 10 <= minute < 20


@pytest.mark.parametrize(
    ("path", "rule", "minutes"),
    [
        ("live", "none", 0),
        ("live", "pro_rata", 10),
        ("hls", "none", 0),
        ("hls", "pro_rata", 10),
        ("replay", "none", 0),
    ],
)
def test_r17_hidden_half_the_time(path: str, rule: str, minutes: float) -> None:
    """A 20-minute lecture with the tab hidden for minutes 10–20: half the presence, below 85 %."""
    policy = CreditPolicy(live_below_threshold=rule)
    window = span(0, 20)
    if path == "live":
        credit_minutes = live_credit(spans((0, 20)), spans((0, 10)), window, [], policy).minutes
    elif path == "hls":
        beats = play("h", minutes=20, visible=half_hidden)
        segments = [at(m / 6) for m in range(0, 121)]  # a segment every 10 s
        credit_minutes = hls_credit([client(beats, client_id="h")], segments, window, [], policy).minutes
    else:
        credit_minutes = replay_credit(
            [client(play(minutes=20, visible=half_hidden))], 1200, [], policy
        ).minutes
    assert credit_minutes == pytest.approx(Decimal(minutes), abs=Decimal(1))


# -- R18 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("superseded_at_min", "credited_min", "rejected"),
    [(None, 10, 0), (5, 4.5, 11), (0, 0, 21), (10.01, 10, 0)],
)
def test_r18_heartbeats_at_or_after_supersession_earn_nothing(
    superseded_at_min: float | None, credited_min: float, rejected: int
) -> None:
    superseded = at(superseded_at_min) if superseded_at_min is not None else None
    old = client(play(minutes=10), superseded_at=superseded)
    ranges, rejections = accepted_ranges(old, POLICY, furthest_before=0, first_viewing=True, duration_s=3600)
    assert sum(r.media_to - r.media_from for r in ranges) == credited_min * 60
    assert [r.reason for r in rejections] == ["superseded"] * rejected


def test_r18_the_new_client_continues_where_the_superseded_one_stopped() -> None:
    old = client(play("old", minutes=20), client_id="old", superseded_at=at(10))
    new = client(play("new", start=at(10.5), minutes=10, position_s=600), client_id="new")
    credit = replay_credit([old, new], 1200, [], POLICY)
    assert credit.covered_s == 1170  # the last half minute of the old tab was never confirmed
    assert credit.complete
    assert {r.client_id for r in credit.ranges} == {"old", "new"}


# -- R23 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "registered_total", "pending_total", "met"),
    [
        ([], "0", "0", (False, False, False)),
        (
            [("public", "registered", "30"), ("professional", "registered", "60")],
            "90",
            "0",
            (True, True, True),
        ),
        (
            [("public", "pending", "30"), ("professional", "registered", "60")],
            "60",
            "30",
            (False, False, True),
        ),
        (
            [("public", "registered", "10"), ("professional", "registered", "80")],
            "90",
            "0",
            (True, False, True),
        ),
        (
            [
                ("public", "registered", "40"),
                ("professional", "registered", "2"),
                ("professional", "registered", "-2"),
            ],
            "40",
            "0",
            (False, True, False),
        ),
        (
            [("public", "rejected", "40"), ("professional", "registered", "90")],
            "90",
            "0",
            (True, False, True),
        ),
    ],
    ids=["empty", "met", "pending-does-not-count", "public-short", "reversal", "rejected"],
)
def test_r23_only_registered_credit_counts_toward_the_year(
    entries: list[tuple[str, str, str]],
    registered_total: str,
    pending_total: str,
    met: tuple[bool, bool, bool],
) -> None:
    summary = annual_summary([(c, s, Decimal(x)) for c, s, x in entries], POLICY)
    assert summary.total_registered == Decimal(registered_total)
    assert summary.total_pending == Decimal(pending_total)
    assert (summary.met_total, summary.met_public, summary.met_professional) == met
    assert summary.met == all(met)
    assert summary.to_dict()["met"] == all(met)


# -- R24 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prior", "once", "already"),
    [
        ([], True, False),
        ([(7, 2026, "2")], True, True),  # the live credit is there: the replay is not credited again
        ([(7, 2025, "2")], True, False),  # last year's credit
        ([(8, 2026, "2")], True, False),  # another session
        ([(7, 2026, "2"), (7, 2026, "-2")], True, False),  # reversed: may be earned again
        ([(7, 2026, "0")], True, False),  # a zero entry holds no credit
        ([(7, 2026, "2")], False, False),  # a policy without the rule
    ],
)
def test_r24_a_session_is_credited_once_per_credit_year(
    prior: list[tuple[int, int, str]], once: bool, already: bool
) -> None:
    policy = CreditPolicy(once_per_session_per_year=once)
    assert already_credited([(s, y, Decimal(x)) for s, y, x in prior], 7, 2026, policy) is already


@pytest.mark.parametrize(
    ("claim", "credited", "flag"),
    [
        ([(0, 90)], [(0, 90)], True),  # live on one device, HLS on another, at the same time
        ([(200, 290)], [(0, 90)], False),  # the replay watched later: just "already credited"
        ([(89.5, 120)], [(0, 90)], False),  # 30 s of overlap while switching paths
        ([(80, 120)], [(0, 90)], True),
    ],
)
def test_r24_a_second_claim_is_flagged_only_when_it_overlaps_the_first(
    claim: list[tuple[float, float]], credited: list[tuple[float, float]], flag: bool
) -> None:
    found = double_claim(spans(*claim), spans(*credited), POLICY, session_id=7)
    assert (found is not None) is flag
    if found:
        assert found.code == "double_claim"
        assert found.detail["overlap_s"] > 2 * POLICY.heartbeat_period_s


@pytest.mark.parametrize(
    ("t", "year"),
    [
        (datetime(2026, 12, 31, 15, 59, tzinfo=UTC), 2026),  # 23:59 in Beijing
        (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), 2027),  # 00:00 in Beijing, still 2026 in UTC
        (datetime(2027, 1, 1, 7, 59, tzinfo=BEIJING), 2027),
    ],
)
def test_r24_the_credit_year_is_the_beijing_year(t: datetime, year: int) -> None:
    assert credit_year(t) == year


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        beijing_day(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


# -- R29 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("this", "other", "expected"),
    [
        ([(0, 90)], [(100, 190)], []),
        ([(0, 90)], [(60, 150)], [(60, 90)]),
        ([(0, 30), (40, 90)], [(20, 50)], [(20, 30), (40, 50)]),
        ([(0, 90)], [(90, 120)], []),  # back to back is not an overlap
    ],
)
def test_r29_credited_time_may_not_overlap_another_course(
    this: list[tuple[float, float]], other: list[tuple[float, float]], expected: list[tuple[float, float]]
) -> None:
    assert overlaps(spans(*this), spans(*other)) == spans(*expected)


def test_r29_no_beijing_day_holds_more_than_24_hours() -> None:
    three_days = [(bj(2, 0), bj(4, 23, 59)), (bj(2, 12), bj(3, 12))]
    per_day = day_seconds(three_days)
    assert all(s <= 86_400 for s in per_day.values())
    assert per_day[date(2026, 3, 3)] == 86_400


@pytest.mark.parametrize(
    ("new", "already", "hours", "expected"),
    [("2", "0", "4", "2"), ("2", "3", "4", "1"), ("2", "4", "4", "0"), ("2", "5", "4", "0")],
)
def test_a_course_never_earns_more_than_its_credit_hours(
    new: str, already: str, hours: str, expected: str
) -> None:
    assert cap_course(Decimal(new), Decimal(already), Decimal(hours)) == Decimal(expected)


# -- fraud scenarios (DOMAIN §4) ------------------------------------------------------------------------


def test_fraud4_replayed_and_out_of_order_heartbeats_anchor_nothing_and_are_flagged() -> None:
    honest = [b for b in play(minutes=5) if b.seq != 6]  # one heartbeat lost on the way
    replayed = replace(honest[3], at=honest[-1].at + timedelta(seconds=30))  # the same beat sent again later
    forged = Beat("c1", 4, honest[-1].at + timedelta(seconds=60), 900.0, 1.0, True)  # seq 4 with new content
    late = Beat("c1", 6, honest[-1].at + timedelta(seconds=90), 1000.0, 1.0, True)  # an old seq, out of order
    ranges, rejections = accepted_ranges(
        client([*honest, replayed, forged, late]),
        POLICY,
        furthest_before=0,
        first_viewing=False,
        duration_s=3600,
    )
    assert sum(r.media_to - r.media_from for r in ranges) == 300
    assert [r.reason for r in rejections] == ["duplicate_seq", "duplicate_seq", "out_of_order"]
    credit = replay_credit([client([*honest, forged])], 300, [], POLICY)
    assert credit.complete
    assert "heartbeat_replay" in [f.code for f in credit.flags]


def test_fraud4_an_identical_retry_is_harmless() -> None:
    honest = play(minutes=5)
    retry = replace(honest[3], at=honest[3].at + timedelta(seconds=2))
    credit = replay_credit([client([*honest, retry])], 300, [], POLICY)
    assert credit.complete
    assert credit.flags == ()


def test_fraud4_hls_heartbeats_without_segment_fetches_are_not_presence() -> None:
    beats = play("h", minutes=20)
    segments = [at(m / 6) for m in range(0, 61)]  # segments fetched for the first 10 minutes only
    credit = hls_credit([client(beats, client_id="h")], segments, span(0, 20), [], POLICY)
    assert credit.present_s == 600
    assert credit.minutes == 0
    assert [f.code for f in credit.flags] == ["uncorroborated_heartbeats"]


def test_fraud7_hls_heartbeats_after_the_session_or_supersession_earn_nothing() -> None:
    beats = play("h", minutes=40)
    segments = [at(m / 6) for m in range(0, 241)]
    superseded = client(beats, client_id="h", superseded_at=at(15))
    credit = hls_credit([superseded], segments, span(0, 20), [], POLICY)
    assert credit.present_s == 14.5 * 60  # the last heartbeat before supersession closes the span
    credit = hls_credit([client(beats, client_id="h")], segments, span(0, 20), [], POLICY)
    assert credit.present_s == 20 * 60
    assert credit.minutes == 20
    assert {r.reason for r in credit.rejections} == {"outside_window"}


def test_an_honest_learner_gets_full_credit_on_every_path() -> None:
    window = span(0, 45)
    checks = answered(3, 0)
    live = live_credit(spans((0, 45)), spans((0, 45)), window, checks, POLICY)
    segments = [at(m / 6) for m in range(0, 271)]
    hls = hls_credit([client(play("h", minutes=45), client_id="h")], segments, window, checks, POLICY)
    replay = replay_credit([client(play(minutes=45))], 45 * 60, checks, POLICY)
    for credit in (live, hls, replay):
        assert credit.minutes == 45
        assert credit.xueshi == 1
        assert credit.flags == ()


# -- invariants ------------------------------------------------------------------------------------------


def random_spans(rng: random.Random, n: int) -> list[Span]:
    out = []
    for _ in range(n):
        a = rng.uniform(-30, 120)
        out.append(span(a, a + rng.uniform(-5, 60)))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_invariants_hold_for_random_evidence(seed: int) -> None:
    rng = random.Random(seed)
    delivery, attention = random_spans(rng, rng.randint(0, 12)), random_spans(rng, rng.randint(0, 12))
    window = span(0, rng.uniform(1, 120))
    merged = union(delivery)
    assert seconds(merged) <= sum(max((e - s).total_seconds(), 0) for s, e in delivery) + 1e-6  # union ≤ sum
    assert all(a[1] < b[0] for a, b in itertools.pairwise(merged))  # disjoint, sorted
    assert seconds(intersect(delivery, attention)) <= min(seconds(delivery), seconds(attention)) + 1e-6
    assert seconds(clip(delivery, window)) <= seconds([window])
    policy = CreditPolicy(live_below_threshold=rng.choice(["none", "pro_rata"]))
    credit = live_credit(delivery, attention, window, answered(rng.randint(0, 4), rng.randint(0, 4)), policy)
    assert credit.present_s <= credit.window_s + 1e-6  # credited ≤ window
    assert credit.minutes * 60 <= Decimal(repr(credit.window_s))
    assert credit.xueshi * policy.minutes_per_xueshi <= credit.minutes
    assert sum(credit.xueshi_by_day.values(), Decimal(0)) == credit.xueshi
    beats = play(
        minutes=rng.uniform(1, 30),
        media_per_wall=rng.choice([0.5, 1.0, 1.05, 2.0, 3.0]),
        visible=lambda m: rng.random() > 0.2,
    )
    duration = rng.uniform(60, 1800)
    replay = replay_credit([client(beats)], duration, [], policy, first_viewing=rng.random() < 0.5)
    assert replay.covered_s <= duration + 1e-6
    assert replay.credited_s <= replay.wall_s * policy.max_playback_rate + 1e-6  # never more than time spent


# -- the worked example in docs/credit.md ---------------------------------------------------------------


DOC = Path(__file__).resolve().parents[2] / "docs" / "credit.md"


def bt(h: int, m: int, s: int = 0) -> datetime:
    return datetime(2026, 3, 2, h, m, s, tzinfo=BEIJING).astimezone(UTC)


def example_check(h: int, m: int, latency_ms: int | None) -> Check:
    issued = bt(h, m)
    answered_at = None if latency_ms is None else issued + timedelta(milliseconds=latency_ms)
    return Check(f"{h}:{m}", issued, issued + timedelta(seconds=60), answered_at, latency_ms)


def example(hidden_until: tuple[int, int], latencies: list[int | None], rule: str = "none") -> LiveCredit:
    attention = attention_spans(
        [
            ("tab", True, bt(9, 3)),
            ("tab", False, bt(10, 0)),
            ("tab", True, bt(*hidden_until)),
            ("tab", False, bt(10, 32, 30)),
        ],
        until=bt(10, 32, 30),
    )
    checks = [
        example_check(h, m, ms)
        for (h, m), ms in zip([(9, 15), (9, 35), (9, 55), (10, 20)], latencies, strict=True)
    ]
    delivery = [(bt(9, 3), bt(9, 40)), (bt(9, 41), bt(10, 32))]
    return live_credit(
        delivery, attention, (bt(9, 2), bt(10, 32)), checks, CreditPolicy(live_below_threshold=rule)
    )


def test_the_worked_example_in_docs_credit_md_is_what_the_engine_computes() -> None:
    text = " ".join(DOC.read_text().split())
    credit = example((10, 6), [4200, 3100, None, 5600])
    assert (credit.window_s, credit.present_s) == (5400, 4920)
    assert f"{credit.ratio:.4f}" == "0.9111"
    assert credit.threshold_met
    assert (credit.checks_total, credit.checks_answered, credit.fraction) == (4, 3, 1.0)
    assert (credit.minutes, credit.xueshi) == (Decimal(90), Decimal("2.0"))
    capped = cap_daily(credit.xueshi_by_day, {date(2026, 3, 2): Decimal("6.5")}, POLICY)
    assert capped == {date(2026, 3, 2): Decimal("1.5")}
    for words in [
        "= 4920 s (82 min)",
        "4920 ÷ 5400 = 0.9111 ≥ 0.85",
        "4 counted, 3 answered: 0.75",
        "| minutes | 90 × 1 = 90 |",
        "floor(90 ÷ 45, 0.5) = 2.0",
        "**1.5 学时** credited",
    ]:
        assert words in text, words

    auto = example((10, 6), [4200, 300, None, 5600])
    assert (auto.fraction, auto.minutes, auto.xueshi) == (0.5, Decimal(45), Decimal("1.0"))
    assert [f.code for f in auto.flags] == ["auto_confirm"]
    assert "2 of 4 = 0.5 → fraction ½ → 45 minutes → 1.0 学时" in text

    hidden = example((10, 15), [4200, 3100, None, 5600])
    assert (hidden.present_s, f"{hidden.ratio:.4f}", hidden.xueshi) == (4380.0, "0.8111", Decimal(0))
    pro_rata = example((10, 15), [4200, 3100, None, 5600], rule="pro_rata")
    assert (pro_rata.minutes, pro_rata.xueshi) == (Decimal(73), Decimal("1.5"))
    assert "present would be 4380 s (73 min), 0.8111 < 0.85 → 0 学时" in text
    assert "73 minutes → 1.5 学时" in text


def test_docs_credit_md_lists_every_policy_field_with_its_default() -> None:
    text = DOC.read_text()
    for name, value in CreditPolicy().to_dict().items():
        if name == "version":
            continue
        shown = (
            str(value).lower()
            if isinstance(value, bool)
            else f"`{value}`"
            if isinstance(value, str) and not value[0].isdigit()
            else str(value)
        )
        assert f"| `{name}` | {shown} |" in text, name
