"""The review rules of shared courseware (R27), pure: a version's review states and who moves it between
them, and when a version was the approved one (what replay credit of it may rest on).

    draft ──submit (owner; processing ready)──▶ submitted ──approve (reviewer)──▶ approved
                                                   │                               │   │
                                                   └──reject (reviewer; comments)  │   └─revoke (reviewer;
                                                          ▼                        │      comments) ▼
                                                      rejected        another version approved   revoked
                                                                                   ▼
                                                                              superseded

Rejected, revoked and superseded are final for that version: new content is a new version, reviewed
again. Imports nothing of aiohttp or SQLAlchemy; times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from infra.errors import Conflict, Invalid

COMMENTS_MAX = 2000


class ReviewState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


class Processing(StrEnum):
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Decision(StrEnum):
    """What a reviewer decides (the `courseware_reviews.decision` values)."""

    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"


# decision -> (the state it applies to, the state it leads to, whether comments are required)
DECISIONS: dict[Decision, tuple[ReviewState, ReviewState, bool]] = {
    Decision.APPROVED: (ReviewState.SUBMITTED, ReviewState.APPROVED, False),
    Decision.REJECTED: (ReviewState.SUBMITTED, ReviewState.REJECTED, True),
    Decision.REVOKED: (ReviewState.APPROVED, ReviewState.REVOKED, True),
}


def decide(state: ReviewState, decision: Decision, comments: str) -> ReviewState:
    """The state `decision` moves a version in `state` to: Conflict when it does not apply there, Invalid
    (field `comments`) when it needs comments and has none (a rejection or a revocation says why)."""
    source, target, needs_comments = DECISIONS[decision]
    if state != source:
        raise Conflict(
            f"cannot mark a {state.value} version {decision.value}: only a {source.value} version",
            field="review_state",
            details={"review_state": state.value, "decision": decision.value},
        )
    if needs_comments and not comments.strip():
        raise Invalid(f"comments are required when a version is {decision.value}", field="comments")
    return target


def check_submittable(
    state: ReviewState,
    processing: Processing,
    media_kind: str,
    version: int,
    others: Sequence[tuple[int, ReviewState]],
) -> None:
    """Conflict unless a version may be submitted for review: a draft (a rejected, revoked or superseded
    version is final: upload a new one) whose processing is ready (checked and rendered), a video (slides
    come with a video version), no other version of the courseware under review, and newer than every
    version approved before (`others`: the courseware's other versions as (number, state))."""
    if state != ReviewState.DRAFT:
        raise Conflict(
            f"only a draft version may be submitted (this one is {state.value}): upload a new version",
            field="review_state",
            details={"review_state": state.value},
        )
    if processing != Processing.READY:
        raise Conflict(
            f"the version is not ready for review (processing: {processing.value})",
            field="processing",
            details={"processing": processing.value},
        )
    if media_kind != "video":
        raise Conflict("only a video version may be submitted (slides come with a video)", field="media_kind")
    pending = [n for n, st in others if st == ReviewState.SUBMITTED]
    if pending:
        raise Conflict(
            f"version {pending[0]} is already under review",
            field="review_state",
            details={"submitted_version": pending[0]},
        )
    newer = [n for n, st in others if st in (ReviewState.APPROVED, ReviewState.SUPERSEDED) and n > version]
    if newer:
        raise Conflict(
            f"version {max(newer)} was approved already: submit a newer version",
            field="version",
            details={"approved_version": max(newer)},
        )


# -- when a version was the approved one (R27 for replay credit) ----------------------------------------


@dataclass(frozen=True)
class Event:
    """A review event of a courseware: `version_id` approved or revoked at `at`."""

    version_id: int
    decision: Decision
    at: datetime


Span = tuple[datetime, datetime]


def approved_spans(version_id: int, events: Iterable[Event], now: datetime) -> list[Span]:
    """When `version_id` was the courseware's approved version: from its approval until it was revoked or
    another version of the same courseware was approved (superseding it), or until `now` while it still
    is. `events` are the courseware's approvals and revocations (rejections change nothing here)."""
    spans: list[Span] = []
    start: datetime | None = None
    for event in sorted(events, key=lambda e: (e.at, e.decision != Decision.APPROVED)):
        if event.decision == Decision.APPROVED and event.version_id == version_id:
            start = start or event.at
        elif start is not None and (
            event.decision == Decision.APPROVED
            or (event.decision == Decision.REVOKED and event.version_id == version_id)
        ):
            spans.append((start, event.at))
            start = None
    if start is not None:
        spans.append((start, max(start, now)))
    return spans


def inside(at: datetime, spans: Sequence[Span]) -> bool:
    return any(a <= at <= b for a, b in spans)
