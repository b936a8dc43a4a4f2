"""Handlers of replay playback evidence: open a playback (a learning client with a signed token), its
heartbeats and its presence-check answers. Heartbeats and answers never wait on SQL: the token carries
what the server decided at opening, this process's `Playbacks` what happened since, and the events go
through the outbox to the catalog's consumer."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from aiohttp import web

from catalog import forms
from catalog.auth import COOKIE, CSRF_HEADER, client_address, current_person, database, now, settings
from catalog.keys import PLAYBACKS
from catalog.playback import (
    Grant,
    Playbacks,
    check_login,
    check_nonce,
    login_binding,
    sign_grant,
    verify_grant,
)
from catalog.playback_sessions import open_playback
from infra import events
from infra.appkeys import event_sink
from infra.errors import Forbidden, Invalid, Unavailable
from infra.http import json_ok, read_json

USER_AGENT_MAX = 512


def playbacks(app: web.Application) -> Playbacks:
    """This process's open playback clients (catalog.web.setup creates it)."""
    return app[PLAYBACKS]


async def _publish(request: web.Request, *batch: events.Event) -> None:
    sink = event_sink(request.app)
    if sink is None:
        raise Unavailable("no event sink to record playback evidence")
    for event in batch:
        await events.publish(sink, event)


def _grant(request: web.Request, token: str) -> Grant:
    """The verified grant of `token` for the client in the URL, used by the login that opened it."""
    key = settings(request).secret_key
    grant = verify_grant(key, token, request.match_info["client_id"], now())
    check_login(grant, key, request.cookies.get(COOKIE, ""), request.headers.get(CSRF_HEADER, ""))
    return grant


async def open_replay_playback(request: web.Request) -> web.Response:
    caller = await current_person(request)
    at = now()
    key = settings(request).secret_key
    opened = await open_playback(
        database(request),
        caller,
        request.match_info["recording_id"],
        binding=login_binding(key, request.cookies.get(COOKIE, ""), caller.csrf_token),
        now=at,
        ip=client_address(request),
        user_agent=request.headers.get("User-Agent", "")[:USER_AGENT_MAX],
    )
    playbacks(request.app).opened(opened.grant, opened.superseded, at)
    body = {
        "client_id": opened.grant.client_id,
        "token": sign_grant(key, opened.grant),
        "heartbeat_period_s": opened.grant.heartbeat_period_s,
        "check_window_s": opened.grant.check_window_s,
        "position_s": opened.position_s,
        "first_viewing": opened.first_viewing,
        "max_playback_rate": opened.max_playback_rate,
        "expires_at": datetime.fromtimestamp(opened.grant.expires_at, UTC).isoformat(),
    }
    return json_ok(body, status=201)


async def playback_heartbeat(request: web.Request) -> web.Response:
    body = await read_json(request)
    grant = _grant(request, forms.playback_token(body))
    beat = forms.playback_beat(body, grant.max_position_s)
    if beat.angle not in grant.angles:
        raise Invalid(f"angle must be one of: {', '.join(grant.angles)}", field="angle")
    at = now()
    outcome = playbacks(request.app).heartbeat(grant, beat.seq, beat.position_s, beat.visible, at)
    batch: list[events.Event] = [
        events.PlaybackHeartbeat(
            client_id=grant.client_id,
            person_id=grant.person_id,
            recording_id=grant.recording_id,
            seq=beat.seq,
            at=at,
            position_s=min(beat.position_s, grant.duration_s),
            rate=beat.rate,
            visible=beat.visible,
            angle=beat.angle,
        )
    ]
    check = outcome.check
    if check is not None and outcome.new_check:
        batch.append(
            events.ReplayCheckIssued(
                client_id=grant.client_id,
                person_id=grant.person_id,
                recording_id=grant.recording_id,
                check_id=check.check_id,
                position_s=check.position_s,
                issued_at=check.issued_at,
                deadline_at=check.deadline_at,
            )
        )
    await _publish(request, *batch)
    view = check.view(settings(request).secret_key, grant.client_id, at) if check else None
    return json_ok({"accepted": True, "check": view})


async def answer_replay_check(request: web.Request) -> web.Response:
    body = await read_json(request)
    token, nonce = forms.check_answer(body)
    grant = _grant(request, token)
    check_id = request.match_info["check_id"]
    expected = check_nonce(settings(request).secret_key, grant.client_id, check_id)
    if not _same(nonce, expected):
        raise Forbidden("wrong nonce for this check", field="nonce")
    at = now()
    issued = playbacks(request.app).answer(grant, check_id, at)
    latency_ms = max(0, round((at - issued.issued_at).total_seconds() * 1000))
    await _publish(
        request,
        events.ReplayCheckAnswered(
            client_id=grant.client_id,
            person_id=grant.person_id,
            recording_id=grant.recording_id,
            check_id=check_id,
            answered_at=at,
            latency_ms=latency_ms,
        ),
    )
    return json_ok({"answered": True, "check_id": check_id, "latency_ms": latency_ms})


def _same(a: str, b: str) -> bool:
    return a.isascii() and hmac.compare_digest(a, b)
