"""Liveness (/healthz) and readiness (/readyz: database, event bus and object store reachable, recordings
keeping up, the outbox delivering). A check that raises `Degraded` is shown but keeps the answer 200."""

from __future__ import annotations

import asyncio

from aiohttp import web

from infra.appkeys import READINESS
from infra.errors import Unavailable
from infra.http import json_ok
from infra.readiness import Degraded


def _outcome(result: BaseException | None) -> str:
    if result is None:
        return "ok"
    if isinstance(result, Degraded):
        return f"degraded: {result}"
    return f"{type(result).__name__}: {result}"


async def healthz(_request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS]
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(checks[n](), timeout=5) for n in names), return_exceptions=True
    )
    outcomes = dict(zip(names, results, strict=True))
    report = {n: _outcome(r) for n, r in outcomes.items()}
    failing = [n for n, r in outcomes.items() if r is not None and not isinstance(r, Degraded)]
    if failing:
        raise Unavailable(f"not ready: {', '.join(failing)} unreachable", details={"checks": report})
    degraded = any(r is not None for r in outcomes.values())
    return json_ok({"status": "degraded" if degraded else "ready", "checks": report})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
