"""The outbox keeps every event on disk until the bus takes it: in order, across outages (the in-process
bus behind a switch, and a real Redis behind a proxy we cut), restarts, torn writes; bounded, and visible."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from infra.bus import BusUnavailable, Delivery
from infra.bus_memory import MemoryBus
from infra.bus_redis import RedisBus
from infra.errors import Invalid, Unavailable
from infra.outbox import JOURNAL, Outbox, OutboxConfig, OutboxFull
from infra.readiness import Degraded
from tests.helpers import service_env, wait_until
from tests.integration.recording.support import CuttableProxy


class SwitchedBus(MemoryBus):
    """The in-process bus with a switch on its publish side: `down` makes publish raise BusUnavailable,
    as RedisBus does when Redis is unreachable (MemoryBus alone cannot come back once closed)."""

    def __init__(self) -> None:
        super().__init__(retention=10_000)
        self.down = False
        self.refused = 0
        self.down_after: int | None = None  # go down after this many more publishes
        self.published = 0

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> str:
        if self.down_after is not None and self.published >= self.down_after:
            self.down = True
        if self.down:
            self.refused += 1
            raise BusUnavailable("switched off by the test")
        self.published += 1
        return await super().publish(topic, type, data)


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def config(directory: Path, **changes: Any) -> OutboxConfig:
    return OutboxConfig(directory=directory, retry_initial_s=0.01, retry_max_s=0.05, **changes)


async def received(bus: MemoryBus, topic: str = "sessions") -> list[Delivery]:
    await bus.ensure_group(topic, "test")
    return await bus.consume(topic, "test", "t", count=1000)


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[list[Outbox]]:
    """Outboxes a test opened; closed (without waiting for the bus) after it."""
    made: list[Outbox] = []
    yield made
    for outbox in made:
        await outbox.close(timeout_s=0)


async def open_outbox(
    made: list[Outbox], bus: MemoryBus, cfg: OutboxConfig, clock: Clock | None = None
) -> Outbox:
    outbox = await Outbox.open(bus, cfg, clock=clock or Clock())
    made.append(outbox)
    return outbox


async def test_events_reach_the_bus_in_the_order_they_were_emitted_and_the_journal_empties(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    bus = SwitchedBus()
    outbox = await open_outbox(opened, bus, config(tmp_path))
    outbox.start()
    ids = [await outbox.publish("sessions", "session.started", {"session_id": n}) for n in range(1, 51)]
    assert ids == [f"outbox-{n}" for n in range(1, 51)]
    await asyncio.wait_for(outbox.wait_empty(), 10)  # delivered, and the journal written
    got = await received(bus)
    assert [d.data["session_id"] for d in got] == list(range(1, 51))
    assert outbox.delivered == 50
    assert (tmp_path / JOURNAL).stat().st_size == 0, "a delivered journal is truncated"
    await outbox.check()  # ready: nothing waits


async def test_an_outage_keeps_events_until_the_bus_returns_then_delivers_them_in_order(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    bus = SwitchedBus()
    clock = Clock()
    outbox = await open_outbox(opened, bus, config(tmp_path, degraded_after_s=5.0), clock)
    outbox.start()
    bus.down = True
    for n in range(1, 4):
        await outbox.publish("sessions", "session.started", {"session_id": n})
    await wait_until(lambda: bus.refused >= 5, message="retried while the bus is down")
    assert outbox.depth == 3
    assert await received(bus) == []
    await outbox.check()  # waiting briefly is normal
    clock.now += 6
    with pytest.raises(Degraded, match=r"3 events wait for the bus, the oldest for 6 s \(BusUnavailable"):
        await outbox.check()
    bus.down = False
    await wait_until(lambda: outbox.depth == 0, message="delivered once the bus is back")
    assert [d.data["session_id"] for d in await received(bus)] == [1, 2, 3]
    await outbox.check()


async def test_events_written_before_a_crash_are_delivered_by_the_next_process(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    first_bus = SwitchedBus()
    first_bus.down = True
    crashed = await open_outbox(opened, first_bus, config(tmp_path))
    crashed.start()
    await crashed.publish("sessions", "session.started", {"session_id": 7, "at": "2025-03-01T08:00:00+00:00"})
    await crashed.publish("recordings", "recording.finalized", {"session_id": 7, "recording_id": "r"})
    # What kill -9 leaves: the journal as written, nothing flushed, no close().
    journal = (tmp_path / JOURNAL).read_bytes()

    second_dir = tmp_path / "restarted"
    second_dir.mkdir()
    (second_dir / JOURNAL).write_bytes(journal)
    bus = SwitchedBus()
    restarted = await open_outbox(opened, bus, config(second_dir))
    assert restarted.depth == 2
    restarted.start()
    await wait_until(lambda: restarted.depth == 0, message="delivered after the restart")
    assert [d.data for d in await received(bus, "sessions")] == [
        {"session_id": 7, "at": "2025-03-01T08:00:00+00:00"}
    ]
    assert [d.type for d in await received(bus, "recordings")] == ["recording.finalized"]
    # Ids keep increasing after the restart: none is reused for a different event.
    assert await restarted.publish("sessions", "session.ended", {"session_id": 7}) == "outbox-3"


async def test_a_torn_last_line_is_dropped_and_the_events_before_it_survive(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    lines = [
        json.dumps({"seq": 1, "topic": "sessions", "type": "session.started", "at": 1.0, "data": {"n": 1}}),
        json.dumps({"seq": 2, "topic": "sessions", "type": "session.started", "at": 2.0, "data": {"n": 2}}),
        json.dumps({"done": 1}),
        json.dumps({"seq": 3, "topic": "sessions", "type": "session.ended", "at": 3.0, "data": {"n": 3}}),
    ]
    (tmp_path / JOURNAL).write_text("\n".join(lines) + '\n{"seq": 4, "topic": "sess')
    bus = SwitchedBus()
    outbox = await open_outbox(opened, bus, config(tmp_path))
    assert outbox.depth == 2  # 1 was delivered, 4 was never written whole
    outbox.start()
    await wait_until(lambda: outbox.depth == 0, message="drained")
    assert [d.data["n"] for d in await received(bus)] == [2, 3]


async def test_a_full_outbox_refuses_new_events_and_is_not_ready(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    bus = SwitchedBus()
    bus.down = True
    outbox = await open_outbox(opened, bus, config(tmp_path, max_events=3))
    for n in range(3):
        await outbox.publish("sessions", "session.started", {"n": n})
    with pytest.raises(OutboxFull):
        await outbox.publish("sessions", "session.started", {"n": 3})
    assert isinstance(OutboxFull("x"), BusUnavailable), "producers treat a full outbox as the bus down"
    assert outbox.dropped == 1
    with pytest.raises(Unavailable, match="outbox full: 3 events wait"):
        await outbox.check()
    # Kept events are not touched by the refusal.
    outbox.start()
    bus.down = False
    await wait_until(lambda: outbox.depth == 0, message="drained")
    assert [d.data["n"] for d in await received(bus)] == [0, 1, 2]


async def test_data_that_is_not_json_is_refused_before_it_is_kept(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    outbox = await open_outbox(opened, SwitchedBus(), config(tmp_path))
    with pytest.raises(Invalid):
        await outbox.publish("sessions", "session.started", {"at": float("nan")})
    assert outbox.depth == 0


async def test_a_long_journal_is_compacted_to_the_waiting_events(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    bus = SwitchedBus()
    outbox = await open_outbox(opened, bus, config(tmp_path, compact_bytes=2000))
    padding = "x" * 200
    for n in range(40):
        await outbox.publish("sessions", "session.started", {"n": n, "pad": padding})
    # Deliver more than half (delivery is marked per batch), then the bus goes down so the rest waits:
    # the journal must have been rewritten.
    bus.down_after = 24
    outbox.start()
    await wait_until(lambda: bus.refused >= 1, message="bus refusing after 24")
    waiting = outbox.depth
    assert waiting == 16
    size = (tmp_path / JOURNAL).stat().st_size
    assert size < 40 * 250, size  # not the whole history
    reopened = await Outbox.open(SwitchedBus(), config(tmp_path))
    assert reopened.depth == waiting
    await reopened.close(timeout_s=0)


async def test_close_flushes_what_waits_and_leaves_the_rest_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = SwitchedBus()
    bus.down = True
    outbox = await Outbox.open(bus, config(tmp_path))
    outbox.start()
    await outbox.publish("sessions", "session.ended", {"n": 1})
    await outbox.close(timeout_s=0.2)
    assert "1 events not delivered within 0 s" in caplog.text
    with pytest.raises(BusUnavailable):
        await outbox.publish("sessions", "session.ended", {"n": 2})

    bus.down = False
    again = await Outbox.open(bus, config(tmp_path))
    again.start()
    await again.publish("sessions", "session.ended", {"n": 2})
    await again.close(timeout_s=5)
    assert [d.data["n"] for d in await received(bus)] == [1, 2]


@pytest.mark.integration
async def test_a_redis_outage_delays_events_and_loses_none(tmp_path: Path) -> None:
    """A real Redis behind a proxy we cut: publishes fail (connection refused, reset) until it returns."""
    url = service_env("TEST_REDIS_URL")
    host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    proxy = CuttableProxy(host, int(port))
    await proxy.start()
    prefix = f"lectern-outbox-test-{tmp_path.name}:"
    bus = RedisBus(f"redis://{proxy.endpoint}/0", retention=1000, key_prefix=prefix, op_timeout_s=1.0)
    admin = redis.Redis.from_url(url, decode_responses=True)
    outbox = await Outbox.open(bus, config(tmp_path))
    outbox.start()
    try:
        await outbox.publish("sessions", "session.started", {"n": 1})
        await wait_until(lambda: outbox.depth == 0, message="first event delivered")
        await proxy.cut()
        for n in range(2, 6):
            await outbox.publish("sessions", "session.started", {"n": n})
        await wait_until(lambda: outbox.last_error is not None, timeout_s=15, message="the outage noticed")
        assert outbox.depth == 4
        await proxy.restore()
        await wait_until(lambda: outbox.depth == 0, timeout_s=30, message="delivered after the outage")
        entries = await admin.xrange(f"{prefix}sessions")
        assert [json.loads(fields["data"])["n"] for _, fields in entries] == [1, 2, 3, 4, 5]
    finally:
        await outbox.close(timeout_s=0)
        await bus.close()
        await proxy.close()
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def test_an_event_whose_publisher_is_cancelled_while_it_is_written_is_still_delivered(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    """A request handler cancelled mid-publish: the line may already be on disk, so the event must not
    be left for the next start only (nor the journal's lock released mid-write)."""
    bus = SwitchedBus()
    outbox = await open_outbox(opened, bus, config(tmp_path))
    outbox.start()
    publishing = asyncio.create_task(outbox.publish("sessions", "session.ended", {"n": 1}))
    await asyncio.sleep(0)  # it is writing now
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    await outbox.publish("sessions", "session.ended", {"n": 2})
    await wait_until(lambda: outbox.depth == 0, message="both delivered")
    assert [d.data["n"] for d in await received(bus)] == [1, 2]


async def test_a_thousand_concurrent_publishes_share_fsyncs_and_all_survive_a_crash(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    """Group commit: concurrent publishers wait for one shared write + fsync; every publish that returned
    is on disk (what kill -9 leaves is read back whole by the next process)."""
    bus = SwitchedBus()
    bus.down = True
    outbox = await open_outbox(opened, bus, config(tmp_path))
    outbox.start()
    ids = await asyncio.gather(
        *(outbox.publish("evidence", "playback.heartbeat", {"n": n}) for n in range(1000))
    )
    assert sorted(ids, key=lambda i: int(i.removeprefix("outbox-"))) == [
        f"outbox-{n}" for n in range(1, 1001)
    ]
    many = await outbox.publish_many(
        [("evidence", "playback.heartbeat", {"n": n}) for n in range(1000, 1010)]
    )
    assert many == [f"outbox-{n}" for n in range(1001, 1011)]
    journal = (tmp_path / JOURNAL).read_bytes()  # the crash: no close(), nothing flushed

    restarted_dir = tmp_path / "restarted"
    restarted_dir.mkdir()
    (restarted_dir / JOURNAL).write_bytes(journal)
    bus2 = SwitchedBus()
    restarted = await open_outbox(opened, bus2, config(restarted_dir))
    assert restarted.depth == 1010
    restarted.start()
    await wait_until(lambda: restarted.depth == 0, message="all delivered after the restart")
    got = await received(bus2, "evidence") + await received(bus2, "evidence")
    # In outbox-id order, which for concurrent publishers is the order they called publish in.
    assert [d.data["n"] for d in got] == list(range(1010))
    assert restarted.delivered == 1010


async def test_a_batch_the_bus_took_in_part_is_not_delivered_twice(
    tmp_path: Path, opened: list[Outbox]
) -> None:
    bus = SwitchedBus()
    outbox = await open_outbox(opened, bus, config(tmp_path))
    await outbox.publish_many([("sessions", "session.started", {"n": n}) for n in range(10)])
    bus.down_after = 4  # the bus takes the first 4 of the batch, then refuses
    outbox.start()
    await wait_until(lambda: bus.refused >= 2, message="retried while the bus is down")
    assert outbox.depth == 6
    bus.down_after, bus.down = None, False
    await wait_until(lambda: outbox.depth == 0, message="the rest delivered")
    assert [d.data["n"] for d in await received(bus)] == list(range(10))
