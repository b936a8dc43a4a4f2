"""`/hls/{key}` serves recordings from the object store to holders of the session's media grant (the
`lectern_media` cookie): HLS content types, caching, Range, 404 and no way out of the hls/ prefix; everyone
else gets 401 or 403, and `/hls-auth` (nginx's auth_request) answers the same; the replay page's hls.js is
served from node_modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from infra import media_access
from infra.appkeys import OBJECTS, SETTINGS
from infra.errors import Forbidden, Invalid
from infra.http import error_middleware
from infra.objects_local import LocalObjectStore
from infra.settings import Settings
from streaming import admission, hls_routes, pages
from tests.helpers import wait_until
from tests.server import TEST_SECRET_KEY, running_server

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[..., Awaitable[Client]]
SEGMENT = bytes(range(256)) * 40  # 10 240 bytes
PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-ENDLIST\n"


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, embedded_settings: Settings) -> AsyncIterator[Client]:
    store = LocalObjectStore(embedded_settings.objects_dir, signing_key="k", base_url="http://127.0.0.1")
    await store.put("hls/7/r1/camera/index.m3u8", PLAYLIST, "application/octet-stream")
    await store.put("hls/7/r1/camera/seg_000001.m4s", SEGMENT)
    await store.put("hls/7/r1/camera/init.mp4", b"\x00\x00\x00\x18ftypiso6")
    await store.put("hls/7/r1/camera.mp4", SEGMENT, "video/mp4")
    await store.put("private/secret.txt", b"not under hls/")
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = embedded_settings
    app[OBJECTS] = store
    hls_routes.add_routes(app)
    pages.add_routes(app)
    test_client = await aiohttp_client(app)
    test_client.session.cookie_jar.update_cookies(
        {media_access.COOKIE: grant(embedded_settings, session_id=7)}
    )
    yield test_client
    await store.close()


def grant(settings: Settings, session_id: int, person_id: int = 1, age_s: float = 0.0) -> str:
    return media_access.issue(settings.secret_key, person_id, session_id, "learner", time.time() - age_s)


MEDIA_KINDS = [
    pytest.param("7/r1/camera/index.m3u8", id="playlist"),
    pytest.param("7/r1/camera/seg_000001.m4s", id="segment"),
    pytest.param("7/r1/camera/init.mp4", id="init"),
    pytest.param("7/r1/camera.mp4", id="download"),
]


@pytest.mark.parametrize("path", MEDIA_KINDS)
async def test_media_without_a_grant_for_its_session_is_refused(
    client: Client, embedded_settings: Settings, path: str
) -> None:
    url = client.make_url(f"/hls/{path}")
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthenticated"
    refusals = {
        "other session": (grant(embedded_settings, session_id=8), 403),
        "expired": (grant(embedded_settings, session_id=7, age_s=media_access.TTL_S + 1), 401),
        "forged": (media_access.issue("another key", 1, 7, "learner", time.time()), 401),
        "a session token": ("x" * 40, 401),
    }
    for name, (cookie, status) in refusals.items():
        async with (
            aiohttp.ClientSession(cookies={media_access.COOKIE: cookie}) as other,
            other.get(url) as resp,
        ):
            assert resp.status == status, name
            assert SEGMENT not in await resp.read()


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        pytest.param("/hls/7/r1/camera/seg_000001.m4s", 200, id="granted"),
        pytest.param("/hls/7/r1/camera/seg_000001.m4s?list-type=2", 200, id="query-ignored"),
        pytest.param("/hls/8/r1/camera/seg_000001.m4s", 403, id="other-session"),
        pytest.param("/hls/%37/r1/camera/seg_000001.m4s", 403, id="escaped-session"),
        pytest.param("/hls/7/r1/x%0d%0aX-Evil:%201.m4s", 403, id="crlf"),
        pytest.param("/hls/7/r1/%3Flist-type=2", 403, id="escaped-query"),
        pytest.param("/hls/7/../8/r1/index.m3u8", 403, id="dot-dot"),
        pytest.param("/hls/7//r1/index.m3u8", 403, id="double-slash"),
        pytest.param("/objects/hls/7/r1/camera.mp4", 403, id="not-media"),
        pytest.param("", 403, id="none"),
    ],
)
async def test_the_auth_request_check_accepts_only_canonical_media_paths_of_the_granted_session(
    client: Client, uri: str, status: int
) -> None:
    resp = await client.get("/hls-auth", headers={"X-Original-URI": uri})
    assert resp.status == status, await resp.text()
    if status == 200:
        assert resp.headers["X-Lectern-Person"] == "1"
        assert await resp.read() == b""


@pytest.mark.parametrize(
    ("path", "content_type", "cache"),
    [
        pytest.param("7/r1/camera/index.m3u8", "application/vnd.apple.mpegurl", "no-cache", id="playlist"),
        pytest.param("7/r1/camera/seg_000001.m4s", "video/iso.segment", hls_routes.IMMUTABLE, id="segment"),
        pytest.param("7/r1/camera/init.mp4", "video/mp4", hls_routes.IMMUTABLE, id="init"),
        pytest.param("7/r1/camera.mp4", "video/mp4", hls_routes.IMMUTABLE, id="download"),
    ],
)
async def test_objects_are_served_with_their_hls_content_type_and_caching(
    client: Client, path: str, content_type: str, cache: str
) -> None:
    resp = await client.get(f"/hls/{path}")
    assert resp.status == 200
    assert resp.content_type == content_type
    assert resp.headers["Cache-Control"] == cache
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert int(resp.headers["Content-Length"]) == len(await resp.read())


async def test_a_range_request_gets_206_with_exactly_those_bytes(client: Client) -> None:
    resp = await client.get("/hls/7/r1/camera/seg_000001.m4s", headers={"Range": "bytes=100-1099"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-1099/{len(SEGMENT)}"
    assert await resp.read() == SEGMENT[100:1100]
    suffix = await client.get("/hls/7/r1/camera.mp4", headers={"Range": "bytes=-10"})
    assert suffix.status == 206
    assert await suffix.read() == SEGMENT[-10:]


async def test_a_range_past_the_end_is_416_with_the_size(client: Client) -> None:
    resp = await client.get("/hls/7/r1/camera.mp4", headers={"Range": f"bytes={len(SEGMENT)}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(SEGMENT)}"
    assert (await resp.json())["error"]["code"] == "range_not_satisfiable"


async def test_a_large_object_is_streamed_in_chunks_intact(client: Client) -> None:
    store = client.app[OBJECTS]
    big = bytes(range(251)) * 12_000  # ~3 MB: several chunks
    await store.put("hls/7/r1/screen.mp4", big, "video/mp4")
    assert await (await client.get("/hls/7/r1/screen.mp4")).read() == big


async def test_etag_revalidation_answers_304(client: Client) -> None:
    first = await client.get("/hls/7/r1/camera/index.m3u8")
    again = await client.get("/hls/7/r1/camera/index.m3u8", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304


async def test_head_answers_the_headers_only(client: Client) -> None:
    resp = await client.head("/hls/7/r1/camera.mp4")
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(SEGMENT)


async def test_a_missing_object_is_404_in_the_json_error_shape(client: Client) -> None:
    resp = await client.get("/hls/7/r1/camera/seg_000099.m4s")
    assert resp.status == 404
    assert (await resp.json())["error"] == {
        "code": "not_found",
        "message": "no object 'hls/7/r1/camera/seg_000099.m4s'",
        "field": "key",
        "details": None,
    }


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/hls/7/%2E%2E/%2E%2E/private/secret.txt", id="encoded-dot-dot"),
        pytest.param("/hls/..%2Fprivate%2Fsecret.txt", id="encoded-slash"),
        pytest.param("/hls/../private/secret.txt", id="raw-dot-dot"),
        pytest.param("/hls/7/../../private/secret.txt", id="raw-dot-dot-deeper"),
        pytest.param("/hls/%2E%2E%2Fprivate%2Fsecret.txt", id="all-encoded"),
    ],
)
async def test_paths_that_could_leave_the_hls_prefix_are_refused(client: Client, path: str) -> None:
    # Sent as written: the client must not normalise the dots away before the server sees them.
    resp = await client.session.get(client.make_url("").join(URL(path, encoded=True)))
    assert resp.status in (400, 404), await resp.text()
    assert b"not under hls/" not in await resp.read()
    assert (await resp.json())["error"]["code"] in ("invalid", "not_found")


@pytest.mark.parametrize("key", ["7/../x.m3u8", "..", "7/./r1/x.m3u8", "7//x.m3u8", "x\x00.m3u8"])
def test_keys_with_dot_segments_empty_segments_or_nul_are_invalid(key: str) -> None:
    with pytest.raises(Invalid) as caught:
        hls_routes.object_key(key)
    assert caught.value.field == "key"


async def test_hls_js_is_served_for_the_replay_page(client: Client) -> None:
    if not pages.HLS_JS.is_file():
        pytest.fail(f"{pages.HLS_JS} missing: run npm install")
    resp = await client.get("/static/vendor/hls.min.js")
    assert resp.status == 200
    assert resp.content_type in ("application/javascript", "text/javascript")
    assert b"Hls" in (await resp.read())[:100_000]
    assert (await client.get("/replays/rec-1")).status == 200


async def test_a_client_that_leaves_during_a_range_response_is_not_a_server_error(tmp_path: Path) -> None:
    """A player seeking away drops its Range request mid-body: the server (a real `lectern serve`, whose
    handlers are not cancelled when a client leaves) logs the client leaving and the status it sent,
    206, not a 500 with an ERROR traceback, and does not count it as a server error."""
    data_dir = tmp_path / "var"
    store = LocalObjectStore(data_dir / "objects", signing_key="k", base_url="http://127.0.0.1")
    await store.put("hls/7/r1/camera.mp4", bytes(range(256)) * (32 * 1024), "video/mp4")  # 8 MiB
    with running_server(data_dir) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        cookie = media_access.issue(TEST_SECRET_KEY, 1, 7, "learner", time.time())
        writer.write(
            b"GET /hls/7/r1/camera.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-\r\n"
            + f"Cookie: {media_access.COOKIE}={cookie}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 206"), head
        await reader.readexactly(64 * 1024)
        writer.transport.abort()  # gone, mid-body
        await wait_until(lambda: "camera.mp4 status=" in server.log_text(), message="the request logged")
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
            metrics = await resp.text()
        log = server.log_text()
    assert "GET /hls/7/r1/camera.mp4: client went away after" in log, log
    assert "GET /hls/7/r1/camera.mp4 status=206" in log, log
    assert " ERROR " not in log, log
    assert 'route="/hls/{key}",status="206"' in metrics, metrics
    assert 'status="500"' not in metrics, metrics


async def test_a_grant_the_catalog_no_longer_stands_behind_is_refused_at_once(
    aiohttp_client: AiohttpClient, embedded_settings: Settings
) -> None:
    """The route asks the HLS_ADMISSION hook (the catalog, in the real app) for every request: a grant it
    voids (a learner who withdrew) is refused though its signature and expiry are good."""
    store = LocalObjectStore(embedded_settings.objects_dir, signing_key="k", base_url="http://127.0.0.1")
    await store.put("hls/7/r1/camera/seg_000001.m4s", SEGMENT)
    asked: list[admission.Admission] = []

    async def catalog_says(used: admission.Admission) -> None:
        asked.append(used)
        if used.person_id == 2:
            raise Forbidden("this media grant no longer admits you")

    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = embedded_settings
    app[OBJECTS] = store
    app[admission.HLS_ADMISSION] = catalog_says
    hls_routes.add_routes(app)
    client = await aiohttp_client(app)
    path = "/hls/7/r1/camera/seg_000001.m4s"
    try:
        for person_id, status in ((1, 200), (2, 403)):
            cookies = {media_access.COOKIE: grant(embedded_settings, session_id=7, person_id=person_id)}
            async with aiohttp.ClientSession(cookies=cookies) as http:
                async with http.get(client.make_url(path)) as resp:
                    assert resp.status == status
                async with http.get(client.make_url("/hls-auth"), headers={"X-Original-URI": path}) as resp:
                    assert resp.status == status
        assert [(a.purpose, a.session_id, a.person_id, a.role) for a in asked] == [
            ("hls", 7, 1, "learner"),
            ("hls", 7, 1, "learner"),
            ("hls", 7, 2, "learner"),
            ("hls", 7, 2, "learner"),
        ]
        assert all(abs(a.issued_at - time.time()) < 60 for a in asked)  # the grant says when it was issued
    finally:
        await store.close()
