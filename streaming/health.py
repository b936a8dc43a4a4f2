"""Liveness (/healthz) and readiness (/readyz: database, event bus and object store reachable)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from infra.appkeys import READINESS
from infra.errors import Unavailable
from infra.http import json_ok


async def healthz(_request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS]
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(checks[n](), timeout=5) for n in names), return_exceptions=True
    )
    report = {
        n: ("ok" if r is None else f"{type(r).__name__}: {r}") for n, r in zip(names, results, strict=True)
    }
    failing = [n for n in names if report[n] != "ok"]
    if failing:
        raise Unavailable(f"not ready: {', '.join(failing)} unreachable", details={"checks": report})
    return json_ok({"status": "ready", "checks": report})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
