"""`GET /objects/{key}`: serves presigned URLs of the embedded (local-folder) object store, with Range;
`PUT /objects/{key}?uploadId=…&partNumber=…`: receives a part of a multipart upload at a signed URL
(infra.multipart), streamed to disk.

Only in embedded mode: with S3 the presigned URLs point at the S3 server and these routes answer 404.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from email.utils import format_datetime

from aiohttp import web

from infra.appkeys import OBJECTS
from infra.errors import Forbidden, Invalid, NotFound
from infra.http import error_response
from infra.multipart import MAX_PART_BYTES
from infra.objects import ObjectNotFound
from infra.objects_local import LocalObjectStore, resolve_range

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str) -> tuple[int | None, int | None] | None:
    """(start, end) of a single-range `Range` header, in `ObjectStore.get` terms; None to ignore it.

    Multiple or malformed ranges are ignored, and the whole object is sent, as RFC 9110 allows.
    """
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    start = int(match.group(1)) if match.group(1) else None
    end = int(match.group(2)) if match.group(2) else None
    return start, end


def plan_range(request: web.Request, size: int) -> tuple[int, int, bool] | web.Response:
    """(offset, length, partial) to send of an object of `size` bytes for this request's Range
    header, or the 416 response when the range lies outside the object."""
    wanted = parse_range(request.headers.get("Range", ""))
    try:
        offset, length = resolve_range(*wanted, size) if wanted else (0, size)
    except Invalid:
        return error_response(
            416,
            "range_not_satisfiable",
            f"range {request.headers['Range']!r} is outside the object",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return offset, length, wanted is not None


def range_headers(offset: int, length: int, partial: bool, size: int) -> dict[str, str]:
    headers = {"Accept-Ranges": "bytes"}
    if partial:
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    return headers


def client_went_away(request: web.Request, sent: int, length: int) -> None:
    """A client that leaves mid-body (a player seeking, a closed tab) is normal, not a server error: one
    INFO line, and the response keeps the status it was sent with."""
    log.info("%s %s: client went away after %d of %d bytes", request.method, request.path, sent, length)


def _signed_params(request: web.Request) -> tuple[int, str]:
    try:
        expires = int(request.query["expires"])
        signature = request.query["signature"]
    except (KeyError, ValueError):
        raise Forbidden("missing or malformed URL signature") from None
    return expires, signature


async def get_object(request: web.Request) -> web.StreamResponse:
    store = request.app[OBJECTS]
    if not isinstance(store, LocalObjectStore):
        raise NotFound("objects are served by the object store, not by Lectern")
    key = request.match_info["key"]
    expires, signature = _signed_params(request)
    if not store.verify_presigned(key, expires, signature, now=time.time()):
        raise Forbidden("invalid or expired URL signature")

    try:
        f, info = await store.open(key)
    except ObjectNotFound:
        raise NotFound(f"no object {key!r}", field="key") from None  # name the field, like /hls/
    try:
        planned = plan_range(request, info.size)
        if isinstance(planned, web.Response):
            return planned
        offset, length, partial = planned
        response = web.StreamResponse(status=206 if partial else 200)
        response.content_type = info.content_type
        response.content_length = length
        response.headers.update(range_headers(offset, length, partial, info.size))
        response.headers["ETag"] = f'"{info.etag}"'
        response.headers["Last-Modified"] = format_datetime(info.modified_at, usegmt=True)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        await asyncio.to_thread(f.seek, offset)
        remaining = length
        try:
            while remaining > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK_BYTES, remaining))
                if not chunk:
                    break  # cannot happen with the open file we hold, but never loop forever
                await response.write(chunk)
                remaining -= len(chunk)
            await response.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one
            client_went_away(request, length - remaining, length)
        return response
    finally:
        f.close()


async def put_part(request: web.Request) -> web.Response:
    """One part of a multipart upload, from a browser holding a URL of `LocalObjectStore.part_url`. The
    body goes to disk as it arrives; a body cut short (a dropped connection) stores nothing."""
    store = request.app[OBJECTS]
    if not isinstance(store, LocalObjectStore):
        raise NotFound("parts are uploaded to the object store, not to Lectern")
    key = request.match_info["key"]
    expires, signature = _signed_params(request)
    try:
        upload_id = request.query["uploadId"]
        number = int(request.query["partNumber"])
    except (KeyError, ValueError):
        raise Forbidden("missing or malformed uploadId or partNumber") from None
    if not store.verify_part_url(key, upload_id, number, expires, signature, now=time.time()):
        raise Forbidden("invalid or expired URL signature")
    length = request.content_length
    if length is None:
        raise Invalid("a part needs a Content-Length", field="Content-Length")
    if length > MAX_PART_BYTES:
        raise Invalid(f"a part holds at most {MAX_PART_BYTES} bytes", field="Content-Length")
    writer = await store.part_writer(key, upload_id, number)
    try:
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            if writer.size + len(chunk) > length:
                raise Invalid("the body is longer than its Content-Length", field="Content-Length")
            await asyncio.to_thread(writer.write, chunk)
        if writer.size != length:
            raise Invalid(f"got {writer.size} of {length} bytes", field="Content-Length")
        part = await asyncio.to_thread(writer.commit)
    except BaseException:
        await asyncio.to_thread(writer.discard)
        raise
    return web.Response(status=200, headers={"ETag": f'"{part.etag}"'})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/objects/{key:.+}", get_object)
    app.router.add_put("/objects/{key:.+}", put_part)
