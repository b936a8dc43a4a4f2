"""The catalog's event consumer: reads `sessions`, `recordings` and `attendance` through the consumer group
"catalog" and turns events into rows (actual start/end of sessions, replays, learners' live intervals),
acknowledging each after its commit.

Delivery is at least once, so every handler is idempotent (first start wins, latest end wins, a recording
is registered once by its id, a live interval once per session, peer and join time). What is never
retried (acknowledged and logged at ERROR; no dead-letter topic, the bus keeps the event until retention
trims it):
- a malformed event (unknown type on our topics, a missing or mistyped field);
- an event naming a session (or a person) the catalog does not have;
- an event whose handler failed `max_attempts` times (counted by the bus across claims).
Any other handler failure (the database down, say) leaves the event pending; `claim_stale` hands it to
this or another process's consumer after `claim_min_idle_s`.

Shutdown is a drain, not a cancel: `stop()` lets the blocking read in progress return (within `block_s`),
then the consumer handles what the bus still holds for the group (in embedded mode the bus dies with
the process) and returns; its cleanup context waits up to `drain_timeout_s` for that, then cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from catalog import attendance, courses, replays
from catalog.db import Database
from catalog.keys import DATABASE
from infra import events
from infra.appkeys import BUS
from infra.bus import BusUnavailable, Delivery, EventBus
from infra.errors import Invalid, NotFound

log = logging.getLogger(__name__)

GROUP = "catalog"
TOPICS = (events.SESSIONS, events.RECORDINGS, events.ATTENDANCE)

Handler = Callable[[Database, events.Event], Awaitable[bool]]


async def _session_started(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.SessionStarted)
    return await courses.record_actual_start(db, event.session_id, event.at)


async def _session_ended(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.SessionEnded)
    return await courses.record_actual_end(db, event.session_id, event.at)


async def _recording_finalized(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.RecordingFinalized)
    return await replays.register(db, event, datetime.now(UTC))


async def _viewer_joined(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.ViewerJoined)
    return await attendance.record_joined(db, event)


async def _viewer_left(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.ViewerLeft)
    return await attendance.record_left(db, event)


# Event types on our topics that the catalog has nothing to do with are acknowledged without a handler.
HANDLERS: dict[type[events.Event], Handler] = {
    events.SessionStarted: _session_started,
    events.SessionEnded: _session_ended,
    events.RecordingFinalized: _recording_finalized,
    events.ViewerJoined: _viewer_joined,
    events.ViewerLeft: _viewer_left,
}


def consumer_name() -> str:
    """Unique per process (and per start), so that claims can tell a dead consumer from a live one."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class EventConsumer:
    bus: EventBus
    db: Database
    name: str
    block_s: float = 1.0
    batch: int = 100
    claim_every_s: float = 60.0
    claim_min_idle_s: float = 120.0  # several times the longest handler (a few SQL statements)
    max_attempts: int = 5
    retry_max_s: float = 30.0
    drain_timeout_s: float = 15.0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def stop(self) -> None:
        """Finish: handle what the bus holds for the group, then return from `run()`."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume every topic until stopped (then drained) or cancelled (one task per topic: `consume`
        blocks per topic)."""
        async with asyncio.TaskGroup() as tasks:
            for topic in TOPICS:
                tasks.create_task(self._topic_loop(topic), name=f"catalog-consumer-{topic}")

    async def _topic_loop(self, topic: str) -> None:
        loop = asyncio.get_running_loop()
        next_claim_at = loop.time()  # claim first: a restarted process picks up its predecessor's events
        backoff_s = 0.5
        while not self._stopping.is_set():
            try:
                if loop.time() >= next_claim_at:
                    claimed = await self.bus.claim_stale(
                        topic, GROUP, self.name, self.claim_min_idle_s, count=self.batch
                    )
                    next_claim_at = loop.time() + self.claim_every_s
                    if claimed:
                        log.info(
                            "consumer=%s topic=%s claimed %d stale events", self.name, topic, len(claimed)
                        )
                        await self.handle(claimed)
                deliveries = await self.bus.consume(
                    topic, GROUP, self.name, count=self.batch, block_s=self.block_s
                )
                await self.handle(deliveries)
                backoff_s = 0.5
            except BusUnavailable as exc:
                log.warning(
                    "consumer=%s topic=%s bus unavailable (%s); retry in %.1fs",
                    self.name,
                    topic,
                    exc,
                    backoff_s,
                )
                # Bounded exponential backoff, not a busy loop; cut short by stop().
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff_s)
                backoff_s = min(backoff_s * 2, self.retry_max_s)
        await self._drain(topic)

    async def _drain(self, topic: str) -> None:
        """Stopping: handle every event the bus still holds for the group, without waiting for more."""
        handled = 0
        while True:
            try:
                deliveries = await self.bus.consume(topic, GROUP, self.name, count=self.batch, block_s=0)
            except BusUnavailable as exc:
                log.warning(
                    "consumer=%s topic=%s stopping with the bus unavailable: %s", self.name, topic, exc
                )
                return
            if not deliveries:
                break
            await self.handle(deliveries)
            handled += len(deliveries)
        log.info("consumer=%s topic=%s drained (%d events handled while stopping)", self.name, topic, handled)

    async def handle(self, deliveries: list[Delivery]) -> None:
        """Process deliveries in order, then acknowledge those that are done (handled, or never to be
        retried); each handler has committed its own transaction before this ack."""
        done = [d.id for d in deliveries if await self._process(d)]
        if done:
            await self.bus.ack(deliveries[0].topic, GROUP, done)

    async def _process(self, delivery: Delivery) -> bool:
        """True when the delivery should be acknowledged."""
        prefix = f"consumer={self.name} topic={delivery.topic} event={delivery.id} type={delivery.type}"
        try:
            event = events.decode(delivery)
        except Invalid as exc:
            log.error("%s malformed, dropped: %s (field=%s)", prefix, exc.message, exc.field)
            return True
        handler = HANDLERS.get(type(event))
        if handler is None:
            return True
        try:
            changed = await handler(self.db, event)
        except NotFound as exc:
            log.error("%s refers to something the catalog does not have, dropped: %s", prefix, exc.message)
            return True
        except Exception:
            if delivery.attempts >= self.max_attempts:
                log.exception("%s failed %d times, dropped", prefix, delivery.attempts)
                return True
            log.exception("%s failed (attempt %d), left pending for a retry", prefix, delivery.attempts)
            return False
        log.info("%s handled changed=%s", prefix, changed)
        return True


CONSUMER = web.AppKey("catalog.consumer", EventConsumer)


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("catalog consumer stopped", exc_info=task.exception())


async def consumer_context(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the consumer runs while the app does; cancelled and awaited on the way out."""
    consumer = EventConsumer(app[BUS], app[DATABASE], consumer_name())
    task = asyncio.create_task(consumer.run(), name="catalog-consumer")
    task.add_done_callback(_report_death)
    app[CONSUMER] = consumer
    log.info(
        "catalog consumer started consumer=%s group=%s topics=%s", consumer.name, GROUP, ",".join(TOPICS)
    )
    try:
        yield
    finally:
        # After the outbox's flush (streaming/app.py orders the contexts): what it delivered is handled.
        consumer.stop()
        done, _ = await asyncio.wait({task}, timeout=consumer.drain_timeout_s)
        if not done:
            log.warning(
                "catalog consumer still busy after %.0f s: cancelled (unacknowledged events are delivered "
                "again after a restart)",
                consumer.drain_timeout_s,
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("catalog consumer stopped consumer=%s", consumer.name)
