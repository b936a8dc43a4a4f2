"""`lectern demo`: seeds a believable Qingdao world (bureau, association, providers, employers, experts,
learners, published courses, a live session about to start) and prints the logins. Running it twice is safe:
everything is looked up by its natural key (organization name, phone, course title) before it is created.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import accounts
from catalog.db import Database
from catalog.domain import (
    Category,
    CourseStatus,
    Delivery,
    EnrollmentSource,
    EnrollmentStatus,
    OrgType,
    Role,
    SessionKind,
)
from catalog.lifecycle import WHIP_OPENS_BEFORE_START
from catalog.models import Course, Enrollment, Organization, Person, RoleAssignment, Session, SessionExpert
from infra.settings import Settings

DEMO_PASSWORD = "lectern-demo-2026"  # printed on purpose: these are demo accounts on a demo database
DEMO_LIVE_STARTS_IN = WHIP_OPENS_BEFORE_START - timedelta(minutes=5)  # the live session, from seeding

ORGS: tuple[tuple[str, OrgType, str, str | None], ...] = (
    ("bureau", OrgType.HRSS_BUREAU, "青岛市人力资源和社会保障局", None),
    ("association", OrgType.CE_ASSOCIATION, "青岛市继续教育协会", "bureau"),
    ("base", OrgType.CE_BASE, "青岛市专业技术人员继续教育基地（青岛科技大学）", "bureau"),
    ("institution", OrgType.TRAINING_INSTITUTION, "青岛海川职业培训学校", "bureau"),
    ("port", OrgType.EMPLOYER, "山东港口青岛港集团有限公司", None),
    ("hospital", OrgType.EMPLOYER, "青岛市市立医院", None),
)

# (phone, name, employer key, [(role, org key | None)])
PEOPLE: tuple[tuple[str, str, str | None, tuple[tuple[Role, str | None], ...]], ...] = (
    ("13800000001", "系统管理员", None, ((Role.ADMIN, None),)),
    ("13800000002", "王建国（人社局）", None, ((Role.BUREAU, "bureau"),)),
    ("13800000003", "李秀英（继教协会审核）", None, ((Role.REVIEWER, "association"),)),
    ("13800000004", "张伟（基地管理员）", None, ((Role.PROVIDER_ADMIN, "base"),)),
    ("13800000005", "刘洋（培训学校管理员）", None, ((Role.PROVIDER_ADMIN, "institution"),)),
    ("13800000006", "陈静（港口人事）", "port", ((Role.EMPLOYER_ADMIN, "port"), (Role.LEARNER, "port"))),
    (
        "13800000007",
        "赵敏（医院科教科）",
        "hospital",
        ((Role.EMPLOYER_ADMIN, "hospital"), (Role.LEARNER, "hospital")),
    ),
    ("13800000008", "孙立教授", None, ((Role.EXPERT, None),)),
    ("13800000009", "周红主任医师", None, ((Role.EXPERT, None),)),
    ("13800000010", "吴磊（港口工程师）", "port", ((Role.LEARNER, "port"),)),
    ("13800000011", "郑丽（港口会计师）", "port", ((Role.LEARNER, "port"),)),
    ("13800000012", "冯涛（主治医师）", "hospital", ((Role.LEARNER, "hospital"),)),
)

# (provider key, title, category, industry, tags, hours, delivery, description)
COURSES: tuple[tuple[str, str, Category, str, tuple[str, ...], str, Delivery, str], ...] = (
    (
        "base",
        "专业技术人员职业道德与诚信建设",
        Category.PUBLIC,
        "综合",
        ("职业道德",),
        "6.0",
        Delivery.LIVE,
        "公需科目：职业道德、诚信体系与专业技术人员的社会责任。",
    ),
    (
        "base",
        "数字经济与人工智能应用概论",
        Category.PUBLIC,
        "综合",
        ("数字经济", "人工智能"),
        "4.0",
        Delivery.RECORDED,
        "公需科目：数字经济发展趋势、人工智能在各行业的应用案例。",
    ),
    (
        "base",
        "智慧港口自动化码头关键技术",
        Category.PROFESSIONAL,
        "交通运输",
        ("港口", "自动化"),
        "8.0",
        Delivery.LIVE,
        "专业科目：自动化集装箱码头的系统架构、远程操控与安全管理。",
    ),
    (
        "institution",
        "临床合理用药与抗菌药物管理",
        Category.PROFESSIONAL,
        "卫生健康",
        ("药学", "临床"),
        "6.0",
        Delivery.LIVE,
        "专业科目：抗菌药物分级管理、处方点评与典型案例分析。",
    ),
    (
        "institution",
        "建设工程安全生产管理实务",
        Category.PROFESSIONAL,
        "建筑",
        ("安全生产",),
        "12.0",
        Delivery.OFFLINE,
        "专业科目：施工现场安全管理、危大工程识别与应急处置。",
    ),
)


@dataclass(frozen=True)
class Login:
    phone: str
    name: str
    roles: str


async def _org(s: AsyncSession, kind: OrgType, name: str, parent_id: int | None, now: datetime) -> int:
    found = await s.scalar(select(Organization.id).where(Organization.name == name))
    if found is not None:
        return int(found)
    org = Organization(type=kind.value, name=name, region_code="370200", parent_id=parent_id, created_at=now)
    s.add(org)
    await s.flush()
    return org.id


async def _person(
    s: AsyncSession,
    phone: str,
    name: str,
    employer: int | None,
    password_hash: str,
    roles: list[tuple[Role, int | None]],
    now: datetime,
) -> int:
    person = (await s.scalars(select(Person).where(Person.phone == phone))).first()
    if person is None:
        person = Person(
            name=name, phone=phone, password_hash=password_hash, employer_org_id=employer, created_at=now
        )
        s.add(person)
        await s.flush()
    held = {
        (r.role, r.org_id)
        for r in await s.scalars(select(RoleAssignment).where(RoleAssignment.person_id == person.id))
    }
    for role, org_id in roles:
        if (role.value, org_id) not in held:
            s.add(RoleAssignment(person_id=person.id, role=role.value, org_id=org_id, created_at=now))
    return person.id


async def seed(db: Database, now: datetime) -> list[Login]:
    """Create what is missing of the demo world; returns its logins."""
    password_hash = await accounts.hash_password(DEMO_PASSWORD)
    logins: list[Login] = []
    async with db.sessions.begin() as s:
        orgs: dict[str, int] = {}
        for key, kind, name, parent in ORGS:
            orgs[key] = await _org(s, kind, name, orgs[parent] if parent else None, now)
        people: dict[str, int] = {}
        for phone, name, employer, roles in PEOPLE:
            people[phone] = await _person(
                s,
                phone,
                name,
                orgs[employer] if employer else None,
                password_hash,
                [(role, orgs[org] if org else None) for role, org in roles],
                now,
            )
            logins.append(Login(phone, name, ", ".join(r.value for r, _ in roles)))
        course_ids: dict[str, int] = {}
        for provider, title, category, industry, tags, hours, delivery, description in COURSES:
            found = await s.scalar(select(Course.id).where(Course.title == title))
            if found is None:
                course = Course(
                    provider_org_id=orgs[provider],
                    title=title,
                    description=description,
                    category=category.value,
                    industry=industry,
                    specialty_tags=list(tags),
                    credit_hours=Decimal(hours),
                    delivery=delivery.value,
                    status=CourseStatus.PUBLISHED.value,
                    capacity=200,
                    created_at=now,
                    updated_at=now,
                )
                s.add(course)
                await s.flush()
                found = course.id
            course_ids[title] = int(found)
        live_course = course_ids["智慧港口自动化码头关键技术"]
        has_session = await s.scalar(select(Session.id).where(Session.course_id == live_course))
        if has_session is None:
            # Two hours, starting in 25 minutes (to the minute): inside the window in which its expert may
            # go live (catalog.lifecycle.WHIP_OPENS_BEFORE_START), so that the demo can go live at once.
            start = (now + DEMO_LIVE_STARTS_IN).replace(second=0, microsecond=0)
            session = Session(
                course_id=live_course,
                title="第一讲：自动化码头总体架构",
                kind=SessionKind.LIVE.value,
                scheduled_start=start,
                scheduled_end=start + timedelta(hours=2),
                external_platform="none",
                external_ids={},
            )
            s.add(session)
            await s.flush()
            s.add(SessionExpert(session_id=session.id, person_id=people["13800000008"]))
        for phone in ("13800000010", "13800000011"):
            enrolled = await s.scalar(
                select(Enrollment.id).where(
                    Enrollment.person_id == people[phone],
                    Enrollment.course_id == live_course,
                    Enrollment.status == EnrollmentStatus.ENROLLED.value,
                )
            )
            if enrolled is None:
                s.add(
                    Enrollment(
                        person_id=people[phone],
                        course_id=live_course,
                        source=EnrollmentSource.EMPLOYER.value,
                        status=EnrollmentStatus.ENROLLED.value,
                        enrolled_at=now,
                    )
                )
    return logins


def _pad(text: str, width: int) -> str:
    """Pad to a terminal display width: CJK characters take two columns."""
    shown = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - shown)


def format_logins(logins: list[Login]) -> str:
    width = max(len(x.name) * 2 for x in logins) + 2
    lines = [f"{'phone':<13}{'password':<20}{_pad('name', width)}roles"]
    lines += [f"{x.phone:<13}{DEMO_PASSWORD:<20}{_pad(x.name, width)}{x.roles}" for x in logins]
    return "\n".join(lines)


async def run(settings: Settings) -> int:
    """Seed the demo world into the (already migrated) database and print the logins."""
    db = Database(settings.effective_database_url)
    try:
        logins = await seed(db, datetime.now(UTC))
    finally:
        await db.close()
    print("Lectern demo world (青岛). Log in with:")
    print(format_logins(logins))
    return 0
