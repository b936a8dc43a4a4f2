"""Test helpers shared by every tier: polling instead of sleeping, free ports, service URLs."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import pytest

T = TypeVar("T")
Message = str | Callable[[], str]


def _text(message: Message) -> str:
    return message if isinstance(message, str) else message()


@overload
async def wait_until(
    check: Callable[[], Awaitable[T]], timeout_s: float = ..., interval_s: float = ..., message: Message = ...
) -> T: ...
@overload
async def wait_until(
    check: Callable[[], T], timeout_s: float = ..., interval_s: float = ..., message: Message = ...
) -> T: ...
async def wait_until(
    check: Callable[[], Any],
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    message: Message = "condition",
) -> Any:
    """Poll `check` (sync or async) until it returns a truthy value; fail the test after `timeout_s`.
    `message` may be a callable, evaluated at the timeout (to report the state that was never reached)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {_text(message)} (last={result!r})"
            )
        await asyncio.sleep(interval_s)


def wait_until_sync(
    check: Callable[[], T], timeout_s: float = 10.0, interval_s: float = 0.05, message: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message} (last={result!r})")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(name: str) -> str:
    """A test service's address from the environment `make test` prepares (TEST_POSTGRES_URL, ...).

    Under `make test` (TEST_REQUIRE_SERVICES=1) a missing service fails the test: a skipped integration
    test would hide a broken harness. Run by hand without the services, such tests are skipped.
    """
    value = os.environ.get(name, "")
    if not value:
        if os.environ.get("TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{name} is not set although make test promised the service")
        pytest.skip(f"{name} not set (run through `make test` to get real services)")
    return value


def binary(name: str) -> str:
    """The path of a program the tests run (e.g. turnserver); as service_env, missing fails under
    `make test` (which installs it) and skips otherwise."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        if os.environ.get("TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{name} is not installed although make test installs it")
        pytest.skip(f"{name} is not installed")
    return path
