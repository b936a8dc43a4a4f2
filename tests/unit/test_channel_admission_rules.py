"""The room's rules for who may stay: a few sockets per person (the oldest goes), and a person who may no
longer be in the room (withdrew) leaves the stage and the hand queue at once."""

from __future__ import annotations

import pytest

from streaming.channel_state import (
    ConnId,
    EndStage,
    Everyone,
    Experts,
    Limits,
    Participant,
    PersonId,
    Promote,
    RaiseHand,
    RoomState,
    Send,
)

T0 = 1_700_000_000.0
EXPERT = Participant(PersonId(1), "王老师", "expert")
ALICE = Participant(PersonId(2), "Alice", "learner")
BOB = Participant(PersonId(3), "Bob", "learner")


def room_with(alice_sockets: int, limits: Limits | None = None) -> RoomState:
    """The expert (conn 1), Bob (conn 2), then Alice's sockets (conns 10, 11, …) in the order opened."""
    state = RoomState(7, limits or Limits())
    state.join(ConnId(1), EXPERT, T0)
    state.join(ConnId(2), BOB, T0)
    for n in range(alice_sockets):
        state.join(ConnId(10 + n), ALICE, T0 + n)
    return state


@pytest.mark.parametrize(
    ("open_now", "cap", "closed"),
    [
        (0, 3, []),
        (1, 3, []),  # a phone and now a laptop
        (2, 3, []),  # and a spare tab
        (3, 3, [10]),  # a fourth: the oldest goes
        (5, 3, [10, 11, 12]),  # (more than the cap, e.g. a cap lowered): back to the cap with the new one
        (1, 1, [10]),  # one socket per person: the new one replaces the old
    ],
    ids=["first", "second", "third", "fourth-closes-the-oldest", "over-the-cap", "cap-of-one"],
)
def test_a_person_keeps_at_most_the_cap_of_sockets_the_newest_win(
    open_now: int, cap: int, closed: list[int]
) -> None:
    state = room_with(open_now, Limits(max_sockets_per_person=cap))
    assert state.surplus(ALICE.person_id) == [ConnId(c) for c in closed]
    # Counted per person: Bob's one socket is his own business (unless one is all he may have).
    assert state.surplus(BOB.person_id) == ([ConnId(2)] if cap == 1 else [])


def test_a_person_who_withdrew_leaves_the_stage_and_the_hand_queue_at_once() -> None:
    state = room_with(2)
    state.handle(ConnId(1), Promote(ALICE.person_id), T0)
    state.handle(ConnId(2), RaiseHand(), T0)  # Bob's hand is untouched
    effects = state.expel(ALICE.person_id)
    assert effects == [Send(Everyone(), {"type": "stage", "speakers": []}), EndStage(ALICE.person_id)]
    assert [p["person_id"] for p in state.hands()] == [BOB.person_id]


def test_an_expelled_learner_with_a_raised_hand_is_taken_out_of_the_queue() -> None:
    state = room_with(1)
    state.handle(ConnId(10), RaiseHand(), T0)
    effects = state.expel(ALICE.person_id)
    assert effects == [Send(Experts(), {"type": "hands", "queue": []})]


def test_expelling_someone_with_neither_hand_nor_stage_changes_nothing() -> None:
    assert room_with(1).expel(ALICE.person_id) == []
    assert room_with(0).expel(PersonId(99)) == []
