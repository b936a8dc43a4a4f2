"""Readiness checks (/readyz): a check returns when all is well and raises when not. Any exception makes
/readyz answer 503 and name it, except `Degraded`, which /readyz shows while still answering 200."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

ReadinessCheck = Callable[[], Awaitable[None]]


class Degraded(Exception):
    """A problem worth showing that does not make the process unready: e.g. events waiting in the outbox
    for a bus that is down (nothing is lost, live media is unaffected)."""
