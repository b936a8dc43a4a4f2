"""Owned background tasks: failures are logged, closing cancels and awaits what still runs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from infra.tasks import OwnedTasks

log = logging.getLogger("test.tasks")


async def test_cancel_awaits_every_running_task_and_spares_the_caller() -> None:
    tasks = OwnedTasks(log, "test")
    sleepers = [tasks.spawn(asyncio.sleep(3600), name=f"sleeper-{i}") for i in range(3)]

    async def closer() -> bool:
        await tasks.cancel()
        return True

    # A task closing its owner must not cancel itself.
    assert await tasks.spawn(closer(), name="closer")
    assert all(t.cancelled() for t in sleepers)


async def test_cancel_of_some_tasks_leaves_the_others_running() -> None:
    tasks = OwnedTasks(log, "test")
    first, second = tasks.spawn(asyncio.sleep(3600)), tasks.spawn(asyncio.sleep(3600))
    await tasks.cancel([first])
    assert first.cancelled()
    assert not second.done()
    await tasks.cancel()
    assert second.cancelled()


async def test_a_failing_task_is_logged_with_its_owner_and_name(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    tasks = OwnedTasks(log, "room")
    task = tasks.spawn(boom(), name="grace-7")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert any("room task grace-7 failed" in r.getMessage() for r in caplog.records)


async def test_settle_lets_the_named_tasks_finish_and_leaves_the_rest_to_cancel() -> None:
    tasks = OwnedTasks(log, "test")
    release = asyncio.Event()
    finished: list[str] = []

    async def closing() -> None:
        await release.wait()
        finished.append("closed")

    closer = tasks.spawn(closing(), name="drop")
    other = tasks.spawn(asyncio.sleep(3600), name="other")
    settling = asyncio.create_task(tasks.settle("drop", timeout_s=30))
    await asyncio.sleep(0)
    assert not settling.done(), "settle waits for the named task"
    release.set()
    await settling
    assert (finished, closer.done(), other.done()) == (["closed"], True, False)
    await tasks.cancel()
    assert other.cancelled()


async def test_settle_gives_up_after_its_timeout() -> None:
    tasks = OwnedTasks(log, "test")
    stuck = tasks.spawn(asyncio.sleep(3600), name="drop")
    await tasks.settle("drop", timeout_s=0.01)
    assert not stuck.done()
    await tasks.cancel()
    assert stuck.cancelled()
