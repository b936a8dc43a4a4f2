"""The room channel's rules (streaming/channel_state.py), as tables: parsing, who may do what, question
order, hands and the stage, presence-check windows, what the live room publishes, rate limiting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from infra.events import AttentionChanged, LiveHeartbeat, PresenceCheckAnswered, PresenceCheckIssued
from streaming.channel_state import (
    AnswerCheck,
    Ask,
    ChannelError,
    Chat,
    CheckId,
    Command,
    Conn,
    ConnId,
    Demote,
    EndSession,
    EndStage,
    Everyone,
    Experts,
    GrantSpeaker,
    Heartbeat,
    IssueCheck,
    Learners,
    Limits,
    LowerHand,
    MarkAnswered,
    Others,
    Participant,
    Person,
    PersonId,
    Promote,
    Publish,
    RaiseHand,
    RequestEnd,
    Role,
    RoomState,
    Send,
    StartTimer,
    TokenBucket,
    Upvote,
    Visibility,
    WatchAttention,
    parse_command,
    participant_from_claims,
)
from streaming.room_media import MediaState, StageSeat

LIMITS = Limits()
T0 = 1_700_000_000.0
EXPERT_CONN, ALICE_CONN, BOB_CONN, STAFF_CONN = ConnId(1), ConnId(2), ConnId(3), ConnId(4)
EXPERT = Participant(PersonId(1), "王老师", "expert")
ALICE = Participant(PersonId(2), "Alice", "learner")
BOB = Participant(PersonId(3), "Bob", "learner")
STAFF = Participant(PersonId(4), "Staff", "staff")


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def room() -> RoomState:
    """A room with the expert, two learners and a member of staff, one connection each."""
    state = RoomState(
        7,
        LIMITS,
        new_check_id=iter(f"c{i}" for i in range(1, 100)).__next__,
        new_nonce=iter(f"nonce{i}" for i in range(1, 1000)).__next__,
    )
    for conn, who in ((EXPERT_CONN, EXPERT), (ALICE_CONN, ALICE), (BOB_CONN, BOB), (STAFF_CONN, STAFF)):
        state.join(conn, who, T0)
    return state


def refusal(state: RoomState, conn: ConnId, command: Command, now: float = T0) -> str:
    with pytest.raises(ChannelError) as refused:
        state.handle(conn, command, now)
    return refused.value.code


def sends(effects: list[Any]) -> list[tuple[Any, str]]:
    return [(e.to, e.message["type"]) for e in effects if isinstance(e, Send)]


def answer(state: RoomState, who: Participant, check_id: str = "c1") -> AnswerCheck:
    """`who`'s answer to a check, echoing the nonce their prompt carried (as their page does)."""
    check = state.check(check_id)
    nonce = check.nonces.get(who.person_id, "never-prompted") if check is not None else "no-check"
    return AnswerCheck(CheckId(check_id), nonce)


# -- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        ('{"type":"chat","text":"  hi  "}', Chat("hi")),
        ('{"type":"ask","text":"why?"}', Ask("why?")),
        ('{"type":"upvote","question_id":3}', Upvote(3)),
        ('{"type":"mark_answered","question_id":3}', MarkAnswered(3, True)),
        ('{"type":"mark_answered","question_id":3,"answered":false}', MarkAnswered(3, False)),
        ('{"type":"raise_hand"}', RaiseHand()),
        ('{"type":"lower_hand"}', LowerHand()),
        ('{"type":"promote","person_id":2}', Promote(PersonId(2))),
        ('{"type":"demote","person_id":2}', Demote(PersonId(2))),
        ('{"type":"presence_check"}', IssueCheck(60.0)),
        ('{"type":"presence_check","window_s":10}', IssueCheck(10.0)),
        ('{"type":"presence_check","window_s":300}', IssueCheck(300.0)),
        ('{"type":"presence_answer","check_id":"c1","nonce":"n"}', AnswerCheck(CheckId("c1"), "n")),
        ('{"type":"heartbeat"}', Heartbeat()),
        ('{"type":"visibility","visible":false}', Visibility(False)),
        ('{"type":"end_session","extra":"ignored"}', EndSession()),
        ('{"type":"chat","text":"' + "字" * 500 + '"}', Chat("字" * 500)),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 60 else None,
)
def test_a_well_formed_message_parses_to_its_command(raw: str, command: Command) -> None:
    assert parse_command(raw, LIMITS) == command


