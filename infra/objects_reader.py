"""A stored object as a seekable binary file for blocking readers (PyAV, pypdf) on a worker thread: ranged
reads of one block at a time through the async ObjectStore, so a 2 GB video is never held in memory."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from infra.objects import ObjectStore

BLOCK_BYTES = 4 * 1024 * 1024


class ObjectReader(io.RawIOBase):
    """Reads `key` (of `size` bytes) from `store` on `loop`, which must be running in another thread:
    use it only from a worker thread (asyncio.to_thread, an executor). Keeps one block of `block_bytes`."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        size: int,
        loop: asyncio.AbstractEventLoop,
        *,
        block_bytes: int = BLOCK_BYTES,
        timeout_s: float = 120.0,
    ) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._size = size
        self._loop = loop
        self._block_bytes = block_bytes
        self._timeout_s = timeout_s
        self._pos = 0
        self._block_start = 0
        self._block = b""
        self.fetched_bytes = 0  # how much was read from the store (a test checks it stays small)

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"unsupported whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or len(view) == 0:
            return 0
        offset = self._pos - self._block_start
        if not 0 <= offset < len(self._block):
            self._fetch(self._pos)
            offset = 0
        n = min(len(view), len(self._block) - offset)
        view[:n] = self._block[offset : offset + n]
        self._pos += n
        return n

    def _fetch(self, start: int) -> None:
        end = min(start + self._block_bytes, self._size) - 1
        future = asyncio.run_coroutine_threadsafe(self._store.get(self._key, start, end), self._loop)
        self._block = future.result(timeout=self._timeout_s)
        self._block_start = start
        self.fetched_bytes += len(self._block)
