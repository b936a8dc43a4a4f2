"""Owned background tasks: a component starts them here, failures are logged, and closing cancels and
awaits every one still running (no task is left behind on shutdown)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any


class OwnedTasks:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log = log
        self._what = what  # names the owner in failure logs, e.g. "room"

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("%s task %s failed", self._what, task.get_name(), exc_info=exc)

    async def settle(self, name: str, timeout_s: float) -> None:
        """Let the running tasks called `name` finish (work that must not stop halfway, such as closing
        connections), for at most `timeout_s`; those still running then are left to cancel()."""
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t.get_name() == name and t is not current]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def cancel(self, tasks: Iterable[asyncio.Task[Any]] | None = None) -> None:
        """Cancel and await `tasks` (default: all still running), never the task calling this."""
        current = asyncio.current_task()
        pending = [t for t in (self._tasks if tasks is None else tasks) if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
