"""The event-bus contract: one suite run against MemoryBus and RedisBus (infra/bus.py, docs/events.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from infra import events
from infra.bus import BusUnavailable, Delivery, EventBus
from infra.bus_memory import MemoryBus
from infra.bus_redis import RedisBus
from infra.errors import Invalid
from tests.helpers import free_port, service_env, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("bus_consumer_child.py")
TOPIC = "lectures"
GROUP = "catalog"


class FakeClock:
    """Monotonic seconds that move only when the test says so (MemoryBus idle time)."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@dataclass
class Harness:
    """One bus under test and what the suite needs to know about its implementation."""

    bus: EventBus
    # Events a topic may hold beyond `retention` (Redis trims whole stream nodes: `MAXLEN ~`).
    trim_slack: int
    # Lets `seconds` of idle time pass for claim_stale: the fake clock for MemoryBus; for Redis,
    # whose idle time is the server's clock, nothing (the tests poll with a short min_idle_s).
    advance: Callable[[float], None]
    # How many consume calls are blocked waiting on `topic` right now.
    blocked: Callable[[str], Awaitable[int]]


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture(params=["memory", "redis"])
async def make_harness(request: pytest.FixtureRequest) -> AsyncIterator[MakeHarness]:
    """A factory of buses of one implementation; everything it made is closed and wiped afterwards."""
    made: list[EventBus] = []
    admin: redis.Redis | None = None
    prefix = f"test:bus:{uuid.uuid4().hex}:"  # keys of this test only: unique topics per test

    if request.param == "memory":
        clock = FakeClock()

        async def make(retention: int = 1000, **options: Any) -> Harness:
            bus = MemoryBus(retention, clock=clock, **options)
            made.append(bus)

            async def blocked(topic: str) -> int:
                return bus.waiting_consumers(topic)

            return Harness(bus, trim_slack=0, advance=clock.advance, blocked=blocked)

    else:
        url = service_env("TEST_REDIS_URL")
        admin = redis.Redis.from_url(url, decode_responses=True)
        config = await admin.config_get("stream-node-max-entries")
        node_entries = int(str(config["stream-node-max-entries"]))

        async def blocked(_topic: str) -> int:
            clients = await admin.client_list()
            return sum(1 for c in clients if c.get("cmd") == "xreadgroup" and "b" in c.get("flags", ""))

        async def make(retention: int = 1000, **options: Any) -> Harness:
            if "protected_group" in options:
                options.setdefault("trim_interval_s", 0.0)  # trim after every ack: deterministic
            bus = RedisBus(url, retention, key_prefix=prefix, **options)
            made.append(bus)
            return Harness(bus, trim_slack=node_entries, advance=lambda _s: None, blocked=blocked)

    yield make

    for bus in made:
        await bus.close()
    if admin is not None:
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


@pytest.fixture
async def harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()


async def publish_n(bus: EventBus, n: int, topic: str = TOPIC) -> list[str]:
    return [await bus.publish(topic, "test.numbered", {"n": i}) for i in range(n)]


async def claim_at_least(
    h: Harness, consumer: str, n: int, min_idle_s: float = 0.2, topic: str = TOPIC
) -> list[Delivery]:
    """claim_stale until `n` events were claimed, letting idle time pass in between."""
    claimed: list[Delivery] = []

    async def enough() -> bool:
        h.advance(min_idle_s)
        claimed.extend(await h.bus.claim_stale(topic, GROUP, consumer, min_idle_s=min_idle_s))
        return len(claimed) >= n

    await wait_until(enough, timeout_s=10, message=f"{n} stale events claimed")
    return claimed


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.id for d in deliveries]


