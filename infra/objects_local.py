"""The embedded object store: one file per object under a folder, plus HMAC-signed expiring GET URLs.

Layout: the object `a/b.ts` is the file `<root>/a/b.ts`; its metadata (content type, md5 etag, and the
size/mtime it was computed for) is `<root>/.lectern/meta/a/b.ts.json`; writes go through
`<root>/.lectern/tmp` and land with `os.replace`, so readers see the old object or the new one, never half.
Signed URLs are served by streaming/objects_routes.py and checked with `verify_presigned`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from infra.errors import Conflict, Invalid
from infra.multipart import (
    MIN_PART_BYTES,
    StoredPart,
    UploadNotFound,
    check_completion,
    check_part_number,
    normalise_etag,
)
from infra.objects import ObjectInfo, ObjectNotFound, StoreUnavailable

# The first key segment reserved for the store's own bookkeeping (metadata sidecars, temp files).
RESERVED_SEGMENT = ".lectern"
MAX_KEY_BYTES = 1024  # the S3 limit; both stores share it
MAX_SEGMENT_BYTES = 250  # NAME_MAX (255) minus the ".json" of the metadata sidecar
COPY_CHUNK_BYTES = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SIGNING_PURPOSE = "objects.get"
_PART_SIGNING_PURPOSE = "objects.put-part"
_UPLOAD_ID_LENGTH = 32  # hex characters of a local multipart upload id


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


def _part_signature(signing_key: str, key: str, upload_id: str, number: int, expires: int) -> str:
    # The upload id is hex and the number and expiry digits: only the key may hold a newline.
    message = f"{_PART_SIGNING_PURPOSE}\n{upload_id}\n{number}\n{expires}\n{key}".encode(
        "utf-8", "surrogatepass"
    )
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

    # -- multipart uploads from browsers (infra.multipart.MultipartStore) ----------------------------
    # An upload is the folder `.lectern/multipart/<upload id>/` holding `upload.json` (key, content type)
    # and its parts `00001` (+ `00001.json`: etag, size), each installed whole with `os.replace` once all
    # its bytes arrived (streamed to disk by streaming/objects_routes.py), so a cut connection stores
    # nothing of that part. Completion concatenates the parts into the object, then removes the folder.

    def _upload_dir(self, upload_id: str) -> Path:
        if len(upload_id) != _UPLOAD_ID_LENGTH or any(c not in "0123456789abcdef" for c in upload_id):
            raise UploadNotFound(f"no upload {upload_id!r}", field="upload_id")
        return self._root / RESERVED_SEGMENT / "multipart" / upload_id

    def _upload_of(self, key: str, upload_id: str) -> Path:
        """The folder of upload `upload_id` to `key`; UploadNotFound unless it exists for that key."""
        folder = self._upload_dir(upload_id)
        try:
            with (folder / "upload.json").open() as f:
                meta = json.load(f)
        except (OSError, ValueError):
            raise UploadNotFound(f"no upload {upload_id!r}", field="upload_id") from None
        if not isinstance(meta, dict) or meta.get("key") != key:
            raise UploadNotFound(f"no upload {upload_id!r} of {key!r}", field="upload_id")
        return folder

    def _start_multipart(self, key: str, content_type: str) -> str:
        self._data_path(key)
        upload_id = secrets.token_hex(_UPLOAD_ID_LENGTH // 2)
        folder = self._upload_dir(upload_id)
        folder.mkdir(parents=True)
        meta = {"key": key, "content_type": content_type, "created_at": time.time()}
        (folder / "upload.json").write_text(json.dumps(meta))
        return upload_id

    def _parts(self, key: str, upload_id: str) -> builtins.list[StoredPart]:
        folder = self._upload_of(key, upload_id)
        parts: builtins.list[StoredPart] = []
        for sidecar in sorted(folder.glob("[0-9][0-9][0-9][0-9][0-9].json")):
            meta = self._read_meta(sidecar)
            data = sidecar.with_suffix("")
            try:
                size = data.stat().st_size
            except FileNotFoundError:
                continue
            if meta.get("size") == size and meta.get("etag"):
                parts.append(StoredPart(int(data.name), str(meta["etag"]), size))
        return parts

    def _complete(self, key: str, upload_id: str, wanted: builtins.list[tuple[int, str]]) -> ObjectInfo:
        folder = self._upload_of(key, upload_id)
        stored = {p.number: p for p in self._parts(key, upload_id)}
        for i, (number, etag) in enumerate(wanted):
            part = stored.get(number)
            if part is None or part.etag != normalise_etag(etag):
                raise Invalid(f"part {number} is not stored with etag {etag!r}", field="parts")
            if i < len(wanted) - 1 and part.size < MIN_PART_BYTES:
                raise Invalid(f"part {number} is smaller than {MIN_PART_BYTES} bytes", field="parts")
        meta = self._read_meta(folder / "upload.json")
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir())
        tmp = Path(tmp_name)
        digest = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as out:
                for number, _ in wanted:
                    with (folder / f"{number:05d}").open("rb") as src:
                        while chunk := src.read(COPY_CHUNK_BYTES):
                            digest.update(chunk)
                            out.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        info = self._install(
            key, tmp, digest.hexdigest(), str(meta.get("content_type") or DEFAULT_CONTENT_TYPE)
        )
        shutil.rmtree(folder, ignore_errors=True)
        return info

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            folder = self._upload_of(key, upload_id)
        except UploadNotFound:
            return
        shutil.rmtree(folder, ignore_errors=True)

    async def start_multipart(self, key: str, content_type: str) -> str:
        return await asyncio.to_thread(self._start_multipart, key, content_type)

    async def part_url(self, key: str, upload_id: str, number: int, expires_s: int) -> str:
        self._data_path(key)
        check_part_number(number)
        expires = math.ceil(time.time() + expires_s)
        signature = _part_signature(self._signing_key, key, upload_id, number, expires)
        return (
            f"{self._base_url}/objects/{quote(key, safe='/')}?uploadId={upload_id}&partNumber={number}"
            f"&expires={expires}&signature={signature}"
        )

    async def list_parts(self, key: str, upload_id: str) -> builtins.list[StoredPart]:
        return await asyncio.to_thread(self._parts, key, upload_id)

    async def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        check_completion(parts)
        await asyncio.to_thread(self._complete, key, upload_id, list(parts))

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(self._abort, key, upload_id)

    # -- for the route that receives parts ------------------------------------------------------------

    def verify_part_url(
        self, key: str, upload_id: str, number: int, expires: int, signature: str, now: float
    ) -> bool:
        """Whether a URL from `part_url` is genuine and unexpired at `now`."""
        expected = _part_signature(self._signing_key, key, upload_id, number, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return False
        return now <= expires

    async def part_writer(self, key: str, upload_id: str, number: int) -> PartWriter:
        """A writer for part `number` of the upload: `write` chunks as they arrive, then `commit`
        (installs the part) or `discard`. UploadNotFound for an unknown upload."""
        check_part_number(number)
        folder = await asyncio.to_thread(self._upload_of, key, upload_id)
        return await asyncio.to_thread(PartWriter, folder, number)


class PartWriter:
    """One part being received: chunks go to a temp file in the upload's folder (md5 as they come), so a
    part is never held in memory; `commit` moves it into place with its sidecar, `discard` drops it."""

    def __init__(self, folder: Path, number: int) -> None:
        self._folder = folder
        self._number = number
        fd, name = tempfile.mkstemp(dir=folder, prefix=".part-")
        self._tmp = Path(name)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> StoredPart:
        self._file.close()
        part = StoredPart(self._number, self._md5.hexdigest(), self.size)
        data = self._folder / f"{self._number:05d}"
        sidecar = self._folder / f"{self._number:05d}.json"
        if not self._folder.is_dir():  # aborted meanwhile
            self._tmp.unlink(missing_ok=True)
            raise UploadNotFound("the upload was aborted", field="upload_id")
        sidecar.unlink(missing_ok=True)  # a reader never pairs the new data with the old sidecar
        os.replace(self._tmp, data)
        sidecar.write_text(json.dumps({"etag": part.etag, "size": part.size}))
        return part

    def discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)
