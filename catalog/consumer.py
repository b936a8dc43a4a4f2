"""The catalog's event consumer: reads `sessions`, `recordings`, `attendance`, `presence` and `evidence`
through the consumer group "catalog" and turns events into rows (actual start/end of sessions, replays,
learners' live intervals and attention, presence checks and answers, heartbeats and segment fetches),
acknowledging each after its commit.

The `evidence` topic (heartbeats: the high-volume one) is stored in batches of up to `evidence_batch`
events: one multi-row INSERT … ON CONFLICT DO NOTHING per table in one transaction (catalog/evidence.py),
acknowledged after that commit. If the batch fails, its events are stored one by one, so one event that
cannot be stored does not hold the others back. After each batch, `on_replay_progress` (the app sets it
to the credit settlement's completion check) is told which (person, recording) pairs advanced.

Delivery is at least once, so every handler is idempotent (first start wins, latest end wins, a recording
is registered once by its id, a live interval once per session, peer and join time). What is never
retried (acknowledged and logged at ERROR; no dead-letter topic, the bus keeps the event until retention
trims it):
- a malformed event (unknown type on our topics, a missing or mistyped field);
- an event naming a session (or a person) the catalog does not have;
- an event whose handler failed `max_attempts` times (counted by the bus across claims).
Any other handler failure (the database down, say) leaves the event pending; `claim_stale` hands it to
this or another process's consumer after `claim_min_idle_s`.

Shutdown is a drain, not a cancel: `stop()` ends the blocking read in progress (the memory bus at once,
having taken nothing; Redis within `block_s`), then the consumer handles what the bus still holds for the
group (in embedded mode the bus dies with the process) and returns; its cleanup context waits up to
`drain_timeout_s` for that, then cancels.
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
from catalog import evidence as evidence_store
from catalog.credit.settle import replay_progress_hook
from catalog.db import Database
from catalog.keys import DATABASE
from infra import events
from infra.appkeys import BUS
from infra.bus import BusUnavailable, Delivery, EventBus
from infra.errors import Invalid, NotFound

log = logging.getLogger(__name__)

GROUP = "catalog"
TOPICS = (events.SESSIONS, events.RECORDINGS, events.ATTENDANCE, events.PRESENCE, events.EVIDENCE)

Handler = Callable[[Database, events.Event], Awaitable[bool]]
# Told, after a committed evidence batch, the furthest position each (person, recording) pair reached.
ReplayProgressHook = Callable[[dict[tuple[int, str], float]], Awaitable[None]]


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


async def _attention_changed(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.AttentionChanged)
    return await evidence_store.record_attention(db, event)


async def _check_issued(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.PresenceCheckIssued)
    return await evidence_store.record_live_check(db, event)


async def _check_answered(db: Database, event: events.Event) -> bool:
    assert isinstance(event, events.PresenceCheckAnswered)
    return await evidence_store.record_live_answer(db, event)


async def _evidence_one(db: Database, event: events.Event) -> bool:
    """One `evidence` event on its own (the batch path's fallback)."""
    return (await evidence_store.store_batch(db, [event])).total > 0


# Event types on our topics that the catalog has nothing to do with are acknowledged without a handler.
HANDLERS: dict[type[events.Event], Handler] = {
    events.SessionStarted: _session_started,
    events.SessionEnded: _session_ended,
    events.RecordingFinalized: _recording_finalized,
    events.ViewerJoined: _viewer_joined,
    events.ViewerLeft: _viewer_left,
    events.AttentionChanged: _attention_changed,
    events.PresenceCheckIssued: _check_issued,
    events.PresenceCheckAnswered: _check_answered,
    **dict.fromkeys(evidence_store.BATCHED, _evidence_one),
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
    evidence_batch: int = 500  # the evidence topic: one multi-row insert per table per batch
    claim_every_s: float = 60.0
    claim_min_idle_s: float = 120.0  # several times the longest handler (a few SQL statements)
    max_attempts: int = 5
    retry_max_s: float = 30.0
    drain_timeout_s: float = 15.0
    on_replay_progress: ReplayProgressHook | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def _count(self, topic: str) -> int:
        return self.evidence_batch if topic == events.EVIDENCE else self.batch

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
                        topic, GROUP, self.name, self.claim_min_idle_s, count=self._count(topic)
                    )
                    next_claim_at = loop.time() + self.claim_every_s
                    if claimed:
                        log.info(
                            "consumer=%s topic=%s claimed %d stale events", self.name, topic, len(claimed)
                        )
                        await self.handle(claimed)
                deliveries = await self.bus.consume(
                    topic,
                    GROUP,
                    self.name,
                    count=self._count(topic),
                    block_s=self.block_s,
                    until=self._stopping,
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
                deliveries = await self.bus.consume(
                    topic, GROUP, self.name, count=self._count(topic), block_s=0
                )
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
        retried); each handler has committed its own transaction before this ack. The evidence topic
        goes through `_store_evidence` (one transaction per batch)."""
        if deliveries and deliveries[0].topic == events.EVIDENCE:
            done = await self._store_evidence(deliveries)
        else:
            done = [d.id for d in deliveries if await self._process(d)]
        if done:
            await self.bus.ack(deliveries[0].topic, GROUP, done)

    async def _store_evidence(self, deliveries: list[Delivery]) -> list[str]:
        """Store a batch of evidence in one transaction; the ids to acknowledge. Malformed events are
        dropped (acknowledged, logged); if the batch fails, each event goes the one-by-one way."""
        done: list[str] = []
        batch: list[tuple[Delivery, events.Event]] = []
        for delivery in deliveries:
            try:
                event = events.decode(delivery)
            except Invalid as exc:
                log.error(
                    "consumer=%s topic=%s event=%s type=%s malformed, dropped: %s (field=%s)",
                    self.name,
                    delivery.topic,
                    delivery.id,
                    delivery.type,
                    exc.message,
                    exc.field,
                )
                done.append(delivery.id)
                continue
            if isinstance(event, evidence_store.BATCHED):
                batch.append((delivery, event))
            else:
                done.append(delivery.id)  # nothing for the catalog to do
        if not batch:
            return done
        try:
            stored = await evidence_store.store_batch(self.db, [e for _d, e in batch])
        except Exception:
            log.exception(
                "consumer=%s evidence batch of %d failed; storing one by one", self.name, len(batch)
            )
            return done + [d.id for d, _e in batch if await self._process(d)]
        log.info(
            "consumer=%s topic=%s stored batch events=%d inserted=%s",
            self.name,
            events.EVIDENCE,
            len(batch),
            stored.inserted,
        )
        done += [d.id for d, _e in batch]
        if stored.replay_positions and self.on_replay_progress is not None:
            try:
                await self.on_replay_progress(stored.replay_positions)
            except Exception:  # the evidence is committed; the periodic sweep settles what this missed
                log.exception("consumer=%s replay completion check failed", self.name)
        return done

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
    consumer = EventConsumer(
        app[BUS], app[DATABASE], consumer_name(), on_replay_progress=replay_progress_hook(app[DATABASE])
    )
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
