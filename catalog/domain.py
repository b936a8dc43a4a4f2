"""The catalog's vocabulary and pure rules: enumerations, who may hold which role where, course states.

Pure: imports nothing of aiohttp or SQLAlchemy, so it is tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

from infra.errors import Conflict

PersonId = NewType("PersonId", int)
OrgId = NewType("OrgId", int)
CourseId = NewType("CourseId", int)
SessionId = NewType("SessionId", int)
RecordingId = NewType("RecordingId", str)  # made by the recorder, e.g. "20250301T083000-3f9a1c"


class OrgType(StrEnum):
    HRSS_BUREAU = "hrss_bureau"
    INDUSTRY_DEPT = "industry_dept"
    CE_ASSOCIATION = "ce_association"
    CE_BASE = "ce_base"
    TRAINING_INSTITUTION = "training_institution"
    EMPLOYER = "employer"


PROVIDER_TYPES = frozenset({OrgType.CE_BASE, OrgType.TRAINING_INSTITUTION})


class Role(StrEnum):
    LEARNER = "learner"
    EXPERT = "expert"
    PROVIDER_ADMIN = "provider_admin"
    EMPLOYER_ADMIN = "employer_admin"
    REVIEWER = "reviewer"
    BUREAU = "bureau"
    ADMIN = "admin"


# Which organization types a role may be held in; None in the set means "no organization" (global).
ROLE_ORG_TYPES: dict[Role, frozenset[OrgType | None]] = {
    Role.LEARNER: frozenset({None, *OrgType}),
    Role.EXPERT: frozenset({None, *OrgType}),
    Role.PROVIDER_ADMIN: frozenset(PROVIDER_TYPES),
    Role.EMPLOYER_ADMIN: frozenset({OrgType.EMPLOYER}),
    Role.REVIEWER: frozenset({OrgType.CE_ASSOCIATION}),
    Role.BUREAU: frozenset({OrgType.HRSS_BUREAU, OrgType.INDUSTRY_DEPT}),
    Role.ADMIN: frozenset({None, OrgType.HRSS_BUREAU}),
}


class Category(StrEnum):
    PUBLIC = "public"  # 公需科目
    PROFESSIONAL = "professional"  # 专业科目


class Delivery(StrEnum):
    LIVE = "live"
    RECORDED = "recorded"
    EXTERNAL = "external"
    OFFLINE = "offline"


class CourseStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class SessionKind(StrEnum):
    LIVE = "live"
    EXTERNAL = "external"
    OFFLINE = "offline"


class ExternalPlatform(StrEnum):
    NONE = "none"
    TENCENT = "tencent"
    DINGTALK_CONF = "dingtalk_conf"
    DINGTALK_LIVE = "dingtalk_live"


class EnrollmentSource(StrEnum):
    SELF = "self"
    EMPLOYER = "employer"


class EnrollmentStatus(StrEnum):
    ENROLLED = "enrolled"
    WITHDRAWN = "withdrawn"


class MediaPurpose(StrEnum):
    WHIP = "whip"
    WHEP = "whep"
    ROOM = "room"  # the room channel (WebSocket): same people as WHEP


class RecordingState(StrEnum):
    OPEN = "open"  # being recorded (not written by the catalog yet: only finalized recordings are replays)
    FINALIZED = "finalized"


# action -> (states it may start from, state it leads to)
COURSE_TRANSITIONS: dict[str, tuple[frozenset[CourseStatus], CourseStatus]] = {
    "publish": (frozenset({CourseStatus.DRAFT}), CourseStatus.PUBLISHED),
    "archive": (frozenset({CourseStatus.DRAFT, CourseStatus.PUBLISHED}), CourseStatus.ARCHIVED),
}


def next_course_status(current: CourseStatus, action: str) -> CourseStatus:
    """The status a course moves to on `action`, or Conflict when the transition is not allowed."""
    sources, target = COURSE_TRANSITIONS[action]
    if current not in sources:
        raise Conflict(
            f"cannot {action} a course that is {current.value}",
            field="status",
            details={"status": current.value, "action": action},
        )
    return target


def role_allowed_in(role: Role, org_type: OrgType | None) -> bool:
    return org_type in ROLE_ORG_TYPES[role]


def mask_phone(phone: str) -> str:
    """138****5678: enough for a provider to tell learners apart, not enough to call them."""
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "***"


@dataclass(frozen=True)
class Caller:
    """Who is asking: a logged-in person with the roles they hold, each in an organization or globally."""

    person_id: int
    employer_org_id: int | None
    roles: frozenset[tuple[Role, int | None]]
    csrf_token: str = field(default="", repr=False)
    # The providers a caller whose bureau roles are all in industry departments (行业主管部门) supervises:
    # those in the departments' sectors (catalog.accounts.authenticate sets it). None: no such limit, i.e.
    # the bureau roles include the HR&SS bureau (人社局), which supervises every provider.
    sector_providers: frozenset[int] | None = None

    def holds(self, role: Role, org_id: int | None = None, *, anywhere: bool = False) -> bool:
        if anywhere:
            return any(r == role for r, _ in self.roles)
        return (role, org_id) in self.roles

    @property
    def is_admin(self) -> bool:
        return self.holds(Role.ADMIN, anywhere=True)

    @property
    def is_supervisor(self) -> bool:
        """Admins and HR&SS bureau staff see everything. An industry department is not one: it supervises
        the providers of its sector only (supervises_provider)."""
        return self.is_admin or (self.holds(Role.BUREAU, anywhere=True) and self.sector_providers is None)

    def supervises_provider(self, org_id: int) -> bool:
        """Whether the caller oversees provider `org_id` as the bureau, an admin or its sector's industry
        department (reads its courses, sessions, attendance, credit and flags; decides nothing)."""
        return self.is_supervisor or (
            self.holds(Role.BUREAU, anywhere=True)
            and self.sector_providers is not None
            and org_id in self.sector_providers
        )

    def manages_provider(self, org_id: int) -> bool:
        return self.is_admin or self.holds(Role.PROVIDER_ADMIN, org_id)

    def reads_provider(self, org_id: int) -> bool:
        """Whether the caller may read provider `org_id`'s unpublished courses, attendance, credit and
        flags: its administrators and those who supervise it."""
        return self.manages_provider(org_id) or self.supervises_provider(org_id)
