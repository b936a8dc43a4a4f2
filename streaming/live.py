"""Wires the live path into an app: the Rooms registry (in a cleanup context), WHIP/WHEP routes, and
the link between rooms and the room channel (a room that ends is announced; an expert's "end" ends it;
a demoted speaker's stage publication ends).

Call `setup(app)` after the bus's (and the outbox's) cleanup context and `channel.setup(app)`: rooms
publish session events through the outbox and announce endings through the channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from infra.appkeys import SETTINGS, event_sink
from streaming import channel, recording, signaling
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

    async def demoted(session_id: int, person_id: int) -> None:
        await app[ROOMS].drop_speaker(session_id, person_id)  # frees the stage seat

    # Set before the app starts: app keys are frozen afterwards.
    app[channel.ON_END_REQUEST] = end_requested
    app[channel.ON_DEMOTE] = demoted


def _rooms_context(
    grace_s: float, keyframe_interval_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def rooms(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        config = RoomConfig(
            ice_servers=tuple(settings.ice_servers),
            turn_secret=settings.turn_secret,
            turn_credential_ttl_s=settings.turn_credential_ttl_s,
            ice_host_addresses=tuple(settings.ice_host_addresses),
            seat_limit=settings.room_seat_limit,
            grace_s=grace_s,
            keyframe_interval_s=keyframe_interval_s,
        )

        recordings = app.get(recording.RECORDINGS)

        async def announce(session_id: int, reason: str) -> None:
            if recordings is not None:
                await recordings.room_ended(session_id)
            if channel.CHANNELS in app:
                await channel.announce_session_ended(app, session_id, reason)

        registry = Rooms(
            config,
            event_sink(app),
            on_ended=announce,
            on_started=recordings.room_started if recordings is not None else None,
            hls_url=recordings.live_playlist_url if recordings is not None else None,
        )
        if recordings is not None:
            recordings.bind(registry.room)
        app[ROOMS] = registry
        yield
        await registry.close()

    return rooms
