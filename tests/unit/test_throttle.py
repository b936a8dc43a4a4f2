"""Throttling rules: free attempts, then a delay that doubles up to a cap; never a lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog.throttle import LOGIN_PHONE, POLICIES, Count, Policy, address_key, decide

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = Policy("test", free=3, first_delay_s=1, max_delay_s=8, window_s=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("count", "delay_s"),
    [(0, 0), (2, 0), (3, 1), (4, 2), (5, 4), (6, 8), (7, 8), (10_000, 8)],
    ids=["none", "last-free", "first-delay", "doubles", "doubles-again", "reaches-cap", "capped", "huge"],
)
def test_the_delay_doubles_after_the_free_attempts_up_to_the_cap(count: int, delay_s: float) -> None:
    assert POLICY.delay_s(count) == delay_s


@pytest.mark.parametrize(
    ("current", "now_s", "admitted", "retry_after_s", "kept"),
    [
        (None, 0, True, 0, Count(1, at(0))),
        (Count(2, at(0)), 0, True, 0, Count(3, at(0))),
        # Beyond the free attempts: too early is refused and not counted.
        (Count(3, at(0)), 0.2, False, 1, Count(3, at(0))),
        (Count(3, at(0)), 1, True, 0, Count(4, at(1))),
        (Count(5, at(0)), 1.5, False, 3, Count(5, at(0))),
        (Count(50, at(0)), 7.9, False, 1, Count(50, at(0))),
        (Count(50, at(0)), 8, True, 0, Count(51, at(8))),
        # A quiet window starts again from nothing.
        (Count(50, at(0)), 60, True, 0, Count(1, at(60))),
        # A clock read just before the last counted attempt's: no time since it, the count stays put.
        (Count(2, at(1)), 0.9, True, 0, Count(3, at(1))),
        (Count(3, at(1)), 0.9, False, 1, Count(3, at(1))),
    ],
    ids=[
        "first-ever",
        "within-free",
        "too-early-after-free",
        "after-the-delay",
        "retry-after-rounds-up",
        "cap-nearly-over",
        "cap-over",
        "window-lapsed",
        "clock-behind-within-free",
        "clock-behind-beyond-free",
    ],
)
def test_decide(current: Count | None, now_s: float, admitted: bool, retry_after_s: int, kept: Count) -> None:
    verdict = decide(POLICY, current, at(now_s))
    assert (verdict.admitted, verdict.retry_after_s, verdict.count) == (admitted, retry_after_s, kept)


def test_strangers_who_never_stop_slow_a_phone_to_one_attempt_per_cap_never_more() -> None:
    count, now, waits = None, T0, []
    for _ in range(200):  # an attacker who tries again the moment each wait is over
        verdict = decide(LOGIN_PHONE, count, now)
        if not verdict.admitted:
            waits.append(verdict.retry_after_s)
            now += timedelta(seconds=verdict.retry_after_s)
            continue
        count = verdict.count
    assert max(waits) <= LOGIN_PHONE.max_delay_s == 300
    # The owner arriving at any moment waits at most the cap: never 15 minutes.
    assert count is not None
    owner = decide(LOGIN_PHONE, count, count.last_at + timedelta(seconds=0.5))
    assert not owner.admitted
    assert owner.retry_after_s <= 300


@pytest.mark.parametrize("policy", POLICIES, ids=[p.scope for p in POLICIES])
def test_every_policy_delays_less_than_its_window(policy: Policy) -> None:
    assert policy.max_delay_s < policy.window_s


def test_a_policy_whose_delay_outlasts_its_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        Policy("bad", free=1, first_delay_s=1, max_delay_s=60, window_s=60)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("", ""),
    ],
    ids=["ipv4-as-is", "ipv6-per-64", "same-64-same-key", "no-address"],
)
def test_address_key(address: str, key: str) -> None:
    assert address_key(address) == key
