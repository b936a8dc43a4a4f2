"""The object store interface: where recordings, courseware and exports live.

Two implementations share one contract suite (tests/integration/test_object_store_contract.py):
`infra.objects_local.LocalObjectStore` (a folder, embedded mode) and `infra.objects_s3.S3ObjectStore`
(MinIO / any S3 through the `minio` client).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from infra.errors import NotFound, Unavailable


class ObjectNotFound(NotFound):
    pass


class StoreUnavailable(Unavailable):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str
    modified_at: datetime


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ObjectInfo:
        """Store `data` under `key`, replacing any object there."""

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        part_size: int = 16 * 1024 * 1024,
    ) -> ObjectInfo:
        """Store a file; S3 uses multipart upload with parts of `part_size` bytes when it is larger."""

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes of `key`; with start/end (inclusive, like HTTP Range) only that range.
        `start=None, end=N` means the last N bytes (a suffix range)."""

    async def stat(self, key: str) -> ObjectInfo:
        """Metadata of `key`, or ObjectNotFound."""

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with `prefix`, sorted by key."""

    async def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error."""

    async def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        """A URL anyone may GET until it expires."""

    async def check(self) -> None:
        """Raise StoreUnavailable if the store cannot be reached (used by /readyz)."""

    async def close(self) -> None:
        """Release connections and threads."""
