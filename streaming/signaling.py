"""WHIP (RFC 9725) and WHEP handlers: bearer-token checks (the signature, then whether the token still
admits its holder: streaming.admission), SDP bodies in and out, 201 + Location (and the caller's
STUN/TURN servers as `Link: rel="ice-server"` headers, RFC 9725 §4.6).

Thin: parse, call one Rooms method, answer. Errors are domain errors mapped by infra.http.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from aiohttp import web

from infra import ice
from infra.appkeys import SETTINGS
from infra.errors import Forbidden, Unauthenticated
from infra.tokens import Claims, verify
from streaming.admission import admit
from streaming.rooms import PUBLISHER_ROLES, VIEWER_ROLES, Rooms

ROOMS = web.AppKey("rooms", Rooms)

SDP_TYPE = "application/sdp"
MAX_SDP_BYTES = 64 * 1024
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Accept-Post, Link",
}


def _claims(request: web.Request, purpose: str) -> Claims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(f"a {purpose.upper()} bearer token is required (Authorization: Bearer …)")
    return verify(request.app[SETTINGS].secret_key, purpose, token.strip(), time.time())


async def _authorize(request: web.Request, purpose: str, session_id: int, roles: Collection[str]) -> Claims:
    claims = _claims(request, purpose)
    if claims.subject != f"session:{session_id}":
        raise Forbidden(f"this token is for {claims.subject}, not session:{session_id}")
    if claims.role not in roles:
        raise Forbidden(f"role {claims.role!r} may not use {purpose.upper()} (allowed: {sorted(roles)})")
    await admit(request.app, purpose, session_id, claims)
    return claims


async def _read_sdp(request: web.Request) -> str:
    if request.content_type != SDP_TYPE:
        raise web.HTTPUnsupportedMediaType(
            text=f"expected Content-Type {SDP_TYPE}, got {request.content_type or 'none'}"
        )
    too_large = web.HTTPRequestEntityTooLarge(
        max_size=MAX_SDP_BYTES, actual_size=request.content_length or MAX_SDP_BYTES + 1
    )
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > MAX_SDP_BYTES:
            raise too_large
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the SDP body is not UTF-8 text") from None


def _created(request: web.Request, kind: str, rid: str, answer: str, person_id: int) -> web.Response:
    headers = [("Location", f"/{kind}/resources/{rid}"), ("ETag", f'"{rid}"')]
    # The STUN/TURN servers this person may use, TURN with a credential of their own. WHIP clients such
    # as OBS read them here and gather relay candidates with them after the answer (the server learns
    # those as peer-reflexive); our pages get the same list with their media token, before the offer.
    settings = request.app[SETTINGS]
    for server in ice.for_person(
        settings.ice_servers,
        settings.turn_secret,
        person_id=person_id,
        now=time.time(),
        ttl_s=settings.turn_credential_ttl_s,
    ):
        headers.append(("Link", server.as_link()))
    return web.Response(status=201, text=answer, content_type=SDP_TYPE, headers=headers)


async def whip_publish(request: web.Request) -> web.Response:
    session_id = int(request.match_info["session_id"])
    claims = await _authorize(request, "whip", session_id, PUBLISHER_ROLES)
    offer = await _read_sdp(request)
    video = request.query.get("video")
    labels = [v.strip() for v in video.split(",") if v.strip()] if video is not None else None
    granted_at = claims.extra.get("granted_at")
    rid, answer = await request.app[ROOMS].publish(
        session_id,
        claims.person_id,
        claims.role,
        offer,
        labels,
        granted_at=float(granted_at) if isinstance(granted_at, int | float) else None,
    )
    return _created(request, "whip", rid, answer, claims.person_id)


async def whip_delete(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    claims = _claims(request, "whip")
    await rooms.unpublish(request.match_info["rid"], claims.person_id)
    return web.Response(status=200)


async def whep_watch(request: web.Request) -> web.Response:
    session_id = int(request.match_info["session_id"])
    claims = await _authorize(request, "whep", session_id, VIEWER_ROLES)
    offer = await _read_sdp(request)
    rid, answer = await request.app[ROOMS].watch(session_id, claims.person_id, offer, role=claims.role)
    return _created(request, "whep", rid, answer, claims.person_id)


async def whep_delete(request: web.Request) -> web.Response:
    claims = _claims(request, "whep")
    await request.app[ROOMS].unwatch(request.match_info["rid"], claims.person_id)
    return web.Response(status=200)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight; Accept-Post advertises the SDP body an endpoint takes (WHIP §4.1)."""
    headers = {"Access-Control-Allow-Methods": "OPTIONS, POST, DELETE"}
    if "/sessions/" in request.path:
        headers["Accept-Post"] = SDP_TYPE
    return web.Response(status=204, headers=headers)


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every WHIP/WHEP response, errors included, carries the CORS headers."""
    if request.path.startswith(("/whip/", "/whep/")):
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)


def add_routes(app: web.Application) -> None:
    for kind, publish in (("whip", whip_publish), ("whep", whep_watch)):
        app.router.add_post(rf"/{kind}/sessions/{{session_id:\d+}}", publish)
        app.router.add_route("OPTIONS", rf"/{kind}/sessions/{{session_id:\d+}}", preflight)
        app.router.add_delete(f"/{kind}/resources/{{rid}}", whip_delete if kind == "whip" else whep_delete)
        app.router.add_route("OPTIONS", f"/{kind}/resources/{{rid}}", preflight)
    app.on_response_prepare.append(cors_headers)
