"""HTTP handlers and route table of shared courseware's authoring and review (catalog.api adds ROUTES):
parse, call one service, serialize. Uploads are catalog.courseware's upload routes (resumable, straight
to the object store)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.courseware import authoring, processing, review, slides
from catalog.courseware.rules import COMMENTS_MAX, Decision
from catalog.domain import Category
from catalog.routing import Route
from infra.appkeys import OBJECTS
from infra.errors import Invalid, Unavailable
from infra.http import json_ok, read_json

COURSEWARE = r"{courseware_id:\d+}"
VERSION = r"{version_id:\d+}"
QUEUE_STATES = tuple(review.QUEUE_STATES)


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


async def list_mine(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await authoring.mine(database(request), caller))


async def create(request: web.Request) -> web.Response:
    caller = await current_person(request)
    authoring.require_expert(caller)  # who calls, before what they sent
    d = authoring.draft(await read_json(request))
    return json_ok(await authoring.create(database(request), caller, d, now()), status=201)


async def get(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await authoring.get(database(request), caller, _id(request, "courseware_id")))


async def update(request: web.Request) -> web.Response:
    caller = await current_person(request)
    values = authoring.changes(await read_json(request))
    view = await authoring.update(database(request), caller, _id(request, "courseware_id"), values, now())
    return json_ok(view)


async def add_version(request: web.Request) -> web.Response:
    caller = await current_person(request)
    upload, slides_upload = authoring.version_request(await read_json(request))
    view = await authoring.add_version(
        database(request), caller, _id(request, "courseware_id"), upload, slides_upload, now()
    )
    processing.wake(request.app)  # check and render it now, where a processor runs
    return json_ok(view, status=201)


async def submit(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await authoring.submit(database(request), caller, _id(request, "version_id"), now()))


async def decide(request: web.Request) -> web.Response:
    caller = await current_person(request)
    decision, comments = review.decision_request(await read_json(request))
    view = await review.decide_version(
        database(request), caller, _id(request, "version_id"), decision, comments, now()
    )
    return json_ok(view, status=201)


async def review_queue(request: web.Request) -> web.Response:
    caller = await current_person(request)
    state = request.query.get("state", "submitted")
    if state not in QUEUE_STATES:
        raise Invalid(f"state must be one of: {', '.join(QUEUE_STATES)}", field="state")
    page = f.page(request.query)
    return json_ok(await review.queue(database(request), caller, state, page))


async def slides_url(request: web.Request) -> web.Response:
    caller = await current_person(request)
    key = await slides.slides_key(database(request), caller, _id(request, "version_id"))
    store = request.app.get(OBJECTS)
    if store is None:
        raise Unavailable("no object store to read the slides from")
    at = now()
    url = await store.presigned_get(key, expires_s=slides.URL_TTL_S)
    expires_at = at + timedelta(seconds=slides.URL_TTL_S)
    return json_ok({"url": url, "expires_at": expires_at.isoformat()})


# -- request bodies (JSON Schema, for the OpenAPI document; validation is in the services) ---------------

_PROPS: dict[str, Any] = {
    "title": {"type": "string", "minLength": 1, "maxLength": f.TITLE_MAX},
    "category": {
        "type": "string",
        "enum": [c.value for c in Category],
        "description": "public = 公需科目, professional = 专业科目",
    },
    "description": {"type": "string", "maxLength": f.DESCRIPTION_MAX},
}
CREATE_BODY = {
    "type": "object",
    "properties": _PROPS,
    "required": ["title", "category"],
    "additionalProperties": False,
}
PATCH_BODY = {"type": "object", "properties": _PROPS, "additionalProperties": False, "minProperties": 1}
_ID = {"type": "integer", "minimum": 1, "maximum": f.BIGINT_MAX}
VERSION_BODY = {
    "type": "object",
    "properties": {
        "upload_id": {**_ID, "description": "a completed upload of the caller's: the video"},
        "slides_upload_id": {
            "anyOf": [_ID, {"type": "null"}],
            "description": "a completed upload of the caller's: the slides as PDF",
        },
    },
    "required": ["upload_id"],
    "additionalProperties": False,
}
DECISION_BODY = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": [d.value for d in Decision]},
        "comments": {
            "type": "string",
            "maxLength": COMMENTS_MAX,
            "description": "required to reject or revoke",
        },
    },
    "required": ["decision"],
    "additionalProperties": False,
}

OWNER = "the courseware's owner (an expert)"
READERS = "its owner, the association's reviewers, bureau, admin"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/courseware", list_mine, "The caller's courseware with versions and reviews",
          "logged in (experts have some)", "courseware"),
    Route("POST", "/api/courseware", create, "Create courseware to share (title, category, description)",
          "expert", "courseware", body=CREATE_BODY, responses={201: "Created"}),
    Route("GET", f"/api/courseware/{COURSEWARE}", get, "One courseware with its versions and reviews",
          READERS, "courseware"),
    Route("PATCH", f"/api/courseware/{COURSEWARE}", update,
          "Edit title, category, description (the shared course takes them at the next approval)",
          OWNER, "courseware", body=PATCH_BODY),
    Route("POST", f"/api/courseware/{COURSEWARE}/versions", add_version,
          "Add a version from a completed upload (a video, optionally slides as PDF); it is checked and"
          " rendered (processing) before it may be submitted",
          OWNER, "courseware", body=VERSION_BODY,
          responses={201: "Created", 409: "The upload is not complete or already used"}),
    Route("POST", f"/api/courseware/versions/{VERSION}/submit", submit,
          "Submit a draft version whose processing is ready for the association's review",
          OWNER, "courseware",
          responses={200: "Submitted", 409: "Not a ready draft, or another version under review"}),
    Route("GET", f"/api/courseware/versions/{VERSION}/slides", slides_url,
          "A short-lived URL of the version's slides (PDF)",
          "its owner and reviewers; once approved, whoever may watch its course", "courseware"),
    Route("GET", "/api/courseware/review-queue", review_queue,
          "Versions to review (submitted, oldest first), approved ones, or every decided one",
          "reviewer, bureau, admin", "courseware", query=("state", "page", "page_size")),
    Route("POST", f"/api/courseware/versions/{VERSION}/reviews", decide,
          "Approve a submitted version (it becomes the shared course learners watch), reject it, or revoke"
          " an approval (the course leaves the catalog); rejecting and revoking need comments",
          "reviewer (never of their own courseware)", "courseware", body=DECISION_BODY,
          responses={201: "Decided", 409: "Not possible in the version's state"}),
)  # fmt: skip
