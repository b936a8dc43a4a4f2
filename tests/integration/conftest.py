"""Integration fixtures. Object store: `s3_service`, `s3_object_store`, `local_object_store`, and
`object_store` (each test once per implementation). Other services' fixtures may be added below."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from minio import Minio
from minio.error import S3Error

from infra.appkeys import OBJECTS, SETTINGS
from infra.http import error_middleware
from infra.objects import ObjectStore
from infra.objects_local import LocalObjectStore
from infra.objects_s3 import S3ObjectStore
from infra.settings import Settings, replace_settings
from streaming import objects_routes
from tests.helpers import free_port, service_env

# --- object store ------------------------------------------------------------------------------

AiohttpServer = Callable[..., Awaitable[TestServer]]


@dataclass(frozen=True)
class S3Service:
    """Where the test S3 server (radosgw under `make test`) listens, and a user's keys."""

    endpoint: str
    access_key: str
    secret_key: str

    def admin_client(self) -> Minio:
        return Minio(self.endpoint, self.access_key, self.secret_key, secure=False, region="us-east-1")


def unique_bucket_name() -> str:
    return f"lectern-test-{uuid.uuid4().hex[:20]}"


def remove_bucket(service: S3Service, bucket: str) -> None:
    """Delete a test bucket and everything in it; a bucket that was never created is fine."""
    client = service.admin_client()
    try:
        if not client.bucket_exists(bucket):
            return
        for obj in client.list_objects(bucket, recursive=True):
            if obj.object_name is not None:
                client.remove_object(bucket, obj.object_name)
        client.remove_bucket(bucket)
    except S3Error as exc:
        if exc.code != "NoSuchBucket":
            raise


@pytest.fixture
def s3_service() -> S3Service:
    """The S3 server from TEST_S3_*; skipped without it (failed under `make test`)."""
    return S3Service(
        endpoint=service_env("TEST_S3_ENDPOINT"),
        access_key=service_env("TEST_S3_ACCESS_KEY"),
        secret_key=service_env("TEST_S3_SECRET_KEY"),
    )


@pytest.fixture
async def s3_object_store(s3_service: S3Service) -> AsyncIterator[S3ObjectStore]:
    """An S3ObjectStore on a bucket of its own, removed with its contents after the test."""
    bucket = unique_bucket_name()
    store = S3ObjectStore(
        s3_service.endpoint, s3_service.access_key, s3_service.secret_key, bucket, region="us-east-1"
    )
    yield store
    await store.close()
    remove_bucket(s3_service, bucket)


@pytest.fixture
async def local_object_store(
    embedded_settings: Settings, aiohttp_server: AiohttpServer
) -> AsyncIterator[LocalObjectStore]:
    """A LocalObjectStore in a temp dir whose presigned URLs are served by a running test app."""
    port = free_port()
    settings = replace_settings(embedded_settings, port=port)
    store = LocalObjectStore(
        settings.objects_dir, signing_key=settings.secret_key, base_url=settings.base_url
    )
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[OBJECTS] = store
    objects_routes.add_routes(app)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    yield store
    await store.close()


@pytest.fixture(params=["local", "s3"])
def object_store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each implementation in turn; a test using this runs once per store."""
    store: ObjectStore = request.getfixturevalue(f"{request.param}_object_store")
    return store
