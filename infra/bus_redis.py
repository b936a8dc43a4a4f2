"""The event bus on Redis Streams (production): one stream per topic, consumer groups, XAUTOCLAIM.

Needs Redis ≥ 7.0 (XAUTOCLAIM that drops trimmed entries). Semantics: infra/bus.py and docs/events.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn, cast

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

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

log = logging.getLogger(__name__)

# One atomic step of claim_stale: XAUTOCLAIM a page of the pending list, then read each claimed
# entry's delivery count (XAUTOCLAIM just incremented it) before anyone else can touch it.
# ARGV: group, consumer, min-idle ms, cursor, count. Returns {next cursor, entries, counts}.
_CLAIM_SCRIPT = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local entries, counts = {}, {}
for _, e in ipairs(r[2]) do
  if e then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    entries[#entries + 1] = e
    counts[#counts + 1] = p[1][4]
  end
end
return {r[1], entries, counts}
"""

# Trimming a topic kept until consumed (events.KEPT_UNTIL_CONSUMED): drop at most the events beyond
# `retention`, and only those older than the protected group's oldest unacknowledged event (its oldest
# pending id, or the one after its last-delivered id). Nothing while the group does not exist. Whole
# stream nodes only (`MINID ~`, `LIMIT`), as cheap as `MAXLEN ~`. ARGV: group, retention.
_TRIM_LUA = """
local function older(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function trim_consumed(key, group, retention)
  local excess = redis.call('XLEN', key) - retention
  if excess <= 0 then return 0 end
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  if not ok then return 0 end
  local last = nil
  for _, g in ipairs(groups) do
    local name, delivered = nil, nil
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then delivered = g[i + 1] end
    end
    if name == group then last = delivered end
  end
  if not last then return 0 end
  local ms, seq = string.match(last, '(%d+)-(%d+)')
  local bound = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
  local pending = redis.call('XPENDING', key, group)
  if tonumber(pending[1]) > 0 and older(pending[2], bound) then bound = pending[2] end
  return redis.call('XTRIM', key, 'MINID', '~', bound, 'LIMIT', excess)
end
"""
_TRIM_SCRIPT = _TRIM_LUA + "return trim_consumed(KEYS[1], ARGV[1], tonumber(ARGV[2]))"
# XADD to a kept topic: no MAXLEN; when it holds `cap` events, trim what the group acknowledged first,
# and refuse (an error reply starting LECTERN_KEPT_FULL) rather than drop unread events.
# ARGV: group, retention, cap, type, data.
_KEPT_ADD_SCRIPT = (
    _TRIM_LUA
    + """
local cap = tonumber(ARGV[3])
if redis.call('XLEN', KEYS[1]) >= cap then
  trim_consumed(KEYS[1], ARGV[1], tonumber(ARGV[2]))
  if redis.call('XLEN', KEYS[1]) >= cap then
    return redis.error_reply('LECTERN_KEPT_FULL ' .. cap .. ' unacknowledged events')
  end
end
return redis.call('XADD', KEYS[1], '*', 'type', ARGV[4], 'data', ARGV[5])
"""
)

# Several XADDs to one kept topic in one call (the outbox's drain hands hundreds at once): the same checks
# per event as _KEPT_ADD_SCRIPT. ARGV: group, retention, cap, then type, data per event. Returns the ids
# added, then '' when every event was added or the LECTERN_KEPT_FULL refusal that stopped it.
_KEPT_ADD_MANY_SCRIPT = (
    _TRIM_LUA
    + """
local cap = tonumber(ARGV[3])
local ids = {}
for i = 4, #ARGV, 2 do
  if redis.call('XLEN', KEYS[1]) >= cap then
    trim_consumed(KEYS[1], ARGV[1], tonumber(ARGV[2]))
    if redis.call('XLEN', KEYS[1]) >= cap then
      ids[#ids + 1] = 'LECTERN_KEPT_FULL ' .. cap .. ' unacknowledged events'
      return ids
    end
  end
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'type', ARGV[i], 'data', ARGV[i + 1])
end
ids[#ids + 1] = ''
return ids
"""
)

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


