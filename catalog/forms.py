"""Request bodies and query strings of the catalog API, parsed into typed values (pure; raises Invalid)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from catalog import fields as f
from catalog.domain import (
    PROVIDER_TYPES,
    Category,
    CourseStatus,
    Delivery,
    ExternalPlatform,
    MediaPurpose,
    OrgType,
    Role,
    SessionKind,
)
from infra.errors import Invalid
from integrations.records import Platform

PLAYBACK_RATE_MIN = 0.25
PLAYBACK_RATE_MAX = 4.0
COURSE_SORTS = ("title", "-created_at", "credit_hours", "next_session")
# How far in the past a new start or end may lie: a provider who schedules "now" types the current minute,
# which is already behind the server's clock by the time it arrives.
PAST_GRACE = timedelta(minutes=5)
EXPERTS_MAX = 20


@dataclass(frozen=True)
class Registration:
    phone: str
    password: str
    name: str
    employer_org_id: int | None


@dataclass(frozen=True)
class Credentials:
    phone: str
    password: str


@dataclass(frozen=True)
class OrgDraft:
    type: OrgType
    name: str
    unified_social_credit_code: str | None
    region_code: str | None
    parent_id: int | None
    sector: str | None = None  # the industry it is supervised in / supervises (catalog.supervision)


@dataclass(frozen=True)
class CourseDraft:
    provider_org_id: int
    title: str
    description: str
    category: Category
    industry: str
    specialty_tags: list[str]
    credit_hours: Decimal
    delivery: Delivery
    capacity: int | None


@dataclass(frozen=True)
class SessionDraft:
    title: str
    kind: SessionKind
    scheduled_start: datetime
    scheduled_end: datetime
    external_platform: ExternalPlatform
    external_ids: dict[str, str]
    expert_ids: list[int]  # may be empty for a draft course; see catalog.courses.add_session
    location: str | None = None  # where an offline session is held (required for kind offline)


@dataclass(frozen=True)
class CourseQuery:
    category: Category | None = None
    industry: str | None = None
    provider_id: int | None = None
    delivery: Delivery | None = None
    starts_from: datetime | None = None
    starts_to: datetime | None = None
    q: str | None = None
    sort: str = "-created_at"
    # None = every status ("all"); other than published only for its admins and supervisors.
    status: CourseStatus | None = CourseStatus.PUBLISHED


def registration(body: Mapping[str, Any]) -> Registration:
    f.reject_unknown(body, {"phone", "password", "name", "employer_id"})
    phone = f.phone(body)
    password = f.password(body, min_len=f.PASSWORD_MIN)
    name = f.required_text(body, "name", max_len=f.NAME_MAX)
    employer = f.integer(body, "employer_id", minimum=1, required=False, nullable=True)
    return Registration(phone, password, name, employer)


def credentials(body: Mapping[str, Any]) -> Credentials:
    # Deliberately lenient on shape beyond types: a wrong phone format is just a failed login.
    phone = f.required_text(body, "phone", max_len=20)
    password = f.password(body)
    return Credentials(phone, password)


def org_draft(body: Mapping[str, Any]) -> OrgDraft:
    f.reject_unknown(
        body, {"type", "name", "unified_social_credit_code", "region_code", "parent_id", "sector"}
    )
    kind = f.required_choice(body, "type", OrgType)
    name = f.required_text(body, "name", max_len=f.ORG_NAME_MAX)
    uscc = f.text(body, "unified_social_credit_code", max_len=18, required=False)
    if uscc is not None and not f.USCC_RE.match(uscc):
        raise Invalid(
            "unified_social_credit_code must be an 18-character 统一社会信用代码",
            field="unified_social_credit_code",
        )
    region = f.text(body, "region_code", max_len=6, required=False)
    if region is not None and not f.REGION_RE.match(region):
        raise Invalid("region_code must be a 6-digit administrative division code", field="region_code")
    parent = f.integer(body, "parent_id", minimum=1, required=False, nullable=True)
    sector = f.text(body, "sector", max_len=f.SECTOR_MAX, required=False, min_len=0) or None
    if sector is not None and kind not in (*PROVIDER_TYPES, OrgType.INDUSTRY_DEPT):
        raise Invalid("only providers and industry departments have a sector", field="sector")
    return OrgDraft(kind, name, uscc, region, parent, sector)


def role_grant(body: Mapping[str, Any]) -> tuple[int, Role]:
    f.reject_unknown(body, {"person_id", "role"})
    return f.identifier(body, "person_id"), f.required_choice(body, "role", Role)


_COURSE_FIELDS = {
    "title",
    "description",
    "category",
    "industry",
    "specialty_tags",
    "credit_hours",
    "delivery",
    "capacity",
}


def course_draft(body: Mapping[str, Any]) -> CourseDraft:
    f.reject_unknown(body, _COURSE_FIELDS | {"provider_id"})
    provider = f.identifier(body, "provider_id")
    changes = course_changes(body, creating=True)
    return CourseDraft(
        provider_org_id=provider,
        title=changes["title"],
        description=changes.get("description", ""),
        category=changes["category"],
        industry=changes.get("industry", ""),
        specialty_tags=changes.get("specialty_tags", []),
        credit_hours=changes["credit_hours"],
        delivery=changes["delivery"],
        capacity=changes.get("capacity"),
    )


def course_changes(body: Mapping[str, Any], *, creating: bool = False) -> dict[str, Any]:
    """The validated fields present in `body` (all required ones when creating)."""
    if not creating:
        f.reject_unknown(body, _COURSE_FIELDS)
        if not body:
            raise Invalid("nothing to change")
    out: dict[str, Any] = {}
    if creating or "title" in body:
        out["title"] = f.required_text(body, "title", max_len=f.TITLE_MAX)
    if "description" in body:
        out["description"] = (
            f.text(body, "description", max_len=f.DESCRIPTION_MAX, min_len=0, multiline=True) or ""
        )
    if creating or "category" in body:
        out["category"] = f.required_choice(body, "category", Category)
    if "industry" in body:
        out["industry"] = f.text(body, "industry", max_len=f.INDUSTRY_MAX, min_len=0) or ""
    if "specialty_tags" in body:
        out["specialty_tags"] = f.tags(body, "specialty_tags") or []
    if creating or "credit_hours" in body:
        out["credit_hours"] = f.credit_hours(body, "credit_hours")
    if creating or "delivery" in body:
        out["delivery"] = f.required_choice(body, "delivery", Delivery)
    if "capacity" in body:
        out["capacity"] = f.integer(body, "capacity", minimum=1, maximum=1_000_000, nullable=True)
    return out


_SESSION_FIELDS = {
    "title",
    "kind",
    "scheduled_start",
    "scheduled_end",
    "actual_start",
    "actual_end",
    "external_platform",
    "external_ids",
    "location",
}
LOCATION_MAX = 200


def session_draft(body: Mapping[str, Any], now: datetime) -> SessionDraft:
    """A new session: its schedule must lie ahead of `now` (PAST_GRACE allowed) and end after its start;
    `expert_ids` (optional) names its experts in the same request."""
    f.reject_unknown(body, (_SESSION_FIELDS - {"actual_start", "actual_end"}) | {"expert_ids"})
    changes = session_changes(body, now, creating=True)
    draft = SessionDraft(
        title=changes["title"],
        kind=changes["kind"],
        scheduled_start=changes["scheduled_start"],
        scheduled_end=changes["scheduled_end"],
        external_platform=changes.get("external_platform", ExternalPlatform.NONE),
        external_ids=changes.get("external_ids", {}),
        expert_ids=f.id_list(body, "expert_ids", max_items=EXPERTS_MAX) if "expert_ids" in body else [],
        location=changes.get("location"),
    )
    check_platform(draft.kind, draft.external_platform)
    check_location(draft.kind, draft.location)
    return draft


def session_changes(body: Mapping[str, Any], now: datetime, *, creating: bool = False) -> dict[str, Any]:
    """The validated fields present in `body`. A scheduled start or end given here must not lie in the
    past (before `now` - PAST_GRACE): rescheduling into the past is a typo, and what really happened is
    recorded in actual_start/actual_end instead."""
    if not creating:
        for name in ("actual_start", "actual_end"):
            if name in body:
                # The server's own times bound credit (fraud 17): a correction is an audited act.
                raise Invalid(
                    f"{name} is not editable: the server records it; correct it with "
                    "POST /api/sessions/{session_id}/time-corrections",
                    field=name,
                    details={"reason": "field_not_editable"},
                )
        f.reject_unknown(body, _SESSION_FIELDS)
        if not body:
            raise Invalid("nothing to change")
    out: dict[str, Any] = {}
    if creating or "title" in body:
        out["title"] = f.required_text(body, "title", max_len=f.TITLE_MAX)
    if creating or "kind" in body:
        out["kind"] = f.required_choice(body, "kind", SessionKind)
    for name in ("scheduled_start", "scheduled_end"):
        if creating or name in body:
            out[name] = f.instant(body, name)
    if "scheduled_start" in out and "scheduled_end" in out:
        check_schedule(out["scheduled_start"], out["scheduled_end"])
    for name in ("scheduled_start", "scheduled_end"):
        if name in out:
            check_not_past(out[name], now, name)
    for name in ("actual_start", "actual_end"):
        if name in body:
            out[name] = f.instant(body, name, nullable=True)
    if "external_platform" in body:
        out["external_platform"] = f.required_choice(body, "external_platform", ExternalPlatform)
    if "external_ids" in body:
        out["external_ids"] = f.json_object(body, "external_ids") or {}
    if "location" in body:
        out["location"] = f.text(body, "location", max_len=LOCATION_MAX, required=False) or None
    return out


def check_schedule(start: datetime, end: datetime, field: str = "scheduled_end") -> None:
    if end <= start:
        raise Invalid(f"{field} must be after the start", field=field)


def check_not_past(value: datetime, now: datetime, field: str) -> None:
    if value < now - PAST_GRACE:
        raise Invalid(f"{field} is in the past", field=field, details={"now": now.isoformat()})


def check_platform(kind: SessionKind, platform: ExternalPlatform) -> None:
    if (kind == SessionKind.EXTERNAL) != (platform != ExternalPlatform.NONE):
        raise Invalid(
            "external sessions need an external_platform, other kinds must use none",
            field="external_platform",
        )


def check_location(kind: SessionKind, location: str | None) -> None:
    """An offline session is held somewhere: its learners are told where, and sign in there."""
    if kind == SessionKind.OFFLINE and not location:
        raise Invalid("an offline session needs a location", field="location")


def expert_ids(body: Mapping[str, Any]) -> list[int]:
    f.reject_unknown(body, {"person_ids"})
    return f.id_list(body, "person_ids", max_items=EXPERTS_MAX)


def employer_enrollment(body: Mapping[str, Any]) -> tuple[int, list[int]]:
    f.reject_unknown(body, {"course_id", "person_ids"})
    course = f.identifier(body, "course_id")
    people = f.id_list(body, "person_ids", max_items=500)
    if not people:
        raise Invalid("person_ids must not be empty", field="person_ids")
    return course, people


@dataclass(frozen=True)
class PlaybackBeat:
    """A replay page's heartbeat, as sent: the token comes back with every one, checked by the handler."""

    token: str
    seq: int
    position_s: float
    rate: float
    visible: bool
    angle: str


