"""The input boundary and the answers' headers, over HTTP against the composed app (embedded, demo world):
each class of input issue 12 found answered with 500 gets a 4xx in the one error shape (or is treated as
absent); every answer carries the security headers; /readyz and the request log leak nothing and forge
nothing. The property-based fuzz (test_fuzz_api.py) looks for what these tables do not list."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import catalog
from catalog import demo
from catalog.db import Database
from infra.appkeys import OBJECTS
from infra.security_headers import OTHER_CSP, PAGE_CSP
from infra.settings import Settings
from streaming.app import create_app
from tests.helpers import free_port

DEMO_PASSWORD = "lectern-demo-2026"  # catalog.demo.DEMO_PASSWORD
LEARNER = "13800000010"
EXPERT = "13800000008"
ERROR_KEYS = {"code", "message", "field", "details"}


async def _client(aiohttp_client: Any, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    await catalog.migrate_async(settings.effective_database_url)
    db = Database(settings.effective_database_url)
    try:
        await demo.seed(db, datetime.now(UTC))
    finally:
        await db.close()
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


@pytest.fixture
async def client(aiohttp_client: Any, embedded_settings: Settings) -> TestClient:  # type: ignore[type-arg]
    return await _client(aiohttp_client, embedded_settings)


async def log_in(client: TestClient, phone: str) -> dict[str, str]:  # type: ignore[type-arg]
    """The cookie and CSRF header of a fresh login, for requests that carry them explicitly."""
    r = await client.post("/api/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
    assert r.status == 200, await r.text()
    token = r.cookies["lectern_session"].value
    client.session.cookie_jar.clear()  # each request below says who it is itself
    return {"Cookie": f"lectern_session={token}", "X-CSRF-Token": (await r.json())["csrf_token"]}


async def raw(client: TestClient, request: bytes) -> tuple[int, dict[str, str], bytes]:  # type: ignore[type-arg]
    """Send bytes no HTTP client library would (undecodable header bytes) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_error(
    status: int, content_type: str, body: bytes, expected: int, field: str | None = None
) -> None:
    assert status == expected, body[:300]
    assert content_type.startswith("application/json"), content_type
    error = json.loads(body)["error"]
    assert set(error) == ERROR_KEYS
    if field is not None:
        assert error["field"] == field, error


DEEP_ARRAY = b"[" * 5000 + b"]" * 5000
DEEP_OBJECT = b'{"a":' * 3000 + b"1" + b"}" * 3000
NESTED_35: Any = 1
for _ in range(35):
    NESTED_35 = [NESTED_35]
