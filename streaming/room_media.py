"""What a live room is publishing, as its room channel tells the pages (docs/channel.md, "media"): a pure
value shared by `streaming.rooms`, which knows it, and `streaming.channel_state`, which tells it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

# waiting: the expert has not gone live (or their first connection is not up yet);
# live: a publication of the expert's is connected;
# reconnecting: the expert's publications were lost; the room waits out its grace period for them;
# ended: the room ended in this process (the session cannot go live again).
MediaStatus = Literal["waiting", "live", "reconnecting", "ended"]
EXPERT_SLOT_NAMES: Final = ("camera", "screen", "audio")


@dataclass(frozen=True)
class StageSeat:
    """A stage seat whose speaker's publication is connected."""

    seat: int
    person_id: int
    video: bool
    audio: bool

    def to_wire(self) -> dict[str, Any]:
        return {"seat": self.seat, "person_id": self.person_id, "video": self.video, "audio": self.audio}


@dataclass(frozen=True)
class MediaState:
    session_id: int
    status: MediaStatus = "waiting"
    expert: frozenset[str] = frozenset()  # the expert's slots with a connected publication
    stage: tuple[StageSeat, ...] = ()  # in seat order
    grace_ends_at: float | None = None  # reconnecting: when the room ends unless the expert is back (unix s)

    def fields(self) -> dict[str, Any]:
        """The wire fields (without "type"): as in the "media" message and in "welcome"."""
        return {
            "status": self.status,
            "expert": {slot: slot in self.expert for slot in EXPERT_SLOT_NAMES},
            "stage": [seat.to_wire() for seat in self.stage],
            "grace_ends_at": (
                None
                if self.grace_ends_at is None
                else datetime.fromtimestamp(self.grace_ends_at, UTC).isoformat()
            ),
        }