@pytest.mark.parametrize(
    ("raw", "code", "field", "in_reply_to"),
    [
        ("x" * 4097, "too_large", None, None),
        ('{"type":"chat","text":"' + "字" * 1400 + '"}', "too_large", None, None),  # bytes, not chars
        ("{", "invalid_json", None, None),
        ("null", "invalid_message", None, None),
        ('{"type":5}', "invalid_message", "type", None),
        ('{"type":"wave"}', "unknown_type", "type", None),
        ('{"type":"chat"}', "invalid_message", "text", "chat"),
        ('{"type":"chat","text":" \\n "}', "invalid_message", "text", "chat"),
        ('{"type":"ask","text":"' + "x" * 501 + '"}', "invalid_message", "text", "ask"),
        ('{"type":"upvote","question_id":0}', "invalid_message", "question_id", "upvote"),
        ('{"type":"upvote","question_id":true}', "invalid_message", "question_id", "upvote"),
        ('{"type":"upvote","question_id":1.5}', "invalid_message", "question_id", "upvote"),
        (
            '{"type":"mark_answered","question_id":1,"answered":1}',
            "invalid_message",
            "answered",
            "mark_answered",
        ),
        ('{"type":"promote"}', "invalid_message", "person_id", "promote"),
        ('{"type":"presence_check","window_s":9.9}', "invalid_message", "window_s", "presence_check"),
        ('{"type":"presence_check","window_s":301}', "invalid_message", "window_s", "presence_check"),
        ('{"type":"presence_check","window_s":"60"}', "invalid_message", "window_s", "presence_check"),
        ('{"type":"presence_check","window_s":NaN}', "invalid_message", "window_s", "presence_check"),
        ('{"type":"presence_answer","check_id":""}', "invalid_message", "check_id", "presence_answer"),
        ('{"type":"presence_answer","check_id":7}', "invalid_message", "check_id", "presence_answer"),
        ('{"type":"presence_answer","check_id":"c1"}', "invalid_message", "nonce", "presence_answer"),
        (
            '{"type":"presence_answer","check_id":"c1","nonce":1}',
            "invalid_message",
            "nonce",
            "presence_answer",
        ),
        ('{"type":"visibility"}', "invalid_message", "visible", "visibility"),
        ('{"type":"visibility","visible":"no"}', "invalid_message", "visible", "visibility"),
    ],
)
def test_a_malformed_message_is_refused_with_a_code_naming_the_problem(
    raw: str, code: str, field: str | None, in_reply_to: str | None
) -> None:
    with pytest.raises(ChannelError) as refused:
        parse_command(raw, LIMITS)
    assert (refused.value.code, refused.value.field, refused.value.in_reply_to) == (code, field, in_reply_to)
    wire = refused.value.to_wire()
    assert wire["type"] == "error"
    assert wire["message"]


@pytest.mark.parametrize(
    ("role", "extra", "expected"),
    [
        ("learner", {"name": " 李雷 "}, Participant(PersonId(9), "李雷", "learner")),
        ("expert", {}, Participant(PersonId(9), "#9", "expert")),
        ("staff", {"name": 42}, Participant(PersonId(9), "#9", "staff")),
        ("learner", {"name": "x" * 100}, Participant(PersonId(9), "x" * 64, "learner")),
    ],
)
def test_a_token_names_a_participant(role: str, extra: dict[str, Any], expected: Participant) -> None:
    assert participant_from_claims(9, role, extra, LIMITS) == expected


@pytest.mark.parametrize("role", ["speaker", "admin", ""])
def test_a_role_the_room_does_not_know_is_forbidden(role: str) -> None:
    with pytest.raises(ChannelError) as refused:
        participant_from_claims(9, role, {}, LIMITS)
    assert refused.value.code == "forbidden"


# -- who may do what -----------------------------------------------------------------------------------


EXPERT_ONLY = [
    MarkAnswered(1, True),
    Promote(ALICE.person_id),
    Demote(ALICE.person_id),
    IssueCheck(60),
    EndSession(),
]
LEARNER_ONLY = [RaiseHand(), LowerHand(), AnswerCheck(CheckId("c1"), "nonce")]
ANYONE = [Chat("hi"), Ask("why?")]


@pytest.mark.parametrize(
    ("role", "command", "allowed"),
    [(role, c, role == "expert") for role in ("expert", "staff", "learner") for c in EXPERT_ONLY]
    + [(role, c, role == "learner") for role in ("expert", "staff", "learner") for c in LEARNER_ONLY]
    + [(role, c, True) for role in ("expert", "staff", "learner") for c in ANYONE],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__ if not isinstance(v, bool) else str(v),
)
def test_only_the_right_role_may_send_a_command(role: Role, command: Command, allowed: bool) -> None:
    state = room()
    state.join(ConnId(50), Participant(PersonId(50), "x", role), T0)
    if isinstance(command, MarkAnswered):
        state.handle(ALICE_CONN, Ask("q"), T0)
    if isinstance(command, Demote):
        state.handle(EXPERT_CONN, Promote(ALICE.person_id), T0)
    if isinstance(command, AnswerCheck):
        state.handle(EXPERT_CONN, IssueCheck(60), T0)
        command = answer(state, Participant(PersonId(50), "x", role))
    if allowed:
        state.handle(ConnId(50), command, T0)
    else:
        assert refusal(state, ConnId(50), command) == "forbidden"


