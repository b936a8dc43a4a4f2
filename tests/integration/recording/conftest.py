"""Recording fixtures: `recording_app(**settings)` builds the real app (create_app: SQLite catalog,
in-process bus, local object store unless S3 settings are given) in a temp dir, over loopback, with
aiortc restricted to 127.0.0.1 and no ICE servers; client peers are closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import catalog
from infra.appkeys import OBJECTS
from infra.settings import Settings
from streaming.app import create_app
from tests.integration.live.peers import LOOPBACK, SECRET, Robot
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
