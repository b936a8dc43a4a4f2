"""`GET /hls/{key}`: recordings and live playlists served from the app's object store (embedded mode),
with HLS content types, single Range requests and caching fit for playlists and segments.

Only for people the catalog granted the session's media (infra.media_access: the `lectern_media` cookie
on `/hls/{session}/`); everyone else gets 401 or 403. In the compose stack nginx serves /hls/ from its
cache and fills the cache from this route; `GET /hls-auth` answers nginx's `auth_request` with the same
check, so a cached segment is only handed to a viewer whose cookie this app accepted. Both report the
live segments learners fetch (streaming.hls_evidence).
"""

from __future__ import annotations

import time
from email.utils import format_datetime
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from infra import media_access
from infra.appkeys import OBJECTS, SETTINGS
from infra.errors import NotFound
from infra.objects import ObjectNotFound
from infra.objects_local import check_key
from streaming import admission, hls_evidence
from streaming.objects_routes import client_went_away, plan_range, range_headers

PREFIX: Final = "hls/"
CHUNK_BYTES: Final = 1024 * 1024
CONTENT_TYPES: Final = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".json": "application/json",
}
# Playlists change (the live one after every segment); segments, init segments and MP4s never do once
# stored (new periods get new names), so browsers and proxies may keep them.
NO_CACHE: Final = "no-cache"
# `private`: a shared cache must not hand them to anyone (nginx checks every request before its cache).
IMMUTABLE: Final = "private, max-age=31536000, immutable"


def _content_type(key: str, stored: str) -> str:
    suffix = key[key.rfind(".") :] if "." in key.rsplit("/", 1)[-1] else ""
    return CONTENT_TYPES.get(suffix, stored or "application/octet-stream")


def _cache_control(key: str) -> str:
    return NO_CACHE if key.endswith((".m3u8", ".json")) else IMMUTABLE


def object_key(path_key: str) -> str:
    """The object key behind `/hls/<path_key>`; Invalid (naming `key`) for '..', '.', '//' or NUL."""
    return check_key(PREFIX + path_key)


async def _grant(request: web.Request, path: str) -> media_access.MediaGrant:
    """The verified grant for `path`, which the catalog (when wired) still stands behind: a learner who
    withdrew since it was issued is refused at once, not when the cookie expires."""
    secret_key = request.app[SETTINGS].secret_key
    grant = media_access.check(secret_key, request.cookies.get(media_access.COOKIE), path, time.time())
    await admission.admit_hls(request.app, grant.session_id, grant.person_id, grant.role, grant.issued_at)
    return grant


async def authorize(request: web.Request) -> web.Response:
    """nginx's `auth_request`: 200 with no body (naming the person in `X-Lectern-Person`, for nginx's
    access log) when the `lectern_media` cookie covers the media URL in `X-Original-URI` (as the client
    sent it, escapes and all: only a canonical path passes), else 401/403 in the JSON error shape."""
    path = urlsplit(request.headers.get("X-Original-URI", "")).path
    grant = await _grant(request, path)
    await hls_evidence.segment_fetched(request.app, grant, path.removeprefix("/"))
    return web.Response(status=200, headers={"X-Lectern-Person": str(grant.person_id)})


async def get_hls(request: web.Request) -> web.StreamResponse:
    key = object_key(request.match_info["key"])
    grant = await _grant(request, "/" + key)
    store = request.app[OBJECTS]
    try:
        info = await store.stat(key)
    except ObjectNotFound:
        raise NotFound(f"no object {key!r}", field="key") from None
    if request.method == "GET":  # a live segment handed to a learner: evidence (streaming.hls_evidence)
        await hls_evidence.segment_fetched(request.app, grant, key)
    etag = f'"{info.etag}"'
    headers = {
        "Cache-Control": _cache_control(key),
        "ETag": etag,
        "Last-Modified": format_datetime(info.modified_at, usegmt=True),
    }
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"Accept-Ranges": "bytes", **headers})
    planned = plan_range(request, info.size)
    if isinstance(planned, web.Response):
        return planned
    offset, length, partial = planned
    headers.update(range_headers(offset, length, partial, info.size))
    response = web.StreamResponse(status=206 if partial else 200, headers=headers)
    response.content_type = _content_type(key, info.content_type)
    response.content_length = length
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    # Chunks through the store's ranged get: works for the local folder and S3 alike, never whole MP4s
    # in memory. Objects under hls/ are immutable once named, except playlists (one chunk).
    position, end = offset, offset + length
    try:
        while position < end:
            last = min(position + CHUNK_BYTES, end) - 1
            chunk = await store.get(key, position, last)
            if not chunk:
                break  # the object shrank under us (a rewritten playlist): end the response, never loop
            await response.write(chunk)
            position += len(chunk)
        await response.write_eof()
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one
        client_went_away(request, position - offset, length)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/hls/{key:.+}", get_hls)
    app.router.add_get("/hls-auth", authorize)