# -- membership ----------------------------------------------------------------------------------------


def test_a_second_connection_of_a_person_is_not_a_new_viewer() -> None:
    state = room()
    assert state.viewer_count() == 2
    effects = state.join(ConnId(20), ALICE, T0)
    assert sends(effects) == [(Conn(ConnId(20)), "welcome")]
    assert state.leave(ALICE_CONN, T0) == []
    assert state.viewer_count() == 2
    effects = state.leave(ConnId(20), T0)
    assert sends(effects) == [(Everyone(), "left"), (Everyone(), "viewer_count")]
    assert state.viewer_count() == 1


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (
            Participant(PersonId(30), "Carol", "learner"),
            [("welcome", "Conn"), ("joined", "Others"), ("viewer_count", "Everyone")],
        ),
        (Participant(PersonId(30), "Staff 2", "staff"), [("welcome", "Conn"), ("joined", "Others")]),
    ],
)
def test_joining_announces_a_new_person_and_a_new_viewer_count(
    who: Participant, expected: list[tuple[str, str]]
) -> None:
    effects = room().join(ConnId(30), who, T0)
    assert [(m, type(to).__name__) for to, m in sends(effects)] == expected


@pytest.mark.parametrize(
    ("audience", "conns"),
    [
        (Everyone(), [EXPERT_CONN, ALICE_CONN, BOB_CONN, STAFF_CONN]),
        (Others(ALICE.person_id), [EXPERT_CONN, BOB_CONN, STAFF_CONN]),
        (Experts(), [EXPERT_CONN]),
        (Learners(), [ALICE_CONN, BOB_CONN]),
        (Person(BOB.person_id), [BOB_CONN]),
        (Conn(STAFF_CONN), [STAFF_CONN]),
        (Conn(ConnId(99)), []),
    ],
)
def test_an_audience_resolves_to_connections(audience: Any, conns: list[ConnId]) -> None:
    assert room().resolve(audience) == conns


def test_the_expert_is_welcomed_with_the_hand_queue_and_a_learner_without() -> None:
    state = room()
    state.handle(ALICE_CONN, RaiseHand(), T0)
    expert_welcome = state.join(ConnId(40), EXPERT, T0)[0]
    learner_welcome = state.join(ConnId(41), BOB, T0)[0]
    assert isinstance(expert_welcome, Send)
    assert isinstance(learner_welcome, Send)
    assert [h["person_id"] for h in expert_welcome.message["hands"]] == [ALICE.person_id]
    assert "hands" not in learner_welcome.message
    assert learner_welcome.message["hand_raised"] is False


# -- questions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("votes", "answered", "order"),
    [
        ({}, set(), ["q1", "q2", "q3"]),  # oldest first
        ({"q3": 1}, set(), ["q3", "q1", "q2"]),
        ({"q2": 1, "q3": 2}, set(), ["q3", "q2", "q1"]),
        ({"q2": 1, "q3": 1}, set(), ["q2", "q3", "q1"]),  # equal votes: older first
        ({"q3": 2}, {"q3"}, ["q1", "q2", "q3"]),  # answered sink, whatever their votes
        ({"q1": 1}, {"q2", "q3"}, ["q1", "q2", "q3"]),
    ],
)
def test_questions_order_by_answered_then_votes_then_age(
    votes: dict[str, int], answered: set[str], order: list[str]
) -> None:
    state = room()
    voters = [STAFF_CONN, EXPERT_CONN]  # never the author (Alice)
    for i, text in enumerate(("q1", "q2", "q3")):
        state.handle(ALICE_CONN, Ask(text), T0 + i)
    ids = {q.text: q.id for q in state.questions()}
    for text, n in votes.items():
        for conn in voters[:n]:
            state.handle(conn, Upvote(ids[text]), T0 + 5)
    for text in answered:
        state.handle(EXPERT_CONN, MarkAnswered(ids[text], True), T0 + 6)
    assert [q.text for q in state.questions()] == order


@pytest.mark.parametrize(
    ("voter", "question_of", "code"),
    [
        (ALICE_CONN, ALICE_CONN, "own_question"),
        (BOB_CONN, ALICE_CONN, None),
        (EXPERT_CONN, ALICE_CONN, None),
    ],
)
def test_an_upvote_counts_once_and_never_for_ones_own_question(
    voter: ConnId, question_of: ConnId, code: str | None
) -> None:
    state = room()
    state.handle(question_of, Ask("q"), T0)
    question_id = state.questions()[0].id
    if code is not None:
        assert refusal(state, voter, Upvote(question_id)) == code
        return
    assert sends(state.handle(voter, Upvote(question_id), T0)) == [(Everyone(), "questions")]
    assert refusal(state, voter, Upvote(question_id)) == "already_voted"
    assert state.questions()[0].to_wire()["votes"] == 1


