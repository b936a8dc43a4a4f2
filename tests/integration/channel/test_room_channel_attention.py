"""The room channel's evidence over real WebSockets: a learner page's heartbeats and visibility reports
become attention.changed (a gap of more than two periods closes it, by the channel's own timer), and
presence answers count only with the nonce of the prompt shown to that person (fraud 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra import events
from streaming.channel_state import Limits
from tests.helpers import wait_until
from tests.integration.channel.support import SESSION, ChannelServer, FakeClock, RealClock, ServerFactory

EXPERT, ALICE, BOB = 1, 2, 3
PERIOD_S = 0.25  # short, so that the gap timer runs within the test; waits are on conditions


async def attention_events(server: ChannelServer) -> list[events.AttentionChanged]:
    deliveries = await server.bus.consume(events.ATTENDANCE, "test", "test", count=100)
    found = [events.decode(d) for d in deliveries]
    return [e for e in found if isinstance(e, events.AttentionChanged)]


class Collected:
    """attention.changed events read so far (the bus hands each delivery to the group once)."""

    def __init__(self, server: ChannelServer) -> None:
        self.server = server
        self.seen: list[events.AttentionChanged] = []

    async def read(self) -> list[tuple[int, bool, str]]:
        self.seen += await attention_events(self.server)
        return [(e.person_id, e.visible, e.reason) for e in self.seen]

    async def until(self, predicate: Callable[[list[tuple[int, bool, str]]], bool]) -> None:
        async def check() -> bool:
            return predicate(await self.read())

        await wait_until(check, timeout_s=5, message=lambda: f"attention events: {self.seen}")


async def test_the_welcome_tells_the_page_its_heartbeat_period(channel_server: ServerFactory) -> None:
    server = await channel_server(limits=Limits(heartbeat_period_s=2))
    alice = await server.join(ALICE, "learner")
    assert alice.welcome["heartbeat_period_s"] == 2


async def test_heartbeats_open_attention_and_a_gap_closes_it_until_they_resume(
    channel_server: ServerFactory,
) -> None:
    server = await channel_server(clock=RealClock(), limits=Limits(heartbeat_period_s=PERIOD_S))
    collected = Collected(server)
    alice = await server.join(ALICE, "learner")
    await alice.send({"type": "heartbeat"})
    await collected.until(lambda got: got == [(ALICE, True, "shown")])
    # No more heartbeats: the channel's timer closes it once more than 2 periods passed.
    await collected.until(lambda got: got == [(ALICE, True, "shown"), (ALICE, False, "heartbeat_gap")])
    shown, gap = collected.seen
    assert shown.session_id == SESSION
    assert shown.conn_id == gap.conn_id
    assert (gap.at - shown.at).total_seconds() == pytest.approx(2 * PERIOD_S, abs=0.05)
    await alice.send({"type": "heartbeat"})
    await collected.until(lambda got: got[-1] == (ALICE, True, "shown"))


async def test_each_heartbeat_is_stored_evidence_acknowledged_after_it_is_published(
    channel_server: ServerFactory,
) -> None:
    server = await channel_server()
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    for seq in (1, 2):
        await alice.send({"type": "heartbeat", "seq": seq, "visible": True})
        assert await alice.expect("heartbeat_ack") == {"type": "heartbeat_ack", "seq": seq}
    refused = await alice.ask_for_error({"type": "heartbeat", "seq": 2})  # replayed: not stored twice
    assert (refused["code"], refused["field"], refused["in_reply_to"]) == (
        "invalid_message",
        "seq",
        "heartbeat",
    )
    await expert.send({"type": "heartbeat", "seq": 1})  # not a learner: nothing measured, no ack
    assert not [m for m in await expert.barrier() if m["type"] == "heartbeat_ack"]
    deliveries = await server.bus.consume(events.EVIDENCE, "test", "test", count=100)
    beats = [events.decode(d) for d in deliveries]
    assert [(b.person_id, b.seq, b.visible) for b in beats if isinstance(b, events.LiveHeartbeat)] == [
        (ALICE, 1, True),
        (ALICE, 2, True),
    ]
    assert all(isinstance(b, events.LiveHeartbeat) and b.session_id == SESSION for b in beats)
    [shown] = await attention_events(server)
    assert {b.client_id for b in beats if isinstance(b, events.LiveHeartbeat)} == {shown.conn_id}


async def test_a_hidden_page_is_not_attending_even_while_it_keeps_beating(
    channel_server: ServerFactory,
) -> None:
    clock = FakeClock()
    server = await channel_server(clock=clock, limits=Limits(heartbeat_period_s=30))
    collected = Collected(server)
    alice = await server.join(ALICE, "learner")

    async def send_at(offset: float, message: dict[str, object]) -> None:
        clock.now = start + offset
        await alice.send(message)
        await alice.barrier()  # handled before the clock moves again

    start = clock.now
    await send_at(0, {"type": "visibility", "visible": True})
    await send_at(10, {"type": "visibility", "visible": False})
    for offset in (30, 50, 70):  # browsers keep timers of hidden tabs running (throttled)
        await send_at(offset, {"type": "heartbeat"})
    await send_at(75, {"type": "visibility", "visible": True})
    assert await collected.read() == [
        (ALICE, True, "shown"),
        (ALICE, False, "hidden"),
        (ALICE, True, "shown"),
    ]
    times = [e.at.timestamp() - collected.seen[0].at.timestamp() for e in collected.seen]
    assert times == [0, 10, 75]


async def test_closing_the_page_closes_its_attention_and_others_are_unaffected(
    channel_server: ServerFactory,
) -> None:
    server = await channel_server()
    collected = Collected(server)
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    bob = await server.join(BOB, "learner")
    for peer in (expert, alice, bob):
        await peer.send({"type": "heartbeat"})
        await peer.barrier()
    await alice.ws.close()
    await collected.until(
        lambda got: sorted(got) == [(ALICE, False, "closed"), (ALICE, True, "shown"), (BOB, True, "shown")]
    )


async def test_a_newer_tab_supersedes_the_oldest_when_the_person_has_too_many(
    channel_server: ServerFactory,
) -> None:
    server = await channel_server(limits=Limits(max_sockets_per_person=1))
    collected = Collected(server)
    first = await server.join(ALICE, "learner")
    await first.send({"type": "heartbeat"})
    await first.barrier()
    second = await server.join(ALICE, "learner")
    await second.send({"type": "heartbeat"})
    # The old socket closes as the new one is served: the two events may come in either order.
    await collected.until(
        lambda got: (
            sorted(got) == [(ALICE, False, "superseded"), (ALICE, True, "shown"), (ALICE, True, "shown")]
        )
    )
    closed = next(e for e in collected.seen if not e.visible)
    assert closed.conn_id == collected.seen[0].conn_id  # the first tab's


@pytest.mark.parametrize(
    ("answer", "code", "field"),
    [
        ({}, "invalid_message", "nonce"),
        ({"nonce": ""}, "invalid_message", "nonce"),
        ({"nonce": "guessed"}, "bad_nonce", "nonce"),
        ({"nonce": "BOBS"}, "bad_nonce", "nonce"),
    ],
    ids=["missing", "empty", "guessed", "another-persons"],
)
async def test_an_answer_without_the_prompts_nonce_is_refused_and_nothing_published(
    channel_server: ServerFactory, answer: dict[str, str], code: str, field: str
) -> None:
    server = await channel_server()
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    bob = await server.join(BOB, "learner")
    await expert.send({"type": "presence_check", "window_s": 30})
    prompt = await alice.expect("presence_check")
    bobs = await bob.expect("presence_check")
    if answer.get("nonce") == "BOBS":
        answer = {"nonce": bobs["nonce"]}
    error = await alice.ask_for_error({"type": "presence_answer", "check_id": prompt["check_id"], **answer})
    assert (error["code"], error["field"], error["in_reply_to"]) == (code, field, "presence_answer")
    deliveries = await server.bus.consume(events.PRESENCE, "test", "test", count=100)
    assert [events.decode(d).type for d in deliveries] == ["presence_check.issued"]
    # The right nonce still answers afterwards.
    await alice.send({"type": "presence_answer", "check_id": prompt["check_id"], "nonce": prompt["nonce"]})
    await alice.expect("presence_ack")
