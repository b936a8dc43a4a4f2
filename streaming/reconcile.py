"""Reconciliation of the catalog with the object store: finalized recordings the catalog does not list
(their `recording.finalized` was lost: the outbox full, a data directory wiped, the catalog's consumer
giving up during a database outage, a shutdown that outran it) are announced again, at start-up and then
every `interval_s`. Sessions a crash left open are closed by recovery (streaming/recording.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

import catalog
from infra import events
from infra.appkeys import OBJECTS, OUTBOX
from infra.objects import ObjectNotFound, ObjectStore
from infra.outbox import Outbox
from infra.tasks import OwnedTasks
from recorder import finalized_recordings, read_summary
from streaming.recording import finalized_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileConfig:
    interval_s: float = 600.0
    # Younger recordings are left alone: their own recording.finalized is on its way to the catalog.
    settle_s: float = 60.0
    # A recording announced again is not announced once more for this long (its event is on its way).
    quiet_s: float = 3600.0


class Reconciler:
    """Compares the index of finalized recordings (recorder/index.py) with the catalog's replays and
    announces the missing ones through the outbox, each with the summary written when it was finalized.
    Runs only while the outbox is empty: events still waiting there are not missing."""

    def __init__(
        self,
        store: ObjectStore,
        db: catalog.Database,
        outbox: Outbox,
        config: ReconcileConfig,
        *,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.db = db
        self.outbox = outbox
        self.config = config
        self._wall_clock = wall_clock
        self._announced: dict[tuple[int, str], float] = {}  # -> monotonic time of the announcement

    async def run_once(self) -> list[tuple[int, str]]:
        """One pass; returns the recordings announced again."""
        refs = await finalized_recordings(self.store)
        unlisted = await catalog.unlisted_recordings(self.db, refs)
        now_s, now = time.monotonic(), self._wall_clock()
        self._announced = {k: t for k, t in self._announced.items() if now_s - t < self.config.quiet_s}
        announced: list[tuple[int, str]] = []
        for session_id, recording_id in unlisted:
            if (session_id, recording_id) in self._announced:
                continue
            try:
                summary = await read_summary(self.store, session_id, recording_id)
            except ObjectNotFound:
                continue  # deleted since the listing
            finalized_at = summary.finalized_at or now
            if not summary.angles or (now - finalized_at).total_seconds() < self.config.settle_s:
                continue  # no video: never a replay; or just finalized: its own event is on its way
            await events.publish(self.outbox, finalized_event(summary, finalized_at))
            self._announced[(session_id, recording_id)] = now_s
            announced.append((session_id, recording_id))
            log.warning(
                "session=%s recording=%s finalized at %s but not in the catalog: announced again",
                session_id,
                recording_id,
                finalized_at.isoformat(),
            )
        log.info("reconciliation: %d finalized recordings, %d announced again", len(refs), len(announced))
        return announced

    async def run(self) -> None:
        """At start-up, then every `interval_s`; a pass waits until the outbox is empty."""
        while True:
            await self.outbox.wait_empty()
            try:
                await self.run_once()
            except Exception as exc:
                # The store or the database unreachable: nothing to do until the next pass.
                log.warning("reconciliation failed, next pass in %.0f s: %s", self.config.interval_s, exc)
            await asyncio.sleep(self.config.interval_s)


RECONCILER = web.AppKey("reconciler", Reconciler)


def setup(app: web.Application) -> None:
    """Add the reconciler's cleanup context: after the outbox's, the object store's and the catalog's."""
    app.cleanup_ctx.append(_reconciler)


async def _reconciler(app: web.Application) -> AsyncIterator[None]:
    reconciler = Reconciler(app[OBJECTS], app[catalog.DATABASE], app[OUTBOX], ReconcileConfig())
    app[RECONCILER] = reconciler
    tasks = OwnedTasks(log, "reconciliation")
    tasks.spawn(reconciler.run(), name="reconciliation")
    yield
    await tasks.cancel()
