"""Annual training plan use cases: draft, edit, publish, enroll the targeted staff, plan vs actual.

Who: the employer's administrators (and admins) do everything; the bureau reads; anyone else does not
see a plan at all (404). Items target the employer's own staff only (persons.employer_org_id).
A draft is edited freely. A published plan is a commitment: its title and items no longer change and
none is removed, but items may still be added (a course announced mid-year, a new hire), and staff are
enrolled from it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import enrollments, publishing, queries
from catalog.db import Database
from catalog.domain import Caller, CourseStatus, EnrollmentSource, EnrollmentStatus, OrgType, Role, mask_phone
from catalog.fields import Page
from catalog.models import (
    Course,
    CreditEntry,
    Enrollment,
    Organization,
    Person,
    TrainingPlan,
    TrainingPlanItem,
    TrainingPlanTarget,
)
from catalog.plans import figures
from catalog.plans.figures import PlanStatus
from catalog.plans.forms import ItemSpec, NewPlan
from catalog.search import like_pattern
from infra.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

log = logging.getLogger(__name__)


def _may_manage(caller: Caller, org_id: int) -> bool:
    return caller.is_admin or caller.holds(Role.EMPLOYER_ADMIN, org_id)


async def _employer_or_404(s: AsyncSession, caller: Caller, org_id: int, *, write: bool) -> Organization:
    org = await s.get(Organization, org_id)
    if org is None:
        raise NotFound(f"organization {org_id} not found", field="org_id")
    if not (_may_manage(caller, org_id) or (not write and caller.is_supervisor)):
        raise Forbidden("only this employer's administrators manage its training plans")
    if org.type != OrgType.EMPLOYER:
        raise Invalid("only employers have annual training plans", field="org_id")
    return org


async def _plan(s: AsyncSession, caller: Caller, plan_id: int, *, write: bool) -> TrainingPlan:
    """The plan for its employer's administrators and admins; the bureau may read (403 on writes);
    anyone else gets 404, as if it did not exist."""
    # A change locks the plan (PostgreSQL), so that it cannot slip in beside a publication.
    plan = await s.get(TrainingPlan, plan_id, with_for_update=write)
    if plan is None or not (_may_manage(caller, plan.employer_org_id) or caller.is_supervisor):
        raise NotFound(f"training plan {plan_id} not found", field="plan_id")
    if write and not _may_manage(caller, plan.employer_org_id):
        raise Forbidden("only the employer's administrators change its training plan")
    return plan


def _draft_only(plan: TrainingPlan, what: str) -> None:
    if plan.status != PlanStatus.DRAFT:
        raise Conflict(f"a published plan cannot {what}: only items may be added", field="status")


def _plan_head(plan: TrainingPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "employer_org_id": plan.employer_org_id,
        "year": plan.year,
        "title": plan.title,
        "status": plan.status,
        "created_by": plan.created_by,
        "created_at": plan.created_at.isoformat(),
        "published_at": plan.published_at.isoformat() if plan.published_at else None,
    }


async def _items(s: AsyncSession, plan_id: int) -> list[TrainingPlanItem]:
    return list(
        await s.scalars(
            select(TrainingPlanItem).where(TrainingPlanItem.plan_id == plan_id).order_by(TrainingPlanItem.id)
        )
    )


async def _targets(s: AsyncSession, item_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {i: [] for i in item_ids}
    if item_ids:
        rows = await s.execute(
            select(TrainingPlanTarget.item_id, TrainingPlanTarget.person_id)
            .where(TrainingPlanTarget.item_id.in_(item_ids))
            .order_by(TrainingPlanTarget.item_id, TrainingPlanTarget.person_id)
        )
        for item_id, person_id in rows:
            out[item_id].append(person_id)
    return out


async def _courses(s: AsyncSession, items: list[TrainingPlanItem]) -> dict[int, dict[str, Any]]:
    ids = sorted({i.course_id for i in items if i.course_id is not None})
    if not ids:
        return {}
    rows = await s.execute(
        select(Course.id, Course.title, Course.category, Course.status).where(Course.id.in_(ids))
    )
    return {cid: {"id": cid, "title": t, "category": c, "status": st} for cid, t, c, st in rows}


async def _plan_view(s: AsyncSession, plan: TrainingPlan) -> dict[str, Any]:
    items = await _items(s, plan.id)
    targets = await _targets(s, [i.id for i in items])
    names = await queries.names_of(s, sorted({p for ps in targets.values() for p in ps}))
    courses = await _courses(s, items)
    return {
        **_plan_head(plan),
        "items": [
            {
                "id": i.id,
                "course": courses.get(i.course_id) if i.course_id is not None else None,
                "category": i.category,
                "target_xueshi": str(i.target_xueshi),
                "note": i.note,
                "people": [{"id": p, "name": names.get(p, "")} for p in targets[i.id]],
                "created_at": i.created_at.isoformat(),
            }
            for i in items
        ],
    }


# -- plans -------------------------------------------------------------------------------------------------


async def create(db: Database, caller: Caller, org_id: int, new: NewPlan, now: datetime) -> dict[str, Any]:
    try:
        async with db.sessions.begin() as s:
            await _employer_or_404(s, caller, org_id, write=True)
            plan = TrainingPlan(
                employer_org_id=org_id,
                year=new.year,
                title=new.title,
                status=PlanStatus.DRAFT.value,
                created_by=caller.person_id,
                created_at=now,
            )
            s.add(plan)
            await s.flush()
            out = await _plan_view(s, plan)
    except IntegrityError:
        raise Conflict(f"this employer already has a training plan for {new.year}", field="year") from None
    log.info("training plan created id=%s org=%s year=%s by=%s", plan.id, org_id, new.year, caller.person_id)
    return out


async def list_for(db: Database, caller: Caller, org_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        await _employer_or_404(s, caller, org_id, write=False)
        plans = list(
            await s.scalars(
                select(TrainingPlan)
                .where(TrainingPlan.employer_org_id == org_id)
                .order_by(TrainingPlan.year.desc(), TrainingPlan.id.desc())
            )
        )
        counts = dict(
            (
                await s.execute(
                    select(TrainingPlanItem.plan_id, func.count())
                    .where(TrainingPlanItem.plan_id.in_([p.id for p in plans]))
                    .group_by(TrainingPlanItem.plan_id)
                )
            ).all()
        )
    return {"items": [{**_plan_head(p), "item_count": int(counts.get(p.id, 0))} for p in plans]}


async def get(db: Database, caller: Caller, plan_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        return await _plan_view(s, await _plan(s, caller, plan_id, write=False))


async def rename(db: Database, caller: Caller, plan_id: int, title: str) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=True)
        _draft_only(plan, "be renamed")
        plan.title = title
        return await _plan_view(s, plan)


async def publish(db: Database, caller: Caller, plan_id: int, now: datetime) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=True)
        if plan.status != PlanStatus.DRAFT:
            raise Conflict("the plan is already published", field="status")
        if not await _items(s, plan.id):
            raise Conflict("a plan without items cannot be published", field="items")
        plan.status = PlanStatus.PUBLISHED.value
        plan.published_at = now
        out = await _plan_view(s, plan)
    log.info("training plan published id=%s by=%s", plan_id, caller.person_id)
    return out


# -- items -------------------------------------------------------------------------------------------------


async def _check_course(s: AsyncSession, course_id: int) -> Course:
    """A course staff can be enrolled in: published (a draft is not found, an archived one is closed)."""
    course = await s.get(Course, course_id)
    if course is None or course.status == CourseStatus.DRAFT:
        raise Invalid(f"course {course_id} not found", field="course_id")
    if course.status != CourseStatus.PUBLISHED:
        raise Conflict(
            f"course {course_id} is {course.status}: plan published courses only", field="course_id"
        )
    return course


async def _check_staff(s: AsyncSession, org_id: int, person_ids: list[int]) -> None:
    staff = set(
        await s.scalars(select(Person.id).where(Person.id.in_(person_ids), Person.employer_org_id == org_id))
    )
    outsiders = [pid for pid in person_ids if pid not in staff]
    if outsiders:
        raise Forbidden(
            f"not staff of this employer: {', '.join(map(str, outsiders))}",
            field="person_ids",
            details={"person_ids": outsiders},
        )


async def _set_targets(s: AsyncSession, item_id: int, person_ids: list[int]) -> None:
    await s.execute(delete(TrainingPlanTarget).where(TrainingPlanTarget.item_id == item_id))
    s.add_all(TrainingPlanTarget(item_id=item_id, person_id=pid) for pid in person_ids)


async def add_item(
    db: Database, caller: Caller, plan_id: int, spec: ItemSpec, now: datetime
) -> dict[str, Any]:
    """Add an item to a draft or a published plan."""
    # forms.parse_item requires both of a new item (not of a change).
    assert spec.person_ids is not None
    assert spec.target_xueshi is not None
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=True)
        if spec.course_id is not None:
            await _check_course(s, spec.course_id)
        await _check_staff(s, plan.employer_org_id, spec.person_ids)
        item = TrainingPlanItem(
            plan_id=plan.id,
            course_id=spec.course_id,
            category=spec.category.value if spec.category else None,
            target_xueshi=spec.target_xueshi,
            note=spec.note or "",
            created_at=now,
        )
        s.add(item)
        await s.flush()
        await _set_targets(s, item.id, spec.person_ids)
        await s.flush()
        return await _plan_view(s, plan)


async def _item(s: AsyncSession, plan: TrainingPlan, item_id: int) -> TrainingPlanItem:
    item = await s.get(TrainingPlanItem, item_id)
    if item is None or item.plan_id != plan.id:
        raise NotFound(f"item {item_id} not found in this plan", field="item_id")
    return item


async def change_item(
    db: Database, caller: Caller, plan_id: int, item_id: int, spec: ItemSpec
) -> dict[str, Any]:
    """Change a draft plan's item: naming a course makes it a course item, a category a category item."""
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=True)
        item = await _item(s, plan, item_id)
        _draft_only(plan, "change its items")
        if spec.course_id is not None:
            await _check_course(s, spec.course_id)
            item.course_id, item.category = spec.course_id, None
        elif spec.category is not None:
            item.course_id, item.category = None, spec.category.value
        if spec.target_xueshi is not None:
            item.target_xueshi = spec.target_xueshi
        if spec.note is not None:
            item.note = spec.note
        if spec.person_ids is not None:
            await _check_staff(s, plan.employer_org_id, spec.person_ids)
            await _set_targets(s, item.id, spec.person_ids)
        await s.flush()
        return await _plan_view(s, plan)


