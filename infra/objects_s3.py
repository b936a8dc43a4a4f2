"""The S3 object store (MinIO in production, radosgw in tests) over the synchronous `minio` client.

Every client call runs in a worker thread. S3 and network failures become the store's domain errors:
a missing key is ObjectNotFound, an unreachable server or refused credentials is StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import builtins
import io
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.datatypes import Part as MinioPart
from minio.error import InvalidResponseError, S3Error, ServerError

from infra.errors import Invalid
from infra.multipart import (
    StoredPart,
    UploadNotFound,
    check_completion,
    check_part_number,
    normalise_etag,
)
from infra.objects import ObjectInfo, ObjectNotFound, StoreUnavailable
from infra.objects_local import DEFAULT_CONTENT_TYPE, check_key, check_range

log = logging.getLogger(__name__)

T = TypeVar("T")

# Operations: a dead server is noticed within seconds; big parts may take a while to arrive.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
RETRIES = 2
# /readyz: answer quickly, never retry.
CHECK_CONNECT_TIMEOUT_S = 1.0
CHECK_READ_TIMEOUT_S = 2.0
# How many HEAD requests `list` keeps in flight to learn each object's content type.
LIST_STAT_CONCURRENCY = 8

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
# What S3 answers a completion whose parts do not match what it stores.
_PART_CODES = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"})
_REFUSED_CODES = frozenset(
    {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken"}
)


def _pool(connect_s: float, read_s: float, retries: int) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_s, read=read_s),
        retries=urllib3.Retry(
            total=retries,
            backoff_factor=0.2,
            status_forcelist=(500, 502, 503, 504),
            raise_on_status=False,
        ),
        maxsize=10,
    )


def _domain_error(exc: Exception, what: str) -> Exception | None:
    """The domain error a client exception stands for, or None if it is not one we expect."""
    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND_CODES:
            return ObjectNotFound(f"no object {what}", field="key")
        if exc.code == "InvalidRange":
            return Invalid(f"range not satisfiable for {what}", field="start")
        if exc.code in _REFUSED_CODES:
            return StoreUnavailable(f"S3 refused the request for {what}: {exc.code}")
        return None
    if isinstance(exc, ServerError | InvalidResponseError):
        return StoreUnavailable(f"S3 failed the request for {what}: {exc}")
    # urllib3 wraps socket errors; a bare OSError is local (e.g. the file to upload is missing).
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return StoreUnavailable(f"S3 is unreachable ({what}): {type(exc).__name__}")
    return None


class S3ObjectStore:
    """`infra.objects.ObjectStore` on one bucket of an S3 server; the bucket is created on first use."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str = "us-east-1",
        secure: bool = False,
        public_url: str = "",
    ) -> None:
        self._endpoint = endpoint
        self._bucket = bucket
        self._http = _pool(CONNECT_TIMEOUT_S, READ_TIMEOUT_S, RETRIES)
        self._check_http = _pool(CHECK_CONNECT_TIMEOUT_S, CHECK_READ_TIMEOUT_S, 0)
        # The region is given, so the client never asks the server for it (presigning stays offline).
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=secure,
            http_client=self._http,
        )
        self._check_client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=secure,
            http_client=self._check_http,
        )
        # Browsers reach the server at another address than the app (nginx in front of MinIO): URLs for
        # them are signed for that host (SigV4 signs it). Signing is offline: the region is given.
        public = urlsplit(public_url) if public_url else None
        self._public_client = (
            Minio(
                public.netloc,
                access_key=access_key,
                secret_key=secret_key,
                region=region,
                secure=public.scheme == "https",
                http_client=self._http,
            )
            if public is not None
            else self._client
        )
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    @property
    def bucket(self) -> str:
        return self._bucket

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            mapped = _domain_error(exc, what)
            if mapped is None:
                raise
            raise mapped from exc

    def _make_bucket_if_missing(self) -> None:
        if self._client.bucket_exists(self._bucket):
            return
        try:
            self._client.make_bucket(self._bucket)
            log.info("created bucket=%s endpoint=%s", self._bucket, self._endpoint)
        except S3Error as exc:
            # Another process created it between our two requests: that is what we wanted.
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def _ready(self) -> None:
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if not self._bucket_ready:
                await self._call(f"bucket {self._bucket!r}", self._make_bucket_if_missing)
                self._bucket_ready = True

    def _stat_sync(self, key: str) -> ObjectInfo:
        obj = self._client.stat_object(self._bucket, key)
        modified_at = obj.last_modified or datetime.now(UTC)
        return ObjectInfo(
            key=key,
            size=int(obj.size or 0),
            etag=str(obj.etag or "").strip('"'),
            content_type=str(obj.content_type or DEFAULT_CONTENT_TYPE),
            modified_at=modified_at if modified_at.tzinfo else modified_at.replace(tzinfo=UTC),
        )

    def _put_sync(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        self._client.put_object(self._bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        return self._stat_sync(key)

    def _put_file_sync(self, key: str, path: Path, content_type: str, part_size: int) -> ObjectInfo:
        self._client.fput_object(self._bucket, key, str(path), content_type=content_type, part_size=part_size)
        return self._stat_sync(key)

    def _get_sync(self, key: str, start: int | None, end: int | None) -> bytes:
        headers: dict[str, str | list[str] | tuple[str]] = {}
        if start is not None or end is not None:
            # HTTP Range syntax covers all three forms, including the suffix range minio cannot express.
            headers["Range"] = f"bytes={'' if start is None else start}-{'' if end is None else end}"
        response = self._client.get_object(self._bucket, key, request_headers=headers or None)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def _list_keys_sync(self, prefix: str) -> list[str]:
        return [
            str(obj.object_name)
            for obj in self._client.list_objects(self._bucket, prefix=prefix or None, recursive=True)
            if obj.object_name is not None and not obj.is_dir
        ]

    async def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> ObjectInfo:
        check_key(key)
        await self._ready()
        return await self._call(repr(key), self._put_sync, key, bytes(data), content_type)

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = DEFAULT_CONTENT_TYPE,
        part_size: int = 16 * 1024 * 1024,
    ) -> ObjectInfo:
        check_key(key)
        await self._ready()
        return await self._call(repr(key), self._put_file_sync, key, Path(path), content_type, part_size)

    async def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        check_key(key)
        check_range(start, end)
        await self._ready()
        return await self._call(repr(key), self._get_sync, key, start, end)

    async def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        await self._ready()
        return await self._call(repr(key), self._stat_sync, key)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        await self._ready()
        keys = await self._call(f"list {prefix!r}", self._list_keys_sync, prefix)
        # A listing carries no content type, and its timestamps are finer than HEAD's: stat each key
        # so that `list` describes objects exactly as `stat` does.
        limit = asyncio.Semaphore(LIST_STAT_CONCURRENCY)

        async def describe(key: str) -> ObjectInfo | None:
            async with limit:
                try:
                    return await self._call(repr(key), self._stat_sync, key)
                except ObjectNotFound:
                    return None  # deleted since the listing

        infos = await asyncio.gather(*(describe(k) for k in keys))
        return sorted((i for i in infos if i is not None), key=lambda i: i.key)

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._ready()
        await self._call(repr(key), self._client.remove_object, self._bucket, key)

    async def presigned_get(self, key: str, expires_s: int = 3600) -> str:
        check_key(key)
        # Signing is local computation; the bucket must exist for the URL to be of any use.
        await self._ready()
        return self._client.presigned_get_object(self._bucket, key, expires=timedelta(seconds=expires_s))

    # -- multipart uploads from browsers (infra.multipart.MultipartStore) -----------------------------

    async def _multipart_call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._call(what, fn, *args)
        except ObjectNotFound as exc:  # radosgw says NoSuchKey of an upload completed meanwhile
            raise UploadNotFound(f"no upload {what}", field="upload_id") from exc
        except S3Error as exc:  # the codes _call does not map
            if exc.code == "NoSuchUpload":
                raise UploadNotFound(f"no upload {what}", field="upload_id") from exc
            if exc.code in _PART_CODES:
                raise Invalid(f"S3 refused the parts of {what}: {exc.code}", field="parts") from exc
            raise

    async def start_multipart(self, key: str, content_type: str) -> str:
        check_key(key)
        await self._ready()
        return await self._multipart_call(
            repr(key),
            self._client._create_multipart_upload,  # minio exposes multipart only privately
            self._bucket,
            key,
            {"Content-Type": content_type},
        )

    async def part_url(self, key: str, upload_id: str, number: int, expires_s: int) -> str:
        check_key(key)
        check_part_number(number)
        return self._public_client.get_presigned_url(
            "PUT",
            self._bucket,
            key,
            expires=timedelta(seconds=expires_s),
            extra_query_params={"partNumber": str(number), "uploadId": upload_id},
        )

    def _list_parts_sync(self, key: str, upload_id: str) -> builtins.list[StoredPart]:
        parts: builtins.list[StoredPart] = []
        marker: str | None = None
        while True:
            result = self._client._list_parts(self._bucket, key, upload_id, part_number_marker=marker)
            parts += [
                StoredPart(int(p.part_number), normalise_etag(p.etag), int(p.size or 0)) for p in result.parts
            ]
            if not result.is_truncated or not result.next_part_number_marker:
                return parts
            marker = str(result.next_part_number_marker)

    async def list_parts(self, key: str, upload_id: str) -> builtins.list[StoredPart]:
        check_key(key)
        await self._ready()
        return await self._multipart_call(f"{upload_id!r} of {key!r}", self._list_parts_sync, key, upload_id)

    async def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        check_key(key)
        check_completion(parts)
        # First make sure the upload exists: radosgw answers a completion of an aborted upload with a
        # 500 ("completion already in progress"), not NoSuchUpload.
        await self.list_parts(key, upload_id)
        listed = [MinioPart(n, normalise_etag(e)) for n, e in parts]
        await self._multipart_call(
            f"{upload_id!r} of {key!r}",
            self._client._complete_multipart_upload,
            self._bucket,
            key,
            upload_id,
            listed,
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        check_key(key)
        await self._ready()
        try:
            await self._multipart_call(
                f"{upload_id!r} of {key!r}",
                self._client._abort_multipart_upload,
                self._bucket,
                key,
                upload_id,
            )
        except UploadNotFound:
            return

    async def check(self) -> None:
        # Any failure means "not ready"; the message says which (unreachable, refused credentials, ...).
        try:
            await asyncio.to_thread(self._check_client.bucket_exists, self._bucket)
        except Exception as exc:
            mapped = _domain_error(exc, f"bucket {self._bucket!r}")
            detail = mapped.args[0] if mapped is not None else f"{type(exc).__name__}: {exc}"
            raise StoreUnavailable(f"object store check failed: {detail}") from exc

    async def close(self) -> None:
        self._http.clear()
        self._check_http.clear()
