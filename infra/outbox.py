"""The outbox: every event the live path emits is written to a journal on local disk before it counts as
emitted, then handed to the bus in order, retried with bounded backoff until the bus takes it. It survives
bus outages, restarts and kill -9 (at least once: an event the bus took just before a crash, before its
delivery was noted, is published again; consumers are idempotent).

The journal (`journal.jsonl` in the outbox directory) is append-only JSON lines: `{"seq", "topic", "type",
"data", "at"}` for an event, `{"done": seq}` once the bus has taken every event up to `seq`. Events are
fsynced before `publish` returns; concurrent publishes share one write and one fsync (group commit: one
task writes whatever was handed over while the previous write ran). Delivery marks are not fsynced
(losing one only means a redelivery). The drain hands the bus up to `drain_batch` events per call
(after waiting `drain_linger_s` for more when fewer wait). A torn last line (a crash mid-write) is
dropped when the journal is read. The journal is truncated whenever it has been delivered in full, and
rewritten with only the waiting events when it grows past `compact_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from infra.bus import BusUnavailable, EventBus
from infra.errors import Invalid, Unavailable
from infra.events import encode_data, require_name
from infra.readiness import Degraded

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
T = TypeVar("T")


@runtime_checkable
class EncodedPublisher(Protocol):
    """A bus that takes event data as the JSON text `encode_data` made (infra.bus_redis.RedisBus): the
    drain hands it the journal's text instead of decoding it to encode it again."""

    async def publish_many_encoded(self, encoded: Sequence[tuple[str, str, str]]) -> list[str]: ...


class OutboxFull(BusUnavailable):
    """The outbox holds `max_events` undelivered events: the event was not kept."""


@dataclass(frozen=True)
class OutboxConfig:
    directory: Path
    max_events: int = 100_000  # about 30 MB of journal at the most
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    # /readyz reports the outbox as degraded once its oldest event has waited this long.
    degraded_after_s: float = 5.0
    compact_bytes: int = 4 * 1024 * 1024
    # Events handed to the bus in one `publish_many` (one Redis round trip) and marked done together.
    drain_batch: int = 500
    # A drain that finds fewer than `drain_batch` events waits this long for more before calling the bus:
    # at thousands of events a second, one bus call (and one consumer read and transaction downstream)
    # then carries many events instead of the one or two each fsync brought. Publishers do not wait
    # for the drain (they return after their fsync); a shutdown flush does not linger.
    drain_linger_s: float = 0.005


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    topic: str
    type: str
    data_json: str
    queued_at: float  # unix seconds

    def line(self) -> bytes:
        return (
            f'{{"seq":{self.seq},"topic":{json.dumps(self.topic)},"type":{json.dumps(self.type)},'
            f'"at":{self.queued_at!r},"data":{self.data_json}}}\n'
        ).encode()


