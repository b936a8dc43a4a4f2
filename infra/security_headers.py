"""Security headers on every answer the app sends: pages, API, media, errors, WebSocket upgrades.

An `on_response_prepare` hook rather than a middleware, so that answers a handler streams itself (files,
ranges, WebSockets) get them too. What each header is for: docs/security.md, "Input and headers".
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from infra import client_address

# Our pages: scripts only from us (hls.js is served from /static/vendor), media from us and the blob: URLs
# Media Source Extensions play from, hls.js's worker from a blob:, fetch and the room channel's WebSocket
# to us ('self' covers ws:/wss: to the same host). Styles allow 'unsafe-inline': two pages keep a <style>
# block and pages set style attributes; no page ever parses HTML from data (ui.js builds text nodes).
PAGE_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# Anything else (JSON, SDP, playlists, segments, MP4): nothing runs or loads if it is opened as a page,
# except the one image or video itself (so a browser's own viewer still shows an MP4 opened directly).
OTHER_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; frame-ancestors 'none'"
HSTS = "max-age=31536000"
SERVER = "lectern"
COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def came_over_tls(request: web.BaseRequest, trusted: Sequence[client_address.Network]) -> bool:
    """Whether the browser's connection was TLS: ours directly, or a trusted proxy's (a peer within
    `trusted`, LECTERN_TRUSTED_PROXIES) that says so in X-Forwarded-Proto. Anyone else's
    X-Forwarded-Proto is ignored: HSTS sent over plain HTTP would be a promise nobody keeps."""
    if request.secure:
        return True
    peer = client_address.parse_address(request.remote or "") if trusted else None
    if peer is None or not any(peer.version == n.version and peer in n for n in trusted):
        return False
    # The proxy nearest to us wrote the last value.
    proto = request.headers.getall("X-Forwarded-Proto", [""])[-1].split(",")[-1]
    return proto.strip().lower() == "https"


def page_csp(connect_origins: Sequence[str] = ()) -> str:
    """PAGE_CSP, with `connect_origins` (the S3 server courseware parts are PUT to, when it is another
    origin than ours: docs/courseware.md) allowed in connect-src."""
    if not connect_origins:
        return PAGE_CSP
    return PAGE_CSP.replace("connect-src 'self'", " ".join(("connect-src 'self'", *connect_origins)))


def headers_for(
    status: int, content_type: str, tls: bool, connect_origins: Sequence[str] = ()
) -> dict[str, str]:
    """The security headers of one answer. A 304 gets the page policy: it has no content type, and the
    browser replaces the headers stored with its cached copy, which may be a page, by the 304's."""
    headers = dict(COMMON)
    page = content_type == "text/html" or status == 304
    headers["Content-Security-Policy"] = page_csp(connect_origins) if page else OTHER_CSP
    if tls:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def install(
    app: web.Application, trusted_proxies: tuple[str, ...], connect_origins: Sequence[str] = ()
) -> None:
    """Add the headers to every answer of `app`; a header a handler set itself is kept (none do today),
    except Server, which never names the framework and its version. `connect_origins`: see page_csp."""

    trusted = client_address.parse_networks(trusted_proxies)  # checked by Settings already

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        tls = came_over_tls(request, trusted)
        for name, value in headers_for(response.status, response.content_type, tls, connect_origins).items():
            response.headers.setdefault(name, value)
        response.headers["Server"] = SERVER

    app.on_response_prepare.append(add_headers)