def id_key(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


# -- publish, consume, ack ---------------------------------------------------------------------------


async def test_an_acknowledged_event_is_never_delivered_again(harness: Harness) -> None:
    bus = harness.bus
    await bus.ensure_group(TOPIC, GROUP)
    first, second = await publish_n(bus, 2)

    got = await bus.consume(TOPIC, GROUP, "c1")
    assert [(d.topic, d.id, d.type, d.data, d.attempts) for d in got] == [
        (TOPIC, first, "test.numbered", {"n": 0}, 1),
        (TOPIC, second, "test.numbered", {"n": 1}, 1),
    ]
    await bus.ack(TOPIC, GROUP, [first])

    assert await bus.consume(TOPIC, GROUP, "c1") == []
    assert await bus.consume(TOPIC, GROUP, "c2") == []
    claimed = await claim_at_least(harness, "c2", 1)
    assert ids(claimed) == [second]  # the unacknowledged one only


async def test_consumers_in_one_group_share_the_events_each_going_to_exactly_one(harness: Harness) -> None:
    bus = harness.bus
    await bus.ensure_group(TOPIC, GROUP)
    published = await publish_n(bus, 20)

    first = await bus.consume(TOPIC, GROUP, "a", count=7)
    second = await bus.consume(TOPIC, GROUP, "b", count=100)
    third = await bus.consume(TOPIC, GROUP, "a", count=100)

    assert len(first) == 7
    assert len(second) == 13
    assert third == []
    assert sorted(ids(first) + ids(second), key=id_key) == published


async def test_every_group_gets_every_event(harness: Harness) -> None:
    bus = harness.bus
    await bus.ensure_group(TOPIC, "catalog")
    await bus.ensure_group(TOPIC, "metrics")
    published = await publish_n(bus, 5)

    assert ids(await bus.consume(TOPIC, "catalog", "c")) == published
    assert ids(await bus.consume(TOPIC, "metrics", "m")) == published
    await bus.ack(TOPIC, "catalog", published)
    assert await bus.pending_count(TOPIC, "catalog") == 0
    assert await bus.pending_count(TOPIC, "metrics") == 5  # acks are per group


async def test_a_group_created_after_publishing_starts_at_the_oldest_event(harness: Harness) -> None:
    published = await publish_n(harness.bus, 3)
    await harness.bus.ensure_group(TOPIC, GROUP)
    await harness.bus.ensure_group(TOPIC, GROUP)  # idempotent: does not reset the group
    assert ids(await harness.bus.consume(TOPIC, GROUP, "c")) == published


async def test_consume_creates_a_missing_group(harness: Harness) -> None:
    published = await publish_n(harness.bus, 2)
    assert ids(await harness.bus.consume(TOPIC, "never-ensured", "c")) == published


async def test_ids_increase_and_events_arrive_in_publishing_order(harness: Harness) -> None:
    bus = harness.bus
    published = await publish_n(bus, 50)
    keys = [id_key(i) for i in published]
    assert keys == sorted(keys)
    assert len(set(keys)) == 50
    got = await bus.consume(TOPIC, GROUP, "c", count=100)
    assert [d.data["n"] for d in got] == list(range(50))


async def test_json_data_with_chinese_text_round_trips(harness: Harness) -> None:
    data: dict[str, Any] = {
        "title": "专业技术人员继续教育：公需科目",
        "speaker": {"name": "王老师", "tags": ["青岛", "🎓"]},
        "numbers": [0, -1, 2.5, 1e-9, 12345678901234567],
        "flags": [True, False, None],
        "empty": {},
    }
    bus = harness.bus
    await bus.publish(TOPIC, "test.unicode", data)
    [got] = await bus.consume(TOPIC, GROUP, "c")
    assert got.type == "test.unicode"
    assert got.data == data
    assert got.data["title"] == "专业技术人员继续教育：公需科目"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(["not", "an", "object"], id="list"),
        pytest.param({"n": float("nan")}, id="nan"),
        pytest.param({"when": datetime(2025, 1, 1, tzinfo=UTC)}, id="datetime"),
        pytest.param({"raw": b"bytes"}, id="bytes"),
    ],
)
async def test_data_that_is_not_a_json_object_is_rejected_and_nothing_is_published(
    harness: Harness, data: Any
) -> None:
    with pytest.raises(Invalid) as caught:
        await harness.bus.publish(TOPIC, "test.bad", data)
    assert caught.value.field == "data"
    assert await harness.bus.length(TOPIC) == 0


async def test_acknowledging_a_malformed_id_is_rejected(harness: Harness) -> None:
    await harness.bus.ensure_group(TOPIC, GROUP)
    with pytest.raises(Invalid):
        await harness.bus.ack(TOPIC, GROUP, ["not-an-id"])


