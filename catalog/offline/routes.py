"""Handlers and routes of offline training (线下培训): the venue's code for its staff, learners' sign-in and
sign-out with it, their state, the staff's attendance list and corrections (docs/offline.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from catalog.auth import client_address, current_person, database, now, settings
from catalog.offline import corrections, qr, rules, service
from catalog.routing import SESSION, Route
from catalog.schemas import INSTANT
from infra.http import json_ok, read_json

ATTENDANCE = r"{attendance_id:\d+}"


def _id(request: web.Request, name: str) -> int:
    # Route patterns are \d+; a number beyond BIGINT is simply not found.
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


def _base_url(request: web.Request) -> str:
    """Where learners' phones reach this server: LECTERN_PUBLIC_URL, else the address the staff's display
    used (the same network as the venue's)."""
    return settings(request).public_url or f"{request.scheme}://{request.host}"


async def venue_code(request: web.Request) -> web.Response:
    caller = await current_person(request)
    shown = await service.venue_code(
        database(request),
        caller,
        _id(request, "session_id"),
        settings(request).secret_key,
        _base_url(request),
        now(),
    )
    # Drawn here, not in the service: the picture is presentation (segno, catalog.offline.qr).
    response = json_ok({**shown.view, "svg": qr.svg(shown.url)})
    response.headers["Cache-Control"] = "no-store"  # a code is for now, never for a cache
    return response


async def offline_attendance(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.attendance(database(request), caller, _id(request, "session_id"), now()))


async def checkin_state(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.my_state(database(request), caller, _id(request, "session_id"), now()))


async def checkin(request: web.Request) -> web.Response:
    caller = await current_person(request)
    action, code = rules.act(await read_json(request))
    device = service.Device(client_address(request), request.headers.get("User-Agent", ""))
    act = service.sign_in if action == rules.SIGN_IN else service.sign_out
    key = settings(request).secret_key
    row = await act(database(request), caller, _id(request, "session_id"), code, key, device, now())
    return json_ok({"action": action, "attendance": row}, status=201 if action == rules.SIGN_IN else 200)


async def correct_attendance(request: web.Request) -> web.Response:
    caller = await current_person(request)
    signed_in, signed_out, reason = corrections.parse(await read_json(request))
    return json_ok(
        await corrections.correct(
            database(request), caller, _id(request, "attendance_id"), signed_in, signed_out, reason, now()
        )
    )


def _obj(props: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


CHECKIN = _obj(
    {
        "action": {"type": "string", "enum": list(rules.ACTIONS)},
        "code": {
            "type": "string",
            "pattern": rules.CODE_RE.pattern,
            "maxLength": rules.CODE_MAX,
            "description": "the `c` of the venue QR code's URL",
        },
    },
    ("action", "code"),
)
CORRECTION = _obj(
    {
        "signed_in_at": {**INSTANT, "description": "the corrected sign-in (omit to keep the recorded one)"},
        "signed_out_at": INSTANT,
        "reason": {"type": "string", "minLength": 1, "maxLength": corrections.REASON_MAX},
    },
    ("signed_out_at", "reason"),
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"/api/sessions/{SESSION}/venue/code",
        venue_code,
        "The offline session's current sign-in code for the venue display: the code, the URL its QR code"
        " encodes, the QR code as SVG, when the next one shows, who is signed in (counts)",
        "provider_admin of the course's provider, the session's experts",
        "offline",
        responses={200: "The current code", 409: "Not an offline session, or outside the sign-in hours"},
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/offline-attendance",
        offline_attendance,
        "Who signed in and out of an offline session, with staff corrections (phones masked)",
        "provider_admin of the course's provider, the session's experts, bureau, admin",
        "offline",
        responses={200: "The attendance", 409: "Not an offline session"},
    ),
    Route(
        "GET",
        f"/api/sessions/{SESSION}/checkin",
        checkin_state,
        "The caller's state at an offline session: enrolled, signed in here or elsewhere, their intervals",
        "logged in",
        "offline",
        responses={200: "The caller's state", 409: "Not an offline session"},
    ),
    Route(
        "POST",
        f"/api/sessions/{SESSION}/checkin",
        checkin,
        "Sign in (201) or out (200) of an offline session with the venue's current code",
        "enrolled learners (sign-out: whoever is signed in there)",
        "offline",
        body=CHECKIN,
        responses={
            200: "Signed out",
            201: "Signed in",
            400: "Not a venue code",
            403: "A code not issued for this session (tampered, forged, another venue's), or not enrolled",
            409: "Expired or used code; outside the hours; signed in elsewhere or learning online",
        },
    ),
    Route(
        "POST",
        f"/api/offline-attendance/{ATTENDANCE}/corrections",
        correct_attendance,
        "Correct a sign-in's times (a missed sign-out, a wrong time) with a reason; audited, re-settled",
        "provider_admin of the course's provider",
        "offline",
        body=CORRECTION,
        responses={200: "Corrected"},
    ),
)
