"""Replays: the catalog's event consumer turns session and recording events into rows (idempotently,
dropping malformed events), and the replay API gives playback to those who may watch (the playback evidence
itself: test_catalog_playback.py)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

import catalog
from catalog.consumer import CONSUMER, GROUP, EventConsumer
from catalog.models import Recording, Session
from infra import events, media_access
from infra.appkeys import BUS, SETTINGS
from infra.bus_memory import MemoryBus
from infra.errors import Forbidden
from tests.helpers import wait_until

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import World

Client = TestClient[web.Request, web.Application]
AT = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def finalized(
    session_id: int, recording_id: str = "r-20260301-abc", **changes: Any
) -> events.RecordingFinalized:
    prefix = f"hls/{session_id}/{recording_id}"
    angles = tuple(
        events.RecordingAngle(
            angle=name,
            start_s=start_s,
            duration_s=60.0 - start_s,
            segments=30,
            width=1280,
            height=720,
            playlist_key=f"{prefix}/{name}/index.m3u8",
            mp4_key=f"{prefix}/{name}.mp4",
            mp4_bytes=5_000_000,
        )
        for name, start_s in (("camera", 0.0), ("screen", 10.0))
    )
    values: dict[str, Any] = {
        "session_id": session_id,
        "recording_id": recording_id,
        "segment_count": 60,
        "duration_s": 60.0,
        "playlist_key": f"{prefix}/camera/index.m3u8",
        "mp4_key": f"{prefix}/camera.mp4",
        "at": AT + timedelta(hours=1),
        "size_bytes": 20_000_000,
        "master_key": f"{prefix}/master.m3u8",
        "angles": angles,
    }
    values.update(changes)
    return events.RecordingFinalized(**values)


async def session_row(w: World) -> Session:
    async with w.db.sessions.begin() as s:
        row = await s.get(Session, w.session_id)
        assert row is not None
        return row


async def recordings(w: World) -> list[Recording]:
    async with w.db.sessions.begin() as s:
        return list(await s.scalars(select(Recording).order_by(Recording.id)))


# -- the consumer -------------------------------------------------------------------------------------


async def test_published_events_reach_the_database_through_the_running_consumer(
    client: Client, world: World
) -> None:
    bus = client.app[BUS]
    await events.publish(bus, events.SessionStarted(session_id=world.session_id, at=AT))
    await events.publish(
        bus,
        events.SessionEnded(
            session_id=world.session_id, at=AT + timedelta(hours=1), reason="ended_by_expert"
        ),
    )
    await events.publish(bus, finalized(world.session_id))

    async def all_done() -> bool:
        return await bus.pending_count(events.RECORDINGS, GROUP) == 0 and bool(await recordings(world))

    await wait_until(all_done, timeout_s=10, message="the recording registered")
    session = await wait_until(_ended(world), timeout_s=10, message="session actual_end")
    assert session.actual_start == AT
    assert session.actual_end == AT + timedelta(hours=1)
    (recording,) = await recordings(world)
    assert recording.id == "r-20260301-abc"
    assert recording.state == "finalized"
    assert recording.duration_s == 60.0
    assert recording.size_bytes == 20_000_000
    assert recording.finalized_at == AT + timedelta(hours=1)
    assert recording.master_key == f"hls/{world.session_id}/r-20260301-abc/master.m3u8"
    assert set(recording.angles) == {"camera", "screen"}
    assert recording.angles["screen"]["start_s"] == 10.0
    assert recording.angles["camera"]["mp4_key"].endswith("/camera.mp4")
    assert client.app[CONSUMER].name  # one named consumer per process


def _ended(w: World) -> Any:
    async def check() -> Session | None:
        row = await session_row(w)
        return row if row.actual_end is not None else None

    return check


@pytest.fixture
async def consumer(client: Client, world: World) -> EventConsumer:
    """A second consumer driven by hand (the app's own is running too; both share group "catalog")."""
    return EventConsumer(MemoryBus(retention=1000), world.db, "test-consumer", block_s=0)


async def drain(consumer: EventConsumer, topic: str) -> None:
    await consumer.handle(await consumer.bus.consume(topic, GROUP, consumer.name, block_s=0))


async def test_duplicate_deliveries_change_nothing_and_the_first_start_wins(
    consumer: EventConsumer, world: World
) -> None:
    bus = consumer.bus
    later = AT + timedelta(minutes=5)
    for event in (
        events.SessionStarted(session_id=world.session_id, at=AT),
        events.SessionStarted(session_id=world.session_id, at=AT),
        events.SessionStarted(session_id=world.session_id, at=later),  # a restart: the first start stays
        events.SessionEnded(session_id=world.session_id, at=AT + timedelta(hours=1), reason="publisher_lost"),
        events.SessionEnded(
            session_id=world.session_id, at=AT + timedelta(hours=2), reason="ended_by_expert"
        ),
        events.SessionEnded(
            session_id=world.session_id, at=AT + timedelta(hours=1), reason="ended_by_expert"
        ),
    ):
        await events.publish(bus, event)
    for _ in range(3):
        await events.publish(bus, finalized(world.session_id))
    await drain(consumer, events.SESSIONS)
    await drain(consumer, events.RECORDINGS)
    session = await session_row(world)
    assert session.actual_start == AT
    assert session.actual_end == AT + timedelta(hours=2)  # the latest end wins
    assert len(await recordings(world)) == 1
    assert await bus.pending_count(events.SESSIONS, GROUP) == 0
    assert await bus.pending_count(events.RECORDINGS, GROUP) == 0


async def test_malformed_and_unknown_session_events_are_acknowledged_and_logged_not_retried(
    consumer: EventConsumer, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    bus = consumer.bus
    await bus.publish(events.RECORDINGS, "recording.finalized", {"session_id": world.session_id})
    await bus.publish(events.SESSIONS, "session.paused", {"session_id": world.session_id})
    await events.publish(bus, finalized(999_999, recording_id="orphan"))
    await events.publish(
        bus,
        events.RecordingSegmentStored(
            session_id=world.session_id, recording_id="r", track="camera", seq=0, duration_s=2.0
        ),
    )
    with caplog.at_level(logging.ERROR, logger="catalog.consumer"):
        await drain(consumer, events.SESSIONS)
        await drain(consumer, events.RECORDINGS)
    assert await bus.pending_count(events.SESSIONS, GROUP) == 0
    assert await bus.pending_count(events.RECORDINGS, GROUP) == 0
    assert await recordings(world) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "malformed" in logged
    assert "missing field recording_id" in logged
    assert "unknown event type 'session.paused'" in logged
    assert "session 999999 not found" in logged


async def test_a_failing_handler_leaves_the_event_pending_and_a_claim_retries_it(
    consumer: EventConsumer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = consumer.bus
    await events.publish(bus, finalized(world.session_id))
    original = catalog.replays.register

    async def down(*_args: Any) -> bool:
        raise ConnectionError("database went away")

    monkeypatch.setattr(catalog.replays, "register", down)
    await drain(consumer, events.RECORDINGS)
    assert await bus.pending_count(events.RECORDINGS, GROUP) == 1
    assert await recordings(world) == []

    monkeypatch.setattr(catalog.replays, "register", original)
    claimed = await bus.claim_stale(events.RECORDINGS, GROUP, "another-process", min_idle_s=0)
    assert [d.attempts for d in claimed] == [2]
    await consumer.handle(claimed)
    assert await bus.pending_count(events.RECORDINGS, GROUP) == 0
    assert len(await recordings(world)) == 1


async def test_an_event_failing_max_attempts_times_is_dropped(
    consumer: EventConsumer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = consumer.bus
    consumer.max_attempts = 2
    await events.publish(bus, finalized(world.session_id))

    async def broken(*_args: Any) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(catalog.replays, "register", broken)
    await drain(consumer, events.RECORDINGS)
    assert await bus.pending_count(events.RECORDINGS, GROUP) == 1
    await consumer.handle(await bus.claim_stale(events.RECORDINGS, GROUP, consumer.name, min_idle_s=0))
    assert await bus.pending_count(events.RECORDINGS, GROUP) == 0


async def test_an_event_from_an_older_producer_registers_one_angle_from_its_playlist(
    consumer: EventConsumer, world: World
) -> None:
    data = finalized(world.session_id).to_dict()
    for name in ("size_bytes", "master_key", "angles"):
        del data[name]
    await consumer.bus.publish(events.RECORDINGS, "recording.finalized", data)
    await drain(consumer, events.RECORDINGS)
    (recording,) = await recordings(world)
    assert list(recording.angles) == ["camera"]
    assert recording.size_bytes is None
    assert recording.angles["camera"]["playlist_key"] == data["playlist_key"]


# -- the API -----------------------------------------------------------------------------------------


async def test_course_page_lists_its_finalized_recordings_as_replays(client: Client, world: World) -> None:
    recording_id = await world.recording(world.session_id, duration_s=90.0)
    resp = await client.get(f"/api/courses/{world.course_id}", headers=world.actors["learner"].headers)
    assert resp.status == 200
    (replay,) = (await resp.json())["replays"]
    assert replay == {
        "id": recording_id,
        "session_id": world.session_id,
        "session_title": "第一讲",
        "duration_s": 90.0,
        "angles": ["camera", "screen"],
        "finalized_at": replay["finalized_at"],
    }


@pytest.mark.parametrize(
    ("actor", "named"),
    [
        ("", False),  # anonymous
        ("staff", False),  # a learner not enrolled in the course
        ("other_provider_admin", False),
        ("learner", True),
        ("expert", True),
        ("provider_admin", True),
        ("bureau", True),
    ],
)
async def test_replay_ids_are_named_only_to_those_who_may_watch(
    client: Client, world: World, actor: str, named: bool
) -> None:
    recording_id = await world.recording(world.session_id, duration_s=90.0)
    headers = world.actors[actor].headers if actor else {}
    course = await (await client.get(f"/api/courses/{world.course_id}", headers=headers)).json()
    session = await (await client.get(f"/api/sessions/{world.session_id}", headers=headers)).json()
    expected = recording_id if named else None
    assert [r["id"] for r in course["replays"]] == [expected]
    assert course["replays"][0]["duration_s"] == 90.0  # that there is a replay, and how long, is public
    assert [s["replay"] for s in course["sessions"]] == [{"id": expected, "duration_s": 90.0}]
    assert session["replay"] == {"id": expected, "duration_s": 90.0}
    if not named:
        assert recording_id not in json.dumps([course, session])


def media_cookie(resp: Any) -> Any:
    return resp.cookies.get(media_access.COOKIE)


async def test_opening_a_replay_grants_its_sessions_media(client: Client, world: World) -> None:
    recording_id = await world.recording(world.session_id)
    headers = world.actors["learner"].headers
    resp = await client.get(f"/api/replays/{recording_id}", headers=headers)
    cookie = media_cookie(resp)
    assert cookie is not None
    assert cookie["path"] == f"/hls/{world.session_id}/"
    assert cookie["httponly"]
    assert int(cookie["max-age"]) == media_access.TTL_S
    secret = client.app[SETTINGS].secret_key
    grant = media_access.check(
        secret, cookie.value, f"/hls/{world.session_id}/{recording_id}/x.m4s", time.time()
    )
    assert (grant.person_id, grant.role) == (world.actors["learner"].person_id, "learner")
    with pytest.raises(Forbidden):
        media_access.check(secret, cookie.value, f"/hls/{world.session_id + 1}/r/x.m4s", time.time())


@pytest.mark.parametrize(
    ("actor", "status"),
    [("", 401), ("staff", 403), ("other_provider_admin", 403), ("learner", 200), ("expert", 200)],
)
async def test_the_live_hls_grant_goes_only_to_those_who_may_watch(
    client: Client, world: World, actor: str, status: int
) -> None:
    headers = world.actors[actor].headers if actor else {}
    resp = await client.post(f"/api/sessions/{world.session_id}/hls-access", headers=headers)
    assert resp.status == status, await resp.text()
    if status == 200:
        assert (await resp.json())["prefix"] == f"/hls/{world.session_id}/"
        assert media_cookie(resp)["path"] == f"/hls/{world.session_id}/"
    else:
        assert media_cookie(resp) is None
    assert (await client.post("/api/sessions/999999/hls-access", headers=headers)).status in (401, 404)


async def test_a_withdrawn_learner_is_granted_no_more_media(client: Client, world: World) -> None:
    headers = world.actors["learner"].headers
    resp = await client.post(f"/api/courses/{world.course_id}/withdraw", headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/api/sessions/{world.session_id}/hls-access", headers=headers)
    assert resp.status == 403
    assert media_cookie(resp) is None


async def test_enrolled_learner_gets_hls_and_mp4_urls_and_no_progress_yet(
    client: Client, world: World
) -> None:
    recording_id = await world.recording(world.session_id)
    resp = await client.get(f"/api/replays/{recording_id}", headers=world.actors["learner"].headers)
    assert resp.status == 200
    body = await resp.json()
    prefix = f"/hls/{world.session_id}/{recording_id}"
    assert [a["name"] for a in body["angles"]] == ["camera", "screen"]
    assert body["angles"][0]["hls_url"] == f"{prefix}/camera/index.m3u8"
    assert body["angles"][1]["mp4_url"] == f"{prefix}/screen.mp4"
    assert body["angles"][1]["start_s"] == 10.0
    assert body["master_url"] == f"{prefix}/master.m3u8"
    assert body["duration_s"] == 120.0
    assert body["course_id"] == world.course_id
    assert body["progress"] is None


async def test_unknown_replay_is_404_naming_the_recording(client: Client, world: World) -> None:
    resp = await client.get("/api/replays/no-such-thing", headers=world.actors["learner"].headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["field"] == "recording_id"
    assert (await client.get("/api/replays/bad.id", headers=world.actors["learner"].headers)).status == 404


async def test_a_media_grant_is_void_once_its_learner_withdraws_even_after_enrolling_again(
    client: Client, world: World
) -> None:
    """What the /hls route and nginx's auth_request ask (catalog.check_media_grant): the learner's cookie
    admits them while enrolled and not after a withdrawal, even if they enroll again (a new cookie does)."""
    recording_id = await world.recording(world.session_id)
    headers = world.actors["learner"].headers
    secret = client.app[SETTINGS].secret_key

    async def grant_from_replay(actor: str = "learner") -> catalog.MediaGrant:
        opened = await client.get(f"/api/replays/{recording_id}", headers=world.actors[actor].headers)
        cookie = media_cookie(opened)
        assert cookie is not None
        held = media_access.check(secret, cookie.value, f"/hls/{world.session_id}/r/x.m4s", time.time())
        return catalog.MediaGrant(
            purpose=catalog.MediaPurpose.WHEP,
            session_id=held.session_id,
            person_id=held.person_id,
            role=held.role,
            issued_at=datetime.fromtimestamp(held.issued_at, UTC),
        )

    before = await grant_from_replay()
    await catalog.check_media_grant(world.db, before)  # enrolled: admitted
    resp = await client.post(f"/api/courses/{world.course_id}/withdraw", headers=headers)
    assert resp.status == 200, await resp.text()
    with pytest.raises(Forbidden):
        await catalog.check_media_grant(world.db, before)
    resp = await client.post(f"/api/courses/{world.course_id}/enroll", json={}, headers=headers)
    assert resp.status in (200, 201), await resp.text()
    with pytest.raises(Forbidden):
        await catalog.check_media_grant(world.db, before)  # issued before the withdrawal: still void
    await catalog.check_media_grant(world.db, await grant_from_replay())
    for actor in ("expert", "admin", "bureau"):  # their grants stand while they hold their roles
        await catalog.check_media_grant(world.db, await grant_from_replay(actor))
