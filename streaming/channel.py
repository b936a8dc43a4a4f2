"""The room channel, `GET /ws/sessions/{id}?token=…`: one WebSocket per participant carrying the JSON
messages of docs/channel.md. A transport over `streaming.channel_state`: it authenticates (the token, then
whether it still admits its holder: not after the session ended, nor after a withdrawal), keeps each
person to a few sockets per room, rate-limits every frame, fans messages out through a bounded queue per
socket, publishes events, runs presence-check deadline timers, and passes on what the live room publishes
(`announce_media`).

The live-room code and the channel talk one way each: the channel asks through the optional hooks below
(app keys the live code sets), the live code tells through `announce_media` and `announce_session_ended`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from infra import events
from infra.appkeys import BUS, SETTINGS, event_sink
from infra.bus import BusUnavailable
from infra.errors import Conflict, Forbidden, Invalid
from infra.events import PresenceCheckIssued
from infra.tasks import OwnedTasks
from infra.tokens import Claims, sign, verify
from streaming.admission import admit
from streaming.channel_state import (
    CLOSE_REPLACED,
    CLOSE_REVOKED,
    CLOSE_SESSION_ENDED,
    CLOSE_TOO_SLOW,
    ChannelError,
    CheckId,
    ConnId,
    Effect,
    EndStage,
    GrantSpeaker,
    Limits,
    Message,
    Participant,
    Publish,
    RequestEnd,
    RoomState,
    Send,
    StartTimer,
    TokenBucket,
    WatchAttention,
    parse_command,
    participant_from_claims,
)
from streaming.room_media import MediaState

log = logging.getLogger(__name__)

EndRequestHook = Callable[[int], Awaitable[None]]
# Optional: called with the session id when its expert sends {"type": "end_session"}. The live-room code
# sets it; it decides whether and how the session ends (and then calls announce_session_ended).
ON_END_REQUEST: web.AppKey[EndRequestHook] = web.AppKey("channel_on_end_request")
DemoteHook = Callable[[int, int], Awaitable[None]]
# Optional: called with (session id, person id) when the expert demotes a speaker. The live-room code
# sets it to end that person's stage publication; without it only their page stops (on "demoted").
ON_DEMOTE: web.AppKey[DemoteHook] = web.AppKey("channel_on_demote")
MediaHook = Callable[[int], MediaState]
# Optional: what the session's live room publishes now, asked when a room's first connection arrives
# (changes later come through announce_media). Without it a room starts as "waiting".
MEDIA_STATE: web.AppKey[MediaHook] = web.AppKey("channel_media_state")
# Optional: the heartbeat period live pages use and whose double closes attention (R16), asked when a
# room opens; the composition root sets it to the catalog's credit policy. Without it: Limits' default.
HeartbeatPeriodHook = Callable[[], Awaitable[float]]
HEARTBEAT_PERIOD: web.AppKey[HeartbeatPeriodHook] = web.AppKey("channel_heartbeat_period")

CLOSE_TIMEOUT_S = 5.0  # how long a closing socket waits for the peer's close frame
HEARTBEAT_S = 30.0  # pings find dead peers (and peers that stopped reading)


class SessionOver(Conflict):
    """The session ended (here, or as the catalog says): its room is closed."""

    code = "session_ended"


def _dumps(message: Message) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class _CloseSocket:
    code: int
    reason: str


class _Connection:
    """One socket: who it is, its rate limit, and its outbox, drained by its own writer task.

    A reader task receives; the writer alone sends and closes. To close it first stops the reader, so
    that aiohttp's `close()` runs with no `receive()` pending and waits for the peer's close frame:
    closing while another task receives drops the TCP connection at once, and a peer whose close
    reply then meets a reset may lose the last messages (seen on loopback with Node's WebSocket).
    """

    def __init__(
        self, conn_id: ConnId, who: Participant, ws: web.WebSocketResponse, limits: Limits, now: float
    ) -> None:
        self.id = conn_id
        self.who = who
        self.ws = ws
        self.bucket = TokenBucket(limits.rate_per_s, limits.burst, now)
        self.outbox: asyncio.Queue[str | _CloseSocket] = asyncio.Queue(maxsize=limits.send_queue)
        self.closing = False
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.attention_timer: asyncio.Task[None] | None = None
        self.attention_due_at = 0.0  # when attention_timer fires
        self.leave_reason = "closed"  # "superseded" once a newer socket of the person replaced it

    def send(self, text: str) -> None:
        """Queue a message; a peer that lets `send_queue` messages pile up is disconnected instead."""
        if self.closing:
            return
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("conn=%s person=%s too slow, disconnecting", self.id, self.who.person_id)
            self.close(CLOSE_TOO_SLOW, "too slow")

    def close(self, code: int, reason: str, final: str | None = None) -> None:
        """Send `final` (if any) after what is queued, then close; dropping the backlog if it is full."""
        if self.closing:
            return
        self.closing = True
        if self.outbox.qsize() > self.outbox.maxsize - 2:
            while not self.outbox.empty():
                self.outbox.get_nowait()
        if final is not None:
            self.outbox.put_nowait(final)
        self.outbox.put_nowait(_CloseSocket(code, reason))

    async def write(self) -> None:
        try:
            while True:
                item = await self.outbox.get()
                if isinstance(item, _CloseSocket):
                    if self.reader is not None and not self.reader.done():
                        self.reader.cancel()
                        await asyncio.wait({self.reader})
                    await self.ws.close(code=item.code, message=item.reason.encode())
                    return
                await self.ws.send_str(item)
        except ConnectionError:
            return  # the peer went away; the reader sees it too and cleans up


@dataclass
class _Room:
    state: RoomState
    conns: dict[ConnId, _Connection]
    timers: dict[CheckId, asyncio.Task[None]]


class Channels:
    """Every room channel of this process. Owns the sockets' rooms and every background task."""

    def __init__(self, app: web.Application, clock: Callable[[], float], limits: Limits) -> None:
        self._app = app
        self._secret_key = app[SETTINGS].secret_key
        self._clock = clock
        self.limits = limits
        self._rooms: dict[int, _Room] = {}
        self._tasks = OwnedTasks(log, "channel")
        self._next_conn = 0

    # -- the public surface ------------------------------------------------------------------------

    async def authenticate(self, token: str, session_id: int) -> Participant:
        """The participant a room token admits to this session: Unauthenticated or Forbidden for the token
        itself; SessionOver once the session ended in this process (MEDIA_STATE says so); and whatever
        the ADMISSION hook raises (the catalog: a withdrawal since the token, an ended session, …)."""
        claims = verify(self._secret_key, "room", token, self._clock())
        if claims.subject != f"session:{session_id}":
            raise Forbidden("this token is for another session")
        try:
            who = participant_from_claims(claims.person_id, claims.role, claims.extra, self.limits)
        except ChannelError as exc:
            raise Forbidden(exc.message) from None
        media_of = self._app.get(MEDIA_STATE)
        if media_of is not None and media_of(session_id).status == "ended":
            raise SessionOver("this session has ended; its room is closed", field="session_id")
        await admit(self._app, "room", session_id, claims)
        return who

    def room_state(self, session_id: int) -> RoomState | None:
        room = self._rooms.get(session_id)
        return None if room is None else room.state

    async def serve(self, session_id: int, who: Participant, ws: web.WebSocketResponse) -> None:
        """Run one prepared socket until it closes (the peer left, or the server closed it)."""
        self._next_conn += 1
        conn = _Connection(ConnId(self._next_conn), who, ws, self.limits, self._clock())
        room = self._rooms.get(session_id)
        if room is None:
            media_of = self._app.get(MEDIA_STATE)
            media = media_of(session_id) if media_of is not None else None
            limits = self.limits
            period_of = self._app.get(HEARTBEAT_PERIOD)
            if period_of is not None:  # the credit policy in force when the room opens (R16)
                limits = dataclasses.replace(limits, heartbeat_period_s=await period_of())
            room = self._rooms.get(session_id)  # another socket may have opened it meanwhile
            if room is None:
                room = self._rooms[session_id] = _Room(RoomState(session_id, limits, media=media), {}, {})
        log.info("session=%s conn=%s person=%s role=%s joined", session_id, conn.id, who.person_id, who.role)
        for old in room.state.surplus(who.person_id):
            # The newest socket is the one the person is looking at; the oldest is a forgotten tab.
            log.info(
                "session=%s conn=%s person=%s: closing the oldest socket", session_id, old, who.person_id
            )
            room.conns[old].leave_reason = "superseded"
            room.conns[old].close(CLOSE_REPLACED, "opened elsewhere")
        room.conns[conn.id] = conn
        self._send(room, room.state.join(conn.id, who, self._clock()))
        conn.writer = self._tasks.spawn(conn.write(), f"channel-writer-{conn.id}")
        conn.reader = self._tasks.spawn(self._read(room, conn), f"channel-reader-{conn.id}")
        try:
            await asyncio.wait({conn.reader, conn.writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._leave(session_id, room, conn)

    async def _read(self, room: _Room, conn: _Connection) -> None:
        async for msg in conn.ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            # Every data frame spends from the bucket, whatever it holds: a flood of binary (or bad)
            # frames is limited like a flood of chat.
            if not conn.bucket.take(self._clock()):
                conn.send(_dumps(ChannelError("rate_limited", "too many messages; slow down").to_wire()))
            elif msg.type is WSMsgType.TEXT:
                await self._on_text(room, conn, msg.data)
            else:
                conn.send(_dumps(ChannelError("invalid_message", "send JSON text frames").to_wire()))

    def announce_media(self, media: MediaState) -> None:
        """The live room's publications changed: tell its room, if anyone is in it (a room that opens later
        asks the MEDIA_STATE hook)."""
        room = self._rooms.get(media.session_id)
        if room is not None:
            self._send(room, room.state.set_media(media))

    async def announce_session_ended(self, session_id: int, reason: str) -> None:
        """Tell everyone in the room the session is over, close their sockets and wait (bounded) for it."""
        room = self._rooms.get(session_id)
        if room is None:
            return
        log.info("session=%s ended reason=%s: closing %s sockets", session_id, reason, len(room.conns))
        final = _dumps({"type": "session_ended", "reason": reason})
        for conn in room.conns.values():
            conn.close(CLOSE_SESSION_ENDED, "session ended", final)
        await self._await_writers(list(room.conns.values()))

    async def expel(self, session_id: int, person_id: int, reason: str) -> int:
        """`person_id` may no longer be in the session's room (`reason`: "withdrawn"): off the stage and
        out of the hand queue, their sockets closed (CLOSE_REVOKED); returns once they are closed
        (bounded). How many sockets were closed."""
        room = self._rooms.get(session_id)
        if room is None:
            return 0
        conns = [c for c in room.conns.values() if c.who.person_id == person_id]
        log.info(
            "session=%s person=%s expelled (%s): closing %s sockets",
            session_id,
            person_id,
            reason,
            len(conns),
        )
        await self._carry_out(room, room.state.expel(person_id))
        for conn in conns:
            conn.close(CLOSE_REVOKED, reason)
        await self._await_writers(conns)
        return len(conns)

    async def close_sockets(self) -> None:
        """Server shutdown: close every socket (1001) so that no handler keeps the server waiting."""
        conns = [c for room in self._rooms.values() for c in room.conns.values()]
        for conn in conns:
            conn.close(WSCloseCode.GOING_AWAY, "server shutdown")
        await self._await_writers(conns)

    async def close(self) -> None:
        """Cancel and await every background task (deadline timers, end-request hooks)."""
        await self._tasks.cancel()

    # -- internals ---------------------------------------------------------------------------------

    async def _on_text(self, room: _Room, conn: _Connection, raw: str) -> None:
        try:
            command = parse_command(raw, self.limits)
            try:
                effects = room.state.handle(conn.id, command, self._clock())
            except ChannelError as exc:
                exc.in_reply_to = command.wire
                raise
            try:
                await self._carry_out(room, effects)
            except BusUnavailable:
                log.exception("session=%s conn=%s event bus refused an event", room.state.session_id, conn.id)
                for effect in effects:
                    if isinstance(effect, Publish) and isinstance(effect.event, PresenceCheckIssued):
                        room.state.withdraw_check(effect.event.check_id)
                raise ChannelError(
                    "unavailable", "the server could not record this; try again", in_reply_to=command.wire
                ) from None
        except ChannelError as exc:
            conn.send(_dumps(exc.to_wire()))

    async def _carry_out(self, room: _Room, effects: list[Effect]) -> None:
        """Do what the domain asked, in its order (publications first: see RoomState.handle)."""
        for effect in effects:
            match effect:
                case Publish(event):
                    # Through the outbox (on disk until the bus takes it), like every live-path event;
                    # BusUnavailable only when the outbox is full, or with no outbox and the bus down.
                    await events.publish(event_sink(self._app) or self._app[BUS], event)
                case StartTimer(check_id, deadline_at):
                    room.timers[check_id] = self._tasks.spawn(
                        self._deadline(room, check_id, deadline_at), f"presence-deadline-{check_id}"
                    )
                case WatchAttention(conn_id, due_at):
                    conn = room.conns.get(conn_id)
                    if conn is not None:
                        timer = conn.attention_timer
                        if timer is not None and not timer.done() and conn.attention_due_at <= due_at:
                            # Every heartbeat moves the bound on: the armed timer fires first and
                            # re-arms itself to the later bound (RoomState.attention_due): one task
                            # per gap, not one per heartbeat.
                            continue
                        if timer is not None:
                            timer.cancel()
                        conn.attention_due_at = due_at
                        conn.attention_timer = self._tasks.spawn(
                            self._attention_due(room, conn_id, due_at), f"attention-{conn_id}"
                        )
                case RequestEnd():
                    hook = self._app.get(ON_END_REQUEST)
                    if hook is None:
                        raise ChannelError(
                            "unavailable",
                            "ending the session is not available here",
                            in_reply_to="end_session",
                        )
                    self._tasks.spawn(self._request_end(hook, room.state.session_id), "channel-end-request")
                case EndStage(person_id):
                    demoted = self._app.get(ON_DEMOTE)
                    if demoted is not None:
                        self._tasks.spawn(
                            self._end_stage(demoted, room.state.session_id, person_id), "channel-end-stage"
                        )
                case _:
                    self._send(room, [effect])

    def _deliver(self, room: _Room, conn_ids: list[ConnId], text: str) -> None:
        for conn_id in conn_ids:
            conn = room.conns.get(conn_id)
            if conn is not None:
                conn.send(text)

    def _send(self, room: _Room, effects: list[Effect]) -> None:
        """Carry out effects that only send (joining, leaving, closing a check): no await in between."""
        for effect in effects:
            match effect:
                case Send(to, message):
                    self._deliver(room, room.state.resolve(to), _dumps(message))
                case GrantSpeaker(to, person_id):
                    self._deliver(room, room.state.resolve(to), self._promoted(room, person_id))
                case _:
                    raise TypeError(f"not a sending effect: {effect!r}")  # a programming error

    def _promoted(self, room: _Room, person_id: int) -> str:
        session_id = room.state.session_id
        now = self._clock()
        expires_at = now + self.limits.speaker_token_ttl_s
        # granted_at: a demotion after this moment voids the token (streaming.rooms checks it).
        claims = Claims(person_id, f"session:{session_id}", "speaker", expires_at, {"granted_at": now})
        whip_token = sign(self._secret_key, "whip", claims)
        return _dumps(
            {"type": "promoted", "whip_token": whip_token, "whip_url": f"/whip/sessions/{session_id}"}
        )

    async def _deadline(self, room: _Room, check_id: CheckId, deadline_at: float) -> None:
        await asyncio.sleep(max(0.0, deadline_at - self._clock()))
        room.timers.pop(check_id, None)
        # The loop's monotonic clock measured the window; a wall clock that stepped meanwhile must not
        # keep the check open, so the close happens "at" the deadline at the earliest.
        self._send(room, room.state.close_check(check_id, max(self._clock(), deadline_at)))

    async def _attention_due(self, room: _Room, conn_id: ConnId, due_at: float) -> None:
        """The heartbeat-gap timer of one learner connection (re-armed by every heartbeat)."""
        await asyncio.sleep(max(0.0, due_at - self._clock()))
        conn = room.conns.get(conn_id)
        if conn is not None:
            conn.attention_timer = None  # so that re-arming from here does not cancel this task
        effects = room.state.attention_due(conn_id, max(self._clock(), due_at))
        await self._publish_attention(room, effects)

    async def _publish_attention(self, room: _Room, effects: list[Effect]) -> None:
        """Carry out attention effects outside a client's message (a timer, a socket that closed)."""
        try:
            await self._carry_out(room, effects)
        except BusUnavailable:
            log.exception("session=%s event bus refused an attention change", room.state.session_id)

    async def _request_end(self, hook: EndRequestHook, session_id: int) -> None:
        log.info("session=%s expert asked to end the session", session_id)
        await hook(session_id)

    async def _end_stage(self, hook: DemoteHook, session_id: int, person_id: int) -> None:
        log.info("session=%s person=%s demoted: ending their stage publication", session_id, person_id)
        await hook(session_id, person_id)

    async def _leave(self, session_id: int, room: _Room, conn: _Connection) -> None:
        # Bookkeeping first and without awaiting: aiohttp may cancel this handler once the peer is gone.
        room.conns.pop(conn.id, None)
        if conn.attention_timer is not None:
            conn.attention_timer.cancel()
        effects = room.state.leave(conn.id, self._clock(), reason=conn.leave_reason)
        self._send(room, [e for e in effects if not isinstance(e, Publish)])
        ended: list[Effect] = [e for e in effects if isinstance(e, Publish)]
        if ended:  # in an owned task: aiohttp may cancel this handler, the event must still go out
            self._tasks.spawn(self._publish_attention(room, ended), f"attention-closed-{conn.id}")
        timers: list[asyncio.Task[None]] = []
        if room.state.empty and self._rooms.get(session_id) is room:
            del self._rooms[session_id]
            timers = list(room.timers.values())
            for timer in timers:
                timer.cancel()
        log.info("session=%s conn=%s person=%s left", session_id, conn.id, conn.who.person_id)
        conn.close(WSCloseCode.OK, "")  # lets the writer flush what is queued and close politely
        await self._await_writers([conn])
        await asyncio.gather(*timers, return_exceptions=True)

    async def _await_writers(self, conns: list[_Connection]) -> None:
        writers = [c.writer for c in conns if c.writer is not None and not c.writer.done()]
        if not writers:
            return
        _, late = await asyncio.wait(writers, timeout=CLOSE_TIMEOUT_S + 1.0)
        for writer in late:
            writer.cancel()
        await asyncio.gather(*late, return_exceptions=True)


CHANNELS = web.AppKey("channels", Channels)


async def room_channel(request: web.Request) -> web.StreamResponse:
    """Authenticate from the query (browsers cannot set headers on WebSockets), then upgrade."""
    channels = request.app[CHANNELS]
    session_id = int(request.match_info["session_id"])
    who = await channels.authenticate(request.query.get("token", ""), session_id)
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_S, max_msg_size=channels.limits.max_frame_bytes, timeout=CLOSE_TIMEOUT_S
    )
    if not ws.can_prepare(request).ok:
        raise Invalid("this endpoint speaks WebSocket only", field="Upgrade")
    await ws.prepare(request)
    await channels.serve(session_id, who, ws)
    return ws


def announce_media(app: web.Application, media: MediaState) -> None:
    """Send {"type": "media", ...} to everyone in the session's room when what it publishes changed."""
    app[CHANNELS].announce_media(media)


async def announce_session_ended(app: web.Application, session_id: int, reason: str) -> None:
    """Send {"type": "session_ended", reason} to everyone in the session's room and close their sockets."""
    await app[CHANNELS].announce_session_ended(session_id, reason)


async def expel(app: web.Application, session_id: int, person_id: int, reason: str) -> int:
    """Close `person_id`'s sockets in the session's room (4003) and take them off its stage: a learner
    who withdrew. How many sockets were closed."""
    return await app[CHANNELS].expel(session_id, person_id, reason)


def setup(
    app: web.Application, *, clock: Callable[[], float] = time.time, limits: Limits | None = None
) -> None:
    """Add the room channel route, its registry (a cleanup context) and closing sockets on shutdown."""
    chosen = limits or Limits()

    async def channels(app: web.Application) -> AsyncIterator[None]:
        registry = Channels(app, clock, chosen)
        app[CHANNELS] = registry
        yield
        await registry.close()

    async def close_sockets(app: web.Application) -> None:
        # on_shutdown runs before the server waits for handlers; cleanup contexts exit only after.
        await app[CHANNELS].close_sockets()

    app.cleanup_ctx.append(channels)
    app.on_shutdown.append(close_sockets)
    app.router.add_get(r"/ws/sessions/{session_id:\d+}", room_channel)