MODERATELY_DEEP = json.dumps({"phone": "13800000010", "password": NESTED_35})


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        # integers: ids and query parameters within BIGINT and their range, ASCII digits only
        pytest.param(
            "GET", "/api/courses/99999999999999999999999999", None, 404, None, id="id-far-beyond-bigint"
        ),
        pytest.param("GET", "/api/courses/9223372036854775808", None, 404, None, id="id-bigint-plus-one"),
        pytest.param(
            "GET", "/api/sessions/9223372036854775807", None, 404, None, id="id-bigint-max-not-found"
        ),
        pytest.param("GET", "/api/courses/%EF%BC%91", None, 404, None, id="id-full-width-digit"),
        pytest.param("GET", "/api/organizations/%D9%A1", None, 404, None, id="id-arabic-indic-digit"),
        pytest.param("GET", "/api/courses?page=%D9%A3", None, 400, "page", id="query-arabic-indic-digit"),
        pytest.param(
            "GET", "/api/courses?page_size=%EF%BC%92", None, 400, "page_size", id="query-full-width"
        ),
        pytest.param("GET", "/api/courses?page=99999999999999999999", None, 400, "page", id="query-huge"),
        pytest.param(
            "GET",
            "/api/courses?provider_id=9223372036854775808",
            None,
            400,
            "provider_id",
            id="query-beyond-bigint",
        ),
        pytest.param(
            "POST",
            "/api/auth/register",
            {"phone": "13900000001", "password": "long-enough-1", "name": "x", "employer_id": 2**64},
            400,
            "employer_id",
            id="body-id-beyond-bigint",
        ),
        pytest.param(
            "POST",
            "/api/auth/register",
            {"phone": "١٣٩٠٠٠٠٠٠٠١", "password": "long-enough-1", "name": "x"},
            400,
            "phone",
            id="body-phone-in-arabic-indic-digits",
        ),
        # dates: years 1900-2200, offsets within ±14:00, ASCII
        pytest.param(
            "GET", "/api/courses?from=0001-01-01T00:00:00%2B01:00", None, 400, "from", id="year-1-east"
        ),
        pytest.param(
            "GET", "/api/courses?to=9999-12-31T23:59:59-01:00", None, 400, "to", id="year-9999-west"
        ),
        pytest.param(
            "GET", "/api/courses?from=2026-01-01T00:00:00%2B23:59", None, 400, "from", id="offset-23h59"
        ),
        pytest.param("GET", "/api/courses?from=1899-12-31", None, 400, "from", id="date-before-1900"),
        pytest.param(
            "GET", "/api/courses?from=%D9%A2%D9%A0%D9%A2%D9%A6-01-01", None, 400, "from", id="date-digits"
        ),
        # JSON: depth, numbers, text
        pytest.param("POST", "/api/auth/login", DEEP_ARRAY, 400, None, id="json-5000-deep-array"),
        pytest.param("POST", "/api/auth/login", DEEP_OBJECT, 400, None, id="json-3000-deep-object"),
        pytest.param("POST", "/api/auth/login", MODERATELY_DEEP.encode(), 400, "password", id="json-35-deep"),
        pytest.param("POST", "/api/auth/login", b"9" * 5000, 400, None, id="json-5000-digit-number"),
        pytest.param("POST", "/api/auth/login", b'{"phone": NaN}', 400, None, id="json-nan"),
        pytest.param("POST", "/api/auth/login", b'{"phone": 1e999}', 400, None, id="json-infinity"),
        pytest.param("POST", "/api/auth/login", b'{"phone": "\xff"}', 400, None, id="json-not-utf8"),
        pytest.param(
            "POST",
            "/api/auth/register",
            {"phone": "13900000002", "password": "long-enough-1", "name": "\ud800"},
            400,
            "name",
            id="lone-surrogate-in-name",
        ),
        pytest.param(
            "POST",
            "/api/auth/register",
            {"phone": "13900000003", "password": "long-enough-\udfff", "name": "x"},
            400,
            "password",
            id="lone-surrogate-in-password",
        ),
        pytest.param(
            "POST",
            "/api/auth/login",
            {"phone": "13800000010", "password": "\ud800abcdefgh"},
            400,
            "password",
            id="lone-surrogate-in-login-password",
        ),
        pytest.param(
            "POST",
            "/api/auth/login",
            {"phone\ud800": "13800000010", "password": "x"},
            400,
            None,
            id="lone-surrogate-in-a-key",
        ),
    ],
)
async def test_bad_input_of_each_class_is_a_4xx_in_the_error_shape(
    client: TestClient,  # type: ignore[type-arg]
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()  # "\ud800" escapes
    r = await client.request(method, path, data=data, headers={"Content-Type": "application/json"})
    assert_error(r.status, r.content_type, await r.read(), status, field)


async def test_a_page_url_with_a_number_beyond_bigint_is_the_chinese_404_page(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    for path in ("/watch/99999999999999999999999", "/courses/%EF%BC%91", "/studio/%D9%A1"):
        r = await client.get(path)
        assert r.status == 404, path
        assert r.content_type == "text/html"
        assert "找不到" in await r.text() or "404" in await r.text()


@pytest.mark.parametrize(
    ("header", "path", "status"),
    [
        pytest.param(b"Authorization: Bearer a.\xe4\xbd\xa0", b"POST /whip/sessions/1", 401, id="whip-utf8"),
        pytest.param(b"Authorization: Bearer \xff.\xfe", b"POST /whip/sessions/1", 401, id="whip-not-utf8"),
        pytest.param(b"Authorization: Bearer a.\xe4\xbd\xa0", b"POST /whep/sessions/1", 401, id="whep"),
        pytest.param(
            b"Authorization: Bearer a.\xe4\xbd\xa0", b"DELETE /whip/resources/x", 401, id="whip-delete"
        ),
        pytest.param(
            b"Cookie: lectern_session=a\xff\xfe", b"GET /api/me", 401, id="cookie-not-utf8-is-no-cookie"
        ),
        pytest.param(b"Cookie: lectern_session=\xe4\xbd\xa0", b"GET /api/me", 401, id="cookie-non-ascii"),
        pytest.param(
            b"Cookie: lectern_session=a\xff\xfe", b"GET /api/courses", 200, id="anonymous-page-of-data"
        ),
        pytest.param(b"X-CSRF-Token: \xff\xfe", b"POST /api/auth/logout", 401, id="csrf-header-not-utf8"),
        pytest.param(b"X-Request-Id: \xff\n", b"GET /api/courses", 200, id="request-id-not-utf8"),
    ],
)
async def test_undecodable_or_non_ascii_headers_are_refused_or_treated_as_absent(
    client: TestClient,  # type: ignore[type-arg]
    header: bytes,
    path: bytes,
    status: int,
) -> None:
    if header.startswith(b"X-Request-Id"):
        header = header.rstrip(b"\n")
    request = path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n"
    got, headers, body = await raw(client, request + header + b"\r\nConnection: close\r\n\r\nv=0")
    if status >= 400:
        assert_error(got, headers["content-type"], body, status)
    else:
        assert got == status, body[:300]


async def test_a_bad_cookie_beside_a_good_one_leaves_the_person_logged_in(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    who = await log_in(client, LEARNER)
    good = who["Cookie"].encode()
    status, _, body = await raw(
        client,
        b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: broken=\xff\xfe; "
        + good
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert status == 200, body
    assert json.loads(body)["person"]["phone"] == LEARNER


async def test_the_room_channel_refuses_a_non_ascii_token_with_401(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    r = await client.get("/ws/sessions/1", params={"token": "a.你好"})
    assert_error(r.status, r.content_type, await r.read(), 401)


async def test_names_and_titles_are_stored_without_bidi_or_control_characters(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    r = await client.post(
        "/api/auth/register",
        json={"phone": "13900000009", "password": "long-enough-1", "name": "\u202e吴\x00磊\u2066\n"},
    )
    assert r.status in (201, 202), await r.text()
    login = await client.post("/api/auth/login", json={"phone": "13900000009", "password": "long-enough-1"})
    assert (await login.json())["person"]["name"] == "吴磊"
    admin = await log_in(client, "13800000004")  # the base's provider admin
    created = await client.post(
        "/api/courses",
        headers=admin,
        json={
            "provider_id": 3,
            "title": "Zoe\u0301\u202e 课程\t一",
            "description": "第一行\r\n\u202e第二行\x1b",
            "category": "public",
            "credit_hours": 2,
            "delivery": "live",
            "specialty_tags": ["\u2067港口\u2069"],
        },
    )
    assert created.status == 201, await created.text()
    course = await created.json()
    assert course["title"] == "Zoé 课程 一"
    assert course["description"] == "第一行\n第二行"
    assert course["specialty_tags"] == ["港口"]


# --- the security headers ------------------------------------------------------------------------------


def assert_security_headers(headers: Any, csp: str) -> None:
    assert headers["Content-Security-Policy"] == csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Server"] == "lectern"
    assert "Strict-Transport-Security" not in headers  # plain HTTP from no trusted proxy


async def test_pages_api_answers_media_and_errors_carry_the_security_headers(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    page = await client.get("/courses")
    assert page.status == 200
    assert_security_headers(page.headers, PAGE_CSP)
    api = await client.get("/api/courses")
    assert api.status == 200
    assert_security_headers(api.headers, OTHER_CSP)
    await client.app[OBJECTS].put("hls/9/r1/index.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    media = await client.get("/hls/9/r1/index.m3u8")  # streamed by its handler, headers and all
    assert media.status in (200, 401, 403)  # who may fetch it is media authorization's business
    assert_security_headers(media.headers, OTHER_CSP)
    for path in ("/api/courses/424242", "/api/me", "/nope", "/api/courses?page=x"):
        error = await client.get(path)
        assert error.status >= 400
        assert_security_headers(error.headers, PAGE_CSP if path == "/nope" else OTHER_CSP)
    whip = await client.post("/whip/sessions/1", data=b"v=0", headers={"Content-Type": "application/sdp"})
    assert whip.status == 401
    assert_security_headers(whip.headers, OTHER_CSP)
    assert whip.headers["Access-Control-Allow-Origin"] == "*"  # WHIP/WHEP CORS stays


async def test_a_page_revalidated_by_the_browser_keeps_the_page_policy(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    # A 304 replaces the headers the browser stored with its cached page: a stricter policy there would
    # block the page's own scripts (seen in Chromium on a second visit to /me).
    first = await client.get("/me")
    again = await client.get("/me", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert_security_headers(again.headers, PAGE_CSP)


async def test_scripts_and_styles_are_served_with_types_nosniff_accepts(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    for path, kinds in (
        ("/static/js/ui.js", ("text/javascript", "application/javascript")),
        ("/static/style.css", ("text/css",)),
    ):
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type in kinds, (path, r.content_type)
        assert r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("trusted", "forwarded", "hsts"),
    [
        pytest.param(("127.0.0.1",), "https", True, id="trusted-proxy-says-https"),
        pytest.param(("127.0.0.1",), "http", False, id="trusted-proxy-says-http"),
        pytest.param(("10.0.0.0/8",), "https", False, id="untrusted-peer-says-https"),
        pytest.param((), "https", False, id="no-trusted-proxies"),
    ],
)
async def test_hsts_only_when_a_trusted_proxy_says_the_browser_came_over_tls(
    aiohttp_client: Any, embedded_settings: Settings, trusted: tuple[str, ...], forwarded: str, hsts: bool
) -> None:
    settings = replace(embedded_settings, trusted_proxies=trusted)
    await catalog.migrate_async(settings.effective_database_url)
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/healthz", headers={"X-Forwarded-Proto": forwarded})
    assert ("Strict-Transport-Security" in r.headers) is hsts
    if hsts:
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- what the server says and logs ---------------------------------------------------------------------


async def test_readyz_names_what_is_down_without_the_exception_text_which_goes_to_the_log(
    aiohttp_client: Any, embedded_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    settings = replace(embedded_settings, redis_url=f"redis://127.0.0.1:{port}/0")
    await catalog.migrate_async(settings.effective_database_url)
    client = await aiohttp_client(create_app(settings))
    with caplog.at_level(logging.WARNING, logger="streaming.health"):
        r = await client.get("/readyz")
    assert r.status == 503
    error = (await r.json())["error"]
    checks = error["details"]["checks"]
    assert checks["bus"] == "down"
    assert {"database", "objects"} <= set(checks)
    assert all(verdict == "ok" for name, verdict in checks.items() if name != "bus"), checks
    assert str(port) not in json.dumps(error)
    assert "Error" not in json.dumps(error)
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "streaming.health"]
    assert any("check=bus" in line and str(port) in line for line in logged), logged


async def test_the_request_log_escapes_what_the_client_wrote(
    client: TestClient,  # type: ignore[type-arg]
    caplog: pytest.LogCaptureFixture,
) -> None:
    forged = "2026-12-06 01:02:03,456 ERROR lectern: forged"
    with caplog.at_level(logging.INFO, logger="streaming.app"):
        r = await client.get(
            "/api/x%0A" + forged.replace(" ", "%20") + "%E2%80%AE",
            headers={"X-Request-Id": "abc\u202e".encode().decode("latin-1")},
        )
    assert r.status == 404
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "streaming.app"]
    request_line = next(line for line in lines if "/api/x" in line)
    assert "\n" not in request_line
    assert "\\n" + forged in request_line
    assert "\\u202e" in request_line
    assert "\u202e" not in request_line
    assert "abc" not in request_line.split()[0]  # an id with other characters is replaced by ours
    assert r.headers["X-Request-Id"] == request_line.split()[0].removeprefix("request=")
