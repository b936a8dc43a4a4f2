"""Bounded retries with exponential backoff for platform calls (a loop, never recursion)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from integrations.errors import PlatformUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)


class Retryable(Exception):
    """A failure worth another try: a 5xx without a known platform error, a timeout, a reset connection."""


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0

    def delays(self) -> list[float]:
        out, delay = [], self.first_delay_s
        for _ in range(self.attempts - 1):
            out.append(min(delay, self.max_delay_s))
            delay *= self.factor
        return out


async def with_retries(platform: str, what: str, backoff: Backoff, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`; on Retryable wait and try again, at most `backoff.attempts` times in all."""
    delays = backoff.delays()
    for attempt in range(backoff.attempts):
        try:
            return await call()
        except Retryable as exc:
            if attempt == len(delays):
                raise PlatformUnavailable(
                    f"{platform} did not answer {what} after {backoff.attempts} attempts: {exc}",
                    details={"platform": platform, "attempts": backoff.attempts},
                ) from exc
            log.warning(
                "%s %s failed (%s), retry %d in %.1fs", platform, what, exc, attempt + 1, delays[attempt]
            )
            await asyncio.sleep(delays[attempt])
    raise AssertionError("unreachable")


DEFAULT_BACKOFF = Backoff()