TOKEN_MAX = 2048
SEQ_MAX = 10**9


def _token(body: Mapping[str, Any]) -> str:
    # Not normalised text: a token is opaque ASCII, verified by its signature.
    value = body.get("token")
    if value is None:
        raise Invalid("token is required", field="token")
    if not isinstance(value, str) or not value or len(value) > TOKEN_MAX:
        raise Invalid(f"token must be a string of 1 to {TOKEN_MAX} characters", field="token")
    return value


def playback_beat(body: Mapping[str, Any], max_position_s: float = 1e7) -> PlaybackBeat:
    """Checks each field as reported (the credit engine, not this form, decides what is credited): the
    position within the media (`max_position_s`), a rate a player can have."""
    f.reject_unknown(body, {"token", "seq", "position_s", "rate", "visible", "angle"})
    seq = f.integer(body, "seq", minimum=0, maximum=SEQ_MAX)
    assert seq is not None
    return PlaybackBeat(
        token=_token(body),
        seq=seq,
        position_s=f.number(body, "position_s", minimum=0.0, maximum=max_position_s),
        rate=f.number(body, "rate", minimum=PLAYBACK_RATE_MIN, maximum=PLAYBACK_RATE_MAX),
        visible=f.boolean(body, "visible"),
        angle=f.required_text(body, "angle", max_len=32),
    )


