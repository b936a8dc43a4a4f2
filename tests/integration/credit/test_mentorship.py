"""师承带徒 (R22, R26, fraud 20): agreements proposed by one side and confirmed by the other, the mentor cap
(from the policy in force, under concurrency), no self-mentoring, reciprocal and backdated agreements
flagged, only the two people acting, and a completed agreement's award posted as pending credit."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog.credit import ledger
from catalog.credit.engine import BEIJING, beijing_day
from catalog.credit.policy import CreditPolicy
from catalog.domain import Role
from catalog.mentorship import service
from catalog.mentorship.rules import Proposal, Side
from catalog.models import AuditEntry, FraudFlag, Mentorship
from infra.errors import Conflict, Forbidden
from tests.integration.catalog.conftest import Actor, World
from tests.integration.catalog.credit_support import entries, store_policy
from tests.integration.credit.programme_support import (
    CATALOG_FIXTURES,
    Client,
    call,
    caller,
    name_of,
    this_year,
)

globals().update(CATALOG_FIXTURES)

Y = 2026  # service-level tests choose their own clock


def bj(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(Y, month, day, hour, tzinfo=BEIJING)


def proposal(
    counterpart: str,
    *,
    side: Side = Side.MENTOR,
    year: int = Y,
    start: date = date(Y, 3, 1),
    end: date = date(Y, 11, 30),
) -> Proposal:
    return Proposal(
        side, 0, name_of(counterpart), year, "每月面授一次，指导课题研究", "双方自愿，不收费", start, end
    )


def body(
    w: World, counterpart: str, *, side: str = "mentor", year: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A proposal to `counterpart`: this year's from today (nothing backdated), next year's from 1 January,
    last year's from 1 March (backdated: proposed after it started); all to 31 December."""
    today = beijing_day(datetime.now(UTC))
    year = today.year if year is None else year
    start = today if year == today.year else date(year, 1, 1) if year > today.year else date(year, 3, 1)
    return {
        "side": side,
        "counterpart_id": w.actors[counterpart].person_id,
        "counterpart_name": name_of(counterpart),
        "year": year,
        "plan": "每月面授一次，指导课题研究",
        "terms": "双方自愿签订，不收取费用",
        "start_date": start.isoformat(),
        "end_date": f"{year}-12-31",
        **extra,
    }


async def learners(w: World, prefix: str, n: int) -> list[Actor]:
    employer = w.orgs["employer"]
    return [await w.person(f"{prefix}{i}", [(Role.LEARNER, employer)], employer=employer) for i in range(n)]


async def expert_learner(w: World, key: str) -> Actor:
    """A professional who is also an expert (may mentor and be mentored)."""
    employer = w.orgs["employer"]
    return await w.person(key, [(Role.EXPERT, None), (Role.LEARNER, employer)], employer=employer)


async def flags(w: World, person_id: int) -> list[FraudFlag]:
    async with w.db.sessions.begin() as s:
        return list(await s.scalars(select(FraudFlag).where(FraudFlag.person_id == person_id)))


async def propose_as(w: World, key: str, counterpart: str, at: datetime, **kw: Any) -> dict[str, Any]:
    p = dataclasses.replace(proposal(counterpart, **kw), counterpart_id=w.actors[counterpart].person_id)
    return await service.propose(w.db, await caller(w, key), p, at)


# -- the whole way ------------------------------------------------------------------------------------------


