"""Wires the live path into an app: the Rooms registry (in a cleanup context), WHIP/WHEP routes, and the
link between rooms, recordings and the room channel.

One mechanism each way. What happens in the rooms reaches the rest through one `RoomHooks` object
(`_LiveHooks` below): a room's first media starts its recording, a room's end finishes the recording and
is announced in the channel, and every change in what a room publishes is sent to the channel as a
"media" message. What the channel needs from the rooms goes through its app-key hooks, set here: an
expert's "end" ends the room, a demotion ends the speaker's stage publication, and a room that opens
asks what is being published.

And one link to the catalog, `use_catalog(app)`: every WHIP, WHEP and room-channel connection asks the
catalog whether its token still admits its holder (`streaming.admission`), and a learner's withdrawal
closes their viewers and room sockets in the course's live rooms (the catalog's ON_WITHDRAWN hook).

Call `setup(app)` after the bus's and the outbox's cleanup contexts, `channel.setup(app)` and
`recording.setup(app)` (rooms publish their events through the outbox); then `use_catalog(app)` when the
app serves the catalog too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from aiohttp import web

import catalog
from infra.appkeys import SETTINGS, event_sink
from streaming import channel, recording, signaling
from streaming.admission import ADMISSION, HLS_ADMISSION, Admission
from streaming.room_media import MediaState
from streaming.rooms import RoomConfig, Rooms

log = logging.getLogger(__name__)

ROOMS = signaling.ROOMS


def setup(
    app: web.Application,
    *,
    grace_s: float | None = None,
    keyframe_interval_s: float = 0.5,
    stall_s: float = RoomConfig.stall_s,
    delivery_stall_s: float = RoomConfig.delivery_stall_s,
) -> None:
    """Add the WHIP/WHEP routes and a cleanup context that owns the rooms (ended on shutdown).
    `grace_s` overrides the setting LECTERN_PUBLISHER_GRACE_S; `stall_s` is how long the expert's media
    may stop before learners are told the expert is lost, `delivery_stall_s` how long a learner's viewer
    may stop acknowledging media before its delivery interval closes (tests shorten them)."""
    app.cleanup_ctx.append(_rooms_context(grace_s, keyframe_interval_s, stall_s, delivery_stall_s))
    signaling.add_routes(app)

    async def end_requested(session_id: int) -> None:
        rooms = app[ROOMS]
        if rooms.room(session_id) is not None:
            await rooms.end(session_id, reason="ended_by_expert")  # announced through the hooks
        else:
            await channel.announce_session_ended(app, session_id, "ended_by_expert")

    async def demoted(session_id: int, person_id: int) -> None:
        await app[ROOMS].drop_speaker(session_id, person_id)  # frees the stage seat

    def media_state(session_id: int) -> MediaState:
        return app[ROOMS].media(session_id)

    # Set before the app starts: app keys are frozen afterwards.
    app[channel.ON_END_REQUEST] = end_requested
    app[channel.ON_DEMOTE] = demoted
    app[channel.MEDIA_STATE] = media_state


def use_catalog(app: web.Application) -> None:
    """Bind the live path to the catalog (the app's DATABASE, set by `catalog.setup`): tokens are checked
    against it when used, and withdrawals close what the learner has open. Set before the app starts."""

    async def admission(used: Admission) -> None:
        grant = catalog.MediaGrant(
            purpose=catalog.MediaPurpose(used.purpose),
            session_id=used.session_id,
            person_id=used.person_id,
            role=used.role,
            issued_at=datetime.fromtimestamp(used.issued_at, UTC),
        )
        await catalog.check_grant(app[catalog.DATABASE], grant, datetime.now(UTC))

    async def hls_admission(used: Admission) -> None:
        grant = catalog.MediaGrant(
            purpose=catalog.MediaPurpose.WHEP,  # watching; check_media_grant applies no window rule
            session_id=used.session_id,
            person_id=used.person_id,
            role=used.role,
            issued_at=datetime.fromtimestamp(used.issued_at, UTC),
        )
        await catalog.check_media_grant(app[catalog.DATABASE], grant)

    async def heartbeat_period() -> float:
        return await catalog.heartbeat_period_s(app[catalog.DATABASE])

    async def withdrawn(person_id: int, session_ids: Sequence[int]) -> None:
        # In this process: with one live node (today) that is every live room. Connections elsewhere
        # would be refused at their next connect by the admission check.
        for session_id in session_ids:
            dropped = await app[ROOMS].drop_person(session_id, person_id, reason="withdrawn")
            closed = (
                await channel.expel(app, session_id, person_id, "withdrawn") if channel.CHANNELS in app else 0
            )
            if dropped or closed:
                log.info(
                    "session=%s person=%s withdrew: %s media and %s channel connections closed",
                    session_id,
                    person_id,
                    dropped,
                    closed,
                )

    app[ADMISSION] = admission
    app[HLS_ADMISSION] = hls_admission
    app[channel.HEARTBEAT_PERIOD] = heartbeat_period
    app[catalog.ON_WITHDRAWN] = withdrawn


class _LiveHooks:
    """The rooms' `RoomHooks`: recordings (when the app records) and the room channel (when it has one)."""

    def __init__(self, app: web.Application, recordings: recording.RecordingManager | None) -> None:
        self._app = app
        self._recordings = recordings

    async def room_started(self, session_id: int) -> None:
        if self._recordings is not None:
            await self._recordings.room_started(session_id)

    async def room_ended(self, session_id: int, reason: str) -> None:
        if self._recordings is not None:
            await self._recordings.room_ended(session_id)
        if channel.CHANNELS in self._app:
            await channel.announce_session_ended(self._app, session_id, reason)

    def media_changed(self, media: MediaState) -> None:
        if channel.CHANNELS in self._app:
            channel.announce_media(self._app, media)

    def live_playlist_url(self, session_id: int) -> str | None:
        return self._recordings.live_playlist_url(session_id) if self._recordings is not None else None


def _rooms_context(
    grace_s: float | None, keyframe_interval_s: float, stall_s: float, delivery_stall_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def rooms(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        config = RoomConfig(
            ice_servers=tuple(settings.ice_servers),
            turn_secret=settings.turn_secret,
            turn_credential_ttl_s=settings.turn_credential_ttl_s,
            ice_host_addresses=tuple(settings.ice_host_addresses),
            seat_limit=settings.room_seat_limit,
            grace_s=settings.publisher_grace_s if grace_s is None else grace_s,
            keyframe_interval_s=keyframe_interval_s,
            stall_s=stall_s,
            delivery_stall_s=delivery_stall_s,
        )
        recordings = app.get(recording.RECORDINGS)
        registry = Rooms(config, event_sink(app), hooks=_LiveHooks(app, recordings))
        if recordings is not None:
            recordings.bind(registry.room)
        app[ROOMS] = registry
        yield
        await registry.close()

    return rooms