async def remove_item(db: Database, caller: Caller, plan_id: int, item_id: int) -> dict[str, Any]:
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=True)
        item = await _item(s, plan, item_id)
        _draft_only(plan, "lose items")
        await s.execute(delete(TrainingPlanTarget).where(TrainingPlanTarget.item_id == item.id))
        await s.delete(item)
        await s.flush()
        return await _plan_view(s, plan)


# -- enrolling from the plan ---------------------------------------------------------------------------------


async def _enroll_item(
    s: AsyncSession, item: TrainingPlanItem, person_ids: list[int], now: datetime
) -> dict[str, Any]:
    """Enroll an item's targets in its course (all of them or none of them: capacity is checked for the
    batch); those already enrolled (themselves, by the employer or from another item) stay as they are."""
    assert item.course_id is not None
    course = await queries.course_or_404(s, item.course_id, for_update=True)
    already = set(
        await s.scalars(
            select(Enrollment.person_id).where(
                Enrollment.course_id == course.id,
                Enrollment.person_id.in_(person_ids),
                Enrollment.status == EnrollmentStatus.ENROLLED.value,
            )
        )
    )
    new_ids = [pid for pid in person_ids if pid not in already]
    if new_ids:
        enrollments.check_open(course, len(new_ids), await queries.active_count(s, course.id))
        await publishing.check_open_for_enrollment(s, course)
    s.add_all(
        Enrollment(
            person_id=pid,
            course_id=course.id,
            source=EnrollmentSource.EMPLOYER.value,
            status=EnrollmentStatus.ENROLLED.value,
            enrolled_at=now,
            plan_item_id=item.id,
        )
        for pid in new_ids
    )
    await s.flush()
    return {"created": new_ids, "already_enrolled": [pid for pid in person_ids if pid in already]}