def playback_token(body: Mapping[str, Any]) -> str:
    """The token of a playback request, read first (the other fields are checked against its grant)."""
    return _token(body)


def check_answer(body: Mapping[str, Any]) -> tuple[str, str]:
    """(token, nonce) of an answer to a replay presence check."""
    f.reject_unknown(body, {"token", "nonce"})
    nonce = body.get("nonce")
    if not isinstance(nonce, str) or not nonce or len(nonce) > 64:
        raise Invalid("nonce must be the string the check came with", field="nonce")
    return _token(body), nonce


def media_purpose(body: Mapping[str, Any]) -> MediaPurpose:
    f.reject_unknown(body, {"purpose"})
    return f.required_choice(body, "purpose", MediaPurpose)


def name_query(query: Mapping[str, str]) -> str:
    """The `q` of a directory search: part of a person's name."""
    return f.query_text(query, "q", max_len=f.NAME_MAX)


def course_query(query: Mapping[str, str]) -> CourseQuery:
    sort = query.get("sort") or "-created_at"
    if sort not in COURSE_SORTS:
        raise Invalid(f"sort must be one of: {', '.join(COURSE_SORTS)}", field="sort")
    q = f.query_text(query, "q", max_len=100)
    industry = f.query_text(query, "industry", max_len=f.INDUSTRY_MAX)
    starts_from = f.parse_instant(query["from"], "from", allow_date=True) if query.get("from") else None
    starts_to = f.parse_instant(query["to"], "to", allow_date=True) if query.get("to") else None
    if starts_from and starts_to and starts_to < starts_from:
        raise Invalid("to must not be before from", field="to")
    status_text = query.get("status") or CourseStatus.PUBLISHED.value
    status = None if status_text == "all" else f.query_choice({"status": status_text}, "status", CourseStatus)
    if status != CourseStatus.PUBLISHED and not query.get("provider_id"):
        raise Invalid("listing unpublished courses needs provider_id", field="provider_id")
    return CourseQuery(
        status=status,
        category=f.query_choice(query, "category", Category),
        industry=industry or None,
        provider_id=f.query_int(query, "provider_id", default=None, minimum=1, maximum=f.BIGINT_MAX),
        delivery=f.query_choice(query, "delivery", Delivery),
        starts_from=starts_from,
        starts_to=starts_to,
        q=q or None,
        sort=sort,
    )


def org_type_filter(query: Mapping[str, str]) -> OrgType | None:
    return f.query_choice(query, "type", OrgType)


def match_person(body: Mapping[str, Any]) -> int | None:
    """`{"person_id": <id> | null}`: whom an external record is; null: nobody to credit."""
    f.reject_unknown(body, {"person_id"})
    return f.integer(body, "person_id", minimum=1, nullable=True)


def optional_platform(query: Mapping[str, str]) -> Platform | None:
    """`?platform=` of a file import: for a session not linked to a meeting (else guessed from the file)."""
    return f.query_choice(query, "platform", Platform)
