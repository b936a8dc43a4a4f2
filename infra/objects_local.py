"""The embedded object store: one file per object under a folder, plus HMAC-signed expiring GET URLs.

Layout: the object `a/b.ts` is the file `<root>/a/b.ts`; its metadata (content type, md5 etag, and the
size/mtime it was computed for) is `<root>/.lectern/meta/a/b.ts.json`; writes go through
`<root>/.lectern/tmp` and land with `os.replace`, so readers see the old object or the new one, never half.
Signed URLs are served by streaming/objects_routes.py and checked with `verify_presigned`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from infra.errors import Conflict, Invalid
from infra.objects import ObjectInfo, ObjectNotFound, StoreUnavailable

# The first key segment reserved for the store's own bookkeeping (metadata sidecars, temp files).
RESERVED_SEGMENT = ".lectern"
MAX_KEY_BYTES = 1024  # the S3 limit; both stores share it
MAX_SEGMENT_BYTES = 250  # NAME_MAX (255) minus the ".json" of the metadata sidecar
COPY_CHUNK_BYTES = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SIGNING_PURPOSE = "objects.get"


def check_key(key: str) -> str:
    """`key` if it is a well-formed object key, else Invalid naming what is wrong.

    Keys are '/'-separated, relative, without empty, '.' or '..' segments and without NUL, so that the
    same key names the same object in a folder and in a bucket, and never escapes the folder.
    """
    if not isinstance(key, str) or not key:
        raise Invalid("object key must be a non-empty string", field="key")
    if "\x00" in key:
        raise Invalid("object key must not contain NUL", field="key")
    if key.startswith("/"):
        raise Invalid("object key must not start with '/'", field="key")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise Invalid(f"object key longer than {MAX_KEY_BYTES} bytes", field="key")
    for segment in key.split("/"):
        if segment == "":
            raise Invalid("object key must not contain empty segments ('//' or a trailing '/')", field="key")
        if segment in (".", ".."):
            raise Invalid("object key must not contain '.' or '..' segments", field="key")
    return key


def check_range(start: int | None, end: int | None) -> None:
    """Invalid unless (start, end) is one of the range forms `ObjectStore.get` accepts."""
    if start is not None and start < 0:
        raise Invalid("range start must not be negative", field="start")
    if end is not None and end < 0:
        raise Invalid("range end must not be negative", field="end")
    if start is not None and end is not None and end < start:
        raise Invalid("range end is before its start", field="end")
    if start is None and end == 0:
        raise Invalid("a suffix range needs at least one byte", field="end")


def resolve_range(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """Absolute (offset, length) of an inclusive range within an object of `size` bytes.

    Follows HTTP Range: an end past the object is clamped, a suffix longer than the object is all of it,
    a start at or past the end is unsatisfiable (Invalid).
    """
    check_range(start, end)
    if start is None and end is None:
        return 0, size
    if start is None:
        assert end is not None
        length = min(end, size)
        return size - length, length
    if start >= size:
        raise Invalid(f"range start {start} is beyond the object's {size} bytes", field="start")
    last = size - 1 if end is None else min(end, size - 1)
    return start, last - start + 1


def _signature(signing_key: str, key: str, expires: int) -> str:
    # `expires` is digits only, so the last newline separates it unambiguously from any key.
    message = f"{_SIGNING_PURPOSE}\n{key}\n{expires}".encode("utf-8", "surrogatepass")
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify_presigned(signing_key: str, key: str, expires: int, signature: str, now: float) -> bool:
    """True if `signature` was made with `signing_key` for `key` and `expires`, and `now` is not past it."""
    expected = _signature(signing_key, key, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return False
    return now <= expires


class LocalObjectStore:
    """`infra.objects.ObjectStore` over a local folder; blocking file IO runs in worker threads."""

    def __init__(self, root: Path, signing_key: str, base_url: str) -> None:
        if not signing_key:
            raise ValueError("LocalObjectStore needs a signing key for presigned URLs")
        self._root = Path(root)
        self._signing_key = signing_key
        self._base_url = base_url.rstrip("/")
        self._install_lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------------

    def _data_path(self, key: str) -> Path:
        check_key(key)
        segments = key.split("/")
        if segments[0] == RESERVED_SEGMENT:
            raise Invalid(f"object keys must not start with {RESERVED_SEGMENT!r}", field="key")
        if any(len(s.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for s in segments):
            raise Invalid(f"object key segments are limited to {MAX_SEGMENT_BYTES} bytes here", field="key")
        return self._root.joinpath(*segments)

    def _meta_path(self, key: str) -> Path:
        *folders, name = key.split("/")
        return self._root.joinpath(RESERVED_SEGMENT, "meta", *folders, name + ".json")

    def _tmp_dir(self) -> Path:
        path = self._root / RESERVED_SEGMENT / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- blocking helpers (run in threads) ------------------------------------------------------

    def _install(self, key: str, tmp_data: Path, etag: str, content_type: str) -> ObjectInfo:
        """Move a fully written temp file into place under `key`, metadata first."""
        data_path = self._data_path(key)
        meta_path = self._meta_path(key)
        st = tmp_data.stat()
        meta = {"content_type": content_type, "etag": etag, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        fd, tmp_meta_name = tempfile.mkstemp(dir=self._tmp_dir(), suffix=".json")
        tmp_meta = Path(tmp_meta_name)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(meta, f)
            try:
                data_path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise Conflict(
                    f"cannot store {key!r}: a prefix of it is an object here", field="key"
                ) from None
            if data_path.is_dir():
                raise Conflict(f"cannot store {key!r}: other objects are stored under it here", field="key")
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            # Metadata first: a reader that sees the new data finds metadata matching its size and mtime.
            # The lock keeps two writers of one key from pairing one's data with the other's metadata.
            with self._install_lock:
                os.replace(tmp_meta, meta_path)
                os.replace(tmp_data, data_path)
        finally:
            tmp_meta.unlink(missing_ok=True)
            tmp_data.unlink(missing_ok=True)
        return self._info(key, data_path, meta_path, st)

    def _write_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        self._data_path(key)  # reject a bad key before touching the disk
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir())
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._install(key, tmp, hashlib.md5(data).hexdigest(), content_type)

    def _write_file(self, key: str, source: Path, content_type: str) -> ObjectInfo:
        self._data_path(key)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir())
        tmp = Path(tmp_name)
        digest = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(COPY_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._install(key, tmp, digest.hexdigest(), content_type)

    def _read_meta(self, meta_path: Path) -> dict[str, Any]:
        try:
            with meta_path.open() as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _info(self, key: str, data_path: Path, meta_path: Path, st: os.stat_result) -> ObjectInfo:
        meta = self._read_meta(meta_path)
        etag = meta.get("etag")
        if meta.get("size") != st.st_size or meta.get("mtime_ns") != st.st_mtime_ns or not etag:
            # The file was written without us (or the sidecar lost): describe what is really there.
            digest = hashlib.md5()
            with data_path.open("rb") as f:
                while chunk := f.read(COPY_CHUNK_BYTES):
                    digest.update(chunk)
            etag = digest.hexdigest()
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=str(etag),
            content_type=str(meta.get("content_type") or DEFAULT_CONTENT_TYPE),
            modified_at=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
        )

    def _stat(self, key: str) -> ObjectInfo:
        data_path = self._data_path(key)
        try:
            st = data_path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r}", field="key") from None
        if not data_path.is_file():
            raise ObjectNotFound(f"no object {key!r}", field="key")
        return self._info(key, data_path, self._meta_path(key), st)

    def _open(self, key: str) -> tuple[IO[bytes], ObjectInfo]:
        data_path = self._data_path(key)
        try:
            f = data_path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r}", field="key") from None
        try:
            st = os.fstat(f.fileno())
            info = self._info(key, data_path, self._meta_path(key), st)
        except BaseException:
            f.close()
            raise
        return f, info

    def _read(self, key: str, start: int | None, end: int | None) -> bytes:
        check_range(start, end)
        f, info = self._open(key)
        with f:
            offset, length = resolve_range(start, end, info.size)
            f.seek(offset)
            return f.read(length)

    def _list(self, prefix: str) -> list[ObjectInfo]:
        # Walk only the deepest folder the prefix names; the rest of the tree cannot match.
        folder = prefix.rpartition("/")[0]
        if prefix.startswith("/") or "\x00" in prefix:
            return []  # no valid key starts like this
        if folder:
            try:
                self._data_path(folder)
            except Invalid:
                return []  # e.g. "../": no valid key starts like this, and we must not walk there
        base = self._root.joinpath(*folder.split("/")) if folder else self._root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            here = Path(dirpath)
            if here == self._root:
                dirnames[:] = [d for d in dirnames if d != RESERVED_SEGMENT]
            for name in filenames:
                path = here / name
                key = path.relative_to(self._root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    found.append(self._stat(key))
                except (ObjectNotFound, Invalid):
                    continue  # deleted meanwhile, or a stray file no key can name
        found.sort(key=lambda info: info.key)
        return found

    def _delete(self, key: str) -> None:
        data_path = self._data_path(key)
        meta_path = self._meta_path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            data_path.unlink()
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            meta_path.unlink()
        # Drop folders left empty, so that `a` can become an object again once `a/b` is gone.
        for path, stop in ((data_path, self._root), (meta_path, self._root / RESERVED_SEGMENT / "meta")):
            parent = path.parent
            while parent != stop and stop in parent.parents:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def _check(self) -> None:
        try:
            fd, probe = tempfile.mkstemp(dir=self._tmp_dir())
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreUnavailable(f"object folder {self._root} is not writable: {exc}") from None

    # -- the ObjectStore interface -------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> ObjectInfo:
        return await asyncio.to_thread(self._write_bytes, key, bytes(data), content_type)

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = DEFAULT_CONTENT_TYPE,
        part_size: int = 16 * 1024 * 1024,
    ) -> ObjectInfo:
        # A local copy has no parts; `part_size` only matters to S3.
        return await asyncio.to_thread(self._write_file, key, Path(path), content_type)

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return await asyncio.to_thread(self._read, key, start, end)

    async def stat(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._stat, key)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list, prefix)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        self._data_path(key)
        expires = math.ceil(time.time() + expires_s)
        signature = _signature(self._signing_key, key, expires)
        return f"{self._base_url}/objects/{quote(key, safe='/')}?expires={expires}&signature={signature}"

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    async def close(self) -> None:
        return None

    # -- for the route that serves presigned URLs -------------------------------------------------

    def verify_presigned(self, key: str, expires: int, signature: str, now: float) -> bool:
        """Whether a URL from `presigned_get` for `key` is genuine and unexpired at `now`."""
        return verify_presigned(self._signing_key, key, expires, signature, now)

    async def open(self, key: str) -> tuple[IO[bytes], ObjectInfo]:
        """An open binary file of `key` (the caller closes it) and its metadata, or ObjectNotFound.

        The open file stays the same object even if `key` is replaced while it is being read.
        """
        return await asyncio.to_thread(self._open, key)
