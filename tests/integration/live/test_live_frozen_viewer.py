"""A viewer whose browser freezes (it stops answering the server's ICE consent checks) is dropped by the
server, and the drop is logged where an operator sees it; the other viewers keep receiving."""

from __future__ import annotations

import logging
from typing import Any

import aioice.ice
import pytest

from tests.helpers import wait_until
from tests.integration.live.peers import LiveServerFactory, Robot, WatchingPeer, token

SESSION = 8


def freeze(viewer: WatchingPeer) -> None:
    """Make the viewer's ICE agent ignore every request it receives, as a frozen tab does (test-only use
    of aiortc/aioice internals: the transport's aioice Connection)."""
    transport = viewer.pc.getTransceivers()[0].receiver.transport.transport
    connection = transport._connection  # aioice.Connection
    connection.request_received = lambda *_args: None


async def test_a_frozen_viewer_is_dropped_and_the_drop_is_logged(
    live_server: LiveServerFactory,
    peers: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # RFC 7675 consent checks every ~5 s, 6 missed answers: shortened here so the test takes seconds.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.3)
    caplog.set_level(logging.INFO, logger="streaming.rooms")
    server = await live_server()
    robot = Robot()
    peers.append(robot)
    await robot.publish(server.client, SESSION, token("whip", SESSION, "expert", person_id=1))
    frozen, watching = WatchingPeer(), WatchingPeer()
    peers.extend([frozen, watching])
    await frozen.watch(server.client, SESSION, token("whep", SESSION, "learner", person_id=100))
    await watching.watch(server.client, SESSION, token("whep", SESSION, "learner", person_id=101))
    await wait_until(lambda: frozen.count() > 10 and watching.count() > 10, timeout_s=15, message="video")

    freeze(frozen)
    room = server.rooms.room(SESSION)
    assert room is not None
    await wait_until(lambda: len(room.viewers) == 1, timeout_s=20, message="the frozen viewer dropped")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("person=100 connection" in w and "without a WHEP DELETE: dropped" in w for w in warnings), (
        warnings
    )
    before = watching.count()
    await wait_until(
        lambda: watching.count() > before + 15, timeout_s=5, message="the other viewer receiving"
    )
