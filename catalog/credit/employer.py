"""The employer's 学时台账: each staff member's registered 学时 of a credit year by 公需/专业 against the
policy in force (R1, R2; only registered credit counts, R23), who is short and by how much, pending 学时
apart, and the enrolments the employer arranged; and the study record that 25号令 requires employers to
keep (one row per ledger entry), read in batches so that its export is streamed. Read models only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, Numeric, and_, case, cast, func, literal, literal_column, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from catalog.credit import engine
from catalog.credit.export import Cell
from catalog.credit.ledger import PENDING, REGISTERED, REJECTED, REVERSAL, REVOKED
from catalog.credit.policies import current
from catalog.credit.policy import CreditPolicy
from catalog.db import Database
from catalog.domain import Caller, EnrollmentSource, OrgType, Role, mask_phone
from catalog.fields import Page
from catalog.models import Course, CreditDecision, CreditEntry, Enrollment, Organization, Person
from infra.errors import Forbidden, NotFound

SORTS = ("shortfall", "-shortfall", "name")  # most short first (default), least short first, by name
CENT = Decimal("0.01")
RECORD_BATCH = 1000  # study-record rows read per query (each batch its own short transaction)

FORM = {
    "live": "直播",
    "hls": "直播（分流）",
    "replay": "回放",
    "external": "外部会议",
    "offline": "线下",
    "mentorship": "师承带徒",
    REVERSAL: "更正（冲销）",
}
STATUS = {PENDING: "待审核", REGISTERED: "已认定", REJECTED: "已驳回", REVOKED: "已撤销"}
CATEGORY = {"public": "公需科目", "professional": "专业科目"}
RECORD_HEADER: tuple[str, ...] = (
    "姓名",
    "手机号",
    "课程",
    "科目类别",
    "学习形式",
    "日期",
    "学时",
    "状态",
    "审核日期",
    "说明",
)


# -- who may read an employer's staff ------------------------------------------------------------------


async def _is_hr_bureau(s: AsyncSession, caller: Caller) -> bool:
    """Bureau staff of an HR&SS bureau (an industry department supervises providers, not employers)."""
    orgs = [org for role, org in caller.roles if role == Role.BUREAU and org is not None]
    if not orgs:
        return False
    found = await s.scalar(
        select(Organization.id)
        .where(Organization.id.in_(orgs), Organization.type == OrgType.HRSS_BUREAU.value)
        .limit(1)
    )
    return found is not None


async def _employer(s: AsyncSession, caller: Caller, org_id: int) -> Organization:
    """The employer, if the caller is one of its administrators, an HR bureau's staff or an admin."""
    org = await s.get(Organization, org_id)
    if org is None or org.type != OrgType.EMPLOYER.value:
        raise NotFound(f"employer {org_id} not found", field="org_id")
    if caller.is_admin or caller.holds(Role.EMPLOYER_ADMIN, org_id) or await _is_hr_bureau(s, caller):
        return org
    raise Forbidden("only this employer's administrators (and the HR bureau) see its staff", field="org_id")


async def check_reader(db: Database, caller: Caller, org_id: int) -> str:
    """The employer's name when the caller may read its staff; NotFound / Forbidden otherwise."""
    async with db.sessions.begin() as s:
        return (await _employer(s, caller, org_id)).name


# -- the figures of one person -------------------------------------------------------------------------


