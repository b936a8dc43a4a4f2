"""Throttling rules for logins and registrations: a delay that grows with each failure, never a lock.

A key (a phone, an address, a device) may fail `free` times; after that, each further attempt must wait
a delay that doubles with every counted failure, up to `max_delay_s`. Attempts that arrive too early are
refused without being counted, so strangers can slow a key down but never shut it for longer than
`max_delay_s` at a time. Pure: the clock is passed in; catalog.throttle_store keeps the counts.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Policy:
    scope: str  # what the keys are: stored beside each key
    free: int  # counted attempts within the window that pass without waiting
    first_delay_s: float  # the wait after the first attempt beyond `free`; doubles after each further
    max_delay_s: float
    window_s: float  # a key with no counted attempt for this long starts again from zero

    def __post_init__(self) -> None:
        # A delay as long as the window would let the count lapse while the caller waits.
        if not 0 < self.first_delay_s <= self.max_delay_s < self.window_s:
            raise ValueError(f"{self.scope}: need 0 < first_delay_s <= max_delay_s < window_s")

    def delay_s(self, count: int) -> float:
        """How long after the last counted attempt the next one may come, with `count` counted."""
        if count < self.free:
            return 0.0
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** min(count - self.free, 64))


@dataclass(frozen=True)
class Count:
    """What is kept per key: counted attempts in the current window and when the last one came."""

    count: int
    last_at: datetime


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    retry_after_s: int  # 0 when admitted; else whole seconds, at least 1
    count: Count  # what to keep: one more attempt when admitted, unchanged when refused


def decide(policy: Policy, current: Count | None, now: datetime) -> Verdict:
    """Whether an attempt at `now` may go ahead; an admitted attempt is counted."""
    if current is None or (now - current.last_at).total_seconds() >= policy.window_s:
        current = Count(0, now)
    # Attempts read the clock before they queue for the count, so `now` may be a little behind the last
    # counted attempt: that is no time since it, not a negative time (nor a count moving backwards).
    since_s = max(0.0, (now - current.last_at).total_seconds())
    wait_s = policy.delay_s(current.count) - since_s
    if wait_s > 0:
        return Verdict(False, max(1, math.ceil(wait_s)), current)
    return Verdict(True, 0, Count(current.count + 1, max(now, current.last_at)))


def address_key(address: str) -> str:
    """The key of a client address: IPv6 clients are counted per /64, the block one subscriber gets."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


# Failed logins for one phone number, whatever the device or address (except a known device, below).
# After 5 failures the next waits 1 s, then 2, 4 ... at most 5 minutes: about 300 guesses a day at most,
# and the owner, whom strangers' failures slow down, is never shut out for more than 5 minutes at a time.
LOGIN_PHONE = Policy("login_phone", free=5, first_delay_s=1, max_delay_s=300, window_s=15 * 60)
# Failed logins from one address, whatever the phone: one machine trying many phones. Generous, since a
# company or a school may share one address; the waits stay short for the same reason.
LOGIN_ADDRESS = Policy("login_address", free=20, first_delay_s=1, max_delay_s=60, window_s=15 * 60)
# Failed logins from a device that logged in to this account before (its signed cookie): only the
# holder of that cookie can count here, so strangers never slow the owner's own device.
LOGIN_DEVICE = Policy("login_device", free=5, first_delay_s=1, max_delay_s=300, window_s=15 * 60)
# Registrations from one address, each counted (argon2 runs for each, and each may create an account):
# twenty an hour freely, then 10 s, 20 s ... at most 5 minutes between them.
REGISTER_ADDRESS = Policy("register_address", free=20, first_delay_s=10, max_delay_s=300, window_s=60 * 60)

POLICIES = (LOGIN_PHONE, LOGIN_ADDRESS, LOGIN_DEVICE, REGISTER_ADDRESS)
