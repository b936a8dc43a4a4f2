"""In-order upload of a recording's objects, with a bounded local spool that rides out store outages."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from infra.objects import ObjectStore, StoreUnavailable
from recorder.spool import SpoolAccount

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadJob:
    """One object to put. Files are spooled (their bytes count against the spool until stored); small
    texts (playlists, manifest) carry their bytes and a generation so a stale one is skipped."""

    key: str
    content_type: str
    path: Path | None = None
    data: bytes | None = None
    generation: int = 0


class Uploader:
    """FIFO: a segment is always stored before the playlist enqueued after it. A failing put is retried
    with exponential backoff (capped at `retry_max_s`) until it succeeds or the uploader is cancelled;
    jobs behind it wait on disk, so an outage delays uploads and loses nothing."""

    def __init__(
        self,
        store: ObjectStore,
        spool: SpoolAccount,
        *,
        log_prefix: str,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        self._store = store
        self._spool = spool
        self._prefix = log_prefix
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._jobs: deque[UploadJob] = deque()
        self._latest: dict[str, int] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.store_available = True
        self.last_error: str | None = None
        self.uploaded = 0

    @property
    def backlog(self) -> int:
        return len(self._jobs)

    def enqueue(self, job: UploadJob) -> None:
        if job.data is not None:
            self._latest[job.key] = job.generation
        self._jobs.append(job)
        self._idle.clear()
        self._wakeup.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._jobs:
                job = self._jobs[0]
                if job.data is None or self._latest.get(job.key) == job.generation:
                    await self._put_until_stored(job)
                self._jobs.popleft()
                if job.path is not None and self._spool.uploaded(job.key):
                    log.warning("%s spool back under its limit", self._prefix)
            self._idle.set()

    async def _put_until_stored(self, job: UploadJob) -> None:
        delay_s = self._retry_initial_s
        while True:
            try:
                if job.path is not None:
                    await self._store.put_file(job.key, job.path, job.content_type)
                else:
                    await self._store.put(job.key, job.data or b"", job.content_type)
            except (StoreUnavailable, OSError) as exc:
                if self.store_available:
                    log.warning("%s object store unavailable, spooling: %s", self._prefix, exc)
                self.store_available = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._retry_max_s)
                continue
            if not self.store_available:
                log.warning("%s object store back; uploading %d spooled jobs", self._prefix, self.backlog)
            self.store_available = True
            self.uploaded += 1
            return
