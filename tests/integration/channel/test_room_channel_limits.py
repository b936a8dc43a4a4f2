"""The room channel keeps one person to a few sockets per room (the oldest goes, with 4001) and counts
every frame against the rate limit, binary ones too: opening more sockets or sending bytes instead of
JSON gets no one more than their share. Over real WebSockets on loopback."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from streaming.channel import CHANNELS
from streaming.channel_state import CLOSE_REPLACED, Limits, Person, PersonId
from tests.integration.channel.support import SESSION, ChannelServer, FakeClock, Peer, ServerFactory

ALICE, BOB = 2, 3


@pytest.fixture
async def server(channel_server: ServerFactory) -> ChannelServer:
    return await channel_server()


async def closed_with(peer: Peer) -> int:
    """The close code the server ended this socket with (messages before it are skipped)."""
    while True:
        msg = await peer.ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg


async def test_a_fourth_socket_of_one_person_closes_their_oldest_and_the_three_newest_work(
    server: ChannelServer,
) -> None:
    bob = await server.join(BOB, "learner")
    phone, laptop, tab = [await server.join(ALICE, "learner") for _ in range(3)]
    assert await bob.expect("joined")  # Alice arrived once, not three times
    fourth = await server.join(ALICE, "learner")

    assert await closed_with(phone) == CLOSE_REPLACED
    await fourth.send({"type": "chat", "text": "在新窗口"})
    for peer in (laptop, tab, fourth, bob):
        await peer.expect("chat", text="在新窗口")
    state = server.app[CHANNELS].room_state(SESSION)
    assert state is not None
    assert len(state.resolve(Person(PersonId(ALICE)))) == 3
    # Alice is still one participant to the others: the replaced tab did not make her "leave".
    assert [m["type"] for m in await bob.barrier() if m["type"] in ("joined", "left")] == []


async def test_one_socket_per_person_when_the_cap_is_one(channel_server: ServerFactory) -> None:
    server = await channel_server(limits=Limits(max_sockets_per_person=1))
    first = await server.join(ALICE, "learner")
    second = await server.join(ALICE, "learner")
    assert await closed_with(first) == CLOSE_REPLACED
    await second.send({"type": "chat", "text": "only here"})
    await second.expect("chat", text="only here")


async def replies(peer: Peer, count: int) -> list[dict[str, Any]]:
    """The next `count` chat or error messages (others, like viewer counts, are skipped)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = await peer.receive()
        if message["type"] in ("chat", "error"):
            got.append(message)
    return got


async def test_binary_frames_spend_the_rate_limit_like_text(server: ChannelServer) -> None:
    clock = server.clock
    assert isinstance(clock, FakeClock)  # no refill unless the test moves it
    alice = await server.join(ALICE, "learner")
    for _ in range(20):  # the whole burst, in bytes
        await alice.ws.send_bytes(b"\x00" * 100)
    answers = await replies(alice, 20)
    assert {(m["type"], m["code"]) for m in answers} == {("error", "invalid_message")}

    await alice.send({"type": "chat", "text": "after the bytes"})
    (refused,) = await replies(alice, 1)
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    for _ in range(5):  # more bytes while limited are dropped the same way
        await alice.ws.send_bytes(b"\x01")
    assert {m["code"] for m in await replies(alice, 5)} == {"rate_limited"}

    clock.advance(1)  # 10 frames a second come back
    await alice.send({"type": "chat", "text": "after a second"})
    await alice.expect("chat", text="after a second")
