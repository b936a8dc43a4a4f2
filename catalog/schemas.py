"""JSON Schemas of the API's request bodies and query parameters, for the OpenAPI document.

The validation itself lives in catalog.forms; these describe it for readers and client generators.
"""

from __future__ import annotations

from typing import Any

from catalog import fields as f
from catalog.domain import Category, Delivery, ExternalPlatform, MediaPurpose, OrgType, Role, SessionKind


def _enum(kind: Any) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value for v in kind]}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


ID = {"type": "integer", "minimum": 1, "maximum": f.BIGINT_MAX}
INSTANT = {
    "type": "string",
    "format": "date-time",
    "description": f"ISO 8601 with a UTC offset (at most ±14:00), years {f.YEAR_MIN}–{f.YEAR_MAX}",
}
DATE_OR_INSTANT = {"anyOf": [{"type": "string", "format": "date"}, INSTANT]}

REGISTER = _obj(
    {
        "phone": {"type": "string", "pattern": f.PHONE_RE.pattern},
        "password": {"type": "string", "minLength": f.PASSWORD_MIN, "maxLength": f.PASSWORD_MAX},
        "name": {"type": "string", "minLength": 1, "maxLength": f.NAME_MAX},
        "employer_id": {**ID, "description": "an employer organization"},
    },
    ("phone", "password", "name"),
)
LOGIN = _obj({"phone": {"type": "string"}, "password": {"type": "string"}}, ("phone", "password"))
ORG = _obj(
    {
        "type": _enum(OrgType),
        "name": {"type": "string", "minLength": 1, "maxLength": f.ORG_NAME_MAX},
        "unified_social_credit_code": {"type": ["string", "null"], "pattern": f.USCC_RE.pattern},
        "region_code": {"type": ["string", "null"], "pattern": f.REGION_RE.pattern},
        "parent_id": {"type": ["integer", "null"], "minimum": 1, "maximum": f.BIGINT_MAX},
    },
    ("type", "name"),
)
ROLE_GRANT = _obj({"person_id": ID, "role": _enum(Role)}, ("person_id", "role"))
_COURSE_PROPS: dict[str, Any] = {
    "title": {"type": "string", "minLength": 1, "maxLength": f.TITLE_MAX},
    "description": {"type": "string", "maxLength": f.DESCRIPTION_MAX},
    "category": {**_enum(Category), "description": "public = 公需科目, professional = 专业科目"},
    "industry": {"type": "string", "maxLength": f.INDUSTRY_MAX},
    "specialty_tags": {
        "type": "array",
        "maxItems": f.TAGS_MAX,
        "items": {"type": "string", "minLength": 1, "maxLength": f.TAG_MAX},
    },
    "credit_hours": {
        "type": "number",
        "minimum": 0,
        "maximum": 99999.9,
        "multipleOf": 0.1,
        "description": "学时",
    },
    "delivery": _enum(Delivery),
    "capacity": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000},
}
COURSE_CREATE = _obj(
    {"provider_id": ID, **_COURSE_PROPS}, ("provider_id", "title", "category", "credit_hours", "delivery")
)
COURSE_PATCH = {**_obj(_COURSE_PROPS), "minProperties": 1}
_SESSION_PROPS: dict[str, Any] = {
    "title": {"type": "string", "minLength": 1, "maxLength": f.TITLE_MAX},
    "kind": _enum(SessionKind),
    "scheduled_start": INSTANT,
    "scheduled_end": INSTANT,
    "external_platform": _enum(ExternalPlatform),
    "external_ids": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
}
SESSION_CREATE = _obj(_SESSION_PROPS, ("title", "kind", "scheduled_start", "scheduled_end"))
SESSION_PATCH = {
    **_obj(
        {
            **_SESSION_PROPS,
            "actual_start": {**INSTANT, "type": ["string", "null"]},
            "actual_end": {**INSTANT, "type": ["string", "null"]},
        }
    ),
    "minProperties": 1,
}
EXPERTS = _obj({"person_ids": {"type": "array", "items": ID, "maxItems": 20}}, ("person_ids",))
EMPLOYER_ENROLL = _obj(
    {"course_id": ID, "person_ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": 500}},
    ("course_id", "person_ids"),
)
PROGRESS = _obj(
    {
        "position_s": {
            "type": "number",
            "minimum": 0,
            "description": "seconds on the recording's timeline, at most its duration_s",
        },
        "rate": {"type": "number", "minimum": 0.25, "maximum": 4},
        "visible": {
            "type": "boolean",
            "description": "whether the page is visible (document.visibilityState)",
        },
        "angle": {"type": "string", "description": "the angle being watched, e.g. camera or screen"},
    },
    ("position_s", "rate", "visible", "angle"),
)
MEDIA_TOKEN = _obj({"purpose": _enum(MediaPurpose)}, ("purpose",))

EXTERNAL_MATCH = _obj(
    {"person_id": {"anyOf": [ID, {"type": "null"}], "description": "an enrolled learner; null: nobody"}},
    ("person_id",),
)
EXTERNAL_ACCOUNT = _obj(
    {"external_user_id": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"}}, ("external_user_id",)
)

QUERY: dict[str, dict[str, Any]] = {
    "type": {**_enum(OrgType), "description": "organization type"},
    "page": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
    "page_size": {"type": "integer", "minimum": 1, "maximum": f.PAGE_SIZE_MAX, "default": 20},
    "category": _enum(Category),
    "industry": {"type": "string"},
    "provider_id": ID,
    "delivery": _enum(Delivery),
    "from": {**DATE_OR_INSTANT, "description": "sessions starting at or after (date or date-time)"},
    "to": {**DATE_OR_INSTANT, "description": "sessions starting at or before (date or date-time)"},
    "q": {"type": "string", "maxLength": 100, "description": "text in title, description or industry"},
    "sort": {"type": "string", "enum": ["title", "-created_at", "credit_hours", "next_session"]},
    "platform": {
        "type": "string",
        "enum": ["tencent", "dingtalk_conf", "dingtalk_live"],
        "description": "the file's platform when the session is not linked to one (else guessed)",
    },
    "status": {
        "type": "string",
        "enum": ["published", "draft", "archived", "all"],
        "default": "published",
        "description": "other than published needs provider_id and its admin, the bureau or an admin",
    },
}
