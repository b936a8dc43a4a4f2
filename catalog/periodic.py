"""A round of work repeated in the background while the app runs: the credit settlement and the external
meetings' pull. A failing round is logged and tried again at the next one (both are idempotent); the
task is cancelled and awaited when the app stops; `every_s` ≤ 0 means it never runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


async def _repeat(what: str, every_s: float, round_: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            await round_()
        except Exception:
            log.exception("%s round failed; retried in %.0f s", what, every_s)
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def every(what: str, every_s: float, round_: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run `round_` now and then every `every_s` seconds for as long as the body runs."""
    if every_s <= 0:
        yield
        return
    task = asyncio.create_task(_repeat(what, every_s, round_), name=f"catalog-{what.replace(' ', '-')}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
