"""Resumable courseware uploads through the app's protocol against the real S3 server (radosgw): start,
part URLs, parts PUT by the client straight to S3, a part cut halfway and resumed from the store's list,
completion checked against ListParts, the stored object's checksum; bad input answered 4xx in the one
JSON error shape, and nothing lost."""

from __future__ import annotations

import asyncio
import hashlib
import io
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from catalog import DATABASE
from catalog.domain import Role
from catalog.models import CoursewareUpload
from infra.appkeys import OBJECTS
from infra.objects_s3 import S3ObjectStore
from infra.settings import Settings, replace_settings
from tests.integration.catalog.conftest import AiohttpClient, World, make_app

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]
MiB = 1024 * 1024
SIZE = 2 * 16 * MiB + 1000  # three parts of 16 MiB, 16 MiB and 1000 bytes
LIMIT = 64 * MiB


def data_of(size: int) -> bytes:
    block = hashlib.sha256(b"lectern").digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


DATA = data_of(SIZE)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings, s3_object_store: S3ObjectStore) -> Client:
    """The catalog with the S3 object store (parts go to radosgw) and a small upload limit."""
    app = make_app(replace_settings(settings, courseware_max_bytes=LIMIT))
    app[OBJECTS] = s3_object_store
    return await aiohttp_client(app)


