"""The annual training plan API (docs/programme.md): thin handlers and their route declarations."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from catalog import fields as f
from catalog.auth import current_person, database, now
from catalog.credit.engine import beijing_day
from catalog.domain import Category
from catalog.plans import forms, service
from catalog.routing import ORG, Route
from catalog.schemas import ID
from infra.http import json_ok, read_json

PLAN = r"{plan_id:\d+}"
ITEM = r"{item_id:\d+}"
TAG = "plans"


def _id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    return value if value < 2**63 else 0


async def create(request: web.Request) -> web.Response:
    caller = await current_person(request)
    at = now()
    new = forms.parse_plan(await read_json(request), beijing_day(at))
    return json_ok(
        await service.create(database(request), caller, _id(request, "org_id"), new, at), status=201
    )


async def list_for(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.list_for(database(request), caller, _id(request, "org_id")))


async def get(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.get(database(request), caller, _id(request, "plan_id")))


async def rename(request: web.Request) -> web.Response:
    caller = await current_person(request)
    title = forms.parse_title(await read_json(request))
    return json_ok(await service.rename(database(request), caller, _id(request, "plan_id"), title))


async def publish(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.publish(database(request), caller, _id(request, "plan_id"), now()))


async def add_item(request: web.Request) -> web.Response:
    caller = await current_person(request)
    spec = forms.parse_item(await read_json(request))
    return json_ok(
        await service.add_item(database(request), caller, _id(request, "plan_id"), spec, now()), status=201
    )


async def change_item(request: web.Request) -> web.Response:
    caller = await current_person(request)
    spec = forms.parse_item(await read_json(request), change=True)
    return json_ok(
        await service.change_item(
            database(request), caller, _id(request, "plan_id"), _id(request, "item_id"), spec
        )
    )


async def remove_item(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(
        await service.remove_item(database(request), caller, _id(request, "plan_id"), _id(request, "item_id"))
    )


async def enroll(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.enroll(database(request), caller, _id(request, "plan_id"), now()))


async def progress(request: web.Request) -> web.Response:
    caller = await current_person(request)
    return json_ok(await service.progress(database(request), caller, _id(request, "plan_id"), now()))


async def staff(request: web.Request) -> web.Response:
    caller = await current_person(request)
    q = f.query_text(request.query, "q", max_len=100)
    return json_ok(
        await service.staff(database(request), caller, _id(request, "plan_id"), q, f.page(request.query))
    )


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


_TITLE = {"type": "string", "minLength": 1, "maxLength": f.TITLE_MAX}
NEW_PLAN = _obj(
    {
        "year": {
            "type": "integer",
            "minimum": 2000,
            "maximum": 2100,
            "description": "last, this or next year",
        },
        "title": _TITLE,
    },
    ("year", "title"),
)
RENAME = _obj({"title": _TITLE}, ("title",))
_ITEM_PROPS: dict[str, Any] = {
    "course_id": {**ID, "description": "a published course (or give a category)"},
    "category": {
        "type": "string",
        "enum": [c.value for c in Category],
        "description": "public = 公需, professional = 专业 (or give a course_id)",
    },
    "person_ids": {
        "type": "array",
        "items": ID,
        "minItems": 1,
        "maxItems": forms.TARGETS_MAX,
        "description": "the employer's own staff",
    },
    "target_xueshi": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": float(forms.TARGET_MAX),
        "description": "学时 per person, one decimal place",
    },
    "note": {"type": "string", "maxLength": forms.NOTE_MAX},
}
NEW_ITEM = _obj(_ITEM_PROPS, ("person_ids", "target_xueshi"))
ITEM_CHANGE = {**_obj(_ITEM_PROPS), "minProperties": 1}
MANAGERS = "the employer's administrators and admins"
READERS = "the employer's administrators, admins and the bureau (anyone else: 404)"

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"/api/employers/{ORG}/plans",
        list_for,
        "The employer's annual training plans, the latest year first",
        "the employer's administrators, admins and the bureau",
        TAG,
    ),
    Route(
        "POST",
        f"/api/employers/{ORG}/plans",
        create,
        "Draft the employer's annual training plan for a year (one per year)",
        MANAGERS,
        TAG,
        body=NEW_PLAN,
        responses={201: "Drafted", 409: "The employer has a plan for this year"},
    ),
    Route(
        "GET", f"/api/plans/{PLAN}", get, "A training plan with its items and targeted staff", READERS, TAG
    ),
    Route(
        "PATCH",
        f"/api/plans/{PLAN}",
        rename,
        "Rename a draft plan",
        MANAGERS,
        TAG,
        body=RENAME,
        responses={200: "Renamed", 409: "The plan is published"},
    ),
    Route(
        "POST",
        f"/api/plans/{PLAN}/publish",
        publish,
        "Publish a draft plan (it needs an item); then items may only be added",
        MANAGERS,
        TAG,
        responses={200: "Published", 409: "Already published, or no items"},
    ),
    Route(
        "POST",
        f"/api/plans/{PLAN}/items",
        add_item,
        "Add an item: a course or a category, the staff it targets, target 学时 per person",
        MANAGERS,
        TAG,
        body=NEW_ITEM,
        responses={201: "Added", 403: "Not the employer's staff, or not its administrator"},
    ),
    Route(
        "PATCH",
        f"/api/plans/{PLAN}/items/{ITEM}",
        change_item,
        "Change an item of a draft plan",
        MANAGERS,
        TAG,
        body=ITEM_CHANGE,
        responses={200: "Changed", 409: "The plan is published"},
    ),
    Route(
        "DELETE",
        f"/api/plans/{PLAN}/items/{ITEM}",
        remove_item,
        "Remove an item of a draft plan",
        MANAGERS,
        TAG,
        responses={200: "Removed", 409: "The plan is published"},
    ),
    Route(
        "POST",
        f"/api/plans/{PLAN}/enroll",
        enroll,
        "Enroll each course item's staff in its course (source employer, linked to the item); idempotent",
        MANAGERS,
        TAG,
        responses={200: "Per item: created, already enrolled, or the refusal", 409: "The plan is a draft"},
    ),
    Route(
        "GET",
        f"/api/plans/{PLAN}/progress",
        progress,
        "Plan vs actual per item and per person: registered 学时 (pending apart), completion, who is short",
        READERS,
        TAG,
    ),
    Route(
        "GET",
        f"/api/plans/{PLAN}/staff",
        staff,
        "The staff the plan's items may target (the employer's people), by name",
        READERS,
        TAG,
        query=("q", "page", "page_size"),
    ),
)