def _cents(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def _xueshi(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def standing(
    registered: dict[str, Decimal], pending: dict[str, Decimal], policy: CreditPolicy
) -> dict[str, Any]:
    """A person's year against the requirement: the annual summary (engine.annual_summary), how much each
    category and the total still lack, and `shortfall`, the registered 学时 still needed to meet all
    three (the larger of the total's lack and the two categories' lacks together)."""
    summary = engine.annual_summary(
        [(c, REGISTERED, x) for c, x in registered.items()] + [(c, PENDING, x) for c, x in pending.items()],
        policy,
    )
    short = {
        "public": max(Decimal(0), summary.required_public - summary.registered["public"]),
        "professional": max(Decimal(0), summary.required_professional - summary.registered["professional"]),
        "total": max(Decimal(0), summary.required_total - summary.total_registered),
    }
    need = max(short["total"], short["public"] + short["professional"])
    return summary.to_dict() | {
        "short": {k: str(v.quantize(CENT)) for k, v in short.items()},
        "shortfall": str(need.quantize(CENT)),
    }


# -- the staff overview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    """The per-person sums (in hundredths of a 学时, exact on every engine) and the shortfall expression."""

    reg_public: ColumnElement[int]
    reg_professional: ColumnElement[int]
    pend_public: ColumnElement[int]
    pend_professional: ColumnElement[int]
    shortfall: ColumnElement[int]


def _columns(org_id: int, year: int, policy: CreditPolicy) -> tuple[Any, _Columns]:
    # Hundredths as integers: SQLite sums Numeric as floats, and 89.99999 must not read as short of 90.
    cents = cast(func.round(cast(CreditEntry.xueshi, Numeric(8, 2)) * literal_column("100")), Integer)

    def part(status: str, category: str) -> ColumnElement[int]:
        hit = and_(CreditEntry.status == status, CreditEntry.category == category)
        return func.coalesce(func.sum(case((hit, cents), else_=0)), 0)

    sums = (
        select(
            CreditEntry.person_id.label("person_id"),
            part(REGISTERED, "public").label("reg_public"),
            part(REGISTERED, "professional").label("reg_professional"),
            part(PENDING, "public").label("pend_public"),
            part(PENDING, "professional").label("pend_professional"),
        )
        .where(
            CreditEntry.credit_year == year,
            CreditEntry.person_id.in_(select(Person.id).where(Person.employer_org_id == org_id)),
        )
        .group_by(CreditEntry.person_id)
        .subquery("sums")
    )
    reg_public = func.coalesce(sums.c.reg_public, 0)
    reg_professional = func.coalesce(sums.c.reg_professional, 0)

    def lack(required: Decimal, got: ColumnElement[int]) -> ColumnElement[int]:
        need = literal(_cents(required), Integer)
        return case((got < need, need - got), else_=0)

    short_public = lack(policy.annual_public_min_xueshi, reg_public)
    short_professional = lack(policy.annual_professional_min_xueshi, reg_professional)
    short_total = lack(policy.annual_total_xueshi, reg_public + reg_professional)
    both = short_public + short_professional
    shortfall = case((short_total > both, short_total), else_=both)
    return sums, _Columns(
        reg_public,
        reg_professional,
        func.coalesce(sums.c.pend_public, 0),
        func.coalesce(sums.c.pend_professional, 0),
        shortfall,
    )


async def staff_overview(
    db: Database, caller: Caller, org_id: int, year: int, page: Page, *, sort: str, short_only: bool
) -> dict[str, Any]:
    """The employer's staff (Person.employer_org_id) with their year's figures, a page at a time, most short
    first (or least short first, or by name); `short_only` keeps those who have not met the requirement.
    Counts over all the staff: how many, how many met it, how many are short."""
    async with db.sessions.begin() as s:
        org = await _employer(s, caller, org_id)
        policy = await current(s)
        sums, col = _columns(org_id, year, policy)
        staff = (
            select(
                Person.id,
                Person.name,
                Person.phone,
                col.reg_public.label("reg_public"),
                col.reg_professional.label("reg_professional"),
                col.pend_public.label("pend_public"),
                col.pend_professional.label("pend_professional"),
                col.shortfall.label("shortfall"),
            )
            .outerjoin(sums, sums.c.person_id == Person.id)
            .where(Person.employer_org_id == org_id)
        )
        every = staff.subquery("staff")
        total_staff, short_staff = (
            await s.execute(
                select(func.count(), func.coalesce(func.sum(case((every.c.shortfall > 0, 1), else_=0)), 0))
            )
        ).one()
        if short_only:
            staff = staff.where(col.shortfall > 0)
        order = {
            "shortfall": (col.shortfall.desc(), Person.name, Person.id),
            "-shortfall": (col.shortfall.asc(), Person.name, Person.id),
            "name": (Person.name, Person.id),
        }[sort]
        rows = (await s.execute(staff.order_by(*order).offset(page.offset).limit(page.page_size))).all()
        ids = [r.id for r in rows]
        arranged = await _arranged(s, ids, year)
    items = []
    for r in rows:
        figures = standing(
            {"public": _xueshi(r.reg_public), "professional": _xueshi(r.reg_professional)},
            {"public": _xueshi(r.pend_public), "professional": _xueshi(r.pend_professional)},
            policy,
        )
        items.append(
            {"person_id": r.id, "name": r.name, "phone": mask_phone(r.phone)}
            | figures
            | {"arranged": arranged.get(r.id, [])}
        )
    listed = int(short_staff) if short_only else int(total_staff)
    return {
        "org": {"id": org.id, "name": org.name},
        "year": year,
        "policy_version": policy.version,
        "required": {
            "total": str(policy.annual_total_xueshi),
            "public": str(policy.annual_public_min_xueshi),
            "professional": str(policy.annual_professional_min_xueshi),
        },
        "counts": {
            "staff": int(total_staff),
            "met": int(total_staff) - int(short_staff),
            "short": int(short_staff),
        },
        "sort": sort,
        "short_only": short_only,
        "items": items,
        "total": listed,
        "page": page.page,
        "page_size": page.page_size,
    }


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=engine.BEIJING), datetime(year + 1, 1, 1, tzinfo=engine.BEIJING)


async def _arranged(s: AsyncSession, person_ids: list[int], year: int) -> dict[int, list[dict[str, Any]]]:
    """Per person, the enrolments their employer made (source employer) that were open at some time in
    the year, with the 学时 the person has in each course that year (registered, pending)."""
    if not person_ids:
        return {}
    start, end = _year_bounds(year)
    rows = (
        await s.execute(
            select(Enrollment, Course.title, Course.category)
            .join(Course, Course.id == Enrollment.course_id)
            .where(
                Enrollment.person_id.in_(person_ids),
                Enrollment.source == EnrollmentSource.EMPLOYER.value,
                Enrollment.enrolled_at < end,
                or_(Enrollment.withdrawn_at.is_(None), Enrollment.withdrawn_at >= start),
            )
            .order_by(Enrollment.enrolled_at, Enrollment.id)
        )
    ).all()
    if not rows:
        return {}
    by_course: dict[tuple[int, int | None, str], Decimal] = defaultdict(Decimal)
    for pid, course_id, status, xueshi in await s.execute(
        select(CreditEntry.person_id, CreditEntry.course_id, CreditEntry.status, func.sum(CreditEntry.xueshi))
        .where(
            CreditEntry.credit_year == year,
            CreditEntry.person_id.in_(person_ids),
            CreditEntry.course_id.in_({e.course_id for e, _, _ in rows}),
        )
        .group_by(CreditEntry.person_id, CreditEntry.course_id, CreditEntry.status)
    ):
        by_course[(pid, course_id, status)] += Decimal(str(xueshi or 0))
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e, title, category in rows:
        out[e.person_id].append(
            {
                "enrollment_id": e.id,
                "course_id": e.course_id,
                "course_title": title,
                "category": category,
                "status": e.status,
                "enrolled_at": e.enrolled_at.isoformat(),
                "withdrawn_at": e.withdrawn_at.isoformat() if e.withdrawn_at else None,
                "registered_xueshi": str(by_course[(e.person_id, e.course_id, REGISTERED)].quantize(CENT)),
                "pending_xueshi": str(by_course[(e.person_id, e.course_id, PENDING)].quantize(CENT)),
            }
        )
    return dict(out)


# -- the study record (25号令: type, content, time, result of each person's study) -----------------------


def _beijing(t: datetime | None) -> str | None:
    return t.astimezone(engine.BEIJING).strftime("%Y-%m-%d %H:%M") if t is not None else None


def _record_row(
    e: CreditEntry, name: str, phone: str, course_title: str | None, reason: str | None
) -> list[Cell]:
    # Why: a reversal's reason, else the latest decision's (a rejection's, a revocation's, an override's).
    if e.kind == REVERSAL:
        note = f"冲销第 {e.reversal_of_id} 条记录" + (f"：{e.note}" if e.note else "")
    else:
        note = reason or ""
    return [
        name,
        mask_phone(phone),
        course_title if course_title is not None else FORM.get(e.kind, e.kind),
        CATEGORY.get(e.category, e.category),
        FORM.get(e.kind, e.kind),
        e.credit_day,
        float(e.xueshi),
        STATUS.get(e.status, e.status),
        _beijing(e.decided_at),
        note or None,
    ]


async def study_record(db: Database, org_id: int, year: int) -> AsyncIterator[list[list[Cell]]]:
    """The rows of the study record (RECORD_HEADER), in batches: every ledger entry of the year of every
    staff member, by name, then day. Call `check_reader` first. Each batch is read in its own short
    transaction after the last row of the previous one (keyset), so a slow download holds no database
    connection; an approval made during the download shows in the rows not yet read."""
    latest_reason = (
        select(CreditDecision.reason)
        .where(CreditDecision.entry_id == CreditEntry.id)
        .order_by(CreditDecision.id.desc())
        .limit(1)
        .correlate(CreditEntry)
        .scalar_subquery()
    )
    stmt = (
        select(CreditEntry, Person.name, Person.phone, Course.title, latest_reason.label("reason"))
        .join(Person, Person.id == CreditEntry.person_id)
        .outerjoin(Course, Course.id == CreditEntry.course_id)  # a mentorship award has no course
        .where(Person.employer_org_id == org_id, CreditEntry.credit_year == year)
        .order_by(Person.name, Person.id, CreditEntry.credit_day, CreditEntry.id)
        .limit(RECORD_BATCH)
    )
    key = tuple_(Person.name, Person.id, CreditEntry.credit_day, CreditEntry.id)
    after: tuple[str, int, str, int] | None = None
    while True:
        async with db.sessions.begin() as s:
            rows = (await s.execute(stmt if after is None else stmt.where(key > tuple_(*after)))).all()
        if not rows:
            return
        yield [_record_row(e, name, phone, title, reason) for e, name, phone, title, reason in rows]
        last = rows[-1]
        after = (last[1], last[0].person_id, last[0].credit_day, last[0].id)
        if len(rows) < RECORD_BATCH:
            return
