"""The in-process event bus (embedded mode): Redis Streams semantics over deques, for one event loop.

It mirrors `infra.bus_redis.RedisBus` closely enough that one contract suite covers both
(tests/integration/test_event_bus_contract.py); the semantics are described in docs/events.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.bus import BusUnavailable, Delivery
from infra.errors import Invalid
from infra.events import (
    KEPT_UNTIL_CONSUMED,
    encode_data,
    parse_event_id,
    require_count,
    require_name,
    require_seconds,
)

EventId = tuple[int, int]


@dataclass(slots=True)
class _Entry:
    key: EventId
    id: str
    type: str
    data_json: str


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_at: float
    attempts: int


@dataclass(slots=True)
class _Group:
    # Absolute index (count of events ever appended before it) of the next event to hand out.
    next_index: int
    # Insertion order is id order: new deliveries come in id order and claims update in place.
    pending: dict[str, _Pending] = field(default_factory=dict)


@dataclass
class _Topic:
    entries: deque[_Entry]
    appended: int = 0  # events ever appended; entries[i] has absolute index appended - len + i
    last_key: EventId = (0, 0)
    groups: dict[str, _Group] = field(default_factory=dict)
    # Replaced on every publish: waiting consumers hold the old one, which publish sets.
    published: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0
    kept: bool = False  # a KEPT_UNTIL_CONSUMED topic: trimmed only once the protected group acked

    @property
    def first_index(self) -> int:
        return self.appended - len(self.entries)

    def entry_at(self, index: int) -> _Entry:
        return self.entries[index - self.first_index]

    def find(self, key: EventId) -> _Entry | None:
        """The retained entry with this id, or None once it has been trimmed (binary search by id)."""
        lo, hi = 0, len(self.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entries[mid].key < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.entries) and self.entries[lo].key == key:
            return self.entries[lo]
        return None


class MemoryBus:
    """`EventBus` kept in memory: per topic the newest `retention` events, consumer groups with
    a last-delivered position and a pending-entries list. Not thread-safe: use it from one loop.

    With a `protected_group` (the app passes "catalog"), the topics in `kept_topics` lose no event that
    group has not acknowledged: the oldest are trimmed past `retention` only up to the group's oldest
    unacknowledged event, and everything is kept while the group does not exist yet. Such a topic holds
    at most `kept_cap` events (default 20 × retention); publishing beyond raises BusUnavailable.

    `clock` measures idle time for `claim_stale` (monotonic seconds; tests pass a fake one);
    `wall_clock_ms` stamps ids, which are "<ms>-<seq>" and strictly increase per topic, like Redis.
    """

    def __init__(
        self,
        retention: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        protected_group: str | None = None,
        kept_topics: tuple[str, ...] = KEPT_UNTIL_CONSUMED,
        kept_cap: int | None = None,
    ) -> None:
        if retention < 1:
            raise Invalid("retention must be at least 1", field="retention")
        self._retention = retention
        self._protected = protected_group
        self._kept_topics = frozenset(kept_topics) if protected_group is not None else frozenset()
        self._kept_cap = kept_cap if kept_cap is not None else 20 * retention
        if self._kept_cap < retention:
            raise Invalid("kept_cap must be at least retention", field="kept_cap")
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._topics: dict[str, _Topic] = {}
        self._closed = False

    # -- the EventBus interface ------------------------------------------------------------------

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> str:
        self._require_open()
        require_name(topic, "topic")
        require_name(type, "type")
        data_json = encode_data(data)
        t = self._topic(topic)
        if t.kept and len(t.entries) >= self._kept_cap:
            self._trim_consumed(t)
            if len(t.entries) >= self._kept_cap:
                raise BusUnavailable(
                    f"topic {topic!r} holds {len(t.entries)} events the {self._protected!r} group has "
                    "not acknowledged: refusing more rather than trimming unread evidence"
                )
        ms = self._wall_clock_ms()
        # Like Redis: if the wall clock stands still or goes back, keep the last ms and count up.
        key = (ms, 0) if ms > t.last_key[0] else (t.last_key[0], t.last_key[1] + 1)
        t.last_key = key
        event_id = f"{key[0]}-{key[1]}"
        t.entries.append(_Entry(key, event_id, type, data_json))  # a bounded deque drops the oldest
        t.appended += 1
        if t.kept and len(t.entries) > self._retention:
            self._trim_consumed(t)
        t.published.set()
        t.published = asyncio.Event()
        return event_id

    async def publish_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[str]:
        # One by one through `publish` (a subclass that overrides it sees every event); in memory a
        # batch saves nothing.
        ids: list[str] = []
        try:
            for topic, type, data in items:
                ids.append(await self.publish(topic, type, data))
        except BusUnavailable as exc:
            exc.published = len(ids)
            raise
        return ids

    async def ensure_group(self, topic: str, group: str) -> None:
        self._require_open()
        require_name(topic, "topic")
        require_name(group, "group")
        self._group(topic, group)

    async def consume(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_s: float = 0.0,
        until: asyncio.Event | None = None,
    ) -> list[Delivery]:
        self._require_open()
        require_name(consumer, "consumer")
        require_count(count)
        require_seconds(block_s, "block_s")
        t = self._topic(topic)
        g = self._group(topic, group)
        deadline = self._loop_time() + block_s
        while True:
            deliveries = self._take_new(topic, t, g, consumer, count)
            remaining_s = deadline - self._loop_time()
            if deliveries or remaining_s <= 0 or (until is not None and until.is_set()):
                return deliveries
            published = t.published
            t.waiting += 1
            try:
                async with asyncio.timeout(remaining_s):
                    await _first_of(published, until)
            except TimeoutError:
                return []
            finally:
                t.waiting -= 1
            self._require_open()

    async def ack(self, topic: str, group: str, ids: list[str]) -> None:
        self._require_open()
        keys = [parse_event_id(i) for i in ids]
        t = self._topics.get(topic)
        g = t.groups.get(group) if t is not None else None
        if g is None:
            return  # like XACK: nothing is pending in a group that does not exist
        for ms, seq in keys:
            g.pending.pop(f"{ms}-{seq}", None)  # canonical form: "0001-2" acks "1-2", as in Redis
        if t is not None and t.kept and group == self._protected:
            self._trim_consumed(t)

    async def claim_stale(
        self, topic: str, group: str, consumer: str, min_idle_s: float, count: int = 100
    ) -> list[Delivery]:
        self._require_open()
        require_name(consumer, "consumer")
        require_count(count)
        require_seconds(min_idle_s, "min_idle_s")
        t = self._topics.get(topic)
        g = t.groups.get(group) if t is not None else None
        if t is None or g is None:
            return []
        now = self._clock()
        claimed: list[Delivery] = []
        trimmed: list[str] = []
        for event_id, p in g.pending.items():
            if len(claimed) >= count:
                break
            if now - p.delivered_at < min_idle_s:
                continue
            entry = t.find(parse_event_id(event_id))
            if entry is None:
                # Trimmed by retention while pending: it can never be delivered again, so (like
                # XAUTOCLAIM on Redis 7) claiming drops it from the pending list instead.
                trimmed.append(event_id)
                continue
            p.consumer, p.delivered_at, p.attempts = consumer, now, p.attempts + 1
            claimed.append(_delivery(topic, entry, p.attempts))
        for event_id in trimmed:
            del g.pending[event_id]
        return claimed

    async def pending_count(self, topic: str, group: str) -> int:
        self._require_open()
        t = self._topics.get(topic)
        g = t.groups.get(group) if t is not None else None
        return 0 if g is None else len(g.pending)

    async def length(self, topic: str) -> int:
        self._require_open()
        t = self._topics.get(topic)
        return 0 if t is None else len(t.entries)

    async def oldest_unacked(self, topic: str, group: str) -> str | None:
        self._require_open()
        t = self._topics.get(topic)
        if t is None:
            return None
        g = t.groups.get(group)
        candidates: list[EventId] = []
        if g is not None and g.pending:
            candidates.append(parse_event_id(next(iter(g.pending))))  # dict order is id order
        start = t.first_index if g is None else max(g.next_index, t.first_index)
        if start < t.appended:
            candidates.append(t.entry_at(start).key)
        if not candidates:
            return None
        ms, seq = min(candidates)
        return f"{ms}-{seq}"

    async def check(self) -> None:
        self._require_open()

    async def close(self) -> None:
        self._closed = True
        for t in self._topics.values():
            t.published.set()  # blocked consumers wake up and raise BusUnavailable

    # -- introspection ---------------------------------------------------------------------------

    def waiting_consumers(self, topic: str) -> int:
        """How many `consume` calls are blocked on this topic right now (tests, metrics)."""
        t = self._topics.get(topic)
        return 0 if t is None else t.waiting

    # -- internals -------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise BusUnavailable("the in-process event bus is closed")

    def _loop_time(self) -> float:
        # Blocking is measured on the event loop's clock, which asyncio.timeout uses too.
        return asyncio.get_running_loop().time()

    def _topic(self, topic: str) -> _Topic:
        t = self._topics.get(topic)
        if t is None:
            require_name(topic, "topic")
            if topic in self._kept_topics:
                t = self._topics[topic] = _Topic(entries=deque(), kept=True)
            else:
                t = self._topics[topic] = _Topic(entries=deque(maxlen=self._retention))
        return t

    def _trim_consumed(self, t: _Topic) -> None:
        """A kept topic: drop the oldest events beyond `retention`, but only those the protected group
        has acknowledged (older than its oldest pending event and than its next undelivered one)."""
        g = t.groups.get(self._protected) if self._protected is not None else None
        if g is None:
            return  # nobody has read anything yet: keep it all (up to kept_cap)
        bound = g.next_index
        if g.pending:
            oldest_pending = parse_event_id(next(iter(g.pending)))  # dict order is id order
            bound = min(bound, self._index_of(t, oldest_pending))
        excess = min(len(t.entries) - self._retention, bound - t.first_index)
        for _ in range(excess):
            t.entries.popleft()

    def _index_of(self, t: _Topic, key: EventId) -> int:
        """Absolute index of the first retained entry with an id ≥ key."""
        lo, hi = 0, len(t.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if t.entries[mid].key < key:
                lo = mid + 1
            else:
                hi = mid
        return t.first_index + lo

    def _group(self, topic: str, group: str) -> _Group:
        """The group, created on first use (also by consume: see docs/events.md) at the oldest event."""
        t = self._topic(topic)
        g = t.groups.get(group)
        if g is None:
            require_name(group, "group")
            g = t.groups[group] = _Group(next_index=t.first_index)
        return g

    def _take_new(self, topic: str, t: _Topic, g: _Group, consumer: str, count: int) -> list[Delivery]:
        # Events trimmed before this group read them are skipped, as XREADGROUP does.
        start = max(g.next_index, t.first_index)
        stop = min(t.appended, start + count)
        now = self._clock()
        deliveries = []
        for index in range(start, stop):
            entry = t.entry_at(index)
            g.pending[entry.id] = _Pending(consumer, now, 1)
            deliveries.append(_delivery(topic, entry, 1))
        g.next_index = max(g.next_index, stop)
        return deliveries


async def _first_of(event: asyncio.Event, other: asyncio.Event | None) -> None:
    """Wait until `event` or `other` (if any) is set."""
    if other is None:
        await event.wait()
        return
    waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(other.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _delivery(topic: str, entry: _Entry, attempts: int) -> Delivery:
    # Decoded per delivery: every consumer gets its own copy, exactly what went over the wire.
    return Delivery(topic, entry.id, entry.type, json.loads(entry.data_json), attempts)
