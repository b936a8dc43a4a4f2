"""Typed events: validation that names the field, the JSON wire form, and docs/events.md kept complete."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from infra import events
from infra.bus import Delivery
from infra.errors import Invalid

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
AT = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)

SAMPLES: list[events.Event] = [
    events.SessionStarted(session_id=1, at=AT),
    events.SessionEnded(session_id=1, at=AT, reason="ended_by_expert"),
    events.ViewerJoined(session_id=1, person_id=2, peer_id="p-1", at=AT),
    events.ViewerLeft(session_id=1, person_id=2, peer_id="p-1", at=AT),
    events.PresenceCheckIssued(
        session_id=1, check_id="c-1", issued_at=AT, deadline_at=AT + timedelta(seconds=60)
    ),
    events.PresenceCheckAnswered(session_id=1, check_id="c-1", person_id=2, answered_at=AT),
    events.RecordingSegmentStored(session_id=1, recording_id="r-1", track="camera", seq=0, duration_s=2.0),
    events.RecordingFinalized(
        session_id=1,
        recording_id="r-1",
        segment_count=1800,
        duration_s=3600.5,
        playlist_key="hls/1/r-1/camera/index.m3u8",
        mp4_key=None,
        at=AT,
        size_bytes=123_456_789,
        master_key="hls/1/r-1/master.m3u8",
        angles=(
            events.RecordingAngle(
                angle="camera",
                start_s=0.0,
                duration_s=3600.5,
                segments=1800,
                width=1280,
                height=720,
                playlist_key="hls/1/r-1/camera/index.m3u8",
                mp4_key="hls/1/r-1/camera.mp4",
                mp4_bytes=100_000_000,
            ),
        ),
    ),
    events.AttentionChanged(session_id=1, person_id=2, conn_id="k-1", visible=False, at=AT, reason="hidden"),
    events.LiveHeartbeat(session_id=1, person_id=2, client_id="k-1", seq=5, at=AT, visible=True),
    events.HlsHeartbeat(
        session_id=1,
        person_id=2,
        client_id="h-1",
        seq=3,
        at=AT,
        media_sequence=40,
        position_s=81.5,
        rate=1.0,
        visible=True,
    ),
    events.HlsSegmentFetched(session_id=1, person_id=2, key="hls/1/live/camera/seg-40.m4s", at=AT),
    events.PlaybackHeartbeat(
        client_id="c-1",
        person_id=2,
        recording_id="r-1",
        seq=7,
        at=AT,
        position_s=420.0,
        rate=1.0,
        visible=True,
        angle="camera",
    ),
    events.ReplayCheckIssued(
        client_id="c-1",
        person_id=2,
        recording_id="r-1",
        check_id="q-1",
        position_s=900.0,
        issued_at=AT,
        deadline_at=AT + timedelta(seconds=60),
    ),
    events.ReplayCheckAnswered(
        client_id="c-1", person_id=2, recording_id="r-1", check_id="q-1", answered_at=AT, latency_ms=2400
    ),
]


def sample_params() -> list[Any]:
    return [pytest.param(e, id=e.type) for e in SAMPLES]


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def field_params(required: bool = True) -> list[Any]:
    return [
        pytest.param(e, f.name, id=f"{e.type}.{f.name}")
        for e in SAMPLES
        for f in dataclasses.fields(e)
        if _required(f) == required
    ]


def test_every_event_type_has_a_sample() -> None:
    assert {e.type for e in SAMPLES} == set(events.EVENT_TYPES)


@pytest.mark.parametrize("event", sample_params())
def test_an_event_survives_the_trip_through_json(event: events.Event) -> None:
    wire = json.loads(json.dumps(event.to_dict()))
    assert type(event).from_dict(wire) == event
    assert events.decode(Delivery(event.topic, "1-0", event.type, wire, 1)) == event
    assert event.topic in events.TOPICS


@pytest.mark.parametrize(("event", "name"), field_params())
def test_a_missing_field_is_named(event: events.Event, name: str) -> None:
    data = event.to_dict()
    del data[name]
    with pytest.raises(Invalid) as caught:
        type(event).from_dict(data)
    assert caught.value.field == name
    assert name in caught.value.message


@pytest.mark.parametrize(("event", "name"), field_params(required=False))
def test_a_field_added_later_may_be_missing_from_an_older_producer(event: events.Event, name: str) -> None:
    data = event.to_dict()
    del data[name]
    decoded = type(event).from_dict(data)
    default = next(f for f in dataclasses.fields(event) if f.name == name).default
    assert getattr(decoded, name) == default


@pytest.mark.parametrize(
    ("event", "name", "value"),
    [
        pytest.param(SAMPLES[0], "session_id", "1", id="id-as-string"),
        pytest.param(SAMPLES[0], "session_id", True, id="id-as-bool"),
        pytest.param(SAMPLES[0], "session_id", 0, id="id-zero"),
        pytest.param(SAMPLES[0], "session_id", 1.0, id="id-as-float"),
        pytest.param(SAMPLES[0], "at", "2025-03-01T08:30:00", id="time-without-zone"),
        pytest.param(SAMPLES[0], "at", "yesterday", id="time-not-iso"),
        pytest.param(SAMPLES[0], "at", 1740817800, id="time-as-number"),
        pytest.param(SAMPLES[1], "reason", "", id="empty-reason"),
        pytest.param(SAMPLES[2], "peer_id", None, id="null-peer"),
        pytest.param(SAMPLES[2], "peer_id", 5, id="peer-as-number"),
        pytest.param(SAMPLES[6], "seq", -1, id="negative-seq"),
        pytest.param(SAMPLES[6], "duration_s", "2.0", id="duration-as-string"),
        pytest.param(SAMPLES[6], "duration_s", -0.5, id="negative-duration"),
        pytest.param(SAMPLES[7], "mp4_key", "", id="empty-optional-key"),
        pytest.param(SAMPLES[7], "size_bytes", -1, id="negative-size"),
        pytest.param(SAMPLES[7], "angles", {"angle": "camera"}, id="angles-not-an-array"),
        pytest.param(SAMPLES[7], "angles", ["camera"], id="angle-not-an-object"),
        pytest.param(SAMPLES[7], "angles", [{"angle": "camera"}], id="angle-missing-fields"),
        pytest.param(
            SAMPLES[7],
            "angles",
            [{**SAMPLES[7].to_dict()["angles"][0], "duration_s": -1}],
            id="angle-negative-duration",
        ),
    ],
)
def test_a_malformed_field_is_named(event: events.Event, name: str, value: Any) -> None:
    data = event.to_dict() | {name: value}
    with pytest.raises(Invalid) as caught:
        type(event).from_dict(data)
    assert caught.value.field == name


def test_a_deadline_before_the_check_was_issued_is_rejected() -> None:
    with pytest.raises(Invalid) as caught:
        events.PresenceCheckIssued(session_id=1, check_id="c", issued_at=AT, deadline_at=AT)
    assert caught.value.field == "deadline_at"


def test_times_are_kept_in_utc_and_written_as_iso_8601() -> None:
    beijing = timezone(timedelta(hours=8))
    event = events.SessionStarted(session_id=1, at=datetime(2025, 3, 1, 16, 30, tzinfo=beijing))
    assert event.at == AT
    assert event.at.tzinfo is UTC
    assert event.to_dict() == {"session_id": 1, "at": "2025-03-01T08:30:00+00:00"}
    assert events.SessionStarted.from_dict({"session_id": 1, "at": "2025-03-01T16:30:00+08:00"}) == event


def test_a_naive_time_is_rejected_on_construction_too() -> None:
    with pytest.raises(Invalid) as caught:
        events.SessionStarted(session_id=1, at=datetime(2025, 3, 1, 8, 30))  # noqa: DTZ001 - the point
    assert caught.value.field == "at"


def test_unknown_keys_from_a_newer_producer_are_ignored() -> None:
    data = SAMPLES[0].to_dict() | {"added_later": "x"}
    assert events.SessionStarted.from_dict(data) == SAMPLES[0]


def test_decode_rejects_an_unknown_type_and_a_type_on_the_wrong_topic() -> None:
    with pytest.raises(Invalid) as unknown:
        events.decode(Delivery(events.SESSIONS, "1-0", "session.paused", {}, 1))
    assert unknown.value.field == "type"
    with pytest.raises(Invalid) as misplaced:
        events.decode(Delivery(events.ATTENDANCE, "1-0", "session.started", SAMPLES[0].to_dict(), 1))
    assert misplaced.value.field == "topic"


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [("1-0", (1, 0)), ("1700000000000-12", (1700000000000, 12)), ("0007-1", (7, 1))],
)
def test_event_ids_parse_into_comparable_pairs(event_id: str, expected: tuple[int, int]) -> None:
    assert events.parse_event_id(event_id) == expected


@pytest.mark.parametrize("event_id", ["", "1", "1-", "-1", "a-1", "1-2-3", "1.5-0", " 1-0"])
def test_malformed_event_ids_are_rejected(event_id: str) -> None:
    with pytest.raises(Invalid):
        events.parse_event_id(event_id)


def test_event_data_is_encoded_as_compact_utf8_json() -> None:
    assert events.encode_data({"标题": "继续教育", "n": 1}) == '{"标题":"继续教育","n":1}'


def test_docs_list_every_event_type_with_its_topic_and_fields() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for event_type, cls in events.EVENT_TYPES.items():
        match = re.search(
            rf"^#+ [^\n]*`{re.escape(event_type)}`[^\n]*$(?P<body>.*?)(?=^#+ |\Z)", text, re.M | re.S
        )
        assert match, f"docs/events.md has no heading for {event_type}"
        body = match.group("body")
        assert f"topic `{cls.topic}`" in body.lower(), f"{event_type}: topic not stated"
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in body, f"docs/events.md: {event_type} does not describe {f.name}"
