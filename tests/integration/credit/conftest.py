"""The whole app (create_app: catalog with its evidence consumer and credit settler, live rooms, room
channel, recorder) on the test's data dir, over loopback, with a seeded world; aiortc peers restricted to
127.0.0.1 and closed after each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import catalog
from catalog import accounts
from infra.settings import Settings
from streaming.app import create_app
from tests.integration.catalog.conftest import PASSWORD, seed_world
from tests.integration.credit.fraud_support import Lectern
from tests.integration.live.peers import LOOPBACK, SECRET


@pytest.fixture(scope="module")
def password_hash() -> str:
    return asyncio.run(accounts.hash_password(PASSWORD))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "seat_limit(n): the live rooms' interactive seats (default 50)")


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    seats = request.node.get_closest_marker("seat_limit")
    return Settings(
        room_seat_limit=50 if seats is None else int(seats.args[0]),
        data_dir=tmp_path / "var",
        secret_key=SECRET,
        ice_servers=(),
        ice_host_addresses=LOOPBACK,
        segment_duration_s=1.0,
        credit_settle_every_s=0.5,  # the settler's round: credit shows up within a second of being due
    )


@pytest.fixture
async def lectern(aiohttp_client: Any, settings: Settings, password_hash: str) -> Lectern:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await catalog.migrate_async(settings.effective_database_url)
    client = await aiohttp_client(create_app(settings))
    world = await seed_world(client.app[catalog.DATABASE], password_hash)
    return Lectern(client, world)


@pytest.fixture
async def peers() -> AsyncIterator[list[Any]]:
    """Register every aiortc peer (robots, viewers) here; they are all closed after the test."""
    created: list[Any] = []
    yield created
    for peer in created:
        await peer.close()
