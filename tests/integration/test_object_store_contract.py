"""The object-store contract (infra/objects.py): one suite run against LocalObjectStore and S3ObjectStore
(radosgw under `make test`), plus what only one of them promises (signed local URLs, S3 credentials)."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from infra.appkeys import OBJECTS, SETTINGS
from infra.errors import Conflict, Invalid
from infra.http import error_middleware
from infra.objects import ObjectInfo, ObjectNotFound, ObjectStore, StoreUnavailable
from infra.objects_local import LocalObjectStore, verify_presigned
from infra.objects_s3 import S3ObjectStore
from infra.settings import Settings
from streaming import objects_routes
from tests.helpers import free_port, wait_until
from tests.integration.conftest import AiohttpServer, S3Service, unique_bucket_name

MiB = 1024 * 1024
DATA = bytes(range(256)) * 4  # 1024 distinguishable bytes

pytestmark = pytest.mark.integration


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


# --- round trips ---------------------------------------------------------------------------------


async def test_put_then_get_returns_the_same_bytes(object_store: ObjectStore) -> None:
    await object_store.put("courses/1/notes.txt", b"hello lectern", "text/plain")

    assert await object_store.get("courses/1/notes.txt") == b"hello lectern"


async def test_put_returns_what_stat_reports(object_store: ObjectStore) -> None:
    before = datetime.now(UTC)
    info = await object_store.put("rec/seg-00001.ts", DATA, "video/mp2t")

    assert info == await object_store.stat("rec/seg-00001.ts")
    assert info.key == "rec/seg-00001.ts"
    assert info.size == len(DATA)
    assert info.etag == hashlib.md5(DATA).hexdigest()
    assert info.content_type == "video/mp2t"
    assert info.modified_at.tzinfo is not None
    # S3 reports whole seconds; allow for that and for the server's clock.
    assert before - timedelta(seconds=60) <= info.modified_at <= datetime.now(UTC) + timedelta(seconds=60)


async def test_an_empty_object_round_trips(object_store: ObjectStore) -> None:
    info = await object_store.put("empty", b"")

    assert info.size == 0
    assert info.content_type == "application/octet-stream"
    assert await object_store.get("empty") == b""


async def test_put_replaces_the_object_and_its_metadata(object_store: ObjectStore) -> None:
    await object_store.put("doc", b"first version, rather long", "text/plain")
    await object_store.put("doc", b'{"v": 2}', "application/json")

    assert await object_store.get("doc") == b'{"v": 2}'
    info = await object_store.stat("doc")
    assert (info.size, info.content_type, info.etag) == (
        8,
        "application/json",
        hashlib.md5(b'{"v": 2}').hexdigest(),
    )


async def test_keys_with_spaces_and_unicode_round_trip(object_store: ObjectStore) -> None:
    key = "courses/继续教育 2024/slides (final) #1+2.pdf"
    await object_store.put(key, b"%PDF", "application/pdf")

    assert await object_store.get(key) == b"%PDF"
    assert [i.key for i in await object_store.list("courses/")] == [key]


# --- ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 9, DATA[:10]),
        (100, 100, DATA[100:101]),
        (1000, None, DATA[1000:]),
        (None, 24, DATA[-24:]),
        (1000, 5000, DATA[1000:]),
        (None, 5000, DATA),
        (None, None, DATA),
    ],
    ids=[
        "first-ten-bytes",
        "one-byte",
        "open-ended-start",
        "suffix",
        "end-past-the-object-is-clamped",
        "suffix-longer-than-the-object-is-all-of-it",
        "no-range",
    ],
)
async def test_get_returns_the_requested_byte_range(
    object_store: ObjectStore, start: int | None, end: int | None, expected: bytes
) -> None:
    await object_store.put("ranged", DATA)

    assert await object_store.get("ranged", start, end) == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [(1024, None), (2000, 3000), (10, 5), (-1, 5), (None, 0)],
    ids=["start-at-the-end", "start-past-the-end", "end-before-start", "negative-start", "empty-suffix"],
)
async def test_unsatisfiable_ranges_are_invalid(
    object_store: ObjectStore, start: int | None, end: int | None
) -> None:
    await object_store.put("ranged", DATA)

    with pytest.raises(Invalid):
        await object_store.get("ranged", start, end)


# --- missing keys, listing, deleting ---------------------------------------------------------


async def test_stat_and_get_of_a_missing_key_raise_object_not_found(object_store: ObjectStore) -> None:
    await object_store.put("present", b"x")

    with pytest.raises(ObjectNotFound):
        await object_store.stat("absent")
    with pytest.raises(ObjectNotFound):
        await object_store.get("absent")
    with pytest.raises(ObjectNotFound):
        await object_store.get("absent", 0, 10)
    with pytest.raises(ObjectNotFound):
        await object_store.stat("present/below")


async def test_list_returns_the_objects_under_a_prefix_sorted_by_key(object_store: ObjectStore) -> None:
    for key in ["rec/2/x", "rec/10/c", "other/y", "rec/1/b", "rec/1/a", "rec1"]:
        await object_store.put(key, key.encode(), "text/plain")

    assert [i.key for i in await object_store.list("rec/1/")] == ["rec/1/a", "rec/1/b"]
    assert [i.key for i in await object_store.list("rec/1")] == ["rec/1/a", "rec/1/b", "rec/10/c"]
    assert [i.key for i in await object_store.list("rec")] == [
        "rec/1/a",
        "rec/1/b",
        "rec/10/c",
        "rec/2/x",
        "rec1",
    ]
    everything = await object_store.list()
    assert [i.key for i in everything] == ["other/y", "rec/1/a", "rec/1/b", "rec/10/c", "rec/2/x", "rec1"]
    assert await object_store.list("nothing/") == []
    assert await object_store.list("../") == []
    assert await object_store.list("/") == []


async def test_list_describes_objects_as_stat_does(object_store: ObjectStore) -> None:
    await object_store.put("a/one.json", b"{}", "application/json")
    await object_store.put("a/two.bin", DATA)

    listed = await object_store.list("a/")

    assert listed == [await object_store.stat("a/one.json"), await object_store.stat("a/two.bin")]
    assert all(isinstance(i, ObjectInfo) for i in listed)


async def test_deleted_objects_are_gone_and_deleting_again_is_fine(object_store: ObjectStore) -> None:
    await object_store.put("a/b", b"1")
    await object_store.put("a/c", b"2")

    await object_store.delete("a/b")

    with pytest.raises(ObjectNotFound):
        await object_store.stat("a/b")
    assert [i.key for i in await object_store.list("a/")] == ["a/c"]
    await object_store.delete("a/b")
    await object_store.delete("never/existed")
    assert await object_store.get("a/c") == b"2"


async def test_a_key_can_be_reused_as_a_prefix_once_its_children_are_deleted(
    object_store: ObjectStore,
) -> None:
    await object_store.put("lecture/part", b"child")
    await object_store.delete("lecture/part")

    await object_store.put("lecture", b"now an object itself")

    assert await object_store.get("lecture") == b"now an object itself"
    assert [i.key for i in await object_store.list()] == ["lecture"]


# --- multipart ------------------------------------------------------------------------------------


async def test_put_file_of_twelve_mib_in_five_mib_parts_round_trips(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    payload = os.urandom(12 * MiB)
    source = tmp_path / "lecture.mp4"
    source.write_bytes(payload)

    info = await object_store.put_file("rec/lecture.mp4", source, "video/mp4", part_size=5 * MiB)

    assert info.size == len(payload)
    assert info.content_type == "video/mp4"
    assert await object_store.get("rec/lecture.mp4") == payload
    assert (
        await object_store.get("rec/lecture.mp4", 5 * MiB - 2, 5 * MiB + 1)
        == payload[5 * MiB - 2 : 5 * MiB + 2]
    )
    if isinstance(object_store, S3ObjectStore):
        assert info.etag.endswith("-3"), info.etag  # three parts: 5 + 5 + 2 MiB
    else:
        assert info.etag == hashlib.md5(payload).hexdigest()


async def test_put_file_of_a_missing_file_fails_and_stores_nothing(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        await object_store.put_file("k", tmp_path / "missing.bin")

    with pytest.raises(ObjectNotFound):
        await object_store.stat("k")


# --- presigned URLs -----------------------------------------------------------------------------


async def test_a_presigned_url_serves_the_object_to_anyone(object_store: ObjectStore) -> None:
    await object_store.put("rec/index.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")

    status, body, headers = await fetch(await object_store.presigned_get("rec/index.m3u8", expires_s=300))

    assert (status, body) == (200, b"#EXTM3U\n")
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"


async def test_a_presigned_url_honours_range_requests(object_store: ObjectStore) -> None:
    await object_store.put("seg.ts", DATA, "video/mp2t")
    url = await object_store.presigned_get("seg.ts", expires_s=300)

    status, body, headers = await fetch(url, {"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, DATA[10:20], "bytes 10-19/1024")

    status, body, headers = await fetch(url, {"Range": "bytes=-4"})
    assert (status, body, headers["Content-Range"]) == (206, DATA[-4:], "bytes 1020-1023/1024")

    status, body, headers = await fetch(url, {"Range": "bytes=1000-"})
    assert (status, body) == (206, DATA[1000:])

    status, _, headers = await fetch(url, {"Range": "bytes=5000-"})
    assert status == 416


async def test_a_presigned_url_of_a_missing_object_is_not_found(object_store: ObjectStore) -> None:
    await object_store.put("present", b"x")

    status, _, _ = await fetch(await object_store.presigned_get("absent", expires_s=300))

    assert status == 404


async def test_a_tampered_presigned_url_is_refused(object_store: ObjectStore) -> None:
    await object_store.put("docs/secret-a.txt", b"A")
    await object_store.put("docs/secret-b.txt", b"B")
    url = await object_store.presigned_get("docs/secret-a.txt", expires_s=300)
    assert (await fetch(url))[:2] == (200, b"A")

    other_key = url.replace("secret-a.txt", "secret-b.txt")
    assert other_key != url
    status, body, _ = await fetch(other_key)
    assert status == 403
    assert b"B" not in body

    signature_at = url.lower().rindex("signature=") + len("signature=")
    flipped = "0" if url[signature_at] != "0" else "1"
    forged = url[:signature_at] + flipped + url[signature_at + 1 :]
    assert (await fetch(forged))[0] == 403

    unsigned = url.split("?", 1)[0]
    assert (await fetch(unsigned))[0] == 403


async def test_a_presigned_url_stops_working_when_it_expires(object_store: ObjectStore) -> None:
    await object_store.put("short-lived", b"now you see me")
    url = await object_store.presigned_get("short-lived", expires_s=2)
    assert (await fetch(url))[:2] == (200, b"now you see me")

    async def refused() -> bool:
        return (await fetch(url))[0] == 403

    await wait_until(refused, timeout_s=15, interval_s=0.25, message="the presigned URL to expire")


# --- keys -----------------------------------------------------------------------------------------

BAD_KEYS = ["", "/abs", "a//b", "trailing/", "a/../b", "..", "./a", "nul\x00byte", "x" * 1025]
BAD_KEY_IDS = [
    "empty",
    "leading-slash",
    "empty-segment",
    "trailing-slash",
    "dot-dot",
    "only-dot-dot",
    "dot-segment",
    "nul",
    "too-long",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=BAD_KEY_IDS)
async def test_malformed_keys_are_rejected_by_every_operation(
    object_store: ObjectStore, key: str, tmp_path: Path
) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")

    with pytest.raises(Invalid):
        await object_store.put(key, b"x")
    with pytest.raises(Invalid):
        await object_store.put_file(key, source)
    with pytest.raises(Invalid):
        await object_store.get(key)
    with pytest.raises(Invalid):
        await object_store.stat(key)
    with pytest.raises(Invalid):
        await object_store.delete(key)
    with pytest.raises(Invalid):
        await object_store.presigned_get(key)
    assert await object_store.list() == []


async def test_a_healthy_store_passes_its_check(object_store: ObjectStore) -> None:
    await object_store.check()


# --- local store only ---------------------------------------------------------------------------


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_local_store_writes_only_under_its_root(
    local_object_store: LocalObjectStore, tmp_path: Path
) -> None:
    await local_object_store.put("a/b.txt", b"x")

    written = files_under(tmp_path)
    assert "var/objects/a/b.txt" in written
    assert all(p.startswith("var/objects/") for p in written)


async def test_local_store_reserves_its_bookkeeping_folder(local_object_store: LocalObjectStore) -> None:
    with pytest.raises(Invalid):
        await local_object_store.put(".lectern/meta/x", b"x")


async def test_local_store_refuses_an_object_under_another_object(
    local_object_store: LocalObjectStore,
) -> None:
    # S3 allows `a` and `a/b` side by side; a folder cannot: the local store says so rather than fail oddly.
    await local_object_store.put("a", b"file")

    with pytest.raises(Conflict):
        await local_object_store.put("a/b", b"x")
    await local_object_store.put("c/d", b"x")
    with pytest.raises(Conflict):
        await local_object_store.put("c", b"x")
    assert await local_object_store.get("a") == b"file"


async def test_local_presigned_url_answers_head_with_headers_only(
    local_object_store: LocalObjectStore,
) -> None:
    await local_object_store.put("k", DATA, "video/mp2t")
    url = await local_object_store.presigned_get("k", expires_s=300)

    async with aiohttp.ClientSession() as http, http.head(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "1024"
        assert resp.headers["ETag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
        assert await resp.read() == b""


async def test_local_presigned_url_refusal_uses_the_json_error_shape(
    local_object_store: LocalObjectStore,
) -> None:
    await local_object_store.put("k", b"x")
    url = await local_object_store.presigned_get("k", expires_s=300)

    async with aiohttp.ClientSession() as http, http.get(url.replace("signature=", "signature=0")) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("signing_key", "key", "expires_delta", "now_delta", "valid"),
    [
        ("k3y", "a/b", 0, -50.0, True),
        ("k3y", "a/b", 0, 0.0, True),
        ("k3y", "a/b", 0, 0.001, False),
        ("k3y", "a/c", 0, -50.0, False),
        ("k3y", "a/b", 1, -50.0, False),
        ("other-k3y", "a/b", 0, -50.0, False),
    ],
    ids=["before-expiry", "at-expiry", "after-expiry", "other-key", "other-expiry", "other-signing-key"],
)
async def test_verify_presigned_checks_signing_key_object_key_and_expiry(
    tmp_path: Path, signing_key: str, key: str, expires_delta: int, now_delta: float, valid: bool
) -> None:
    store = LocalObjectStore(tmp_path, signing_key="k3y", base_url="http://127.0.0.1:1")
    url = URL(await store.presigned_get("a/b", expires_s=100))
    expires, signature = int(url.query["expires"]), url.query["signature"]

    assert url.path == "/objects/a/b"
    assert (
        verify_presigned(signing_key, key, expires + expires_delta, signature, expires + now_delta) is valid
    )


async def test_objects_route_is_not_found_when_the_store_is_s3(
    embedded_settings: Settings, aiohttp_server: AiohttpServer
) -> None:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = embedded_settings
    app[OBJECTS] = S3ObjectStore(f"127.0.0.1:{free_port()}", "a", "b", "bucket")
    objects_routes.add_routes(app)
    server = await aiohttp_server(app)

    status, body, _ = await fetch(str(server.make_url("/objects/k?expires=99999999999&signature=00")))

    assert status == 404
    assert b"not_found" in body


# --- S3 only --------------------------------------------------------------------------------------


async def test_s3_with_a_wrong_secret_key_is_refused(
    s3_service: S3Service, s3_object_store: S3ObjectStore
) -> None:
    await s3_object_store.put("existing", b"real")
    impostor = S3ObjectStore(
        s3_service.endpoint, s3_service.access_key, "not-the-secret", s3_object_store.bucket
    )
    try:
        with pytest.raises(StoreUnavailable):
            await impostor.put("planted", b"x")
        with pytest.raises(StoreUnavailable):
            await impostor.get("existing")
        with pytest.raises(StoreUnavailable):
            await impostor.check()
    finally:
        await impostor.close()

    with pytest.raises(ObjectNotFound):
        await s3_object_store.stat("planted")


async def test_s3_creates_its_bucket_on_first_use(
    s3_service: S3Service, s3_object_store: S3ObjectStore
) -> None:
    admin = s3_service.admin_client()
    assert not admin.bucket_exists(s3_object_store.bucket)

    await s3_object_store.put("first", b"1")

    assert admin.bucket_exists(s3_object_store.bucket)


async def test_s3_check_fails_quickly_when_nobody_listens() -> None:
    store = S3ObjectStore(f"127.0.0.1:{free_port()}", "access", "secret", unique_bucket_name())
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable):
            await store.check()
        with pytest.raises(StoreUnavailable):
            await store.stat("anything")
    finally:
        await store.close()

    assert time.monotonic() - started < 3.0
