"""Employers' annual training plans: drafting and editing, publishing (after which items are only added),
enrolling the targeted staff from the plan (enrollments linked to their item), plan vs actual against a
hand-computed case, other employers kept out, bad input refused with the field named."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from catalog.credit import ledger
from catalog.domain import CourseStatus, OrgType, Role
from catalog.models import (
    CreditEntry,
    Enrollment,
    Person,
    TrainingPlan,
    TrainingPlanItem,
    TrainingPlanTarget,
)
from tests.integration.catalog.conftest import World
from tests.integration.credit.programme_support import CATALOG_FIXTURES, Client, call, this_year

globals().update(CATALOG_FIXTURES)


def pid(w: World, key: str) -> int:
    return w.actors[key].person_id


async def new_plan(client: Client, w: World, *, year: int | None = None, key: str = "employer_admin") -> int:
    body = {"year": this_year() if year is None else year, "title": "2026年度继续教育培训计划"}
    status, plan = await call(client, w, key, "POST", f"/api/employers/{w.orgs['employer']}/plans", body)
    assert status == 201, plan
    assert (plan["status"], plan["items"]) == ("draft", [])
    return int(plan["id"])


async def add_item(client: Client, w: World, plan_id: int, **item: Any) -> dict[str, Any]:
    status, plan = await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/items", item)
    assert status == 201, plan
    return dict(plan["items"][-1])


async def credit(
    w: World,
    person_id: int,
    xueshi: str,
    status: str,
    *,
    course_id: int | None,
    category: str,
    year: int,
    kind: str = ledger.LIVE,
    reversal_of: int | None = None,
) -> int:
    """One ledger entry through ledger.append (status as the employer's approval would have left it)."""
    async with w.db.sessions.begin() as s:
        entry = ledger.append(
            s,
            CreditEntry(
                person_id=person_id,
                course_id=course_id,
                session_id=None,
                credit_year=year,
                credit_day=f"{year}-05-01",
                category=category,
                kind=kind,
                minutes=float(Decimal(xueshi) * 45),
                xueshi=Decimal(xueshi),
                policy_version=0,
                computed_at=datetime.now(UTC),
                status=status,
                reversal_of_id=reversal_of,
                note="",
                evidence={},
            ),
        )
        await s.flush()
        return entry.id


async def test_a_draft_is_edited_freely_and_a_published_plan_only_grows(client: Client, world: World) -> None:
    w = world
    plan_id = await new_plan(client, w)
    path = f"/api/plans/{plan_id}"
    assert (await call(client, w, "employer_admin", "POST", f"{path}/publish"))[0] == 409  # no items yet
    course_item = await add_item(
        client,
        w,
        plan_id,
        course_id=w.course_id,
        person_ids=[pid(w, "learner"), pid(w, "staff")],
        target_xueshi=2,
    )
    assert course_item["course"]["id"] == w.course_id
    assert course_item["category"] is None
    assert [p["id"] for p in course_item["people"]] == sorted([pid(w, "learner"), pid(w, "staff")])
    category_item = await add_item(
        client,
        w,
        plan_id,
        category="public",
        person_ids=[pid(w, "staff")],
        target_xueshi=30,
        note="公需课自选",
    )
    status, plan = await call(client, w, "employer_admin", "PATCH", path, {"title": "年度计划（修订）"})
    assert (status, plan["title"]) == (200, "年度计划（修订）")
    change = {"category": "professional", "target_xueshi": 12.5, "person_ids": [pid(w, "learner")]}
    status, plan = await call(
        client, w, "employer_admin", "PATCH", f"{path}/items/{category_item['id']}", change
    )
    assert status == 200, plan
    changed = plan["items"][1]
    assert (changed["category"], changed["target_xueshi"], [p["id"] for p in changed["people"]]) == (
        "professional",
        "12.5",
        [pid(w, "learner")],
    )
    spare = await add_item(
        client, w, plan_id, category="public", person_ids=[pid(w, "staff")], target_xueshi=1
    )
    status, plan = await call(client, w, "employer_admin", "DELETE", f"{path}/items/{spare['id']}")
    assert (status, len(plan["items"])) == (200, 2)

    status, plan = await call(client, w, "employer_admin", "POST", f"{path}/publish")
    assert (status, plan["status"]) == (200, "published")
    assert plan["published_at"] is not None
    assert (await call(client, w, "employer_admin", "POST", f"{path}/publish"))[0] == 409
    # Published: nothing changes or goes, but items may be added.
    assert (await call(client, w, "employer_admin", "PATCH", path, {"title": "改名"}))[0] == 409
    assert (
        await call(
            client, w, "employer_admin", "PATCH", f"{path}/items/{course_item['id']}", {"target_xueshi": 1}
        )
    )[0] == 409
    assert (await call(client, w, "employer_admin", "DELETE", f"{path}/items/{course_item['id']}"))[0] == 409
    await add_item(client, w, plan_id, category="public", person_ids=[pid(w, "staff")], target_xueshi=30)
    status, plan = await call(client, w, "employer_admin", "GET", path)
    assert (status, len(plan["items"]), plan["title"]) == (200, 3, "年度计划（修订）")
    status, listed = await call(
        client, w, "employer_admin", "GET", f"/api/employers/{w.orgs['employer']}/plans"
    )
    assert [(p["id"], p["item_count"]) for p in listed["items"]] == [(plan_id, 3)]
    # One plan per employer and year.
    body = {"year": this_year(), "title": "另一份"}
    status, err = await call(
        client, w, "employer_admin", "POST", f"/api/employers/{w.orgs['employer']}/plans", body
    )
    assert (status, err["error"]["field"]) == (409, "year")


async def test_enrolling_from_the_plan_links_each_enrollment_to_its_item(
    client: Client, world: World
) -> None:
    w = world
    employer = w.orgs["employer"]
    third = await w.person("third", [(Role.LEARNER, employer)], employer=employer)
    leaver = await w.person("leaver", [(Role.LEARNER, employer)], employer=employer)
    small = await w.course(w.orgs["provider"], title="小班课", capacity=1)
    plan_id = await new_plan(client, w)
    staff = [pid(w, "learner"), pid(w, "staff"), third.person_id]
    main = await add_item(
        client, w, plan_id, course_id=w.course_id, person_ids=[*staff, leaver.person_id], target_xueshi=2
    )
    full = await add_item(client, w, plan_id, course_id=small, person_ids=staff[1:], target_xueshi=2)
    free = await add_item(client, w, plan_id, category="public", person_ids=staff, target_xueshi=30)
    assert (await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/enroll"))[
        0
    ] == 409  # draft
    await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/publish")
    async with w.db.sessions.begin() as s:  # left the employer after the plan named them
        await s.execute(update(Person).where(Person.id == leaver.person_id).values(employer_org_id=None))

    status, result = await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/enroll")
    assert status == 200, result
    by_item = {r["item_id"]: r for r in result["items"]}
    # The seeded learner had enrolled themselves: left as it is.
    assert (by_item[main["id"]]["created"], by_item[main["id"]]["already_enrolled"]) == (staff[1:], staff[:1])
    assert by_item[main["id"]]["no_longer_staff"] == [leaver.person_id]
    # Two people for one seat: the item fails as a whole, the others go ahead.
    assert by_item[full["id"]]["created"] == []
    assert by_item[full["id"]]["error"]["field"] == "course_id"
    assert "full" in by_item[full["id"]]["error"]["message"]
    assert by_item[free["id"]]["skipped"] == "category"
    assert result["created"] == 2
    async with w.db.sessions.begin() as s:
        rows = (
            await s.execute(
                select(Enrollment.person_id, Enrollment.course_id, Enrollment.source, Enrollment.plan_item_id)
                .where(Enrollment.status == "enrolled")
                .order_by(Enrollment.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (pid(w, "learner"), w.course_id, "self", None),
        (pid(w, "staff"), w.course_id, "employer", main["id"]),
        (third.person_id, w.course_id, "employer", main["id"]),
    ]
    # Again: nothing new (idempotent).
    status, again = await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/enroll")
    assert (status, again["created"]) == (200, 0)


async def test_plan_vs_actual_matches_a_hand_computed_case(client: Client, world: World) -> None:
    w = world
    year = this_year()
    learner, staff = pid(w, "learner"), pid(w, "staff")
    c1 = w.course_id  # 专业
    c2 = await w.course(w.orgs["provider"], title="公需课", category="public")
    plan_id = await new_plan(client, w)
    a = await add_item(client, w, plan_id, course_id=c1, person_ids=[learner, staff], target_xueshi=4)
    b = await add_item(client, w, plan_id, category="public", person_ids=[learner, staff], target_xueshi=6)
    c = await add_item(client, w, plan_id, category="professional", person_ids=[learner], target_xueshi=10)
    await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/publish")
    await call(client, w, "employer_admin", "POST", f"/api/plans/{plan_id}/enroll")

    pro, pub = (
        {"course_id": c1, "category": "professional", "year": year},
        {
            "course_id": c2,
            "category": "public",
            "year": year,
        },
    )
    # The learner: 专业 course c1 registered 3 and pending 1.5; 公需 registered 4, and 3 registered then
    # reversed (net 0), 2 rejected (nothing); a mentorship award (no course, 专业) registered 10; last year's
    # 5 in c1 (another year: nothing).
    await credit(w, learner, "3.0", "registered", **pro)
    await credit(w, learner, "1.5", "pending", **pro)
    await credit(w, learner, "4.0", "registered", **pub)
    reversed_id = await credit(w, learner, "3.0", "registered", **pub)
    await credit(w, learner, "-3.0", "registered", **pub, kind=ledger.REVERSAL, reversal_of=reversed_id)
    await credit(w, learner, "2.0", "rejected", **pub)
    await credit(
        w, learner, "10", "registered", course_id=None, category="professional", year=year, kind="mentorship"
    )
    await credit(w, learner, "5.0", "registered", **{**pro, "year": year - 1})
    # The staff member: c1 registered 4.5 (over the target of 4), 公需 pending 2.
    await credit(w, staff, "4.5", "registered", **pro)
    await credit(w, staff, "2.0", "pending", **pub)
    # Someone the plan does not target.
    await credit(w, pid(w, "employer_admin"), "9.0", "registered", **pro)

    status, got = await call(client, w, "employer_admin", "GET", f"/api/plans/{plan_id}/progress")
    assert status == 200, got
    items = {i["item_id"]: i for i in got["items"]}

    def person(item: dict[str, Any], who: int) -> tuple[Any, ...]:
        [row] = [r for r in item["people"] if r["person_id"] == who]
        return (
            row["registered_xueshi"],
            row["pending_xueshi"],
            row["counted_xueshi"],
            row["short_by_xueshi"],
            row["met"],
            row["completion_pct"],
        )

    assert person(items[a["id"]], learner) == ("3.0", "1.5", "3.0", "1.0", False, 75.0)
    assert person(items[a["id"]], staff) == ("4.5", "0.0", "4.0", "0.0", True, 100.0)
    assert items[a["id"]]["totals"] == {
        "people": 2,
        "met": 1,
        "short": [learner],
        "target_xueshi": "8.0",
        "registered_xueshi": "7.5",
        "pending_xueshi": "1.5",
        "counted_xueshi": "7.0",
        "completion_pct": 87.5,
    }
    assert person(items[b["id"]], learner) == ("4.0", "0.0", "4.0", "2.0", False, 66.7)
    assert person(items[b["id"]], staff) == ("0.0", "2.0", "0.0", "6.0", False, 0.0)
    assert items[b["id"]]["totals"]["completion_pct"] == 33.3
    assert items[b["id"]]["totals"]["short"] == sorted([learner, staff])
    assert person(items[c["id"]], learner) == ("13.0", "1.5", "10.0", "0.0", True, 100.0)
    assert items[c["id"]]["totals"]["target_xueshi"] == "10.0"
    people = {p["person_id"]: p for p in got["people"]}
    assert (people[learner]["target_xueshi"], people[learner]["counted_xueshi"]) == ("20.0", "17.0")
    assert (people[learner]["completion_pct"], people[learner]["short_items"]) == (85.0, [a["id"], b["id"]])
    assert (people[staff]["target_xueshi"], people[staff]["counted_xueshi"]) == ("10.0", "4.0")
    assert (people[staff]["completion_pct"], people[staff]["short_items"]) == (40.0, [b["id"]])
    assert set(people) == {learner, staff}
    # Enrollment in course items: the learner enrolled themselves, the staff member from the plan.
    assert {r["person_id"]: r["enrolled"] for r in items[a["id"]]["people"]} == {learner: True, staff: True}
    assert {r["enrolled"] for r in items[b["id"]]["people"]} == {None}
    # The bureau reads the same figures.
    status, bureau = await call(client, w, "bureau", "GET", f"/api/plans/{plan_id}/progress")
    assert (status, bureau["items"]) == (200, got["items"])


async def test_other_employers_see_and_change_nothing(client: Client, world: World) -> None:
    w = world
    other = await w.org("other_employer", OrgType.EMPLOYER, "青岛啤酒")
    await w.person("other_admin", [(Role.EMPLOYER_ADMIN, other)], employer=other)
    outsider = await w.person("outsider", [(Role.LEARNER, other)], employer=other)
    plan_id = await new_plan(client, w)
    item = await add_item(
        client, w, plan_id, category="public", person_ids=[pid(w, "learner")], target_xueshi=6
    )
    path = f"/api/plans/{plan_id}"
    for key in ("other_admin", "learner", "expert", "provider_admin"):
        for method, sub, body in [
            ("GET", "", None),
            ("PATCH", "", {"title": "x"}),
            ("POST", "/items", {"category": "public", "person_ids": [pid(w, "learner")], "target_xueshi": 1}),
            ("PATCH", f"/items/{item['id']}", {"target_xueshi": 1}),
            ("DELETE", f"/items/{item['id']}", None),
            ("POST", "/publish", None),
            ("POST", "/enroll", None),
            ("GET", "/progress", None),
            ("GET", "/staff", None),
        ]:
            status, _ = await call(client, w, key, method, path + sub, body)
            assert status == 404, (key, method, sub)
        status, _ = await call(client, w, key, "GET", f"/api/employers/{w.orgs['employer']}/plans")
        assert status == 403, key
        body = {"year": this_year() + 1, "title": "替别人建计划"}
        assert (await call(client, w, key, "POST", f"/api/employers/{w.orgs['employer']}/plans", body))[
            0
        ] == 403
    # The bureau reads but changes nothing.
    assert (await call(client, w, "bureau", "GET", path))[0] == 200
    assert (await call(client, w, "bureau", "PATCH", path, {"title": "x"}))[0] == 403
    # Another employer's staff cannot be targeted (nor anyone who is not this employer's).
    for people in (
        [outsider.person_id],
        [pid(w, "learner"), outsider.person_id],
        [pid(w, "expert")],
        [2**62],
    ):
        status, err = await call(
            client,
            w,
            "employer_admin",
            "POST",
            f"{path}/items",
            {"category": "public", "person_ids": people, "target_xueshi": 1},
        )
        assert (status, err["error"]["field"]) == (403, "person_ids"), people
    # The staff list holds this employer's people only.
    status, listed = await call(client, w, "employer_admin", "GET", f"{path}/staff?q=测试")
    assert status == 200
    assert outsider.person_id not in {p["id"] for p in listed["items"]}
    assert {pid(w, "learner"), pid(w, "staff"), pid(w, "employer_admin")} <= {
        p["id"] for p in listed["items"]
    }
    assert all("****" in p["phone"] for p in listed["items"])
    async with w.db.sessions.begin() as s:
        assert await s.scalar(select(func.count()).select_from(TrainingPlanItem)) == 1
        assert await s.scalar(select(func.count()).select_from(TrainingPlanTarget)) == 1
        plan = await s.get(TrainingPlan, plan_id)
        assert plan is not None
        assert plan.status == "draft"


async def test_bad_input_is_a_clear_4xx_naming_the_field(client: Client, world: World) -> None:
    w = world
    org = f"/api/employers/{w.orgs['employer']}/plans"
    y = this_year()
    for body, field in [
        ({"title": "计划"}, "year"),
        ({"year": y + 2, "title": "计划"}, "year"),
        ({"year": y - 2, "title": "计划"}, "year"),
        ({"year": "2026", "title": "计划"}, "year"),
        ({"year": y}, "title"),
        ({"year": y, "title": "  "}, "title"),
        ({"year": y, "title": "计" * 201}, "title"),
        ({"year": y, "title": "计划", "status": "published"}, "status"),
    ]:
        status, err = await call(client, w, "employer_admin", "POST", org, body)
        assert (status, err["error"]["field"]) == (400, field), body
    status, err = await call(
        client, w, "admin", "POST", f"/api/employers/{w.orgs['provider']}/plans", {"year": y, "title": "x"}
    )
    assert (status, err["error"]["field"]) == (400, "org_id")  # a provider is no employer
    assert (await call(client, w, "admin", "POST", "/api/employers/999999/plans", {"year": y, "title": "x"}))[
        0
    ] == 404

    plan_id = await new_plan(client, w)
    items = f"/api/plans/{plan_id}/items"
    learner = [pid(w, "learner")]
    draft = w.draft_course_id
    archived = await w.course(w.orgs["provider"], status=CourseStatus.ARCHIVED, title="旧课")
    for body, status, field in [
        ({"person_ids": learner, "target_xueshi": 2}, 400, "course_id"),
        (
            {"course_id": w.course_id, "category": "public", "person_ids": learner, "target_xueshi": 2},
            400,
            "category",
        ),
        ({"category": "other", "person_ids": learner, "target_xueshi": 2}, 400, "category"),
        ({"category": "public", "person_ids": [], "target_xueshi": 2}, 400, "person_ids"),
        ({"category": "public", "person_ids": ["1"], "target_xueshi": 2}, 400, "person_ids"),
        ({"category": "public", "person_ids": learner}, 400, "target_xueshi"),
        ({"category": "public", "person_ids": learner, "target_xueshi": 0}, 400, "target_xueshi"),
        ({"category": "public", "person_ids": learner, "target_xueshi": 1.25}, 400, "target_xueshi"),
        ({"category": "public", "person_ids": learner, "target_xueshi": "abc"}, 400, "target_xueshi"),
        ({"category": "public", "person_ids": learner, "target_xueshi": 1000}, 400, "target_xueshi"),
        ({"category": "public", "person_ids": learner, "target_xueshi": 2, "note": "n" * 501}, 400, "note"),
        ({"category": "public", "person_ids": learner, "target_xueshi": 2, "plan_id": 1}, 400, "plan_id"),
        ({"course_id": 999999, "person_ids": learner, "target_xueshi": 2}, 400, "course_id"),
        ({"course_id": draft, "person_ids": learner, "target_xueshi": 2}, 400, "course_id"),
        ({"course_id": archived, "person_ids": learner, "target_xueshi": 2}, 409, "course_id"),
    ]:
        got, err = await call(client, w, "employer_admin", "POST", items, body)
        assert (got, err["error"]["field"]) == (status, field), body
    async with w.db.sessions.begin() as s:
        assert await s.scalar(select(func.count()).select_from(TrainingPlanItem)) == 0
    item = await add_item(client, w, plan_id, category="public", person_ids=learner, target_xueshi=2)
    assert (await call(client, w, "employer_admin", "PATCH", f"{items}/{item['id']}", {}))[0] == 400
    assert (await call(client, w, "employer_admin", "PATCH", f"{items}/999999", {"target_xueshi": 1}))[
        0
    ] == 404
    other_plan = await new_plan(client, w, year=y + 1)
    assert (await call(client, w, "employer_admin", "DELETE", f"/api/plans/{other_plan}/items/{item['id']}"))[
        0
    ] == 404
    assert (await call(client, w, "employer_admin", "GET", "/api/plans/999999"))[0] == 404
    assert (await call(client, w, "employer_admin", "GET", f"/api/plans/{2**64}"))[0] == 404
    assert (await call(client, w, "employer_admin", "GET", f"/api/plans/{plan_id}/staff?page=0"))[0] == 400
