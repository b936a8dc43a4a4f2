"""Liveness (/healthz) and readiness (/readyz: database, event bus and object store reachable, recordings
keeping up, the outbox delivering). A check that raises `Degraded` is shown with its own message (our
text: how far behind) but keeps the answer 200.

/readyz names what is down ("down" or "timeout") and nothing more: the exception behind it, which may
hold host names, user names or driver internals, goes to the log.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from infra.appkeys import READINESS
from infra.errors import Unavailable
from infra.http import json_ok
from infra.readiness import Degraded

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0


async def healthz(_request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


def _verdict(name: str, result: BaseException | None) -> str:
    if result is None:
        return "ok"
    if isinstance(result, Degraded):
        return f"degraded: {result}"
    if isinstance(result, TimeoutError):
        log.warning("readiness check=%s timed out after %ss", name, CHECK_TIMEOUT_S)
        return "timeout"
    log.warning("readiness check=%s failed: %s: %s", name, type(result).__name__, result)
    return "down"


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS]
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(checks[n](), timeout=CHECK_TIMEOUT_S) for n in names), return_exceptions=True
    )
    outcomes = dict(zip(names, results, strict=True))
    report = {n: _verdict(n, r) for n, r in outcomes.items()}
    failing = [n for n, r in outcomes.items() if r is not None and not isinstance(r, Degraded)]
    if failing:
        raise Unavailable(f"not ready: {', '.join(failing)} unreachable", details={"checks": report})
    degraded = any(r is not None for r in outcomes.values())
    return json_ok({"status": "degraded" if degraded else "ready", "checks": report})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
