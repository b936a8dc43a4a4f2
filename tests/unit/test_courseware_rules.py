"""The courseware review rules (catalog.courseware.rules): which decision applies to which state, what a
submission needs, and when a version was the approved one (R27)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog.courseware.review import credit_hours
from catalog.courseware.rules import (
    Decision,
    Event,
    Processing,
    ReviewState,
    approved_spans,
    check_submittable,
    decide,
)
from infra.errors import Conflict, Invalid

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("state", "decision", "comments", "result"),
    [
        pytest.param("submitted", "approved", "", "approved", id="approve-without-comments"),
        pytest.param("submitted", "rejected", "画面不清", "rejected", id="reject-with-comments"),
        pytest.param("approved", "revoked", "标准已废止", "revoked", id="revoke-with-comments"),
        pytest.param("submitted", "rejected", "  \n", Invalid, id="reject-needs-comments"),
        pytest.param("approved", "revoked", "", Invalid, id="revoke-needs-comments"),
        pytest.param("draft", "approved", "", Conflict, id="draft-not-submitted"),
        pytest.param("approved", "approved", "", Conflict, id="approve-twice"),
        pytest.param("rejected", "approved", "", Conflict, id="rejected-is-final"),
        pytest.param("superseded", "revoked", "x", Conflict, id="superseded-not-revoked"),
        pytest.param("revoked", "approved", "", Conflict, id="revoked-is-final"),
        pytest.param("submitted", "revoked", "x", Conflict, id="revoke-only-approved"),
    ],
)
def test_a_decision_applies_only_to_its_state(
    state: str, decision: str, comments: str, result: object
) -> None:
    if isinstance(result, str):
        assert decide(ReviewState(state), Decision(decision), comments) == ReviewState(result)
    else:
        assert isinstance(result, type)
        with pytest.raises(result):
            decide(ReviewState(state), Decision(decision), comments)


@pytest.mark.parametrize(
    ("state", "processing", "kind", "number", "others", "field"),
    [
        pytest.param("draft", "ready", "video", 1, [], None, id="ready-draft"),
        pytest.param("draft", "ready", "video", 3, [(1, "approved"), (2, "rejected")], None, id="newer"),
        pytest.param("draft", "processing", "video", 1, [], "processing", id="still-processing"),
        pytest.param("draft", "failed", "video", 1, [], "processing", id="failed-check"),
        pytest.param("rejected", "ready", "video", 1, [], "review_state", id="rejected-final"),
        pytest.param("submitted", "ready", "video", 1, [], "review_state", id="already-submitted"),
        pytest.param("draft", "ready", "pdf", 1, [], "media_kind", id="slides-alone"),
        pytest.param("draft", "ready", "video", 2, [(1, "submitted")], "review_state", id="one-at-a-time"),
        pytest.param("draft", "ready", "video", 2, [(3, "superseded")], "version", id="older-than-approved"),
    ],
)
def test_a_version_may_be_submitted_when_it_is_a_ready_draft_video_newer_than_the_approved(
    state: str, processing: str, kind: str, number: int, others: list[tuple[int, str]], field: str | None
) -> None:
    args = (
        ReviewState(state),
        Processing(processing),
        kind,
        number,
        [(n, ReviewState(s)) for n, s in others],
    )
    if field is None:
        check_submittable(*args)
    else:
        with pytest.raises(Conflict) as caught:
            check_submittable(*args)
        assert caught.value.field == field


A, B = 1, 2


@pytest.mark.parametrize(
    ("events", "version", "spans"),
    [
        pytest.param([], A, [], id="never-approved"),
        pytest.param([(A, "approved", 10)], A, [(10, 60)], id="approved-until-now"),
        pytest.param([(A, "approved", 10), (A, "revoked", 20)], A, [(10, 20)], id="revoked"),
        pytest.param([(A, "approved", 10), (B, "approved", 30)], A, [(10, 30)], id="superseded"),
        pytest.param([(A, "approved", 10), (B, "approved", 30)], B, [(30, 60)], id="the-new-one"),
        pytest.param(
            [(A, "approved", 10), (A, "revoked", 20), (B, "approved", 30), (B, "revoked", 40)],
            B,
            [(30, 40)],
            id="each-its-own-span",
        ),
        pytest.param([(B, "revoked", 5), (A, "approved", 10)], A, [(10, 60)], id="other-revocation"),
    ],
)
def test_a_version_was_approved_from_its_approval_until_revoked_or_superseded(
    events: list[tuple[int, str, float]], version: int, spans: list[tuple[float, float]]
) -> None:
    got = approved_spans(version, [Event(v, Decision(d), t(m)) for v, d, m in events], t(60))
    assert got == [(t(a), t(b)) for a, b in spans]


@pytest.mark.parametrize(
    ("duration_s", "minutes_per_xueshi", "hours"),
    [(3600.0, 45, "1.3"), (2700.0, 45, "1.0"), (12.0, 1, "0.2"), (120.0, 45, "0.0"), (0.0, 45, "0.0")],
)
def test_the_shared_courses_hours_are_the_videos_minutes_in_xueshi(
    duration_s: float, minutes_per_xueshi: int, hours: str
) -> None:
    assert str(credit_hours(duration_s, minutes_per_xueshi)) == hours
