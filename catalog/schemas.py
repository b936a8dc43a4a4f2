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
        "sector": {
            "type": ["string", "null"],
            "maxLength": f.SECTOR_MAX,
            "description": "行业: providers and industry departments only",
        },
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
    "location": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 200,
        "description": "where an offline session is held (required for kind offline)",
    },
}
SESSION_CREATE = _obj(_SESSION_PROPS, ("title", "kind", "scheduled_start", "scheduled_end"))
# actual_start/actual_end are the server's own times: a correction is POST .../time-corrections (fraud 17).
SESSION_PATCH = {**_obj(_SESSION_PROPS), "minProperties": 1}
EXPERTS = _obj({"person_ids": {"type": "array", "items": ID, "maxItems": 20}}, ("person_ids",))
EMPLOYER_ENROLL = _obj(
    {"course_id": ID, "person_ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": 500}},
    ("course_id", "person_ids"),
)
PLAYBACK_TOKEN = {
    "type": "string",
    "minLength": 1,
    "maxLength": 2048,
    "description": "the token POST /api/replays/{recording_id}/playback returned for this client",
}
PLAYBACK_HEARTBEAT = _obj(
    {
        "token": PLAYBACK_TOKEN,
        "seq": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10**9,
            "description": "increases by one with each heartbeat of this client",
        },
        "position_s": {
            "type": "number",
            "minimum": 0,
            "description": "seconds on the recording's timeline, at most its duration_s (+1 s)",
        },
        "rate": {"type": "number", "minimum": 0.25, "maximum": 4, "description": "the player's rate"},
        "visible": {
            "type": "boolean",
            "description": "whether the page is visible (document.visibilityState)",
        },
        "angle": {"type": "string", "description": "the angle being watched, e.g. camera or screen"},
    },
    ("token", "seq", "position_s", "rate", "visible", "angle"),
)
CHECK_ANSWER = _obj(
    {"token": PLAYBACK_TOKEN, "nonce": {"type": "string", "description": "the nonce the check came with"}},
    ("token", "nonce"),
)
MEDIA_TOKEN = _obj({"purpose": _enum(MediaPurpose)}, ("purpose",))
_NUMBER_OR_DECIMAL = {"type": ["number", "string"], "description": 'a decimal, e.g. "0.5"'}
_FRACTION = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
CREDIT_POLICY = _obj(
    {
        "note": {"type": "string", "minLength": 1, "maxLength": 500, "description": "why the rules change"},
        "minutes_per_xueshi": {"type": "integer", "minimum": 1, "maximum": 240},
        "rounding_unit": {"enum": ["0.1", "0.25", "0.5", "1", 0.1, 0.25, 0.5, 1]},
        "daily_cap_xueshi": _NUMBER_OR_DECIMAL,
        "live_presence_threshold": _FRACTION,
        "live_below_threshold": {"type": "string", "enum": ["none", "pro_rata"]},
        "check_full_ratio": _FRACTION,
        "check_half_ratio": _FRACTION,
        "checks_per_45_min": {"type": "integer", "minimum": 0, "maximum": 20},
        "check_window_s": {"type": "integer", "minimum": 10, "maximum": 600},
        "min_answer_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
        "replay_completion_threshold": _FRACTION,
        "max_playback_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "seek_tolerance_s": {"type": "number", "minimum": 0, "maximum": 60},
        "heartbeat_period_s": {"type": "integer", "minimum": 1, "maximum": 600},
        "once_per_session_per_year": {"type": "boolean"},
        "annual_total_xueshi": _NUMBER_OR_DECIMAL,
        "annual_public_min_xueshi": _NUMBER_OR_DECIMAL,
        "annual_professional_min_xueshi": _NUMBER_OR_DECIMAL,
    },
    ("note",),
)
FLAG_RESOLVE = _obj(
    {
        "status": {"type": "string", "enum": ["dismissed", "confirmed"]},
        "resolution": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
    ("status", "resolution"),
)
TIME_CORRECTION = _obj(
    {
        "actual_start": INSTANT,
        "actual_end": INSTANT,
        "reason": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
    ("actual_start", "actual_end", "reason"),
)

EXTERNAL_MATCH = _obj(
    {"person_id": {"anyOf": [ID, {"type": "null"}], "description": "an enrolled learner; null: nobody"}},
    ("person_id",),
)
EXTERNAL_ACCOUNT = _obj(
    {"external_user_id": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"}}, ("external_user_id",)
)

_SECRET = {"type": "string", "minLength": 1, "maxLength": 128, "description": "never returned"}
CREDENTIALS = {
    "description": "tencent: app_id, secret_id, secret_key, userid (the operator), optional sdk_id, "
    "webhook_token, webhook_aes_key; dingtalk: app_key, app_secret, optional operator_union_id",
    "type": "object",
    "properties": {
        "app_id": {"type": "string", "pattern": "^[0-9]{1,32}$"},
        "secret_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "secret_key": _SECRET,
        "userid": {"type": "string", "minLength": 1, "maxLength": 128},
        "sdk_id": {"type": "string", "pattern": "^[0-9]{1,32}$"},
        "webhook_token": {**_SECRET, "pattern": "^[A-Za-z0-9]{1,64}$"},
        "webhook_aes_key": {**_SECRET, "pattern": "^[A-Za-z0-9+/]{43}$"},
        "app_key": {"type": "string", "minLength": 1, "maxLength": 128},
        "app_secret": _SECRET,
        "operator_union_id": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "additionalProperties": False,
}
EXTERNAL_LINK = _obj(
    {
        "platform": {"type": "string", "enum": ["tencent", "dingtalk_conf", "dingtalk_live"]},
        "meeting_id": {"type": "string", "pattern": "^[0-9]{1,32}$"},
        "meeting_code": {"type": "string", "pattern": "^[0-9]{9}$", "description": "the 9-digit code"},
        "sub_meeting_id": {"type": "string", "pattern": "^[0-9]{1,32}$", "description": "recurring only"},
        "conference_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "live_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    },
    ("platform",),
)
TENCENT_WEBHOOK = _obj({"data": {"type": "string", "description": "Base64 (or AES) event JSON"}}, ("data",))

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
    "check_str": {"type": "string", "maxLength": 512, "description": "Tencent's Base64 verification"},
    "platform": {
        "type": "string",
        "enum": ["tencent", "dingtalk_conf", "dingtalk_live"],
        "description": "the file's platform when the session is not linked to one (else guessed)",
    },
    "year": {"type": "integer", "minimum": 2000, "maximum": 2100, "description": "credit year (Beijing)"},
    "employer.sort": {
        "type": "string",
        "enum": ["shortfall", "-shortfall", "name"],
        "default": "shortfall",
        "description": "most short first, least short first, or by name",
    },
    "short": {"type": "integer", "enum": [0, 1], "default": 0, "description": "1: only those short of it"},
    "course_id": ID,
    "review.status": {"type": "string", "enum": ["open", "dismissed", "confirmed", "all"], "default": "open"},
    # The courseware review queue (catalog.courseware.review.QUEUE_STATES).
    "state": {"type": "string", "enum": ["submitted", "approved", "decided"], "default": "submitted"},
    "serial": {"type": "string", "maxLength": 40, "description": "e.g. QDCE-2026-7KQ4M9XP2D"},
    "code": {"type": "string", "maxLength": 32, "description": "the verification code"},
    "approval.status": {
        "type": "string",
        "enum": ["pending", "registered", "rejected", "revoked", "decided", "all"],
        "default": "pending",
        "description": "decided: registered, rejected or revoked by someone, most recent first",
    },
    "person_id": ID,
    "subject_type": {"type": "string", "maxLength": 32, "description": "e.g. credit_entry, credit_policy"},
    "subject_id": {"type": "string", "maxLength": 64},
    "actor": {**ID, "description": "the person who acted"},
    "action": {"type": "string", "maxLength": 64, "description": "e.g. credit.approved"},
    "audit.from": {**DATE_OR_INSTANT, "description": "rows at or after (a date: its start, UTC)"},
    "audit.to": {**DATE_OR_INSTANT, "description": "rows at or before (a date: all of it, UTC)"},
    "status": {
        "type": "string",
        "enum": ["published", "draft", "archived", "all"],
        "default": "published",
        "description": "other than published needs provider_id and its admin, the bureau or an admin",
    },
    "sector": {"type": "string", "maxLength": f.SECTOR_MAX, "description": "providers' 行业"},
    "over": {"type": "integer", "enum": [0, 1], "default": 0, "description": "1: 超额 only"},
    "provider": {**ID, "description": "one provider (organization id); default: all in scope"},
}
