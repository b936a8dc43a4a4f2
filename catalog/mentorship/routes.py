"""The 师承带徒 API (docs/programme.md): thin handlers and their route declarations."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.credit.engine import beijing_day
from catalog.mentorship import rules, service
from catalog.routing import Route
from catalog.schemas import ID
from infra.http import json_ok, read_json

MENTORSHIP = r"{mentorship_id:\d+}"
TAG = "mentorship"


def _id(request: web.Request) -> int:
    value = int(request.match_info["mentorship_id"])
    return value if value < 2**63 else 0


async def mine(request: web.Request) -> web.Response:
    caller = await current_person(request)
    year = f.query_int(request.query, "year", default=None, minimum=2000, maximum=2100)
    return json_ok(await service.mine(database(request), caller, year))


async def propose(request: web.Request) -> web.Response:
    caller = await current_person(request)
    at = now()
    proposal = rules.parse_proposal(await read_json(request), beijing_day(at))
    return json_ok(await service.propose(database(request), caller, proposal, at), status=201)


async def get(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.get(database(request), caller, _id(request)))


async def confirm(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.confirm(database(request), caller, _id(request), now()))


async def cancel(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.cancel(database(request), caller, _id(request), now()))


async def record_completion(request: web.Request) -> web.Response:
    caller = await current_person(request)
    summary = rules.parse_summary(await read_json(request))
    return json_ok(await service.record_completion(database(request), caller, _id(request), summary, now()))


async def confirm_completion(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.confirm_completion(database(request), caller, _id(request), now()))


def _obj(props: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


_TEXT = {"type": "string", "minLength": 1, "maxLength": rules.TEXT_MAX}
_DATE = {"type": "string", "format": "date", "description": "YYYY-MM-DD, within `year`"}
PROPOSAL = _obj(
    {
        "side": {
            "type": "string",
            "enum": [s.value for s in rules.Side],
            "description": "the caller's side: mentor (an expert) or mentee (a learner)",
        },
        "counterpart_id": {**ID, "description": "the other person's id"},
        "counterpart_name": {
            "type": "string",
            "minLength": 1,
            "maxLength": f.NAME_MAX,
            "description": "the other person's name, which must match",
        },
        "year": {
            "type": "integer",
            "minimum": 2000,
            "maximum": 2100,
            "description": "last, this or next year",
        },
        "plan": {**_TEXT, "description": "the plan of study"},
        "terms": {**_TEXT, "description": "rights, duties, responsibilities and fees agreed"},
        "start_date": _DATE,
        "end_date": _DATE,
    },
    tuple(sorted(rules.PROPOSAL_FIELDS)),
)
COMPLETION = _obj({"summary": {**_TEXT, "description": "what the mentorship achieved"}}, ("summary",))
PARTIES = "the agreement's two people (anyone else: 404)"

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/me/mentorships",
        mine,
        "The caller's 师承带徒 agreements as mentor and as mentee, with the cap in force",
        "logged in",
        TAG,
        query=("year",),
    ),
    Route(
        "POST",
        "/api/mentorships",
        propose,
        "Propose a mentorship agreement for a year (the proposer's confirmation); the other side confirms",
        "experts (as mentor) and learners (as mentee)",
        TAG,
        body=PROPOSAL,
        responses={
            201: "Proposed",
            404: "No such person with this name and role",
            409: "Self-mentoring, an agreement already standing, or the mentor's cap reached",
        },
    ),
    Route(
        "GET",
        f"/api/mentorships/{MENTORSHIP}",
        get,
        "One mentorship agreement",
        "its two people, the mentee's employer administrators, the bureau and admins",
        TAG,
    ),
    Route(
        "POST",
        f"/api/mentorships/{MENTORSHIP}/confirm",
        confirm,
        "Confirm a proposed agreement (the side that did not propose); the cap is checked again",
        PARTIES,
        TAG,
        responses={
            200: "Confirmed",
            409: "Not proposed, the caller proposed it, or the mentor's cap reached",
        },
    ),
    Route(
        "POST",
        f"/api/mentorships/{MENTORSHIP}/cancel",
        cancel,
        "Withdraw a proposal before the other side confirmed it",
        PARTIES,
        TAG,
        responses={200: "Cancelled", 409: "Already confirmed, completed or cancelled"},
    ),
    Route(
        "POST",
        f"/api/mentorships/{MENTORSHIP}/completion",
        record_completion,
        "The mentor records completion with a summary, after the end date",
        "the mentor",
        TAG,
        body=COMPLETION,
        responses={200: "Recorded", 409: "Not confirmed, or the end date not passed"},
    ),
    Route(
        "POST",
        f"/api/mentorships/{MENTORSHIP}/completion/confirm",
        confirm_completion,
        "The mentee confirms completion: the award is posted as a pending ledger entry (R22)",
        "the mentee",
        TAG,
        responses={200: "Completed and credited (pending)", 409: "No completion recorded yet"},
    ),
)
