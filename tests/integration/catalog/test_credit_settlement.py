"""Settlement on a real database (SQLite and PostgreSQL): scripted evidence stored through the consumer's
write paths becomes ledger entries with the expected minutes and 学时, once (R24); the course cap, the
Beijing day's cap (R6), replay completion, reversal entries; a flag for each fraud code, and none for an
honest learner in the same session."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from catalog import evidence as store
from catalog.credit import ledger, settle
from catalog.credit.policy import CreditPolicy
from catalog.models import AuditEntry, CreditEntry, FraudFlag
from infra import events
from infra.errors import Conflict
from infra.settings import Settings
from tests.integration.catalog.conftest import SECRET
from tests.integration.catalog.credit_support import (
    T0,
    at,
    beats,
    count,
    ended_session,
    entries,
    flag_codes,
    live,
    live_checks,
    store_policy,
)

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

AFTER = T0 + timedelta(hours=6)  # well past every session's end + 2 × period


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The catalog without its settlement task: these tests settle by hand, at times they choose."""
    return Settings(
        database_url=database_url, secret_key=SECRET, data_dir=tmp_path / "var", credit_settle_every_s=0
    )


def pid(w: World, key: str) -> int:
    return w.actors[key].person_id


async def test_a_live_session_settles_into_full_credit_for_the_honest_and_none_for_the_half_hidden(
    world: World,
) -> None:
    db = world.db
    sid = await ended_session(world, world.course_id, T0, 90)
    honest, hider = pid(world, "learner"), pid(world, "staff")
    await live(db, sid, honest, at(0), at(90))
    await live(db, sid, hider, at(0), at(90), hidden=(at(45), at(90)))
    await live_checks(db, sid, [at(10), at(40), at(70)], {honest: 3000, hider: 2500})

    assert (await settle.settle_due(db, at(90) + timedelta(seconds=30))).entries == 0  # not yet 2 × period
    report = await settle.settle_due(db, AFTER)
    assert report.sessions == 1
    assert report.entries == 2

    by_person = {e.person_id: e for e in await entries(db, session_id=sid)}
    full = by_person[honest]
    assert (full.kind, full.minutes, full.xueshi, full.status) == ("live", 90.0, Decimal("2.00"), "pending")
    assert full.credit_day == "2026-03-02"
    assert full.credit_year == 2026
    assert full.category == "professional"
    assert full.evidence["figures"]["checks_answered"] == 3
    assert full.evidence["live_interval_ids"]
    assert len(full.evidence["check_ids"]) == 3
    assert full.evidence["policy_version"] == 0
    assert full.evidence["correction_id"] is None
    half = by_person[hider]
    assert half.xueshi == Decimal("0.00")
    assert half.evidence["figures"]["ratio"] == pytest.approx(0.5)  # R9, policy "none"
    assert await flag_codes(db, honest) == set()
    assert await flag_codes(db, hider) == set()  # hiding a tab is not fraud: it just earns nothing

    # R24: settling again (another round, another process) adds nothing.
    assert (await settle.settle_due(db, AFTER)).entries == 0
    assert (await settle.settle_session(db, sid, AFTER)).entries == 0
    assert len(await entries(db, session_id=sid)) == 2


async def test_a_session_time_correction_bounds_credit_and_is_named(world: World) -> None:
    from catalog.models import SessionTimeCorrection

    db = world.db
    sid = await ended_session(world, world.course_id, T0, 90)
    me = pid(world, "learner")
    await live(db, sid, me, at(0), at(50))
    async with db.sessions.begin() as s:
        c = SessionTimeCorrection(
            session_id=sid,
            actual_start=at(0),
            actual_end=at(50),
            reason="提前结束",
            corrected_by=me,
            at=at(100),
        )
        s.add(c)
        await s.flush()
        correction_id = c.id
    await settle.settle_due(db, AFTER)
    (entry,) = await entries(db, session_id=sid)
    assert entry.minutes == 50.0
    assert entry.xueshi == Decimal("1.00")
    assert entry.evidence["correction_id"] == correction_id


