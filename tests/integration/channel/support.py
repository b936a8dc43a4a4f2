"""Room-channel test support: the channel alone on an aiohttp test server (loopback), a fake wall clock,
room tokens, and WebSocket peers that read messages by type."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from infra.bus_memory import MemoryBus
from infra.tokens import Claims, sign

SECRET = "channel-test-secret"
SESSION = 7
RECEIVE_TIMEOUT_S = 5.0


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RealClock:
    def __call__(self) -> float:
        return time.time()


@dataclass
class Peer:
    """One WebSocket client. `expect` skips messages of other types, keeping them in `seen`."""

    ws: aiohttp.ClientWebSocketResponse
    welcome: dict[str, Any] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=RECEIVE_TIMEOUT_S)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text message, got {msg.type} {msg.data!r}"
        data: dict[str, Any] = json.loads(msg.data)
        self.seen.append(data)
        return data

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The next message of this type (whose fields equal `fields`, if given)."""
        while True:
            data = await self.receive()
            if data["type"] == kind and all(data.get(k) == v for k, v in fields.items()):
                return data

    async def barrier(self) -> list[dict[str, Any]]:
        """Every message queued for this peer before now: the server answers a probe in order, after them."""
        await self.send({"type": "barrier"})
        before: list[dict[str, Any]] = []
        while True:
            data = await self.receive()
            if data["type"] == "error" and data["code"] == "unknown_type" and "barrier" in data["message"]:
                return before
            before.append(data)

    async def ask_for_error(self, message: dict[str, Any] | str) -> dict[str, Any]:
        if isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.send(message)
        return await self.expect("error")


@dataclass
class ChannelServer:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    bus: MemoryBus
    clock: Callable[[], float]

    def token(
        self,
        person_id: int,
        role: str,
        *,
        session_id: int = SESSION,
        name: str | None = None,
        ttl_s: float = 600.0,
        purpose: str = "room",
    ) -> str:
        extra = {} if name is None else {"name": name}
        claims = Claims(person_id, f"session:{session_id}", role, self.clock() + ttl_s, extra)
        return sign(SECRET, purpose, claims)

    def url(self, token: str, session_id: int = SESSION) -> str:
        return f"/ws/sessions/{session_id}?token={token}"

    async def join(
        self, person_id: int, role: str, *, name: str | None = None, session_id: int = SESSION
    ) -> Peer:
        token = self.token(person_id, role, session_id=session_id, name=name or f"p{person_id}")
        ws = await self.client.ws_connect(self.url(token, session_id))
        peer = Peer(ws)
        peer.welcome = await peer.expect("welcome")
        return peer


ServerFactory = Callable[..., Awaitable[ChannelServer]]
