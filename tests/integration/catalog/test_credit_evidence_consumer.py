"""The catalog's consumer stores evidence from a real bus (in memory and Redis) on SQLite and PostgreSQL:
heartbeats in batches (1,000 in a few batches → all stored once; delivered again → nothing twice), the
replay resume point at the latest heartbeat, attention and live checks, unknown people's evidence kept,
and a completed replay settled right after its batch."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from catalog.consumer import GROUP, EventConsumer
from catalog.credit import settle
from catalog.credit.policy import CreditPolicy
from catalog.models import (
    AttentionChange,
    Heartbeat,
    HlsFetch,
    LiveInterval,
    PresenceAnswer,
    PresenceCheckRecord,
    ReplayProgress,
)
from infra import events
from tests.integration.catalog.credit_support import T0, beats, count, entries, store_policy
from tests.integration.test_event_bus_contract import MakeHarness, make_harness  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World


@pytest.fixture
async def consumer(make_harness: MakeHarness, world: World) -> EventConsumer:  # noqa: F811
    harness = await make_harness(retention=10_000)
    return EventConsumer(
        harness.bus,
        world.db,
        "test-consumer",
        block_s=0,
        evidence_batch=400,
        on_replay_progress=settle.replay_progress_hook(world.db),
    )


async def drain(consumer: EventConsumer, topic: str) -> int:
    """Hand what the topic holds to the consumer; the number of batches it took."""
    batches = 0
    while deliveries := await consumer.bus.consume(
        topic, GROUP, consumer.name, count=consumer._count(topic), block_s=0
    ):
        await consumer.handle(deliveries)
        batches += 1
    return batches


async def publish(consumer: EventConsumer, batch: list[events.Event]) -> None:
    for event in batch:
        await events.publish(consumer.bus, event)


async def test_a_thousand_heartbeats_are_stored_once_in_a_few_batches_and_redelivery_adds_nothing(
    world: World, consumer: EventConsumer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rec = await world.recording(world.session_id, duration_s=3600.0)
    learner = world.actors["learner"].person_id
    stranger = 987_654  # no such person: kept, never credited
    playback = beats(learner, rec, "client-1", T0, [float(n) for n in range(900)], every_s=1.0)
    hls = [
        events.HlsHeartbeat(
            session_id=world.session_id,
            person_id=stranger,
            client_id="hls-x",
            seq=n,
            at=T0 + timedelta(seconds=n),
            media_sequence=n,
            position_s=float(n),
            rate=1.0,
            visible=True,
        )
        for n in range(60)
    ]
    live = [
        events.LiveHeartbeat(
            session_id=world.session_id,
            person_id=learner,
            client_id="conn-key-1",
            seq=n + 1,
            at=T0 + timedelta(seconds=n),
            visible=n % 2 == 0,
        )
        for n in range(40)
    ]
    hls += live
    await publish(consumer, [*playback, *hls])
    assert await drain(consumer, events.EVIDENCE) == 3  # 400 + 400 + 200
    assert await count(world.db, Heartbeat) == 1000
    assert await consumer.bus.pending_count(events.EVIDENCE, GROUP) == 0
    async with world.db.sessions.begin() as s:
        stored_live = list(
            await s.scalars(select(Heartbeat).where(Heartbeat.kind == "live").order_by(Heartbeat.seq))
        )
    assert [(b.client_id, b.seq, b.session_id, b.person_id) for b in stored_live[:1]] == [
        ("conn-key-1", 1, world.session_id, learner)
    ]
    assert [b.visible for b in stored_live] == [n % 2 == 0 for n in range(40)]
    assert stored_live[5].at == T0 + timedelta(seconds=5)
    async with world.db.sessions.begin() as s:
        progress = await s.get(ReplayProgress, (learner, rec))
    assert progress is not None
    assert (progress.position_s, progress.updated_at) == (899.0, T0 + timedelta(seconds=899))

    # Delivered again (a restarted producer, a claim after a crash), older first: nothing changes.
    await publish(consumer, [*hls, *playback[:500]])
    await drain(consumer, events.EVIDENCE)
    assert await count(world.db, Heartbeat) == 1000
    async with world.db.sessions.begin() as s:
        progress = await s.get(ReplayProgress, (learner, rec))
    assert progress is not None
    assert progress.position_s == 899.0  # the resume point never moves back
    assert "stored batch events=400" in caplog.text


async def test_attention_checks_answers_segments_and_the_reason_a_viewer_left_are_stored_once(
    world: World, consumer: EventConsumer
) -> None:
    sid, person = world.session_id, world.actors["learner"].person_id
    attendance_events: list[events.Event] = [
        events.ViewerJoined(session_id=sid, person_id=person, peer_id="w1", at=T0),
        events.ViewerLeft(
            session_id=sid, person_id=person, peer_id="w1", at=T0 + timedelta(minutes=5), reason="stalled"
        ),
        events.AttentionChanged(
            session_id=sid, person_id=person, conn_id="c1", visible=True, at=T0, reason="shown"
        ),
        events.AttentionChanged(
            session_id=sid,
            person_id=person,
            conn_id="c1",
            visible=False,
            at=T0 + timedelta(minutes=5),
            reason="hidden",
        ),
    ]
    presence: list[events.Event] = [
        events.PresenceCheckIssued(
            session_id=sid,
            check_id="k1",
            issued_at=T0 + timedelta(minutes=1),
            deadline_at=T0 + timedelta(minutes=2),
        ),
        events.PresenceCheckAnswered(
            session_id=sid,
            check_id="k1",
            person_id=person,
            answered_at=T0 + timedelta(seconds=64),
            latency_ms=4000,
        ),
    ]
    evidence: list[events.Event] = [
        events.HlsSegmentFetched(session_id=sid, person_id=person, key="hls/1/live/seg1.ts", at=T0),
    ]
    for _round in range(2):
        await publish(consumer, [*attendance_events, *presence, *evidence])
        for topic in (events.ATTENDANCE, events.PRESENCE, events.EVIDENCE):
            await drain(consumer, topic)
    db = world.db
    assert await count(db, AttentionChange) == 2
    assert await count(db, PresenceCheckRecord) == 1
    assert await count(db, HlsFetch) == 1
    async with db.sessions.begin() as s:
        answer = await s.get(PresenceAnswer, ("k1", person))
        reasons = list(await s.scalars(select(LiveInterval.reason)))
    assert answer is not None
    assert answer.latency_ms == 4000
    assert reasons == ["stalled"]


async def test_a_replay_that_reaches_the_end_is_settled_after_its_batch(
    world: World, consumer: EventConsumer
) -> None:
    db = world.db
    await store_policy(db, CreditPolicy(minutes_per_xueshi=1, heartbeat_period_s=10))
    learner = world.actors["learner"].person_id
    async with db.sessions.begin() as s:
        from catalog.models import Session

        session = await s.get(Session, world.session_id)
        assert session is not None
        session.actual_start, session.actual_end = T0, T0 + timedelta(minutes=30)
    rec = await world.recording(world.session_id, duration_s=120.0)
    await publish(consumer, beats(learner, rec, "c", T0 + timedelta(hours=1), [10.0 * n for n in range(7)]))
    await drain(consumer, events.EVIDENCE)
    assert await entries(db, kind="replay") == []
    rest = beats(
        learner, rec, "c", T0 + timedelta(hours=1, seconds=70), [70.0 + 10 * n for n in range(6)], first_seq=7
    )
    await publish(consumer, rest)
    await drain(consumer, events.EVIDENCE)
    (entry,) = await entries(db, kind="replay")
    assert entry.xueshi == Decimal("2.00")
    assert entry.evidence["figures"]["coverage"] == 1.0
