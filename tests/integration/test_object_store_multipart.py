"""Multipart uploads from browsers (infra/multipart.py): one suite against the embedded store (parts PUT to
the app's signed /objects URLs) and S3 (radosgw: presigned part URLs), so both behave alike."""

from __future__ import annotations

import asyncio
import hashlib
import io
from typing import cast

import aiohttp
import pytest
from yarl import URL

from infra.errors import Invalid
from infra.multipart import MIN_PART_BYTES, MultipartStore, StoredPart, UploadNotFound
from infra.objects import ObjectNotFound, ObjectStore
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

FIRST = bytes(range(256)) * (MIN_PART_BYTES // 256)  # exactly the smallest part but the last
LAST = b"the last part may be small"


def multipart(store: ObjectStore) -> MultipartStore:
    assert isinstance(store, MultipartStore)
    return cast(MultipartStore, store)


async def put(url: str, data: bytes) -> tuple[int, str]:
    body = io.BytesIO(data)
    async with (
        aiohttp.ClientSession() as http,
        http.put(url, data=body, headers={"Content-Length": str(len(data))}) as resp,
    ):
        await resp.read()
        return resp.status, resp.headers.get("ETag", "").strip('"')


async def cut_put(url: str, length: int, sent: bytes) -> None:
    """Send the head of a PUT announcing `length` bytes and only `sent` of them, then drop the connection
    (what a browser does when its network goes away mid-part)."""
    target = URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    head = (
        f"PUT {target.raw_path_qs} HTTP/1.1\r\nHost: {target.raw_host}:{target.port}\r\n"
        f"Content-Length: {length}\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    writer.write(head.encode() + sent)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    del reader


async def test_parts_put_to_their_urls_join_into_the_object(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("courseware/1/v1/lecture.mp4", "video/mp4")
    etags = []
    for number, data in ((1, FIRST), (2, LAST)):
        status, etag = await put(
            await store.part_url("courseware/1/v1/lecture.mp4", upload_id, number, 60), data
        )
        assert status == 200
        assert etag == hashlib.md5(data).hexdigest()
        etags.append(etag)

    parts = await store.list_parts("courseware/1/v1/lecture.mp4", upload_id)
    assert parts == [StoredPart(1, etags[0], len(FIRST)), StoredPart(2, etags[1], len(LAST))]

    await store.complete_multipart("courseware/1/v1/lecture.mp4", upload_id, [(1, etags[0]), (2, etags[1])])
    assert await object_store.get("courseware/1/v1/lecture.mp4") == FIRST + LAST
    info = await object_store.stat("courseware/1/v1/lecture.mp4")
    assert (info.size, info.content_type) == (len(FIRST) + len(LAST), "video/mp4")
    with pytest.raises(UploadNotFound):
        await store.list_parts("courseware/1/v1/lecture.mp4", upload_id)


async def test_a_part_cut_short_is_not_stored_and_can_be_sent_again(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("up/cut", "application/pdf")
    url = await store.part_url("up/cut", upload_id, 1, 60)

    await cut_put(url, len(FIRST), FIRST[: len(FIRST) // 2])

    assert await store.list_parts("up/cut", upload_id) == []
    status, etag = await put(url, FIRST)
    assert status == 200
    assert [p.number for p in await store.list_parts("up/cut", upload_id)] == [1]
    await store.complete_multipart("up/cut", upload_id, [(1, etag)])
    assert await object_store.get("up/cut") == FIRST


async def test_completing_with_a_wrong_etag_or_a_missing_part_is_refused(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("up/wrong", "video/mp4")
    _, etag = await put(await store.part_url("up/wrong", upload_id, 1, 60), FIRST)

    with pytest.raises(Invalid):
        await store.complete_multipart("up/wrong", upload_id, [(1, "0" * 32)])
    with pytest.raises(Invalid):
        await store.complete_multipart("up/wrong", upload_id, [(1, etag), (2, "0" * 32)])
    # Nothing was lost: the part is still there and completes.
    await store.complete_multipart("up/wrong", upload_id, [(1, etag)])
    assert (await object_store.stat("up/wrong")).size == len(FIRST)


async def test_a_small_part_before_the_last_is_refused(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("up/small", "video/mp4")
    _, first = await put(await store.part_url("up/small", upload_id, 1, 60), LAST)
    _, second = await put(await store.part_url("up/small", upload_id, 2, 60), LAST)

    with pytest.raises(Invalid):
        await store.complete_multipart("up/small", upload_id, [(1, first), (2, second)])


async def test_parts_must_be_listed_in_ascending_order(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("up/order", "video/mp4")

    with pytest.raises(Invalid):
        await store.complete_multipart("up/order", upload_id, [(2, "a"), (1, "b")])
    with pytest.raises(Invalid):
        await store.complete_multipart("up/order", upload_id, [])


async def test_an_aborted_or_unknown_upload_is_not_found(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("up/abort", "video/mp4")
    await put(await store.part_url("up/abort", upload_id, 1, 60), LAST)

    await store.abort_multipart("up/abort", upload_id)
    await store.abort_multipart("up/abort", upload_id)  # again: not an error

    with pytest.raises(UploadNotFound):
        await store.list_parts("up/abort", upload_id)
    with pytest.raises(UploadNotFound):
        await store.list_parts("up/abort", "0" * 32)
    with pytest.raises(UploadNotFound):
        await store.complete_multipart("up/abort", upload_id, [(1, hashlib.md5(LAST).hexdigest())])
    with pytest.raises(ObjectNotFound):
        await object_store.stat("up/abort")


async def test_a_tampered_or_expired_part_url_is_refused(object_store: ObjectStore) -> None:
    store = multipart(object_store)
    upload_id = await store.start_multipart("up/signed", "video/mp4")
    url = URL(await store.part_url("up/signed", upload_id, 1, 2))

    assert (await put(str(url.update_query(partNumber="2")), LAST))[0] == 403
    assert (await put(str(url), LAST))[0] == 200

    async def refused() -> bool:
        return (await put(str(url), LAST))[0] == 403

    await wait_until(refused, timeout_s=15, interval_s=0.25, message="the part URL to expire")
    assert [p.number for p in await store.list_parts("up/signed", upload_id)] == [1]