async def test_a_completed_mentorship_posts_the_fixed_award_as_pending_professional_credit(
    world: World,
) -> None:
    w = world
    mentor, mentee = await caller(w, "expert"), await caller(w, "learner")
    m = await propose_as(w, "expert", "learner", bj(2, 25))
    assert (m["status"], m["waiting_for"], m["proposed_by"]) == ("proposed", "mentee", "mentor")
    assert m["mentor_confirmed_at"] == bj(2, 25).isoformat()
    assert m["mentee_confirmed_at"] is None

    m = await service.confirm(w.db, mentee, m["id"], bj(2, 26))
    assert (m["status"], m["waiting_for"]) == ("confirmed", "mentor")
    assert m["mentee_confirmed_at"] == bj(2, 26).isoformat()

    with pytest.raises(Conflict, match="after the end date"):  # on the end date itself: not yet
        await service.record_completion(w.db, mentor, m["id"], "完成", bj(11, 30, 23))
    m = await service.record_completion(w.db, mentor, m["id"], "完成两项课题，发表论文一篇", bj(12, 2))
    assert (m["status"], m["waiting_for"]) == ("confirmed", "mentee")
    assert await entries(w.db, person_id=mentee.person_id) == []  # nothing until the mentee confirms

    m = await service.confirm_completion(w.db, mentee, m["id"], bj(12, 3))
    assert (m["status"], m["waiting_for"]) == ("completed", None)
    [entry] = await entries(w.db, person_id=mentee.person_id)
    assert m["credit_entry_id"] == entry.id
    assert (entry.kind, entry.status, entry.category, entry.xueshi) == (
        "mentorship",
        "pending",
        "professional",
        Decimal("10.00"),
    )
    assert (entry.credit_year, entry.credit_day, entry.course_id, entry.policy_version) == (
        Y,
        "2026-11-30",
        None,
        0,
    )
    assert entry.evidence["mentorship_id"] == m["id"]
    assert entry.evidence["mentor_person_id"] == mentor.person_id
    # A fixed award holds no time: it takes nothing from the end date's daily cap (R6).
    assert ledger.by_day([entry]) == {}
    assert await flags(w, mentee.person_id) == []
    async with w.db.sessions.begin() as s:
        actions = list(
            await s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.subject_type == "mentorship", AuditEntry.subject_id == str(m["id"]))
                .order_by(AuditEntry.id)
            )
        )
    assert actions == [
        "mentorship.proposed",
        "mentorship.confirmed",
        "mentorship.completion_recorded",
        "mentorship.completed",
    ]


async def test_the_api_takes_an_agreement_to_credit_under_the_award_of_the_policy_in_force(
    client: Client, world: World
) -> None:
    w = world
    await store_policy(w.db, dataclasses.replace(CreditPolicy(), mentorship_award_xueshi=Decimal("12")))
    last = this_year() - 1  # its end date has passed, whatever today is
    status, m = await call(
        client, w, "learner", "POST", "/api/mentorships", body(w, "expert", side="mentee", year=last)
    )
    assert status == 201, m
    assert (m["proposed_by"], m["waiting_for"], m["mentor"]["id"]) == (
        "mentee",
        "mentor",
        w.actors["expert"].person_id,
    )
    status, mine = await call(client, w, "expert", "GET", f"/api/me/mentorships?year={last}")
    assert status == 200
    assert ([a["id"] for a in mine["as_mentor"]], mine["as_mentee"], mine["places_held"]) == (
        [m["id"]],
        [],
        1,
    )
    assert (mine["mentor_cap"], mine["award_xueshi"], mine["policy_version"]) == (10, "12", 1)

    status, m = await call(client, w, "expert", "POST", f"/api/mentorships/{m['id']}/confirm")
    assert (status, m["status"]) == (200, "confirmed")
    summary = {"summary": "完成课题研究\n发表论文一篇"}
    status, m = await call(client, w, "expert", "POST", f"/api/mentorships/{m['id']}/completion", summary)
    assert (status, m["completion_summary"]) == (200, "完成课题研究\n发表论文一篇")
    status, m = await call(client, w, "learner", "POST", f"/api/mentorships/{m['id']}/completion/confirm")
    assert (status, m["status"]) == (200, "completed")

    status, credits = await call(client, w, "learner", "GET", f"/api/me/credits?year={last}")
    assert status == 200
    assert credits["summary"]["pending"]["professional"] == "12.00"
    assert credits["summary"]["registered"]["professional"] == "0"  # pending counts toward nothing (R23)
    [group] = credits["courses"]
    assert (group["course_id"], group["title"], group["pending_xueshi"]) == (None, "师承带徒", "12.00")
    assert [(e["kind"], e["xueshi"], e["policy_version"]) for e in group["entries"]] == [
        ("mentorship", "12.00", 1)
    ]
    # Proposed this year for last year's period, confirmed after it ended: flagged, not blocked.
    reasons = {f.evidence["reason"] for f in await flags(w, w.actors["learner"].person_id)}
    assert reasons == {"start_before_proposal", "confirmed_after_end"}

    # The award goes through the employer's approval like any other credit (R22, R23): it is in the
    # employer's queue (an entry of no course) and counts once approved.
    org = w.orgs["employer"]
    status, queue = await call(
        client, w, "employer_admin", "GET", f"/api/employers/{org}/credit-entries?year={last}"
    )
    assert status == 200, queue
    [item] = [e for e in queue["items"] if e["id"] == m["credit_entry_id"]]
    assert (item["kind"], item["course_id"], item["course_title"]) == ("mentorship", None, "师承带徒")
    decision = {"entry_ids": [m["credit_entry_id"]], "action": "approve", "reason": "带徒协议与结业材料齐全"}
    status, decided = await call(
        client, w, "employer_admin", "POST", "/api/credit-entries/decisions", decision
    )
    assert status == 200, decided
    status, credits = await call(client, w, "learner", "GET", f"/api/me/credits?year={last}")
    assert (
        credits["summary"]["registered"]["professional"],
        credits["summary"]["pending"]["professional"],
    ) == (
        "12.00",
        "0",
    )


