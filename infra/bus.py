"""The event bus interface: typed events between the live path and the system of record.

Semantics (both implementations; tests/integration/test_event_bus_contract.py):
- `publish` appends to a topic (bounded: the oldest events beyond `retention` are trimmed, except, on
  the topics kept until consumed, those the protected group has not acknowledged);
- consumers read through a named group; each event goes to one consumer of the group and stays
  *pending* until acknowledged;
- `claim_stale` hands events pending longer than `min_idle_s` (a consumer that died) to another consumer.
Implementations: `infra.bus_memory.MemoryBus` (in-process) and `infra.bus_redis.RedisBus` (Redis Streams).
Event schemas are listed in docs/events.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infra.errors import Unavailable


class BusUnavailable(Unavailable):
    # Raised by `publish_many`: how many of its first events the bus is known to have taken before it
    # failed (0 when unknown: publishing them again is at least once).
    published: int = 0


@dataclass(frozen=True)
class Delivery:
    topic: str
    id: str
    type: str
    data: dict[str, Any]
    attempts: int  # 1 on first delivery, more when redelivered


class EventSink(Protocol):
    """Where a producer hands events: the bus itself, or the outbox in front of it (infra/outbox.py)."""

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> str:
        """Append an event; returns its id (ids increase within a topic)."""


class EventBus(EventSink, Protocol):
    async def publish_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[str]:
        """Publish (topic, type, data) events in this order, in as few round trips as the bus allows;
        their ids. On an error some of them may have been published (publishing again is at least once)."""

    async def ensure_group(self, topic: str, group: str) -> None:
        """Create the consumer group if missing; a new group starts at the beginning of the topic."""

    async def consume(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_s: float = 0.0,
        until: asyncio.Event | None = None,
    ) -> list[Delivery]:
        """New events for this group, up to `count`, waiting up to `block_s` when there are none. Once
        `until` is set (a consumer stopping) it does not start waiting; the memory bus also stops a wait
        in progress (returning nothing, taking nothing), while a Redis XREADGROUP runs out its block."""

    async def ack(self, topic: str, group: str, ids: list[str]) -> None:
        """Mark events processed; they are never delivered to this group again."""

    async def claim_stale(
        self, topic: str, group: str, consumer: str, min_idle_s: float, count: int = 100
    ) -> list[Delivery]:
        """Take over events another consumer received but has not acknowledged for `min_idle_s`."""

    async def pending_count(self, topic: str, group: str) -> int:
        """How many delivered events of this group still wait for acknowledgement."""

    async def length(self, topic: str) -> int:
        """How many events the topic retains."""

    async def oldest_unacked(self, topic: str, group: str) -> str | None:
        """Id of the oldest retained event this group has not acknowledged (pending, or not delivered
        yet), or None when it has acknowledged everything the topic holds. Every event with a smaller
        id has been processed by the group: what the credit settlement waits for."""

    async def check(self) -> None:
        """Raise BusUnavailable if the bus cannot be reached (used by /readyz)."""

    async def close(self) -> None:
        """Release connections."""
