"""Evidence as the engine reads it: heartbeats, learning clients, presence checks, accepted replay ranges,
and what the engine found (rejections, fraud flags). Frozen values; times are tz-aware UTC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Span = tuple[datetime, datetime]

# Rejection reasons (why a heartbeat, or the pair it closes, earned nothing).
DUPLICATE_SEQ = "duplicate_seq"  # a sequence number already seen for this client (fraud 4: replay)
OUT_OF_ORDER = "out_of_order"  # a lower sequence number arriving after a higher one (fraud 4)
GAP = "gap"  # more than 2 × heartbeat period since the previous heartbeat (R16)
HIDDEN = "hidden"  # the page was hidden at either end of the pair (R17)
TOO_FAST = "too_fast"  # reported rate above the maximum (R15)
FORWARD_SEEK = "forward_seek"  # media jumped ahead of wall time, or past the furthest point (R14)
BACKWARDS = "backwards"  # media went back (a rewind: allowed, just not credited for that pair)
SUPERSEDED = "superseded"  # at or after the client was superseded by a newer one (R18)
OUTSIDE_WINDOW = "outside_window"  # outside the session's live window (R8)

# Flag severities.
LOW = "low"
MEDIUM = "medium"
HIGH = "high"


@dataclass(frozen=True)
class Beat:
    """One heartbeat as stored: `at` is the server's receipt time, the rest is what the client said."""

    client_id: str
    seq: int
    at: datetime
    position_s: float
    rate: float
    visible: bool


@dataclass(frozen=True)
class Client:
    """One learning client (a replay playback or an overflow-HLS client session), opened by the server.
    `first_viewing` None means "as the caller says" (replay_credit's argument)."""

    client_id: str
    opened_at: datetime
    superseded_at: datetime | None
    beats: tuple[Beat, ...]
    first_viewing: bool | None = None


@dataclass(frozen=True)
class Check:
    """One presence check as the person saw it (live: from the room channel; replay: from playback)."""

    check_id: str
    issued_at: datetime
    deadline_at: datetime
    answered_at: datetime | None
    latency_ms: int | None


@dataclass(frozen=True)
class AcceptedRange:
    """A replay range the server accepts: media seconds [media_from, media_to] played during wall time
    [wall_from, wall_to]."""

    client_id: str
    media_from: float
    media_to: float
    wall_from: datetime
    wall_to: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "media_from": self.media_from,
            "media_to": self.media_to,
            "wall_from": self.wall_from.isoformat(),
            "wall_to": self.wall_to.isoformat(),
        }


@dataclass(frozen=True)
class Rejection:
    """Why a heartbeat (or the pair it closes) was not accepted; reason is one of the constants above."""

    client_id: str
    seq: int
    at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Flag:
    """A fraud or anomaly finding with its evidence. Codes the engine raises: auto_confirm,
    heartbeat_replay, playback_rate, completion_without_coverage, uncorroborated_heartbeats,
    double_claim, overlapping_courses."""

    code: str
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "detail": self.detail}