async def test_a_second_completed_agreement_in_a_year_credits_nothing_more(world: World) -> None:
    w = world
    await w.person("expert2", [(Role.EXPERT, None)])
    mentee = await caller(w, "learner")
    for mentor in ("expert", "expert2"):
        m = await propose_as(w, mentor, "learner", bj(2, 25))
        await service.confirm(w.db, mentee, m["id"], bj(2, 26))
        await service.record_completion(w.db, await caller(w, mentor), m["id"], "完成", bj(12, 2))
        await service.confirm_completion(w.db, mentee, m["id"], bj(12, 3))
    first, second = await entries(w.db, person_id=mentee.person_id)
    assert (first.xueshi, second.xueshi) == (Decimal("10.00"), Decimal("0.00"))
    assert second.note == "already credited"


# -- the cap (R26) -------------------------------------------------------------------------------------------


async def test_the_eleventh_mentee_is_refused_and_a_cancelled_proposal_frees_its_place(
    client: Client, world: World
) -> None:
    w = world
    mentees = await learners(w, "m", 11)
    ids = []
    for n in range(10):
        status, m = await call(client, w, "expert", "POST", "/api/mentorships", body(w, f"m{n}"))
        assert status == 201, m
        ids.append(m["id"])
    status, refused = await call(client, w, "expert", "POST", "/api/mentorships", body(w, "m10"))
    assert status == 409
    error = refused["error"]
    assert error["field"] == "counterpart_id"
    assert "the cap is 10" in error["message"]
    assert error["details"] == {
        "reason": "mentor_cap",
        "cap": 10,
        "mentees": 10,
        "year": this_year(),
        "policy_version": 0,
    }
    # Pending proposals hold their places, whichever side proposes.
    status, refused = await call(
        client, w, "m10", "POST", "/api/mentorships", body(w, "expert", side="mentee")
    )
    assert (status, refused["error"]["details"]["reason"]) == (409, "mentor_cap")

    status, cancelled = await call(client, w, "m0", "POST", f"/api/mentorships/{ids[0]}/cancel")
    assert (status, cancelled["status"]) == (200, "cancelled")
    status, m = await call(client, w, "expert", "POST", "/api/mentorships", body(w, "m10"))
    assert status == 201, m
    async with w.db.sessions.begin() as s:
        standing = await s.scalar(
            select(func.count()).select_from(Mentorship).where(Mentorship.status != "cancelled")
        )
    assert standing == 10
    assert mentees[10].person_id == m["mentee"]["id"]


