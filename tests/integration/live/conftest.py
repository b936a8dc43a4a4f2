"""Live-path fixtures: an app with WHIP/WHEP over loopback; client peers closed after each test; a real
coturn for TURN."""

from __future__ import annotations

import secrets
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from infra import ice
from infra.appkeys import BUS, READINESS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.http import error_middleware
from infra.ice import IceServer
from infra.settings import Settings
from streaming import live
from tests.helpers import binary, free_port, wait_until_sync
from tests.integration.live.peers import LOOPBACK, SECRET, LiveServer, LiveServerFactory, Robot, WatchingPeer


@pytest.fixture
def live_server(aiohttp_client: Any) -> LiveServerFactory:
    async def make(
        seat_limit: int = 5, grace_s: float = 10.0, ice_servers: tuple[str, ...] = (), turn_secret: str = ""
    ) -> LiveServer:
        app = web.Application(middlewares=[error_middleware])
        app[SETTINGS] = Settings(
            secret_key=SECRET,
            ice_servers=ice_servers,
            turn_secret=turn_secret,
            ice_host_addresses=LOOPBACK,
            room_seat_limit=seat_limit,
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


@dataclass(frozen=True)
class TurnServer:
    url: str
    secret: str

    def credentials(self, user: str, *, secret: str | None = None, ttl_s: int = 600) -> list[IceServer]:
        return ice.ice_servers([self.url], secret or self.secret, user=user, now=time.time(), ttl_s=ttl_s)


def _stun_answers(port: int) -> bool:
    """Whether a STUN binding request to 127.0.0.1:port gets an answer within 0.2 s."""
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + secrets.token_bytes(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(request, ("127.0.0.1", port))
        try:
            return s.recv(2048)[8:20] == request[8:20]  # the transaction id comes back
        except OSError:
            return False


@pytest.fixture
def turn_server(tmp_path: Path) -> Iterator[TurnServer]:
    """A real coturn on loopback with TURN REST credentials (use-auth-secret), as in docker-compose,
    but allowed to relay to loopback peers."""
    program = binary("turnserver")
    port, secret = free_port(), "turn-test-secret"
    relay_base = 40_000 + (port % 200) * 100
    log_file = tmp_path / "turnserver.log"
    argv = [
        program, "-n", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp-relay", "--fingerprint",
        "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
        f"--min-port={relay_base}", f"--max-port={relay_base + 99}",
        "--use-auth-secret", f"--static-auth-secret={secret}", "--realm=lectern.test",
        "--allow-loopback-peers", f"--pidfile={tmp_path / 'turnserver.pid'}",
        f"--userdb={tmp_path / 'turndb'}", f"--log-file={log_file}", "--simple-log",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        up = lambda: process.poll() is not None or _stun_answers(port)  # noqa: E731
        wait_until_sync(up, timeout_s=15, message="coturn answering STUN")
        assert process.poll() is None, f"coturn exited: {log_file.read_text(errors='replace')[-2000:]}"
        yield TurnServer(f"turn:127.0.0.1:{port}?transport=udp", secret)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
