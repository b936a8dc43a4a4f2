"""Room-channel fixtures: `channel_server()` builds the channel alone on an aiohttp test server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from infra.appkeys import BUS, OUTBOX, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.outbox import Outbox, OutboxConfig
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
        bus: MemoryBus | None = None,
        outbox_dir: Path | None = None,
    ) -> ChannelServer:
        the_clock = clock or FakeClock()
        app = web.Application(middlewares=[error_middleware])
        app[SETTINGS] = Settings(secret_key=SECRET)
        bus = bus or MemoryBus(retention=1000)
        app[BUS] = bus
        if outbox_dir is not None:  # as in create_app: the channel's events go through an outbox
            outbox = await Outbox.open(bus, OutboxConfig(outbox_dir, retry_initial_s=0.01, retry_max_s=0.05))
            outbox.start()
            app[OUTBOX] = outbox

            async def close_outbox(_app: web.Application) -> None:
                await outbox.close(timeout_s=0)

            app.on_cleanup.append(close_outbox)
        app[READINESS] = {}
        if on_end_request is not None:
            app[channel.ON_END_REQUEST] = on_end_request
        channel.setup(app, clock=the_clock, limits=limits)
        client = await aiohttp_client(app)
        return ChannelServer(client, app, bus, the_clock)

    return make