# -- blocking ----------------------------------------------------------------------------------------


async def test_a_blocked_consume_wakes_up_when_an_event_is_published(harness: Harness) -> None:
    bus = harness.bus
    await bus.ensure_group(TOPIC, GROUP)
    waiting = asyncio.create_task(bus.consume(TOPIC, GROUP, "c", block_s=60))
    try:
        await wait_until(lambda: harness.blocked(TOPIC), message="consume blocked on the topic")
        event_id = await bus.publish(TOPIC, "test.wake", {"k": "v"})
        # Far less than block_s: the consumer was woken by the event, not by its timeout.
        got = await asyncio.wait_for(waiting, timeout=10)
    finally:
        waiting.cancel()
    assert [(d.id, d.data) for d in got] == [(event_id, {"k": "v"})]


async def test_a_blocked_consume_returns_nothing_after_its_timeout(harness: Harness) -> None:
    await harness.bus.ensure_group(TOPIC, GROUP)
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    got = await asyncio.wait_for(harness.bus.consume(TOPIC, GROUP, "c", block_s=0.3), timeout=10)
    assert got == []
    assert loop.time() - started_at >= 0.25  # it did wait (Redis rounds to milliseconds)


async def test_consume_without_block_returns_at_once(harness: Harness) -> None:
    await harness.bus.ensure_group(TOPIC, GROUP)
    # Redis spells "block forever" BLOCK 0; block_s=0 must mean "do not block".
    assert await asyncio.wait_for(harness.bus.consume(TOPIC, GROUP, "c", block_s=0), timeout=5) == []


async def test_a_stopping_consumer_does_not_start_to_wait(harness: Harness) -> None:
    await harness.bus.ensure_group(TOPIC, GROUP)
    stopping = asyncio.Event()
    stopping.set()
    got = await asyncio.wait_for(
        harness.bus.consume(TOPIC, GROUP, "c", block_s=60, until=stopping), timeout=5
    )
    assert got == []
    # What there is, it still reads (the drain after a stop).
    event_id = await harness.bus.publish(TOPIC, "test.late", {"k": "v"})
    got = await harness.bus.consume(TOPIC, GROUP, "c", block_s=60, until=stopping)
    assert [d.id for d in got] == [event_id]


async def test_the_memory_bus_ends_a_wait_in_progress_when_told_to_stop_and_takes_nothing() -> None:
    """Shutting an app down must not wait out the consumer's block (1 s per app in every test); the
    event published afterwards is still there for the next read."""
    bus = MemoryBus(100)
    try:
        await bus.ensure_group(TOPIC, GROUP)
        stopping = asyncio.Event()
        waiting = asyncio.create_task(bus.consume(TOPIC, GROUP, "c", block_s=60, until=stopping))
        await wait_until(lambda: bus.waiting_consumers(TOPIC), message="consume blocked on the topic")
        stopping.set()
        assert await asyncio.wait_for(waiting, timeout=5) == []
        assert bus.waiting_consumers(TOPIC) == 0
        event_id = await bus.publish(TOPIC, "test.after", {})
        assert [d.id for d in await bus.consume(TOPIC, GROUP, "c")] == [event_id]
    finally:
        await bus.close()


# -- pending and claims ------------------------------------------------------------------------------


async def test_pending_count_follows_deliveries_and_acks(harness: Harness) -> None:
    bus = harness.bus
    assert await bus.pending_count(TOPIC, GROUP) == 0  # no topic, no group yet
    await bus.ensure_group(TOPIC, GROUP)
    published = await publish_n(bus, 6)
    assert await bus.pending_count(TOPIC, GROUP) == 0  # published is not delivered
    await bus.consume(TOPIC, GROUP, "a", count=4)
    assert await bus.pending_count(TOPIC, GROUP) == 4
    await bus.consume(TOPIC, GROUP, "b", count=4)
    assert await bus.pending_count(TOPIC, GROUP) == 6
    await bus.ack(TOPIC, GROUP, published[1:3])
    assert await bus.pending_count(TOPIC, GROUP) == 4
    await bus.ack(TOPIC, GROUP, published[1:3])  # acking twice changes nothing
    assert await bus.pending_count(TOPIC, GROUP) == 4
    await bus.ack(TOPIC, GROUP, published)
    assert await bus.pending_count(TOPIC, GROUP) == 0