async def enroll(db: Database, caller: Caller, plan_id: int, now: datetime) -> dict[str, Any]:
    """Enroll each course item's targets (a published plan; idempotent: running it again enrolls only
    those not enrolled yet). Each item succeeds or fails on its own (a full course, an archived one);
    category items enroll nobody (the staff choose their courses). People who have left the employer
    since they were targeted are not enrolled (`no_longer_staff`)."""
    results: list[dict[str, Any]] = []
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=True)
        if plan.status != PlanStatus.PUBLISHED:
            raise Conflict("publish the plan before enrolling staff from it", field="status")
        items = await _items(s, plan.id)
        targets = await _targets(s, [i.id for i in items])
        staff = set(
            await s.scalars(
                select(Person.id).where(
                    Person.id.in_({p for ps in targets.values() for p in ps}),
                    Person.employer_org_id == plan.employer_org_id,
                )
            )
        )
        # Courses are locked in id order, so two enrollments of overlapping plans cannot deadlock.
        for item in sorted(items, key=lambda i: (i.course_id or 0, i.id)):
            if item.course_id is None:
                results.append(
                    {"item_id": item.id, "skipped": "category", "created": [], "already_enrolled": []}
                )
                continue
            gone = [p for p in targets[item.id] if p not in staff]
            try:
                # Every refusal below is raised before anything of this item is added.
                outcome = await _enroll_item(s, item, [p for p in targets[item.id] if p in staff], now)
            except DomainError as exc:
                results.append(
                    {
                        "item_id": item.id,
                        "created": [],
                        "already_enrolled": [],
                        "error": {
                            "code": exc.code,
                            "message": exc.message,
                            "field": exc.field,
                            "details": exc.details,
                        },
                    }
                )
                continue
            results.append({"item_id": item.id, **outcome, **({"no_longer_staff": gone} if gone else {})})
    results.sort(key=lambda r: int(r["item_id"]))
    created = sum(len(r["created"]) for r in results)
    log.info("training plan enrolled id=%s created=%s by=%s", plan_id, created, caller.person_id)
    return {"plan_id": plan_id, "created": created, "items": results}


