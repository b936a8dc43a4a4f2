"""Recording fixtures: `recording_app(**settings)` builds the real app (create_app: SQLite catalog,
in-process bus, local object store unless S3 settings are given) in a temp dir, over loopback, with
aiortc restricted to 127.0.0.1 and no ICE servers; client peers are closed after each test.
`postgres_url` (a fresh PostgreSQL database) and `redis_database` (a Redis database of the test's own)
serve the fault tests that run the app on real services."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis
from yarl import URL

import catalog
from infra.appkeys import OBJECTS
from infra.settings import Settings
from streaming.app import create_app
from tests.helpers import service_env
from tests.integration.live.peers import LOOPBACK, SECRET, Robot
from tests.integration.recording.catalog_support import RedisDatabase
from tests.integration.recording.support import SEGMENT_S, RecordingWorld

RecordingAppFactory = Callable[..., Awaitable[RecordingWorld]]


@pytest.fixture
def recording_app(aiohttp_client: Any, tmp_path: Path) -> RecordingAppFactory:
    async def make(data_dir: Path | None = None, **changes: Any) -> RecordingWorld:
        settings = Settings(
            data_dir=data_dir or tmp_path / "var",
            secret_key=SECRET,
            ice_servers=(),
            ice_host_addresses=LOOPBACK,
            segment_duration_s=SEGMENT_S,
            **changes,
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await catalog.migrate_async(settings.effective_database_url)
        app = create_app(settings)
        client = await aiohttp_client(app)
        return RecordingWorld(client, app, settings, app[OBJECTS])

    return make


@pytest.fixture
async def robots() -> AsyncIterator[list[Robot]]:
    """Register every robot here; they are all closed after the test."""
    created: list[Robot] = []
    yield created
    for robot in created:
        await robot.close()


async def _pg_execute(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# Both sync (run outside the test's event loop), so that a parametrized test can ask for them by name.
@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards); seed it with `seed_demo`."""
    admin = service_env("TEST_POSTGRES_URL")
    name = f"lectern_faults_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield str(URL(admin).with_path(f"/{name}"))
    finally:
        asyncio.run(_pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_database() -> Iterator[RedisDatabase]:
    """One of the test Redis's numbered databases, emptied before and after the test (the server's
    streams use fixed key names)."""
    base = URL(service_env("TEST_REDIS_URL"))
    assert base.host is not None
    assert base.port is not None
    database = RedisDatabase(base.host, base.port, random.randint(1, 15))
    admin = redis.Redis.from_url(database.url())
    admin.flushdb()
    try:
        yield database
    finally:
        admin.flushdb()
        admin.close()