async def test_the_cap_is_read_from_the_policy_version_in_force(client: Client, world: World) -> None:
    w = world
    await learners(w, "m", 3)
    await store_policy(w.db, dataclasses.replace(CreditPolicy(), mentor_cap=2))
    for n in range(2):
        status, m = await call(client, w, "expert", "POST", "/api/mentorships", body(w, f"m{n}"))
        assert status == 201, m
    status, refused = await call(client, w, "expert", "POST", "/api/mentorships", body(w, "m2"))
    assert status == 409
    assert refused["error"]["details"] == {
        "reason": "mentor_cap",
        "cap": 2,
        "mentees": 2,
        "year": this_year(),
        "policy_version": 1,
    }


@pytest.mark.parametrize("engine_template", ["postgres"], indirect=True)  # row locks
async def test_two_confirmations_at_the_cap_cannot_both_pass(world: World) -> None:
    w = world
    await learners(w, "m", 3)
    await store_policy(w.db, dataclasses.replace(CreditPolicy(), mentor_cap=3), version=1)
    proposed = [await propose_as(w, "expert", f"m{n}", bj(2, 1)) for n in range(3)]
    # The cap is lowered while three proposals wait: the first two confirmed win, whatever the timing.
    await store_policy(w.db, dataclasses.replace(CreditPolicy(), mentor_cap=2), version=2)
    await service.confirm(w.db, await caller(w, "m0"), proposed[0]["id"], bj(2, 2))
    mentees = [await caller(w, f"m{n}") for n in (1, 2)]
    results = await asyncio.gather(
        *(
            service.confirm(w.db, who, m["id"], bj(2, 2))
            for who, m in zip(mentees, proposed[1:], strict=True)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(refused) == 1, results
    assert refused[0].details is not None
    assert (refused[0].details["cap"], refused[0].details["mentees"]) == (2, 2)
    async with w.db.sessions.begin() as s:
        confirmed = await s.scalar(
            select(func.count()).select_from(Mentorship).where(Mentorship.status == "confirmed")
        )
    assert confirmed == 2


# -- fraud 20 ------------------------------------------------------------------------------------------------


async def test_self_mentoring_is_refused_from_either_side(client: Client, world: World) -> None:
    w = world
    await expert_learner(w, "dual")
    for side in ("mentor", "mentee"):
        status, refused = await call(
            client, w, "dual", "POST", "/api/mentorships", body(w, "dual", side=side)
        )
        assert status == 409, refused
        assert refused["error"]["field"] == "counterpart_id"
        assert "self-mentoring" in refused["error"]["message"]
    async with w.db.sessions.begin() as s:
        assert await s.scalar(select(func.count()).select_from(Mentorship)) == 0


async def test_reciprocal_pairs_are_flagged_on_both_people_but_not_blocked(
    client: Client, world: World
) -> None:
    w = world
    a, b = await expert_learner(w, "a"), await expert_learner(w, "b")
    status, ab = await call(client, w, "a", "POST", "/api/mentorships", body(w, "b"))
    assert status == 201
    assert await flags(w, a.person_id) == []
    status, ba = await call(client, w, "b", "POST", "/api/mentorships", body(w, "a"))
    assert status == 201, ba
    for person in (a, b):
        [flag] = await flags(w, person.person_id)
        assert (flag.code, flag.course_id, flag.status) == ("reciprocal_mentorship", None, "open")
        assert flag.evidence["mentorship_ids"] == sorted([ab["id"], ba["id"]])
    # The reverse in another year is no pair; a cancelled proposal no longer makes one.
    c, d = await expert_learner(w, "c"), await expert_learner(w, "d")
    assert (await call(client, w, "c", "POST", "/api/mentorships", body(w, "d")))[0] == 201
    next_year = body(w, "c", year=this_year() + 1)
    assert (await call(client, w, "d", "POST", "/api/mentorships", next_year))[0] == 201
    e, g = await expert_learner(w, "e"), await expert_learner(w, "g")
    status, eg = await call(client, w, "e", "POST", "/api/mentorships", body(w, "g"))
    assert (await call(client, w, "e", "POST", f"/api/mentorships/{eg['id']}/cancel"))[0] == 200
    assert (await call(client, w, "g", "POST", "/api/mentorships", body(w, "e")))[0] == 201
    for person in (c, d, e, g):
        assert await flags(w, person.person_id) == []


@pytest.mark.parametrize(
    ("proposed_at", "start", "end", "confirmed_at", "reasons"),
    [
        pytest.param(bj(2, 25), date(Y, 3, 1), date(Y, 11, 30), bj(2, 26), set(), id="planned-ahead"),
        pytest.param(bj(3, 6), date(Y, 3, 1), date(Y, 11, 30), bj(3, 6), set(), id="start-within-grace"),
        pytest.param(
            bj(3, 20),
            date(Y, 3, 1),
            date(Y, 11, 30),
            bj(3, 21),
            {"start_before_proposal"},
            id="start-backdated",
        ),
        pytest.param(
            bj(2, 1),
            date(Y, 3, 1),
            date(Y, 3, 31),
            bj(4, 2),
            {"confirmed_after_end"},
            id="confirmed-after-end",
        ),
    ],
)
async def test_backdated_agreements_are_flagged_not_blocked(
    world: World, proposed_at: datetime, start: date, end: date, confirmed_at: datetime, reasons: set[str]
) -> None:
    w = world
    m = await propose_as(w, "expert", "learner", proposed_at, start=start, end=end)
    m = await service.confirm(w.db, await caller(w, "learner"), m["id"], confirmed_at)
    assert m["status"] == "confirmed"
    found = await flags(w, w.actors["learner"].person_id)
    assert {f.evidence["reason"] for f in found} == reasons
    assert {f.code for f in found} <= {"backdated_mentorship"}
    if "start_before_proposal" in reasons:
        assert found[0].evidence["days_before"] == 19


# -- who may act ---------------------------------------------------------------------------------------------


async def test_only_the_two_people_act_on_an_agreement(client: Client, world: World) -> None:
    w = world
    await expert_learner(w, "outsider")
    status, m = await call(client, w, "expert", "POST", "/api/mentorships", body(w, "learner"))
    assert status == 201
    path = f"/api/mentorships/{m['id']}"
    for action in ("confirm", "cancel", "completion/confirm"):
        assert (await call(client, w, "outsider", "POST", f"{path}/{action}"))[0] == 404
    assert (await call(client, w, "outsider", "POST", f"{path}/completion", {"summary": "x"}))[0] == 404
    # Seen by its people, the mentee's employer (who approves the credit) and supervisors only.
    for key, expected in [
        ("outsider", 404),
        ("provider_admin", 404),
        ("staff", 404),
        ("learner", 200),
        ("expert", 200),
        ("employer_admin", 200),
        ("bureau", 200),
        ("admin", 200),
    ]:
        assert (await call(client, w, key, "GET", path))[0] == expected, key
    status, err = await call(client, w, "expert", "POST", f"{path}/confirm")  # the proposer
    assert status == 409
    assert "other side" in err["error"]["message"]
    assert (await call(client, w, "learner", "POST", f"{path}/completion/confirm"))[0] == 409  # too early
    assert (await call(client, w, "learner", "POST", f"{path}/confirm"))[0] == 200
    assert (await call(client, w, "learner", "POST", f"{path}/confirm"))[0] == 409  # already
    assert (await call(client, w, "expert", "POST", f"{path}/cancel"))[0] == 409  # confirmed
    assert (await call(client, w, "learner", "POST", f"{path}/completion", {"summary": "x"}))[0] == 403
    status, err = await call(client, w, "expert", "POST", f"{path}/completion", {"summary": "x"})
    assert status == 409  # the agreement runs to 31 December of this year
    assert err["error"]["details"] == {"end_date": f"{this_year()}-12-31"}
    with pytest.raises(Forbidden):
        await service.confirm_completion(w.db, await caller(w, "expert"), m["id"], bj(12, 31))


async def test_bad_input_is_a_clear_4xx_naming_the_field(client: Client, world: World) -> None:
    w = world
    await w.person("expert2", [(Role.EXPERT, None)])
    y = this_year()
    cases: list[tuple[str, Any, int, str]] = [
        ("expert", [], 400, ""),  # not an object
        ("expert", {k: v for k, v in body(w, "learner").items() if k != "side"}, 400, "side"),
        ("expert", body(w, "learner", side="boss"), 400, "side"),
        ("expert", body(w, "learner", extra=1), 400, "extra"),
        ("expert", body(w, "learner", counterpart_id="12"), 400, "counterpart_id"),
        ("expert", body(w, "learner", counterpart_id=0), 400, "counterpart_id"),
        ("expert", body(w, "learner", counterpart_name="张三"), 404, "counterpart_id"),
        ("expert", body(w, "learner", counterpart_id=2**62), 404, "counterpart_id"),
        ("expert", body(w, "expert2"), 404, "counterpart_id"),  # an expert who is no learner
        ("learner", body(w, "staff"), 403, ""),  # a learner cannot mentor
        ("expert", body(w, "learner", side="mentee"), 403, ""),  # the expert holds no learner role
        ("expert", body(w, "learner", year=y + 2), 400, "year"),
        ("expert", body(w, "learner", year=y - 2), 400, "year"),
        ("expert", body(w, "learner", start_date=f"{y}/12/01"), 400, "start_date"),
        ("expert", body(w, "learner", start_date=f"{y}-02-30"), 400, "start_date"),
        ("expert", body(w, "learner", start_date=f"{y - 1}-12-01"), 400, "start_date"),
        ("expert", body(w, "learner", end_date=f"{y}-11-30"), 400, "end_date"),
        ("expert", body(w, "learner", end_date=None), 400, "end_date"),
        ("expert", body(w, "learner", plan=""), 400, "plan"),
        ("expert", body(w, "learner", plan="计" * 5001), 400, "plan"),
        ("expert", body(w, "learner", terms=7), 400, "terms"),
    ]
    for key, sent, status, field in cases:
        got, answer = await call(client, w, key, "POST", "/api/mentorships", sent)
        assert got == status, (sent, answer)
        if field:
            assert answer["error"]["field"] == field, answer
    async with w.db.sessions.begin() as s:
        assert await s.scalar(select(func.count()).select_from(Mentorship)) == 0
    status, m = await call(client, w, "expert", "POST", "/api/mentorships", body(w, "learner"))
    assert status == 201
    for sent in ({}, {"summary": ""}, {"summary": "x", "extra": 1}, ["x"]):
        got, _ = await call(client, w, "expert", "POST", f"/api/mentorships/{m['id']}/completion", sent)
        assert got == 400, sent
    assert (await call(client, w, "expert", "GET", "/api/mentorships/999999"))[0] == 404
    assert (await call(client, w, "expert", "GET", f"/api/mentorships/{2**64}"))[0] == 404
    assert (await call(client, w, "expert", "GET", "/api/me/mentorships?year=abc"))[0] == 400
    # A second standing agreement of the same pair and year is refused.
    assert (await call(client, w, "expert", "POST", "/api/mentorships", body(w, "learner")))[0] == 409