async def test_oldest_unacked_is_the_first_event_the_group_has_not_processed(harness: Harness) -> None:
    """What credit settlement waits on: every event older than this id is acknowledged by the group."""
    bus = harness.bus
    assert await bus.oldest_unacked(TOPIC, GROUP) is None  # no topic at all
    published = await publish_n(bus, 5)
    assert await bus.oldest_unacked(TOPIC, GROUP) == published[0]  # no group yet: it starts at the oldest
    await bus.ensure_group(TOPIC, GROUP)
    assert await bus.oldest_unacked(TOPIC, GROUP) == published[0]  # nothing delivered
    await bus.consume(TOPIC, GROUP, "a", count=3)
    assert await bus.oldest_unacked(TOPIC, GROUP) == published[0]  # delivered is not processed
    await bus.ack(TOPIC, GROUP, [published[0], published[2]])
    assert await bus.oldest_unacked(TOPIC, GROUP) == published[1]  # the oldest still pending
    await bus.ack(TOPIC, GROUP, [published[1]])
    assert await bus.oldest_unacked(TOPIC, GROUP) == published[3]  # the next not delivered
    await bus.consume(TOPIC, GROUP, "a", count=10)
    await bus.ack(TOPIC, GROUP, published[3:])
    assert await bus.oldest_unacked(TOPIC, GROUP) is None
    later = await bus.publish(TOPIC, "t", {"n": 99})
    assert await bus.oldest_unacked(TOPIC, GROUP) == later


async def test_claim_stale_redelivers_unacknowledged_events_with_attempts_counted(harness: Harness) -> None:
    bus = harness.bus
    await bus.ensure_group(TOPIC, GROUP)
    published = await publish_n(bus, 4)
    await bus.consume(TOPIC, GROUP, "dead", count=10)
    await bus.ack(TOPIC, GROUP, [published[0], published[2]])

    # Not idle long enough yet: nothing is taken from a consumer that may still be working.
    assert await bus.claim_stale(TOPIC, GROUP, "rescuer", min_idle_s=3600) == []

    claimed = await claim_at_least(harness, "rescuer", 2)
    assert [(d.id, d.data, d.attempts) for d in claimed] == [
        (published[1], {"n": 1}, 2),
        (published[3], {"n": 3}, 2),
    ]
    # Claiming reset their idle time: a second rescuer cannot take them at once.
    assert await bus.claim_stale(TOPIC, GROUP, "other", min_idle_s=3600) == []
    # Stale again: the count goes on.
    again = await claim_at_least(harness, "third", 2)
    assert [(d.id, d.attempts) for d in again] == [(published[1], 3), (published[3], 3)]

    await bus.ack(TOPIC, GROUP, ids(again))
    assert await bus.pending_count(TOPIC, GROUP) == 0
    harness.advance(3600)
    assert await bus.claim_stale(TOPIC, GROUP, "rescuer", min_idle_s=0) == []


async def test_claim_stale_takes_no_more_than_count(harness: Harness) -> None:
    bus = harness.bus
    published = await publish_n(bus, 5)
    await bus.consume(TOPIC, GROUP, "dead")
    harness.advance(1)
    first: list[Delivery] = []

    async def claimed_two() -> bool:
        harness.advance(0.2)
        first.extend(await bus.claim_stale(TOPIC, GROUP, "r", min_idle_s=0.2, count=2))
        return len(first) == 2

    await wait_until(claimed_two, timeout_s=10, message="two events claimed")
    assert ids(first) == published[:2]  # oldest first


async def test_claim_stale_on_a_missing_group_claims_nothing(harness: Harness) -> None:
    await publish_n(harness.bus, 1)
    assert await harness.bus.claim_stale(TOPIC, "nobody", "r", min_idle_s=0) == []
    await harness.bus.ack(TOPIC, "nobody", ["1-0"])  # nothing to acknowledge: no error


