"""Every 4xx/5xx leaves the app in one JSON shape; this test pins that shape."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from infra import errors
from infra.http import error_middleware, read_json

ERROR_KEYS = {"code", "message", "field", "details"}


async def _raise(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind == "crash":
        raise RuntimeError("boom: secret internals")
    exc: dict[str, errors.DomainError] = {
        "invalid": errors.Invalid("title is too long", field="title"),
        "unauth": errors.Unauthenticated("log in first"),
        "forbidden": errors.Forbidden("not yours"),
        "missing": errors.NotFound("no such course"),
        "conflict": errors.Conflict("course is full", details={"capacity": 30}),
        "throttled": errors.TooMany("slow down", details={"retry_after_s": 30}),
        "down": errors.Unavailable("database unreachable"),
    }
    raise exc[kind]


async def _echo(request: web.Request) -> web.Response:
    return web.json_response(await read_json(request))


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient:  # type: ignore[type-arg]
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    app.router.add_get("/raise/{kind}", _raise)
    app.router.add_post("/echo", _echo)
    return await aiohttp_client(app)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("invalid", 400, "invalid"),
        ("unauth", 401, "unauthenticated"),
        ("forbidden", 403, "forbidden"),
        ("missing", 404, "not_found"),
        ("conflict", 409, "conflict"),
        ("throttled", 429, "too_many_requests"),
        ("down", 503, "unavailable"),
        ("crash", 500, "internal_error"),
    ],
)
async def test_domain_errors_map_to_status_and_the_one_shape(
    client: TestClient,
    kind: str,
    status: int,  # type: ignore[type-arg]
    code: str,
) -> None:
    resp = await client.get(f"/raise/{kind}")
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


async def test_error_names_the_field_and_carries_details(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/raise/invalid")).json()
    assert body["error"]["field"] == "title"
    body = await (await client.get("/raise/conflict")).json()
    assert body["error"]["details"] == {"capacity": 30}


async def test_unauthenticated_asks_for_a_bearer_token(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/raise/unauth")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_internal_errors_do_not_leak_details(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/raise/crash")).json()
    assert "secret" not in body["error"]["message"]


async def test_unknown_route_and_method_use_the_shape(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/nowhere")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/echo")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]


@pytest.mark.parametrize(
    ("body", "ctype", "fragment"),
    [
        ("{", "application/json", "not valid JSON"),
        ("[1, 2]", "application/json", "JSON object"),
        ("{}", "text/plain", "Content-Type"),
    ],
    ids=["broken-json", "not-an-object", "wrong-content-type"],
)
async def test_bad_json_bodies_are_a_400_saying_why(
    client: TestClient,
    body: str,
    ctype: str,  # type: ignore[type-arg]
    fragment: str,
) -> None:
    resp = await client.post("/echo", data=body, headers={"Content-Type": ctype})
    assert resp.status == 400
    assert fragment in (await resp.json())["error"]["message"]


async def test_oversized_bodies_are_a_413_in_the_shape(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/echo", data="x" * 5000, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    body = await resp.json()
    assert body["error"]["code"] == "body_too_large"


async def test_throttling_says_when_to_retry(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/raise/throttled")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "30"