def test_questions_are_bounded_per_room() -> None:
    state = RoomState(7, Limits(max_questions=2))
    state.join(ALICE_CONN, ALICE, T0)
    state.handle(ALICE_CONN, Ask("a"), T0)
    state.handle(ALICE_CONN, Ask("b"), T0)
    assert refusal(state, ALICE_CONN, Ask("c")) == "too_many_questions"


def test_marking_an_unknown_question_answered_is_not_found() -> None:
    assert refusal(room(), EXPERT_CONN, MarkAnswered(42, True)) == "not_found"


# -- hands and the stage -------------------------------------------------------------------------------


def test_promoting_grants_only_that_learner_and_takes_their_hand_down() -> None:
    state = room()
    state.handle(ALICE_CONN, RaiseHand(), T0)
    state.handle(BOB_CONN, RaiseHand(), T0 + 1)
    assert [h["person_id"] for h in state.hands()] == [ALICE.person_id, BOB.person_id]
    effects = state.handle(EXPERT_CONN, Promote(ALICE.person_id), T0 + 2)
    assert effects[0] == GrantSpeaker(Person(ALICE.person_id), ALICE.person_id)
    assert sends(effects) == [
        (Person(ALICE.person_id), "hand"),
        (Experts(), "hands"),
        (Everyone(), "stage"),
    ]
    assert [h["person_id"] for h in state.hands()] == [BOB.person_id]
    assert [s["person_id"] for s in state.stage()] == [ALICE.person_id]
    assert refusal(state, ALICE_CONN, RaiseHand()) == "on_stage"
    # Promoting again re-grants a fresh token and changes nothing else.
    assert state.handle(EXPERT_CONN, Promote(ALICE.person_id), T0) == [
        GrantSpeaker(Person(ALICE.person_id), ALICE.person_id)
    ]


@pytest.mark.parametrize(
    ("target", "code"),
    [
        (PersonId(99), "not_found"),
        (STAFF.person_id, "invalid_message"),
        (EXPERT.person_id, "invalid_message"),
    ],
)
def test_only_a_learner_in_the_room_can_be_promoted(target: PersonId, code: str) -> None:
    assert refusal(room(), EXPERT_CONN, Promote(target)) == code


def test_the_stage_is_bounded() -> None:
    state = RoomState(7, Limits(max_speakers=1))
    state.join(EXPERT_CONN, EXPERT, T0)
    state.join(ALICE_CONN, ALICE, T0)
    state.join(BOB_CONN, BOB, T0)
    state.handle(EXPERT_CONN, Promote(ALICE.person_id), T0)
    assert refusal(state, EXPERT_CONN, Promote(BOB.person_id)) == "stage_full"


def test_demoting_tells_the_learner_and_everyone_and_ends_their_publication() -> None:
    state = room()
    state.handle(EXPERT_CONN, Promote(BOB.person_id), T0)
    effects = state.handle(EXPERT_CONN, Demote(BOB.person_id), T0)
    assert sends(effects) == [(Person(BOB.person_id), "demoted"), (Everyone(), "stage")]
    assert [e for e in effects if not isinstance(e, Send)] == [EndStage(BOB.person_id)]
    assert state.stage() == []
    assert refusal(state, EXPERT_CONN, Demote(BOB.person_id)) == "not_on_stage"


def test_a_speaker_whose_page_reloads_gets_a_fresh_token_on_joining() -> None:
    state = room()
    state.handle(EXPERT_CONN, Promote(BOB.person_id), T0)
    state.leave(BOB_CONN, T0)
    assert [s["person_id"] for s in state.stage()] == [BOB.person_id]
    effects = state.join(ConnId(60), BOB, T0 + 5)
    assert GrantSpeaker(Conn(ConnId(60)), BOB.person_id) in effects


def test_a_learner_who_leaves_loses_their_raised_hand() -> None:
    state = room()
    state.handle(ALICE_CONN, RaiseHand(), T0)
    assert (Experts(), "hands") in sends(state.leave(ALICE_CONN, T0))
    assert state.hands() == []


@pytest.mark.parametrize(
    ("command", "raised_before", "expected"),
    [
        (RaiseHand(), False, [(Person(ALICE.person_id), "hand"), (Experts(), "hands")]),
        (RaiseHand(), True, [(Person(ALICE.person_id), "hand")]),
        (LowerHand(), True, [(Person(ALICE.person_id), "hand"), (Experts(), "hands")]),
        (LowerHand(), False, [(Person(ALICE.person_id), "hand")]),
    ],
)
def test_raising_and_lowering_a_hand_is_idempotent(
    command: Command, raised_before: bool, expected: list[tuple[Any, str]]
) -> None:
    state = room()
    if raised_before:
        state.handle(ALICE_CONN, RaiseHand(), T0)
    assert sends(state.handle(ALICE_CONN, command, T0)) == expected