async def test_a_correction_after_settlement_reverses_and_settles_again_on_the_corrected_window(
    world: World,
) -> None:
    """The server's times said 90 minutes; the provider corrects the lecture to 50 (it ended early and the
    room stayed open). The first credit is reversed by new entries, never edited, and the session is
    settled again on the corrected window; both acts are audited."""
    from catalog.credit import corrections
    from catalog.domain import Caller, Role

    db = world.db
    sid = await ended_session(world, world.course_id, T0, 90)
    me = pid(world, "learner")
    await live(db, sid, me, at(0), at(90))
    await settle.settle_due(db, AFTER)
    (first,) = await entries(db, session_id=sid)
    assert (first.minutes, first.xueshi) == (90.0, Decimal("2.00"))

    admin = Caller(pid(world, "admin"), None, frozenset({(Role.ADMIN, None)}))
    view = await corrections.create(db, admin, sid, at(0), at(50), "讲座提前结束，直播间未关闭", AFTER)
    assert view["resettled"] is True
    after = await entries(db, session_id=sid)
    assert [(e.kind, e.xueshi, e.reversal_of_id) for e in after] == [
        ("live", Decimal("2.00"), None),
        ("reversal", Decimal("-2.00"), first.id),
        ("live", Decimal("1.00"), None),
    ]
    assert after[0].minutes == first.minutes  # the original row is unchanged
    assert after[2].evidence["correction_id"] == view["id"]
    assert sum(e.xueshi for e in after) == Decimal("1.00")
    async with db.sessions.begin() as s:
        actions = list(
            await s.scalars(
                select(AuditEntry.action).where(AuditEntry.subject_id.in_([str(sid), str(first.id)]))
            )
        )
    assert actions.count(settle.SETTLED) == 2
    assert settle.UNSETTLED in actions
    assert "credit.reversed" in actions
    # Settling again changes nothing: the corrected settlement stands.
    assert (await settle.settle_due(db, AFTER)).entries == 0


async def test_a_session_waits_for_the_consumer_to_store_its_evidence(world: World) -> None:
    """A consumer running behind must not cost a learner credit: the settler asks the bus for the oldest
    evidence event the catalog has not acknowledged, and settles only sessions that ended (plus 2 ×
    period) before it was published."""
    from catalog import consumer, settler
    from infra.bus_memory import MemoryBus

    db = world.db
    sid = await ended_session(world, world.course_id, T0, 90)
    me = pid(world, "learner")
    await live(db, sid, me, at(0), at(90))
    # Evidence published at 90:10 that the consumer has not stored yet: nothing is due.
    assert (await settle.settle_due(db, AFTER, evidence_through=at(90) + timedelta(seconds=10))).sessions == 0
    assert await entries(db, session_id=sid) == []
    assert (await settle.settle_due(db, AFTER, evidence_through=at(91) + timedelta(seconds=1))).sessions == 1

    # What the task computes: the publish time of the oldest unacknowledged evidence event.
    clock_ms = [int(at(95).timestamp() * 1000)]
    bus = MemoryBus(retention=100, wall_clock_ms=lambda: clock_ms[0], protected_group=consumer.GROUP)
    assert await settler.evidence_through(bus, None, AFTER) == AFTER  # nothing waits
    left = events.ViewerLeft(session_id=sid, person_id=me, peer_id="p-late", at=at(90))
    await events.publish(bus, left)
    clock_ms[0] += 60_000
    await events.publish(bus, left)
    assert await settler.evidence_through(bus, None, AFTER) == at(95)
    (first, _second) = await bus.consume(events.ATTENDANCE, consumer.GROUP, "c", count=2)
    await bus.ack(events.ATTENDANCE, consumer.GROUP, [first.id])
    assert await settler.evidence_through(bus, None, AFTER) == at(96)
    await bus.ack(events.ATTENDANCE, consumer.GROUP, [_second.id])
    assert await settler.evidence_through(bus, None, AFTER) == AFTER


async def test_the_course_cap_and_the_beijing_day_cap_hold_across_sessions(world: World) -> None:
    db = world.db
    me = pid(world, "learner")
    policy = CreditPolicy(daily_cap_xueshi=Decimal("3"))
    # Course cap: two 90-minute sessions of a 2-学时 course.
    first = await ended_session(world, world.course_id, T0, 90)
    second = await ended_session(world, world.course_id, at(120), 90)
    # Day cap: another course's session the same Beijing day.
    other_course = await world.course(world.orgs["provider"], title="另一门课", credit_hours=Decimal("4.0"))
    third = await ended_session(world, other_course, at(240), 90)
    for sid, start in ((first, 0), (second, 120), (third, 240)):
        await live(db, sid, me, at(start), at(start + 90))
    await settle.settle_due(db, AFTER, policy=policy)

    got = {e.session_id: e for e in await entries(db, person_id=me)}
    assert got[first].xueshi == Decimal("2.00")
    assert got[second].xueshi == Decimal("0.00")
    assert got[second].evidence["course_cap_applied"] is True
    assert got[third].xueshi == Decimal("1.00")  # 3 a day, 2 already that day
    assert got[third].evidence["uncapped_xueshi"] == "2.0"
    cut = {day: Decimal(x) for day, x in got[third].evidence["daily_cap_cut"].items()}
    assert cut == {"2026-03-02": Decimal(1)}
    assert "daily_cap" in await flag_codes(db, me)