class Outbox:
    """An `EventSink` in front of an `EventBus`: `publish` is durable and returns at once; one task
    (`start`) drains the journal to the bus, oldest first; `close` flushes what it can within a deadline
    and leaves the rest on disk for the next start."""

    def __init__(
        self, bus: EventBus, config: OutboxConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._bus = bus
        self.config = config
        self._clock = clock
        self._path = config.directory / JOURNAL
        self._pending: deque[_Entry] = deque()
        self._next_seq = 1
        self._fd: int | None = None
        self._journal_bytes = 0
        self._pending_bytes = 0  # journal bytes of the waiting events: what a rewrite would keep
        self._closed = False
        self._flushing = False
        self._write_lock = asyncio.Lock()
        # Group commit: events accepted since the last journal write began, written and fsynced together
        # by one task; each publisher waits for its batch's fsync.
        self._batch: list[_Entry] = []
        self._batch_synced: asyncio.Future[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._has_pending = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._poke = asyncio.Event()  # cuts a backoff wait short (shutdown flush)
        self._drainer: asyncio.Task[None] | None = None
        self._journal_work: set[asyncio.Task[Any]] = set()  # journal writes under way (shielded)
        self._outage_since: float | None = None
        self.delivered = 0
        self.dropped = 0
        self.last_error: str | None = None

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, bus: EventBus, config: OutboxConfig, *, clock: Callable[[], float] = time.time
    ) -> Outbox:
        """Read the journal (creating the directory), so that events a previous process left are
        delivered first."""
        outbox = cls(bus, config, clock=clock)
        await asyncio.to_thread(outbox._load)
        if outbox._pending:
            log.warning(
                "outbox: %d events from before the restart wait for the bus (oldest queued %.0f s ago)",
                len(outbox._pending),
                outbox.oldest_age_s,
            )
            outbox._has_pending.set()
            outbox._empty.clear()
        return outbox

    def _load(self) -> None:
        self.config.directory.mkdir(parents=True, exist_ok=True)
        raw = self._path.read_bytes() if self._path.exists() else b""
        good = raw.rfind(b"\n") + 1  # a last line without its newline is a write a crash cut short
        if good < len(raw):
            log.warning("outbox: dropping a torn last journal line (%d bytes)", len(raw) - good)
        entries: dict[int, _Entry] = {}
        done = 0
        for number, line in enumerate(raw[:good].splitlines(), start=1):
            try:
                record = json.loads(line)
                if "done" in record:
                    done = max(done, int(record["done"]))
                    continue
                entry = _Entry(
                    int(record["seq"]),
                    str(record["topic"]),
                    str(record["type"]),
                    encode_data(record["data"]),
                    float(record["at"]),
                )
            except (ValueError, KeyError, TypeError, Invalid) as exc:
                log.error("outbox: journal line %d unreadable, skipped: %s", number, exc)
                continue
            entries[entry.seq] = entry
        self._pending.extend(e for seq, e in sorted(entries.items()) if seq > done)
        self._pending_bytes = sum(len(e.line()) for e in self._pending)
        self._next_seq = max([done, *entries]) + 1
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.ftruncate(self._fd, good)
        self._journal_bytes = good
        if not self._pending:
            self._truncate()
        _fsync_dir(self.config.directory)

    # -- the EventSink interface -----------------------------------------------------------------

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> str:
        """Keep an event until the bus takes it; returns its outbox id ("outbox-<seq>"), once it is on
        disk. Invalid for data that is not JSON; OutboxFull (a BusUnavailable) when the outbox is full."""
        [outbox_id] = await self.publish_many([(topic, type, data)])
        return outbox_id

    async def publish_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[str]:
        """`publish` for several events at once (all kept, in order, or none)."""
        encoded = []
        for topic, type, data in items:
            require_name(topic, "topic")
            require_name(type, "type")
            encoded.append((topic, type, encode_data(data)))
        if not encoded:
            return []
        if self._closed:
            raise BusUnavailable("the outbox is closed")
        waiting = len(self._pending) + len(self._batch)
        if waiting + len(encoded) > self.config.max_events:
            self.dropped += len(encoded)
            log.error(
                "outbox full (%d events waiting for the bus): %d events (%s on %s…) not kept",
                waiting,
                len(encoded),
                encoded[0][1],
                encoded[0][0],
            )
            raise OutboxFull(f"the outbox holds {waiting} undelivered events")
        now = self._clock()
        first = self._next_seq
        self._next_seq += len(encoded)
        self._batch.extend(
            _Entry(first + i, topic, type, data_json, now)
            for i, (topic, type, data_json) in enumerate(encoded)
        )
        if self._batch_synced is None:
            self._batch_synced = asyncio.get_running_loop().create_future()
            # A publisher cancelled while waiting must not leave an error unretrieved.
            self._batch_synced.add_done_callback(lambda f: f.cancelled() or f.exception())
        synced = self._batch_synced
        if self._committer is None:
            # Runs to its end even if every publisher is cancelled (close() waits for it): a line on
            # disk must not be left to the next start only.
            self._committer = asyncio.create_task(self._commit(), name="outbox-commit")
            self._journal_work.add(self._committer)
            self._committer.add_done_callback(self._journal_work.discard)
        await asyncio.shield(synced)
        return [f"outbox-{first + i}" for i in range(len(encoded))]

    async def _shielded(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` to its end even if the caller is cancelled (close() waits for it)."""
        task = asyncio.create_task(work)
        self._journal_work.add(task)
        task.add_done_callback(self._journal_work.discard)
        return await asyncio.shield(task)

    async def _commit(self) -> None:
        """Write and fsync what publishers handed over, one batch per write, until none waits."""
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                synced, self._batch_synced = self._batch_synced, None
                assert synced is not None
                lines = b"".join(e.line() for e in batch)
                try:
                    async with self._write_lock:
                        if self._fd is None:
                            raise BusUnavailable("the outbox is closed")
                        await asyncio.to_thread(self._append, lines, True)
                        self._pending.extend(batch)
                        self._pending_bytes += len(lines)
                except Exception as exc:
                    synced.set_exception(exc)
                    continue
                self._empty.clear()
                self._has_pending.set()
                synced.set_result(None)
        finally:
            self._committer = None

    # -- state -----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events waiting for the bus."""
        return len(self._pending)

    @property
    def oldest_age_s(self) -> float:
        """How long the oldest waiting event has waited (0 when none waits)."""
        return max(self._clock() - self._pending[0].queued_at, 0.0) if self._pending else 0.0

    async def check(self) -> None:
        """Readiness: Unavailable while the outbox is full (events are being refused), Degraded while
        events wait longer than `degraded_after_s` (the bus is down or slow; nothing is lost)."""
        if len(self._pending) >= self.config.max_events:
            raise Unavailable(
                f"outbox full: {len(self._pending)} events wait for the bus, new events are refused "
                f"({self.dropped} so far; {self.last_error})"
            )
        age_s = self.oldest_age_s
        if age_s >= self.config.degraded_after_s:
            raise Degraded(
                f"outbox: {len(self._pending)} events wait for the bus, the oldest for {age_s:.0f} s "
                f"({self.last_error})"
            )

    async def wait_empty(self) -> None:
        await self._empty.wait()

    # -- draining --------------------------------------------------------------------------------

    def start(self) -> None:
        self._drainer = asyncio.create_task(self._drain(), name="outbox-drain")

    async def _drain(self) -> None:
        delay_s = self.config.retry_initial_s
        while True:
            await self._has_pending.wait()
            if (
                self.config.drain_linger_s > 0
                and len(self._pending) < self.config.drain_batch
                and not self._flushing
            ):
                await asyncio.sleep(self.config.drain_linger_s)
            batch = list(itertools.islice(self._pending, self.config.drain_batch))
            try:
                if isinstance(self._bus, EncodedPublisher):
                    await self._bus.publish_many_encoded([(e.topic, e.type, e.data_json) for e in batch])
                else:
                    await self._bus.publish_many([(e.topic, e.type, json.loads(e.data_json)) for e in batch])
            except Exception as exc:
                # BusUnavailable is the expected case; anything else is logged in full, and retried
                # too: dropping the event would lose the record of a lecture.
                taken = exc.published if isinstance(exc, BusUnavailable) else 0
                if taken:
                    await self._shielded(self._delivered(batch[:taken]))
                self._note_failure(batch[taken], exc)
                # Shutting down: retry at the shortest interval until close() gives up.
                wait_s = self.config.retry_initial_s if self._flushing else delay_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), wait_s)
                self._poke.clear()
                delay_s = min(delay_s * 2, self.config.retry_max_s)
                continue
            delay_s = self.config.retry_initial_s
            if self._outage_since is not None:
                log.warning(
                    "outbox: the bus took %s again after %.1f s; %d events still to deliver",
                    batch[0].type,
                    time.monotonic() - self._outage_since,
                    len(self._pending) - len(batch),
                )
                self._outage_since = None
            # Shielded: close() cancels this task, but never while the journal is being written.
            await self._shielded(self._delivered(batch))

    async def _delivered(self, batch: list[_Entry]) -> None:
        async with self._write_lock:
            for entry in batch:
                self._pending.popleft()
                self._pending_bytes -= len(entry.line())
            self.delivered += len(batch)
            seq, all_done = batch[-1].seq, not self._pending
            if all_done or not self._rewrite_due():
                # A truncate or a mark of a few bytes, neither fsynced: done here, because a worker
                # thread's round trip (and the loop's wake-up after it) per delivered batch cost more.
                self._mark_done(seq, all_done)
            else:
                await asyncio.to_thread(self._mark_done, seq, all_done)
            if not self._pending:
                self._has_pending.clear()
                self._empty.set()

    def _note_failure(self, entry: _Entry, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        first = self._outage_since is None
        if first:
            self._outage_since = time.monotonic()
        if isinstance(exc, BusUnavailable):
            if first:
                log.warning(
                    "outbox: bus unavailable, %d events kept until it returns (%s)",
                    len(self._pending),
                    exc,
                )
        else:
            log.error("outbox: publishing %s seq=%d failed; retried", entry.type, entry.seq, exc_info=exc)

    async def close(self, timeout_s: float) -> None:
        """Deliver what waits, for at most `timeout_s`; what is left stays in the journal for the next
        start. Then stop the drainer and close the journal."""
        self._flushing = True
        count = len(self._pending)
        self._poke.set()  # retry now, not at the end of a backoff
        try:
            if not self._empty.is_set():
                await asyncio.wait_for(self._empty.wait(), timeout_s)
            log.info(
                "outbox: flushed before exit (%d events were waiting; %d delivered since start)",
                count,
                self.delivered,
            )
        except TimeoutError:
            log.warning(
                "outbox: %d events not delivered within %.0f s (%s); kept in %s for the next start",
                len(self._pending),
                timeout_s,
                self.last_error,
                self._path,
            )
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        await asyncio.gather(*self._journal_work, return_exceptions=True)
        async with self._write_lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- the journal (under the write lock; writes that fsync run in a worker thread) -------------

    def _append(self, line: bytes, sync: bool) -> None:
        assert self._fd is not None
        _write_all(self._fd, line)
        if sync:
            os.fsync(self._fd)
        self._journal_bytes += len(line)

    def _mark_done(self, seq: int, all_done: bool) -> None:
        if self._fd is None:
            return
        if all_done:
            self._truncate()
        elif self._rewrite_due():
            self._rewrite()
        else:
            self._append(f'{{"done":{seq}}}\n'.encode(), False)

    def _rewrite_due(self) -> bool:
        # Rewriting costs the waiting events' bytes: only once at least as much is delivered.
        return self._journal_bytes >= max(self.config.compact_bytes, 2 * self._pending_bytes)

    def _truncate(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        self._journal_bytes = 0

    def _rewrite(self) -> None:
        """Replace the journal by one holding only the waiting events (atomically: write, fsync, rename)."""
        tmp = self._path.with_suffix(".tmp")
        lines = b"".join(e.line() for e in self._pending)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
        _fsync_dir(self.config.directory)
        assert self._fd is not None
        os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        self._journal_bytes = len(lines)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