class RedisBus:
    """`EventBus` over Redis Streams. The stream of topic T is the key `key_prefix + T`; each event
    has two fields, `type` and `data` (the JSON-encoded payload).

    Retention is approximate (`XADD MAXLEN ~`): Redis trims whole stream nodes only, so a topic holds
    at most `retention` + `stream-node-max-entries` (100 by default) events, and never fewer than
    `retention` once that many were published.

    With a `protected_group` (the app passes "catalog"), the topics in `kept_topics` are added to
    without MAXLEN and trimmed (`XTRIM MINID ~ … LIMIT`) only up to that group's oldest unacknowledged
    event: after its acks, at most every `trim_interval_s`, and before refusing a publish at `kept_cap`
    events (default 20 × retention; BusUnavailable, the event is not added).
    """

    def __init__(
        self,
        url: str,
        retention: int,
        *,
        key_prefix: str = "lectern:events:",
        op_timeout_s: float = 5.0,
        check_timeout_s: float = 1.0,
        protected_group: str | None = None,
        kept_topics: tuple[str, ...] = KEPT_UNTIL_CONSUMED,
        kept_cap: int | None = None,
        trim_interval_s: float = 2.0,
    ) -> None:
        if retention < 1:
            raise Invalid("retention must be at least 1", field="retention")
        self._retention = retention
        self._protected = protected_group
        self._kept_topics = frozenset(kept_topics) if protected_group is not None else frozenset()
        self._kept_cap = kept_cap if kept_cap is not None else 20 * retention
        if self._kept_cap < retention:
            raise Invalid("kept_cap must be at least retention", field="kept_cap")
        self._trim_interval_s = trim_interval_s
        self._trimmed_at: dict[str, float] = {}  # topic → loop time of its last trim
        self._prefix = key_prefix
        self._op_timeout_s = op_timeout_s
        self._check_timeout_s = check_timeout_s
        self._closed = False
        self._closing = asyncio.Event()  # set by close(): wakes consumers blocked in XREADGROUP
        # No socket timeout: XREADGROUP BLOCK legitimately waits; every call is bounded by
        # asyncio.timeout instead (op_timeout_s, plus block_s for consume). Few, quick retries so
        # a dead server is reported promptly rather than after redis-py's default backoff.
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=None,
            socket_connect_timeout=min(op_timeout_s, 5.0),
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        )
        self._claim = self._redis.register_script(_CLAIM_SCRIPT)
        self._trim = self._redis.register_script(_TRIM_SCRIPT)
        self._kept_add = self._redis.register_script(_KEPT_ADD_SCRIPT)
        self._kept_add_many = self._redis.register_script(_KEPT_ADD_MANY_SCRIPT)

    def key(self, topic: str) -> str:
        """The Redis key of a topic's stream."""
        return self._prefix + topic

    # -- the EventBus interface ------------------------------------------------------------------

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> str:
        [event_id] = await self.publish_many([(topic, type, data)])
        return event_id

    async def publish_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[str]:
        """One pipeline (one round trip), in order; not a transaction: on an error the events before it
        were published."""
        encoded = []
        for topic, type, data in items:
            require_name(topic, "topic")
            require_name(type, "type")
            encoded.append((topic, type, encode_data(data)))
        return await self.publish_many_encoded(encoded)

    async def publish_many_encoded(self, encoded: Sequence[tuple[str, str, str]]) -> list[str]:
        """`publish_many` of events whose data is already JSON text from `events.encode_data` (the
        outbox's journal keeps it so): not decoded and encoded again. Consecutive events of one kept
        topic go in one script call."""
        if not encoded:
            return []
        async with self._call("publish"):
            if len(encoded) == 1:
                topic, type, data_json = encoded[0]
                try:
                    if topic in self._kept_topics:
                        return [
                            str(
                                await self._kept_add(
                                    keys=[self.key(topic)], args=self._kept_args(type, data_json)
                                )
                            )
                        ]
                    fields: dict[Any, Any] = {"type": type, "data": data_json}
                    return [
                        str(
                            await self._redis.xadd(
                                self.key(topic), fields, maxlen=self._retention, approximate=True
                            )
                        )
                    ]
                except ResponseError as exc:
                    self._raise_add_error(exc)
            pipe = self._redis.pipeline(transaction=False)
            runs: list[bool] = []  # per queued command: a kept topic's run of events (else one XADD)
            i = 0
            while i < len(encoded):
                topic = encoded[i][0]
                if topic in self._kept_topics:
                    j = i
                    args: list[Any] = [self._protected, self._retention, self._kept_cap]
                    while j < len(encoded) and encoded[j][0] == topic:
                        args += encoded[j][1:]
                        j += 1
                    # With a pipeline as client, redis-py queues EVALSHA (and loads the script if missing).
                    await self._kept_add_many(keys=[self.key(topic)], args=args, client=pipe)
                    runs.append(True)
                    i = j
                else:
                    _topic, type, data_json = encoded[i]
                    pipe.xadd(
                        self.key(topic),
                        {"type": type, "data": data_json},
                        maxlen=self._retention,
                        approximate=True,
                    )
                    runs.append(False)
                    i += 1
            replies = await pipe.execute(raise_on_error=False)
        ids: list[str] = []
        for run, reply in zip(runs, replies, strict=True):
            if isinstance(reply, Exception):
                self._raise_add_error(reply, published=len(ids))
            if not run:
                ids.append(str(reply))
                continue
            *taken, refusal = reply
            ids += [str(t) for t in taken]
            if refusal:
                self._raise_add_error(ResponseError(str(refusal)), published=len(ids))
        return ids

    def _kept_args(self, type: str, data_json: str) -> list[Any]:
        return [self._protected, self._retention, self._kept_cap, type, data_json]

    def _raise_add_error(self, exc: Exception, published: int = 0) -> NoReturn:
        if "LECTERN_KEPT_FULL" in str(exc):
            log.error("event bus: refusing an event: %s", exc)
            refused = BusUnavailable(
                f"a topic kept until consumed is full: the {self._protected!r} group has not "
                f"acknowledged {self._kept_cap} events"
            )
            refused.published = published
            raise refused from exc
        raise exc

    async def ensure_group(self, topic: str, group: str) -> None:
        require_name(topic, "topic")
        require_name(group, "group")
        async with self._call("ensure_group"):
            try:
                await self._redis.xgroup_create(self.key(topic), group, id="0", mkstream=True)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

    async def consume(
        self,
        topic: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_s: float = 0.0,
        until: asyncio.Event | None = None,
    ) -> list[Delivery]:
        require_name(topic, "topic")
        require_name(group, "group")
        require_name(consumer, "consumer")
        require_count(count)
        require_seconds(block_s, "block_s")
        if until is not None and until.is_set():
            block_s = 0.0  # stopping: read what there is; a read already blocked runs out its block
        # BLOCK 0 means "forever" to Redis, so no block at all is spelled by leaving BLOCK out.
        block_ms = math.ceil(block_s * 1000) if block_s > 0 else None
        key = self.key(topic)
        for _ in range(2):
            try:
                async with self._call("consume", extra_s=block_s):
                    reply = await self._unless_closed(
                        self._redis.xreadgroup(group, consumer, {key: ">"}, count=count, block=block_ms)
                    )
                break
            except ResponseError as exc:
                # The group is created on first use, as by the memory bus; this also recovers a
                # consumer after a Redis restart without persistence lost the stream.
                if not str(exc).startswith("NOGROUP"):
                    raise
                await self.ensure_group(topic, group)
        else:  # pragma: no cover - the group was deleted again between create and read
            return []
        deliveries = []
        # [[key, [(id, {field: value}), ...]]] with decode_responses (RESP2 framing)
        streams = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply or [])
        for _stream, entries in streams:
            for event_id, fields in entries:
                deliveries.append(_delivery(topic, event_id, fields, 1))
        return deliveries

    async def ack(self, topic: str, group: str, ids: list[str]) -> None:
        for event_id in ids:
            parse_event_id(event_id)
        if not ids:
            return
        async with self._call("ack"):
            await self._redis.xack(self.key(topic), group, *ids)
        if topic in self._kept_topics and group == self._protected:
            now = asyncio.get_running_loop().time()
            if now - self._trimmed_at.get(topic, -math.inf) >= self._trim_interval_s:
                self._trimmed_at[topic] = now
                async with self._call("trim"):
                    await self._trim(keys=[self.key(topic)], args=[group, self._retention])

    async def claim_stale(
        self, topic: str, group: str, consumer: str, min_idle_s: float, count: int = 100
    ) -> list[Delivery]:
        require_name(consumer, "consumer")
        require_count(count)
        require_seconds(min_idle_s, "min_idle_s")
        min_idle_ms = math.ceil(min_idle_s * 1000)
        claimed: list[Delivery] = []
        cursor = "0-0"
        # XAUTOCLAIM looks at no more than 10 × COUNT entries per call, so walk the whole pending
        # list by cursor until `count` are claimed or the cursor wraps to 0-0.
        while len(claimed) < count:
            async with self._call("claim_stale"):
                try:
                    reply = await self._claim(
                        keys=[self.key(topic)],
                        args=[group, consumer, min_idle_ms, cursor, count - len(claimed)],
                    )
                except ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        return []  # no group, nothing pending
                    raise
            cursor, entries, counts = reply
            for (event_id, flat_fields), attempts in zip(entries, counts, strict=True):
                fields = dict(zip(flat_fields[::2], flat_fields[1::2], strict=True))
                claimed.append(_delivery(topic, event_id, fields, int(attempts)))
            if cursor == "0-0":
                break
        return claimed

    async def pending_count(self, topic: str, group: str) -> int:
        async with self._call("pending_count"):
            try:
                summary = await self._redis.xpending(self.key(topic), group)
            except ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    return 0
                raise
        return int(summary["pending"])

    async def length(self, topic: str) -> int:
        async with self._call("length"):
            return int(await self._redis.xlen(self.key(topic)))

    async def oldest_unacked(self, topic: str, group: str) -> str | None:
        key = self.key(topic)
        async with self._call("oldest_unacked"):
            groups = await self._redis.xinfo_groups(key) if await self._redis.exists(key) else []
            info = next((g for g in groups if _text(g.get("name")) == group), None)
            candidates: list[str] = []
            if info is None:
                after = "-"  # no group yet: it would start at the oldest event
            else:
                after = "(" + _text(info.get("last-delivered-id"))
                summary = await self._redis.xpending(key, group)
                if int(summary["pending"]) > 0:
                    candidates.append(_text(summary["min"]))
            first = await self._redis.xrange(key, min=after, max="+", count=1)
            if first:
                candidates.append(_text(first[0][0]))
        if not candidates:
            return None
        return min(candidates, key=parse_event_id)

    async def check(self) -> None:
        async with self._call("check", timeout_s=self._check_timeout_s):
            await self._redis.ping()

    async def close(self) -> None:
        self._closed = True
        self._closing.set()
        await self._redis.aclose()

    # -- internals -------------------------------------------------------------------------------

    async def _unless_closed(self, call: Awaitable[Any]) -> Any:
        """Await `call`, but give up with BusUnavailable as soon as close() is called: closing the
        pool does not interrupt a read already blocked in XREADGROUP."""
        read = asyncio.ensure_future(call)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((read, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancelling the read makes redis-py drop that connection; both tasks end here.
            for task in (read, closing):
                task.cancel()
            await asyncio.gather(read, closing, return_exceptions=True)
        if read.cancelled():  # only close() gets here: an outer cancel propagated from wait()
            raise BusUnavailable("the event bus was closed while waiting for events")
        return read.result()  # events read just as close() came are still handed out

    @asynccontextmanager
    async def _call(
        self, what: str, *, extra_s: float = 0.0, timeout_s: float | None = None
    ) -> AsyncIterator[None]:
        """Bound one Redis call in time and turn "cannot reach Redis" into BusUnavailable."""
        if self._closed:
            raise BusUnavailable("the event bus is closed")
        try:
            async with asyncio.timeout((self._op_timeout_s if timeout_s is None else timeout_s) + extra_s):
                yield
        except _UNAVAILABLE as exc:
            log.warning("event bus: %s failed: %s", what, exc)
            raise BusUnavailable(f"Redis is unreachable ({what}): {exc}") from exc


def _delivery(topic: str, event_id: str, fields: dict[str, str], attempts: int) -> Delivery:
    try:
        data = json.loads(fields["data"])
        event_type = fields["type"]
    except (KeyError, ValueError) as exc:
        # Written by something other than RedisBus; surfacing it beats silently dropping it.
        raise Invalid(f"event {event_id} is not a bus event: {exc}", field="data") from exc
    return Delivery(topic, event_id, event_type, data, attempts)


def _text(value: Any) -> str:
    """A Redis reply field as text (the client may hand bytes or str)."""
    return value.decode() if isinstance(value, bytes) else str(value)