async def test_events_of_an_abandoned_consumer_are_delivered_again(harness: Harness) -> None:
    bus = harness.bus
    await bus.ensure_group(TOPIC, GROUP)
    published = await publish_n(bus, 10)
    batch = await bus.consume(TOPIC, GROUP, "abandoned", count=6)
    acked = [d.id for position, d in enumerate(batch) if position % 2 == 0]
    await bus.ack(TOPIC, GROUP, acked)
    unacked = set(ids(batch)) - set(acked)
    # ... and the consumer is never heard of again.

    claimed = await claim_at_least(harness, "rescuer", len(unacked))
    rest = await bus.consume(TOPIC, GROUP, "rescuer", count=100)

    assert set(ids(claimed)) == unacked
    assert len(claimed) == len(unacked)
    assert all(d.attempts == 2 for d in claimed)
    assert ids(rest) == published[6:]
    assert not set(acked) & set(ids(claimed) + ids(rest))
    await bus.ack(TOPIC, GROUP, ids(claimed) + ids(rest))
    assert await bus.pending_count(TOPIC, GROUP) == 0


# -- retention ---------------------------------------------------------------------------------------


async def test_retention_bounds_the_topic_and_drops_the_oldest_events(make_harness: MakeHarness) -> None:
    h = await make_harness(retention=10)
    published = await publish_n(h.bus, 310)

    length = await h.bus.length(TOPIC)
    assert 10 <= length <= 10 + h.trim_slack
    retained = await h.bus.consume(TOPIC, GROUP, "c", count=1000)
    # What is left is exactly the newest `length` events; the oldest are gone.
    assert ids(retained) == published[-length:]
    assert published[0] not in ids(retained)


async def test_claiming_drops_pending_events_that_retention_trimmed(make_harness: MakeHarness) -> None:
    h = await make_harness(retention=10)
    bus = h.bus
    await bus.ensure_group(TOPIC, GROUP)
    early = await publish_n(bus, 5)
    await bus.consume(TOPIC, GROUP, "dead")
    await publish_n(bus, 310)  # pushes the five pending events out of the topic
    assert await bus.pending_count(TOPIC, GROUP) == 5  # still pending: trimming does not ack

    claimed: list[Delivery] = []

    async def trimmed_ones_dropped() -> bool:
        h.advance(0.2)
        claimed.extend(await bus.claim_stale(TOPIC, GROUP, "r", min_idle_s=0.2))
        return await bus.pending_count(TOPIC, GROUP) == 0

    await wait_until(trimmed_ones_dropped, timeout_s=10, message="trimmed pending events dropped")
    assert claimed == []
    assert not set(early) & set(ids(await bus.consume(TOPIC, GROUP, "r", count=1000)))


# -- topics kept until consumed (evidence) ----------------------------------------------------------


async def test_unread_evidence_survives_publishing_far_past_retention(make_harness: MakeHarness) -> None:
    h = await make_harness(retention=10, protected_group=GROUP, kept_cap=10_000)
    # No group yet: nothing has read anything, so nothing may go.
    early = await publish_n(h.bus, 300, topic=events.ATTENDANCE)
    assert await h.bus.length(events.ATTENDANCE) == 300
    await h.bus.ensure_group(events.ATTENDANCE, GROUP)
    # The group exists but has read nothing: still nothing goes.
    late = await publish_n(h.bus, 300, topic=events.ATTENDANCE)
    assert await h.bus.length(events.ATTENDANCE) == 600
    got = await h.bus.consume(events.ATTENDANCE, GROUP, "c", count=1000)
    assert ids(got) == early + late


