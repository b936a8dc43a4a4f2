"""Resumable multipart uploads straight from a browser into the object store: the store side.

The application starts an upload, hands the browser a short-lived URL per part (presigned for S3; signed
and served by streaming/objects_routes.py for the embedded store), lists the parts already stored (so a
browser can resume), and completes or aborts it. The bytes never pass through the application's memory.
Both stores implement `MultipartStore` with the same rules (tests/integration/test_object_store_multipart.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from infra.errors import Invalid, NotFound

# S3's limits, kept by the embedded store too so that both behave alike.
MIN_PART_BYTES = 5 * 1024 * 1024  # every part but the last
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000


class UploadNotFound(NotFound):
    """No such multipart upload (never started, completed or aborted)."""


@dataclass(frozen=True)
class StoredPart:
    number: int
    etag: str  # without quotes
    size: int


@runtime_checkable
class MultipartStore(Protocol):
    async def start_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload to `key`; its upload id."""

    async def part_url(self, key: str, upload_id: str, number: int, expires_s: int) -> str:
        """A URL a browser PUTs part `number` (1-based) to, valid for `expires_s` seconds; the answer's
        ETag header is the part's etag."""

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """The parts stored so far, by number; UploadNotFound for an unknown upload."""

    async def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        """Join the parts `(number, etag)` (ascending numbers, etags as stored) into the object `key`.
        Invalid when a part is missing, its etag differs or a part but the last is too small."""

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard the upload and its parts; aborting an unknown upload is not an error."""


def check_part_number(number: int) -> int:
    if not 1 <= number <= MAX_PARTS:
        raise Invalid(f"part numbers run from 1 to {MAX_PARTS}", field="number")
    return number


def check_completion(parts: Sequence[tuple[int, str]]) -> None:
    """The shape S3 requires of a completion: at least one part, numbers strictly ascending."""
    if not parts:
        raise Invalid("a completion names at least one part", field="parts")
    numbers = [n for n, _ in parts]
    for n in numbers:
        check_part_number(n)
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise Invalid("parts must be listed in ascending order of their numbers", field="parts")


def normalise_etag(etag: str) -> str:
    return etag.strip().strip('"')