# -- presence checks -----------------------------------------------------------------------------------


def test_issuing_a_check_publishes_first_then_times_then_prompts_learners() -> None:
    effects = room().handle(EXPERT_CONN, IssueCheck(60), T0)
    assert [type(e).__name__ for e in effects] == ["Publish", "StartTimer", "Send", "Send", "Send"]
    publish, timer = effects[0], effects[1]
    assert isinstance(publish, Publish)
    assert isinstance(publish.event, PresenceCheckIssued)
    assert (publish.event.session_id, publish.event.check_id) == (7, "c1")
    assert (publish.event.deadline_at - publish.event.issued_at).total_seconds() == 60
    assert timer == StartTimer(CheckId("c1"), T0 + 60)
    # Each learner gets their own prompt, with their own nonce.
    assert sends(effects) == [
        (Person(ALICE.person_id), "presence_check"),
        (Person(BOB.person_id), "presence_check"),
        (Experts(), "presence_tally"),
    ]
    nonces = [e.message["nonce"] for e in effects if isinstance(e, Send) and "nonce" in e.message]
    assert len(set(nonces)) == 2


@pytest.mark.parametrize(
    ("answer_after_s", "outcome"),
    [
        (0, "answered"),
        (59.9, "answered"),
        (60, "answered"),
        (60.001, "check_expired"),
        (600, "check_expired"),
    ],
)
def test_an_answer_counts_only_within_the_window(answer_after_s: float, outcome: str) -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    if outcome != "answered":
        assert refusal(state, ALICE_CONN, answer(state, ALICE), T0 + answer_after_s) == outcome
        return
    effects = state.handle(ALICE_CONN, answer(state, ALICE), T0 + answer_after_s)
    publish = effects[0]
    assert isinstance(publish, Publish)
    assert isinstance(publish.event, PresenceCheckAnswered)
    assert publish.event.person_id == ALICE.person_id
    assert publish.event.answered_at.timestamp() == T0 + answer_after_s
    assert sends(effects) == [(Person(ALICE.person_id), "presence_ack"), (Experts(), "presence_tally")]
    check = state.check("c1")
    assert check is not None
    assert check.tally()["answered"] == 1


def test_answering_twice_republishes_the_first_answer_and_changes_no_tally() -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    state.handle(ALICE_CONN, answer(state, ALICE), T0 + 5)
    # Even after the deadline: the answer was in time; the retry may follow a refused publish.
    effects = state.handle(ALICE_CONN, answer(state, ALICE), T0 + 90)
    publish = effects[0]
    assert isinstance(publish, Publish)
    assert isinstance(publish.event, PresenceCheckAnswered)
    assert publish.event.answered_at.timestamp() == T0 + 5
    assert sends(effects) == [(Person(ALICE.person_id), "presence_ack")]


def test_answering_an_unknown_check_is_not_found() -> None:
    assert refusal(room(), ALICE_CONN, AnswerCheck(CheckId("nope"), "nonce1")) == "not_found"


@pytest.mark.parametrize(("now", "closes"), [(T0 + 59, False), (T0 + 60, True), (T0 + 61, True)])
def test_closing_a_check_happens_at_its_deadline_and_only_once(now: float, closes: bool) -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    state.handle(ALICE_CONN, answer(state, ALICE), T0 + 1)
    effects = state.close_check("c1", now)
    if not closes:
        assert effects == []
        return
    [final] = effects
    assert isinstance(final, Send)
    assert final.to == Experts()
    assert {k: final.message[k] for k in ("answered", "expected", "closed")} == {
        "answered": 1,
        "expected": 2,
        "closed": True,
    }
    assert state.close_check("c1", now + 1) == []


def test_a_learner_joining_during_an_open_check_is_prompted_and_expected() -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    carol = Participant(PersonId(30), "Carol", "learner")
    effects = state.join(ConnId(30), carol, T0 + 10)
    assert (Conn(ConnId(30)), "presence_check") in sends(effects)
    assert (Experts(), "presence_tally") in sends(effects)
    later = state.join(ConnId(31), Participant(PersonId(31), "Dan", "learner"), T0 + 61)
    assert (Conn(ConnId(31)), "presence_check") not in sends(later)


def test_a_withdrawn_check_is_forgotten() -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    state.withdraw_check("c1")
    assert state.check("c1") is None
    assert refusal(state, ALICE_CONN, AnswerCheck(CheckId("c1"), "nonce1"), T0 + 1) == "not_found"