async def test_evidence_the_group_acknowledged_is_trimmed_and_pending_evidence_is_kept(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(retention=10, protected_group=GROUP, kept_cap=10_000)
    bus = h.bus
    await bus.ensure_group(events.EVIDENCE, GROUP)
    published = await publish_n(bus, 600, topic=events.EVIDENCE)
    first = await bus.consume(events.EVIDENCE, GROUP, "dead", count=400)
    await bus.ack(events.EVIDENCE, GROUP, ids(first)[:200])  # 200..399 stay pending
    await publish_n(bus, 1, topic=events.EVIDENCE)
    length = await bus.length(events.EVIDENCE)
    # Only acknowledged events went, the oldest first (Redis trims whole nodes: maybe fewer).
    assert 401 <= length <= 401 + h.trim_slack
    claimed: list[Delivery] = []

    async def all_claimed() -> bool:
        h.advance(0.2)
        claimed[:] = await bus.claim_stale(events.EVIDENCE, GROUP, "r", min_idle_s=0.2, count=1000)
        return len(claimed) >= 200

    await wait_until(all_claimed, timeout_s=10, message="the pending evidence claimed")
    assert ids(claimed) == published[200:400]  # the pending ones are all still there
    rest = await bus.consume(events.EVIDENCE, GROUP, "r", count=1000)
    assert ids(rest)[:200] == published[400:]
    await bus.ack(events.EVIDENCE, GROUP, ids(claimed) + ids(rest))
    await publish_n(bus, 1, topic=events.EVIDENCE)
    assert 10 <= await bus.length(events.EVIDENCE) <= 10 + h.trim_slack


async def test_other_topics_and_other_groups_keep_plain_retention(make_harness: MakeHarness) -> None:
    h = await make_harness(retention=10, protected_group=GROUP, kept_cap=10_000)
    await publish_n(h.bus, 310)  # TOPIC is not kept until consumed
    assert 10 <= await h.bus.length(TOPIC) <= 10 + h.trim_slack
    # Another group's acks do not trim a kept topic; only the protected group's do.
    await h.bus.ensure_group(events.PRESENCE, GROUP)
    await publish_n(h.bus, 300, topic=events.PRESENCE)
    other = await h.bus.consume(events.PRESENCE, "metrics", "m", count=1000)
    await h.bus.ack(events.PRESENCE, "metrics", ids(other))
    await publish_n(h.bus, 1, topic=events.PRESENCE)
    assert await h.bus.length(events.PRESENCE) == 301


async def test_a_kept_topic_refuses_events_at_its_cap_instead_of_dropping_unread_ones(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(retention=10, protected_group=GROUP, kept_cap=250)
    bus = h.bus
    published = await publish_n(bus, 250, topic=events.ATTENDANCE)
    with pytest.raises(BusUnavailable):
        await bus.publish(events.ATTENDANCE, "test.numbered", {"n": 250})
    assert await bus.length(events.ATTENDANCE) == 250
    got = await bus.consume(events.ATTENDANCE, GROUP, "c", count=1000)
    assert ids(got) == published
    await bus.ack(events.ATTENDANCE, GROUP, ids(got))
    await bus.publish(events.ATTENDANCE, "test.numbered", {"n": 250})  # room again once acknowledged
    assert await bus.length(events.ATTENDANCE) <= 11 + h.trim_slack


async def test_publish_many_keeps_order_across_topics(make_harness: MakeHarness) -> None:
    h = await make_harness(protected_group=GROUP)
    batch = [(events.EVIDENCE if i % 2 else TOPIC, "test.numbered", {"n": i}) for i in range(20)]
    got_ids = await h.bus.publish_many(batch)
    assert len(got_ids) == 20
    evidence = await h.bus.consume(events.EVIDENCE, GROUP, "c", count=100)
    plain = await h.bus.consume(TOPIC, GROUP, "c", count=100)
    assert [d.data["n"] for d in evidence] == list(range(1, 20, 2))
    assert [d.data["n"] for d in plain] == list(range(0, 20, 2))
    assert ids(evidence) + ids(plain) == got_ids[1::2] + got_ids[0::2]
    with pytest.raises(Invalid):
        await h.bus.publish_many([(TOPIC, "test.bad", {"x": float("nan")})])
    assert await h.bus.publish_many([]) == []


# -- typed events, availability ----------------------------------------------------------------------


async def test_a_typed_event_round_trips_through_the_bus(make_harness: MakeHarness) -> None:
    h = await make_harness()
    event = events.ViewerJoined(
        session_id=7, person_id=42, peer_id="peer-甲", at=datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    )
    event_id = await events.publish(h.bus, event)
    [got] = await h.bus.consume(events.ATTENDANCE, GROUP, "c")
    assert got.id == event_id
    assert events.decode(got) == event


async def test_a_closed_bus_is_unavailable_even_to_a_consumer_already_waiting(harness: Harness) -> None:
    await harness.bus.check()  # reachable while open
    await harness.bus.ensure_group(TOPIC, GROUP)
    waiting = asyncio.create_task(harness.bus.consume(TOPIC, GROUP, "c", block_s=60))
    try:
        await wait_until(lambda: harness.blocked(TOPIC), message="consume blocked on the topic")
        await harness.bus.close()
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(waiting, timeout=10)
    finally:
        waiting.cancel()
    with pytest.raises(BusUnavailable):
        await harness.bus.check()
    with pytest.raises(BusUnavailable):
        await harness.bus.publish(TOPIC, "test.late", {})


async def test_check_on_an_unreachable_redis_raises_bus_unavailable_quickly() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    bus = RedisBus(url, retention=10, check_timeout_s=1.0)
    try:
        async with asyncio.timeout(5):  # "quickly": not redis-py's default minutes of retries
            with pytest.raises(BusUnavailable):
                await bus.check()
            with pytest.raises(BusUnavailable):
                await bus.publish(TOPIC, "test.lost", {"n": 1})
            with pytest.raises(BusUnavailable):
                await bus.consume(TOPIC, GROUP, "c")
    finally:
        await bus.close()


# -- a consumer process dies mid-batch ---------------------------------------------------------------


async def test_events_of_a_killed_consumer_process_are_delivered_again() -> None:
    url = service_env("TEST_REDIS_URL")
    prefix = f"test:bus:{uuid.uuid4().hex}:"
    bus = RedisBus(url, retention=1000, key_prefix=prefix)
    child: asyncio.subprocess.Process | None = None
    try:
        await bus.ensure_group(TOPIC, GROUP)
        published = await publish_n(bus, 10)
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD),
            "--url", url, "--key-prefix", prefix, "--topic", TOPIC, "--group", GROUP,
            "--consumer", "doomed", "--count", "6",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
        assert child.stdout is not None
        assert child.stderr is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
        if not line:
            stderr = (await child.stderr.read()).decode(errors="replace")
            pytest.fail(f"consumer child exited without reporting progress:\n{stderr}")
        progress = json.loads(line)
        delivered, acked = progress["delivered"], progress["acked"]
        assert delivered == published[:6]
        assert await bus.pending_count(TOPIC, GROUP) == len(delivered) - len(acked)

        child.send_signal(signal.SIGKILL)  # mid-batch: half of it is still unacknowledged
        await child.communicate()
        assert child.returncode == -signal.SIGKILL

        assert await bus.claim_stale(TOPIC, GROUP, "rescuer", min_idle_s=3600) == []
        unacked = set(delivered) - set(acked)
        claimed: list[Delivery] = []

        async def claimed_all() -> bool:
            claimed.extend(await bus.claim_stale(TOPIC, GROUP, "rescuer", min_idle_s=0.2))
            return len(claimed) >= len(unacked)

        await wait_until(claimed_all, timeout_s=10, message="the dead consumer's events claimed")
        rest = await bus.consume(TOPIC, GROUP, "rescuer", count=100)

        assert set(ids(claimed)) == unacked
        assert len(claimed) == len(unacked)  # each exactly once
        assert all(d.attempts == 2 for d in claimed)
        assert ids(rest) == published[6:]
        assert not set(acked) & set(ids(claimed) + ids(rest))
        await bus.ack(TOPIC, GROUP, ids(claimed) + ids(rest))
        assert await bus.pending_count(TOPIC, GROUP) == 0
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            await child.communicate()
        await bus.close()
        admin = redis.Redis.from_url(url, decode_responses=True)
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def test_memory_bus_ids_keep_increasing_when_the_wall_clock_goes_back() -> None:
    readings = iter([5000, 5000, 4000, 6000])
    bus = MemoryBus(10, wall_clock_ms=lambda: next(readings))
    published = [await bus.publish(TOPIC, "test.clock", {}) for _ in range(4)]
    assert published == ["5000-0", "5000-1", "5000-2", "6000-0"]
