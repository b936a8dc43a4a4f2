"""The OpenAPI document describes every registered /api route."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient


async def test_openapi_document_lists_every_registered_api_route(
    client: TestClient[web.Request, web.Application],
) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    registered = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource and r.resource.canonical.startswith("/api/")
    }
    assert registered
    assert registered == documented
    for path, ops in doc["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path))  # also within a segment: {serial}.pdf
            assert op["summary"]
            assert op["responses"]