@pytest.mark.parametrize(
    "nonce", ["wrong", "nonce1", "nonce2", "x" * 64], ids=["wrong", "other1", "other2", "long"]
)
def test_an_answer_without_the_persons_own_nonce_is_refused_and_not_published(nonce: str) -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    check = state.check("c1")
    assert check is not None
    assert nonce != check.nonces[ALICE.person_id]  # nonce1/nonce2: attention keys, or Bob's nonce
    assert refusal(state, ALICE_CONN, AnswerCheck(CheckId("c1"), nonce), T0 + 5) == "bad_nonce"
    assert check.answers == {}


def test_bobs_nonce_does_not_answer_for_alice() -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    bobs = answer(state, BOB)
    assert refusal(state, ALICE_CONN, bobs, T0 + 5) == "bad_nonce"


def test_the_answer_latency_runs_from_the_prompt_sent_to_that_person() -> None:
    state = room()
    state.handle(EXPERT_CONN, IssueCheck(60), T0)
    carol = Participant(PersonId(30), "Carol", "learner")
    joined = state.join(ConnId(30), carol, T0 + 10)  # prompted when she arrives
    [prompt] = [e.message for e in joined if isinstance(e, Send) and e.message["type"] == "presence_check"]
    # A second tab of Alice's gets the same nonce (and does not restart her clock).
    again = state.join(ConnId(21), ALICE, T0 + 20)
    [alice_prompt] = [
        e.message for e in again if isinstance(e, Send) and e.message["type"] == "presence_check"
    ]
    assert alice_prompt["nonce"] == answer(state, ALICE).nonce
    for conn, who, at, expected_ms in (
        (ConnId(30), carol, T0 + 12.5, 2500),
        (ALICE_CONN, ALICE, T0 + 30, 30000),
    ):
        effects = state.handle(conn, answer(state, who), at)
        publish = effects[0]
        assert isinstance(publish, Publish)
        assert isinstance(publish.event, PresenceCheckAnswered)
        assert publish.event.latency_ms == expected_ms
    assert prompt["nonce"] == answer(state, carol).nonce


# -- attention (heartbeats and visibility) -----------------------------------------------------------------

PERIOD = 30.0


def attention(effects: list[Any]) -> list[tuple[bool, str, float]]:
    return [
        (e.event.visible, e.event.reason, e.event.at.timestamp())
        for e in effects
        if isinstance(e, Publish) and isinstance(e.event, AttentionChanged)
    ]


def test_the_welcome_tells_the_heartbeat_period() -> None:
    state = RoomState(7, Limits(heartbeat_period_s=2))
    [welcome, *_] = state.join(ALICE_CONN, ALICE, T0)
    assert isinstance(welcome, Send)
    assert welcome.message["heartbeat_period_s"] == 2


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # (offset s, message) → attention.changed (visible, reason, at offset)
        ([(0, "beat")], [(True, "shown", 0)]),
        ([(0, "shown")], [(True, "shown", 0)]),
        ([(0, "hidden")], []),  # never seen: nothing to close
        ([(0, "hidden"), (30, "beat"), (60, "beat")], []),  # a hidden tab's heartbeats count for nothing
        ([(0, "beat"), (30, "beat"), (60, "beat")], [(True, "shown", 0)]),
        (
            [(0, "beat"), (10, "hidden"), (20, "shown")],
            [(True, "shown", 0), (False, "hidden", 10), (True, "shown", 20)],
        ),
        (
            [(0, "beat"), (10, "hidden"), (20, "hidden"), (30, "beat")],
            [(True, "shown", 0), (False, "hidden", 10)],
        ),
        ([(0, "shown"), (5, "shown")], [(True, "shown", 0)]),
    ],
)
def test_heartbeats_and_visibility_reports_open_and_close_attention(
    script: list[tuple[float, str]], expected: list[tuple[bool, str, float]]
) -> None:
    state = room()
    messages = {"beat": Heartbeat(), "shown": Visibility(True), "hidden": Visibility(False)}
    published = []
    for offset, message in script:
        effects = state.handle(ALICE_CONN, messages[message], T0 + offset)
        assert WatchAttention(ALICE_CONN, T0 + offset + 2 * PERIOD) in effects
        published += attention(effects)
    assert published == [(v, r, T0 + at) for v, r, at in expected]


def test_a_heartbeat_gap_of_more_than_two_periods_closes_attention_until_the_next_heartbeat() -> None:
    state = room()
    state.handle(ALICE_CONN, Heartbeat(), T0)
    state.handle(ALICE_CONN, Heartbeat(), T0 + 30)
    # A timer that fires early re-arms for the real bound.
    assert state.attention_due(ALICE_CONN, T0 + 60) == [WatchAttention(ALICE_CONN, T0 + 90)]
    # Late timers close it when the gap passed the bound, not when they ran.
    assert attention(state.attention_due(ALICE_CONN, T0 + 95)) == [(False, "heartbeat_gap", T0 + 90)]
    assert state.attention_due(ALICE_CONN, T0 + 200) == []
    assert attention(state.handle(ALICE_CONN, Heartbeat(), T0 + 300)) == [(True, "shown", T0 + 300)]


