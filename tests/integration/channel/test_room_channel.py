"""The room channel over real WebSockets on loopback: an expert and learners in one session."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from infra import events
from infra.tokens import verify
from streaming.channel import CHANNELS, announce_session_ended
from streaming.channel_state import CLOSE_SESSION_ENDED, Limits
from tests.helpers import wait_until
from tests.integration.channel.support import (
    SECRET,
    SESSION,
    ChannelServer,
    FakeClock,
    RealClock,
    ServerFactory,
)
from tests.integration.test_outbox import SwitchedBus

EXPERT, ALICE, BOB, STAFF = 1, 2, 3, 4


@pytest.fixture
async def server(channel_server: ServerFactory) -> ChannelServer:
    return await channel_server()


def fake_clock(server: ChannelServer) -> FakeClock:
    assert isinstance(server.clock, FakeClock)
    return server.clock


async def published(server: ChannelServer, topic: str) -> list[events.Event]:
    deliveries = await server.bus.consume(topic, "test", "test", count=100)
    return [events.decode(d) for d in deliveries]


# -- authentication, before the upgrade --------------------------------------------------------------


async def handshake_status(server: ChannelServer, url: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as failed:
        await server.client.ws_connect(url)
    return failed.value.status


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "unauthenticated"),
        ("garbage token", 401, "unauthenticated"),
        ("expired token", 401, "unauthenticated"),
        ("token for another purpose", 401, "unauthenticated"),
        ("token for another session", 403, "forbidden"),
        ("role the room does not know", 403, "forbidden"),
    ],
)
async def test_a_bad_token_is_refused_with_a_json_error_before_upgrading(
    server: ChannelServer, case: str, status: int, code: str
) -> None:
    url = {
        "no token": f"/ws/sessions/{SESSION}",
        "garbage token": server.url("not-a-token"),
        "expired token": server.url(server.token(ALICE, "learner", ttl_s=-1)),
        "token for another purpose": server.url(server.token(ALICE, "learner", purpose="whep")),
        "token for another session": server.url(server.token(ALICE, "learner", session_id=SESSION + 1)),
        "role the room does not know": server.url(server.token(ALICE, "speaker")),
    }[case]
    assert await handshake_status(server, url) == status
    resp = await server.client.get(url)
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "field", "details"}


async def test_a_valid_token_without_a_websocket_upgrade_is_a_400(server: ChannelServer) -> None:
    resp = await server.client.get(server.url(server.token(ALICE, "learner")))
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "Upgrade"


async def test_a_session_id_that_is_not_a_number_is_a_404(server: ChannelServer) -> None:
    resp = await server.client.get("/ws/sessions/abc?token=x")
    assert resp.status == 404


# -- presence ------------------------------------------------------------------------------------------


async def test_joining_sends_a_snapshot_and_tells_the_others(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert", name="王老师")
    alice = await server.join(ALICE, "learner", name="Alice")
    assert alice.welcome["you"] == {"person_id": ALICE, "name": "Alice", "role": "learner"}
    assert alice.welcome["participants"] == [
        {"person_id": EXPERT, "name": "王老师", "role": "expert"},
        {"person_id": ALICE, "name": "Alice", "role": "learner"},
    ]
    assert alice.welcome["viewer_count"] == 1
    assert "hands" not in alice.welcome
    joined = await expert.expect("joined")
    assert joined["participant"] == {"person_id": ALICE, "name": "Alice", "role": "learner"}
    assert (await expert.expect("viewer_count"))["count"] == 1

    await alice.ws.close()
    assert (await expert.expect("left"))["person_id"] == ALICE
    assert (await expert.expect("viewer_count"))["count"] == 0


async def test_viewer_count_counts_a_person_with_two_connections_once(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert")
    await server.join(STAFF, "staff")
    first = await server.join(ALICE, "learner")
    await expert.expect("viewer_count", count=1)
    second = await server.join(ALICE, "learner")
    assert second.welcome["viewer_count"] == 1
    bob = await server.join(BOB, "learner")
    await expert.expect("viewer_count", count=2)

    await first.ws.close()
    before = await expert.barrier()
    assert not [m for m in before if m["type"] in ("left", "viewer_count")], "a second tab is still open"
    await second.ws.close()
    await expert.expect("left", person_id=ALICE)
    await expert.expect("viewer_count", count=1)
    assert bob.welcome["viewer_count"] == 2


# -- chat ------------------------------------------------------------------------------------------------


async def test_chat_goes_both_ways_trimmed_and_stamped(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert", name="王老师")
    alice = await server.join(ALICE, "learner", name="Alice")
    bob = await server.join(BOB, "learner")

    await alice.send({"type": "chat", "text": "  老师好  "})
    for peer in (expert, alice, bob):
        chat = await peer.expect("chat")
        assert (chat["person_id"], chat["name"], chat["text"]) == (ALICE, "Alice", "老师好")
        assert chat["at"].endswith("+00:00")
    await expert.send({"type": "chat", "text": "欢迎"})
    assert (await bob.expect("chat"))["text"] == "欢迎"

    latecomer = await server.join(5, "learner")
    assert [c["text"] for c in latecomer.welcome["chat"]] == ["老师好", "欢迎"]


@pytest.mark.parametrize(
    ("text", "field"), [("", "text"), ("   ", "text"), ("x" * 501, "text"), (42, "text"), (None, "text")]
)
async def test_a_chat_message_without_proper_text_is_refused(
    server: ChannelServer, text: Any, field: str
) -> None:
    alice = await server.join(ALICE, "learner")
    error = await alice.ask_for_error({"type": "chat", "text": text})
    assert (error["code"], error["field"], error["in_reply_to"]) == ("invalid_message", field, "chat")


# -- questions -------------------------------------------------------------------------------------------


async def test_questions_are_ordered_by_answered_then_votes_then_age(server: ChannelServer) -> None:
    clock = fake_clock(server)
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    bob = await server.join(BOB, "learner")

    await alice.send({"type": "ask", "text": "first?"})
    first = (await bob.expect("questions"))["questions"][0]["id"]
    clock.advance(1)
    await alice.send({"type": "ask", "text": "second?"})
    second = next(q["id"] for q in (await bob.expect("questions"))["questions"] if q["text"] == "second?")

    await bob.send({"type": "upvote", "question_id": second})
    questions = await wait_for_questions(expert, lambda qs: qs[0]["id"] == second)
    assert [(q["text"], q["votes"]) for q in questions] == [("second?", 1), ("first?", 0)]

    error = await bob.ask_for_error({"type": "upvote", "question_id": second})
    assert error["code"] == "already_voted"
    error = await alice.ask_for_error({"type": "upvote", "question_id": second})
    assert error["code"] == "own_question"
    error = await bob.ask_for_error({"type": "upvote", "question_id": 999})
    assert (error["code"], error["field"]) == ("not_found", "question_id")

    error = await alice.ask_for_error({"type": "mark_answered", "question_id": second})
    assert error["code"] == "forbidden"
    await expert.send({"type": "mark_answered", "question_id": second})
    questions = await wait_for_questions(bob, lambda qs: qs[-1]["answered"])
    assert [(q["id"], q["answered"]) for q in questions] == [(first, False), (second, True)]
    assert questions[0]["asked_at"] < questions[1]["asked_at"]


async def wait_for_questions(peer: Any, done: Any) -> list[dict[str, Any]]:
    while True:
        questions: list[dict[str, Any]] = (await peer.expect("questions"))["questions"]
        if done(questions):
            return questions


# -- hands and the stage --------------------------------------------------------------------------------


async def test_a_promoted_learner_alone_receives_a_speaker_token_then_is_demoted(
    server: ChannelServer,
) -> None:
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner", name="Alice")
    bob = await server.join(BOB, "learner")

    await alice.send({"type": "raise_hand"})
    assert (await alice.expect("hand"))["raised"] is True
    queue = (await expert.expect("hands"))["queue"]
    assert [(h["person_id"], h["name"]) for h in queue] == [(ALICE, "Alice")]

    await expert.send({"type": "promote", "person_id": ALICE})
    promoted = await alice.expect("promoted")
    assert promoted["whip_url"] == f"/whip/sessions/{SESSION}"
    claims = verify(SECRET, "whip", promoted["whip_token"], server.clock())
    assert (claims.person_id, claims.subject, claims.role) == (ALICE, f"session:{SESSION}", "speaker")
    assert claims.expires_at == pytest.approx(server.clock() + 300)
    stage = await bob.expect("stage")
    assert [s["person_id"] for s in stage["speakers"]] == [ALICE]
    assert (await expert.expect("hands"))["queue"] == []
    assert not [m for m in await bob.barrier() if m["type"] == "promoted"]
    assert not [m for m in await expert.barrier() if m["type"] == "promoted"]

    await expert.send({"type": "demote", "person_id": ALICE})
    await alice.expect("demoted")
    assert (await bob.expect("stage"))["speakers"] == []
    assert not [m for m in await bob.barrier() if m["type"] == "demoted"]
    error = await expert.ask_for_error({"type": "demote", "person_id": ALICE})
    assert error["code"] == "not_on_stage"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "promote", "person_id": BOB},
        {"type": "demote", "person_id": BOB},
        {"type": "mark_answered", "question_id": 1},
        {"type": "presence_check", "window_s": 60},
        {"type": "end_session"},
    ],
    ids=lambda m: m["type"],
)
async def test_a_learner_may_not_do_what_only_the_expert_may(
    server: ChannelServer, message: dict[str, Any]
) -> None:
    await server.join(EXPERT, "expert")
    await server.join(BOB, "learner")
    alice = await server.join(ALICE, "learner")
    error = await alice.ask_for_error(message)
    assert (error["code"], error["in_reply_to"]) == ("forbidden", message["type"])


async def test_only_learners_raise_hands(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert")
    error = await expert.ask_for_error({"type": "raise_hand"})
    assert error["code"] == "forbidden"


# -- presence checks (DOMAIN.md R10) --------------------------------------------------------------------


async def test_a_presence_check_answered_in_time_is_acknowledged_tallied_and_published(
    server: ChannelServer,
) -> None:
    clock = fake_clock(server)
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    bob = await server.join(BOB, "learner")
    staff = await server.join(STAFF, "staff")

    await expert.send({"type": "presence_check", "window_s": 30})
    prompt = await alice.expect("presence_check")
    bobs = await bob.expect("presence_check")
    assert {**prompt, "nonce": None} == {**bobs, "nonce": None}
    assert prompt["nonce"] != bobs["nonce"]  # one per person: Bob's cannot answer for Alice
    assert prompt["window_s"] == 30
    tally = await expert.expect("presence_tally")
    assert (tally["check_id"], tally["answered"], tally["expected"], tally["closed"]) == (
        prompt["check_id"],
        0,
        2,
        False,
    )
    assert not [m for m in await staff.barrier() if m["type"] == "presence_check"]

    clock.advance(29)
    await alice.send({"type": "presence_answer", "check_id": prompt["check_id"], "nonce": prompt["nonce"]})
    ack = await alice.expect("presence_ack")
    assert ack["check_id"] == prompt["check_id"]
    assert (await expert.expect("presence_tally"))["answered"] == 1

    issued, answered = await published(server, events.PRESENCE)
    assert isinstance(issued, events.PresenceCheckIssued)
    assert (issued.session_id, issued.check_id) == (SESSION, prompt["check_id"])
    assert (issued.deadline_at - issued.issued_at).total_seconds() == 30
    assert issued.deadline_at.isoformat() == prompt["deadline_at"]
    assert isinstance(answered, events.PresenceCheckAnswered)
    assert (answered.check_id, answered.person_id) == (prompt["check_id"], ALICE)
    assert (answered.answered_at - issued.issued_at).total_seconds() == 29
    assert answered.latency_ms == 29000  # from the prompt sent to Alice, by the server's clock


async def test_a_late_presence_answer_is_refused_and_not_published(server: ChannelServer) -> None:
    clock = fake_clock(server)
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    await expert.send({"type": "presence_check", "window_s": 10})
    prompt = await alice.expect("presence_check")

    clock.advance(10.5)
    error = await alice.ask_for_error(
        {"type": "presence_answer", "check_id": prompt["check_id"], "nonce": prompt["nonce"]}
    )
    assert (error["code"], error["in_reply_to"]) == ("check_expired", "presence_answer")
    assert [e.type for e in await published(server, events.PRESENCE)] == ["presence_check.issued"]


async def test_the_deadline_closes_the_check_with_a_final_tally(channel_server: ServerFactory) -> None:
    short = Limits(check_window_min_s=0.05)
    server = await channel_server(clock=RealClock(), limits=short)
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    await server.join(BOB, "learner")
    started = time.time()
    await expert.send({"type": "presence_check", "window_s": 0.3})
    prompt = await alice.expect("presence_check")
    await alice.send({"type": "presence_answer", "check_id": prompt["check_id"], "nonce": prompt["nonce"]})
    await alice.expect("presence_ack")

    final = await expert.expect("presence_tally", closed=True)
    assert time.time() - started >= 0.3
    assert (final["answered"], final["expected"]) == (1, 2)
    error = await alice.ask_for_error({"type": "presence_answer", "check_id": "no-such-check", "nonce": "x"})
    assert error["code"] == "not_found"


async def test_a_learner_who_joins_during_a_check_is_prompted_too(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert")
    await expert.send({"type": "presence_check"})
    tally = await expert.expect("presence_tally")
    assert tally["expected"] == 0
    bob = await server.join(BOB, "learner")
    prompt = await bob.expect("presence_check")
    assert prompt["check_id"] == tally["check_id"]
    assert prompt["window_s"] == 60
    assert (await expert.expect("presence_tally"))["expected"] == 1


@pytest.mark.parametrize("window_s", [9, 301, "60", True])
async def test_a_presence_check_window_out_of_bounds_is_refused(server: ChannelServer, window_s: Any) -> None:
    expert = await server.join(EXPERT, "expert")
    error = await expert.ask_for_error({"type": "presence_check", "window_s": window_s})
    assert (error["code"], error["field"]) == ("invalid_message", "window_s")


async def test_a_check_the_bus_refuses_is_withdrawn_and_the_expert_told(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    await server.bus.close()
    error = await expert.ask_for_error({"type": "presence_check"})
    assert (error["code"], error["in_reply_to"]) == ("unavailable", "presence_check")
    assert not [m for m in await alice.barrier() if m["type"] == "presence_check"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("presence-deadline")]


async def test_with_an_outbox_a_check_issued_while_the_bus_is_down_is_kept_and_delivered_later(
    channel_server: ServerFactory, tmp_path: Path
) -> None:
    """In the real server the channel publishes through the outbox (as every live-path event): a bus
    outage neither stops a presence check nor loses its events."""
    bus = SwitchedBus()
    server = await channel_server(bus=bus, outbox_dir=tmp_path / "outbox")
    expert = await server.join(EXPERT, "expert")
    alice = await server.join(ALICE, "learner")
    bus.down = True
    await expert.send({"type": "presence_check", "window_s": 30})
    prompt = await alice.expect("presence_check")
    await alice.send({"type": "presence_answer", "check_id": prompt["check_id"], "nonce": prompt["nonce"]})
    await alice.expect("presence_ack")
    await wait_until(lambda: bus.refused >= 1, message="the outbox trying the bus while it is down")
    bus.down = False
    seen: list[events.Event] = []

    async def both_delivered() -> bool:
        seen.extend(await published(server, events.PRESENCE))
        return len(seen) >= 2

    await wait_until(both_delivered, timeout_s=10, message="both presence events on the bus")
    issued, answered = seen
    assert isinstance(issued, events.PresenceCheckIssued)
    assert isinstance(answered, events.PresenceCheckAnswered)
    assert (issued.check_id, answered.check_id, answered.person_id) == (prompt["check_id"],) * 2 + (ALICE,)


# -- bad messages and limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"type": "chat", "text": "' + "x" * 5000 + '"}', "too_large"),
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"text": "no type"}', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "upvote", "question_id": "1"}', "invalid_message"),
    ],
    ids=["oversized", "not json", "not an object", "no type", "unknown type", "wrong field type"],
)
async def test_a_bad_message_gets_an_error_and_the_connection_stays_usable(
    server: ChannelServer, raw: str, code: str
) -> None:
    alice = await server.join(ALICE, "learner")
    error = await alice.ask_for_error(raw)
    assert error["code"] == code
    assert error["message"]
    await alice.send({"type": "chat", "text": "still here"})
    assert (await alice.expect("chat"))["text"] == "still here"


async def test_a_binary_frame_gets_an_error_and_the_connection_stays_usable(server: ChannelServer) -> None:
    alice = await server.join(ALICE, "learner")
    await alice.ws.send_bytes(b"\x00\x01")
    assert (await alice.expect("error"))["code"] == "invalid_message"
    await alice.send({"type": "chat", "text": "still here"})
    await alice.expect("chat")


async def test_a_frame_beyond_the_hard_limit_closes_the_socket(server: ChannelServer) -> None:
    alice = await server.join(ALICE, "learner")
    await alice.ws.send_str("x" * (Limits().max_frame_bytes + 1))
    msg = await alice.ws.receive(timeout=5)
    while msg.type is aiohttp.WSMsgType.TEXT:  # what was queued before, e.g. the viewer count
        msg = await alice.ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_flood_is_rate_limited_per_connection_and_recovers(server: ChannelServer) -> None:
    clock = fake_clock(server)
    alice = await server.join(ALICE, "learner")
    bob = await server.join(BOB, "learner")
    for i in range(25):
        await alice.send({"type": "chat", "text": f"m{i}"})
    replies: list[dict[str, Any]] = []
    while len(replies) < 25:
        reply = await alice.receive()
        if reply["type"] in ("chat", "error"):  # not e.g. the viewer count when Bob joined
            replies.append(reply)
    assert [m["type"] for m in replies] == ["chat"] * 20 + ["error"] * 5
    assert {m["code"] for m in replies[20:]} == {"rate_limited"}

    await bob.send({"type": "chat", "text": "bob is not limited"})
    await bob.expect("chat", text="bob is not limited")
    clock.advance(1)  # 10 messages a second come back
    await alice.send({"type": "chat", "text": "again"})
    await alice.expect("chat", text="again")


# -- the end of a session -------------------------------------------------------------------------------


async def test_announce_session_ended_tells_everyone_and_closes_their_sockets(
    server: ChannelServer,
) -> None:
    peers = [
        await server.join(EXPERT, "expert"),
        await server.join(ALICE, "learner"),
        await server.join(BOB, "learner"),
    ]
    elsewhere = await server.join(ALICE, "learner", session_id=SESSION + 1)
    # Concurrently: announcing waits for each peer's close reply, which aiohttp's client sends on receive.
    ending = asyncio.create_task(announce_session_ended(server.app, SESSION, "ended_by_expert"))
    for peer in peers:
        assert (await peer.expect("session_ended"))["reason"] == "ended_by_expert"
        msg = await peer.ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == CLOSE_SESSION_ENDED
    await asyncio.wait_for(ending, timeout=1)  # every close was answered: no close timeout was needed
    await wait_until(lambda: server.app[CHANNELS].room_state(SESSION) is None, message="room dropped")
    await elsewhere.send({"type": "chat", "text": "other room unaffected"})
    await elsewhere.expect("chat")


async def test_the_experts_end_request_goes_to_the_hook(channel_server: ServerFactory) -> None:
    asked: list[int] = []

    async def on_end(session_id: int) -> None:
        asked.append(session_id)

    server = await channel_server(on_end_request=on_end)
    expert = await server.join(EXPERT, "expert")
    await expert.send({"type": "end_session"})
    await wait_until(lambda: asked == [SESSION], message="the end hook")


async def test_an_end_request_without_a_hook_is_unavailable(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert")
    error = await expert.ask_for_error({"type": "end_session"})
    assert (error["code"], error["in_reply_to"]) == ("unavailable", "end_session")


async def test_shutdown_closes_sockets_and_cancels_deadline_timers(server: ChannelServer) -> None:
    expert = await server.join(EXPERT, "expert")
    await expert.send({"type": "presence_check", "window_s": 300})
    await expert.expect("presence_tally")
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("presence-deadline")]

    # The server only (the client session stays to see the close), concurrently: see above.
    stopping = asyncio.create_task(server.client.server.close())
    msg = await expert.ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == aiohttp.WSCloseCode.GOING_AWAY
    await asyncio.wait_for(stopping, timeout=2)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith(("presence-deadline", "channel-"))]
