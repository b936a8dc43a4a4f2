"""Wires the live path into an app: the Rooms registry (in a cleanup context), WHIP/WHEP routes, and
the link between rooms and the room channel (a room that ends is announced; an expert's "end" ends it).

Call `setup(app)` after the bus's cleanup context and `channel.setup(app)`: rooms publish session
events on the bus and announce endings through the channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from infra.appkeys import BUS, SETTINGS
from streaming import channel, signaling
from streaming.rooms import RoomConfig, Rooms

ROOMS = signaling.ROOMS


def setup(app: web.Application, *, grace_s: float = 30.0, keyframe_interval_s: float = 0.5) -> None:
    """Add the WHIP/WHEP routes and a cleanup context that owns the rooms (ended on shutdown)."""
    app.cleanup_ctx.append(_rooms_context(grace_s, keyframe_interval_s))
    signaling.add_routes(app)

    async def end_requested(session_id: int) -> None:
        rooms = app[ROOMS]
        if rooms.room(session_id) is not None:
            await rooms.end(session_id, reason="ended_by_expert")  # announces through on_ended
        else:
            await channel.announce_session_ended(app, session_id, "ended_by_expert")

    # Set before the app starts: app keys are frozen afterwards.
    app[channel.ON_END_REQUEST] = end_requested


def _rooms_context(
    grace_s: float, keyframe_interval_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def rooms(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        config = RoomConfig(
            ice_servers=tuple(settings.ice_servers),
            ice_host_addresses=tuple(settings.ice_host_addresses),
            seat_limit=settings.room_seat_limit,
            grace_s=grace_s,
            keyframe_interval_s=keyframe_interval_s,
        )

        async def announce(session_id: int, reason: str) -> None:
            if channel.CHANNELS in app:
                await channel.announce_session_ended(app, session_id, reason)

        registry = Rooms(config, app.get(BUS), on_ended=announce)
        app[ROOMS] = registry
        yield
        await registry.close()

    return rooms