def test_closing_a_visible_connection_closes_its_attention_first() -> None:
    state = room()
    state.handle(ALICE_CONN, Heartbeat(), T0)
    effects = state.leave(ALICE_CONN, T0 + 5)
    assert attention(effects[:1]) == [(False, "closed", T0 + 5)]
    assert state.attention(ALICE_CONN) is None
    state.handle(BOB_CONN, Visibility(False), T0)
    assert attention(state.leave(BOB_CONN, T0 + 5)) == []  # hidden already


def test_each_connection_of_a_person_has_its_own_attention_and_key() -> None:
    state = room()
    state.join(ConnId(21), ALICE, T0)
    first = state.handle(ALICE_CONN, Heartbeat(), T0)
    second = state.handle(ConnId(21), Heartbeat(), T0 + 1)
    keys = [
        e.event.conn_id
        for e in first + second
        if isinstance(e, Publish) and isinstance(e.event, AttentionChanged)
    ]
    assert len(set(keys)) == 2
    assert attention(state.leave(ConnId(21), T0 + 2, reason="superseded")) == [(False, "superseded", T0 + 2)]


@pytest.mark.parametrize("who", [EXPERT_CONN, STAFF_CONN])
def test_heartbeats_of_non_learners_measure_nothing(who: ConnId) -> None:
    state = room()
    assert state.handle(who, Heartbeat(), T0) == []
    assert state.handle(who, Visibility(False), T0) == []


def test_each_heartbeat_is_evidence_published_before_its_ack() -> None:
    state = room()
    key = state.attention(ALICE_CONN)
    assert key is not None
    effects = state.handle(ALICE_CONN, Heartbeat(seq=1), T0)
    assert [type(e) for e in effects] == [Publish, Publish, WatchAttention, Send]
    beat = effects[1]
    assert isinstance(beat, Publish)
    assert beat.event == LiveHeartbeat(
        session_id=7, person_id=ALICE.person_id, client_id=key.key, seq=1, at=_at(T0), visible=True
    )
    assert effects[-1] == Send(Conn(ALICE_CONN), {"type": "heartbeat_ack", "seq": 1})
    # A heartbeat that says the page is hidden: evidence of a hidden page, attention closed first.
    effects = state.handle(ALICE_CONN, Heartbeat(seq=2, visible=False), T0 + 30)
    published = [e.event for e in effects if isinstance(e, Publish)]
    assert [type(e) for e in published] == [AttentionChanged, LiveHeartbeat]
    assert isinstance(published[1], LiveHeartbeat)
    assert (published[1].seq, published[1].visible) == (2, False)


def test_heartbeat_seq_must_increase_and_an_older_page_gets_the_next_number() -> None:
    state = room()
    state.handle(ALICE_CONN, Heartbeat(seq=5), T0)
    for stale in (5, 3):
        with pytest.raises(ChannelError) as refused:
            state.handle(ALICE_CONN, Heartbeat(seq=stale), T0 + 1)
        assert refused.value.field == "seq"
    effects = state.handle(ALICE_CONN, Heartbeat(), T0 + 2)  # a page without seq
    assert effects[-1] == Send(Conn(ALICE_CONN), {"type": "heartbeat_ack", "seq": 6})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"type": "heartbeat", "seq": 0}', "seq"),
        ('{"type": "heartbeat", "seq": "1"}', "seq"),
        ('{"type": "heartbeat", "seq": true}', "seq"),
        ('{"type": "heartbeat", "seq": 1.5}', "seq"),
        ('{"type": "heartbeat", "seq": 1, "visible": "yes"}', "visible"),
    ],
)
def test_malformed_heartbeats_are_refused(raw: str, field: str) -> None:
    with pytest.raises(ChannelError) as refused:
        parse_command(raw, Limits())
    assert (refused.value.code, refused.value.field) == ("invalid_message", field)
    assert parse_command('{"type": "heartbeat", "seq": 3, "visible": true}', Limits()) == Heartbeat(3, True)


def test_the_end_request_is_handed_on() -> None:
    assert room().handle(EXPERT_CONN, EndSession(), T0) == [RequestEnd()]


# -- what the live room publishes -------------------------------------------------------------------------

CAMERA_ONLY = MediaState(7, "live", frozenset({"camera", "audio"}))
CAMERA_AND_SCREEN = MediaState(7, "live", frozenset({"camera", "screen", "audio"}))
ALICE_ON_STAGE = MediaState(7, "live", frozenset({"camera", "audio"}), (StageSeat(1, 2, True, True),))
LOST = MediaState(7, "reconnecting", grace_ends_at=T0 + 30)


