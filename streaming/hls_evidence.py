"""Evidence of overflow (HLS) attendance: the learners beyond the seat limit watch the live HLS, so what
the server can measure of them is their heartbeats and the live segments they fetch.

- `POST /api/sessions/{id}/hls-heartbeats`: the overflow player's heartbeat (client_id, seq,
  media_sequence, position_s, rate, visible), stamped with the server's time and published as
  `hls.heartbeat`. The caller is the person the media grant names (cookie `lectern_media_beat`, issued
  with `lectern_media` and scoped to this URL: infra.media_access), so a heartbeat never waits on SQL.
  Accepted only inside the session's live window (its room went live here and has not ended): outside
  it, 409 `outside_live_window` and nothing is published.
- `segment_fetched`: called by `/hls/...` and `/hls-auth` (streaming.hls_routes) for every media request
  they let through; a live media segment (not a playlist or an init segment) fetched by a learner is
  published as `hls.segment_fetched`. The credit engine counts heartbeats only where fetches corroborate
  them (docs/credit.md).

Heartbeats and fetches are published through the outbox like the rest of the live path's events.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from infra import events, media_access
from infra.appkeys import BUS, SETTINGS, event_sink
from infra.bus import BusUnavailable
from infra.errors import Conflict, Invalid
from infra.http import json_ok, read_json
from streaming import channel

log = logging.getLogger(__name__)

MAX_RATE: Final = 16.0  # players offer up to 16×; anything above is not a playback rate
MAX_INT: Final = 2**31 - 1
LIVE_STATUSES: Final = frozenset({"live", "reconnecting"})  # started here and not ended
SEGMENT_SUFFIX: Final = ".m4s"  # the recorder's media segments (init segments are .mp4, playlists .m3u8)


class OutsideLiveWindow(Conflict):
    code = "outside_live_window"


def live_now(app: web.Application, session_id: int) -> bool:
    """Whether the session's room is in its live window in this process: it went live (its first media
    arrived) and has not ended. What the rooms tell the room channel (channel.MEDIA_STATE)."""
    media_of = app.get(channel.MEDIA_STATE)
    return media_of is not None and media_of(session_id).status in LIVE_STATUSES


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise Invalid(f"{name} must be an integer from 0 to {MAX_INT}", field=name)
    return value


def _number(body: dict[str, Any], name: str, maximum: float) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{name} must be a number", field=name)
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= maximum:
        raise Invalid(f"{name} must be between 0 and {maximum:g}", field=name)
    return number


def parse_heartbeat(body: dict[str, Any]) -> dict[str, Any]:
    """The heartbeat's fields, checked; Invalid naming the first wrong one."""
    client_id = body.get("client_id")
    try:
        if not isinstance(client_id, str) or len(client_id) != 36:
            raise ValueError
        client_id = str(uuid.UUID(client_id))
    except ValueError:
        raise Invalid("client_id must be a UUID the page made", field="client_id") from None
    visible = body.get("visible")
    if not isinstance(visible, bool):
        raise Invalid("visible must be true or false", field="visible")
    return {
        "client_id": client_id,
        "seq": _int(body, "seq"),
        "media_sequence": _int(body, "media_sequence"),
        "position_s": _number(body, "position_s", 7 * 24 * 3600.0),
        "rate": _number(body, "rate", MAX_RATE),
        "visible": visible,
    }


async def post_heartbeat(request: web.Request) -> web.Response:
    session_id = int(request.match_info["session_id"])
    app = request.app
    grant = media_access.check_session(
        app[SETTINGS].secret_key, request.cookies.get(media_access.BEAT_COOKIE), session_id, time.time()
    )
    beat = parse_heartbeat(await read_json(request))
    if not live_now(app, session_id):
        raise OutsideLiveWindow(
            "this session is not live: heartbeats count only inside its live window", field="session_id"
        )
    at = datetime.now(UTC)
    counted = grant.role == "learner"  # the evidence behind credit; others' pages are not measured
    if counted:
        event = events.HlsHeartbeat(session_id=session_id, person_id=grant.person_id, at=at, **beat)
        await events.publish(event_sink(app) or app[BUS], event)
    return json_ok({"at": at.isoformat(), "counted": counted}, status=202)


async def segment_fetched(app: web.Application, grant: media_access.MediaGrant, key: str) -> None:
    """A media request for `key` (`hls/...`) passed: publish hls.segment_fetched if it is a live media
    segment fetched by a learner. Never fails the request: evidence lost to a full outbox is logged."""
    if grant.role != "learner" or not key.endswith(SEGMENT_SUFFIX) or not live_now(app, grant.session_id):
        return
    event = events.HlsSegmentFetched(
        session_id=grant.session_id, person_id=grant.person_id, key=key, at=datetime.now(UTC)
    )
    try:
        await events.publish(event_sink(app) or app[BUS], event)
    except BusUnavailable as exc:
        log.error("session=%s could not publish %s: %s", grant.session_id, event.type, exc)


def add_routes(app: web.Application) -> None:
    app.router.add_post(r"/api/sessions/{session_id:\d+}/hls-heartbeats", post_heartbeat)
