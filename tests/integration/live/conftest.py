"""Live-path fixtures: an app with WHIP/WHEP over loopback; client peers closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.settings import Settings
from streaming import live
from tests.integration.live.peers import LOOPBACK, SECRET, LiveServer, LiveServerFactory, Robot, WatchingPeer


@pytest.fixture
def live_server(aiohttp_client: Any) -> LiveServerFactory:
    async def make(seat_limit: int = 5, grace_s: float = 10.0) -> LiveServer:
        app = web.Application(middlewares=[error_middleware])
        app[SETTINGS] = Settings(
            secret_key=SECRET, ice_servers=(), ice_host_addresses=LOOPBACK, room_seat_limit=seat_limit
        )
        bus = MemoryBus(retention=1000)
        app[BUS] = bus
        app[READINESS] = {}
        live.setup(app, grace_s=grace_s)
        client = await aiohttp_client(app)
        return LiveServer(client, app, bus)

    return make


@pytest.fixture
async def peers() -> AsyncIterator[list[Robot | WatchingPeer]]:
    """Register every client peer here; they are all closed after the test."""
    created: list[Robot | WatchingPeer] = []
    yield created
    for peer in created:
        await peer.close()
