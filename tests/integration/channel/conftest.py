"""Room-channel fixtures: `channel_server()` builds the channel alone on an aiohttp test server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.settings import Settings
from streaming import channel
from streaming.channel_state import Limits
from tests.integration.channel.support import SECRET, ChannelServer, FakeClock, ServerFactory


@pytest.fixture
def channel_server(aiohttp_client: Any) -> ServerFactory:
    """Make the server: `await channel_server()` (fake clock) or `(clock=RealClock(), limits=...)`."""

    async def make(
        clock: Callable[[], float] | None = None,
        limits: Limits | None = None,
        on_end_request: channel.EndRequestHook | None = None,
    ) -> ChannelServer:
        the_clock = clock or FakeClock()
        app = web.Application(middlewares=[error_middleware])
        app[SETTINGS] = Settings(secret_key=SECRET)
        bus = MemoryBus(retention=1000)
        app[BUS] = bus
        app[READINESS] = {}
        if on_end_request is not None:
            app[channel.ON_END_REQUEST] = on_end_request
        channel.setup(app, clock=the_clock, limits=limits)
        client = await aiohttp_client(app)
        return ChannelServer(client, app, bus, the_clock)

    return make