# -- plan vs actual ----------------------------------------------------------------------------------------


async def progress(db: Database, caller: Caller, plan_id: int, now: datetime) -> dict[str, Any]:
    """Plan vs actual (catalog.plans.figures) for each item and each targeted person, in the plan's year,
    with who is enrolled in each course item's course."""
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=False)
        items = await _items(s, plan.id)
        targets = await _targets(s, [i.id for i in items])
        people = sorted({p for ps in targets.values() for p in ps})
        rows = (
            await s.execute(
                select(
                    CreditEntry.person_id,
                    CreditEntry.course_id,
                    CreditEntry.category,
                    CreditEntry.status,
                    CreditEntry.xueshi,
                ).where(CreditEntry.person_id.in_(people), CreditEntry.credit_year == plan.year)
            )
        ).all()
        course_ids = sorted({i.course_id for i in items if i.course_id is not None})
        enrolled = set(
            (
                await s.execute(
                    select(Enrollment.person_id, Enrollment.course_id).where(
                        Enrollment.person_id.in_(people),
                        Enrollment.course_id.in_(course_ids),
                        Enrollment.status == EnrollmentStatus.ENROLLED.value,
                    )
                )
            ).all()
        )
        names = await queries.names_of(s, people)
        courses = await _courses(s, items)
    specs = [
        figures.Item(i.id, i.course_id, i.category, Decimal(i.target_xueshi), tuple(targets[i.id]))
        for i in items
    ]
    entries = [figures.Entry(r.person_id, r.course_id, r.category, r.status, r.xueshi) for r in rows]
    result = figures.plan_vs_actual(specs, entries)
    by_id = {i.id: i for i in items}
    for out in result["items"]:
        item = by_id[out["item_id"]]
        out["course"] = courses.get(item.course_id) if item.course_id is not None else None
        out["category"] = item.category
        out["target_xueshi"] = str(item.target_xueshi)
        out["note"] = item.note
        for row in out["people"]:
            row["name"] = names.get(row["person_id"], "")
            row["enrolled"] = (
                None if item.course_id is None else (row["person_id"], item.course_id) in enrolled
            )
    for person in result["people"]:
        person["name"] = names.get(person["person_id"], "")
    return {"plan": _plan_head(plan), "as_of": now.isoformat(), **result}


async def staff(db: Database, caller: Caller, plan_id: int, q: str, page: Page) -> dict[str, Any]:
    """The people a plan's items may target: its employer's staff (name contains `q`), by name."""
    async with db.sessions.begin() as s:
        plan = await _plan(s, caller, plan_id, write=False)
        conds = [Person.employer_org_id == plan.employer_org_id]
        if q:
            conds.append(Person.name.ilike(like_pattern(q), escape="\\"))
        total = int(await s.scalar(select(func.count()).select_from(Person).where(*conds)) or 0)
        rows = (
            await s.execute(
                select(Person.id, Person.name, Person.phone)
                .where(*conds)
                .order_by(Person.name, Person.id)
                .offset(page.offset)
                .limit(page.page_size)
            )
        ).all()
    return {
        "items": [{"id": pid, "name": name, "phone": mask_phone(phone)} for pid, name, phone in rows],
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
    }