async def test_a_completed_replay_is_credited_once_and_a_live_credited_session_is_not_credited_again(
    world: World,
) -> None:
    db = world.db
    policy = await store_policy(db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    viewer, attendee = pid(world, "learner"), pid(world, "staff")
    sid = await ended_session(world, world.course_id, T0, 90)
    rec = await world.recording(sid, duration_s=120.0)
    await live(db, sid, attendee, at(0), at(90))
    await settle.settle_due(db, AFTER)  # the attendee's live credit

    start = at(0, AFTER)
    half = beats(viewer, rec, "cl-v", start, [10.0 * n for n in range(7)])
    stored = await store.store_batch(db, half)
    assert stored.inserted["heartbeats"] == 7
    assert (await settle.settle_due(db, start + timedelta(minutes=5))).entries == 0  # not at the end yet
    rest = beats(
        viewer, rec, "cl-v", start + timedelta(seconds=70), [70.0 + 10 * n for n in range(6)], first_seq=7
    )
    await store.store_batch(db, rest)
    await store.store_batch(db, beats(attendee, rec, "cl-a", start, [10.0 * n for n in range(13)]))
    now = start + timedelta(minutes=5)
    assert (await settle.settle_due(db, now)).entries == 2

    (replay,) = await entries(db, person_id=viewer, kind="replay")
    assert replay.xueshi == Decimal("2.00")
    assert replay.policy_version == policy.version
    assert replay.evidence["figures"]["complete"] is True
    assert replay.evidence["recording_id"] == rec
    assert set(replay.evidence["client_session_ids"]) == {"cl-v"}
    again = await entries(db, person_id=attendee, kind="replay")
    assert [(e.xueshi, e.note) for e in again] == [(Decimal("0.00"), "already credited")]
    assert await flag_codes(db, attendee) == set()  # a later replay of what one attended is no fraud
    assert (await settle.settle_due(db, now)).entries == 0
    assert len(await entries(db, kind="replay")) == 2


async def test_a_reversal_is_a_new_negative_entry_and_the_ledger_only_grows(world: World) -> None:
    db = world.db
    sid = await ended_session(world, world.course_id, T0, 90)
    me, admin = pid(world, "learner"), pid(world, "admin")
    await live(db, sid, me, at(0), at(90))
    await settle.settle_due(db, AFTER)
    (original,) = await entries(db, session_id=sid)
    before = {e.id: (e.xueshi, e.minutes, e.evidence, e.status) for e in await entries(db)}

    reversal = await ledger.reverse(db, original.id, admin, "证据有误", AFTER)
    assert (reversal.kind, reversal.xueshi, reversal.reversal_of_id) == (
        "reversal",
        Decimal("-2.00"),
        original.id,
    )
    with pytest.raises(Conflict):
        await ledger.reverse(db, original.id, admin, "再次", AFTER)
    after = {e.id: (e.xueshi, e.minutes, e.evidence, e.status) for e in await entries(db)}
    assert len(after) == len(before) + 1
    assert all(after[i] == v for i, v in before.items())
    async with db.sessions.begin() as s:
        audit = list(await s.scalars(select(AuditEntry).where(AuditEntry.action == "credit.reversed")))
    assert [(a.actor_person_id, a.subject_id) for a in audit] == [(admin, str(original.id))]
    assert sum(e.xueshi for e in await entries(db, person_id=me)) == 0


async def test_each_fraud_is_flagged_with_its_evidence_and_the_honest_learner_is_not(world: World) -> None:
    db = world.db
    policy = await store_policy(db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    honest = pid(world, "learner")
    cheats = {}
    for key in ("bot", "twin", "late", "seeker", "fast", "forger", "double", "overlap"):
        cheats[key] = (await world.person(key, [])).person_id
    sid = await ended_session(world, world.course_id, T0, 30)
    other_course = await world.course(world.orgs["provider"], title="同时的另一门课")
    other = await ended_session(world, other_course, T0, 30)
    for person in (honest, *cheats.values()):
        await live(db, sid, person, at(0), at(30))
    await live(db, sid, cheats["twin"], at(0), at(30), peer="second")  # another device all along
    await store.record_attention(
        db,
        events.AttentionChanged(
            session_id=sid, person_id=cheats["late"], conn_id="after", visible=True, at=at(45), reason="shown"
        ),
    )
    await live(db, other, cheats["overlap"], at(0), at(30))
    answers: dict[int, int | None] = {p: 3000 for p in (honest, *cheats.values())}
    answers[cheats["bot"]] = 120  # faster than anyone can see and click
    await live_checks(db, sid, [at(5), at(15), at(25)], answers)
    await live_checks(db, other, [], {})
    await settle.settle_session(db, other, AFTER)
    await settle.settle_session(db, sid, AFTER)

    rec = await world.recording(sid, duration_s=120.0)
    start = at(0, AFTER)
    honest_beats = beats(honest, rec, "h", start, [10.0 * n for n in range(13)])
    seeker = beats(cheats["seeker"], rec, "s", start, [0.0, 10.0, 115.0, 120.0])
    fast = beats(cheats["fast"], rec, "f", start, [30.0 * n for n in range(5)], rate=3.0)
    # Sequence numbers 100…112, then a made-up heartbeat numbered 50 (a stored number cannot repeat).
    forger = beats(cheats["forger"], rec, "g", start, [10.0 * n for n in range(13)], first_seq=100)
    forged_again = beats(cheats["forger"], rec, "g", start + timedelta(seconds=125), [60.0], first_seq=50)
    # The double claimer watches an earlier recording of the session while the live one goes on.
    double = beats(cheats["double"], rec, "d", at(10), [10.0 * n for n in range(13)])
    await store.store_batch(db, [*honest_beats, *seeker, *fast, *forger, *forged_again, *double])
    for person in (cheats["seeker"], cheats["fast"], cheats["forger"], cheats["double"], honest):
        await settle.settle_replay(db, person, rec, start + timedelta(minutes=5), policy=policy)

    expected = {
        "bot": "auto_confirm",
        "twin": "two_devices",
        "late": "after_end",
        "seeker": "forward_seek",
        "fast": "too_fast",
        "forger": "forged_or_replayed",
        "double": "double_claim",
        "overlap": "multi_course_overlap",
    }
    for key, code in expected.items():
        assert code in await flag_codes(db, cheats[key]), key
    assert await flag_codes(db, honest) == set()
    honest_entries = await entries(db, person_id=honest)
    assert [e.xueshi for e in honest_entries if e.kind == "live"] == [Decimal("2.00")]  # the course's 2
    assert [e.note for e in honest_entries if e.kind == "replay"] == ["already credited"]
    overlap_live = {e.session_id: e for e in await entries(db, person_id=cheats["overlap"])}
    assert overlap_live[other].xueshi == Decimal("2.00")  # the first course credited (its cap)
    assert overlap_live[sid].xueshi == Decimal("0.00")  # the same minutes, not again
    async with db.sessions.begin() as s:
        bot_flag = await s.scalar(select(FraudFlag).where(FraudFlag.person_id == cheats["bot"]))
    assert bot_flag is not None
    assert bot_flag.evidence["latency_ms"] == [120, 120, 120]
    n_flags = await count(db, FraudFlag)
    await settle.settle_replay(db, cheats["seeker"], rec, start + timedelta(minutes=6), policy=policy)
    assert await count(db, FraudFlag) == n_flags  # one flag per person, code and subject
    assert await count(db, CreditEntry) == len(await entries(db))


async def test_concurrent_settlements_of_one_replay_write_one_entry(world: World) -> None:
    """The consumer's after-batch check and the settler's sweep may settle the same replay at once: one
    entry, on SQLite (no row locks) as on PostgreSQL."""
    db = world.db
    policy = await store_policy(db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    me = pid(world, "learner")
    sid = await ended_session(world, world.course_id, T0, 90)
    rec = await world.recording(sid, duration_s=120.0)
    start = at(0, AFTER)
    await store.store_batch(db, beats(me, rec, "cl-1", start, [10.0 * n for n in range(13)]))
    now = start + timedelta(minutes=5)
    settlements = (settle.settle_replay(db, me, rec, now, policy=policy) for _ in range(30))
    await asyncio.gather(*settlements)
    assert [e.xueshi for e in await entries(db, person_id=me, kind="replay")] == [Decimal("2.00")]