async def put_part(url: str, data: bytes) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.put(url, data=io.BytesIO(data), headers={"Content-Length": str(len(data))}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return resp.headers["ETag"].strip('"')


async def cut_put(url: str, length: int, sent: bytes) -> None:
    """A PUT announcing `length` bytes that sends only `sent`, then the connection drops."""
    target = URL(url)
    _, writer = await asyncio.open_connection(target.host, target.port)
    head = (
        f"PUT {target.raw_path_qs} HTTP/1.1\r\nHost: {target.raw_host}:{target.port}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def call(
    client: Client, w: World, who: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await client.request(method, path, json=body, headers=w.actors[who].headers)
    return resp.status, await resp.json()


async def start(client: Client, w: World, who: str = "expert", **override: Any) -> tuple[int, Any]:
    body = {"file_name": "BIM讲座.mp4", "size_bytes": SIZE, "content_type": "video/mp4", **override}
    return await call(client, w, who, "POST", "/api/courseware/uploads", body)


async def urls(client: Client, w: World, upload_id: int, numbers: list[int]) -> dict[int, str]:
    status, body = await call(
        client, w, "expert", "POST", f"/api/courseware/uploads/{upload_id}/parts", {"numbers": numbers}
    )
    assert status == 200, body
    return {p["number"]: p["url"] for p in body["parts"]}


def part(number: int, part_size: int = 16 * MiB) -> bytes:
    return DATA[(number - 1) * part_size : number * part_size]


async def test_an_upload_cut_halfway_resumes_from_the_stored_parts_and_completes(
    client: Client, world: World, s3_object_store: S3ObjectStore
) -> None:
    status, started = await start(client, world)
    assert status == 201, started
    assert (started["part_size"], started["part_count"], started["state"]) == (16 * MiB, 3, "open")
    upload_id = started["id"]
    first = await urls(client, world, upload_id, [1, 2, 3])
    assert all(URL(u).host == URL(f"http://{s3_object_store._endpoint}").host for u in first.values())

    etag1 = await put_part(first[1], part(1))
    await cut_put(first[2], 16 * MiB, part(2)[: 8 * MiB])  # the connection drops halfway through part 2

    # A reload: the browser asks what the store holds and sends only the rest.
    status, resumed = await call(client, world, "expert", "GET", f"/api/courseware/uploads/{upload_id}")
    assert status == 200
    assert resumed["parts"] == [{"number": 1, "etag": etag1, "size": 16 * MiB}]
    assert resumed["stored_bytes"] == 16 * MiB
    again = await urls(client, world, upload_id, [2, 3])
    etag2, etag3 = await asyncio.gather(put_part(again[2], part(2)), put_part(again[3], part(3)))

    body = {
        "parts": [
            {"number": 1, "etag": etag1},
            {"number": 2, "etag": etag2},
            {"number": 3, "etag": f'"{etag3}"'},
        ]
    }
    status, done = await call(
        client, world, "expert", "POST", f"/api/courseware/uploads/{upload_id}/complete", body
    )
    assert status == 200, done
    assert done["state"] == "completed"

    key = await object_key(client, upload_id)
    stored = await s3_object_store.get(key)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(DATA).hexdigest()
    info = await s3_object_store.stat(key)
    assert (info.size, info.content_type) == (SIZE, "video/mp4")


async def object_key(client: Client, upload_id: int) -> str:
    async with client.app[DATABASE].sessions.begin() as s:
        row = await s.get(CoursewareUpload, upload_id)
        assert row is not None
        return row.object_key


@pytest.mark.parametrize(
    ("override", "field"),
    [
        pytest.param({"size_bytes": LIMIT + 1}, "size_bytes", id="too-large"),
        pytest.param({"size_bytes": 0}, "size_bytes", id="empty"),
        pytest.param({"content_type": "text/plain"}, "content_type", id="not-video-or-pdf"),
        pytest.param({"content_type": "video/../x"}, "content_type", id="odd-type"),
        pytest.param({"file_name": ""}, "file_name", id="no-name"),
        pytest.param({"extra": 1}, "extra", id="unknown-field"),
    ],
)
async def test_a_bad_start_is_refused_with_a_4xx_json_error(
    client: Client, world: World, override: dict[str, Any], field: str
) -> None:
    status, body = await start(client, world, **override)

    assert status == 400
    assert body["error"]["field"] == field


async def test_only_experts_upload(client: Client, world: World) -> None:
    status, body = await start(client, world, "learner")

    assert status == 403
    assert body["error"]["code"] == "forbidden"


async def test_someone_elses_or_an_unknown_upload_is_not_found(client: Client, world: World) -> None:
    await world.person("expert2", [(Role.EXPERT, None)])
    _, started = await start(client, world)
    path = f"/api/courseware/uploads/{started['id']}"

    for method, suffix, body in [
        ("GET", "", None),
        ("POST", "/parts", {"numbers": [1]}),
        ("POST", "/complete", {"parts": [{"number": 1, "etag": "x"}]}),
        ("DELETE", "", None),
    ]:
        status, answer = await call(client, world, "expert2", method, path + suffix, body)
        assert (status, answer["error"]["field"]) == (404, "upload_id"), (method, suffix)
    status, answer = await call(client, world, "expert", "GET", "/api/courseware/uploads/999999")
    assert status == 404
    # The owner's upload is untouched.
    status, mine = await call(client, world, "expert", "GET", path)
    assert (status, mine["state"]) == (200, "open")


async def test_completing_with_wrong_etags_or_missing_parts_is_refused_and_loses_nothing(
    client: Client, world: World
) -> None:
    _, started = await start(client, world, size_bytes=16 * MiB + 10)
    upload_id = started["id"]
    got = await urls(client, world, upload_id, [1, 2])
    etag1 = await put_part(got[1], DATA[: 16 * MiB])
    etag2 = await put_part(got[2], DATA[16 * MiB : 16 * MiB + 10])
    path = f"/api/courseware/uploads/{upload_id}/complete"

    status, body = await call(
        client, world, "expert", "POST", path, {"parts": [{"number": 1, "etag": etag1}]}
    )
    assert (status, body["error"]["field"], body["error"]["details"]["missing"]) == (400, "parts", [2])
    wrong = {"parts": [{"number": 1, "etag": etag1}, {"number": 2, "etag": "0" * 32}]}
    status, body = await call(client, world, "expert", "POST", path, wrong)
    assert (status, body["error"]["details"]["parts"]) == (400, [2])
    status, body = await call(client, world, "expert", "POST", path, {"parts": "all"})
    assert status == 400

    right = {"parts": [{"number": 1, "etag": etag1}, {"number": 2, "etag": etag2}]}
    status, body = await call(client, world, "expert", "POST", path, right)
    assert (status, body["state"]) == (200, "completed")
    # Completed: no more part URLs, no second completion, no abort.
    status, body = await call(
        client, world, "expert", "POST", f"/api/courseware/uploads/{upload_id}/parts", {"numbers": [1]}
    )
    assert status == 409
    status, body = await call(client, world, "expert", "POST", path, right)
    assert status == 409
    status, body = await call(client, world, "expert", "DELETE", f"/api/courseware/uploads/{upload_id}")
    assert status == 409


async def test_a_part_the_file_does_not_have_gets_no_url(client: Client, world: World) -> None:
    _, started = await start(client, world)

    status, body = await call(
        client, world, "expert", "POST", f"/api/courseware/uploads/{started['id']}/parts", {"numbers": [4]}
    )
    assert (status, body["error"]["field"]) == (400, "numbers")


async def test_an_aborted_upload_takes_no_parts_and_cannot_complete(
    client: Client, world: World, s3_object_store: S3ObjectStore
) -> None:
    _, started = await start(client, world)
    upload_id = started["id"]
    got = await urls(client, world, upload_id, [1])
    etag = await put_part(got[1], part(1))

    status, body = await call(client, world, "expert", "DELETE", f"/api/courseware/uploads/{upload_id}")
    assert (status, body["state"]) == (200, "aborted")

    status, body = await call(
        client,
        world,
        "expert",
        "POST",
        f"/api/courseware/uploads/{upload_id}/complete",
        {"parts": [{"number": 1, "etag": etag}]},
    )
    assert status == 409
    async with aiohttp.ClientSession() as http, http.put(got[1], data=b"late") as resp:
        assert resp.status == 404  # S3: NoSuchUpload
    assert await s3_object_store.list("courseware/") == []
