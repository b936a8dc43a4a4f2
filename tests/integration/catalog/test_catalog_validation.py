"""Bad input anywhere in the API is a 4xx JSON error naming the field, never a 500 (table-driven)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]

LIVE = {
    "title": "讲",
    "kind": "live",
    "scheduled_start": "2030-01-01T09:00:00+08:00",
    "scheduled_end": "2030-01-01T11:00:00+08:00",
}
COURSE = {
    "provider_id": "{provider}",
    "title": "课程",
    "category": "public",
    "credit_hours": 2,
    "delivery": "live",
}


def course(**changes: Any) -> dict[str, Any]:
    body = {**COURSE, **changes}
    return {k: v for k, v in body.items() if v is not None}


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


# (id, actor, method, path, body, status, field)
CASES: list[tuple[str, str, str, str, Any, int, str | None]] = [
    (
        "register-missing-phone",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"password": "12345678", "name": "x"},
        400,
        "phone",
    ),
    (
        "register-phone-not-mainland",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"phone": "12345", "password": "12345678", "name": "x"},
        400,
        "phone",
    ),
    (
        "register-phone-wrong-type",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"phone": 13912345678, "password": "12345678", "name": "x"},
        400,
        "phone",
    ),
    (
        "register-short-password",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"phone": "13912345678", "password": "1234567", "name": "x"},
        400,
        "password",
    ),
    (
        "register-name-too-long",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"phone": "13912345678", "password": "12345678", "name": "名" * 101},
        400,
        "name",
    ),
    (
        "register-unknown-employer",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"phone": "13912345678", "password": "12345678", "name": "x", "employer_id": 999999},
        400,
        "employer_id",
    ),
    (
        "register-unknown-field",
        "anonymous",
        "POST",
        "/api/auth/register",
        {"phone": "13912345678", "password": "12345678", "name": "x", "role": "admin"},
        400,
        "role",
    ),
    ("login-not-json", "anonymous", "POST", "/api/auth/login", "phone=1", 400, "Content-Type"),
    (
        "login-missing-password",
        "anonymous",
        "POST",
        "/api/auth/login",
        {"phone": "13912345678"},
        400,
        "password",
    ),
    ("org-bad-type", "admin", "POST", "/api/organizations", {"type": "bank", "name": "x"}, 400, "type"),
    (
        "org-bad-uscc",
        "admin",
        "POST",
        "/api/organizations",
        {"type": "employer", "name": "x", "unified_social_credit_code": "123"},
        400,
        "unified_social_credit_code",
    ),
    (
        "org-unknown-parent",
        "admin",
        "POST",
        "/api/organizations",
        {"type": "employer", "name": "x", "parent_id": 999999},
        400,
        "parent_id",
    ),
    ("org-list-bad-type", "anonymous", "GET", "/api/organizations?type=bank", None, 400, "type"),
    ("org-unknown", "anonymous", "GET", "/api/organizations/999999", None, 404, "org_id"),
    ("org-id-not-a-number", "anonymous", "GET", "/api/organizations/abc", None, 404, None),
    (
        "role-unknown-role",
        "admin",
        "POST",
        "/api/organizations/{employer}/roles",
        {"person_id": 1, "role": "king"},
        400,
        "role",
    ),
    (
        "role-unknown-person",
        "admin",
        "POST",
        "/api/organizations/{employer}/roles",
        {"person_id": 999999, "role": "expert"},
        400,
        "person_id",
    ),
    (
        "role-not-held-there",
        "admin",
        "POST",
        "/api/organizations/{employer}/roles",
        {"person_id": 1, "role": "provider_admin"},
        400,
        "role",
    ),
    (
        "course-missing-title",
        "provider_admin",
        "POST",
        "/api/courses",
        without(COURSE, "title"),
        400,
        "title",
    ),
    (
        "course-title-too-long",
        "provider_admin",
        "POST",
        "/api/courses",
        course(title="课" * 201),
        400,
        "title",
    ),
    ("course-blank-title", "provider_admin", "POST", "/api/courses", course(title="   "), 400, "title"),
    (
        "course-description-too-long",
        "provider_admin",
        "POST",
        "/api/courses",
        course(description="x" * 10_001),
        400,
        "description",
    ),
    (
        "course-bad-category",
        "provider_admin",
        "POST",
        "/api/courses",
        course(category="fun"),
        400,
        "category",
    ),
    (
        "course-hours-string",
        "provider_admin",
        "POST",
        "/api/courses",
        course(credit_hours="two"),
        400,
        "credit_hours",
    ),
    (
        "course-hours-negative",
        "provider_admin",
        "POST",
        "/api/courses",
        course(credit_hours=-1),
        400,
        "credit_hours",
    ),
    (
        "course-hours-two-decimals",
        "provider_admin",
        "POST",
        "/api/courses",
        course(credit_hours=1.25),
        400,
        "credit_hours",
    ),
    (
        "course-hours-bool",
        "provider_admin",
        "POST",
        "/api/courses",
        course(credit_hours=True),
        400,
        "credit_hours",
    ),
    ("course-capacity-zero", "provider_admin", "POST", "/api/courses", course(capacity=0), 400, "capacity"),
    (
        "course-tags-not-list",
        "provider_admin",
        "POST",
        "/api/courses",
        course(specialty_tags="a"),
        400,
        "specialty_tags",
    ),
    (
        "course-provider-unknown",
        "admin",
        "POST",
        "/api/courses",
        course(provider_id=999999),
        400,
        "provider_id",
    ),
    (
        "course-provider-is-employer",
        "admin",
        "POST",
        "/api/courses",
        course(provider_id="{employer}"),
        400,
        "provider_id",
    ),
    ("course-body-is-list", "provider_admin", "POST", "/api/courses", [1, 2], 400, None),
    ("course-patch-empty", "provider_admin", "PATCH", "/api/courses/{course}", {}, 400, None),
    (
        "course-patch-unknown-field",
        "provider_admin",
        "PATCH",
        "/api/courses/{course}",
        {"status": "published"},
        400,
        "status",
    ),
    ("course-unknown", "anonymous", "GET", "/api/courses/999999", None, 404, "course_id"),
    ("course-id-huge", "anonymous", "GET", "/api/courses/99999999999999999999999", None, 404, "course_id"),
    ("courses-page-size-too-big", "anonymous", "GET", "/api/courses?page_size=101", None, 400, "page_size"),
    ("courses-page-zero", "anonymous", "GET", "/api/courses?page=0", None, 400, "page"),
    ("courses-page-not-number", "anonymous", "GET", "/api/courses?page=x", None, 400, "page"),
    ("courses-bad-sort", "anonymous", "GET", "/api/courses?sort=price", None, 400, "sort"),
    ("courses-bad-from", "anonymous", "GET", "/api/courses?from=yesterday", None, 400, "from"),
    (
        "courses-to-before-from",
        "anonymous",
        "GET",
        "/api/courses?from=2030-01-02&to=2030-01-01",
        None,
        400,
        "to",
    ),
    ("courses-bad-delivery", "anonymous", "GET", "/api/courses?delivery=fax", None, 400, "delivery"),
    (
        "session-end-before-start",
        "provider_admin",
        "POST",
        "/api/courses/{course}/sessions",
        {**LIVE, "scheduled_end": "2030-01-01T08:00:00+08:00"},
        400,
        "scheduled_end",
    ),
    (
        "session-naive-time",
        "provider_admin",
        "POST",
        "/api/courses/{course}/sessions",
        {**LIVE, "scheduled_start": "2030-01-01T09:00:00"},
        400,
        "scheduled_start",
    ),
    (
        "session-bad-kind",
        "provider_admin",
        "POST",
        "/api/courses/{course}/sessions",
        {**LIVE, "kind": "vr"},
        400,
        "kind",
    ),
    (
        "session-external-without-platform",
        "provider_admin",
        "POST",
        "/api/courses/{course}/sessions",
        {**LIVE, "kind": "external"},
        400,
        "external_platform",
    ),
    (
        "session-external-ids-not-object",
        "provider_admin",
        "POST",
        "/api/courses/{course}/sessions",
        {**LIVE, "external_ids": [1]},
        400,
        "external_ids",
    ),
    (
        "session-unknown-course",
        "provider_admin",
        "POST",
        "/api/courses/999999/sessions",
        LIVE,
        404,
        "course_id",
    ),
    ("session-unknown", "anonymous", "GET", "/api/sessions/999999", None, 404, "session_id"),
    (
        "session-patch-end-before-start",
        "provider_admin",
        "PATCH",
        "/api/sessions/{session}",
        {"scheduled_end": "2000-01-01T00:00:00Z"},
        400,
        "scheduled_end",
    ),
    (
        "experts-not-experts",
        "provider_admin",
        "PUT",
        "/api/sessions/{session}/experts",
        {"person_ids": ["{learner_id}"]},
        400,
        "person_ids",
    ),
    (
        "experts-not-ints",
        "provider_admin",
        "PUT",
        "/api/sessions/{session}/experts",
        {"person_ids": ["a"]},
        400,
        "person_ids",
    ),
    (
        "media-bad-purpose",
        "learner",
        "POST",
        "/api/sessions/{session}/media-token",
        {"purpose": "rtmp"},
        400,
        "purpose",
    ),
    (
        "media-unknown-session",
        "learner",
        "POST",
        "/api/sessions/999999/media-token",
        {"purpose": "whep"},
        404,
        "session_id",
    ),
    ("enroll-unknown-course", "learner", "POST", "/api/courses/999999/enroll", None, 404, "course_id"),
    (
        "employer-enroll-empty",
        "employer_admin",
        "POST",
        "/api/employers/{employer}/enrollments",
        {"course_id": "{course}", "person_ids": []},
        400,
        "person_ids",
    ),
    (
        "employer-enroll-unknown-course",
        "employer_admin",
        "POST",
        "/api/employers/{employer}/enrollments",
        {"course_id": 999999, "person_ids": ["{learner_id}"]},
        400,
        "course_id",
    ),
    (
        "employer-enroll-missing-course",
        "employer_admin",
        "POST",
        "/api/employers/{employer}/enrollments",
        {"person_ids": ["{learner_id}"]},
        400,
        "course_id",
    ),
]


def fill(value: Any, names: dict[str, int]) -> Any:
    """Replace "{name}" placeholders (whole strings) by ids from the seeded world."""
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in names:
            return names[value[1:-1]]
        return value.format(**names) if "{" in value else value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("actor", "method", "path", "body", "status", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input_is_a_json_error_naming_the_field(
    client: Client,
    world: World,
    actor: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    names = {
        "provider": world.orgs["provider"],
        "employer": world.orgs["employer"],
        "course": world.course_id,
        "session": world.session_id,
        "learner_id": world.actors["learner"].person_id,
    }
    headers = {} if actor == "anonymous" else dict(world.actors[actor].headers)
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, str):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = fill(body, names)
    resp = await client.request(method, fill(path, names), **kwargs)
    text = await resp.text()
    assert resp.status == status, text
    error = (await resp.json())["error"]
    assert error["field"] == field, text


async def test_a_malformed_json_body_is_400(client: Client, world: World) -> None:
    headers = {**world.actors["provider_admin"].headers, "Content-Type": "application/json"}
    resp = await client.post("/api/courses", data=b'{"title": ', headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid"
