"""catalog.periodic: rounds repeat while the body runs, a failing round does not stop the next, the task
is gone after the body, and a period of 0 runs nothing."""

from __future__ import annotations

import asyncio

import pytest

from catalog import periodic


async def test_rounds_repeat_survive_a_failure_and_stop_with_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    third = asyncio.Event()

    async def round_() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database is down")
        if calls == 3:
            third.set()

    async with periodic.every("test work", 0.001, round_):
        await asyncio.wait_for(third.wait(), timeout=5)
    stopped_at = calls
    await asyncio.sleep(0)  # a cancelled task would have run again by now
    assert calls == stopped_at
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "catalog-test-work"]
    assert "test work round failed" in caplog.text


async def test_a_period_of_zero_runs_nothing() -> None:
    ran = False

    async def round_() -> None:
        nonlocal ran
        ran = True

    async with periodic.every("test work", 0, round_):
        await asyncio.sleep(0)
    assert not ran