@pytest.mark.parametrize(
    ("media", "wire"),
    [
        pytest.param(
            MediaState(7),
            {
                "status": "waiting",
                "expert": {"camera": False, "screen": False, "audio": False},
                "stage": [],
                "grace_ends_at": None,
            },
            id="waiting",
        ),
        pytest.param(
            CAMERA_ONLY,
            {
                "status": "live",
                "expert": {"camera": True, "screen": False, "audio": True},
                "stage": [],
                "grace_ends_at": None,
            },
            id="camera-only",
        ),
        pytest.param(
            ALICE_ON_STAGE,
            {
                "status": "live",
                "expert": {"camera": True, "screen": False, "audio": True},
                "stage": [{"seat": 1, "person_id": 2, "video": True, "audio": True}],
                "grace_ends_at": None,
            },
            id="a-speaker-on-stage",
        ),
        pytest.param(
            LOST,
            {
                "status": "reconnecting",
                "expert": {"camera": False, "screen": False, "audio": False},
                "stage": [],
                "grace_ends_at": "2023-11-14T22:13:50+00:00",
            },
            id="expert-lost",
        ),
        pytest.param(
            MediaState(7, "ended"),
            {
                "status": "ended",
                "expert": {"camera": False, "screen": False, "audio": False},
                "stage": [],
                "grace_ends_at": None,
            },
            id="ended",
        ),
    ],
)
def test_a_media_state_is_told_as_status_expert_slots_stage_and_grace(
    media: MediaState, wire: dict[str, Any]
) -> None:
    state = RoomState(7, LIMITS, media=media)
    welcome = state.join(ALICE_CONN, ALICE, T0)[0]
    assert isinstance(welcome, Send)
    assert welcome.message["media"] == wire


@pytest.mark.parametrize(
    ("before", "after", "told"),
    [
        pytest.param(MediaState(7), MediaState(7), False, id="still-waiting"),
        pytest.param(MediaState(7), CAMERA_ONLY, True, id="goes-live"),
        pytest.param(CAMERA_ONLY, CAMERA_AND_SCREEN, True, id="share-starts"),
        pytest.param(CAMERA_AND_SCREEN, CAMERA_ONLY, True, id="share-stops"),
        pytest.param(CAMERA_ONLY, ALICE_ON_STAGE, True, id="speaker-takes-a-seat"),
        pytest.param(ALICE_ON_STAGE, CAMERA_ONLY, True, id="speaker-leaves-the-seat"),
        pytest.param(CAMERA_ONLY, LOST, True, id="expert-lost"),
        pytest.param(LOST, LOST, False, id="still-lost"),
        pytest.param(LOST, MediaState(7, "ended"), True, id="ends"),
        pytest.param(
            CAMERA_ONLY, MediaState(7, "live", frozenset({"audio", "camera"})), False, id="same-slots"
        ),
    ],
)
def test_everyone_hears_what_the_room_publishes_when_it_changes(
    before: MediaState, after: MediaState, told: bool
) -> None:
    state = RoomState(7, LIMITS, media=before)
    for conn, who in ((EXPERT_CONN, EXPERT), (ALICE_CONN, ALICE)):
        state.join(conn, who, T0)
    effects = state.set_media(after)
    if told:
        assert effects == [Send(Everyone(), {"type": "media", **after.fields()})]
    else:
        assert effects == []
    assert state.media == after
    welcome = state.join(BOB_CONN, BOB, T0)[0]
    assert isinstance(welcome, Send)
    assert welcome.message["media"] == after.fields(), "a joining page starts from the latest state"


def test_a_room_without_a_media_state_starts_waiting() -> None:
    assert room().media == MediaState(7)


def test_media_of_another_session_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="session 8"):
        room().set_media(MediaState(8, "live"))


# -- rate limiting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "allowed"),
    [
        ([0.0] * 21, [True] * 20 + [False]),  # the burst, then nothing
        ([0.0] * 20 + [0.1], [True] * 21),  # 10/s: one token back after 0.1 s
        ([0.0] * 20 + [0.05, 0.1], [True] * 20 + [False, True]),
        ([0.0] * 20 + [100.0] * 21, [True] * 20 + [True] * 20 + [False]),  # refills to the burst, no more
        ([0.0] * 20 + [-50.0], [True] * 20 + [False]),  # a clock stepping back adds nothing
    ],
    ids=["burst", "refill", "partial refill", "capped at burst", "clock steps back"],
)
def test_the_token_bucket_allows_a_burst_then_the_rate(times: list[float], allowed: list[bool]) -> None:
    bucket = TokenBucket(rate_per_s=10, burst=20, now=0.0)
    assert [bucket.take(t) for t in times] == allowed
