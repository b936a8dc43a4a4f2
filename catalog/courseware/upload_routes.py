"""HTTP handlers and route table of resumable courseware uploads (catalog.courseware.upload; catalog.api
adds ROUTES). The browser side is static/js/uploader.js; the protocol is in docs/courseware.md."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from catalog.auth import current_person, database, now, settings
from catalog.courseware import upload
from catalog.routing import Route
from infra.appkeys import OBJECTS
from infra.errors import Unavailable
from infra.http import json_ok, read_json
from infra.multipart import MAX_PARTS, MultipartStore

UPLOAD = r"{upload_id:\d+}"


def _id(request: web.Request) -> int:
    value = int(request.match_info["upload_id"])
    return value if value < 2**63 else 0


def _store(request: web.Request) -> MultipartStore:
    store = request.app.get(OBJECTS)
    if not isinstance(store, MultipartStore):
        raise Unavailable("this object store takes no uploads from browsers")
    return store


async def start(request: web.Request) -> web.Response:
    caller = await current_person(request)
    req = upload.upload_request(await read_json(request), settings(request).courseware_max_bytes)
    out = await upload.start(database(request), _store(request), caller, req, now())
    return json_ok(out, status=201, headers={"Location": f"/api/courseware/uploads/{out['id']}"})


async def get(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await upload.get(database(request), _store(request), caller, _id(request)))


async def parts(request: web.Request) -> web.Response:
    caller = await current_person(request)
    numbers = upload.part_numbers(await read_json(request))
    return json_ok(
        await upload.part_urls(database(request), _store(request), caller, _id(request), numbers, now())
    )


async def complete(request: web.Request) -> web.Response:
    caller = await current_person(request)
    wanted = upload.completion(await read_json(request))
    return json_ok(
        await upload.complete(database(request), _store(request), caller, _id(request), wanted, now())
    )


async def abort(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await upload.abort(database(request), _store(request), caller, _id(request), now()))


# -- request bodies (JSON Schema, for the OpenAPI document; validation is in catalog.courseware.upload) --

START_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file_name": {"type": "string", "minLength": 1, "maxLength": upload.FILE_NAME_MAX},
        "size_bytes": {
            "type": "integer",
            "minimum": 1,
            "description": "at most LECTERN_COURSEWARE_MAX_BYTES",
        },
        "content_type": {"type": "string", "maxLength": 128, "description": "video/* or application/pdf"},
    },
    "required": ["file_name", "size_bytes", "content_type"],
    "additionalProperties": False,
}
PARTS_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "numbers": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": MAX_PARTS},
            "minItems": 1,
            "maxItems": upload.MAX_URLS,
        }
    },
    "required": ["numbers"],
    "additionalProperties": False,
}
COMPLETE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "parts": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PARTS,
            "items": {
                "type": "object",
                "properties": {
                    "number": {"type": "integer", "minimum": 1, "maximum": MAX_PARTS},
                    "etag": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                "required": ["number", "etag"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["parts"],
    "additionalProperties": False,
}

OWNER = "the upload's owner (an expert)"

ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/courseware/uploads", start,
          "Start a resumable upload of a video or PDF straight to the object store (declared size and type)",
          "expert", "courseware", body=START_BODY,
          responses={201: "Started", 400: "Too large, or not a video or PDF"}),
    Route("GET", f"/api/courseware/uploads/{UPLOAD}", get,
          "An upload and, while open, the parts the object store holds (to resume)", OWNER, "courseware"),
    Route("POST", f"/api/courseware/uploads/{UPLOAD}/parts", parts,
          "Short-lived URLs to PUT parts to (straight to the object store)", OWNER, "courseware",
          body=PARTS_BODY, responses={200: "URLs", 409: "The upload is completed, aborted or expired"}),
    Route("POST", f"/api/courseware/uploads/{UPLOAD}/complete", complete,
          "Join the parts (their ETags checked against the object store's list) into the file",
          OWNER, "courseware", body=COMPLETE_BODY,
          responses={200: "Completed", 400: "Parts missing or not as stored", 409: "Not open"}),
    Route("DELETE", f"/api/courseware/uploads/{UPLOAD}", abort,
          "Abort an open upload (its parts are deleted)", OWNER, "courseware",
          responses={200: "Aborted", 409: "Not open"}),
)  # fmt: skip
